"""The plugin trainers' loss under nnU-Net's DDP: 2 gloo ranks on CPU against one process.

nnU-Net's ``run_ddp`` (``nnUNetv2_train … -num_gpus 2``) spawns one process per GPU, joins an NCCL group, builds
the trainer (which sees ``dist.is_initialized()``: ``is_ddp``, ``local_rank``, its device forced to
``cuda:rank``), halves the batch per rank and wraps the network in DDP. Without a GPU nnU-Net refuses
``-num_gpus > 1`` (``device.type == 'cuda'`` assertion) and its ``initialize`` cannot wrap a CPU network with
``device_ids``; so this test builds the real trainers (``nnUNetTrainerRRW``, ``nnUNetTrainerSADice``) inside a
2-rank gloo group, as ``run_ddp`` does, sets their device back to the CPU (the one substitution), and runs the
trainer's own ``self.loss`` (built by ``_build_loss``: deep supervision with DDP's 1e-6 weights, the map decode
from the packed target, the loss) on each rank's half of one packed batch.

Expected, from one process on the whole batch with the same trainer: SA Dice (DDP-global sums) gives every rank
the single-process loss; the mean-type RW loss gives each rank its half's mean (their average is the
single-process loss); for both, each rank's logit gradient is W = 2 times its slice of the single-process
gradient, so DDP's gradient averaging reproduces single-process training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from batchgenerators.utilities.file_and_folder_operations import load_json
from torch.nn.functional import interpolate

from nnunet_lossplug.maps import rw_map
from nnunet_lossplug.nnunet.map_transport.transforms import PackEncoding

WORLD_SIZE = 2
BATCH = 4
SPATIAL = (32, 32)
TRAINERS = ("nnUNetTrainerSADice", "nnUNetTrainerRRW")


def _trainer(name: str, preprocessed: str):
    from nnunet_lossplug import trainers

    plans = load_json(os.path.join(preprocessed, "nnUNetPlans.json"))
    dataset_json = load_json(os.path.join(preprocessed, "dataset.json"))
    trainer = getattr(trainers, name)({**plans, "continue_training": False}, "2d", 0, dataset_json,
                                      device=torch.device("cpu"))
    trainer.device = torch.device("cpu")  # nnU-Net forces cuda:rank under DDP; the one CPU substitution
    return trainer


def _batch(trainer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One batch target as the trainer's loader delivers it (RRW: the encoding packed behind level 0, as
    ``PackEncoding`` does in the augmentation worker; SA Dice: nnU-Net's plain target list), and network outputs."""
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    labels = np.zeros((BATCH, *SPATIAL), dtype=np.int16)
    for j in range(BATCH):
        for k, (cy, cx, r) in enumerate(rng.uniform((8, 8, 3), (24, 24, 7), size=(3, 3)), start=1):
            yy, xx = np.mgrid[: SPATIAL[0], : SPATIAL[1]]
            labels[j][np.hypot(yy - cy, xx - cx) < r] = k
    labels[2:][labels[2:] == 3] = 1  # class 3 only on rank 0: only the global sums see it
    scales = trainer._get_deep_supervision_scales()
    full = torch.from_numpy(labels)[:, None]
    levels = [interpolate(full.float(), [round(s * f) for s, f in zip(SPATIAL, scale)], mode="nearest-exact")
              .to(torch.int16) for scale in scales]
    packed = []
    for j in range(BATCH):
        own = np.take_along_axis(rw_map(labels[j].astype(np.int64), 4, "rrw", spacing=(1.5, 1.5)),
                                 labels[j][None].astype(np.int64), axis=0)
        sample = {"segmentation": [level[j] for level in levels], "regression_target": torch.from_numpy(own + 1.0)}
        packed.append(PackEncoding().apply(sample)["segmentation"])
    target = [torch.stack([sample[i] for sample in packed]) for i in range(len(levels))]
    if trainer.maps.transport() is None:
        target = levels
    outputs = [torch.randn(BATCH, 4, *level.shape[2:], generator=generator) * 2 for level in levels]
    return target, outputs


def _loss_and_grads(trainer, target, outputs, local: slice) -> tuple[torch.Tensor, list[torch.Tensor]]:
    loss = trainer._build_loss()
    x = [o[local].clone().requires_grad_(True) for o in outputs]
    value = loss(x, [t[local] for t in target])
    value.backward()
    return value.detach(), [xi.grad for xi in x]


def _worker(rank: int, preprocessed: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    store = f"file://{os.path.join(out_dir, 'rendezvous')}"  # a file rendezvous: no port to find
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=WORLD_SIZE)
    try:
        local = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        results = {}
        for name in TRAINERS:
            trainer = _trainer(name, preprocessed)
            assert trainer.is_ddp and trainer.local_rank == rank
            target, outputs = _batch(trainer)
            results[name] = _loss_and_grads(trainer, target, outputs, local)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # neither rank leaves while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(preprocessed_dataset, tmp_path_factory) -> list[dict]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    out_dir = tmp_path_factory.mktemp("trainer_ddp")
    mp.spawn(_worker, args=(str(preprocessed_dataset.preprocessed_folder), str(out_dir)),
             nprocs=WORLD_SIZE, join=True)
    return [torch.load(Path(out_dir) / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("name", TRAINERS)
def test_two_ranks_with_half_batches_reproduce_one_process_on_the_whole_batch(ranks, preprocessed_dataset, name):
    trainer = _trainer(name, str(preprocessed_dataset.preprocessed_folder))
    assert not trainer.is_ddp
    target, outputs = _batch(trainer)
    single, single_grads = _loss_and_grads(trainer, target, outputs, slice(None))
    values = [rank[name][0] for rank in ranks]
    if name == "nnUNetTrainerSADice":  # DDP-global: every rank sees the whole batch's sums
        for value in values:
            torch.testing.assert_close(value, single, rtol=1e-5, atol=1e-6)
        local_only = _loss_and_grads(_trainer(name, str(preprocessed_dataset.preprocessed_folder)), target,
                                     outputs, slice(0, 2))[0]
        assert abs(float(local_only) - float(single)) > 1e-3  # a missing all-reduce would be noticed
    else:  # a mean over voxels: each rank its half, DDP averages
        assert abs(float(values[0]) - float(values[1])) > 1e-4
        torch.testing.assert_close(sum(values) / WORLD_SIZE, single, rtol=1e-5, atol=1e-6)
    for rank, results in enumerate(ranks):
        local = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        for level, (grad, expected) in enumerate(zip(results[name][1], single_grads)):
            # DDP's 1e-6 weight on the lowest level (nnU-Net: 0, no gradient, in one process) is the only difference
            if expected is None:
                assert level == len(single_grads) - 1 and float(grad.abs().max()) < 1e-5
                continue
            torch.testing.assert_close(grad, WORLD_SIZE * expected[local], rtol=1e-4, atol=1e-7)
        assert any(bool(torch.any(g != 0)) for g in results[name][1])
