"""``inerf train`` in two processes (torchrun, gloo on the CPU) trains the model one process trains.

Grid field, 16 steps of 128 rays on the sphere scene, with an occupancy update (step 8, a mask of some cells)
and two upsamplings (steps 9 and 15: new parameter tensors, a new DDP wrapper) inside the run, so the
state changed outside the gradient step is covered too.

Tolerance: the two runs add the same float32 squared errors in another order (each rank sums its half, then
the all-reduce adds the halves), so losses agree to a relative 1e-5 and weights to 1e-5 absolute (measured:
2e-7 after 16 steps); the occupancy masks are equal.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from inerf.cli.main import main as inerf_main

STEPS = 16
GRID = {
    "n_voxels_init": 4096,
    "n_voxels_final": 32768,
    "occupancy_steps": [8, 14],
    "upsample_steps": [9, 15],
    "occupancy_resolution": 16,
    # A field that starts with some density, so the occupancy update at step 8 keeps some cells, not all.
    "density_shift": -3.0,
    "occupancy_threshold": 0.2,
}


def _args(data, out, steps: int = STEPS, resume: bool = False) -> list[str]:
    common = ["--out", str(out), "--max-steps", str(steps), "--device", "cpu", "--quiet"]
    if resume:
        return ["train", *common, "--resume"]
    field = [a for k, v in GRID.items() for a in ("--field", f"{k}={json.dumps(v)}")]
    return [
        "train",
        *common,
        *("--data", str(data), "--model", "grid", *field, "--rays-per-batch", "128"),
        *("--val-every", "0", "--log-every", "4", "--save-every", "0"),
    ]


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def _assert_same_weights(a, b, atol: float = 1e-5) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].shape == wb[k].shape, k
        if wa[k].dtype == torch.bool:
            assert torch.equal(wa[k], wb[k]), k
        else:
            torch.testing.assert_close(wa[k].float(), wb[k].float(), atol=atol, rtol=0, msg=k)


@pytest.fixture(scope="module")
def runs(sphere_scene, tmp_path_factory, torchrun):
    """``(one, two, stdout)``: the same run trained by one process (here) and by two (torchrun)."""
    root = tmp_path_factory.mktemp("ddp")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert inerf_main(_args(sphere_scene, root / "one")) == 0
    finally:
        torch.set_num_threads(old)
    proc = torchrun(_args(sphere_scene, root / "two"))
    return root / "one", root / "two", proc.stdout


def test_two_processes_train_as_one(runs):
    one, two, stdout = runs
    log1, log2 = _log(one), _log(two)
    # Rank 0 alone logs and speaks: the same lines as one process, one summary line.
    assert [e["step"] for e in log1] == [e["step"] for e in log2] == [0, 4, 8, 12, 16, 16]
    assert stdout.count(f"trained {STEPS} steps") == 1
    for e1, e2 in zip(log1, log2):
        for key in ("loss", "train_psnr", "val_psnr", "lr"):
            if key in e1:
                assert e2[key] == pytest.approx(e1[key], rel=1e-5), (e1, e2)
    _assert_same_weights(one, two)
    mask = load_file(str(two / "model.safetensors"))["coarse.occupancy.mask"]
    assert 0 < mask.float().mean() < 1  # the occupancy update carved some cells: that state agrees too
    cfg1, cfg2 = (json.loads((r / "config.json").read_text()) for r in (one, two))
    assert (cfg1["world_size"], cfg2["world_size"]) == (1, 2)
    assert cfg1["train"]["rays_per_batch"] == cfg2["train"]["rays_per_batch"] == 128  # the global batch


def test_checkpoint_of_two_processes_resumes_in_one(runs, tmp_path):
    one, two, _ = runs
    from_one, from_two = tmp_path / "from_one", tmp_path / "from_two"
    shutil.copytree(one, from_one)
    shutil.copytree(two, from_two)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run in (from_one, from_two):
            assert inerf_main(_args(None, run, steps=STEPS + 4, resume=True)) == 0
    finally:
        torch.set_num_threads(old)
    assert json.loads((from_two / "config.json").read_text())["step"] == STEPS + 4
    _assert_same_weights(from_one, from_two)
