"""The iNeRF evaluation protocol (paper §V-A) and its report.

For each of ``images`` test views with ground-truth pose ``T*`` and each of ``trials`` trials, the start
pose is ``T*`` moved by :func:`inerf.pose.perturb.perturb` with the protocol's ``perturbation`` (default
:data:`~inerf.pose.perturb.PAPER_PERTURBATION`, the paper's starts as its code draws them: an angle uniform
in [-40, 40] degrees about a random axis through the world origin, an offset uniform in [-0.1, 0.1] per
axis; the rotation about the origin also moves the camera centre, see :mod:`inerf.pose.perturb`). A trial
succeeds at step ``s`` when the pose after ``s`` updates is within ``success``
(:data:`~inerf.pose.perturb.SUCCESS`: rotation error < 5 degrees and translation error < 0.05, the paper's).

The trials of one image are solved together as independent problems of one batched solve (each with its
own start and pixel seed, see :func:`inerf.pose.solver.estimate_pose`); the same starts are used for every
sampling strategy, so strategies are compared on identical trials. With ``hypotheses = K > 1`` every
trial is ``K`` hypotheses: the perturbed start and ``K - 1`` further starts drawn around it with the spread
``spread_rot``/``spread_trans`` (Parallel iNeRF's "±80 degrees, ±0.3 with 16 hypotheses" experiment); the
trial's pose at step ``s`` is its lowest-loss hypothesis at that step.

Under torchrun (``shard_views=True``, :mod:`inerf.distributed`) each process solves every W-th view, exactly as
one process solves it (a view's trials stay one batched solve: splitting that batch could change how the
field's matrix products are blocked, hence the last bits), and the per-view results are gathered back in
view order, so the table is the one-process table, number for number.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from inerf import distributed
from inerf.geometry import se3
from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.io import pose_to_json, write_json
from inerf.pose.perturb import (
    PAPER_PERTURBATION,
    SUCCESS,
    Perturbation,
    SuccessThresholds,
    perturb,
    spread,
    start_generator,
)
from inerf.pose.solver import PoseTarget, estimate_pose
from inerf.render.model import Model

__all__ = [
    "BenchmarkResult",
    "ProtocolConfig",
    "calibration",
    "initial_poses",
    "map_views",
    "run_pose_benchmark",
    "select_images",
    "solve_views",
    "strategy_label",
    "write_report",
]


@dataclass
class ProtocolConfig:
    """The evaluation protocol's settings (defaults: the iNeRF paper's)."""

    images: int = 5
    """Test views used (evenly spaced over the split, so they cover the orbit), unless ``image_ids``."""
    image_ids: tuple[int, ...] | None = None
    """Explicit view indices in the split (overrides ``images``)."""
    trials: int = 5
    """Random starts per view."""
    perturbation: Perturbation = PAPER_PERTURBATION
    """How each trial's start is moved from the ground truth (:class:`inerf.pose.perturb.Perturbation`);
    default the paper's: uniform angles up to 40 degrees about the world origin, offsets up to 0.1 per axis."""
    success: SuccessThresholds = SUCCESS
    """When a trial counts as a success (:data:`inerf.pose.perturb.SUCCESS`: 5 degrees and 0.05)."""
    checkpoints: tuple[int, ...] = (50, 100, 200, 300)
    """Steps at which the table reports success rates and errors."""
    hypotheses: int = 1
    """Hypotheses per trial (the perturbed start plus ``hypotheses - 1`` starts around it)."""
    spread_rot: float | None = None
    """Rotation spread (degrees) of the extra hypotheses around the start: uniform in [-spread, spread]
    about the world origin, as ``inerf.pose.perturb.spread`` draws it. (default: ``perturbation.rot_deg``)"""
    spread_trans: float | None = None
    """Translation spread (uniform per axis) of the extra hypotheses. (default: ``perturbation.trans``)"""
    seed: int = 0
    """Seeds the perturbations and the pixel sampling; the same seed gives the same benchmark."""

    def __post_init__(self) -> None:
        if self.trials < 1 or self.hypotheses < 1 or (self.image_ids is None and self.images < 1):
            raise ValueError("images, trials and hypotheses must be >= 1")
        self.checkpoints = tuple(sorted({int(c) for c in self.checkpoints}))


