"""Global localisation: candidate geometry, the camera prior, scoring, diversity, pruning, and a pose found
from no initial guess (the bundled demo field; the analytic ball through the CLI)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pose_scene import look_at as look_at_ref
from pose_scene import orbit_poses

from inerf.cli.main import main
from inerf.geometry import se3
from inerf.geometry.conventions import check_rigid
from inerf.pose.config import AdamConfig, BlurConfig, PoseConfig
from inerf.pose.global_search import (
    CameraPrior,
    GlobalConfig,
    candidate_poses,
    default_prune_steps,
    fibonacci_sphere,
    localize,
    look_at,
    low_resolution_target,
    roll_about_axis,
    score_candidates,
    select_diverse,
)
from inerf.pose.problem import PoseTarget
from inerf.render.model import Model


def test_fibonacci_sphere_is_even():
    d = fibonacci_sphere(200)
    assert torch.allclose(d.norm(dim=-1), torch.ones(200, dtype=torch.float64))
    assert abs(float(d.mean(0).norm())) < 0.02  # balanced
    # Nearest-neighbour angles close to the nominal spacing sqrt(4 pi / n): no clumps, no holes.
    cos = d @ d.T - 2 * torch.eye(200, dtype=torch.float64)
    nn = torch.rad2deg(torch.acos(cos.max(1).values.clamp(-1, 1)))
    nominal = math.degrees(math.sqrt(4 * math.pi / 200))
    assert 0.6 * nominal < float(nn.min()) and float(nn.max()) < 1.3 * nominal


def test_look_at_and_roll():
    eyes = torch.tensor([[2.4, -2.8, 1.6], [0.0, 0.0, 4.0], [0.0, 0.0, -4.0]], dtype=torch.float64)
    c2w = look_at(
        eyes, torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    )
    check_rigid(c2w)
    assert torch.allclose(torch.linalg.det(c2w[:, :3, :3]), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(c2w[0], look_at_ref((2.4, -2.8, 1.6)))  # the tests' own OpenCV look-at
    fwd = -eyes / eyes.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(c2w[:, :3, 2], fwd)  # +z looks at the target, poles included
    rolled = roll_about_axis(c2w, torch.tensor([0.0, math.pi / 2], dtype=torch.float64))
    assert rolled.shape == (3, 2, 4, 4)
    torch.testing.assert_close(rolled[:, 1, :3, 2], c2w[:, :3, 2])  # same axis and centre ...
    torch.testing.assert_close(rolled[:, 1, :3, 3], c2w[:, :3, 3])
    angle = se3.rotation_error_deg(rolled[:, 1], c2w)
    torch.testing.assert_close(angle, torch.full((3,), 90.0, dtype=torch.float64))  # ... turned 90 degrees


def test_prior_from_orbit_and_forward_facing_cameras():
    prior = CameraPrior.from_cameras(orbit_poses(8, radius=4.0, elevation_deg=25.0))
    assert prior.orbit and float(prior.center.norm()) < 1e-9
    assert prior.radius_min == pytest.approx(4.0) and prior.radius_max == pytest.approx(4.0)
    assert prior.elevation == pytest.approx((25.0, 25.0))
    torch.testing.assert_close(prior.up, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    # A forward-facing capture: parallel optical axes meet nowhere, so only the cameras are candidates.
    ff = torch.eye(4, dtype=torch.float64).repeat(5, 1, 1)
    ff[:, 0, 3] = torch.linspace(-1, 1, 5)
    fprior = CameraPrior.from_cameras(ff)
    assert not fprior.orbit
    cands = candidate_poses(fprior, GlobalConfig(rolls=2))
    assert cands.shape == (10, 4, 4)


def test_prior_up_is_exact_for_upright_cameras_at_random_positions():
    """Upright cameras at random positions on the upper hemisphere (the synthetic scenes' training views):
    the mean of their image-up directions leans by the azimuths' sampling noise, the prior's up does not."""
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    d[:, 2] = d[:, 2].abs()
    eyes = 4.0 * d / d.norm(dim=-1, keepdim=True)
    c2w = look_at(
        eyes, torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    )
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    mean_up = -c2w[:, :3, 1].mean(0)
    assert math.degrees(math.acos(float(mean_up @ z / mean_up.norm()))) > 1.0  # the old estimate leans
    prior = CameraPrior.from_cameras(c2w)
    torch.testing.assert_close(prior.up, z)
    assert prior.elevation[0] >= -1e-6 and prior.elevation[1] <= 90.0


def test_candidates_follow_the_prior():
    prior = CameraPrior.from_cameras(orbit_poses(8, radius=4.0, elevation_deg=25.0))
    config = GlobalConfig(viewpoints=200, rolls=3, radii=1, elevation_margin=10.0)
    cands = candidate_poses(prior, config)
    check_rigid(cands)
    eyes = cands[:, :3, 3]
    elev = torch.rad2deg(torch.asin(eyes[:, 2] / eyes.norm(dim=-1)))
    assert float(elev.min()) >= 15.0 - 1e-6 and float(elev.max()) <= 35.0 + 1e-6  # the band +- margin
    assert torch.allclose(eyes.norm(dim=-1), torch.full((len(cands),), 4.0, dtype=torch.float64))
    n_sphere = (len(cands) - 3 * 8) // 3
    assert n_sphere > 10 and len(cands) == 3 * (n_sphere + 8)  # sphere and training cameras, 3 rolls each
    # Every candidate looks at the centre.
    torch.testing.assert_close(cands[:, :3, 2], -eyes / eyes.norm(dim=-1, keepdim=True))
    # A generator turns the grid (other trials) but keeps the count.
    other = candidate_poses(prior, config, torch.Generator().manual_seed(1))
    assert other.shape == cands.shape and not torch.allclose(other, cands)
    sphere_only = candidate_poses(CameraPrior.from_bounds(2.0, 6.0), GlobalConfig(viewpoints=50, rolls=1))
    assert sphere_only.shape == (50, 4, 4)


def test_diverse_selection_and_pruning_steps():
    prior = CameraPrior.from_bounds(2.0, 6.0)
    cands = candidate_poses(prior, GlobalConfig(viewpoints=100, rolls=1))
    # Scores that favour one neighbourhood: the plain top-4 would crowd there.
    scores = se3.rotation_error_deg(cands, cands[0])
    top = select_diverse(cands, scores, 4, 0.0, prior.center)
    diverse = select_diverse(cands, scores, 4, 45.0, prior.center)
    assert int(top[0]) == int(diverse[0]) == 0
    sep = se3.rotation_error_deg(cands[diverse][:, None], cands[diverse][None])
    assert float((sep + 1e3 * torch.eye(4, dtype=sep.dtype)).min()) >= 45.0
    sep_top = se3.rotation_error_deg(cands[top][:, None], cands[top][None])
    assert float((sep_top + 1e3 * torch.eye(4, dtype=sep.dtype)).min()) < 45.0
    assert default_prune_steps(8, 100, survivors=1, fraction=0.5) == (12, 25, 38)
    assert default_prune_steps(8, 100, survivors=2, fraction=0.5) == (17, 33)
    assert default_prune_steps(1, 100) == ()


def test_scoring_ranks_the_true_pose_first(field, render_config, scene):
    target, gt = scene
    prior = CameraPrior.from_bounds(2.0, 6.0)
    config = GlobalConfig(viewpoints=40, rolls=2, score_size=24, score_rays=128)
    cands = torch.cat([candidate_poses(prior, config), gt[None]])
    scores = score_candidates(Model(field, None, render_config), target, cands, config)
    assert scores.shape == (1, len(cands)) and torch.isfinite(scores).all()
    assert int(scores[0].argmin()) == len(cands) - 1
    low = low_resolution_target(target, 24)
    assert (low.height, low.width) == (24, 24) and float(low.camera.fx[0]) == pytest.approx(
        float(target.camera.fx[0]) / 2
    )
    torch.testing.assert_close(
        low.image.mean((0, 1)), target.image.mean((0, 1)), atol=1e-5, rtol=0
    )  # area mean


def test_global_finds_a_demo_target_from_no_start():
    """The bundled duck field and a held-out view: no initial pose, 64 candidates on the sphere of radius
    (near + far) / 2 (the demo ships no training cameras), 4 refined for 60 steps at 100 x 100 pixels."""
    from inerf.demo import load_demo

    assets = load_demo("cpu")
    t = assets.targets[0]
    model = assets.run.model.with_config(n_coarse=64)
    target = low_resolution_target(PoseTarget(t.image, t.camera, t.alpha), 100)
    prior = CameraPrior.from_bounds(model.config.near, model.config.far)
    config = GlobalConfig(viewpoints=64, rolls=1, score_rays=64, score_blur_rays=1, score_samples=32, keep=4)
    refine = PoseConfig(
        steps=60,
        n_rays=256,
        adam=AdamConfig(lr=0.03, lr_decay=0.02, lr_decay_steps=60),
        blur=BlurConfig(sigma=3.0, steps=30, rays=4),
    )
    found = localize(model, target, prior, config, refine, seed=0)
    starts = found.candidates[0, found.chosen[0]]
    start_err = se3.rotation_error_deg(starts, t.gt_c2w)
    assert float(start_err.max()) > 20.0  # the refined candidates are spread, not all at the answer
    rot = float(se3.rotation_error_deg(found.result.c2w[0], t.gt_c2w))
    trans = float(se3.translation_error(found.result.c2w[0], t.gt_c2w))
    assert rot < 2.0 and trans < 0.1, (rot, trans)
    assert found.pose_config.prune_steps == (10, 20)  # 4 -> 2 -> 1
    assert found.record()["candidates"] == 64


def test_estimate_and_benchmark_with_global(tmp_path, fake_run, capsys):
    common = [
        "--global-viewpoints",
        "24",
        "--global-rolls",
        "1",
        "--global-keep",
        "2",
        "--global-score-size",
        "16",
        "--global-elevation-margin",
        "180",
    ]
    common += ["--global-score-rays", "64", "--steps", "30", "--rays", "128", "--quiet"]
    out = tmp_path / "est"
    code = main(
        ["estimate", "--run", "RUN", "--view", "1", "--global", *common, "--frames", "0", "--out", str(out)]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    pose = json.loads((out / "pose.json").read_text())
    assert pose["rotation_error_deg"] < 2.0 and pose["translation_error"] < 0.05
    # The whole sphere (a margin of 180 degrees around the cameras' elevation) and the 4 training cameras.
    assert pose["global"]["candidates"] == 24 + 4 and pose["global"]["refined"] == 2
    assert pose["global"]["prior"]["training_cameras"] == 4
    assert pose["config"]["optimizer"] == "adam+lm"  # --global's default preset: robust
    assert pose["uncertainty"]["rotation_sigma_deg"] > 0 and "global: 28 candidates" in stdout
    code = main(
        [
            "estimate",
            "--run",
            "RUN",
            "--view",
            "1",
            "--global",
            "--init-from-gt",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "--global needs no --init" in capsys.readouterr().err
    code = main(
        [
            "estimate",
            "--run",
            "RUN",
            "--view",
            "1",
            "--init-from-gt",
            "--global-keep",
            "3",
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert code == 2 and "--global-keep: only used with --global" in capsys.readouterr().err

    bench = tmp_path / "bench"
    code = main(
        ["benchmark", "pose", "--run", "RUN", "--images", "2", "--trials", "2", "--sampling", "random"]
        + ["--global", *common, "--checkpoints", "15,30", "--out", str(bench)]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    results = json.loads((bench / "results.json").read_text())
    assert results["meta"]["global"]["candidates"] == 28 and len(results["trials"]) == 4
    assert "no initial pose (global" in stdout and "inside 95%" in stdout
    assert results["calibration"]["random"]["successful"] >= 1
