"""NeRF-synthetic ("Blender") scenes: ``transforms_{train,val,test}.json`` + images.

Layout::

    ROOT/transforms_train.json   {"camera_angle_x": 0.69, "frames": [{"file_path": "./train/r_0",
                                  "transform_matrix": [[...4x4 c2w, OpenGL camera axes...]]}, ...]}
    ROOT/train/r_0.png ...       RGBA, straight alpha
    ROOT/meta.json               optional; its "near"/"far" (written by ``inerf synth``) set the ray bounds

Intrinsics: ``camera_angle_x`` (horizontal field of view, radians; square pixels, centred principal
point) or the instant-ngp / nerfstudio keys ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (pixels
of a ``w x h`` image; per-frame values override the file's). Both put pixel centres at +0.5 with a
centred camera at ``cx = W / 2``, our convention, so no offset is applied.

``transform_matrix`` is converted from OpenGL to OpenCV camera axes here, once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from inerf.data.image_io import (
    IMAGE_EXTENSIONS,
    composite_straight,
    inside_root,
    parse_background,
    read_image,
    resize_area,
)
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import check_rigid, opengl_to_opencv_c2w

__all__ = ["BLENDER_SPLITS", "DEFAULT_FAR", "DEFAULT_NEAR", "is_blender", "load_blender", "read_json"]

BLENDER_SPLITS = ("train", "val", "test")
DEFAULT_NEAR = 2.0
"""Ray start for the NeRF-synthetic scenes (cameras at radius ~4, objects inside the unit cube)."""
DEFAULT_FAR = 6.0
"""Ray end for the NeRF-synthetic scenes."""


def is_blender(root: str | Path) -> bool:
    """Whether ``root`` looks like a Blender-layout scene (has any ``transforms_*.json``)."""
    return any(Path(root).glob("transforms_*.json"))


def read_json(path: Path) -> dict:
    """Parse a JSON object, turning every failure into a one-line :class:`InerfError` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InerfError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InerfError(f"{path}: malformed JSON ({exc.msg} at {where})") from None
    except UnicodeDecodeError:
        raise InerfError(f"{path}: malformed JSON (not UTF-8 text)") from None
    if not isinstance(data, dict):
        raise InerfError(f"{path}: malformed JSON (expected an object at the top level)")
    return data


