"""A non-finite loss under DDP stops every rank with the same named error: 2 gloo processes on CPU.

Rank 1's loss is NaN, rank 0's is finite. Each rank runs the trainer's check
(:func:`~nnunet_lossplug.nnunet.trainer.guards.check_finite_loss`) at the same step, as nnU-Net's DDP training
does before its next gradient all-reduce, and records what happened. Before the fix rank 0 passed the check and
went on to an all-reduce that rank 1 never joined.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunet_lossplug.nnunet.errors import NonFiniteLossError
from nnunet_lossplug.nnunet.trainer.guards import check_finite_loss

WORLD_SIZE = 2


class _RunningTrainer:
    """What the check reads of a running ``LossPlugTrainer``: the epoch, the optimiser, the map life cycle."""

    def __init__(self) -> None:
        self.current_epoch = 3
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        self.maps = None


def _worker(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=60))
    try:
        loss = torch.tensor(float("nan") if rank == 1 else 0.75)
        batch = {"keys": [f"case_{rank}a", f"case_{rank}b"]}
        try:
            check_finite_loss(_RunningTrainer(), loss, batch)
            outcome = {"error": None, "message": ""}
        except NonFiniteLossError as error:
            outcome = {"error": type(error).__name__, "message": str(error)}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(outcome))
    finally:
        dist.destroy_process_group()


def test_every_rank_stops_with_the_same_named_error(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD_SIZE, join=True)
    outcomes = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]
    assert [o["error"] for o in outcomes] == ["NonFiniteLossError"] * WORLD_SIZE, outcomes
    for rank, outcome in enumerate(outcomes):
        assert "rank(s) [1] of 2" in outcome["message"] and f"this is rank {rank}" in outcome["message"], outcome
        assert "epoch 3" in outcome["message"] and "\n" not in outcome["message"]
    assert "case_1a" in outcomes[1]["message"] and "nan" in outcomes[1]["message"]  # the rank that saw it names cases


def test_a_single_process_check_is_unchanged() -> None:
    check_finite_loss(_RunningTrainer(), torch.tensor(0.5), {"keys": ["a"]})
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(inf\) at epoch 3 .*\['a'\]"):
        check_finite_loss(_RunningTrainer(), torch.tensor(float("inf")), {"keys": ["a"]})
