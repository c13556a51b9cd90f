"""The Levenberg-Marquardt solver: its Gauss-Newton system against autograd, convergence, batching."""

from __future__ import annotations

import pytest
import torch
from pose_scene import look_at, perturb

from inerf.geometry import se3
from inerf.pose.config import AdamConfig, BlurConfig, LMConfig, PoseConfig
from inerf.pose.problem import Problem
from inerf.pose.solver import estimate_pose, lm_step
from inerf.pose.steps import Schedule
from inerf.render.model import Model

LM = PoseConfig(optimizer="lm", steps=25, n_rays=384)


def errors(c2w, gt):
    return float(se3.rotation_error_deg(c2w, gt)), float(se3.translation_error(c2w, gt))


@pytest.mark.parametrize(("loss", "sigma"), [("mse", 0.0), ("huber", 0.0), ("mse", 2.0)])
def test_gauss_newton_gradient_equals_autograd(field, render_config, scene, loss, sigma):
    """``J^T W r`` of :meth:`Problem.linearize` is the loss gradient that autograd gives for a left update
    at the current pose (up to the loss's constant factor), so the hand-chained ray Jacobian is right."""
    target, gt = scene
    init = perturb(gt, 8.0, 0.05).float()
    config = PoseConfig(n_rays=200, loss=loss, huber_delta=0.02)
    problem = Problem(Model(field, None, render_config), target, config)
    pix = problem.sampler.sample(torch.tensor([3]), 0)
    xi = torch.zeros(1, 1, 6)
    loss_a, grad = problem.evaluate(xi, init[None, None], pix, need_grad=True, sigma=sigma, step=7)
    loss_b, H, g = problem.linearize(xi, init[None, None], pix, sigma=sigma, step=7)
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
    result = estimate_pose(Model(field, None, render_config), target, init, LM, seeds=0)
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
    adam = PoseConfig(steps=60, n_rays=384, adam=AdamConfig(lr=0.02))
    hybrid = PoseConfig(
        steps=70, n_rays=384, adam=AdamConfig(lr=0.02), optimizer="adam+lm", lm=LMConfig(steps=10)
    )
    r_adam = estimate_pose(Model(field, None, render_config), target, init, adam, seeds=0)
    r_hyb = estimate_pose(Model(field, None, render_config), target, init, hybrid, seeds=0)
    # The first 60 steps are the same Adam steps.
    torch.testing.assert_close(r_hyb.trajectory.c2w[60], r_adam.trajectory.c2w[60])
    assert errors(r_hyb.c2w[0], gt)[0] < 0.5 * errors(r_adam.c2w[0], gt)[0]
    assert errors(r_hyb.c2w[0], gt)[0] < 0.1


def test_lm_batched_hypotheses_equal_single_solves(field, render_config, scene):
    target, gt = scene
    starts = torch.stack([perturb(gt, 6.0, 0.03, axis=a) for a in ((0.3, -0.5, 0.8), (1, 0, 0), (0, 1, 1))])
    config = PoseConfig(optimizer="lm", steps=6, n_rays=128)
    batched = estimate_pose(Model(field, None, render_config), target, starts, config, seeds=5)
    for k in range(3):
        single = estimate_pose(Model(field, None, render_config), target, starts[k], config, seeds=5)
        torch.testing.assert_close(
            batched.trajectory.c2w[:, 0, k], single.trajectory.c2w[:, 0, 0], atol=2e-5, rtol=0
        )


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
    with pytest.raises(ValueError, match="lm steps"):
        PoseConfig(optimizer="adam+lm", steps=10, lm=LMConfig(steps=0))


def test_lm_on_an_unseen_view_direction_still_converges(field, render_config):
    """A second camera (looking from below) so the result does not hinge on one view."""
    from pose_scene import FOCAL, H, W

    from inerf.geometry.cameras import Cameras
    from inerf.pose.solver import PoseTarget

    gt = look_at((-1.5, 3.2, -2.0))
    camera = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    out = Model(field, None, render_config).render_image(camera.with_c2w(gt.float()))
    target = PoseTarget(image=out.rgb, camera=camera)
    result = estimate_pose(Model(field, None, render_config), target, perturb(gt, 12.0, 0.08), LM, seeds=1)
    rot, trans = errors(result.c2w[0], gt)
    assert rot < 0.1 and trans < 0.005


