"""Real photographs for pixelNeRF: an object's foreground mask and the published normalisation.

The published demo (``scripts/preproc.py`` then ``eval/eval_real.py``) segments a car with PointRend
(detectron2, downloaded weights) and crops the photo so that it looks like an SRN render: the object
centred, its minor axis about 23% of the image side, a white background, 128 x 128 pixels. Here:

1. **Mask** (:func:`foreground_mask`): the photo's alpha channel if it has one, else a mask file the user
   drew, else :func:`grabcut_mask`: OpenCV's GrabCut (colour models of foreground and background, graph
   cut) started from a centred box, then :func:`refine_mask` (opening, largest connected component, holes
   filled, closing). No weights are downloaded. GrabCut needs the object roughly centred and distinct from
   a fairly plain background; clutter of the object's colours, or an object touching the border, needs a
   hand-drawn mask.
2. **Normalisation** (:func:`normalize_photo`, as published): an ellipse fitted to the mask's outline
   (:func:`fit_ellipse`); a square crop centred on the ellipse's (rounded) centre, of side
   ``2 ceil(max(4.37 minor, 0.8 major) / 2)`` (:func:`crop_box`; axes are full lengths); background set to
   white (``rgb m + (1 - m)``); resized to ``size`` (128).

Conventions (the module is pure: arrays in, arrays out; the file readers at the end are its only I/O):

* images are float32 ``[H, W, 3]`` RGB in [0, 1] (as :func:`inerf.data.image_io.read_image` returns);
  masks are float32 or bool ``[H, W]``, 1 = object; binary where a decision is needed (``>= 0.5``);
* ellipse centres and crop boxes are in **pixel indices**: pixel ``(i, j)`` (column, row) is the point
  ``(i, j)``, as OpenCV's contours and the published script use; inerf's pixel centres are at ``+ 0.5``
  (:data:`inerf.geometry.conventions.PIXEL_CENTER`), which a crop in whole pixels does not need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inerf.errors import InerfError

__all__ = [
    "GRABCUT_MARGIN",
    "CropBox",
    "Ellipse",
    "Normalized",
    "border_sides",
    "crop_box",
    "crop_square",
    "fit_ellipse",
    "foreground_mask",
    "grabcut_mask",
    "mask_preview",
    "normalize_photo",
    "read_mask",
    "read_photo",
    "refine_mask",
]

SCALE_MINOR = 4.37
"""Crop side over the ellipse's minor axis (published ``-S``): the SRN cars' minor axis is ~23% of 128 px."""
SCALE_MAJOR = 0.8
"""Crop side over the ellipse's major axis (published ``-M``): a long object still fits."""
GRABCUT_MARGIN = 0.01
"""Share of the photo's width (height) left outside GrabCut's box on each side, taken as background: thin,
so that an object filling most of the frame still fits in the box (4 px at 400 px are ~5000 background
samples, plenty for GrabCut's 5-component colour model). Measured on the coffee photo: IoU 0.968 (0.974
with 5%, which cuts the cup's rim)."""


@dataclass(frozen=True)
class Ellipse:
    """An ellipse fitted to a mask's outline, in pixel indices (see the module docstring)."""

    cx: float
    """Centre, column."""
    cy: float
    """Centre, row."""
    major: float
    """Full length of the longer axis, pixels."""
    minor: float
    """Full length of the shorter axis, pixels."""
    angle_deg: float
    """Direction of the major axis, degrees in [0, 180) from the +column axis towards +row (for drawing)."""


@dataclass(frozen=True)
class CropBox:
    """A square crop ``[x0, x0 + side) x [y0, y0 + side)`` in pixel indices; it may extend past the image
    (the outside is background)."""

    x0: int
    y0: int
    side: int


@dataclass(frozen=True)
class Normalized:
    """A photo after the published normalisation."""

    image: np.ndarray
    """``[S, S, 3]`` float32 RGB in [0, 1], white background."""
    mask: np.ndarray
    """``[S, S]`` float32 in [0, 1]: the mask cropped and resized like the image (alpha for pose sampling)."""
    ellipse: Ellipse
    """The ellipse fitted in the photo."""
    box: CropBox
    """The crop in the photo."""
    warnings: tuple[str, ...]
    """One line per doubt about the result (object cut by the border, mask too large, crop upsampled)."""


