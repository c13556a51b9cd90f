"""The iNeRF solver on an analytic field: recovery, rigidity, batched == single, NaN handling, Adam."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from pose_scene import NaNField, look_at, perturb

from inerf.errors import InerfError
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.pose.config import AdamConfig, PoseConfig, SamplingConfig, StopConfig
from inerf.pose.solver import (
    PoseTarget,
    adam_update,
    estimate_pose,
    photometric_loss,
    require_finite,
)
from inerf.render.model import Model

FAST = PoseConfig(steps=250, n_rays=384, adam=AdamConfig(lr=0.01))


def errors(c2w, gt):
    return float(se3.rotation_error_deg(c2w, gt)), float(se3.translation_error(c2w, gt))


@pytest.fixture(scope="module")
def solved(field, render_config, scene):
    """One paper-style solve from 10 degrees / 0.05 off, shared by several tests."""
    target, gt = scene
    init = perturb(gt, 10.0, 0.05)
    return estimate_pose(Model(field, None, render_config), target, init, FAST, seeds=0), init, gt


def test_recovers_a_known_perturbation(solved):
    result, init, gt = solved
    r0, t0 = errors(init, gt)
    assert r0 == pytest.approx(10.0, abs=1e-6) and t0 == pytest.approx(0.05, abs=1e-6)
    r, t = errors(result.c2w[0], gt)
    assert r < 1.0 and t < 0.01, (r, t)
    assert result.status == ["ok"] and result.steps == FAST.steps
    assert result.c2w.shape == (1, 4, 4) and result.c2w.dtype == torch.float64


def test_pose_is_rigid_at_every_step(solved):
    result, init, _ = solved
    c2w = result.trajectory.c2w[:, 0, 0]  # [S + 1, 4, 4]
    assert c2w.shape == (FAST.steps + 1, 4, 4)
    R = c2w[:, :3, :3]
    eye = torch.eye(3, dtype=R.dtype)
    assert (R.transpose(-1, -2) @ R - eye).abs().max() < 1e-5
    assert (torch.linalg.det(R) - 1).abs().max() < 1e-5
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=c2w.dtype).expand(len(c2w), 4))
    assert torch.allclose(c2w[0], init.to(c2w.dtype), atol=1e-6)  # the solve starts exactly at T0 (xi = 0)


def test_trajectory_records_loss_and_lr(solved):
    result, _, _ = solved
    tr = result.trajectory
    assert tr.loss.shape == (FAST.steps + 1, 1, 1) and torch.isfinite(tr.loss).all()
    assert tr.loss[-1, 0, 0] < 1e-2 * tr.loss[0, 0, 0]
    assert tr.lr[0] == pytest.approx(FAST.adam.lr) and tr.lr[100] == pytest.approx(FAST.adam.lr * 0.8)
    assert torch.isnan(tr.lr[-1])


def test_batched_hypotheses_equal_single_solves(field, render_config, scene):
    target, gt = scene
    cfg = PoseConfig(steps=40, n_rays=128, adam=AdamConfig(lr=0.01))
    starts = torch.stack(
        [
            perturb(gt, 8.0, 0.05),
            perturb(gt, 12.0, 0.02, axis=(1, 0, 0)),
            perturb(gt, 5.0, 0.08, axis=(0, 1, 1)),
        ]
    )
    batch = estimate_pose(Model(field, None, render_config), target, starts, cfg, seeds=7)
    for k in range(3):
        single = estimate_pose(Model(field, None, render_config), target, starts[k], cfg, seeds=7)
        assert torch.allclose(batch.trajectory.c2w[:, 0, k], single.trajectory.c2w[:, 0, 0], atol=1e-5)
        assert torch.allclose(
            batch.trajectory.loss[:, 0, k], single.trajectory.loss[:, 0, 0], rtol=1e-4, atol=1e-9
        )
    # The returned pose is the lowest final loss.
    k = int(batch.hypothesis[0])
    assert batch.loss[0] == batch.trajectory.loss[-1, 0].min()
    assert torch.equal(batch.c2w[0], batch.trajectory.c2w[-1, 0, k])


def test_batched_problems_equal_single_solves_with_their_seeds(field, render_config, scene):
    target, gt = scene
    cfg = PoseConfig(steps=30, n_rays=96, sampling=SamplingConfig("mask"))
    starts = torch.stack([perturb(gt, 8.0, 0.05), perturb(gt, 6.0, 0.03, axis=(0, 0, 1))])[
        :, None
    ]  # [G=2, K=1]
    batch = estimate_pose(Model(field, None, render_config), target, starts, cfg, seeds=[3, 9])
    for g, seed in enumerate((3, 9)):
        single = estimate_pose(Model(field, None, render_config), target, starts[g, 0], cfg, seeds=seed)
        assert torch.allclose(batch.trajectory.c2w[:, g], single.trajectory.c2w[:, 0], atol=1e-5)


def test_chunking_does_not_change_the_solve(field, render_config, scene):
    target, gt = scene
    cfg = PoseConfig(steps=15, n_rays=100)
    starts = torch.stack([perturb(gt, 8.0, 0.05), perturb(gt, 3.0, 0.02)])
    whole = estimate_pose(Model(field, None, render_config), target, starts, cfg)
    chunked = estimate_pose(Model(field, None, render_config), target, starts, replace(cfg, ray_chunk=37))
    assert torch.allclose(whole.trajectory.c2w, chunked.trajectory.c2w, atol=1e-6)


def test_pruning_keeps_the_best_half(field, render_config, scene):
    target, gt = scene
    cfg = PoseConfig(steps=12, n_rays=64, prune_steps=(4, 8))
    starts = torch.stack([perturb(gt, a, 0.02 * i) for i, a in enumerate((2.0, 30.0, 5.0, 40.0))])
    res = estimate_pose(Model(field, None, render_config), target, starts, cfg)
    loss = res.trajectory.loss[:, 0]  # [S + 1, 4]
    alive = torch.isfinite(loss)
    assert alive[:5].all() and alive[5:9].sum(-1).eq(2).all() and alive[9:].sum(-1).eq(1).all()
    # At step 4 the survivors were the two lowest losses.
    assert set(torch.nonzero(alive[5, :]).flatten().tolist()) == set(loss[4].argsort()[:2].tolist())
    assert bool(alive[-1, int(res.hypothesis[0])])


def test_nan_loss_is_detected_not_propagated(render_config, scene):
    target, gt = scene
    init = perturb(gt, 5.0, 0.02)
    res = estimate_pose(Model(NaNField(), None, render_config), target, init, PoseConfig(steps=5, n_rays=32))
    assert res.status == ["nan"]
    assert int(res.failed_step[0, 0]) == 0
    assert torch.isfinite(res.c2w).all()
    assert torch.allclose(res.c2w[0], init.to(res.c2w.dtype), atol=1e-6)  # frozen at the last finite pose
    assert torch.isfinite(res.trajectory.c2w).all()
    with pytest.raises(InerfError, match="NaN"):
        require_finite(res)


def test_one_failing_hypothesis_does_not_stop_the_others(field, render_config, scene):
    target, gt = scene

    class PoisonFar(torch.nn.Module):
        """The analytic field, but NaN density in a region only the far-off hypothesis' rays cross."""

        def forward(self, xyz, viewdirs=None):
            rgb, sigma = field(xyz, viewdirs)
            return rgb, torch.where(xyz[:, 2] < -5.0, torch.nan, sigma)

    good = perturb(gt, 5.0, 0.02)  # its samples stay above z = -3
    bad = look_at((0.0, 0.5, -8.0))  # below the ball looking up: its first samples are below z = -5
    res = estimate_pose(
        Model(PoisonFar(), None, render_config),
        target,
        torch.stack([good, bad]),
        PoseConfig(steps=40, n_rays=64),
    )
    assert res.status == ["ok"] and int(res.hypothesis[0]) == 0
    assert int(res.failed_step[0, 1]) == 0 and int(res.failed_step[0, 0]) == -1
    assert torch.isfinite(res.trajectory.c2w).all()


