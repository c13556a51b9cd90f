"""Fixtures for the pose tests (helpers live in :mod:`pose_scene`, a name no other test folder uses)."""

from __future__ import annotations

import pytest
import torch
from pose_scene import FOCAL, FakeRun, H, TexturedBall, W, look_at, make_views, orbit_poses

from inerf.geometry.cameras import Cameras
from inerf.pose.solver import PoseTarget
from inerf.render.renderer import RenderConfig, render_image


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_per_module):
    """These solves work on tiny tensors: one intra-op thread is faster than two and immune to a busy CPU."""


@pytest.fixture(scope="session")
def render_config() -> RenderConfig:
    return RenderConfig(n_coarse=48, n_fine=0, near=2.0, far=6.0, background=(1.0, 1.0, 1.0), chunk=4096)


@pytest.fixture(scope="session")
def field() -> TexturedBall:
    return TexturedBall()


@pytest.fixture(scope="session")
def gt_c2w() -> torch.Tensor:
    return look_at((2.4, -2.8, 1.6))


@pytest.fixture(scope="session")
def scene(field, render_config, gt_c2w):
    """``(target, gt_c2w)``: the image rendered at the ground-truth pose, with its alpha."""
    camera = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    out = render_image(field, camera.with_c2w(gt_c2w.float()), render_config)
    target = PoseTarget(image=out.rgb, camera=camera, alpha=out.acc)
    return target, gt_c2w


@pytest.fixture()
def fake_run(monkeypatch, field, render_config):
    """Make ``inerf estimate`` / ``inerf benchmark pose`` load the analytic field for any --run."""
    import inerf.cli.estimate as estimate_cli

    views = make_views(field, render_config, orbit_poses(4))
    run = FakeRun(field, render_config, views)
    monkeypatch.setattr(estimate_cli, "load_run_checked", lambda run_dir, device, samples=None: run)
    return run