def select_images(n_views: int, protocol: ProtocolConfig) -> list[int]:
    """View indices of the benchmark: ``image_ids`` or ``images`` evenly spaced ones."""
    if protocol.image_ids is not None:
        bad = [i for i in protocol.image_ids if not 0 <= i < n_views]
        if bad:
            from inerf.errors import InerfError

            raise InerfError(f"image ids {bad} out of range: the split has {n_views} views")
        return list(protocol.image_ids)
    k = min(protocol.images, n_views)
    return sorted(set(np.linspace(0, n_views - 1, k).round().astype(int).tolist()))


def initial_poses(gt_c2w: torch.Tensor, protocol: ProtocolConfig, image_index: int) -> torch.Tensor:
    """Start poses ``[trials, hypotheses, 4, 4]`` (float64) for one view, drawn from
    :func:`~inerf.pose.perturb.start_generator` ``(seed, view index)``: the trials' starts first, then
    their extra hypotheses."""
    gen = start_generator(protocol.seed, image_index)
    T, K = protocol.trials, protocol.hypotheses
    starts = perturb(gt_c2w, protocol.perturbation, gen, (T,))
    if K == 1:
        return starts[:, None]
    p = protocol.perturbation
    around = spread(
        p.rot_deg if protocol.spread_rot is None else protocol.spread_rot,
        p.trans if protocol.spread_trans is None else protocol.spread_trans,
    )
    extra = perturb(starts[:, None], around, gen, (T, K - 1))
    return torch.cat([starts[:, None], extra], dim=1)


@dataclass
class BenchmarkResult:
    """Per strategy: errors of every trial at every step, and the table.

    Attributes:
        rot_err: name -> ``[trials_total, S + 1]`` rotation error (degrees) of each trial's best hypothesis.
        trans_err: name -> same shape, translation error.
        summary: rows (dicts) with strategy, step, success rate, mean/median errors.
        trials: one dict per (strategy, view, trial) with its start, final pose and errors.
        seconds: name -> wall time of that strategy's solves.
        protocol: the protocol used.
        pose_config: the solver settings (sampling aside).
        meta: free-form facts to record (device, run directory, data, split).
    """

    rot_err: dict
    trans_err: dict
    summary: list[dict]
    trials: list[dict]
    seconds: dict
    protocol: ProtocolConfig
    pose_config: PoseConfig
    meta: dict = field(default_factory=dict)

    def success_curves(self) -> dict:
        """name -> ``[S + 1]`` success rate against step."""
        p = self.protocol
        return {name: p.success.ok(self.rot_err[name], self.trans_err[name]).mean(0) for name in self.rot_err}


def strategy_label(s: SamplingConfig) -> str:
    """Table name of a strategy: its name, plus the detector when it is not the default SIFT."""
    if s.strategy in ("interest_points", "interest_region") and s.detector != "sift":
        return f"{s.strategy}[{s.detector}]"
    return s.strategy


def _summarise(
    name: str, rot: np.ndarray, trans: np.ndarray, protocol: ProtocolConfig, steps: int
) -> list[dict]:
    rows = []
    for c in protocol.checkpoints:
        if c > steps:
            continue
        r, t = rot[:, c], trans[:, c]
        ok = protocol.success.ok(r, t)
        rows.append(
            {
                "strategy": name,
                "step": c,
                "trials": int(r.size),
                "success_rate": float(ok.mean()),
                "rot_err_mean": float(r.mean()),
                "rot_err_median": float(np.median(r)),
                "trans_err_mean": float(t.mean()),
                "trans_err_median": float(np.median(t)),
            }
        )
    return rows


def _view_target(views, i: int, device: torch.device) -> tuple[PoseTarget, torch.Tensor]:
    """View ``i`` as a pose target on ``device`` and its ground-truth c2w ``[4, 4]`` (float64, CPU)."""
    alpha = views.alphas[i].to(device) if views.alphas is not None else None
    target = PoseTarget(image=views.images[i].to(device), camera=views.cameras[i].to(device), alpha=alpha)
    return target, views.cameras.c2w[i].double()


