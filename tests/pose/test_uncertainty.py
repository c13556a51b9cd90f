"""Pose uncertainty: the Gauss-Newton covariance against a finite-difference Hessian, the sandwich estimate,
degenerate views, the ellipsoid test."""

from __future__ import annotations

import math

import pytest
import torch
from pose_scene import FOCAL, H, TexturedBall, W, perturb

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.pose.config import PoseConfig
from inerf.pose.problem import PoseTarget, Problem
from inerf.pose.uncertainty import (
    PoseUncertainty,
    UncertaintyConfig,
    chi2_quantile,
    covariance_from_terms,
    pixel_terms,
    pose_uncertainty,
    tile_pixels,
)
from inerf.render.model import Model
from inerf.render.renderer import render_image


class PlainBall(TexturedBall):
    """The same soft ball in one flat colour: seen from anywhere on a sphere around it, it looks the same."""

    def forward(self, xyz, viewdirs=None):
        rgb, sigma = super().forward(xyz, viewdirs)
        return torch.full_like(rgb, 0.3), sigma


def _target(field, render_config, c2w, noise: float = 0.0, seed: int = 0) -> PoseTarget:
    camera = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    image = render_image(field, camera.with_c2w(c2w.float()), render_config).rgb
    if noise:
        image = image + noise * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    return PoseTarget(image=image, camera=camera)


def _fd_hessian(model, target, c2w, h: float = 1e-3) -> torch.Tensor:
    """Central differences of the autograd gradient of ``f(xi) = 1/2 sum_i |r_i(exp(xi) c2w)|^2`` over every
    pixel of the image, at ``xi = 0``: ``[6, 6]`` float64."""
    problem = Problem(model, target, PoseConfig(n_rays=1, fast=False))
    n = target.height * target.width
    pix = torch.arange(n)[None]
    c2w0 = c2w.float()[None, None]

    def grad(xi):
        # The solver's loss is mean_i mean_c r^2 = 2 f / (3 n).
        _, g = problem.evaluate(xi.float()[None, None], c2w0, pix, need_grad=True)
        return g[0, 0].double() * (3 * n / 2)

    cols = []
    for j in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[j] = h
        cols.append((grad(e) - grad(-e)) / (2 * h))
    Hfd = torch.stack(cols, dim=1)
    return 0.5 * (Hfd + Hfd.T)


def _all_pixels(target):
    return tile_pixels(target.height, target.width, 4, target.height * target.width)


def test_tile_sample_is_stratified_and_weighted():
    pix, tile, weight, area = tile_pixels(10, 13, 3, 30, seed=1)
    assert area.sum() == 130 and len(area) == 9
    assert pix.unique().numel() == pix.numel()  # without replacement
    for t in range(9):  # weights scale each tile's sample to the tile's area
        assert float(weight[tile == t].sum()) == pytest.approx(float(area[t]))
    pix_all, _, w_all, _ = tile_pixels(10, 13, 3, 10_000)
    assert sorted(pix_all.tolist()) == list(range(130)) and torch.all(w_all == 1)


def test_tile_sums_never_fall_below_independent_noise():
    """The sandwich's meat is raised to at least ``s^2 H`` in every direction (a direction few tiles see can
    come out at zero), and left alone where it is already larger."""
    from inerf.pose.uncertainty import _at_least

    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    F = A @ A.T + 0.1 * torch.eye(6, dtype=torch.float64)
    torch.testing.assert_close(_at_least(torch.zeros(6, 6, dtype=torch.float64), F), F)
    torch.testing.assert_close(_at_least(3 * F, F), 3 * F)
    v = torch.linalg.eigh(F).eigenvectors[:, :1]
    M = 5 * F - 4.9 * (F @ v) @ (F @ v).T / float(v.T @ F @ v)  # below F along one direction only
    out = _at_least(M, F)
    assert (
        float(torch.linalg.eigvalsh(out - F).min()) > -1e-9
        and float(torch.linalg.eigvalsh(out - M).min()) > -1e-9
    )


def test_chi2_quantiles():
    assert chi2_quantile(0.95, 6) == pytest.approx(12.591587, abs=1e-4)
    assert chi2_quantile(0.95, 3) == pytest.approx(7.814728, abs=1e-4)
    assert chi2_quantile(0.5, 2) == pytest.approx(2 * math.log(2), abs=1e-6)


