"""Files written for one pose estimate: pose, trajectory, overlay frames, GIF/MP4, convergence plot.

Layout of the output folder::

    pose.json            the estimate (c2w, OpenCV axes) with loss, steps, time, device, errors, settings and
                         (when computed) its uncertainty
    trajectory.csv       per step: lr, loss, errors (with ground truth) and the pose of the returned hypothesis
    hypotheses.json      with several hypotheses: start, end, loss and fate of each
    trace.json           every hypothesis's camera path during the solve (centres and viewing directions at
                         up to 60 steps), what ``inerf view`` draws
    target.png           the target as the solver saw it (composited on the field's background)
    sampling.png         the target with the sampling strategy's support tinted (keypoints, region, mask)
    frames/NNNN.png      render at the pose of step NNNN blended 50/50 with the target
    convergence.gif/.mp4 those frames as an animation
    convergence.png      loss and errors against step
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inerf.geometry import se3
from inerf.geometry.conventions import CONVENTION, opencv_to_opengl_c2w
from inerf.pose.io import pose_to_json, write_json
from inerf.pose.perturb import SUCCESS, SuccessThresholds
from inerf.pose.solver import PoseResult, PoseTarget
from inerf.render.model import Model

__all__ = [
    "OutputOptions",
    "frame_steps",
    "hypotheses_record",
    "hypotheses_trace",
    "pose_record",
    "render_frames",
    "start_errors",
    "summary_lines",
    "write_estimate_outputs",
    "write_trajectory_csv",
]


def frame_steps(steps: int, n_frames: int) -> list[int]:
    """``n_frames`` steps evenly spread over ``[0, steps]``, always including both ends."""
    if n_frames <= 1 or steps == 0:
        return sorted({0, steps})
    return sorted(set(np.linspace(0, steps, n_frames).round().astype(int).tolist()))


def render_frames(
    model: Model,
    target: PoseTarget,
    poses: torch.Tensor,
    *,
    max_side: int = 400,
    labels: list[list[str]] | None = None,
    min_side: int = 256,
) -> list[np.ndarray]:
    """Overlay frames for poses ``[F, 4, 4]``: the render at each pose blended 50/50 with the target.

    Frames are rendered at a reduced size when the target's long side exceeds ``max_side`` (intrinsics scale
    with the image; pixel centres stay at +0.5), and enlarged to at least ``min_side`` for viewing.
    """
    import cv2

    from inerf.viz.overlay import overlay_frame

    H, W = target.height, target.width
    s = min(1.0, max_side / max(H, W))
    camera = target.camera.scaled(s)
    tgt = target.image.detach().cpu().numpy()
    if (camera.height, camera.width) != (H, W):
        tgt = cv2.resize(tgt, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    device = target.image.device
    frames = []
    for i, c2w in enumerate(poses):
        out = model.render_image(camera.with_c2w(c2w.to(device=device, dtype=torch.float32)))
        frames.append(overlay_frame(out.rgb, tgt, labels[i] if labels else None, min_side=min_side))
    return frames


def write_trajectory_csv(
    path: str | Path, result: PoseResult, gt_c2w: torch.Tensor | None = None, g: int = 0
) -> Path:
    """Per-step CSV of problem ``g``'s returned hypothesis: step, lr, loss, rot/trans error, 12 pose entries."""
    track = result.track()[:, g]  # [S + 1, 4, 4]
    loss = result.trajectory.loss[:, g, int(result.hypothesis[g])]
    lr = result.trajectory.lr
    if gt_c2w is not None:
        rot = se3.rotation_error_deg(track, gt_c2w.double())
        trans = se3.translation_error(track, gt_c2w.double())
    names = [f"c2w_{r}{c}" for r in range(3) for c in range(4)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["step", "lr", "loss"] + (["rot_err_deg", "trans_err"] if gt_c2w is not None else []) + names
        )
        for s in range(track.shape[0]):
            row = [s, "" if math.isnan(lr[s]) else f"{lr[s]:.6g}", f"{loss[s]:.8g}"]
            if gt_c2w is not None:
                row += [f"{rot[s]:.6g}", f"{trans[s]:.6g}"]
            row += [f"{x:.9g}" for x in track[s, :3].reshape(-1).tolist()]
            w.writerow(row)
    return Path(path)


