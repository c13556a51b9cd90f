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
    "area_weights",
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
        raise InerfError(
            f"{source}: image path {relative!r} is absolute; it must be inside the dataset folder"
        )
    root_norm = os.path.normpath(os.path.abspath(root))
    joined = os.path.normpath(os.path.join(root_norm, relative))
    if os.path.commonpath([root_norm, joined]) != root_norm:
        raise InerfError(f"{source}: image path {relative!r} points outside the dataset folder {root}")
    return Path(joined)


def _is_png_16bit_colour(path: Path) -> bool:
    """Whether ``path`` is a 16-bit RGB(A) PNG (IHDR bit depth at byte 24, colour type at byte 25)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6)


def read_image(path: Path) -> np.ndarray:
    """Read an 8- or 16-bit PNG/JPEG as float32 ``[H, W, 3 or 4]`` in [0, 1] (grey is expanded to RGB).

    Raises :class:`InerfError` naming the file when it is missing or cannot be decoded.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InerfError(f"image not found: {path}")
    try:
        if _is_png_16bit_colour(path):
            # Pillow decodes 16-bit colour PNGs to 8 bits; OpenCV keeps all 16 (in BGR(A) order).
            import cv2

            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError("OpenCV could not decode it")
            img = np.ascontiguousarray(img[..., [2, 1, 0, 3][: img.shape[-1]]])
        else:
            # Name the decoder: left to guess, imageio tries every plugin on a corrupt file (TIFF, DICOM...).
            plugin = "pillow" if path.suffix.lower() in IMAGE_EXTENSIONS else None
            img = np.asarray(iio.imread(path, plugin=plugin))
    except Exception as exc:  # noqa: BLE001 - decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise InerfError(f"{path}: unreadable image ({one_line(exc)})") from None
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.bool_:  # 1-bit PNG (a mask saved as black and white)
        out = img.astype(np.float32)
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


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix of exact area-resampling weights along one axis.

    Input pixel ``i`` covers ``[i, i + 1)``; output pixel ``o`` covers ``[o s, (o + 1) s)`` of the same
    axis with ``s = n_in / n_out``. The weight is the length of their overlap divided by ``s``, so each row
    sums to 1 and an integer factor ``k`` gives the plain mean of ``k`` pixels.
    """
    s = n_in / n_out
    lo = np.arange(n_out)[:, None] * s
    i = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(lo + s, i + 1) - np.maximum(lo, i), 0.0, None)
    return overlap / s


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``[H, W, C]`` float32 to ``[height, width, C]`` with area averaging.

    Area filtering (each output pixel is the mean of the input it covers, fractions of pixels weighted by
    their covered area) is the right antialiasing for downscaling and keeps pixel centres at +0.5: the
    resized image is the same continuous picture sampled on a coarser grid, so intrinsics simply scale.
    Separable, so it is two small matrix products. Premultiply colours by alpha before calling this
    (averaging straight colours bleeds the colour of transparent pixels into the edges).
    """
    H, W = img.shape[:2]
    if (H, W) == (height, width):
        return img
    wy = area_weights(H, height).astype(np.float32)
    wx = area_weights(W, width).astype(np.float32)
    C = img.shape[2]
    rows = wy @ img.astype(np.float32, copy=False).reshape(H, W * C)  # [height, W * C]
    out = wx @ rows.reshape(height, W, C).transpose(1, 0, 2).reshape(W, height * C)  # [width, height * C]
    return np.ascontiguousarray(out.reshape(width, height, C).transpose(1, 0, 2))


def composite_straight(
    rgba: np.ndarray,
    background: tuple[float, float, float] | None,
    height: int | None = None,
    width: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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