def test_gauss_newton_matrix_equals_the_finite_difference_hessian(field, render_config, gt_c2w):
    """At an exact fit (the target rendered at the pose) the Hessian of ``1/2 sum |r|^2`` is ``J^T J``."""
    model = Model(field, None, render_config)
    target = _target(field, render_config, gt_c2w)
    pix, tile, weight, area = _all_pixels(target)
    H_i, u_i, sq_i = pixel_terms(model, target, gt_c2w, pix)
    Hgn, s2, *_ = covariance_from_terms(H_i, u_i, sq_i, tile, weight, area)
    Hfd = _fd_hessian(model, target, gt_c2w)
    assert s2 < 1e-10  # an exact fit
    scale = torch.linalg.eigvalsh(Hgn)[-1]
    assert torch.linalg.eigvalsh(Hgn)[0] > 1e-4 * scale  # a real test: every direction is constrained
    torch.testing.assert_close(Hgn / scale, Hfd / scale, atol=2e-3, rtol=0)


def test_covariance_equals_residual_variance_times_the_inverse_fd_hessian(field, render_config, gt_c2w):
    """With pixel noise, ``Cov = s^2 H^-1`` matches ``s^2`` times the inverse of the finite-difference
    Hessian of the noisy objective (whose second-order term the Gauss-Newton matrix leaves out, hence the
    tolerance), at the pose that fits the noisy image best."""
    model = Model(field, None, render_config)
    noise = 0.03
    target = _target(field, render_config, gt_c2w, noise=noise, seed=5)
    # The estimate: Gauss-Newton steps from the truth on all pixels converge to the noisy optimum.
    c2w = gt_c2w.clone()
    pix = _all_pixels(target)[0]
    for _ in range(3):
        H_i, u_i, _ = pixel_terms(model, target, c2w, pix)
        delta = -torch.linalg.solve(H_i.sum(0), u_i.sum(0))
        c2w = se3.se3_exp(delta) @ c2w
    unc = pose_uncertainty(
        model, target, c2w, UncertaintyConfig(rays=H * W, tiles=4, estimator="gauss_newton")
    )
    assert unc.residual_variance == pytest.approx(noise**2, rel=0.1)  # the noise we added, per channel
    cov_fd = unc.residual_variance * torch.linalg.inv(_fd_hessian(model, target, c2w))
    d = cov_fd.diagonal().sqrt()
    torch.testing.assert_close(
        unc.covariance / torch.outer(d, d), cov_fd / torch.outer(d, d), atol=0.05, rtol=0
    )
    # The sandwich estimate agrees with it for independent noise (up to its own sampling noise).
    ratio = torch.trace(unc.covariance_sandwich) / torch.trace(unc.covariance_gauss_newton)
    assert 0.5 < float(ratio) < 2.0
    # A fraction of a 48 x 48 image's pixel (1 pixel ~ 0.8 degrees) and of the 4-unit camera distance.
    assert 0.01 < unc.rotation_sigma_deg < 0.5 and unc.translation_sigma < 0.05