def _errors(c2w, gt):
    return float(se3.rotation_error_deg(c2w, gt)), float(se3.translation_error(c2w, gt))


def start_errors(result: PoseResult, gt_c2w: torch.Tensor, g: int = 0) -> dict:
    """Start errors of problem ``g`` against ``gt_c2w`` ``[4, 4]``: those of the returned hypothesis's own
    start (what its trajectory, frames and final errors continue from) and, among all ``K`` starts, the best
    one (lowest rotation error; ties by translation).

    Returns:
        ``{"rot", "trans"}`` of the returned hypothesis's start and ``{"best_rot", "best_trans",
        "best_hypothesis"}``.
    """
    starts = result.init_c2w[g]  # [K, 4, 4]
    gt = gt_c2w.reshape(4, 4)
    rot, trans = se3.rotation_error_deg(starts, gt), se3.translation_error(starts, gt)
    best = min(range(len(starts)), key=lambda k: (float(rot[k]), float(trans[k])))
    hyp = int(result.hypothesis[g])
    return {
        "rot": float(rot[hyp]),
        "trans": float(trans[hyp]),
        "best_rot": float(rot[best]),
        "best_trans": float(trans[best]),
        "best_hypothesis": best,
    }


def summary_lines(
    result: PoseResult,
    gt_c2w: torch.Tensor | None = None,
    g: int = 0,
    *,
    uncertainty=None,
    success: SuccessThresholds = SUCCESS,
) -> list[str]:
    """A short human-readable summary of problem ``g``. The errors before the arrow are those of the
    returned hypothesis's own start; with several hypotheses a line gives the best start among them; with
    an ``uncertainty`` (:class:`inerf.pose.uncertainty.PoseUncertainty`) a line gives its 1-sigma values."""
    K = result.init_c2w.shape[1]
    hyp = int(result.hypothesis[g])
    lines = [
        f"{result.steps} steps in {result.seconds:.1f} s on {result.device}"
        + (" (stopped early: updates below --stop-tol)" if result.stopped_early else "")
        + (f"; returned hypothesis {hyp} of {K}" if K > 1 else ""),
        f"final loss {float(result.loss[g]):.4e}"
        + ("" if result.status[g] == "ok" else f" (status: {result.status[g]})"),
    ]
    if gt_c2w is not None:
        start = start_errors(result, gt_c2w, g)
        r1, t1 = _errors(result.c2w[g], gt_c2w)
        lines.append(
            f"rotation error {start['rot']:.3f} -> {r1:.3f} deg, translation error {start['trans']:.4f} -> {t1:.4f}"
            + (f" (hypothesis {hyp}'s start)" if K > 1 else "")
            + ("; success" if success.ok(r1, t1) else "; not a success")
            + f" ({success.describe()})"
        )
        if K > 1:
            lines.append(
                f"best of the {K} starts: hypothesis {start['best_hypothesis']}, {start['best_rot']:.3f} deg, "
                f"{start['best_trans']:.4f}"
            )
    if uncertainty is not None:
        lines.append(uncertainty.summary())
        if gt_c2w is not None:
            inside = "inside" if uncertainty.inside(gt_c2w) else "outside"
            lines.append(f"the true pose lies {inside} the {100 * uncertainty.level:g}% confidence ellipsoid")
    return lines


CONVERGED_RATIO = 3.0
"""An estimate counts as converged when its final photometric MSE is at most this many times the field's own
MSE on held-out views (its validation PSNR): the render then matches the target about as well as the field
can match any image. Far above it, the pose is off (or the target is not the scene)."""