def _trial_records(name, views, i, seeds, init, gt, res, rot, trans, protocol, steps) -> list[dict]:
    """One row per trial of view ``i`` solved with strategy ``name``: seed, status, start errors, errors at
    each checkpoint (``rot``/``trans`` ``[S + 1, T]`` of each trial's best hypothesis), final loss and poses."""
    r0, t0 = se3.rotation_error_deg(init[:, 0], gt), se3.translation_error(init[:, 0], gt)
    checkpoints = [c for c in protocol.checkpoints if c <= steps]
    return [
        {
            "strategy": name,
            "view": i,
            "name": views.names[i] if views.names else str(i),
            "trial": k,
            "seed": seeds[k],
            "status": res.status[k],
            "init_rot_err": float(r0[k]),
            "init_trans_err": float(t0[k]),
            **{f"rot_err@{c}": float(rot[c, k]) for c in checkpoints},
            **{f"trans_err@{c}": float(trans[c, k]) for c in checkpoints},
            "final_loss": float(res.loss[k]),
            "hypothesis": int(res.hypothesis[k]),
            "init_c2w": pose_to_json(init[k, 0]),
            "final_c2w": pose_to_json(res.c2w[k]),
            "gt_c2w": pose_to_json(gt),
        }
        for k in range(init.shape[0])
    ]


def _uncertainty_fields(model, target, res, gt, config, seeds, solver=None, model_error=None) -> list[dict]:
    """Per trial of a solve: the predicted 1-sigma rotation / translation of its final pose
    (:func:`inerf.pose.uncertainty.pose_uncertainty`), the squared Mahalanobis distance of its true error and
    whether the truth lies inside the confidence ellipsoid. ``solver``: the solve's settings (its scatter
    is part of the robust covariance); ``model_error``: the run's model-error term, added to it (then the
    same without it too, ``*_residual``, so that a report shows what the term changed)."""
    from inerf.pose.uncertainty import pose_uncertainty

    rows = []
    for k in range(res.c2w.shape[0]):
        if res.status[k] != "ok":
            rows.append({})
            continue
        unc = pose_uncertainty(
            model, target, res.c2w[k], config, seed=seeds[k], solver=solver, model_error=model_error
        )
        row = {
            "rot_sigma_deg": unc.rotation_sigma_deg,
            "trans_sigma": unc.translation_sigma,
            "mahalanobis2": unc.mahalanobis2(gt),
            "inside_ellipsoid": unc.inside(gt),
            "model_error_applied": unc.model_error_applied,
        }
        if unc.model_error_applied:
            base = unc.with_estimator("residual")
            row["mahalanobis2_residual"] = base.mahalanobis2(gt)
            row["inside_ellipsoid_residual"] = base.inside(gt)
        rows.append(row)
    return rows


def calibration(trials: list[dict], protocol: ProtocolConfig) -> dict:
    """Per strategy, over the trials whose final pose succeeded (both thresholds): how many had an
    uncertainty and the fraction of them whose true pose lies inside the confidence ellipsoid (a calibrated
    95% ellipsoid holds about 95%), with the median predicted and true errors."""
    out = {}
    for name in dict.fromkeys(t["strategy"] for t in trials):
        ok = []
        for t in trials:
            if t["strategy"] != name or "inside_ellipsoid" not in t:
                continue
            final, gt = torch.tensor(t["final_c2w"]), torch.tensor(t["gt_c2w"])
            r, e = float(se3.rotation_error_deg(final, gt)), float(se3.translation_error(final, gt))
            if protocol.success.ok(r, e):
                ok.append((t, r, e))
        if not ok:
            out[name] = {"successful": 0}
            continue
        out[name] = {
            "successful": len(ok),
            "inside": sum(bool(t["inside_ellipsoid"]) for t, _, _ in ok),
            "fraction_inside": float(np.mean([bool(t["inside_ellipsoid"]) for t, _, _ in ok])),
            "median_rot_sigma_deg": float(np.median([t["rot_sigma_deg"] for t, _, _ in ok])),
            "median_trans_sigma": float(np.median([t["trans_sigma"] for t, _, _ in ok])),
            "median_rot_err_deg": float(np.median([r for _, r, _ in ok])),
            "median_trans_err": float(np.median([e for _, _, e in ok])),
        }
        if all("inside_ellipsoid_residual" in t for t, _, _ in ok):
            # The run's model-error term was applied: the same fraction without it, for comparison.
            out[name]["model_error_applied"] = True
            out[name]["fraction_inside_residual"] = float(
                np.mean([bool(t["inside_ellipsoid_residual"]) for t, _, _ in ok])
            )
    return out