def test_blurred_loss_is_the_mean_of_the_ring_rays_against_the_blurred_target(field, render_config, scene):
    from torchvision.transforms.functional import gaussian_blur

    from inerf.rays.rays import rays_from_pixels
    from inerf.render.renderer import render_rays

    target, gt = scene
    config = PoseConfig(n_rays=64, blur=BlurConfig(sigma=3.0, steps=10, rays=4))
    assert [config.blur.at(s) for s in (0, 5, 10, 50)] == [3.0, 1.5, 0.0, 0.0]
    problem = Problem(Model(field, None, render_config), target, config)
    pix = problem.sampler.sample(torch.tensor([1]), 0)
    c2w = perturb(gt, 3.0, 0.02).float()
    loss, _ = problem.evaluate(torch.zeros(1, 1, 6), c2w[None, None], pix, need_grad=False, sigma=1.5, step=3)
    # By hand: 4 rays per pixel on a ring of radius sqrt(2) * 1.5, turned by 3 golden angles.
    angles = 3 * 2.399963229728653 + torch.arange(4) * torch.pi / 2
    ring = 1.5 * 2**0.5 * torch.stack([angles.cos(), angles.sin()], -1)
    uv = torch.stack([pix[0] % target.width, pix[0] // target.width], -1).float()
    rays = rays_from_pixels((uv[:, None] + ring).reshape(-1, 2), c2w, *target.camera.intrinsics())
    rgb = render_rays(field, rays, render_config).rgb.reshape(-1, 4, 3).mean(1)
    blurred = (
        gaussian_blur(target.image.permute(2, 0, 1), [11, 11], [1.5, 1.5]).permute(1, 2, 0).reshape(-1, 3)
    )
    expected = (rgb - blurred[pix[0]]).square().mean()
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-4)


def test_coarse_to_fine_blur_still_converges_exactly(field, render_config, scene):
    """The blur only shapes the first steps: the solve ends on the sharp image at the same accuracy."""
    target, gt = scene
    config = PoseConfig(
        optimizer="adam+lm",
        steps=90,
        lm=LMConfig(steps=15),
        n_rays=256,
        adam=AdamConfig(lr=0.02),
        blur=BlurConfig(sigma=4.0, steps=50),
    )
    result = estimate_pose(
        Model(field, None, render_config), target, perturb(gt, 12.0, 0.05), config, seeds=0
    )
    rot, trans = errors(result.c2w[0], gt)
    assert rot < 0.1 and trans < 0.005


def test_lm_average_returns_the_mean_of_the_last_iterates(field, render_config, scene):
    target, gt = scene
    init = perturb(gt, 15.0, 0.05)  # few steps from far: the last iterates still differ
    plain = PoseConfig(optimizer="lm", steps=4, n_rays=64)
    last = estimate_pose(Model(field, None, render_config), target, init, plain, seeds=2)
    averaged = estimate_pose(
        Model(field, None, render_config),
        target,
        init,
        PoseConfig(optimizer="lm", steps=4, n_rays=64, lm=LMConfig(average=4)),
        seeds=2,
    )
    # The same iterates; only the returned pose differs: the mean of the last 4 in the tangent space at the last.
    torch.testing.assert_close(averaged.trajectory.c2w[:-1], last.trajectory.c2w[:-1])
    T_last = last.trajectory.c2w[-1, 0, 0]
    iterates = [*last.trajectory.c2w[-4:-1, 0, 0], T_last]
    mean = torch.stack([se3.se3_log(T @ se3.inverse(T_last)) for T in iterates]).mean(0)
    expected = se3.se3_exp(mean) @ T_last
    torch.testing.assert_close(averaged.c2w[0], expected, atol=1e-5, rtol=0)
    assert (averaged.c2w[0] - T_last).abs().max() > 1e-4  # it did average something


def test_lm_decay_turns_the_steps_into_a_running_mean(field, render_config, scene):
    config = PoseConfig(optimizer="adam+lm", steps=20, lm=LMConfig(steps=10, decay=0.5))
    # LM starts at step 10: full steps while 0.5 * j <= 1, then 1 / (0.5 j).
    lm = Schedule.from_config(config, torch.device("cpu")).lm
    assert lm.start == 10
    assert [lm.fraction(s) for s in (10, 11, 12, 13, 14, 19)] == [1.0, 1.0, 1.0, 2 / 3, 0.5, 2 / 9]
    assert Schedule.from_config(PoseConfig(optimizer="lm"), torch.device("cpu")).lm.fraction(7) == 1.0  # off
    target, gt = scene
    result = estimate_pose(
        Model(field, None, render_config),
        target,
        perturb(gt, 10.0, 0.05),
        PoseConfig(optimizer="lm", steps=25, n_rays=384, lm=LMConfig(decay=0.2)),
        seeds=0,
    )
    rot, trans = errors(result.c2w[0], gt)
    assert rot < 0.05 and trans < 0.002
    # A partial step moves a fraction of the full one from the same point.
    H = torch.eye(6, dtype=torch.float64)[None]
    g = torch.full((1, 6), -0.01, dtype=torch.float64)
    full = lm_step(torch.zeros(1, 6), H, g, torch.tensor([0.0]), 1.0, 1.0)
    part = lm_step(torch.zeros(1, 6), H, g, torch.tensor([0.0]), 1.0, 1.0, fraction=0.25)
    torch.testing.assert_close(part, 0.25 * full, atol=1e-7, rtol=1e-4)