def convergence_verdict(final_loss: float, loss_kind: str, field_mse: float | None) -> dict:
    """``pose.json``'s ``convergence`` entry: ``converged`` / ``not converged`` from the ratio of the final
    loss to ``field_mse`` (the run's validation MSE, ``10^(-PSNR/10)``), or ``unknown`` when the run recorded
    no validation PSNR or the loss is not the MSE."""
    if field_mse is None or not math.isfinite(final_loss) or loss_kind != "mse" or field_mse <= 0:
        why = "the run recorded no validation PSNR" if field_mse is None else "the loss is not the MSE"
        return {"verdict": "unknown", "reason": why}
    ratio = final_loss / field_mse
    return {
        "verdict": "converged" if ratio <= CONVERGED_RATIO else "not converged",
        "final_mse": final_loss,
        "field_mse": field_mse,
        "ratio": ratio,
        "threshold": CONVERGED_RATIO,
    }


@dataclass
class OutputOptions:
    """What :func:`write_estimate_outputs` draws besides ``pose.json`` and the trajectory CSV."""

    frames: int = 20
    """Overlay frames (0 = none, and no GIF/MP4)."""
    max_side: int = 400
    """Long side of the rendered overlay frames (the target is reduced to it)."""
    fps: float = 5.0
    """Frames per second of the GIF and MP4."""
    video: bool = True
    """Write the convergence GIF and MP4."""
    success: SuccessThresholds = SUCCESS
    """Success thresholds: recorded in ``pose.json`` (with a ground truth) and drawn on the error plots."""
    field_mse: float | None = None
    """The field's own MSE on held-out views (from its validation PSNR), for the convergence verdict."""
    loss: str = "mse"
    """The photometric loss the solve minimised (the verdict compares MSEs only)."""


def pose_record(
    result: PoseResult, gt_c2w: torch.Tensor | None = None, g: int = 0, success: SuccessThresholds = SUCCESS
) -> dict:
    """The ``pose.json`` entries of problem ``g``: the estimate in both conventions, its loss and status, the
    solve's facts, the returned hypothesis's start and, with a ground truth, the errors (start errors of the
    returned hypothesis's own start; with several hypotheses also the best start's) and whether they are a
    ``success`` (both below the thresholds)."""
    c2w = result.c2w[g]
    hyp = int(result.hypothesis[g])
    K = int(result.init_c2w.shape[1])
    record = {
        "c2w": pose_to_json(c2w),
        "convention": CONVENTION,
        "c2w_opengl": pose_to_json(opencv_to_opengl_c2w(c2w)),
        "loss": float(result.loss[g]),
        "status": result.status[g],
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        "device": result.device,
        "hypothesis": hyp,
        "hypotheses": K,
        "init_c2w": pose_to_json(result.init_c2w[g, hyp]),
    }
    if gt_c2w is not None:
        start = start_errors(result, gt_c2w, g)
        r1, t1 = _errors(c2w, gt_c2w)
        record.update(
            {
                "gt_c2w": pose_to_json(gt_c2w),
                "rotation_error_deg": r1,
                "translation_error": t1,
                "init_rotation_error_deg": start["rot"],
                "init_translation_error": start["trans"],
                "success": {
                    "ok": bool(success.ok(r1, t1)),
                    "rotation_deg": success.rot_deg,
                    "translation": success.trans,
                },
            }
        )
        if K > 1:
            record.update(
                {
                    "best_init_hypothesis": start["best_hypothesis"],
                    "best_init_rotation_error_deg": start["best_rot"],
                    "best_init_translation_error": start["best_trans"],
                }
            )
    if result.status[g] != "ok":
        record["failed_step"] = int(result.failed_step[g].clamp_min(0).min())
    return record