def test_bad_initial_pose_is_rejected(field, render_config, scene):
    target, gt = scene
    sheared = gt.clone()
    sheared[0, 1] += 0.2
    with pytest.raises(InerfError, match="rigid"):
        estimate_pose(Model(field, None, render_config), target, sheared, PoseConfig(steps=1))
    nan = gt.clone()
    nan[0, 3] = float("nan")
    with pytest.raises(InerfError, match="NaN"):
        estimate_pose(Model(field, None, render_config), target, nan, PoseConfig(steps=1))


def test_fields_are_frozen_during_the_solve_and_restored(field, render_config, scene):
    target, gt = scene
    field.train()
    seen = {}

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = field

        def forward(self, xyz, viewdirs=None):
            seen["training"] = self.training
            seen["requires_grad"] = self.inner.scale.requires_grad
            return self.inner(xyz, viewdirs)

    spy = Spy()
    estimate_pose(
        Model(spy, None, render_config), target, perturb(gt, 3.0, 0.01), PoseConfig(steps=2, n_rays=16)
    )
    assert seen == {"training": False, "requires_grad": False}
    assert field.training and field.scale.requires_grad and field.scale.grad is None
    field.eval()


def test_stop_test_ends_the_solve_early(field, render_config, scene):
    target, gt = scene
    # At the optimum, rendering every pixel, the gradient is exactly zero, so the first window moves < tol.
    # (With a random subset Adam still moves: it normalises even round-off gradients to steps of ~lr.)
    cfg = PoseConfig(steps=100, n_rays=target.height * target.width, stop=StopConfig(tol=1e-6, window=5))
    res = estimate_pose(Model(field, None, render_config), target, gt, cfg)
    assert res.stopped_early and res.steps == 5
    assert res.trajectory.c2w.shape[0] == 6


