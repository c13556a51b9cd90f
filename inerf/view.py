"""What ``inerf view`` shows, read from a run and from the folders ``inerf estimate`` and ``inerf track`` wrote.

:func:`load_scene` returns a :class:`inerf.viz.viewer.ViewerScene` (no viser needed to read it);
:func:`inerf.viz.viewer.serve` draws it. Everything is in the run's training frame: the training cameras
as the loader gives them (OpenCV c2w), ``pose.json``'s ``c2w``, ``trace.json``'s camera centres and
``trajectory.json``'s frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inerf.errors import InerfError
from inerf.viz.viewer import CameraSet, EstimateView, ViewerScene

__all__ = ["load_estimates", "load_scene", "load_track", "load_training_cameras"]


def _thumbnail(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` (float in [0, 1] or uint8, ``[H, W, 3+]``) as uint8 RGB with its long side <= ``max_side``."""
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img[..., :3])
    s = max_side / max(img.shape[:2])
    if s < 1:
        size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def load_training_cameras(
    run_dir: str | Path, data: str | None = None, max_cameras: int = 200, thumb_side: int = 96
) -> CameraSet:
    """The training cameras of a run (its ``train`` split, read from its data; evenly thinned to
    ``max_cameras``) with thumbnails. Raises :class:`InerfError` when the run or its data cannot be read."""
    from inerf.train.checkpoint import DatasetInfo, read_run_config

    cfg = read_run_config(run_dir)
    ds = cfg["dataset"]
    info = DatasetInfo(**{k: ds.get(k) for k in ("root", "format", "scale", "background", "near", "far")})
    info.root_relative = ds.get("root_relative")
    views = info.load("train", run_dir=run_dir, root=data)
    keep = np.unique(np.linspace(0, len(views) - 1, min(max_cameras, len(views))).round().astype(int))
    c2w = views.cameras.c2w.double().numpy()[keep]
    return CameraSet(
        c2w=c2w,
        fy=views.cameras.fy.double().numpy()[keep],
        width=views.width,
        height=views.height,
        names=[views.names[i] for i in keep],
        thumbnails=[_thumbnail(views.images[i].numpy(), thumb_side) for i in keep],
    )


def _estimate_view(folder: Path, thumb_side: int) -> EstimateView:
    pose_path = folder / "pose.json"
    try:
        pose = json.loads(pose_path.read_text(encoding="utf-8"))
        c2w = np.asarray(pose["c2w"], dtype=np.float64)
        k = pose["intrinsics"]
        fy, w, h = float(k["fy"]), int(k["width"]), int(k["height"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InerfError(f"{pose_path}: not a pose.json written by inerf estimate ({exc})") from None
    view = EstimateView(str(pose.get("target", folder.name)), c2w, fy, w, h)
    if pose.get("gt_c2w") is not None:
        view.gt = np.asarray(pose["gt_c2w"], dtype=np.float64)
    if pose.get("init_c2w") is not None:
        view.start = np.asarray(pose["init_c2w"], dtype=np.float64)
    if (folder / "target.png").is_file():
        from inerf.data.image_io import read_image

        view.thumbnail = _thumbnail(read_image(folder / "target.png"), thumb_side)
    trace_path = folder / "trace.json"
    if trace_path.is_file():
        trace = json.loads(trace_path.read_text(encoding="utf-8"))
        view.paths = [
            np.asarray(hyp["centres"], dtype=np.float64).reshape(-1, 3) for hyp in trace["hypotheses"]
        ]
        view.returned = int(trace.get("returned", 0))
    return view


def load_estimates(folder: str | Path, thumb_side: int = 128) -> list[EstimateView]:
    """The estimates of an ``inerf estimate`` output folder: one (``pose.json``) or, for a batch
    (``summary.csv``), one per image folder. One-line :class:`InerfError` for anything else."""
    import csv

    folder = Path(folder)
    if (folder / "pose.json").is_file():
        return [_estimate_view(folder, thumb_side)]
    if (folder / "summary.csv").is_file():
        with open(folder / "summary.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [_estimate_view(folder / r["folder"], thumb_side) for r in rows if r.get("folder")]
    raise InerfError(f"--estimate {folder}: no pose.json or summary.csv (an inerf estimate --out folder)")


def load_track(folder: str | Path) -> tuple[np.ndarray, tuple[float, int, int] | None]:
    """``(c2w [T, 4, 4], (fy, width, height) or None)`` of an ``inerf track`` output folder."""
    path = Path(folder) / "trajectory.json"
    if not path.is_file():
        raise InerfError(f"--track {folder}: no trajectory.json (an inerf track --out folder)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        c2w = np.asarray([f["c2w"] for f in doc["frames"]], dtype=np.float64).reshape(-1, 4, 4)
    except (ValueError, KeyError, TypeError) as exc:
        raise InerfError(f"{path}: not a trajectory written by inerf track ({exc})") from None
    k = doc.get("intrinsics")
    camera = (float(k["fy"]), int(k["width"]), int(k["height"])) if isinstance(k, dict) else None
    return c2w, camera


def load_scene(
    run_dir: str | Path,
    *,
    estimates: list[str | Path] = (),
    track: str | Path | None = None,
    data: str | None = None,
    max_cameras: int = 200,
) -> ViewerScene:
    """Read everything :func:`build_scene` draws. The run's data being unreadable is a note, not an error
    (the estimates are still drawn); a bad ``--estimate`` or ``--track`` folder is an error."""
    from inerf.train.checkpoint import read_run_config

    read_run_config(run_dir)  # a run directory, or one line saying what is wrong
    scene = ViewerScene()
    try:
        scene.training = load_training_cameras(run_dir, data, max_cameras)
    except (InerfError, OSError) as exc:
        scene.notes.append(f"training cameras not shown: {str(exc).splitlines()[0]}")
    for folder in estimates:
        scene.estimates += load_estimates(folder)
    if track is not None:
        scene.track, scene.track_camera = load_track(track)
    return scene