def hypotheses_record(result: PoseResult, g: int = 0) -> list[dict]:
    """Per hypothesis of problem ``g``: its start, its last live step (pruned ones stop early), pose and
    loss there, the step it failed at (-1: never) and its loss at every step (NaN once pruned or failed)."""
    loss = result.trajectory.loss[:, g]  # [S + 1, K]
    # The last step with a finite loss: where the running count of finite entries first reaches its maximum.
    last_alive = torch.isfinite(loss).float().cumsum(0).argmax(0)
    return [
        {
            "hypothesis": k,
            "init_c2w": pose_to_json(result.init_c2w[g, k]),
            "last_step": int(last_alive[k]),
            "last_c2w": pose_to_json(result.trajectory.c2w[int(last_alive[k]), g, k]),
            "last_loss": float(loss[int(last_alive[k]), k]),
            "failed_step": int(result.failed_step[g, k]),
            "loss": [float(x) for x in loss[:, k]],
        }
        for k in range(loss.shape[1])
    ]


TRACE_POINTS = 60
"""Steps kept per hypothesis in ``trace.json`` (evenly spread, first and last always kept)."""


def hypotheses_trace(result: PoseResult, g: int = 0, max_points: int = TRACE_POINTS) -> dict:
    """The camera path of every hypothesis of problem ``g`` during the solve, for viewers (``trace.json``).

    Returns ``{"convention", "returned", "hypotheses": [{"hypothesis", "steps": [s...], "centres": [[x, y,
    z]...], "forward": [[...]...], "loss": [...]}]}``: at each kept step, the camera centre and its viewing
    direction (the c2w's third column, OpenCV axes) in the training frame; a pruned or failed hypothesis's
    path ends at its last live step.
    """
    steps = frame_steps(result.trajectory.steps, max_points)
    c2w = result.trajectory.c2w[steps, g]  # [P, K, 4, 4]
    loss = result.trajectory.loss[steps, g]  # [P, K]
    hyps = []
    for k in range(c2w.shape[1]):
        alive = torch.isfinite(loss[:, k]) & torch.isfinite(c2w[:, k]).flatten(1).all(1)
        keep = alive.nonzero().flatten().tolist()
        hyps.append(
            {
                "hypothesis": k,
                "steps": [steps[i] for i in keep],
                "centres": [[float(v) for v in c2w[i, k, :3, 3]] for i in keep],
                "forward": [[float(v) for v in c2w[i, k, :3, 2]] for i in keep],
                "loss": [float(loss[i, k]) for i in keep],
            }
        )
    return {"convention": CONVENTION, "returned": int(result.hypothesis[g]), "hypotheses": hyps}


def _write_images(out: Path, target: PoseTarget, sampler) -> dict[str, Path]:
    """``target.png`` and, with a sampler, ``sampling.png`` (its support tinted on the target)."""
    from PIL import Image

    from inerf.viz.overlay import mark_pixels, to_uint8

    paths = {"target": out / "target.png"}
    tgt_u8 = to_uint8(target.image)
    Image.fromarray(tgt_u8).save(paths["target"])
    if sampler is not None:
        paths["sampling"] = out / "sampling.png"
        Image.fromarray(mark_pixels(tgt_u8, sampler.support_mask().cpu())).save(paths["sampling"])
    return paths


def _write_plot(path: Path, result: PoseResult, gt: torch.Tensor | None, opt: OutputOptions) -> Path:
    """``convergence.png``: loss and (with ground truth) errors against step, every hypothesis drawn and the
    returned one highlighted."""
    from inerf.viz.plots import plot_convergence

    K = result.init_c2w.shape[1]
    loss_all = result.trajectory.loss[:, 0]  # [S + 1, K]
    rot_all = trans_all = None
    if gt is not None:
        rot_all, trans_all = (e[:, 0] for e in result.trajectory.errors(gt))

    def one_or_all(x):  # a single hypothesis is drawn as one curve [S + 1]
        return x if x is None or K > 1 else x[:, 0]

    return plot_convergence(
        path,
        one_or_all(loss_all),
        one_or_all(rot_all),
        one_or_all(trans_all),
        selected=int(result.hypothesis[0]),
        rot_thresh=opt.success.rot_deg if gt is not None else None,
        trans_thresh=opt.success.trans if gt is not None else None,
        title=f"iNeRF pose estimate ({result.steps} steps)",
    )