def test_sample_size_does_not_bias_the_estimates(field, render_config, gt_c2w):
    """Sums over a sample are scaled to the whole image: 1/3 of the pixels give about the same covariances."""
    model = Model(field, None, render_config)
    target = _target(field, render_config, gt_c2w, noise=0.03, seed=2)
    full = pose_uncertainty(model, target, gt_c2w, UncertaintyConfig(rays=H * W, tiles=4))
    part = pose_uncertainty(model, target, gt_c2w, UncertaintyConfig(rays=H * W // 3, tiles=4), seed=3)
    assert part.pixels < H * W / 2
    assert part.residual_variance == pytest.approx(full.residual_variance, rel=0.1)
    for name in ("covariance_gauss_newton", "covariance_sandwich"):
        r = float(torch.trace(getattr(part, name)) / torch.trace(getattr(full, name)))
        assert 0.6 < r < 1.6, name


def test_a_symmetric_textureless_view_shows_large_uncertainty(render_config, gt_c2w):
    """A flat-coloured ball looks the same from anywhere around it: the rotation about its centre is not
    observable, and the covariance says so instead of reporting a confident pose; the textured ball is
    pinned to a fraction of a degree."""
    results = {}
    for name, fld in (("textured", TexturedBall()), ("plain", PlainBall())):
        model = Model(fld, None, render_config)
        target = _target(fld, render_config, gt_c2w, noise=0.02, seed=1)
        results[name] = pose_uncertainty(model, target, gt_c2w, UncertaintyConfig(rays=1024))
    assert results["textured"].rotation_sigma_deg < 0.5
    assert results["plain"].rotation_sigma_max_deg > 100 * results["textured"].rotation_sigma_max_deg
    assert results["plain"].rotation_sigma_max_deg > 10.0


def test_robust_covariance_sees_an_estimate_short_of_the_optimum(field, render_config, gt_c2w):
    """A pose 0.3 degrees / 0.01 off an exact fit: the residuals there are small and look like noise, so the
    Gauss-Newton ellipsoid sits tight around the returned pose and misses the truth; the robust one adds the
    Gauss-Newton step still left to the optimum and contains it."""
    model = Model(field, None, render_config)
    target = _target(field, render_config, gt_c2w, noise=0.01, seed=4)
    est = perturb(gt_c2w, 0.3, 0.01)
    unc = pose_uncertainty(model, target, est, UncertaintyConfig(rays=1024, tiles=4))
    assert unc.estimator == "robust" and unc.inside(gt_c2w)
    assert not unc.with_estimator("gauss_newton").inside(gt_c2w)
    assert torch.trace(unc.covariance) > torch.trace(unc.covariance_sandwich)
    # The remaining step points at the truth: the estimate moved by it is much closer.
    moved = se3.se3_exp(unc.step) @ est
    assert float(se3.rotation_error_deg(moved, gt_c2w)) < 0.5 * 0.3  # noise and a sample of 1024 pixels


def test_mahalanobis_and_ellipsoid():
    """The ellipsoid test uses the error twist from the estimate to the truth."""
    cov = torch.diag(torch.tensor([1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6], dtype=torch.float64))
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([0.0, 0.0, -4.0])
    zero = torch.zeros(6, 6, dtype=torch.float64)
    unc = PoseUncertainty(
        c2w, cov, cov, cov, zero, torch.zeros(6, dtype=torch.float64), torch.eye(6), 1e-4, 10, 10
    )
    truth = se3.se3_exp(torch.tensor([0.02, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)) @ c2w
    assert unc.mahalanobis2(truth) == pytest.approx(4.0, rel=1e-6)  # 2 sigma along one axis
    assert unc.inside(truth)
    far = se3.se3_exp(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.005, 0.0], dtype=torch.float64)) @ c2w
    assert unc.mahalanobis2(far) > 12.6 and not unc.inside(far)  # 5 sigma in rotation
    assert unc.rotation_sigma_deg == pytest.approx(math.degrees(math.sqrt(3e-6)), rel=1e-6)
    # The camera centre at (0, 0, -4) moves by rho - c x phi: rotation noise adds 16 * 1e-6 on two axes.
    assert unc.translation_sigma == pytest.approx(math.sqrt(3e-4 + 2 * 16e-6), rel=1e-6)
    assert set(unc.to_json()) >= {"rotation_sigma_deg", "translation_sigma", "covariance", "estimator"}


def test_estimate_error_is_covered_by_its_uncertainty(field, render_config, scene):
    """End to end on an exact scene with pixel noise: the covariance of an LM estimate covers its error."""
    from inerf.pose.solver import estimate_pose

    gt = scene[1]
    target = _target(field, render_config, gt, noise=0.05, seed=9)
    model = Model(field, None, render_config)
    res = estimate_pose(
        model, target, perturb(gt, 5.0, 0.05), PoseConfig(optimizer="lm", steps=12, n_rays=H * W)
    )
    unc = pose_uncertainty(model, target, res.c2w[0], UncertaintyConfig(rays=H * W, estimator="gauss_newton"))
    assert unc.mahalanobis2(gt) < chi2_quantile(0.999, 6)
    assert float(se3.rotation_error_deg(res.c2w[0], gt)) < 5 * unc.rotation_sigma_deg + 1e-3
