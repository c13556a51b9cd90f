"""Files written for one pose estimate: pose, trajectory, overlay frames, GIF/MP4, convergence plot.

Layout of the output folder::

    pose.json            the estimate (c2w, OpenCV axes) with loss, steps, time, device, errors, settings
    trajectory.csv       per step: lr, loss, errors (with ground truth) and the pose of the returned hypothesis
    hypotheses.json      with several hypotheses: start, end, loss and fate of each
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
from inerf.pose.solver import PoseResult, PoseTarget
from inerf.render.model import Model

__all__ = [
    "OutputOptions",
    "frame_steps",
    "render_frames",
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


def summary_lines(result: PoseResult, gt_c2w: torch.Tensor | None = None, g: int = 0) -> list[str]:
    """A short human-readable summary of problem ``g``."""
    K = result.init_c2w.shape[1]
    lines = [
        f"{result.steps} steps in {result.seconds:.1f} s on {result.device}"
        + (" (stopped early: updates below --stop-tol)" if result.stopped_early else "")
        + (f"; returned hypothesis {int(result.hypothesis[g])} of {K}" if K > 1 else ""),
        f"final loss {float(result.loss[g]):.4e}"
        + ("" if result.status[g] == "ok" else f" (status: {result.status[g]})"),
    ]
    if gt_c2w is not None:
        r0, t0 = _errors(result.init_c2w[g, 0], gt_c2w)
        r1, t1 = _errors(result.c2w[g], gt_c2w)
        lines.append(f"rotation error {r0:.3f} -> {r1:.3f} deg, translation error {t0:.4f} -> {t1:.4f}")
    return lines


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
    rot_thresh: float = 5.0
    """Success threshold drawn on the rotation-error plot (degrees)."""
    trans_thresh: float = 0.05
    """Success threshold drawn on the translation-error plot (scene units)."""


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
) -> dict:
    """Write every output of a single-problem estimate into ``out_dir`` (which must exist); return the paths.

    Args:
        result: a solve with one problem (``G = 1``).
        gt_c2w: ``[4, 4]`` ground truth, for errors in the JSON, CSV, plot and frame labels.
        meta: extra entries for ``pose.json`` (inputs, settings).
        sampler: the :class:`inerf.pose.sampling.PixelSampler` used, for ``sampling.png``.
        options: frames, video and plot settings (:class:`OutputOptions`).
    """
    from PIL import Image

    from inerf.viz.overlay import mark_pixels, to_uint8
    from inerf.viz.plots import plot_convergence
    from inerf.viz.video import write_gif, write_mp4

    opt = options or OutputOptions()
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    gt = gt_c2w.double() if gt_c2w is not None else None
    c2w = result.c2w[0]
    record = {
        "c2w": pose_to_json(c2w),
        "convention": CONVENTION,
        "c2w_opengl": pose_to_json(opencv_to_opengl_c2w(c2w)),
        "loss": float(result.loss[0]),
        "status": result.status[0],
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        "device": result.device,
        "hypothesis": int(result.hypothesis[0]),
        "hypotheses": int(result.init_c2w.shape[1]),
        "init_c2w": pose_to_json(result.init_c2w[0, int(result.hypothesis[0])]),
    }
    if gt is not None:
        r0, t0 = _errors(result.init_c2w[0, 0], gt)
        r1, t1 = _errors(c2w, gt)
        record.update(
            {
                "gt_c2w": pose_to_json(gt),
                "rotation_error_deg": r1,
                "translation_error": t1,
                "init_rotation_error_deg": r0,
                "init_translation_error": t0,
            }
        )
    if result.status[0] != "ok":
        record["failed_step"] = int(result.failed_step[0].clamp_min(0).min())
    record.update(meta or {})
    paths["pose"] = out / "pose.json"
    write_json(paths["pose"], record)
    paths["trajectory"] = write_trajectory_csv(out / "trajectory.csv", result, gt)

    K = result.init_c2w.shape[1]
    loss_all = result.trajectory.loss[:, 0]  # [S + 1, K]
    if K > 1:
        last_alive = (
            torch.isfinite(loss_all).float().cumsum(0).argmax(0)
        )  # last step each hypothesis was live
        paths["hypotheses"] = out / "hypotheses.json"
        write_json(
            paths["hypotheses"],
            [
                {
                    "hypothesis": k,
                    "init_c2w": pose_to_json(result.init_c2w[0, k]),
                    "last_step": int(last_alive[k]),
                    "last_c2w": pose_to_json(result.trajectory.c2w[int(last_alive[k]), 0, k]),
                    "last_loss": float(loss_all[int(last_alive[k]), k]),
                    "failed_step": int(result.failed_step[0, k]),
                    "loss": [float(x) for x in loss_all[:, k]],
                }
                for k in range(K)
            ],
        )

    tgt_u8 = to_uint8(target.image)
    paths["target"] = out / "target.png"
    Image.fromarray(tgt_u8).save(paths["target"])
    if sampler is not None:
        paths["sampling"] = out / "sampling.png"
        Image.fromarray(mark_pixels(tgt_u8, sampler.support_mask().cpu())).save(paths["sampling"])

    hyp = int(result.hypothesis[0])
    rot_all = trans_all = None
    if gt is not None:
        rot_all, trans_all = result.trajectory.errors(gt)
        rot_all, trans_all = rot_all[:, 0], trans_all[:, 0]
    paths["plot"] = plot_convergence(
        out / "convergence.png",
        loss_all if K > 1 else loss_all[:, 0],
        None if rot_all is None else (rot_all if K > 1 else rot_all[:, 0]),
        None if trans_all is None else (trans_all if K > 1 else trans_all[:, 0]),
        selected=hyp,
        rot_thresh=opt.rot_thresh if gt is not None else None,
        trans_thresh=opt.trans_thresh if gt is not None else None,
        title=f"iNeRF pose estimate ({result.steps} steps)",
    )

    if opt.frames > 0:
        steps = frame_steps(result.steps, opt.frames)
        track = result.track()[:, 0]
        labels = []
        for s in steps:
            lab = [f"step {s}", f"loss {float(loss_all[s, hyp]):.2e}"]
            if gt is not None:
                r, t = _errors(track[s], gt)
                lab.append(f"rot {r:.2f} deg  trans {t:.3f}")
            labels.append(lab)
        frames = render_frames(model, target, track[steps], max_side=opt.max_side, labels=labels)
        fdir = out / "frames"
        fdir.mkdir(exist_ok=True)
        for s, f in zip(steps, frames):
            Image.fromarray(f).save(fdir / f"{s:04d}.png")
        paths["frames"] = fdir
        if opt.video:
            paths["gif"] = write_gif(out / "convergence.gif", frames, fps=opt.fps)
            mp4 = write_mp4(out / "convergence.mp4", frames, fps=opt.fps)
            if mp4 is not None:
                paths["mp4"] = mp4
    return paths
