"""SIGKILL a training process at random moments (it checkpoints every step): ``pixel_nerf_latest`` always
loads, and ``--resume`` continues from a consistent state (weights, Adam and ``_iter`` of one step)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import signal
import sys
import time

import pytest
import torch
from pixelnerf_helpers import train_config, train_in_child

from inerf.pixelnerf import load_pixelnerf
from inerf.pixelnerf.train import (
    GROUP,
    JOURNAL_NAME,
    LATEST_NAME,
    OPTIM_NAME,
    PixelNeRFTrainer,
    read_iter_state,
)
from inerf.train.checkpoint import recover_files


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork servers are POSIX")
def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint(blob_data, tiny_conf, tmp_path):
    # Child processes come from a fork server that imported torch and inerf once, so each of the six starts
    # costs a fork, not a Python start-up; each is a separate process, killed with SIGKILL.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "inerf.pixelnerf.train", "pixelnerf_helpers"])
    folder = tmp_path / "checkpoints" / "tiny"
    latest = folder / LATEST_NAME
    rng = random.Random(0)
    for _ in range(6):
        cfg = train_config(
            blob_data,
            tiny_conf,
            tmp_path,
            save_every=1,
            print_every=50,
            ray_batch_size=16,
            resume=latest.exists(),
        )
        started = time.time()
        proc = ctx.Process(target=train_in_child, args=(dataclasses.asdict(cfg),))
        proc.start()
        try:
            # Wait for a checkpoint written by this process, then kill at a random moment: inside a training
            # step or inside one of the saves that follow every step.
            while not (latest.exists() and latest.stat().st_mtime > started):
                assert proc.is_alive(), f"training stopped (exit code {proc.exitcode})"
                assert time.time() - started < 120, "no checkpoint within 2 minutes"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
        assert proc.exitcode == -signal.SIGKILL
        # Whole at any moment, before any recovery: loads strictly.
        load_pixelnerf(latest, tiny_conf)

    # What --resume does first: finish (journal written) or undo (not yet) the interrupted save; then it
    # continues from one consistent step.
    recover_files(folder, list(GROUP), JOURNAL_NAME)
    step = read_iter_state(folder)["iter"]
    assert step >= 6
    optim = torch.load(folder / OPTIM_NAME, weights_only=True)
    assert all(int(s["step"]) == step for s in optim["state"].values())
    PixelNeRFTrainer(train_config(blob_data, tiny_conf, tmp_path, resume=True, max_steps=step + 2)).run()
    assert read_iter_state(folder)["iter"] == step + 2
    assert not list(folder.glob("*.tmp")) and not (folder / JOURNAL_NAME).exists()
