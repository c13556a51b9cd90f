"""How sure is a pose estimate: a 6x6 covariance from the Gauss-Newton matrix at the solution.

Model. Near the estimate ``T`` the colour residuals of the pixels are linear in a left perturbation
``delta`` (se3 order (rho, phi), ``T_true = exp(delta) @ T``): ``r_i(delta) = r_i + J_i delta`` with the
``[3, 6]`` Jacobians of :meth:`inerf.pose.problem.Problem.linearize`. Least squares over the ``N`` pixels of
the image then has the information matrix ``H = sum_i J_i^T J_i``, and

* **Gauss-Newton** (independent pixel noise): ``Cov = s^2 H^-1`` with the residual variance per colour
  channel ``s^2 = sum_i |r_i|^2 / (3 N - 6)``. It is the inverse Hessian of ``sum |r|^2 / (2 s^2)`` at a
  solution that fits (tested against finite differences).
* **Sandwich** (cluster-robust over image tiles): ``Cov = H^-1 M H^-1`` with ``M = B / (B - 1)
  sum_b U_b U_b^T``, where ``U_b = sum_{i in tile b} J_i^T r_i - (A_b / N) g`` is the pull of tile ``b``
  (of ``A_b`` pixels) on the pose, less its share of the whole gradient ``g`` (zero at the optimum).
  Residuals of a real field are not independent from pixel to pixel (a misplaced edge errs along its
  whole length), which the Gauss-Newton form ignores and this one measures: when different parts of the
  image pull the pose different ways, the covariance grows. For independent noise both agree.
* **Solver scatter**: the pose a solver returns is not the optimum of the whole image: each LM step fits
  the ``n`` random pixels of that step exactly, so the last iterate is the optimum of ``n`` pixels (of the
  mean of ``A`` such fits with Polyak averaging). Its offset from the whole image's optimum is
  ``-H^-1 (g_n - g)``, the gradient of a random sample of ``n`` of the ``N`` pixels, hence
  ``Cov_solver = H^-1 (N^2 / (A n)) (1 - n / N) S_u H^-1`` with ``S_u`` the per-pixel covariance of
  ``u_i = J_i^T r_i``. For independent noise that is ``(N / n - 1) s^2 H^-1``: with 2048 rays on an
  800 x 800 image, 300 times the optimum's own covariance. It needs the solver's settings
  (``solver=`` of :func:`pose_uncertainty`); without them the estimate is taken as the optimum (no term).
* **Robust** (reported by default): the sandwich plus the solver scatter plus ``d d^T`` for the
  Gauss-Newton step still left to the optimum, ``d = -H^-1 g`` with ``g = sum_i J_i^T r_i`` (less the part
  of ``d d^T`` that the pixel sample's noise in ``g`` and the solver scatter explain; only when ``d`` lies
  outside the 99% ellipsoid of that noise, otherwise it is one draw of the noise already counted). A solve stopped short
  of the optimum is off by about ``d``, which neither the sandwich nor the Gauss-Newton form sees: they
  describe the optimum, not the pose that was returned.

The calibration this buys (the 95% ellipsoid of the 6-dof twist holding about 95% of the true poses) is
tested over many noise seeds with the real solver (``tests/pose/test_uncertainty_calibration.py``). Before
the solver term, a solve with 64 rays per step on a 48 x 48 image put 60% of the true poses inside the
robust ellipsoid (the rank-one ``d d^T`` is one noisy draw of the scatter: it covers one direction only),
the sandwich 20% and the Gauss-Newton form 0%; the marginal rotation and translation sigmas looked right all
along, because the misses sit in the thinnest directions of the ellipsoid (the image pins the object's
projected position far more tightly than a 2048-pixel fit reproduces).

Only a sample of ``rays`` pixels is linearised (stratified over the tiles); sums over a tile are scaled to
the tile's area, and the sandwich subtracts the sampling variance of each tile's sum, so neither estimate
depends on how many pixels were sampled (only their noise does).

Reported. The rotation part ``phi`` is a world-frame rotation vector: the geodesic rotation error is
``|phi|``. The camera centre moves by ``rho - c x phi`` (``c`` the centre), so its ``3 x 3`` covariance is
``A Cov A^T`` with ``A = [I, -[c]x]``; the translation error (distance between centres) is its length.
``rotation_sigma_deg`` and ``translation_sigma`` are the root-mean-square lengths (``sqrt`` of the trace),
directly comparable with the rotation and translation errors; the ``*_max`` values are the standard
deviations along the worst axis. A direction no pixel constrains (a textureless target, the roll of a
symmetric object about its axis) gets a tiny eigenvalue in ``H``, floored so that its variance is huge but
finite.

Example::

    unc = pose_uncertainty(run.model, target, result.c2w[0])
    unc.rotation_sigma_deg, unc.translation_sigma      # 1-sigma (rms) rotation in degrees, centre in units
    unc.inside(gt_c2w)                                 # is the true pose inside the 95% ellipsoid?
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

from inerf.geometry import se3
from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.problem import PoseTarget, Problem, frozen_fields
from inerf.render.model import Model

__all__ = [
    "ESTIMATORS",
    "PoseUncertainty",
    "UncertaintyConfig",
    "chi2_quantile",
    "covariance_from_terms",
    "pixel_terms",
    "pose_uncertainty",
    "solver_pixels",
    "tile_pixels",
]

Estimator = Literal["robust", "gauss_newton"]
ESTIMATORS: tuple[str, ...] = get_args(Estimator)
"""Reported covariance: ``robust`` (the tile sandwich plus the remaining-step term) or ``gauss_newton``
(independent pixel noise, ``s^2 H^-1``); see the module docstring."""


@dataclass
class UncertaintyConfig:
    """How the covariance of an estimate is computed."""

    rays: int = 4096
    """Pixels linearised at the estimate (all of them when the image has fewer)."""
    tiles: int = 8
    """The image is cut into ``tiles x tiles`` tiles for the sandwich estimate and the stratified sample."""
    estimator: Estimator = "robust"
    """Which covariance is reported: one of :data:`ESTIMATORS` (both are always computed)."""
    level: float = 0.95
    """Probability mass of the confidence ellipsoid of :meth:`PoseUncertainty.inside`."""

    def __post_init__(self) -> None:
        if self.rays < 1 or self.tiles < 1:
            raise ValueError(f"rays and tiles must be >= 1, got {self.rays} and {self.tiles}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; expected one of {ESTIMATORS}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")


def chi2_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of a chi-square distribution with ``dof`` degrees of freedom (bisection on the
    regularised incomplete gamma function; ``chi2_quantile(0.95, 6) = 12.59``)."""
    a = torch.tensor(dof / 2.0, dtype=torch.float64)
    lo, hi = 0.0, max(10.0, 10.0 * dof)
    while float(torch.special.gammainc(a, torch.tensor(hi / 2, dtype=torch.float64))) < p:
        hi *= 2
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(torch.special.gammainc(a, torch.tensor(mid / 2, dtype=torch.float64))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tile_pixels(height: int, width: int, tiles: int, rays: int, seed: int = 0):
    """A stratified sample of pixels: ``ceil(rays / T)`` per tile of a ``tiles x tiles`` grid (``T`` tiles;
    all of a tile's pixels when it has fewer), without replacement.

    Returns:
        ``(pix [n], tile [n], weight [n], area [T])``: flat row-major pixel indices, the tile of each,
        its weight ``area / sampled`` (sums over a tile scale by it to the whole tile) and each tile's area.
    """
    tiles = max(1, min(tiles, height, width))
    rows = torch.linspace(0, height, tiles + 1).round().long()
    cols = torch.linspace(0, width, tiles + 1).round().long()
    per = math.ceil(rays / tiles**2)
    gen = torch.Generator().manual_seed(seed)
    pix, tile, weight, area = [], [], [], []
    for a in range(tiles):
        for b in range(tiles):
            r = torch.arange(rows[a], rows[a + 1])
            c = torch.arange(cols[b], cols[b + 1])
            idx = (r[:, None] * width + c[None, :]).reshape(-1)
            m = min(per, idx.numel())
            pick = idx[torch.randperm(idx.numel(), generator=gen)[:m]]
            t = len(area)
            pix.append(pick)
            tile.append(torch.full((m,), t))
            weight.append(torch.full((m,), idx.numel() / m, dtype=torch.float64))
            area.append(idx.numel())
    return torch.cat(pix), torch.cat(tile), torch.cat(weight), torch.tensor(area, dtype=torch.float64)


def pixel_terms(model: Model, target: PoseTarget, c2w: torch.Tensor, pix: torch.Tensor):
    """Per-pixel Gauss-Newton terms at the pose ``c2w`` ``[4, 4]`` for pixels ``pix`` ``[n]`` (flat indices):
    ``(H_i [n, 6, 6] = J_i^T J_i, u_i [n, 6] = J_i^T r_i, sq_i [n] = |r_i|^2)`` in float64 (MSE, no blur),
    for a left perturbation ``exp(delta) @ c2w``.

    Each pixel is linearised as its own one-pixel problem of :meth:`Problem.linearize` (the same
    Jacobians as the LM solver's), so its terms come back separately rather than summed.
    """
    device = target.image.device
    n = pix.numel()
    config = PoseConfig(n_rays=1, sampling=SamplingConfig("random"), loss="mse", fast=False)
    with frozen_fields(model.coarse, model.fine):
        problem = Problem(model, target, config)
        xi = torch.zeros(n, 1, 6, device=device)
        c2w0 = c2w.to(device=device, dtype=torch.float32).reshape(1, 1, 4, 4).expand(n, 1, 4, 4)
        loss, H, g = problem.linearize(xi, c2w0, pix.to(device).reshape(n, 1))
    # loss is the per-pixel mean over the 3 channels of r^2.
    return H[:, 0].double().cpu(), g[:, 0].double().cpu(), 3.0 * loss[:, 0].double().cpu()


def _psd_inverse(H: torch.Tensor, rel_floor: float = 1e-12) -> torch.Tensor:
    """Inverse of a symmetric positive semi-definite ``[6, 6]`` matrix with its eigenvalues floored at
    ``rel_floor`` times the largest: a direction nothing constrains gets a huge, finite variance."""
    H = 0.5 * (H + H.T)
    lam, V = torch.linalg.eigh(H)
    floor = rel_floor * lam.abs().max().clamp_min(1e-300)
    return (V / lam.clamp_min(floor)) @ V.T


def _psd(M: torch.Tensor) -> torch.Tensor:
    """The nearest positive semi-definite matrix (negative eigenvalues set to 0)."""
    M = 0.5 * (M + M.T)
    lam, V = torch.linalg.eigh(M)
    return (V * lam.clamp_min(0.0)) @ V.T


def _at_least(M: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """``M`` raised to at least ``F`` in every direction (both symmetric PSD ``[6, 6]``): in the basis where
    ``F`` is the identity, eigenvalues of ``M`` below 1 become 1. The tile sums see a direction only through
    the few tiles that constrain it, so their estimate can fall to zero there; it should never fall below
    what independent pixel noise alone gives (``F = s^2 H``)."""
    lam, V = torch.linalg.eigh(0.5 * (F + F.T))
    keep = lam > 1e-12 * lam.abs().max().clamp_min(1e-300)
    if not bool(keep.any()):
        return M
    W = V[:, keep] * lam[keep].sqrt()  # F = W W^T on its range
    W_pinv = torch.linalg.pinv(W)
    mu, U = torch.linalg.eigh(0.5 * (W_pinv @ M @ W_pinv.T + (W_pinv @ M @ W_pinv.T).T))
    raised = W @ ((U * mu.clamp_min(1.0)) @ U.T) @ W.T
    # Directions outside F's range (nothing constrains them) keep M's own value there.
    P = W @ W_pinv
    rest = M - P @ M @ P
    return raised + 0.5 * (rest + rest.T)


def covariance_from_terms(H_i, u_i, sq_i, tile, weight, area, solver_pixels: float = 0.0):
    """The estimates of the module docstring from per-pixel terms (see :func:`pixel_terms`) of a
    stratified sample (see :func:`tile_pixels`).

    Args:
        solver_pixels: pixels the solver's final fit saw (:func:`solver_pixels`); 0 (or at least the image's
            pixels): the estimate is the whole image's optimum, no solver scatter.

    Returns:
        ``(H [6, 6] over the whole image, s^2, Cov_gauss_newton [6, 6], Cov_sandwich [6, 6], step [6],
        Cov_step [6, 6], Cov_solver [6, 6])``: ``step = -H^-1 g`` is the Gauss-Newton step left to the
        optimum of the whole image's loss, ``Cov_step`` its outer product less the part the pixel sample's
        noise and the solver scatter explain; ``Cov_solver`` the scatter of the solver's final fit.
    """
    w = weight.double()
    H = (w[:, None, None] * H_i).sum(0)
    n_image = float(area.sum())
    s2 = float((w * sq_i).sum()) / max(1.0, 3.0 * n_image - 6.0)
    H_inv = _psd_inverse(H)
    cov_gn = s2 * H_inv
    T = len(area)
    # Each tile's share of the whole gradient is taken out of its pull: away from the optimum the pulls all
    # lean the same way by g, which is the remaining step's term, not scatter between tiles.
    g = (w[:, None] * u_i).sum(0)
    M = torch.zeros(6, 6, dtype=torch.float64)
    V = torch.zeros(6, 6, dtype=torch.float64)  # sampling variance of the estimated gradient
    used = 0
    for t in range(T):
        sel = tile == t
        m = int(sel.sum())
        if m == 0:
            continue
        used += 1
        A = float(area[t])
        U = (w[sel, None] * u_i[sel]).sum(0) - (A / n_image) * g  # the tile's pull, scaled to its area
        M += U[:, None] * U[None, :]
        if m >= 2 and m < A:
            # Var(U_hat) = A^2 (1 - m / A) S / m for a sample of m of the tile's A pixels without replacement.
            S = torch.cov(u_i[sel].T, correction=1)
            M -= A * A * (1.0 - m / A) * S / m
            V += A * A * (1.0 - m / A) * S / m
    M = _at_least(_psd(M) * (used / max(1, used - 1)), s2 * H)
    cov_sw = H_inv @ M @ H_inv
    # The solver's last fit saw a random sample of n pixels: its gradient at the optimum is the sum of a
    # sample, scaled to the image, with variance N^2 (1 - n / N) S_u / n (S_u the pixel covariance of u).
    cov_solver = torch.zeros(6, 6, dtype=torch.float64)
    if 0 < solver_pixels < n_image:
        mean = (w[:, None] * u_i).sum(0) / w.sum()
        dev = u_i - mean
        S_u = (w[:, None] * dev).T @ dev / w.sum()
        var_g = n_image**2 * (1.0 - solver_pixels / n_image) * S_u / solver_pixels
        cov_solver = H_inv @ var_g @ H_inv
        cov_solver = 0.5 * (cov_solver + cov_solver.T)
    # The Gauss-Newton step still left to the optimum of the whole image's loss: an estimate the solver
    # stopped short of is off by about this much. Its outer product, less what the pixel sample's noise in g
    # and the solver's scatter would give, is the bias term of the robust estimate.
    # Only a step the noise cannot explain (beyond its 99% ellipsoid) is evidence that the solve stopped
    # short: a step of ordinary size is one draw of that noise, already in the covariance, and its outer
    # product would count it twice (measured: the ellipsoid then held ~100% instead of 95%).
    step = -H_inv @ g
    noise = H_inv @ V @ H_inv + cov_solver
    cov_step = torch.zeros(6, 6, dtype=torch.float64)
    if float(step @ _psd_inverse(noise) @ step) > chi2_quantile(0.99, 6):
        cov_step = _psd(step[:, None] * step[None, :] - noise)
    return H, s2, cov_gn, 0.5 * (cov_sw + cov_sw.T), step, cov_step, cov_solver


def solver_pixels(config: PoseConfig, image_pixels: int) -> float:
    """Pixels the final fit of a solve with ``config`` saw: the rays of a step (LM fits each step's pixels
    exactly), times the iterates averaged (:attr:`~inerf.pose.config.LMConfig.average`); the whole image
    when the steps render all of it. An Adam finish is counted like one step (an upper bound on its
    scatter: its small, decaying steps average several)."""
    n = min(int(config.n_rays), int(image_pixels))
    if config.optimizer in ("lm", "adam+lm") and config.lm.average > 1:
        n *= config.lm.average
    return float(min(n, image_pixels))


@dataclass
class PoseUncertainty:
    """The covariance of a pose estimate and what it says.

    Attributes:
        c2w: ``[4, 4]`` the estimate (float64, OpenCV c2w).
        covariance: ``[6, 6]`` the reported covariance of the left twist ``delta`` (``T_true = exp(delta)
            @ c2w``, se3 order (rho, phi)), from ``estimator``.
        covariance_gauss_newton: ``[6, 6]`` ``s^2 H^-1``.
        covariance_sandwich: ``[6, 6]`` ``H^-1 M H^-1``.
        covariance_step: ``[6, 6]`` the remaining-step term.
        covariance_solver: ``[6, 6]`` the scatter of the solver's final fit around the optimum (zero when the
            solver is not known); the robust covariance is the sandwich plus it plus the remaining step.
        step: ``[6]`` the Gauss-Newton step left to the optimum of the whole image's loss.
        hessian: ``[6, 6]`` ``H = sum J^T J`` over the image (scaled from the sample).
        residual_variance: ``s^2``, per colour channel.
        pixels: pixels linearised.
        image_pixels: pixels of the image.
        estimator: which covariance is reported.
        level: probability mass of the ellipsoid of :meth:`inside`.
    """

    c2w: torch.Tensor
    covariance: torch.Tensor
    covariance_gauss_newton: torch.Tensor
    covariance_sandwich: torch.Tensor
    covariance_step: torch.Tensor
    step: torch.Tensor
    hessian: torch.Tensor
    residual_variance: float
    pixels: int
    image_pixels: int
    estimator: str = "robust"
    level: float = 0.95
    covariance_solver: torch.Tensor | None = None
    solver_pixels: float = 0.0
    """Pixels the solver's final fit saw (0: taken as the whole image's optimum)."""
    covariance_model: torch.Tensor | None = None
    """``[6, 6]`` the run's model-error term at this estimate (world-frame left twist, see
    :mod:`inerf.pose.calibration`), part of the robust covariance; zero when none was applied."""
    model_error_source: str | None = None
    """Where the applied model-error term came from (``RUN/calibration.json``), or None: not applied."""

    def __post_init__(self) -> None:
        if self.covariance_solver is None:
            self.covariance_solver = torch.zeros(6, 6, dtype=torch.float64)
        if self.covariance_model is None:
            self.covariance_model = torch.zeros(6, 6, dtype=torch.float64)

    @property
    def model_error_applied(self) -> bool:
        """Whether a run's model-error term is part of the robust covariance."""
        return self.model_error_source is not None

    def with_model_error(self, model_error) -> PoseUncertainty:
        """The same uncertainty with a run's model-error term (:class:`inerf.pose.calibration.ModelError`,
        or None: unchanged) added to the robust covariance, moved to this estimate's frame."""
        if model_error is None:
            return self
        out = replace(
            self,
            covariance_model=model_error.world(self.c2w),
            model_error_source=model_error.source or "given",
        )
        return out.with_estimator(self.estimator)

    def with_estimator(self, estimator: str) -> PoseUncertainty:
        """The same uncertainty reporting another covariance: one of :data:`ESTIMATORS`, ``sandwich``
        (the optimum's tile-sandwich covariance alone, without the solver and remaining-step terms) or
        ``residual`` (the robust covariance without the run's model-error term)."""
        residual = self.covariance_sandwich + self.covariance_solver + self.covariance_step
        covs = {
            "robust": residual + self.covariance_model,
            "residual": residual,
            "sandwich": self.covariance_sandwich,
            "gauss_newton": self.covariance_gauss_newton,
        }
        if estimator not in covs:
            raise ValueError(f"unknown estimator {estimator!r}; expected one of {tuple(covs)}")
        return replace(self, covariance=covs[estimator], estimator=estimator)

    def centre_covariance(self, cov: torch.Tensor | None = None) -> torch.Tensor:
        """``[3, 3]`` covariance of the camera centre: ``A Cov A^T``, ``A = [I, -[c]x]``."""
        cov = self.covariance if cov is None else cov
        A = torch.cat([torch.eye(3, dtype=torch.float64), -se3.hat(self.c2w[:3, 3].double())], dim=1)
        return A @ cov @ A.T

    def rotation_covariance(self, cov: torch.Tensor | None = None) -> torch.Tensor:
        """``[3, 3]`` covariance of the world-frame rotation vector (radians^2)."""
        cov = self.covariance if cov is None else cov
        return cov[3:, 3:]

    @property
    def rotation_sigma_deg(self) -> float:
        """Root-mean-square rotation error the covariance predicts (degrees): ``sqrt(trace)``."""
        return math.degrees(math.sqrt(max(0.0, float(torch.trace(self.rotation_covariance())))))

    @property
    def translation_sigma(self) -> float:
        """Root-mean-square camera-centre error the covariance predicts (scene units)."""
        return math.sqrt(max(0.0, float(torch.trace(self.centre_covariance()))))

    @property
    def rotation_sigma_max_deg(self) -> float:
        """Standard deviation along the least certain rotation axis (degrees)."""
        return math.degrees(math.sqrt(max(0.0, float(torch.linalg.eigvalsh(self.rotation_covariance())[-1]))))

    @property
    def translation_sigma_max(self) -> float:
        """Standard deviation of the camera centre along its least certain axis (scene units)."""
        return math.sqrt(max(0.0, float(torch.linalg.eigvalsh(self.centre_covariance())[-1])))

    def error_twist(self, true_c2w: torch.Tensor) -> torch.Tensor:
        """``[6]`` the left twist from the estimate to ``true_c2w``: ``true = exp(e) @ c2w``."""
        return se3.se3_log(true_c2w.double() @ se3.inverse(self.c2w.double()))

    def mahalanobis2(self, true_c2w: torch.Tensor, part: str = "pose") -> float:
        """Squared Mahalanobis distance of the true pose's error: ``pose`` (6 dof), ``rotation`` (3, the
        rotation vector) or ``centre`` (3, the camera centre)."""
        if part == "pose":
            e, cov = self.error_twist(true_c2w), self.covariance
        elif part == "rotation":
            e, cov = (
                se3.so3_log(true_c2w[:3, :3].double() @ self.c2w[:3, :3].double().T),
                self.rotation_covariance(),
            )
        elif part == "centre":
            e, cov = true_c2w[:3, 3].double() - self.c2w[:3, 3].double(), self.centre_covariance()
        else:
            raise ValueError(f"part must be pose, rotation or centre, got {part!r}")
        return float(e @ _psd_inverse(cov) @ e)

    def inside(self, true_c2w: torch.Tensor, part: str = "pose", level: float | None = None) -> bool:
        """Whether the true pose lies inside the ``level`` confidence ellipsoid (chi-square quantile)."""
        dof = 6 if part == "pose" else 3
        return self.mahalanobis2(true_c2w, part) <= chi2_quantile(level or self.level, dof)

    def to_json(self) -> dict:
        """The ``uncertainty`` entry of ``pose.json``."""

        def mat(m):
            return [[float(x) for x in row] for row in m.tolist()]

        return {
            "estimator": self.estimator,
            "rotation_sigma_deg": self.rotation_sigma_deg,
            "translation_sigma": self.translation_sigma,
            "rotation_sigma_max_deg": self.rotation_sigma_max_deg,
            "translation_sigma_max": self.translation_sigma_max,
            "covariance": mat(self.covariance),
            "covariance_gauss_newton": mat(self.covariance_gauss_newton),
            "covariance_sandwich": mat(self.covariance_sandwich),
            "covariance_step": mat(self.covariance_step),
            "covariance_solver": mat(self.covariance_solver),
            "covariance_model": mat(self.covariance_model),
            "model_error_applied": self.model_error_applied,
            "model_error_source": self.model_error_source,
            "solver_pixels": self.solver_pixels,
            "remaining_step": [float(x) for x in self.step],
            "residual_variance": self.residual_variance,
            "pixels": self.pixels,
            "image_pixels": self.image_pixels,
            "twist": "left perturbation of c2w: true = exp(delta) @ c2w, delta = (rho, phi), world frame",
            "sigmas": "rms lengths (sqrt of the trace) of the rotation vector (degrees) and of the camera-centre "
            "error; *_max: standard deviation along the least certain axis",
        }

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"uncertainty (1 sigma, {self.estimator}): rotation {self.rotation_sigma_deg:.3g} deg, "
            f"translation {self.translation_sigma:.3g} (worst axis {self.rotation_sigma_max_deg:.3g} deg, "
            f"{self.translation_sigma_max:.3g})"
            + (", with the run's model error" if self.model_error_applied else "")
        )


def pose_uncertainty(
    model: Model,
    target: PoseTarget,
    c2w: torch.Tensor,
    config: UncertaintyConfig | None = None,
    *,
    seed: int = 0,
    solver: PoseConfig | None = None,
    model_error=None,
) -> PoseUncertainty:
    """The covariance of the estimate ``c2w`` ``[4, 4]`` of ``target``'s pose (see the module docstring).

    Args:
        model: the frozen fields the estimate was made with.
        target: the image and its intrinsics (its device is used).
        c2w: the estimate, OpenCV c2w.
        config: pixels, tiles and the reported estimator.
        seed: seeds the pixel sample.
        solver: the settings of the solve that returned ``c2w`` (its rays per step give the scatter of its
            final fit, :func:`solver_pixels`); None: ``c2w`` is taken as the whole image's optimum.
        model_error: the run's model-error term (:class:`inerf.pose.calibration.ModelError`, from
            ``RUN/calibration.json``), added to the robust covariance; None: not applied.
    """
    config = config or UncertaintyConfig()
    c2w = torch.as_tensor(c2w).detach().double().cpu().reshape(4, 4)
    pix, tile, weight, area = tile_pixels(target.height, target.width, config.tiles, config.rays, seed)
    H_i, u_i, sq_i = pixel_terms(model, target, c2w, pix)
    n_fit = solver_pixels(solver, target.height * target.width) if solver is not None else 0.0
    H, s2, cov_gn, cov_sw, step, cov_step, cov_solver = covariance_from_terms(
        H_i, u_i, sq_i, tile, weight, area, n_fit
    )
    unc = PoseUncertainty(
        c2w=c2w,
        covariance=cov_sw + cov_solver + cov_step if config.estimator == "robust" else cov_gn,
        covariance_gauss_newton=cov_gn,
        covariance_sandwich=cov_sw,
        covariance_step=cov_step,
        step=step,
        hessian=H,
        residual_variance=s2,
        pixels=int(pix.numel()),
        image_pixels=int(area.sum()),
        estimator=config.estimator,
        level=config.level,
        covariance_solver=cov_solver,
        solver_pixels=n_fit,
    )
    return unc.with_model_error(model_error)