# ----------------------------------------------------------------------------------------------------------
# Mask
# ----------------------------------------------------------------------------------------------------------
def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:  # label 0 is the background: nothing else
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every region it encloses added (the background is what a flood from outside reaches)."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)  # a frame of background, so one seed reaches all of it
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def refine_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Clean an automatic mask: opening (drops specks and thin bridges to the background), the largest
    connected component, its holes filled (a cup's inside, a car's windows), closing (smooths the outline).

    Args:
        mask: ``[H, W]`` bool.
        radius: of the elliptic structuring element, pixels (0: components and holes only).
    Returns:
        ``[H, W]`` bool; empty if ``mask`` is.
    """
    import cv2

    m = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    if radius > 0:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
    m = _fill_holes(_largest_component(m))
    if radius > 0:
        m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    return m


def grabcut_mask(
    image: np.ndarray,
    *,
    margin: float = GRABCUT_MARGIN,
    iterations: int = 3,
    max_side: int = 400,
    seed: int = 0,
) -> np.ndarray:
    """Foreground of an object photo by GrabCut from a centred box, refined (:func:`refine_mask`).

    GrabCut models the colours outside the box as background and those inside as probably foreground,
    then alternates graph cuts and colour-model fits. It works for an object near the centre on a fairly
    plain background; it cannot know which of several objects is meant.

    Args:
        image: ``[H, W, 3]`` float RGB in [0, 1].
        margin: the box leaves this fraction of the width (height) free on the left and right (top and
            bottom): what lies there is taken as background.
        iterations: GrabCut iterations (3: more rarely changes the mask of a plain background, and each
            costs a graph cut).
        max_side: the photo is shrunk (area averaging) so that its longer side is at most this before the
            cut, and the mask is scaled back: GrabCut's time grows with the pixel count (~1 s at 600 x 400
            on one core) and the crop does not need a finer outline.
        seed: OpenCV's random generator (GrabCut's k-means start), so the mask is repeatable.
    Returns:
        ``[H, W]`` bool, True on the object; empty if nothing was found.
    """
    import cv2

    H, W = image.shape[:2]
    scale = min(1.0, max_side / max(H, W))
    small = image
    if scale < 1.0:
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    bgr = np.ascontiguousarray(_to_uint8(small)[..., ::-1])  # OpenCV's colour order
    x0, y0 = round(margin * w), round(margin * h)
    rect = (x0, y0, max(1, w - 2 * x0), max(1, h - 2 * y0))
    labels = np.zeros((h, w), np.uint8)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(
            bgr, labels, rect, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_RECT
        )
    except cv2.error:  # a uniform photo: k-means cannot split one colour into the 5 GMM components
        return np.zeros((H, W), bool)
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    # 1% of the longer side: removes specks of table texture, keeps a thin car antenna's root.
    fg = refine_mask(fg, max(1, round(0.01 * max(h, w))))
    if scale < 1.0:
        fg = cv2.resize(fg.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) >= 0.5
    return fg


def foreground_mask(
    image: np.ndarray,
    alpha: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    **grabcut,
) -> tuple[np.ndarray, str]:
    """The object's mask by the first source that exists: ``alpha``, ``mask``, else :func:`grabcut_mask`.

    An alpha channel that is opaque everywhere says nothing about the object and is skipped.

    Args:
        image: ``[H, W, 3]`` float RGB in [0, 1].
        alpha: ``[H, W]`` in [0, 1] or None.
        mask: ``[H, W]`` in [0, 1] or None (e.g. :func:`read_mask`).
        grabcut: options of :func:`grabcut_mask`.
    Returns:
        ``([H, W] float32 in [0, 1], source)`` with source ``"alpha"``, ``"mask"`` or ``"grabcut"``.
    """
    if alpha is not None and float(alpha.min()) < 1.0:
        return alpha.astype(np.float32), "alpha"
    if mask is not None:
        if mask.shape != image.shape[:2]:
            h, w = image.shape[:2]
            raise InerfError(f"the mask is {mask.shape[1]}x{mask.shape[0]} pixels, the photo {w}x{h}")
        return mask.astype(np.float32), "mask"
    return grabcut_mask(image, **grabcut).astype(np.float32), "grabcut"


def border_sides(mask: np.ndarray, margin: float = 0.0, min_share: float = 0.01) -> list[str]:
    """The sides (``top``, ``bottom``, ``left``, ``right``) along which the object is cut off.

    A side counts when at least ``min_share`` of the line ``margin`` of the way in from it (3 pixels thick,
    for rounding) is object: a long run, not a tangent point.

    Args:
        mask: ``[H, W]`` (``>= 0.5`` is the object).
        margin: 0 for the photo's border; a GrabCut mask ends at its box (``margin`` of the size in), which is
            then the border to test.
    """
    m = mask >= 0.5
    H, W = m.shape
    dy, dx = min(round(margin * H), H - 1), min(round(margin * W), W - 1)
    lines = {
        "top": m[dy : dy + 3].any(0),
        "bottom": m[max(H - dy - 3, 0) : H - dy].any(0),
        "left": m[:, dx : dx + 3].any(1),
        "right": m[:, max(W - dx - 3, 0) : W - dx].any(1),
    }
    return [name for name, line in lines.items() if line.mean() >= min_share]


# ----------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------
def fit_ellipse(mask: np.ndarray) -> Ellipse:
    """Least-squares ellipse (OpenCV ``fitEllipse``) through the outline of the mask's largest region.

    The published script takes the first outer contour OpenCV returns; the largest is the object whenever
    the mask has stray specks.

    Args:
        mask: ``[H, W]`` bool or float (``>= 0.5`` is the object).
    Raises:
        InerfError: empty mask, or a region too small to fit (fewer than 5 outline points).
    """
    import cv2

    m = (np.asarray(mask) >= 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise InerfError("no object found: the mask is empty (pass --mask, or an RGBA photo)")
    contour = max(contours, key=cv2.contourArea)
    if len(contour) < 5:
        raise InerfError(
            f"no object found: the mask's largest region is {int(m.sum())} pixel(s), too small to fit an "
            "ellipse (pass --mask)"
        )
    (cx, cy), (d1, d2), angle = cv2.fitEllipse(contour)
    if d1 < d2:  # OpenCV's angle rotates its first axis: make it the major one's
        d1, d2, angle = d2, d1, angle + 90.0
    return Ellipse(float(cx), float(cy), float(d1), float(d2), float(angle % 180.0))


def crop_box(ellipse: Ellipse, scale_minor: float = SCALE_MINOR, scale_major: float = SCALE_MAJOR) -> CropBox:
    """The published square crop: side ``2 ceil(max(scale_minor minor, scale_major major) / 2)`` (even, so
    the rounded ellipse centre is exactly its centre), from ``round(centre) - side / 2``.

    Example: axes 200 x 60 -> max(4.37 * 60, 0.8 * 200) = 262.2 -> side 2 ceil(131.1) = 264.
    """
    half = math.ceil(0.5 * max(scale_minor * ellipse.minor, scale_major * ellipse.major))
    half = max(half, 1)
    # The centre is rounded to a whole pixel, as published, so the crop needs no resampling.
    return CropBox(round(ellipse.cx) - half, round(ellipse.cy) - half, 2 * half)


def crop_square(array: np.ndarray, box: CropBox, fill: float | tuple[float, ...] = 0.0) -> np.ndarray:
    """``array[y0:y0+side, x0:x0+side]`` where the part outside the image is ``fill``.

    Args:
        array: ``[H, W]`` or ``[H, W, C]``.
        fill: a value, or one per channel.
    Returns:
        ``[side, side]`` or ``[side, side, C]``, the dtype of ``array``.
    """
    H, W = array.shape[:2]
    out = np.empty((box.side, box.side) + array.shape[2:], array.dtype)
    out[...] = np.asarray(fill, dtype=array.dtype)
    # Overlap of the box with the image, in image and in box coordinates.
    x1, y1 = max(box.x0, 0), max(box.y0, 0)
    x2, y2 = min(box.x0 + box.side, W), min(box.y0 + box.side, H)
    if x1 < x2 and y1 < y2:
        out[y1 - box.y0 : y2 - box.y0, x1 - box.x0 : x2 - box.x0] = array[y1:y2, x1:x2]
    return out


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    import cv2

    # The published script resizes bilinearly; averaging when shrinking keeps a 1000-px crop from aliasing
    # (SRN renders are anti-aliased) and equals bilinear for a 2x reduction.
    shrink = array.shape[0] > size
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def normalize_photo(
    image: np.ndarray,
    mask: np.ndarray,
    size: int = 128,
    scale_minor: float = SCALE_MINOR,
    scale_major: float = SCALE_MAJOR,
    border_margin: float = 0.0,
) -> Normalized:
    """The published normalisation of an object photo (see the module docstring).

    Outside the photo the crop is background (mask 0), so it ends white: the published edge replication
    gives the same result there, since the background is replaced by white before the resize.

    Args:
        image: ``[H, W, 3]`` float RGB in [0, 1].
        mask: ``[H, W]`` in [0, 1] (soft alpha is kept for compositing; the ellipse uses ``>= 0.5``).
        size: side of the result, pixels (pixelNeRF's SRN models: 128).
        border_margin: where the mask may end, as a share of the size in from each side
            (:func:`border_sides`): :data:`GRABCUT_MARGIN` for a GrabCut mask, else 0.
    Raises:
        InerfError: no object in the mask.
    """
    if image.ndim != 3 or image.shape[-1] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"expected image [H, W, 3] and mask [H, W], got {image.shape} and {mask.shape}")
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    ellipse = fit_ellipse(m)
    box = crop_box(ellipse, scale_minor, scale_major)
    rgb = image.astype(np.float32) * m[..., None] + (1.0 - m[..., None])  # white background
    crop_rgb = crop_square(rgb, box, fill=1.0)
    crop_m = crop_square(m, box, fill=0.0)
    out_rgb = np.clip(_resize(crop_rgb, size), 0.0, 1.0)
    out_m = np.clip(_resize(crop_m, size), 0.0, 1.0)

    warnings = []
    sides = border_sides(m, border_margin)
    if sides:
        warnings.append(
            f"the object touches the photo's {' and '.join(sides)} border: if it is cut off, its crop is "
            "off-centre and too small (photograph all of it, or check the mask preview and pass --mask)"
        )
    share = float((m >= 0.5).mean())
    if share > 0.6:
        warnings.append(
            f"the mask covers {100 * share:.0f}% of the photo: the segmentation may have taken the "
            "background (check the mask preview, or pass --mask)"
        )
    if box.side < size:
        warnings.append(
            f"the object is small: its crop is {box.side} px, upsampled to {size} (the result is blurry)"
        )
    return Normalized(out_rgb.astype(np.float32), out_m.astype(np.float32), ellipse, box, tuple(warnings))


def mask_preview(
    image: np.ndarray,
    mask: np.ndarray,
    ellipse: Ellipse,
    box: CropBox,
    max_side: int = 512,
    extend: bool = True,
):
    """A picture of the segmentation: the background dimmed and tinted blue, the fitted ellipse (green) and
    the crop (red) drawn, shrunk so that its longer side is at most ``max_side``.

    Args:
        extend: grow the canvas to hold the whole crop where it extends past the photo (grey there); else
            the photo only (the crop's sides outside it are not drawn).
    Returns:
        ``[h, w, 3]`` uint8 RGB.
    """
    import cv2

    H, W = image.shape[:2]
    # Canvas, in photo pixel indices: the photo, or its union with the crop.
    u0, v0, u1, v1 = 0, 0, W, H
    if extend:
        u0, v0 = min(0, box.x0), min(0, box.y0)
        u1, v1 = max(W, box.x0 + box.side), max(H, box.y0 + box.side)
    s = min(1.0, max_side / max(u1 - u0, v1 - v0))
    size = (max(1, round(W * s)), max(1, round(H * s)))
    rgb = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(np.clip(mask, 0, 1).astype(np.float32), size, interpolation=cv2.INTER_AREA)[..., None]
    tint = np.array([0.15, 0.25, 0.55], np.float32)  # the background turns dark blue
    photo = _to_uint8(rgb * m + (0.35 * rgb + 0.65 * tint) * (1 - m))
    out = np.full((max(1, round((v1 - v0) * s)), max(1, round((u1 - u0) * s)), 3), 200, np.uint8)
    ox, oy = round(-u0 * s), round(-v0 * s)
    h, w = min(photo.shape[0], out.shape[0] - oy), min(photo.shape[1], out.shape[1] - ox)
    out[oy : oy + h, ox : ox + w] = photo[:h, :w]
    thick = max(1, round(max(out.shape[:2]) / 256))
    centre = ((ellipse.cx - u0) * s, (ellipse.cy - v0) * s)
    cv2.ellipse(
        out, (centre, (ellipse.major * s, ellipse.minor * s), ellipse.angle_deg), (40, 220, 40), thick
    )
    p1 = (round((box.x0 - u0) * s), round((box.y0 - v0) * s))
    p2 = (round((box.x0 + box.side - u0) * s) - 1, round((box.y0 + box.side - v0) * s) - 1)
    cv2.rectangle(out, p1, p2, (230, 40, 40), thick)
    return out


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------
# EXIF orientation (tag 0x0112) -> the numpy operation that shows the photo upright.
_EXIF_ORIENTATION = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 1)[::-1],
    8: lambda a: np.rot90(a, 1),
}


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no EXIF (or an unreadable one) means "as stored"
        return 1


def read_photo(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a photo upright: ``(rgb [H, W, 3] float32 in [0, 1], alpha [H, W] or None)``.

    PNG and JPEG (8 or 16 bits, grey or colour, with or without alpha) as :func:`inerf.data.image_io.
    read_image` reads them; other formats (TIFF, WebP, BMP...) through OpenCV. A camera's EXIF orientation
    is applied, as photo viewers do, so a phone's portrait photo is not lying on its side.

    Raises:
        InerfError: missing or undecodable file (one line naming it).
    """
    from inerf.data.image_io import IMAGE_EXTENSIONS, read_image

    path = Path(path)
    if not path.is_file():
        raise InerfError(f"{path}: not found")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        img = read_image(path)
    else:
        img = _read_with_opencv(path)
    rotate = _EXIF_ORIENTATION.get(_exif_orientation(path))
    if rotate is not None:
        img = np.ascontiguousarray(rotate(img))
    rgb = np.ascontiguousarray(img[..., :3], dtype=np.float32)
    alpha = np.ascontiguousarray(img[..., 3], dtype=np.float32) if img.shape[-1] == 4 else None
    return rgb, alpha


def _read_with_opencv(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InerfError(f"{path}: unreadable image (not a format OpenCV or Pillow decodes)")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        out = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise InerfError(f"{path}: unsupported pixel type {img.dtype}")
    if out.ndim == 2:
        out = out[..., None]
    if out.shape[-1] == 1:
        return np.repeat(out, 3, -1)
    if out.shape[-1] in (3, 4):
        return out[..., [2, 1, 0, 3][: out.shape[-1]]]  # OpenCV's BGR(A) -> RGB(A)
    raise InerfError(f"{path}: expected a grey, RGB or RGBA image, got {out.shape[-1]} channels")


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image: ``[H, W]`` float32 in [0, 1], 1 = object.

    Any image works: an alpha channel is used if it is not opaque everywhere, else the grey level (white =
    object; a binary PNG painted in any editor). EXIF orientation is applied as for the photo.

    Args:
        shape: the photo's ``(H, W)``; a mask of another size is refused.
    Raises:
        InerfError: unreadable file, or a size that differs from the photo's.
    """
    rgb, alpha = read_photo(path)
    m = alpha if alpha is not None and float(alpha.min()) < 1.0 else rgb.mean(-1)
    if shape is not None and m.shape != tuple(shape):
        raise InerfError(
            f"{path}: the mask is {m.shape[1]}x{m.shape[0]} pixels, its photo {shape[1]}x{shape[0]}"
        )
    return m.astype(np.float32)
