"""``inerf pixelnerf train`` in two processes (torchrun, gloo on the CPU) trains the model one process trains,
and checkpoints move between world sizes: a run of one process for 2 steps, continued by two processes to
step 4 (``--resume``), then by one process to step 6, equals one process's uninterrupted 6 steps.

The tiny model on the generated blobs (4 training objects), ``-B 3``: every epoch's batches hold 3 and 1
objects, so the two-process steps are a split batch (step 3, a new epoch: the order is drawn then) and a
batch of one object (step 4), which leaves rank 1 with no object at all (it still takes part in every
collective). The encoder trains (BatchNorm over the whole batch through SyncBatchNorm2d), ``-V '1 2'``
draws the source-view count per batch, and the foreground-box sampling stops at step 4, so every random
draw of a step is covered by the split.

Tolerance: the ranks add their float32 squared errors (and BatchNorm sums) in another order than one
process. Logged losses agree to a relative 2e-5 (measured here: 1.5e-6) and weights, BatchNorm running
statistics included, to 1e-4 absolute, a tenth of the learning rate (measured here: 2.6e-6; 4.4e-5 after four
two-process steps from step 0: Adam's first steps move every weight by about lr whatever its gradient's size,
so entries with a near-zero gradient carry the rounding furthest). The ``_iter`` random-number states and epoch order are equal.
"""

from __future__ import annotations

import json

import pytest
import torch

from inerf.cli.main import main as inerf_main
from inerf.pixelnerf.train import ITER_NAME, LATEST_NAME


def _args(data, conf, root, steps: int, resume: bool = False) -> list[str]:
    return [
        *("pixelnerf", "train", "-D", str(data), "-n", "tiny", "-c", str(conf)),
        *("-B", "3", "-V", "1 2", "-R", "32", "--lr", "1e-3", "--no_bbox_step", "4"),
        *("--checkpoints_path", str(root / "checkpoints"), "--visual_path", str(root / "visuals")),
        *("--logs_path", str(root / "logs"), "--val-every", "0", "--save-every", "1000"),
        *("--print-every", "1", "--gpu_id", "-1", "--quiet", "--max-steps", str(steps)),
        *(["--resume"] if resume else []),
    ]


def _here(args: list[str]) -> None:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert inerf_main(args) == 0
    finally:
        torch.set_num_threads(old)


def _losses(root) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (root / "logs/tiny/train_log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _assert_same_run(a, b) -> float:
    """Same logged losses and weights (within the tolerance above), same ``_iter`` state; returns the largest
    weight difference."""
    la, lb = _losses(a), _losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb]
    for (_, x), (_, y) in zip(la, lb):
        assert y == pytest.approx(x, rel=2e-5), (la, lb)
    wa, wb = (torch.load(r / "checkpoints/tiny" / LATEST_NAME, weights_only=True) for r in (a, b))
    assert wa.keys() == wb.keys()
    worst = 0.0
    for k in wa:
        if wa[k].is_floating_point():
            worst = max(worst, float((wa[k] - wb[k]).abs().max()))
            torch.testing.assert_close(wa[k], wb[k], atol=1e-4, rtol=0, msg=k)
        else:
            assert torch.equal(wa[k], wb[k]), k
    ia, ib = (torch.load(r / "checkpoints/tiny" / ITER_NAME, weights_only=True) for r in (a, b))
    for k in ("iter", "epoch", "pos"):
        assert ia[k] == ib[k], k
    for k in ("perm", "rng_cpu", "rng_device"):
        assert torch.equal(ia[k], ib[k]), k
    return worst


def test_one_two_one_processes_train_as_one(blob_data, tiny_conf, tmp_path, torchrun):
    whole, split = tmp_path / "whole", tmp_path / "split"
    _here(_args(blob_data, tiny_conf, whole, 6))
    _here(_args(blob_data, tiny_conf, split, 2))
    proc = torchrun(_args(blob_data, tiny_conf, split, 4, resume=True))
    assert proc.stdout.count("pixelnerf train: tiny") == 1 and proc.stdout.count("checkpoint:") == 1
    assert "2 processes" in proc.stdout and "resuming at step 2" in proc.stdout
    _here(_args(blob_data, tiny_conf, split, 6, resume=True))
    assert [s for s, _ in _losses(split)] == list(range(1, 7))
    worst = _assert_same_run(whole, split)
    # The encoder trained, BatchNorm statistics included: the comparison above covered SyncBatchNorm2d.
    w = torch.load(split / "checkpoints/tiny" / LATEST_NAME, weights_only=True)
    assert float(w["encoder.model.bn1.running_var"].sub(1).abs().max()) > 1e-3
    print(f"largest weight difference: {worst:.2e}")