def _progress_line(i, name, rot, trans, protocol, steps, seconds) -> str:
    """``view I NAME: success@S ...`` for the last checkpoint (or the last step)."""
    last = min(steps, protocol.checkpoints[-1]) if protocol.checkpoints else steps
    ok = protocol.success.ok(rot[last], trans[last]).double().mean()
    return (
        f"view {i} {name:>16}: success@{last} {100 * ok:.0f}%  median rot {rot[last].median():.2f} deg"
        f"  median trans {trans[last].median():.4f}  ({seconds:.1f} s)"
    )


def _check_strategies(strategies: list[SamplingConfig], protocol: ProtocolConfig, steps: int) -> list[str]:
    """The strategies' table names (distinct), after checking the checkpoints fit in ``steps``."""
    if protocol.checkpoints and protocol.checkpoints[-1] > steps:
        from inerf.errors import InerfError

        raise InerfError(f"checkpoint step {protocol.checkpoints[-1]} exceeds the number of steps ({steps})")
    labels = [strategy_label(s) for s in strategies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"strategies must be distinct, got {labels}")
    return labels


def map_views(ids: list[int], solve_view: Callable[[int, int], dict], shard: bool = False) -> list[dict]:
    """``[solve_view(n, ids[n]) for n in range(len(ids))]``; with ``shard``, each rank of the process group
    solves every W-th view (:func:`inerf.distributed.shard`) and every rank gets all results in ``ids``
    order (every rank must call this). A result must be picklable (numpy arrays, floats, dicts)."""
    todo = list(enumerate(ids))
    if not shard:
        return [solve_view(n, i) for n, i in todo]
    mine = [solve_view(n, i) for n, i in distributed.shard(todo)]
    return distributed.gather_rows(mine, to_all=True)


