"""Count the operations of a block that make the host wait for the device (device→host synchronisations).

On a GPU every read of a device tensor's values on the host stalls the host until the device has finished
all work queued before it: ``.item()``, ``bool(t)``, ``float(t)``, ``.cpu()``, ``.tolist()``, and the operations
whose output size depends on the values (``nonzero``, ``masked_select``, boolean-mask indexing, ``unique``).
nnU-Net's own ``train_step`` has two: GradScaler's check for infinite gradients and the logged loss
(``l.detach().cpu().numpy()``). :class:`HostSyncCounter` counts them in any block, on a GPU or on a CPU.

How. A ``TorchDispatchMode`` sees every aten operation (``_local_scalar_dense`` is what ``.item()``, ``bool()``
and ``float()`` become); a ``TorchFunctionMode`` sees the host copies (``Tensor.cpu``, ``Tensor.tolist``,
``Tensor.numpy``), which a CPU tensor never dispatches. Only reads of *device* tensors count:

- on a GPU, a device tensor is one whose ``device`` is not the CPU;
- on a CPU (``device`` = the CPU: **device emulation**), the counter tracks which tensors would live on the
  device: the parameters, buffers and gradients of the ``modules`` and the optimiser state of ``optimizers``
  given to it, every tensor moved with ``.to(device)`` / ``.cuda()``, every factory result given an explicit
  ``device=`` as a ``torch.device`` (the string ``"cpu"`` written in code means the host), and every result of
  an operation with a device tensor among its inputs. A read of such a tensor counts; a read of a host tensor
  (an optimiser's step counter, a NumPy batch) does not, as on a GPU. ``.cpu()`` of a device tensor returns
  a host tensor (a view of the same memory on a CPU).

With ``strict=True`` (device emulation only) the counter also enforces CUDA's same-device rule: an operation
mixing a device tensor with a host tensor of one or more dimensions raises ``RuntimeError`` naming the
operation, as CUDA would ("Expected all tensors to be on the same device"); 0-dimensional host tensors may mix,
as on CUDA. ``.numpy()`` of a device tensor is counted (on a GPU it fails without ``.cpu()`` first).

The counts are for comparing code paths: where a real GPU is available, :mod:`benchmarks.gpu_check` measures the
same count on it.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["HostSyncCounter"]

_aten = torch.ops.aten
#: operations that read a device tensor's values on the host, or whose output size depends on them
_READS = {
    _aten._local_scalar_dense.default,
    _aten.nonzero.default,
    _aten.masked_select.default,
    _aten._unique2.default,
    _aten.unique_dim.default,
    _aten.unique_consecutive.default,
    _aten.repeat_interleave.Tensor,
    _aten.equal.default,
}
#: indexing operations that synchronise when an index is a boolean mask
_INDEXING = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default, _aten._index_put_impl_.default}
#: operations that move data between devices: allowed to mix devices under ``strict``
_COPIES = {_aten._to_copy.default, _aten.copy_.default, _aten.to.device, _aten.to.dtype_layout}
#: Tensor methods that copy a device tensor to the host
_HOST_COPIES = {Tensor.cpu, Tensor.tolist, Tensor.numpy}
#: frames of these files are skipped when naming where a synchronisation happened
_INTERNAL = ("torch/", "host_syncs.py", "contextlib.py")


class HostSyncCounter:
    """``with HostSyncCounter(device, modules, optimizers) as counter: ...``; then ``counter.count``.

    Args:
        device: the training device. The CPU means device emulation (module docstring).
        modules: whose parameters, buffers and gradients are on the device (emulation only).
        optimizers: whose state tensors of one or more dimensions are on the device (emulation only).
        strict: enforce CUDA's same-device rule (emulation only).

    Attributes:
        count: the number of synchronisations in the block.
        events: one line per synchronisation: the operation and the first frame outside torch (``file:line``).
    """

    def __init__(self, device: torch.device | str, modules: Iterable[torch.nn.Module] = (),
                 optimizers: Iterable[torch.optim.Optimizer] = (), strict: bool = False) -> None:
        self.device = torch.device(device)
        self.emulated = self.device.type == "cpu"
        self.strict = strict and self.emulated
        self.events: list[str] = []
        self._on_device: WeakIdKeyDictionary = WeakIdKeyDictionary()
        for module in modules:
            for tensor in (*module.parameters(), *module.buffers()):
                self.mark(tensor)
                if tensor.grad is not None:
                    self.mark(tensor.grad)
        for optimizer in optimizers:
            for state in optimizer.state.values():
                for value in state.values():
                    if isinstance(value, Tensor) and value.ndim > 0:
                        self.mark(value)
        self._modes = (_FunctionLevel(self), _DispatchLevel(self))

    @property
    def count(self) -> int:
        return len(self.events)

    def summary(self) -> Counter:
        """How many synchronisations each ``operation @ file:line`` made."""
        return Counter(self.events)

    # ------------------------------------------------------------------ device tensors
    def mark(self, tensor: Tensor) -> None:
        """Declare ``tensor`` a device tensor (emulation)."""
        if self.emulated:
            self._on_device[tensor] = True

    def unmark(self, tensor: Tensor) -> None:
        self._on_device.pop(tensor, None)

    def on_device(self, value: object) -> bool:
        if not isinstance(value, Tensor):
            return False
        if not self.emulated:
            return value.device.type != "cpu"
        return value in self._on_device

    def record(self, operation: str) -> None:
        frame = next((f for f in reversed(traceback.extract_stack()[:-1])
                      if not any(part in f.filename for part in _INTERNAL)), None)
        where = f"{frame.filename.rsplit('/', 2)[-2:][-1]}:{frame.lineno}" if frame is not None else "?"
        self.events.append(f"{operation} @ {where}")

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> HostSyncCounter:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(kind, error, trace)


def _targets_device(counter: HostSyncCounter, args: tuple, kwargs: dict) -> bool:
    """Whether a ``Tensor.to`` / factory call names the training device (emulation: any explicit device)."""
    given = kwargs.get("device")
    if given is None:
        given = next((a for a in args if isinstance(a, (torch.device, str))), None)
    if given is None:
        return False
    if counter.emulated and isinstance(given, str):
        return False  # emulation: the string "cpu" written in code means the host (the device is a torch.device)
    try:
        return torch.device(given).type == counter.device.type
    except (RuntimeError, TypeError):
        return False


class _FunctionLevel(TorchFunctionMode):
    """Host copies (not dispatched on a CPU) and moves to the device (emulation)."""

    def __init__(self, counter: HostSyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        counter = self.counter
        source = args[0] if args else None
        if func in _HOST_COPIES and counter.on_device(source):
            counter.record(f"Tensor.{func.__name__}")
            result = func(*args, **kwargs)
            if func is Tensor.cpu and counter.emulated and isinstance(result, Tensor):
                if result is source:  # a CPU tensor's .cpu() is itself: give back a host view of it
                    result = result.view_as(result)
                counter.unmark(result)
            return result
        if (func is Tensor.to and counter.on_device(source) and not counter.emulated
                and any(torch.device(a).type == "cpu" for a in (*args[1:], kwargs.get("device"))
                        if isinstance(a, (torch.device, str)))):
            counter.record("Tensor.to(cpu)")
        result = func(*args, **kwargs)
        if counter.emulated and isinstance(result, Tensor) and (
                func in (Tensor.to, Tensor.cuda) and _targets_device(counter, args[1:], kwargs)
                or func not in (Tensor.to, Tensor.cuda) and "device" in kwargs and kwargs["device"] is not None
                and _targets_device(counter, (), kwargs)):
            counter.mark(result)
        return result


class _DispatchLevel(TorchDispatchMode):
    """Value reads and data-dependent shapes of device tensors; device propagation and the same-device rule."""

    def __init__(self, counter: HostSyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        counter = self.counter
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)]
        on_device = [counter.on_device(t) for t in tensors]
        if any(on_device):
            if func in _READS:
                counter.record(f"aten.{func.__name__}")
            elif func in _INDEXING and any(t.dtype in (torch.bool, torch.uint8) for t in _indices(func, args)):
                counter.record(f"aten.{func.__name__} (boolean mask)")
            if counter.strict and func not in _COPIES:
                mixed = [tuple(t.shape) for t, here in zip(tensors, on_device) if not here and t.ndim > 0]
                if mixed:
                    raise RuntimeError(
                        f"Expected all tensors to be on the same device (emulated CUDA): {func} got host tensors "
                        f"of shapes {mixed} together with device tensors. Create them on the inputs' device."
                    )
        result = func(*args, **kwargs)
        if counter.emulated and any(on_device):
            for output in tree_leaves(result):
                if isinstance(output, Tensor):
                    counter.mark(output)
        return result


def _indices(func, args: tuple) -> list[Tensor]:
    indices = args[1] if len(args) > 1 else []
    return [t for t in indices if isinstance(t, Tensor)] if isinstance(indices, (list, tuple)) else []
