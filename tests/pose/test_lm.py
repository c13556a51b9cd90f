"""The Levenberg-Marquardt solver: its Gauss-Newton system against autograd, convergence, batching."""

from __future__ import annotations

import pytest
import torch
from pose_scene import look_at, perturb

from inerf.geometry import se3
from inerf.pose.config import PoseConfig
from inerf.pose.solver import _Problem, estimate_pose, lm_step

LM = PoseConfig(optimizer="lm", steps=25, n_rays=384)


def errors(c2w, gt):
    return float(se3.rotation_error_deg(c2w, gt)), float(se3.translation_error(c2w, gt))


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_gauss_newton_gradient_equals_autograd(field, render_config, scene, loss):
    """``J^T W r`` of :meth:`_Problem.linearize` is the loss gradient that autograd gives for a left update
    at the current pose (up to the loss's constant factor), so the hand-chained ray Jacobian is right."""
    target, gt = scene
    init = perturb(gt, 8.0, 0.05).float()
    config = PoseConfig(n_rays=200, loss=loss, huber_delta=0.02)
    problem = _Problem(field, None, target, config, render_config, torch.device("cpu"))
    pix = problem.sampler.sample(torch.tensor([3]), 0)
    xi = torch.zeros(1, 1, 6)
    loss_a, grad = problem.evaluate(xi, init[None, None], pix, need_grad=True)
    loss_b, H, g = problem.linearize(xi, init[None, None], pix)
    n = pix.shape[-1]
    # mse: d/dxi mean_i mean_c r^2 = 2 / (3 n) sum J^T r;  huber / delta: 1 / (3 n delta) sum J^T W r.
    scale = 2.0 / (3 * n) if loss == "mse" else 1.0 / (3 * n * config.huber_delta)
    assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-6)
    assert grad.abs().max() > 1e-4  # a real test: the gradient is not zero here
    torch.testing.assert_close(g.float() * scale, grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(H, H.transpose(-1, -2)) and torch.linalg.eigvalsh(H).min() > -1e-9  # PSD


def test_lm_recovers_a_perturbation_to_a_small_fraction_of_a_pixel(field, render_config, scene):
    target, gt = scene
    init = perturb(gt, 10.0, 0.05)
    result = estimate_pose(field, target, init, LM, render_config, seeds=0)
    rot, trans = errors(result.c2w[0], gt)
    assert rot < 0.05 and trans < 0.002
    # Far fewer steps than Adam's 250 for < 1 degree: within 10 LM steps it is already there.
    rot10, trans10 = errors(result.trajectory.c2w[10, 0, 0], gt)
    assert rot10 < 0.5 and trans10 < 0.01
    # Rigid at every step, and the loss never goes up on a step's own pixels (accepted steps only).
    R = result.trajectory.c2w[:, 0, 0, :3, :3]
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[0], dtype=R.dtype), atol=1e-5)
    assert torch.isnan(result.trajectory.lr[:-1]).all()  # no learning rate in LM steps


def test_adam_then_lm_refines_the_adam_result(field, render_config, scene):
    target, gt = scene
    init = perturb(gt, 10.0, 0.05)
    adam = PoseConfig(steps=60, n_rays=384, lr=0.02)
    hybrid = PoseConfig(steps=70, n_rays=384, lr=0.02, optimizer="adam+lm", lm_steps=10)
    r_adam = estimate_pose(field, target, init, adam, render_config, seeds=0)
    r_hyb = estimate_pose(field, target, init, hybrid, render_config, seeds=0)
    # The first 60 steps are the same Adam steps.
    torch.testing.assert_close(r_hyb.trajectory.c2w[60], r_adam.trajectory.c2w[60])
    assert errors(r_hyb.c2w[0], gt)[0] < 0.5 * errors(r_adam.c2w[0], gt)[0]
    assert errors(r_hyb.c2w[0], gt)[0] < 0.1


def test_lm_batched_hypotheses_equal_single_solves(field, render_config, scene):
    target, gt = scene
    starts = torch.stack([perturb(gt, 6.0, 0.03, axis=a) for a in ((0.3, -0.5, 0.8), (1, 0, 0), (0, 1, 1))])
    config = PoseConfig(optimizer="lm", steps=6, n_rays=128)
    batched = estimate_pose(field, target, starts, config, render_config, seeds=5)
    for k in range(3):
        single = estimate_pose(field, target, starts[k], config, render_config, seeds=5)
        torch.testing.assert_close(batched.trajectory.c2w[:, 0, k], single.trajectory.c2w[:, 0, 0], atol=2e-5, rtol=0)


def test_lm_step_respects_the_trust_region():
    H = torch.eye(6, dtype=torch.float64)[None] * 1e-6  # almost no curvature: the raw step would be huge
    g = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    xi = lm_step(torch.zeros(1, 6), H, g, torch.tensor([1e-3]), max_rot=0.1, max_trans=0.2)
    T = se3.se3_exp(xi.double())
    assert float(se3.rotation_angle(T[..., :3, :3])) <= 0.1 + 1e-6
    assert float(T[0, :3, 3].norm()) <= 0.2 + 1e-6


def test_lm_options_are_validated():
    with pytest.raises(ValueError, match="optimizer"):
        PoseConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="mape"):
        PoseConfig(optimizer="lm", loss="mape")
    with pytest.raises(ValueError, match="lm_steps"):
        PoseConfig(optimizer="adam+lm", steps=10, lm_steps=0)


def test_lm_on_an_unseen_view_direction_still_converges(field, render_config):
    """A second camera (looking from below) so the result does not hinge on one view."""
    from inerf.pose.solver import PoseTarget
    from inerf.render.renderer import render_image
    from pose_scene import FOCAL, H, W

    gt = look_at((-1.5, 3.2, -2.0))
    out = render_image(field, gt.float(), H, W, FOCAL, FOCAL, W / 2, H / 2, render_config)
    target = PoseTarget(image=out.rgb, fx=FOCAL, fy=FOCAL, cx=W / 2, cy=H / 2)
    result = estimate_pose(field, target, perturb(gt, 12.0, 0.08), LM, render_config, seeds=1)
    rot, trans = errors(result.c2w[0], gt)
    assert rot < 0.1 and trans < 0.005
