"""A model-error term for the pose covariance, measured on the run's own views with known poses.

Why. The covariance of :mod:`inerf.pose.uncertainty` is built from the residuals of one target image: it
sees pixel noise, disagreement between image tiles and the solver's scatter, and it is calibrated where the
field is exact (the synthetic test holds 98% inside the 95% ellipsoid). A trained field is not exact: a
silhouette a little too large, a texture a little shifted, errs coherently over the whole image, so every
tile pulls the pose the same wrong way and no statistic of the target sees it (demo duck: 70% inside, the
shared chair on an H200: 48%). That error is a property of the field, not of the image, so it is measured
where the truth is known: the run's own views.

How. :func:`calibrate` solves the poses of a few views with known poses (starts perturbed a little, the
solver settings of later estimates) and, for each successful solve ``i``, takes the true error ``e_i`` and
the predicted (robust) covariance ``C_i``, both in the **camera frame** (right twist, ``T_true = T_est @
exp(e)``, order (rho, phi): translation along the camera's x right / y down / z forward axes, rotation about
them). The model-error term is an additive covariance ``D``, so that ``e_i ~ N(0, C_i + D)``, fitted by
maximum likelihood (:func:`fit_model_error`).

Why this form.

* **Additive, not a scalar inflation**: the residual covariance's thinnest directions are pinned by edges to
  1e-5 in the twist, while the field's error there is not smaller than elsewhere. Multiplying ``C_i`` by a
  factor big enough to cover those directions would blow up the well-measured wide ones; an additive term
  is a floor, the irreducible error of the field, independent of the image noise (which ``C_i`` keeps
  measuring per target).
* **Camera frame**: a field error moves the solution the same way relative to the camera from every
  viewpoint (a too-large silhouette pushes the camera back along its optical axis), so one ``D`` transfers
  between views there; a world-frame twist would mix the rotation into the translation by the camera
  centre ``c`` (``rho = t - c x phi``) and depend on where the calibration views were.
* **Diagonal or full, chosen by cross-validation**: six variances from the usual 10-30 calibration solves
  are well determined, a full 6x6 (21 numbers) less so; but a field's error often lies along a combination
  of axes (a sideways shift that a turn partly undoes moves the object's image alike), exactly the thin
  directions of ``C_i`` that edges pin, where a diagonal term must inflate both axes to cover it. Neither
  wins everywhere (measured: the demo duck's held-out views prefer the full form, 87% against 73% inside
  when each view is left out of the fit; a shifted analytic ball whose error points a different way in
  every view prefers the diagonal one, 72% against 11%). On the views that matter, the ones never used,
  the diagonal form did at least as well in both cases (demo targets 90% inside against the full form's
  80%, one solve of ten; the ball's held-out views 100%), and six numbers from 10-30 solves are the more
  robust estimate, so it is the default; ``full`` and ``auto`` (the form with the higher
  leave-one-view-out likelihood, :func:`refit`) are options, and every calibration file records both
  forms' leave-one-view-out coverage.
* **Maximum likelihood with ``C_i`` inside**: a solve whose own covariance already explains its error adds
  nothing to ``D``; the term takes only what the residuals cannot see. It reduces to ``D = mean(e e^T)``
  (per axis) when the residual covariances are negligible.

Applied. Every later covariance of the run adds ``Ad_T D Ad_T^T`` (``Ad_T`` the adjoint of the estimate
``T``: the camera-frame term moved to the world-frame left twist of :class:`PoseUncertainty`) to the robust
covariance (:meth:`inerf.pose.uncertainty.PoseUncertainty.with_model_error`); ``pose.json`` says whether it
was. The term is stored with the run as ``RUN/calibration.json`` (:func:`save_calibration`,
:func:`load_calibration`), made by ``inerf calibrate --run RUN``.

Example::

    cal = calibrate(run.model, train_views, ROBUST)
    save_calibration(cal, run_dir)
    unc = pose_uncertainty(model, target, c2w, solver=ROBUST).with_model_error(cal.model_error)
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from inerf.geometry import se3
from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.perturb import SUCCESS, Perturbation
from inerf.pose.uncertainty import UncertaintyConfig, chi2_quantile, pose_uncertainty

__all__ = [
    "CALIBRATION_FILE",
    "FORMS",
    "Calibration",
    "CalibrationConfig",
    "ModelError",
    "adjoint",
    "calibrate",
    "fit_model_error",
    "load_calibration",
    "refit",
    "save_calibration",
]

CALIBRATION_FILE = "calibration.json"
"""Name of the calibration stored in a run directory."""


def adjoint(c2w: torch.Tensor) -> torch.Tensor:
    """``[6, 6]`` adjoint of ``c2w`` ``[4, 4]`` for twists ordered (rho, phi): ``T @ exp(xi) = exp(Ad_T xi)
    @ T``, ``Ad_T = [[R, [t]x R], [0, R]]`` (float64)."""
    T = c2w.double()
    R, t = T[:3, :3], T[:3, 3]
    ad = torch.zeros(6, 6, dtype=torch.float64)
    ad[:3, :3] = R
    ad[:3, 3:] = se3.hat(t) @ R
    ad[3:, 3:] = R
    return ad


def to_camera_frame(cov_world: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """A ``[6, 6]`` covariance of the world-frame left twist at ``c2w`` as one of the camera-frame right
    twist: ``Ad_T^-1 C Ad_T^-T``."""
    ad_inv = torch.linalg.inv(adjoint(c2w))
    return ad_inv @ cov_world.double() @ ad_inv.T


@dataclass
class ModelError:
    """The model-error covariance of a run's field.

    Attributes:
        covariance: ``[6, 6]`` (float64) of the camera-frame right twist ``e`` (``T_true = T_est @ exp(e)``,
            order (rho, phi): camera x right, y down, z forward; rho in scene units, phi in radians).
        source: where it came from (the calibration file), for reports.
    """

    covariance: torch.Tensor
    source: str = ""

    def world(self, c2w: torch.Tensor) -> torch.Tensor:
        """``[6, 6]`` the term as a covariance of the world-frame left twist at the estimate ``c2w``:
        ``Ad_T D Ad_T^T``."""
        ad = adjoint(c2w)
        out = ad @ self.covariance.double() @ ad.T
        return 0.5 * (out + out.T)

    @property
    def rotation_sigma_deg(self) -> float:
        """Root-mean-square rotation error of the term alone (degrees)."""
        return math.degrees(math.sqrt(max(0.0, float(torch.trace(self.covariance[3:, 3:])))))

    @property
    def translation_sigma(self) -> float:
        """Root-mean-square camera-centre error of the term alone (scene units; the camera-frame translation
        of a right twist is the centre's offset seen in camera axes, to first order)."""
        return math.sqrt(max(0.0, float(torch.trace(self.covariance[:3, :3]))))

    def to_json(self) -> dict:
        sd = self.covariance.diagonal().clamp_min(0).sqrt()
        return {
            "covariance": [[float(x) for x in row] for row in self.covariance.tolist()],
            "frame": "camera-frame right twist: true = estimate @ exp(e), e = (rho, phi); camera axes x right, "
            "y down, z forward; rho in scene units, phi in radians",
            "sigma_translation_xyz": [float(x) for x in sd[:3]],
            "sigma_rotation_xyz_deg": [math.degrees(float(x)) for x in sd[3:]],
            "rotation_sigma_deg": self.rotation_sigma_deg,
            "translation_sigma": self.translation_sigma,
        }

    @classmethod
    def from_json(cls, record: dict, source: str = "") -> ModelError:
        cov = torch.tensor(record["covariance"], dtype=torch.float64)
        if cov.shape != (6, 6) or not bool(torch.isfinite(cov).all()):
            raise ValueError("covariance must be a finite 6x6 matrix")
        return cls(0.5 * (cov + cov.T), source)


FORMS = ("diagonal", "full")
"""Forms of the fitted term: six variances of the camera axes, or a full 6x6 covariance (``D = L L^T``)."""


def _nll(e_n, C_n, D_n):
    """Mean negative log-likelihood (less constants) of ``e_n ~ N(0, C_n + D_n)``."""
    L = torch.linalg.cholesky(C_n + D_n[None])
    z = torch.cholesky_solve(e_n[..., None], L)[..., 0]
    return (2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1) + (e_n * z).sum(-1)).mean()