def _number(value, what: str, source: Path, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InerfError(f"{source}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        kind = "finite positive" if positive else "finite"
        raise InerfError(f"{source}: {what} must be a {kind} number, got {value!r}")
    return v


def _frame_image_path(root: Path, frame: dict, index: int, source: Path) -> tuple[Path, str]:
    """Resolve ``file_path`` (with or without extension; ``.png`` is added if it has none)."""
    rel = frame.get("file_path")
    if not isinstance(rel, str) or not rel:
        raise InerfError(f"{source}: frame {index} has no 'file_path' string")
    base = inside_root(root, rel, source)
    if base.suffix.lower() in IMAGE_EXTENSIONS:
        candidates = [base]
    else:
        candidates = [base.with_name(base.name + ".png"), base]
    for cand in candidates:
        if cand.is_file():
            return cand, Path(os.path.relpath(cand, os.path.abspath(root))).as_posix()
    raise InerfError(f"{source}: frame {index}: image not found: {candidates[0]}")


def _frame_c2w(frame: dict, index: int, source: Path) -> torch.Tensor:
    """``transform_matrix`` -> ``[4, 4]`` float64 c2w in OpenGL axes, validated."""
    if "transform_matrix" not in frame:
        raise InerfError(f"{source}: frame {index} has no 'transform_matrix'")
    try:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InerfError(f"{source}: frame {index}: transform_matrix is not a numeric matrix") from None
    return check_rigid(torch.from_numpy(m), name=f"{source}: frame {index} transform_matrix").double()


def _frame_intrinsics(meta: dict, frame: dict, width: int, height: int, source: Path) -> tuple[float, ...]:
    """``(fx, fy, cx, cy)`` in pixels of the ``width x height`` image actually read."""

    def get(key):
        return frame.get(key, meta.get(key))

    # The size the intrinsics were written for; we rescale to the size of the image on disk.
    w_ref = _number(get("w"), "w", source, positive=True) if get("w") is not None else float(width)
    h_ref = _number(get("h"), "h", source, positive=True) if get("h") is not None else float(height)
    if get("fl_x") is not None:
        fx = _number(get("fl_x"), "fl_x", source, positive=True)
        fy = _number(get("fl_y"), "fl_y", source, positive=True) if get("fl_y") is not None else fx
    elif get("camera_angle_x") is not None:
        angle_x = _number(get("camera_angle_x"), "camera_angle_x", source, positive=True)
        fx = 0.5 * w_ref / math.tan(0.5 * angle_x)
        if get("camera_angle_y") is not None:
            angle_y = _number(get("camera_angle_y"), "camera_angle_y", source, positive=True)
            fy = 0.5 * h_ref / math.tan(0.5 * angle_y)
        else:
            fy = fx  # square pixels
    else:
        raise InerfError(f"{source}: no intrinsics: expected 'camera_angle_x' or 'fl_x'")
    cx = _number(get("cx"), "cx", source) if get("cx") is not None else 0.5 * w_ref
    cy = _number(get("cy"), "cy", source) if get("cy") is not None else 0.5 * h_ref
    sx, sy = width / w_ref, height / h_ref
    return fx * sx, fy * sy, cx * sx, cy * sy


def _near_far(
    root: Path, meta: dict, source: Path, near: float | None, far: float | None
) -> tuple[float, float]:
    """Explicit arguments win, then ``meta.json`` beside the transforms, then the transforms file, then
    2 and 6."""
    found = {}
    meta_path = root / "meta.json"
    if meta_path.is_file():
        side = read_json(meta_path)
        found.update({k: (_number(side[k], k, meta_path), meta_path) for k in ("near", "far") if k in side})
    for k in ("near", "far"):
        if k not in found and k in meta:
            found[k] = (_number(meta[k], k, source), source)
    n = float(near) if near is not None else found.get("near", (DEFAULT_NEAR,))[0]
    f = float(far) if far is not None else found.get("far", (DEFAULT_FAR,))[0]
    if not (0 <= n < f and math.isfinite(f)):
        raise InerfError(f"{root}: need 0 <= near < far, got near={n}, far={f}")
    return n, f


def load_blender(
    root: str | Path,
    split: str = "train",
    *,
    scale: float = 1.0,
    background="white",
    near: float | None = None,
    far: float | None = None,
    max_views: int | None = None,
) -> ViewSet:
    """Load one split of a Blender-layout scene.

    Args:
        root: the scene folder.
        split: ``train``, ``val`` or ``test`` (reads ``transforms_{split}.json``).
        scale: image scale (0.5 = NeRF's "half_res"); images are area-filtered, intrinsics scaled.
        background: ``white`` (default, as NeRF), ``black``, ``none`` (straight colour, the caller
            composites using ``alphas``), or RGB values in [0, 1]. Ignored for images without alpha.
        near, far: ray bounds; default from ``meta.json``, else 2 and 6.
        max_views: keep only the first ``max_views`` frames.
    Returns:
        A :class:`ViewSet` in the internal convention (OpenCV axes, c2w). ``background`` is None when
        ``background="none"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise InerfError(f"dataset folder not found: {root}")
    if split not in BLENDER_SPLITS:
        raise InerfError(
            f"unknown split {split!r} for a Blender scene; expected one of {', '.join(BLENDER_SPLITS)}"
        )
    source = root / f"transforms_{split}.json"
    if not source.is_file():
        raise InerfError(f"{source}: file not found (a Blender scene needs transforms_{split}.json)")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InerfError(f"image scale must be a positive number, got {scale!r}")
    bg = parse_background(background)
    meta = read_json(source)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InerfError(f"{source}: expected a non-empty 'frames' list")
    if max_views is not None:
        frames = frames[: max(int(max_views), 1)]

    images, alphas, names, c2w_gl, intr = [], [], [], [], []
    full_size = out_size = None
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise InerfError(f"{source}: frame {i} is not an object")
        path, name = _frame_image_path(root, frame, i, source)
        c2w_gl.append(_frame_c2w(frame, i, source))
        img = read_image(path)
        if full_size is None:
            full_size = img.shape[:2]
            out_size = (max(round(full_size[0] * scale), 1), max(round(full_size[1] * scale), 1))
        elif img.shape[:2] != full_size:
            raise InerfError(
                f"{path}: image is {img.shape[1]}x{img.shape[0]}, but the first frame's is "
                f"{full_size[1]}x{full_size[0]}; all views of a split must share one size"
            )
        intr.append(_frame_intrinsics(meta, frame, full_size[1], full_size[0], source))
        if img.shape[-1] == 4:
            rgb, alpha = composite_straight(img, bg, *out_size)
            alphas.append(alpha)
        else:
            rgb = resize_area(img, *out_size)
        images.append(rgb)
        names.append(name)
    if alphas and len(alphas) != len(images):
        raise InerfError(f"{source}: some images have an alpha channel and others do not")

    intr_t = torch.tensor(intr, dtype=torch.float64)
    c2w = opengl_to_opencv_c2w(torch.stack(c2w_gl))  # the one axis flip for this format
    cams = Cameras(
        c2w=c2w.float(),
        fx=intr_t[:, 0].float(),
        fy=intr_t[:, 1].float(),
        cx=intr_t[:, 2].float(),
        cy=intr_t[:, 3].float(),
        height=full_size[0],
        width=full_size[1],
    )
    if out_size != full_size:
        cams = cams.scaled(scale)
        # Cameras.scaled rounds the size the same way; keep both in lock-step.
        assert (cams.height, cams.width) == out_size
    n, f = _near_far(root, meta, source, near, far)
    return ViewSet(
        images=torch.from_numpy(np.stack(images)),
        alphas=torch.from_numpy(np.stack(alphas)) if alphas else None,
        cameras=cams,
        near=n,
        far=f,
        # Without alpha there is nothing to composite; record the requested colour (white if "none") so a
        # renderer configured from this ViewSet still has a background.
        background=bg if (alphas or bg is not None) else (1.0, 1.0, 1.0),
        names=names,
        root=str(root),
        split=split,
        transform=SceneTransform.identity(original="world frame of the transforms_*.json files"),
    )