def _write_frames(
    out: Path,
    result: PoseResult,
    target: PoseTarget,
    model: Model,
    gt: torch.Tensor | None,
    opt: OutputOptions,
) -> dict[str, Path]:
    """``frames/NNNN.png`` along the returned hypothesis's track, labelled with step, loss and errors, and
    the GIF/MP4 made of them."""
    from PIL import Image

    from inerf.viz.video import write_gif, write_mp4

    hyp = int(result.hypothesis[0])
    steps = frame_steps(result.steps, opt.frames)
    track = result.track()[:, 0]
    labels = []
    for s in steps:
        lab = [f"step {s}", f"loss {float(result.trajectory.loss[s, 0, hyp]):.2e}"]
        if gt is not None:
            r, t = _errors(track[s], gt)
            lab.append(f"rot {r:.2f} deg  trans {t:.3f}")
        labels.append(lab)
    frames = render_frames(model, target, track[steps], max_side=opt.max_side, labels=labels)
    paths = {"frames": out / "frames"}
    paths["frames"].mkdir(exist_ok=True)
    for s, f in zip(steps, frames):
        Image.fromarray(f).save(paths["frames"] / f"{s:04d}.png")
    if opt.video:
        paths["gif"] = write_gif(out / "convergence.gif", frames, fps=opt.fps)
        mp4 = write_mp4(out / "convergence.mp4", frames, fps=opt.fps)
        if mp4 is not None:
            paths["mp4"] = mp4
    return paths


def write_estimate_outputs(
    out_dir: str | Path,
    result: PoseResult,
    target: PoseTarget,
    model: Model,
    *,
    gt_c2w: torch.Tensor | None = None,
    meta: dict | None = None,
    sampler=None,
    options: OutputOptions | None = None,
    uncertainty=None,
) -> dict:
    """Write every output of a single-problem estimate into ``out_dir`` (which must exist); return the paths.

    Args:
        result: a solve with one problem (``G = 1``).
        gt_c2w: ``[4, 4]`` ground truth, for errors in the JSON, CSV, plot and frame labels.
        meta: extra entries for ``pose.json`` (inputs, settings).
        sampler: the :class:`inerf.pose.sampling.PixelSampler` used, for ``sampling.png``.
        options: frames, video and plot settings (:class:`OutputOptions`).
        uncertainty: the estimate's :class:`inerf.pose.uncertainty.PoseUncertainty`, written to ``pose.json``
            as ``uncertainty`` (with a ground truth, also whether it lies inside the confidence ellipsoid).
    """
    opt = options or OutputOptions()
    out = Path(out_dir)
    gt = gt_c2w.double() if gt_c2w is not None else None
    paths: dict[str, Path] = {"pose": out / "pose.json"}
    record = pose_record(result, gt, success=opt.success)
    record["convergence"] = convergence_verdict(float(result.loss[0]), opt.loss, opt.field_mse)
    if uncertainty is not None:
        record["uncertainty"] = uncertainty.to_json()
        if gt is not None:
            record["uncertainty"]["gt_mahalanobis2"] = uncertainty.mahalanobis2(gt)
            record["uncertainty"]["gt_inside"] = uncertainty.inside(gt)
    write_json(paths["pose"], {**record, **(meta or {})})
    paths["trajectory"] = write_trajectory_csv(out / "trajectory.csv", result, gt)
    if result.init_c2w.shape[1] > 1:
        paths["hypotheses"] = out / "hypotheses.json"
        write_json(paths["hypotheses"], hypotheses_record(result))
    paths["trace"] = out / "trace.json"
    write_json(paths["trace"], hypotheses_trace(result))
    paths.update(_write_images(out, target, sampler))
    paths["plot"] = _write_plot(out / "convergence.png", result, gt, opt)
    if opt.frames > 0:
        paths.update(_write_frames(out, result, target, model, gt, opt))
    return paths