def run_pose_benchmark(
    model: Model,
    views,
    strategies: list[SamplingConfig],
    pose_config: PoseConfig,
    protocol: ProtocolConfig,
    *,
    device=None,
    progress: bool = True,
    log=print,
    uncertainty=None,
    shard_views: bool = False,
    model_error=None,
) -> BenchmarkResult:
    """Run the protocol for every strategy on ``views`` (a :class:`inerf.data.views.ViewSet` whose images are
    composited on ``model.config.background``).

    Args:
        model: the frozen fields and their render settings (on ``device``).
        strategies: one sampling config per strategy to compare.
        pose_config: solver settings; its ``steps`` must reach the last checkpoint; its ``sampling`` is
            replaced by each strategy in turn.
        protocol: perturbations, thresholds, checkpoints, hypotheses, seed.
        log: where progress lines go (``print`` or a no-op).
        uncertainty: an :class:`inerf.pose.uncertainty.UncertaintyConfig` to compute each trial's covariance
            at its final pose (columns ``rot_sigma_deg``, ``trans_sigma``, ``mahalanobis2``,
            ``inside_ellipsoid``, and the calibration in the report), or None.
        shard_views: split the views over the ranks of the process group (:func:`map_views`); every rank
            must call this, and every rank returns the whole result. ``seconds`` then sums the ranks' solve
            times (the compute spent, as one process reports it); ``meta["wall_s"]`` is the elapsed time.
        model_error: the run's model-error term (:class:`inerf.pose.calibration.ModelError`), added to
            every covariance (with ``uncertainty``), or None.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    steps = pose_config.steps
    labels = _check_strategies(strategies, protocol, steps)
    ids = select_images(len(views), protocol)
    # Solve to the full step count: the stop test would end trials before later checkpoints.
    base = replace(pose_config, stop=replace(pose_config.stop, tol=0.0))

    def solve_view(n_img: int, i: int) -> dict:
        """Every strategy on view ``i``: per strategy its errors ``[T, S + 1]``, seconds and trial rows."""
        target, gt = _view_target(views, i, device)
        init = initial_poses(gt, protocol, i)
        T = init.shape[0]
        seeds = [protocol.seed * 1_000_003 + i * 1000 + t for t in range(T)]
        out = {}
        for strat, name in zip(strategies, labels):
            t0 = time.perf_counter()
            desc = f"view {i} ({n_img + 1}/{len(ids)}) {name}"
            cfg = replace(base, sampling=strat)
            res = estimate_pose(model, target, init, cfg, seeds=seeds, progress=progress, desc=desc)
            seconds = time.perf_counter() - t0
            best = res.trajectory.best_c2w()  # [S + 1, T, 4, 4]: what stopping at each step returns
            r, t = res.trajectory.errors(gt[None].expand(T, 4, 4), best)
            records = _trial_records(name, views, i, seeds, init, gt, res, r, t, protocol, steps)
            if uncertainty is not None:
                for rec, extra in zip(
                    records, _uncertainty_fields(model, target, res, gt, uncertainty, seeds, cfg, model_error)
                ):
                    rec.update(extra)
            log(_progress_line(i, name, r, t, protocol, steps, res.seconds))
            out[name] = {"rot": r.T.numpy(), "trans": t.T.numpy(), "seconds": seconds, "trials": records}
        return out

    joined = solve_views(ids, solve_view, labels, protocol, steps, device, shard_views)
    return joined.result(protocol, base)


@dataclass
class _Joined:
    """The per-view results of :func:`solve_views`, joined per strategy label."""

    per_view: list[dict]
    rot: dict
    trans: dict
    seconds: dict
    trials: list[dict]
    summary: list[dict]
    meta: dict

    def result(self, protocol: ProtocolConfig, pose_config: PoseConfig) -> BenchmarkResult:
        return BenchmarkResult(
            self.rot,
            self.trans,
            self.summary,
            self.trials,
            self.seconds,
            protocol,
            pose_config,
            meta=self.meta,
        )


def solve_views(ids, solve_view, labels, protocol, steps, device, shard: bool) -> _Joined:
    """Solve every view (:func:`map_views`, timed) and join what ``solve_view`` returned per label (``rot``
    and ``trans`` ``[T, C]`` arrays, ``seconds``, ``trials``) over the views, in ``ids`` order; shared by
    the local protocol here and the global one (:mod:`inerf.pose.global_protocol`)."""
    wall = time.perf_counter()
    per_view = map_views(ids, solve_view, shard)
    wall = time.perf_counter() - wall
    rot = {n: np.concatenate([v[n]["rot"] for v in per_view]) for n in labels}
    trans = {n: np.concatenate([v[n]["trans"] for v in per_view]) for n in labels}
    seconds = {n: sum(v[n]["seconds"] for v in per_view) for n in labels}
    trials = [rec for v in per_view for n in labels for rec in v[n]["trials"]]
    summary = [row for n in labels for row in _summarise(n, rot[n], trans[n], protocol, steps)]
    meta = {"device": str(device), "views": ids, "wall_s": wall}
    if shard:
        meta["processes"] = distributed.world_size()
    return _Joined(per_view, rot, trans, seconds, trials, summary, meta)


def _markdown(result: BenchmarkResult) -> str:
    p = result.protocol
    cps = sorted({row["step"] for row in result.summary})
    names = list(result.rot_err)
    found = result.meta.get("global")
    start = (
        f"no initial pose (global: {found['candidates']} candidates scored, the best {found['refined']} refined)"
        if found
        else f"starts: the ground truth {p.perturbation.describe()}"
    )
    lines = [
        f"Success rate (rotation < {p.success.rot_deg:g} deg and translation < {p.success.trans:g}); {start}; "
        f"{len(result.meta.get('views', []))} views x {p.trials} trials"
        + (f", {p.hypotheses} hypotheses per trial" if p.hypotheses > 1 and not found else "")
        + ".",
        "",
        "| strategy | " + " | ".join(f"step {c}" for c in cps) + " |",
        "|---|" + "---:|" * len(cps),
    ]
    by = {(r["strategy"], r["step"]): r for r in result.summary}
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{100 * by[(n, c)]['success_rate']:.1f}%" for c in cps) + " |")
    lines += [
        "",
        "Errors at each checkpoint (mean / median):",
        "",
        "| strategy | step | rotation (deg) | translation |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        for c in cps:
            r = by[(n, c)]
            lines.append(
                f"| {n} | {c} | {r['rot_err_mean']:.2f} / {r['rot_err_median']:.2f} | "
                f"{r['trans_err_mean']:.4f} / {r['trans_err_median']:.4f} |"
            )
    calib = calibration(result.trials, p)
    if any(c["successful"] for c in calib.values()):
        lines += [
            "",
            (
                "Uncertainty of the final poses over the successful trials (median predicted 1-sigma against "
                "the median true error) and calibration: trials whose true pose lies inside the 95% ellipsoid."
            ),
            "",
            "| strategy | 1-sigma rotation (deg) | rotation error | 1-sigma translation | translation error | inside 95% |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for n, c in calib.items():
            if c["successful"]:
                lines.append(
                    f"| {n} | {c['median_rot_sigma_deg']:.3f} | {c['median_rot_err_deg']:.3f} | "
                    f"{c['median_trans_sigma']:.4f} | {c['median_trans_err']:.4f} | "
                    f"{100 * c['fraction_inside']:.0f}% ({c['inside']}/{c['successful']}) |"
                )
    wall = "Wall time per strategy: " + ", ".join(f"{n} {s:.1f} s" for n, s in result.seconds.items())
    processes = result.meta.get("processes", 1)
    if processes > 1:  # the solve times of all ranks add up; the run took its elapsed time
        wall += f" (summed over {processes} processes; {result.meta['wall_s']:.1f} s elapsed)"
    lines += ["", wall]
    return "\n".join(lines) + "\n"


def write_report(result: BenchmarkResult, out_dir: str | Path) -> dict:
    """Write ``results.md``, ``results.csv`` (summary), ``trials.csv``, ``results.json`` (everything) and
    ``success_curve.png`` into ``out_dir``; return the paths by name."""
    from inerf.viz.plots import plot_success_curves

    out = Path(out_dir)
    paths = {
        "markdown": out / "results.md",
        "csv": out / "results.csv",
        "trials_csv": out / "trials.csv",
        "json": out / "results.json",
        "plot": out / "success_curve.png",
    }
    md = _markdown(result)
    paths["markdown"].write_text(md, encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(result.summary[0]))
        w.writeheader()
        w.writerows(result.summary)
    flat = [{k: v for k, v in row.items() if not k.endswith("c2w")} for row in result.trials]
    with open(paths["trials_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in flat for k in row)))
        w.writeheader()
        w.writerows(flat)
    curves = result.success_curves()
    write_json(
        paths["json"],
        {
            "protocol": asdict(result.protocol),
            "pose_config": asdict(result.pose_config),
            "meta": result.meta,
            "summary": result.summary,
            "seconds": result.seconds,
            "success_curve": {k: [float(x) for x in v] for k, v in curves.items()},
            "calibration": calibration(result.trials, result.protocol),
            "trials": result.trials,
        },
    )
    p = result.protocol
    plot_success_curves(
        paths["plot"],
        curves,
        checkpoints=list(p.checkpoints),
        title=f"iNeRF success ({p.success.describe()}), start "
        + (
            f"{p.perturbation.rot_deg:g} deg / {p.perturbation.trans:g}"
            if p.perturbation.sampling == "exact"
            else f"+-{p.perturbation.rot_deg:g} deg / +-{p.perturbation.trans:g}"
        )
        + f" about the {p.perturbation.pivot}",
    )
    return paths
