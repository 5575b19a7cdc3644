"""``check_device``: nnU-Net's default ``-device cuda`` on a machine without CUDA stops in one line naming the fix.

The same refusal through the real ``nnUNetv2_train`` is in ``tests/faults/test_faults_training_processes.py``.
"""

from __future__ import annotations

import pytest
import torch

from nnunet_lossplug.nnunet.errors import DeviceUnavailableError, LossPlugError
from nnunet_lossplug.nnunet.trainer.guards import check_device


def test_the_cpu_is_always_accepted():
    check_device(torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_cuda_device_says_to_add_device_cpu():
    with pytest.raises(DeviceUnavailableError, match=r"finds no CUDA device here .*: add -device cpu") as refused:
        check_device(torch.device("cuda", 0))
    assert isinstance(refused.value, LossPlugError) and "\n" not in str(refused.value)
    assert f"torch {torch.__version__}" in str(refused.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_with_a_cuda_device_is_accepted():
    check_device(torch.device("cuda", 0))


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple-silicon GPU")
def test_mps_without_one_says_to_use_the_cpu():
    with pytest.raises(DeviceUnavailableError, match="use -device cpu"):
        check_device(torch.device("mps"))
