"""Calibration of the pose covariance over many noise draws: where the truth is known and the noise is
synthetic and independent from pixel to pixel, the 95% ellipsoid of the 6-dof twist must hold about 95% of
the true poses, both at the whole image's optimum (Gauss-Newton form) and at what the LM solver returns from
a few random pixels per step (robust form, with the solver's scatter)."""

from __future__ import annotations

import pytest
import torch
from pose_scene import FOCAL, H, W, perturb

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.pose.config import PoseConfig
from inerf.pose.problem import PoseTarget
from inerf.pose.solver import estimate_pose
from inerf.pose.uncertainty import UncertaintyConfig, chi2_quantile, pixel_terms, pose_uncertainty
from inerf.render.model import Model
from inerf.render.renderer import render_image

SEEDS = 40
NOISE = 0.05
"""Per-channel standard deviation of the i.i.d. Gaussian noise added to the exact render."""


@pytest.fixture(scope="module")
def clean(field, render_config, gt_c2w):
    camera = Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W)
    return render_image(field, camera.with_c2w(gt_c2w.float()), render_config).rgb, camera


def _noisy(clean, seed: int) -> PoseTarget:
    image, camera = clean
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    return PoseTarget(image=image + NOISE * noise, camera=camera)


def _inside(m2: list[float]) -> float:
    return sum(m <= chi2_quantile(0.95, 6) for m in m2) / len(m2)


def test_gauss_newton_ellipsoid_holds_95_percent_at_the_optimum(field, render_config, gt_c2w, clean):
    """Gauss-Newton on every pixel converges to the noisy image's optimum, whose error is N(0, s^2 H^-1) to
    first order: its 95% ellipsoid holds about 95% of 40 draws (binomial sd 3.4%)."""
    model = Model(field, None, render_config)
    pix = torch.arange(H * W)
    m2 = []
    for seed in range(SEEDS):
        target = _noisy(clean, seed)
        c2w = gt_c2w.clone()
        for _ in range(2):
            H_i, u_i, _ = pixel_terms(model, target, c2w, pix)
            c2w = se3.se3_exp(-torch.linalg.solve(H_i.sum(0), u_i.sum(0))) @ c2w
        config = UncertaintyConfig(rays=768, tiles=4, estimator="gauss_newton")
        m2.append(pose_uncertainty(model, target, c2w, config, seed=seed).mahalanobis2(gt_c2w))
    print(
        f"gauss-newton at the optimum: {100 * _inside(m2):.0f}% inside, median m2 {torch.tensor(m2).median():.2f}"
    )
    assert 0.8 <= _inside(m2) <= 1.0
    # Not merely huge: the median squared distance is near chi-square(6)'s, 5.35.
    assert 3.0 < float(torch.tensor(m2).median()) < 9.0


def test_robust_ellipsoid_holds_95_percent_of_lm_solves_on_random_pixels(field, render_config, gt_c2w, clean):
    """LM with 256 random pixels per step (of 2304) returns the optimum of its last 256 pixels, which scatters
    about 3 times wider than the whole image's optimum. The robust covariance with the solver's settings holds
    80-100% of 40 draws; the optimum's own covariance (Gauss-Newton) misses most of them: what the real
    scenes showed as 0-10% containment with sigmas of the right size (benchmarks/RESULTS_beyond.md)."""
    model = Model(field, None, render_config)
    config = PoseConfig(optimizer="lm", steps=6, n_rays=256)
    start = perturb(gt_c2w, 1.0, 0.01)
    robust, gauss_newton = [], []
    for seed in range(SEEDS):
        target = _noisy(clean, seed)
        res = estimate_pose(model, target, start, config, seeds=[seed], progress=False)
        unc = pose_uncertainty(
            model, target, res.c2w[0], UncertaintyConfig(rays=512, tiles=4), seed=seed, solver=config
        )
        assert unc.solver_pixels == 256
        robust.append(unc.mahalanobis2(gt_c2w))
        gauss_newton.append(unc.with_estimator("gauss_newton").mahalanobis2(gt_c2w))
    print(
        f"LM on 256 pixels: robust {100 * _inside(robust):.0f}% inside (median m2 {torch.tensor(robust).median():.2f}),"
        f" gauss-newton {100 * _inside(gauss_newton):.0f}%"
    )
    assert 0.8 <= _inside(robust) <= 1.0
    assert float(torch.tensor(robust).median()) > 1.5  # not calibrated by being enormous
    assert _inside(gauss_newton) < 0.5
