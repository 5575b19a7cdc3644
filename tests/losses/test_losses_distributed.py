"""Data-parallel SA Dice: 2 gloo processes on CPU against one process over the whole batch.

Expected (see nnunet_lossplug/losses/distributed.py): every rank returns the single-process loss; each
rank's logit gradient is W = 2 times the matching slice of the single-process gradient; after DDP averages
the parameter gradients over the W ranks they equal the single-process parameter gradients, also when SA
Dice is mixed with a batch-mean cross-entropy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunet_lossplug.losses import CrossEntropyLoss, DiceLoss, LossMixture

WORLD_SIZE = 2
BATCH = 4  # 2 images per rank


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(BATCH, 3, 5, 6, generator=generator, dtype=torch.float64) * 2
    images = torch.randn(BATCH, 1, 5, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (BATCH, 1, 5, 6), generator=generator)
    labels[0] = 0  # rank 0 holds an image without foreground
    labels[2:][labels[2:] == 2] = 1  # class 2 lives only on rank 0: only the global sums see it
    return logits, images, labels


def _network() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Conv2d(1, 3, kernel_size=3, padding=1).double()


def _losses() -> dict[str, torch.nn.Module]:
    return {
        "sa_dice": DiceLoss(batch_dice=True, do_bg=False),
        "sa_dice_plus_ce": LossMixture(DiceLoss(batch_dice=True, smooth=1e-5), CrossEntropyLoss()),
    }


def _single_process_results() -> dict[str, torch.Tensor]:
    logits, images, labels = _data()
    results: dict[str, torch.Tensor] = {}
    x = logits.clone().requires_grad_(True)
    value = DiceLoss(batch_dice=True, do_bg=False, ddp=False)(x, labels)
    value.backward()
    results["loss"], results["logit_grad"] = value.detach(), x.grad
    for name, loss in _losses().items():
        network = _network()
        loss(network(images), labels).backward()
        results[f"{name}_param_grads"] = torch.cat([p.grad.flatten() for p in network.parameters()])
    return results


def _worker(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # a file rendezvous: no port to find, and no TCP store that ends with rank 0 while rank 1 still uses it (CI once
    # saw rank 1 abort in gloo: "terminate called without an active exception")
    store = f"file://{os.path.join(out_dir, 'rendezvous')}"
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=WORLD_SIZE)
    try:
        logits, images, labels = _data()
        local = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        results: dict[str, torch.Tensor] = {}
        x = logits[local].clone().requires_grad_(True)
        value = DiceLoss(batch_dice=True, do_bg=False)(x, labels[local])  # ddp=None: detected
        value.backward()
        results["loss"], results["logit_grad"] = value.detach(), x.grad
        for name, loss in _losses().items():
            network = torch.nn.parallel.DistributedDataParallel(_network())
            loss(network(images[local]), labels[local]).backward()
            results[f"{name}_param_grads"] = torch.cat([p.grad.flatten() for p in network.parameters()])
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # neither rank leaves while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, torch.Tensor]]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    out_dir = tmp_path_factory.mktemp("ddp")
    # spawn (not fork): robust when the parent already ran OpenMP regions; costs one torch import per child
    mp.spawn(_worker, args=(str(out_dir),), nprocs=WORLD_SIZE, join=True)
    return [torch.load(Path(out_dir) / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def test_every_rank_computes_the_global_sa_dice(distributed_results: list[dict[str, torch.Tensor]]) -> None:
    single = _single_process_results()
    for rank_results in distributed_results:
        torch.testing.assert_close(rank_results["loss"], single["loss"], rtol=1e-12, atol=1e-14)
    # the local loss differs: the test would notice a missing all-reduce
    logits, _, labels = _data()
    local_only = DiceLoss(batch_dice=True, do_bg=False, ddp=False)(logits[:2], labels[:2])
    assert abs(local_only.item() - single["loss"].item()) > 1e-3


def test_each_rank_logit_gradient_is_world_size_times_its_slice(
    distributed_results: list[dict[str, torch.Tensor]],
) -> None:
    single = _single_process_results()
    for rank, rank_results in enumerate(distributed_results):
        local = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        expected = WORLD_SIZE * single["logit_grad"][local]
        torch.testing.assert_close(rank_results["logit_grad"], expected, rtol=1e-10, atol=1e-14)
        assert bool(torch.any(rank_results["logit_grad"] != 0))


@pytest.mark.parametrize("name", ["sa_dice", "sa_dice_plus_ce"])
def test_ddp_parameter_gradients_equal_the_single_process_gradients(
    distributed_results: list[dict[str, torch.Tensor]], name: str
) -> None:
    single = _single_process_results()
    for rank_results in distributed_results:
        torch.testing.assert_close(
            rank_results[f"{name}_param_grads"], single[f"{name}_param_grads"], rtol=1e-10, atol=1e-13
        )
