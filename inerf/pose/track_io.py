"""Reading image sequences and trajectories for tracking, and writing what ``inerf track`` produces.

Inputs:

* a folder of images (PNG/JPG, sorted by name with numbers compared as numbers: ``r_2`` before ``r_10``),
  or a video file (anything OpenCV decodes: MP4, AVI, MOV, MKV); RGBA images are composited on the
  field's background;
* a trajectory (ground truth or a start), format told by its content: TUM (8 numbers a line), KITTI (12),
  JSON with ``frames[].transform_matrix`` (Blender / nerfstudio, OpenGL axes), ``poses[].c2w``
  (:func:`inerf.geometry.formats.write_poses`) or ``frames[].c2w`` (``trajectory.json`` written here).

Outputs (:func:`write_track_outputs`), in the output folder::

    trajectory.json      per frame: name, timestamp, c2w (OpenCV), loss, steps, seconds, re-localisation,
                         errors and uncertainty when known; the settings and the measured frame rate
    trajectory.tum       timestamp tx ty tz qx qy qz qw  (camera-to-world, OpenCV camera axes)
    trajectory.kitti     the 3x4 c2w of each frame, row-major
    errors.csv, errors.png   with ground truth: rotation / translation error and loss per frame
    trajectory.png       camera centres seen from above and from the side (with ground truth when given)
    overlay.mp4/.gif     each frame blended with the render at its estimated pose
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.geometry.formats import read_poses, write_poses
from inerf.pose.io import composite_target, pose_to_json, write_json
from inerf.pose.perturb import SUCCESS
from inerf.pose.problem import PoseTarget
from inerf.pose.track import Frame, TrackResult

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "image_files",
    "iter_frames",
    "natural_key",
    "read_named_poses",
    "read_trajectory",
    "write_track_outputs",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def natural_key(path: Path):
    """Sort key of natural name order (``img2`` before ``img10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: str | Path, flag: str = "--images") -> list[Path]:
    """The images of ``folder`` in natural order (one-line error when there are none)."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise InerfError(f"{flag} {folder}: no PNG or JPG images in the folder")
    return files


def _video_frames(path: Path, flag: str) -> Iterator[tuple[str, float | None, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InerfError(f"{flag} {path}: cannot open the video")
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            yield f"{path.name}#{i}", (ms / 1000.0 if ms > 0 or i == 0 else None), rgb
            i += 1
        if i == 0:
            raise InerfError(f"{flag} {path}: the video has no frames OpenCV can decode")
    finally:
        cap.release()


def _raw_frames(source: Path, flag: str) -> Iterator[tuple[str, float | None, np.ndarray]]:
    from inerf.data.image_io import read_image

    if source.is_dir():
        for p in image_files(source, flag):
            yield p.name, None, read_image(p)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        yield from _video_frames(source, flag)
    elif source.exists():
        raise InerfError(
            f"{flag} {source}: expected a folder of images or a video ({', '.join(VIDEO_SUFFIXES)})"
        )
    else:
        raise InerfError(f"{flag} {source}: not found")


def iter_frames(
    source: str | Path,
    camera_for,
    background,
    device,
    *,
    fps: float = 30.0,
    stride: int = 1,
    max_frames: int | None = None,
    flag: str = "--images",
) -> Iterator[Frame]:
    """The frames of a folder or video as :class:`Frame` targets on ``device``, undistorted when their
    camera has a lens.

    Args:
        camera_for: ``(width, height) -> (Cameras, Undistorter or None)``, the camera of a frame of that size
            (called once, for the first frame; every frame must have its size). An
            :class:`~inerf.data.undistort.Undistorter` resamples each frame into the pinhole camera beside it
            (:func:`inerf.cli.pose_options.camera_source`, as ``inerf estimate`` reads one image).
        background: RGB the RGBA images are composited on (the field's).
        fps: frame rate for timestamps where the source has none (``i / fps``).
        stride: keep every ``stride``-th frame.
        max_frames: stop after this many kept frames.
    """
    camera = undistorter = size = None
    kept = 0
    for i, (name, stamp, raw) in enumerate(_raw_frames(Path(source), flag)):
        if i % stride:
            continue
        if max_frames is not None and kept >= max_frames:
            break
        hw = tuple(raw.shape[:2])
        if size is None:
            camera, undistorter = camera_for(hw[1], hw[0])
            size, camera = hw, camera.to(device)
        elif hw != size:
            raise InerfError(
                f"{flag} {source}: frame {name} is {hw[1]}x{hw[0]}, the first was {size[1]}x{size[0]}"
            )
        if undistorter is not None:
            raw = undistorter.image(raw)
        image, alpha = composite_target(raw, background)
        target = PoseTarget(image.to(device), camera, alpha.to(device) if alpha is not None else None)
        yield Frame(target, name, stamp if stamp is not None else i / fps)
        kept += 1


def read_trajectory(path: str | Path, flag: str = "--gt") -> torch.Tensor:
    """Poses ``[N, 4, 4]`` (float64, OpenCV c2w) of a trajectory file, its format told by its content (see
    the module docstring)."""
    return read_named_poses(path, flag, colmap=False)[0]


def read_named_poses(
    path: str | Path, flag: str = "--gt", *, colmap: bool = True
) -> tuple[torch.Tensor, list[str] | None]:
    """``(c2w [N, 4, 4] float64 OpenCV, image names or None)`` of a poses file, its format told by its
    content: the trajectories of the module docstring and, with ``colmap``, a COLMAP ``images.txt`` (10
    fields on an image's first line; its poses come with names, a TUM or KITTI file's without)."""
    path = Path(path)
    if not path.is_file():
        raise InerfError(f"{flag} {path}: not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InerfError(f"{flag} {path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
        frames = doc.get("frames") if isinstance(doc, dict) else None
        if isinstance(frames, list) and frames and isinstance(frames[0], dict) and "c2w" in frames[0]:
            from inerf.geometry.conventions import check_rigid  # an inerf trajectory.json

            try:
                c2w = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise InerfError(f"{flag} {path}: malformed trajectory ({exc})") from None
            check_rigid(c2w, f"{flag} {path}")  # validates only (it returns float32): keep the float64
            return c2w, [str(f.get("name", "")) for f in frames]
        if isinstance(frames, list):  # Blender / nerfstudio transforms
            rec = read_poses(path, "nerfstudio")
        elif isinstance(doc, dict) and isinstance(doc.get("poses"), list):
            rec = read_poses(
                path, "opengl" if str(doc.get("convention", "")).startswith("opengl") else "opencv"
            )
        else:
            raise InerfError(f"{flag} {path}: a JSON trajectory needs 'frames' or 'poses'")
        return rec.c2w, rec.names
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    formats = {8: "tum", 12: "kitti"} | ({10: "colmap"} if colmap else {})
    fmt = formats.get(len(first.split()))
    if fmt is None:
        what = "a COLMAP images.txt, " if colmap else ""
        raise InerfError(f"{flag} {path}: not {what}a TUM (8 numbers a line) or KITTI (12) trajectory")
    rec = read_poses(path, fmt)
    return rec.c2w, (rec.names if fmt == "colmap" else None)


def _frame_records(result: TrackResult, gt: torch.Tensor | None, uncertainty: list | None) -> list[dict]:
    rot = trans = None
    if gt is not None:
        rot, trans = result.errors(gt)
    rows = []
    for k, f in enumerate(result.frames):
        row = {
            "index": f.index,
            "name": f.name,
            "timestamp": f.timestamp,
            "c2w": pose_to_json(f.c2w),
            "loss": f.loss,
            "steps": f.steps,
            "seconds": f.seconds,
            "relocalized": f.relocalized,
            "status": f.status,
        }
        if gt is not None:
            row.update({"rotation_error_deg": float(rot[k]), "translation_error": float(trans[k])})
        if uncertainty is not None and uncertainty[k] is not None:
            u = uncertainty[k]
            row.update({"rotation_sigma_deg": u.rotation_sigma_deg, "translation_sigma": u.translation_sigma})
        rows.append(row)
    return rows


def _stats(values: list[float]) -> dict:
    """Mean, median and maximum of per-frame errors."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "max": float(v.max())}


def _write_errors_csv(path: Path, rows: list[dict]) -> Path:
    """One row per frame: index, name, timestamp, rotation and translation errors, loss, re-localisation."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["frame", "name", "timestamp", "rot_err_deg", "trans_err", "loss", "relocalized"])
        for r in rows:
            w.writerow(
                [r["index"], r["name"], f"{r['timestamp']:.6g}", f"{r['rotation_error_deg']:.6g}"]
                + [f"{r['translation_error']:.6g}", f"{r['loss']:.6g}", r["relocalized"]]
            )
    return path


def write_track_outputs(
    out: str | Path,
    result: TrackResult,
    *,
    gt_c2w: torch.Tensor | None = None,
    overlays: list[np.ndarray] | None = None,
    video_fps: float = 10.0,
    meta: dict | None = None,
    uncertainty: list | None = None,
) -> dict[str, Path]:
    """Write the files of the module docstring into ``out`` (which must exist); return them by name.

    Args:
        gt_c2w: ``[N, 4, 4]`` ground truth, one pose per tracked frame.
        overlays: uint8 ``[h, w, 3]`` overlay frames for the video (None or empty: no video).
        meta: extra entries for ``trajectory.json`` (inputs, settings).
        uncertainty: per frame, a :class:`~inerf.pose.uncertainty.PoseUncertainty` or None.
    """
    from inerf.viz.track_plots import plot_track_errors, plot_trajectory

    out = Path(out)
    c2w = result.c2w()
    paths = {
        "json": out / "trajectory.json",
        "tum": out / "trajectory.tum",
        "kitti": out / "trajectory.kitti",
    }
    rows = _frame_records(result, gt_c2w, uncertainty)
    doc = {
        "format": "inerf.trajectory",
        "convention": "opencv_c2w",
        "axes": "OpenCV camera axes: x right, y down, looks along +z; c2w maps camera to world",
        "frames": rows,
        "fps": result.fps,
        "seconds": result.seconds,
        "device": result.device,
        "relocalized": sum(bool(f.relocalized) for f in result.frames[1:]),
        "track": asdict(result.config),
        "pose_config": asdict(result.pose_config),
        "recover_config": asdict(result.recover_config),
        **(meta or {}),
    }
    if gt_c2w is not None:
        ok = [bool(SUCCESS.ok(r["rotation_error_deg"], r["translation_error"])) for r in rows]
        doc["errors"] = {
            "rotation_deg": _stats([r["rotation_error_deg"] for r in rows]),
            "translation": _stats([r["translation_error"] for r in rows]),
            "success": {
                "frames": sum(ok),
                "fraction": sum(ok) / len(ok),
                "rotation_deg": SUCCESS.rot_deg,
                "translation": SUCCESS.trans,
            },
        }
    write_json(paths["json"], doc)
    stamps = np.array([f.timestamp for f in result.frames])
    write_poses(paths["tum"], c2w, "tum", timestamps=stamps, frame="the run's (training) world frame")
    write_poses(paths["kitti"], c2w, "kitti")
    reloc = [f.index for f in result.frames if f.relocalized and f.index > 0]
    if gt_c2w is not None:
        paths["csv"] = _write_errors_csv(out / "errors.csv", rows)
        paths["errors_plot"] = plot_track_errors(
            out / "errors.png",
            [r["rotation_error_deg"] for r in rows],
            [r["translation_error"] for r in rows],
            [r["loss"] for r in rows],
            relocalized=reloc,
        )
    paths["trajectory_plot"] = plot_trajectory(
        out / "trajectory.png", c2w, gt_c2w, relocalized=reloc, title=f"inerf track: {len(rows)} frames"
    )
    if overlays:
        from inerf.viz.video import write_gif, write_mp4

        paths["gif"] = write_gif(out / "overlay.gif", overlays, fps=video_fps, hold_last=0.0)
        mp4 = write_mp4(out / "overlay.mp4", overlays, fps=video_fps, hold_last=0.0)
        if mp4 is not None:
            paths["mp4"] = mp4
    return paths