def fit_model_error(
    errors: torch.Tensor, covariances: torch.Tensor, iterations: int = 200, form: str = "diagonal"
) -> torch.Tensor:
    """The diagonal ``D`` ``[6, 6]`` (float64, >= 0) that maximises the likelihood of ``errors`` ``[n, 6]``
    under ``e_i ~ N(0, covariances[i] + D)`` (``covariances`` ``[n, 6, 6]``, same frame as the errors).

    Minimises ``sum_i log det(C_i + D) + e_i^T (C_i + D)^-1 e_i`` over ``D = diag(exp(theta))`` by L-BFGS
    from ``theta`` at the per-axis excess of ``e^2`` over ``C``'s diagonal. An axis the residuals already
    explain goes to ``D ~ 0``. ``form="full"``: then over a full ``D = L L^T`` (``L`` lower triangular),
    from the diagonal solution: it can put the term along a combination of axes (the thin directions of
    ``C``), at the price of 21 numbers instead of 6.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    e = errors.double()
    C = covariances.double()
    C = 0.5 * (C + C.transpose(-1, -2))
    n = e.shape[0]
    if n == 0:
        return torch.zeros(6, 6, dtype=torch.float64)
    scale = (e * e).mean(0).clamp_min(1e-30)  # per-axis units: the optimisation is done in them
    s = scale.sqrt()
    e_n = e / s
    C_n = C / (s[:, None] * s[None, :])
    excess = ((e_n * e_n).mean(0) - C_n.diagonal(dim1=-2, dim2=-1).mean(0)).clamp_min(1e-3)
    theta = excess.log().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def nll():
        opt.zero_grad()
        loss = _nll(e_n, C_n, torch.diag(theta.exp().clamp_max(1e6)))
        loss.backward()
        return loss

    opt.step(nll)
    d_n = theta.detach().exp()
    # A variance below 1e-6 of the axis's mean square error is numerically zero.
    d_n = torch.where(d_n < 1e-6, torch.zeros_like(d_n), d_n)
    if form == "full":
        low = torch.tril_indices(6, 6)
        L0 = torch.diag(d_n.clamp_min(1e-6).sqrt())
        params = L0[low[0], low[1]].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([params], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

        def nll_full():
            opt.zero_grad()
            L = torch.zeros(6, 6, dtype=torch.float64).index_put((low[0], low[1]), params)
            loss = _nll(e_n, C_n, L @ L.T)
            loss.backward()
            return loss

        opt.step(nll_full)
        L = torch.zeros(6, 6, dtype=torch.float64).index_put((low[0], low[1]), params.detach())
        D_n = L @ L.T
    else:
        D_n = torch.diag(d_n)
    return D_n * (s[:, None] * s[None, :])


@dataclass
class CalibrationConfig:
    """How the model error of a run is measured."""

    views: int = 8
    """Views with known poses solved (evenly spaced over the split)."""
    trials: int = 2
    """Perturbed starts per view."""
    rot_deg: float = 10.0
    """Starts: rotation uniform in [-rot_deg, rot_deg] degrees about the world origin (small: the solve must
    converge, its error is then the field's and the solver's, not a wrong basin's)."""
    trans: float = 0.05
    """Starts: offset uniform in [-trans, trans] per axis."""
    form: str = "diagonal"
    """Form of the fitted term: one of :data:`FORMS` (:func:`fit_model_error`), or ``auto``: chosen by
    leave-one-view-out likelihood (:func:`refit`)."""
    seed: int = 0
    """Seeds the starts and the pixel samples."""

    def __post_init__(self) -> None:
        if self.views < 1 or self.trials < 1:
            raise ValueError(f"views and trials must be >= 1, got {self.views} and {self.trials}")
        if self.rot_deg < 0 or self.trans < 0:
            raise ValueError("rot_deg and trans must be >= 0")
        if self.form not in (*FORMS, "auto"):
            raise ValueError(f"form must be auto or one of {FORMS}, got {self.form!r}")


@dataclass
class Calibration:
    """A measured model-error term and the evidence for it (``RUN/calibration.json``)."""

    model_error: ModelError
    solves: int
    """Successful solves the term was fitted to."""
    attempted: int
    """Solves attempted (failures are left out: a wrong basin is not model error)."""
    inside_before: float
    """Fraction of the successful solves inside the 95% ellipsoid of the robust covariance alone."""
    inside_after: float
    """The same with the term added (in-sample: the same solves it was fitted to)."""
    median_mahalanobis2_before: float
    median_mahalanobis2_after: float
    inside_left_out: float = float("nan")
    """Leave-one-view-out: each view's solves tested against the term fitted without them (NaN with fewer
    than 3 views); the estimate of the coverage on new views."""
    median_mahalanobis2_left_out: float = float("nan")
    meta: dict = field(default_factory=dict)
    """Views, split, solver and calibration settings, when."""
    rows: list[dict] = field(default_factory=list)
    """Per solve: view, trial, errors, Mahalanobis^2 before and after."""

    def to_json(self) -> dict:
        return {
            "model_error": self.model_error.to_json(),
            "solves": self.solves,
            "attempted": self.attempted,
            "inside95_before": self.inside_before,
            "inside95_after": self.inside_after,
            "median_mahalanobis2_before": self.median_mahalanobis2_before,
            "median_mahalanobis2_after": self.median_mahalanobis2_after,
            "inside95_left_out": _finite(self.inside_left_out),
            "median_mahalanobis2_left_out": _finite(self.median_mahalanobis2_left_out),
            "meta": self.meta,
            "rows": self.rows,
        }

    def summary(self) -> str:
        me = self.model_error
        return (
            f"model error (1 sigma, rms): rotation {me.rotation_sigma_deg:.3g} deg, translation "
            f"{me.translation_sigma:.3g}; from {self.solves} of {self.attempted} solves; inside the 95% "
            f"ellipsoid: {100 * self.inside_before:.0f}% -> {100 * self.inside_after:.0f}% (in-sample)"
            + (
                f", {100 * self.inside_left_out:.0f}% leaving each view out of the fit"
                if math.isfinite(self.inside_left_out)
                else ""
            )
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fraction_inside(m2: list[float]) -> float:
    q = chi2_quantile(0.95, 6)
    return sum(m <= q for m in m2) / len(m2) if m2 else float("nan")


def _median(x: list[float]) -> float:
    return float(torch.tensor(x, dtype=torch.float64).median()) if x else float("nan")


def calibrate(
    model,
    views,
    solver: PoseConfig,
    config: CalibrationConfig | None = None,
    uncertainty: UncertaintyConfig | None = None,
    *,
    device=None,
    log=print,
) -> Calibration:
    """Measure the model error of ``model`` on ``views`` (a :class:`inerf.data.views.ViewSet` with known
    poses, composited on the model's background; never the views it will be checked on).

    Solves ``config.views x config.trials`` poses from small perturbations with ``solver`` (the settings
    of later estimates: the solver's scatter is part of the covariance), computes each successful solve's
    robust covariance, and fits the additive camera-frame term (:func:`fit_model_error`).
    """
    from inerf.pose.protocol import ProtocolConfig, run_pose_benchmark

    config = config or CalibrationConfig()
    uncertainty = uncertainty or UncertaintyConfig()
    uncertainty = replace(uncertainty, estimator="robust")
    device = torch.device(device) if device is not None else torch.device("cpu")
    steps = solver.steps
    protocol = ProtocolConfig(
        images=min(config.views, len(views)),
        trials=config.trials,
        perturbation=Perturbation(config.rot_deg, config.trans, sampling="uniform", pivot="origin"),
        checkpoints=(steps,),
        seed=config.seed,
    )
    sampling = solver.sampling if solver.sampling is not None else SamplingConfig("random")
    result = run_pose_benchmark(
        model, views, [sampling], solver, protocol, device=device, progress=False, log=log, uncertainty=None
    )
    from inerf.pose.problem import PoseTarget

    errors, covs, rows = [], [], []
    for trial in result.trials:
        final, gt = torch.tensor(trial["final_c2w"]).double(), torch.tensor(trial["gt_c2w"]).double()
        r, t = float(se3.rotation_error_deg(final, gt)), float(se3.translation_error(final, gt))
        if not SUCCESS.ok(r, t):
            continue
        i = trial["view"]
        alpha = views.alphas[i].to(device) if views.alphas is not None else None
        target = PoseTarget(views.images[i].to(device), views.cameras[i].to(device), alpha)
        unc = pose_uncertainty(model, target, final, uncertainty, seed=trial["seed"], solver=solver)
        # Camera-frame right twist from the estimate to the truth: true = final @ exp(e).
        e = se3.se3_log(se3.inverse(final) @ gt)
        errors.append(e)
        covs.append(to_camera_frame(unc.covariance, final))
        rows.append({"view": trial["name"], "trial": trial["trial"], "rot_err": r, "trans_err": t})
    if not errors:
        from inerf.errors import InerfError

        raise InerfError(
            f"calibration: none of the {len(result.trials)} solves converged (< {SUCCESS.rot_deg:g} deg, "
            f"< {SUCCESS.trans:g}); try smaller starts (--rot, --trans) or more steps"
        )
    for k in range(len(errors)):
        # What the fit sees, so that another form can be fitted without solving again (:func:`refit`).
        rows[k]["error_camera"] = [float(x) for x in errors[k]]
        rows[k]["covariance_camera"] = [[float(x) for x in row] for row in covs[k].tolist()]
    meta = {
        "views": [int(v) for v in result.meta.get("views", [])],
        "split": getattr(views, "split", None),
        "root": str(getattr(views, "root", "")),
        "calibration": asdict(config),
        "solver": {"steps": solver.steps, "n_rays": solver.n_rays, "optimizer": solver.optimizer},
        "uncertainty": {"rays": uncertainty.rays, "tiles": uncertainty.tiles},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return refit(rows, config.form, attempted=len(result.trials), meta=meta)


def _left_out(E, C, names, form):
    """Leave-one-view-out: per solve, ``(Mahalanobis^2, negative log-likelihood)`` of its error under its
    covariance plus the term fitted without its view's solves (NaN with fewer than 3 views)."""
    out = [(float("nan"), float("nan"))] * len(names)
    if len(set(names)) < 3:
        return out
    for v in dict.fromkeys(names):
        fit_on = [k for k in range(len(names)) if names[k] != v]
        D_v = fit_model_error(E[fit_on], C[fit_on], form=form)
        for k in range(len(names)):
            if names[k] == v:
                S = C[k] + D_v
                m2 = float(E[k] @ torch.linalg.pinv(S) @ E[k])
                out[k] = (m2, m2 + float(torch.linalg.slogdet(S)[1]))
    return out


def refit(
    rows: list[dict], form: str = "diagonal", *, attempted: int | None = None, meta=None
) -> Calibration:
    """Fit the term to the solves ``rows`` of a calibration (each with ``view``, ``error_camera`` ``[6]`` and
    ``covariance_camera`` ``[6, 6]``, as :func:`calibrate` records them) and measure it: the in-sample
    coverage and, to see it on views the fit did not use, leave-one-view-out (the term refitted without
    each view's solves, tested on them).

    ``form``: one of :data:`FORMS`, or ``auto``: the one whose leave-one-view-out likelihood is higher (the
    full form wins when the field's error has a preferred direction that the views share, the diagonal one
    when each view errs its own way and 21 numbers would only fit the calibration views); the diagonal one
    with fewer than 3 views.
    """
    if form not in (*FORMS, "auto"):
        raise ValueError(f"form must be auto or one of {FORMS}, got {form!r}")
    rows = [dict(r) for r in rows]
    E = torch.tensor([r["error_camera"] for r in rows], dtype=torch.float64)
    C = torch.tensor([r["covariance_camera"] for r in rows], dtype=torch.float64)
    names = [r["view"] for r in rows]
    forms = FORMS  # both, for the record, whichever is fitted
    left_out = {f: _left_out(E, C, names, f) for f in forms}
    scores = {f: sum(nll for _, nll in left_out[f]) for f in forms}
    if form == "auto":
        finite = {f: v for f, v in scores.items() if math.isfinite(v)}
        form = min(finite, key=finite.get) if finite else "diagonal"
    D = fit_model_error(E, C, form=form)

    def m2(k: int, term: torch.Tensor) -> float:
        return float(E[k] @ torch.linalg.pinv(C[k] + term) @ E[k])

    zero = torch.zeros(6, 6, dtype=torch.float64)
    m2_before = [m2(k, zero) for k in range(len(rows))]
    m2_after = [m2(k, D) for k in range(len(rows))]
    m2_cv = [m for m, _ in left_out[form]]
    for k, r in enumerate(rows):
        r["mahalanobis2_before"], r["mahalanobis2_after"] = m2_before[k], m2_after[k]
        r["mahalanobis2_left_out"] = _finite(m2_cv[k])
    cv = [x for x in m2_cv if math.isfinite(x)]
    meta = dict(meta or {})
    meta["form"] = form
    meta["left_out"] = {
        f: {
            "inside95": _finite(
                _fraction_inside([m for m, _ in left_out[f] if math.isfinite(m)]) or float("nan")
            ),
            "negative_log_likelihood": _finite(scores[f]),
        }
        for f in forms
    }
    return Calibration(
        model_error=ModelError(D),
        solves=len(rows),
        attempted=len(rows) if attempted is None else attempted,
        inside_before=_fraction_inside(m2_before),
        inside_after=_fraction_inside(m2_after),
        median_mahalanobis2_before=_median(m2_before),
        median_mahalanobis2_after=_median(m2_after),
        inside_left_out=_fraction_inside(cv) if cv else float("nan"),
        median_mahalanobis2_left_out=_median(cv),
        meta=meta,
        rows=rows,
    )


def save_calibration(calibration: Calibration, run_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``RUN/calibration.json``; an existing one only with ``overwrite``."""
    from inerf.errors import InerfError

    path = Path(run_dir) / CALIBRATION_FILE
    if path.exists() and not overwrite:
        raise InerfError(f"{path} exists; pass --overwrite to replace it")
    path.write_text(json.dumps(calibration.to_json(), indent=2))
    return path


def load_calibration(run_dir: str | Path, name: str = CALIBRATION_FILE) -> ModelError | None:
    """The model-error term stored in ``RUN/calibration.json`` (or ``RUN/name``), or None when there is
    none."""
    from inerf.errors import InerfError

    path = Path(run_dir) / name
    if not path.is_file():
        return None
    try:
        return ModelError.from_json(json.loads(path.read_text())["model_error"], source=str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InerfError(f"{path}: not a calibration file ({exc})") from None
