"""Image reading, alpha compositing and area resizing shared by the scene loaders.

Images are float32 ``[H, W, C]`` numpy arrays in [0, 1] here (``C`` = 3, or 4 with straight alpha);
loaders turn them into torch tensors once at the end. Colour values are kept as stored (sRGB-encoded),
as NeRF does: the field learns display colours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inerf.errors import InerfError

__all__ = [
    "BACKGROUNDS",
    "IMAGE_EXTENSIONS",
    "composite_straight",
    "inside_root",
    "one_line",
    "parse_background",
    "read_image",
    "resize_area",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
"""Extensions the loaders accept (lower case)."""

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "none": None}
"""Named backgrounds for RGBA images. ``none`` keeps straight (un-composited) colour plus alpha."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (decoder errors often span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def parse_background(background) -> tuple[float, float, float] | None:
    """``"white"``/``"black"``/``"none"``, a float grey level or an RGB triple -> RGB tuple or None."""
    if background is None:
        return None
    if isinstance(background, str):
        key = background.strip().lower()
        if key not in BACKGROUNDS:
            raise InerfError(f"unknown background {background!r}; expected one of {', '.join(BACKGROUNDS)}")
        return BACKGROUNDS[key]
    values = np.atleast_1d(np.asarray(background, dtype=np.float64))
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.shape != (3,) or not np.all((values >= 0) & (values <= 1)):
        raise InerfError(f"background must be a name or RGB values in [0, 1], got {background!r}")
    return tuple(float(v) for v in values)


def inside_root(root: Path, relative: str, source: Path) -> Path:
    """Join a path read from a dataset file to the dataset folder, refusing any that leaves it.

    The check is lexical (normalised path, no symlink resolution) so a dataset may link its image folders
    elsewhere, but a file cannot name ``../../etc/passwd`` or an absolute path.
    """
    if os.path.isabs(relative) or Path(relative).drive:
        raise InerfError(f"{source}: image path {relative!r} is absolute; it must be inside the dataset folder")
    root_norm = os.path.normpath(os.path.abspath(root))
    joined = os.path.normpath(os.path.join(root_norm, relative))
    if os.path.commonpath([root_norm, joined]) != root_norm:
        raise InerfError(f"{source}: image path {relative!r} points outside the dataset folder {root}")
    return Path(joined)


def read_image(path: Path) -> np.ndarray:
    """Read an 8- or 16-bit PNG/JPEG as float32 ``[H, W, 3 or 4]`` in [0, 1] (grey is expanded to RGB).

    Raises :class:`InerfError` naming the file when it is missing or cannot be decoded.
    """
    import imageio.v3 as iio

    if not Path(path).is_file():
        raise InerfError(f"image not found: {path}")
    try:
        img = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise InerfError(f"{path}: unreadable image ({one_line(exc)})") from None
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        out = img.astype(np.float32)
    else:
        raise InerfError(f"{path}: unsupported pixel type {img.dtype}")
    if out.ndim == 2:
        out = out[..., None]
    if out.ndim != 3 or out.shape[-1] not in (1, 2, 3, 4):
        raise InerfError(f"{path}: expected a grey, RGB or RGBA image, got shape {img.shape}")
    if out.shape[-1] in (1, 2):  # grey (+ alpha) -> RGB (+ alpha)
        out = np.concatenate([np.repeat(out[..., :1], 3, -1), out[..., 1:]], -1)
    return out


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``[H, W, C]`` float32 to ``[height, width, C]`` with area averaging.

    Area filtering (each output pixel is the mean of the input pixels it covers) is the right
    antialiasing for downscaling and keeps pixel centres at +0.5: the resized image is the same
    continuous picture sampled on a coarser grid, so intrinsics simply scale. Premultiply colours by
    alpha before calling this (averaging straight colours bleeds the colour of transparent pixels).
    """
    if img.shape[:2] == (height, width):
        return img
    import cv2

    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return out.reshape(height, width, img.shape[-1])


def composite_straight(rgba: np.ndarray, background: tuple[float, float, float] | None,
                       height: int | None = None, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Composite a straight-alpha RGBA image on ``background``, resizing to ``height x width`` if given.

    Returns ``(rgb [h, w, 3], alpha [h, w])``. Colour is premultiplied before resizing, which makes
    "composite then resize" and "resize then composite" agree exactly. With ``background=None`` the
    returned colour is straight again (premultiplied colour / alpha, 0 where alpha is 0), so callers can
    composite on any background later.
    """
    rgb, alpha = rgba[..., :3], rgba[..., 3:4]
    premult = np.concatenate([rgb * alpha, alpha], -1)
    if height is not None and width is not None:
        premult = resize_area(premult, height, width)
    alpha = np.clip(premult[..., 3:4], 0.0, 1.0)
    if background is None:
        # Straight colour: undo the premultiplication where there is any coverage.
        rgb = np.where(alpha > 0, premult[..., :3] / np.maximum(alpha, 1e-8), 0.0)
    else:
        rgb = premult[..., :3] + (1.0 - alpha) * np.asarray(background, dtype=np.float32)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), alpha[..., 0].astype(np.float32)
