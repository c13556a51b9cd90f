"""Frames for looking at a pose estimate: render/target blends, labels, pixel markers.

All functions take float images ``[H, W, 3]`` in [0, 1] (tensors or arrays) or uint8 arrays and return
uint8 ``[H, W, 3]`` numpy arrays, ready for PNG, GIF or MP4 writers.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["annotate", "blend", "enlarge", "hstack", "mark_pixels", "overlay_frame", "to_uint8"]


def to_uint8(image) -> np.ndarray:
    """Float ``[H, W, 3]`` in [0, 1] (tensor or array) or uint8 -> uint8 ``[H, W, 3]`` (rounded, clipped)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _float(image) -> np.ndarray:
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def blend(render, target, weight: float = 0.5) -> np.ndarray:
    """``weight * render + (1 - weight) * target`` as uint8: misalignment shows as ghosting (iNeRF's figure)."""
    r, t = _float(render), _float(target)
    if r.shape != t.shape:
        raise ValueError(f"render {r.shape} and target {t.shape} differ in shape")
    return to_uint8(weight * r + (1.0 - weight) * t)


def annotate(frame, lines: list[str] | str) -> np.ndarray:
    """Write text lines in the top-left corner, white with a dark outline (readable on any background).

    A real TrueType font (DejaVu Sans, shipped with matplotlib) at a size proportional to the frame width, so
    the text is crisp at every frame size (OpenCV's Hershey strokes smear at small scales). Frames narrower
    than 96 pixels are returned unchanged because no legible line fits (enlarge them first with
    :func:`enlarge`).
    """
    from PIL import Image, ImageDraw

    out = to_uint8(frame)
    lines = [lines] if isinstance(lines, str) else list(lines)
    w = out.shape[1]
    if w < 96 or not lines:
        return out.copy()
    font = _font(max(10, round(w / 28)))
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    stroke = max(1, font.size // 10)
    y = 3
    for line in lines:
        draw.text((5, y), line, font=font, fill=(255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0))
        y += round(font.size * 1.25)
    return np.asarray(image)


@functools.lru_cache(maxsize=16)
def _font(size: int):
    """DejaVu Sans at ``size`` pixels (matplotlib's copy; Pillow's built-in font if it cannot be found)."""
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except (ImportError, OSError, ValueError):  # no matplotlib font file: Pillow's own scalable default
        return ImageFont.load_default(size)


def overlay_frame(render, target, text: list[str] | str | None = None, min_side: int = 0) -> np.ndarray:
    """The 50/50 blend of a render and the target, enlarged to ``min_side`` and labelled with ``text``."""
    frame = enlarge(blend(render, target), min_side)
    return annotate(frame, text) if text else frame


def mark_pixels(image, mask, color=(255, 0, 0), opacity: float = 0.6) -> np.ndarray:
    """Tint the pixels where ``mask`` ``[H, W]`` is true (e.g. a sampling strategy's support)."""
    out = to_uint8(image).astype(np.float32)
    m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=bool)
    out[m] = (1 - opacity) * out[m] + opacity * np.asarray(color, dtype=np.float32)
    return out.round().astype(np.uint8)


def enlarge(frame, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscale by the smallest integer factor that makes the short side >= ``min_side``
    (keeps pixels crisp, so a 48x48 test render stays inspectable in a GIF)."""
    frame = to_uint8(frame)
    short = min(frame.shape[:2])
    factor = max(1, -(-int(min_side) // short)) if min_side > 0 else 1
    if factor == 1:
        return frame
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def hstack(*images, gap: int = 0) -> np.ndarray:
    """Images of equal height side by side, separated by ``gap`` white columns."""
    ims = [to_uint8(im) for im in images]
    h = ims[0].shape[0]
    if any(im.shape[0] != h for im in ims):
        raise ValueError("hstack needs images of equal height")
    parts = []
    for i, im in enumerate(ims):
        if i and gap:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(im)
    return np.concatenate(parts, axis=1)
