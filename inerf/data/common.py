"""What every scene loader shares: its argument checks, the frames of ``transforms*.json`` files (Blender,
nerfstudio, Instant-NGP), pre-downscaled image copies, and the images and pinhole cameras of a split.

Nothing here converts camera axes: each loader converts its own format's axes once, by a named function of
:mod:`inerf.geometry.conventions`. Pixel centres are at +0.5 throughout, so intrinsics scale with the image.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from inerf.data.image_io import IMAGE_EXTENSIONS, composite_straight, inside_root, resize_area
from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import check_rigid

__all__ = [
    "SplitImages",
    "check_load_args",
    "check_near_far",
    "downscale_factor",
    "first_views",
    "frame_c2w",
    "frame_image_path",
    "frame_intrinsics",
    "image_folder",
    "number",
    "pinhole_cameras",
    "read_json",
]


def check_load_args(root: str | Path, split: str, splits: tuple[str, ...], scale, layout: str) -> Path:
    """The checks every loader starts with: ``root`` is a folder, ``split`` one of ``splits`` and ``scale`` a
    positive number. ``layout`` names the kind of scene in the error (``"a Blender scene"``)."""
    root = Path(root)
    if not root.is_dir():
        raise InerfError(f"dataset folder not found: {root}")
    if split not in splits:
        raise InerfError(f"unknown split {split!r} for {layout}; expected one of {', '.join(splits)}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InerfError(f"image scale must be a positive number, got {scale!r}")
    return root


def check_near_far(root: Path, near: float, far: float) -> tuple[float, float]:
    """``(near, far)`` if ``0 <= near < far < inf``, else a one-line :class:`InerfError` naming ``root``."""
    if not (0 <= near < far and math.isfinite(far)):
        raise InerfError(f"{root}: need 0 <= near < far, got near={near}, far={far}")
    return near, far


def first_views(views: list, max_views: int | None) -> list:
    """The first ``max_views`` (at least one) of a split's views (or view indices); all of them for None."""
    return views if max_views is None else views[: max(int(max_views), 1)]


def downscale_factor(scale: float) -> int:
    """``k`` when ``scale`` is ``1 / k`` for a whole ``k > 1`` (the factor of an ``images_k/`` copy), else 1."""
    k = round(1.0 / scale)
    return k if k > 1 and abs(1.0 / scale - k) < 1e-6 else 1


def image_folder(root: Path, name: str, scale: float) -> tuple[Path, float]:
    """The folder of a scene's images and the scale still to apply to the images read from it.

    ``scale = 1 / k`` reads ``root/{name}_k`` when it exists (LLFF, COLMAP and nerfstudio scenes ship such
    copies, resized with a proper filter; the remaining scale is 1); anything else reads ``root/{name}``.
    """
    k = downscale_factor(scale)
    if k > 1 and (root / f"{name}_{k}").is_dir():
        return root / f"{name}_{k}", 1.0
    if (root / name).is_dir():
        return root / name, scale
    raise InerfError(f"{root}: no '{name}' folder" + (f" (nor '{name}_{k}')" if k > 1 else ""))


# --- transforms*.json (Blender / nerfstudio / Instant-NGP) -------------------------------------------------


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


