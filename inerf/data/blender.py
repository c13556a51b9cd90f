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

from pathlib import Path

import torch

from inerf.data.common import (
    SplitImages,
    check_load_args,
    check_near_far,
    first_views,
    frame_c2w,
    frame_image_path,
    frame_intrinsics,
    number,
    read_json,
)
from inerf.data.image_io import parse_background, read_image
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError
from inerf.geometry.conventions import opengl_to_opencv_c2w

__all__ = ["BLENDER_SPLITS", "DEFAULT_FAR", "DEFAULT_NEAR", "is_blender", "load_blender"]

BLENDER_SPLITS = ("train", "val", "test")
DEFAULT_NEAR = 2.0
"""Ray start for the NeRF-synthetic scenes (cameras at radius ~4, objects inside the unit cube)."""
DEFAULT_FAR = 6.0
"""Ray end for the NeRF-synthetic scenes."""


def is_blender(root: str | Path) -> bool:
    """Whether ``root`` looks like a Blender-layout scene (has any ``transforms_*.json``)."""
    return any(Path(root).glob("transforms_*.json"))


def _near_far(
    root: Path, meta: dict, source: Path, near: float | None, far: float | None
) -> tuple[float, float]:
    """Explicit arguments win, then ``meta.json`` beside the transforms, then the transforms file, then
    2 and 6."""
    found = {}
    meta_path = root / "meta.json"
    if meta_path.is_file():
        side = read_json(meta_path)
        found.update({k: (number(side[k], k, meta_path), meta_path) for k in ("near", "far") if k in side})
    for k in ("near", "far"):
        if k not in found and k in meta:
            found[k] = (number(meta[k], k, source), source)
    n = float(near) if near is not None else found.get("near", (DEFAULT_NEAR,))[0]
    f = float(far) if far is not None else found.get("far", (DEFAULT_FAR,))[0]
    return check_near_far(root, n, f)


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
    root = check_load_args(root, split, BLENDER_SPLITS, scale, "a Blender scene")
    source = root / f"transforms_{split}.json"
    if not source.is_file():
        raise InerfError(f"{source}: file not found (a Blender scene needs transforms_{split}.json)")
    bg = parse_background(background)
    meta = read_json(source)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InerfError(f"{source}: expected a non-empty 'frames' list")
    frames = first_views(frames, max_views)

    stack = SplitImages(bg)
    c2w_gl, intr = [], []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise InerfError(f"{source}: frame {i} is not an object")
        path, name = frame_image_path(root, frame, i, source)
        c2w_gl.append(frame_c2w(frame, i, source))
        img = read_image(path)
        stack.check_size(path, img, scale)
        intr.append(frame_intrinsics(meta, frame, stack.size[1], stack.size[0], source, i))
        stack.add(img, name)
    c2w = opengl_to_opencv_c2w(torch.stack(c2w_gl))  # the one axis flip for this format
    cams = stack.cameras(c2w, torch.tensor(intr, dtype=torch.float64))
    n, f = _near_far(root, meta, source, near, far)
    return ViewSet(
        **stack.view_fields(source),
        cameras=cams,
        near=n,
        far=f,
        root=str(root),
        split=split,
        transform=SceneTransform.identity(original="world frame of the transforms_*.json files"),
    )