def test_adam_update_matches_torch_adam():
    torch.manual_seed(0)
    x0 = torch.randn(3, 6, dtype=torch.float64)
    p = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    x, m, v = x0.clone(), torch.zeros_like(x0), torch.zeros_like(x0)
    for t in range(1, 20):
        g = torch.sin(3 * x + t)  # any gradient sequence
        p.grad = torch.sin(3 * p.detach() + t)
        opt.step()
        x, m, v = adam_update(x, g, m, v, t, 0.05)
        assert torch.allclose(x, p.detach(), atol=1e-12, rtol=0)


def test_losses_on_hand_computed_values():
    pred = torch.tensor([[0.5, 0.5, 0.5], [0.1, 1.0, 0.2]])
    tgt = torch.tensor([[0.5, 0.7, 0.1], [0.1, 0.5, 0.2]])
    mse = photometric_loss(pred, tgt, PoseConfig(loss="mse"))
    assert torch.allclose(mse, torch.tensor([(0.04 + 0.16) / 3, 0.25 / 3]))
    # Huber with delta 0.1, divided by delta: |d| = 0.2 -> 0.1 * (0.2 - 0.05) / 0.1 = 0.15; 0.4 -> 0.35; 0.5 -> 0.45.
    hub = photometric_loss(pred, tgt, PoseConfig(loss="huber", huber_delta=0.1))
    assert torch.allclose(hub, torch.tensor([(0.15 + 0.35) / 3, 0.45 / 3]))
    mape = photometric_loss(pred, tgt, PoseConfig(loss="mape", mape_eps=0.0))
    assert torch.allclose(mape, torch.tensor([(0.2 / 0.7 + 0.4 / 0.1) / 3, (0.5 / 0.5) / 3]))


@pytest.mark.parametrize("loss", ["huber", "mape"])
def test_other_losses_also_converge(field, render_config, scene, loss):
    target, gt = scene
    init = perturb(gt, 6.0, 0.03)
    res = estimate_pose(
        Model(field, None, render_config), target, init, PoseConfig(steps=120, n_rays=256, loss=loss)
    )
    r, t = errors(res.c2w[0], gt)
    assert r < 1.0 and t < 0.02, (loss, r, t)


def test_target_shape_is_checked():
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        PoseTarget(torch.zeros(4, 4), Cameras.from_intrinsics(1, 1, 2, 2, 4, 4))


def test_frozen_fields_restore_every_submodule_mode():
    """A wrapper field in train mode around an eval-mode model (as pixelNeRF's field views are) leaves both
    as they were: restoring must not switch the wrapped model to train mode (BatchNorm would then update)."""
    from inerf.pose.solver import frozen_fields

    inner = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).eval()
    wrapper = torch.nn.Module()
    wrapper.inner = inner
    wrapper.train()
    inner.train(False)
    with frozen_fields(wrapper):
        assert not wrapper.training and not inner.training
        assert not any(p.requires_grad for p in inner.parameters())
    assert wrapper.training and not inner.training and not inner[1].training
    assert all(p.requires_grad for p in inner.parameters())
