"""The evaluation protocol: start poses, batched trials, report files (the perturbation itself:
test_perturb.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import torch
from pose_scene import make_views, orbit_poses

from inerf.geometry import se3
from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.perturb import PAPER_PERTURBATION
from inerf.pose.protocol import (
    ProtocolConfig,
    initial_poses,
    run_pose_benchmark,
    select_images,
    write_report,
)
from inerf.render.model import Model


def test_initial_poses_are_seeded_and_shaped():
    gt = orbit_poses(1)[0]
    p = ProtocolConfig(trials=3, hypotheses=4, spread_rot=5.0, spread_trans=0.01, seed=3)
    a, b = initial_poses(gt, p, 2), initial_poses(gt, p, 2)
    assert a.shape == (3, 4, 4, 4) and torch.equal(a, b)
    assert not torch.equal(a, initial_poses(gt, p, 3))
    # Extra hypotheses lie within the spread of the trial's start.
    rel = se3.rotation_error_deg(a[:, 1:], a[:, :1])
    assert rel.max() <= 5.0 + 1e-6
    # K = 1 gives the same starts as the first hypotheses of K > 1 (same seed and view).
    single = initial_poses(gt, ProtocolConfig(trials=3, seed=3), 2)
    assert torch.allclose(single[:, 0], a[:, 0])


def test_select_images_spreads_over_the_split():
    assert select_images(200, ProtocolConfig(images=5)) == [0, 50, 100, 149, 199]
    assert select_images(3, ProtocolConfig(images=5)) == [0, 1, 2]
    assert select_images(10, ProtocolConfig(image_ids=(4, 2))) == [4, 2]


def test_benchmark_runs_and_writes_the_report(field, render_config, tmp_path):
    views = make_views(field, render_config, orbit_poses(3))
    protocol = ProtocolConfig(
        images=2,
        trials=3,
        perturbation=replace(PAPER_PERTURBATION, rot_deg=10.0, trans=0.05),
        checkpoints=(10, 40, 60),
    )
    strategies = [SamplingConfig("random"), SamplingConfig("mask")]
    res = run_pose_benchmark(
        Model(field, None, render_config),
        views,
        strategies,
        PoseConfig(steps=60, n_rays=128),
        protocol,
        progress=False,
        log=lambda *a: None,
    )
    assert set(res.rot_err) == {"random", "mask"}
    assert res.rot_err["random"].shape == (6, 61)
    curves = res.success_curves()
    assert curves["random"][0] <= curves["random"][-1]
    assert curves["random"][-1] == 1.0 and curves["mask"][-1] == 1.0  # small starts on an exact field
    rows = {(r["strategy"], r["step"]): r for r in res.summary}
    assert set(rows) == {(s, c) for s in ("random", "mask") for c in (10, 40, 60)}
    assert rows[("random", 60)]["rot_err_median"] < rows[("random", 10)]["rot_err_median"]
    # Same starts for every strategy: paired comparison.
    starts = [t["init_c2w"] for t in res.trials if t["strategy"] == "random"]
    assert starts == [t["init_c2w"] for t in res.trials if t["strategy"] == "mask"]
    paths = write_report(res, tmp_path)
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    md = paths["markdown"].read_text()
    assert "| random | " in md and "step 60" in md
    assert (
        "rotation < 5 deg and translation < 0.05" in md
    )  # the shared thresholds (inerf.pose.perturb.SUCCESS)
    assert "uniform in [-10, 10] degrees about a random axis through the world origin" in md
    data = json.loads(paths["json"].read_text())
    assert len(data["trials"]) == 12 and data["protocol"]["trials"] == 3


def test_benchmark_with_hypotheses_picks_the_best(field, render_config):
    views = make_views(field, render_config, orbit_poses(1))
    protocol = ProtocolConfig(
        images=1,
        trials=2,
        hypotheses=3,
        perturbation=replace(PAPER_PERTURBATION, rot_deg=20.0, trans=0.05),
        spread_rot=15.0,
        spread_trans=0.05,
        checkpoints=(30,),
    )
    res = run_pose_benchmark(
        Model(field, None, render_config),
        views,
        [SamplingConfig("random")],
        PoseConfig(steps=30, n_rays=64, prune_steps=(15,)),
        protocol,
        progress=False,
        log=lambda *a: None,
    )
    assert res.rot_err["random"].shape == (2, 31)
    assert all(0 <= t["hypothesis"] < 3 for t in res.trials)