def number(value, what: str, source: Path, positive: bool = False) -> float:
    """``value`` (a key ``what`` of the file ``source``) as a finite float, positive if ``positive``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InerfError(f"{source}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        kind = "finite positive" if positive else "finite"
        raise InerfError(f"{source}: {what} must be a {kind} number, got {value!r}")
    return v


def frame_image_path(root: Path, frame: dict, index: int, source: Path) -> tuple[Path, str]:
    """The image of frame ``index``: its ``file_path`` inside ``root`` (``.png`` is added when it has no
    image extension) and its name relative to ``root``."""
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


def frame_c2w(frame: dict, index: int, source: Path) -> torch.Tensor:
    """``transform_matrix`` of frame ``index`` -> ``[4, 4]`` float64 c2w, validated, in the file's
    **OpenGL** camera axes (the caller converts them)."""
    if "transform_matrix" not in frame:
        raise InerfError(f"{source}: frame {index} has no 'transform_matrix'")
    try:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InerfError(f"{source}: frame {index}: transform_matrix is not a numeric matrix") from None
    return check_rigid(torch.from_numpy(m), name=f"{source}: frame {index} transform_matrix").double()


def frame_intrinsics(
    meta: dict, frame: dict, width: int, height: int, source: Path, index: int
) -> tuple[float, float, float, float]:
    """Pinhole ``(fx, fy, cx, cy)`` of frame ``index`` in pixels of the ``width x height`` image actually read.

    Keys (a frame's value wins over the file's): ``fl_x`` / ``fl_y`` (one alone: square pixels), else
    ``camera_angle_x`` (horizontal field of view, radians) and optionally ``camera_angle_y``; ``cx``, ``cy``
    (default: the image centre, which is ``W / 2`` with pixel centres at +0.5, in both tools as in inerf);
    ``w``, ``h``, the image size they are written for (default: the size read).
    """

    def get(key):
        return frame.get(key, meta.get(key))

    def positive(key):
        return number(get(key), key, source, positive=True)

    # The size the intrinsics were written for; we rescale to the size of the image on disk.
    w_ref = positive("w") if get("w") is not None else float(width)
    h_ref = positive("h") if get("h") is not None else float(height)
    if get("fl_x") is not None or get("fl_y") is not None:
        fx = positive("fl_x") if get("fl_x") is not None else positive("fl_y")
        fy = positive("fl_y") if get("fl_y") is not None else fx
    elif get("camera_angle_x") is not None:
        fx = 0.5 * w_ref / math.tan(0.5 * positive("camera_angle_x"))
        if get("camera_angle_y") is not None:
            fy = 0.5 * h_ref / math.tan(0.5 * positive("camera_angle_y"))
        else:
            fy = fx  # square pixels
    else:
        raise InerfError(
            f"{source}: frame {index}: no intrinsics (expected 'fl_x' and 'fl_y', or 'camera_angle_x', at the "
            "top level or in the frame)"
        )
    cx = number(get("cx"), "cx", source) if get("cx") is not None else 0.5 * w_ref
    cy = number(get("cy"), "cy", source) if get("cy") is not None else 0.5 * h_ref
    sx, sy = width / w_ref, height / h_ref
    return fx * sx, fy * sy, cx * sx, cy * sy


# --- the images and cameras of a split ----------------------------------------------------------------------


def pinhole_cameras(c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int) -> Cameras:
    """float32 :class:`Cameras` from ``c2w`` ``[N, 4, 4]`` (OpenCV axes) and ``intrinsics`` ``[N, 4]``
    ``(fx, fy, cx, cy)`` in pixels of ``height x width`` images."""
    return Cameras(
        c2w=c2w.float(),
        fx=intrinsics[:, 0].float(),
        fy=intrinsics[:, 1].float(),
        cx=intrinsics[:, 2].float(),
        cy=intrinsics[:, 3].float(),
        height=height,
        width=width,
    )


class SplitImages:
    """The images of one split, added as they are read: the first fixes the size every other must have,
    and each is area-resized to ``scale`` times that size, straight-alpha RGBA composited on ``background``
    on the way (``None``: straight colour is kept, the alpha goes to ``alphas``).

    Attributes:
        size: ``(H, W)`` of the images read (None before the first).
        out_size: ``(H, W)`` of the images returned.
        scale: the resize factor from ``size`` to ``out_size``.
    """

    def __init__(self, background: tuple[float, float, float] | None):
        self.background = background
        self.images: list[np.ndarray] = []
        self.alphas: list[np.ndarray] = []
        self.names: list[str] = []
        self.size: tuple[int, int] | None = None
        self.out_size: tuple[int, int] | None = None
        self.scale = 1.0

    def check_size(self, path: Path, image: np.ndarray, scale: float) -> None:
        """The first image (read from ``path``) sets the split's size and, with ``scale``, the output size;
        any later one must have that size (``scale`` is then ignored)."""
        if self.size is None:
            self.size, self.scale = image.shape[:2], scale
            self.out_size = (max(round(self.size[0] * scale), 1), max(round(self.size[1] * scale), 1))
        elif image.shape[:2] != self.size:
            raise InerfError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, but the first view's is "
                f"{self.size[1]}x{self.size[0]}; all views of a split must share one size"
            )

    def add(self, image: np.ndarray, name: str) -> None:
        """Add a checked ``[H, W, 3 or 4]`` image (see :meth:`check_size`) under ``name``."""
        if image.shape[-1] == 4:
            rgb, alpha = composite_straight(image, self.background, *self.out_size)
            self.alphas.append(alpha)
        else:
            rgb = resize_area(image, *self.out_size)
        self.images.append(rgb)
        self.names.append(name)

    def cameras(self, c2w: torch.Tensor, intrinsics: torch.Tensor) -> Cameras:
        """:func:`pinhole_cameras` of the images returned, from intrinsics in pixels of the images read."""
        cams = pinhole_cameras(c2w, intrinsics, *self.size)
        if self.out_size != self.size:
            cams = cams.scaled(self.scale)
            assert (cams.height, cams.width) == self.out_size  # Cameras.scaled rounds the size as we did
        return cams

    def view_fields(self, source: Path) -> dict:
        """``images``, ``alphas``, ``background`` and ``names`` of the :class:`ViewSet`; ``source`` names the
        scene in the error when only some images have an alpha channel (or mask)."""
        if self.alphas and len(self.alphas) != len(self.images):
            raise InerfError(f"{source}: some views have an alpha channel (or mask) and others do not")
        return {
            "images": torch.from_numpy(np.stack(self.images)).float(),
            "alphas": torch.from_numpy(np.stack(self.alphas)) if self.alphas else None,
            # Without alpha there is nothing to composite; record the requested colour (white if "none") so a
            # renderer configured from this ViewSet still has a background.
            "background": self.background
            if (self.alphas or self.background is not None)
            else (1.0, 1.0, 1.0),
            "names": self.names,
        }
