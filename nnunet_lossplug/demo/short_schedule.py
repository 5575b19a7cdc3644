"""Where trainer files written by earlier versions of the demo import :func:`short_optimizer` from; the code lives
in :mod:`nnunet_lossplug.benchmark.short_trainers`."""

from nnunet_lossplug.benchmark.short_trainers import ShortSchedule, short_optimizer

__all__ = ["ShortSchedule", "short_optimizer"]
