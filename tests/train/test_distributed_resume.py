"""A checkpoint written by one process resumes in two (torchrun, gloo on the CPU), and they continue it as one
process does: the NeRF model (separate coarse and fine MLPs, random importance samples), so the fine pass's
random numbers are covered by the batch split too.

Tolerance as in test_distributed_train.py: losses to a relative 1e-5, weights to 1e-5 absolute (float32 sums
in another order).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import TINY_FIELD_ARGS
from safetensors.torch import load_file

from inerf.cli.main import main as inerf_main

STEPS = 8
MORE = 8


def _args(out, steps: int, data=None) -> list[str]:
    args = ["train", "--out", str(out), "--max-steps", str(steps), "--device", "cpu", "--quiet"]
    if data is None:
        return [*args, "--resume"]
    return [
        *args,
        *("--data", str(data), "--model", "nerf", *TINY_FIELD_ARGS, "--n-coarse", "16", "--n-fine", "8"),
        *(
            "--rays-per-batch",
            "96",
            "--lr",
            "5e-3",
            "--val-every",
            "0",
            "--log-every",
            "4",
            "--save-every",
            "0",
        ),
    ]


def test_checkpoint_of_one_process_resumes_in_two(sphere_scene, tmp_path, torchrun):
    base, here, there = tmp_path / "base", tmp_path / "here", tmp_path / "there"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert inerf_main(_args(base, STEPS, sphere_scene)) == 0
        shutil.copytree(base, here)
        shutil.copytree(base, there)
        assert inerf_main(_args(here, STEPS + MORE)) == 0
    finally:
        torch.set_num_threads(old)
    torchrun(_args(there, STEPS + MORE))

    cfg = json.loads((there / "config.json").read_text())
    assert cfg["step"] == STEPS + MORE and cfg["world_size"] == 2
    log_here, log_there = (
        [json.loads(line) for line in (r / "train_log.jsonl").read_text().splitlines()] for r in (here, there)
    )
    assert [e["step"] for e in log_here] == [e["step"] for e in log_there]
    for a, b in zip(log_here, log_there):
        for key in ("loss", "train_psnr", "val_psnr"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5), (a, b)
    wa, wb = load_file(str(here / "model.safetensors")), load_file(str(there / "model.safetensors"))
    assert wa.keys() == wb.keys() and any(k.startswith("fine.") for k in wa)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0, msg=k)
