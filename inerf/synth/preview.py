"""Contact sheets: a grid of thumbnails of a generated dataset, so people can look at it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["checkerboard", "contact_sheet"]


def checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    """``[H, W, 3]`` float light-grey checkerboard, the usual backdrop that shows transparency."""
    j, i = np.mgrid[0:height, 0:width]
    light = ((i // cell + j // cell) % 2).astype(np.float32)
    return np.repeat((0.82 + 0.12 * light)[..., None], 3, axis=2)


def _tile(path: Path, size: int) -> np.ndarray:
    """Thumbnail ``[size, size, 3]`` float of an image file; RGBA is composited over a checkerboard."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
        im.thumbnail((size, size), Image.Resampling.BOX)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    h, w = arr.shape[:2]
    canvas = np.ones((size, size, 3), dtype=np.float32)
    if arr.shape[2] == 4:
        a = arr[..., 3:]
        rgb = arr[..., :3] * a + checkerboard(h, w) * (1.0 - a)
    else:
        rgb = arr
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top : top + h, left : left + w] = rgb
    return canvas


def contact_sheet(
    paths: list[Path],
    labels: list[str] | None = None,
    columns: int = 8,
    tile: int = 128,
    title: str | None = None,
) -> np.ndarray:
    """Lay out image files as a labelled grid.

    Args:
        paths: image files (RGB or RGBA).
        labels: one caption per image (drawn under it), or None.
        columns: tiles per row.
        tile: thumbnail side in pixels.
        title: a line of text above the grid.
    Returns:
        ``[H, W, 3]`` uint8 image.
    """
    from PIL import Image, ImageDraw

    columns = max(1, min(columns, len(paths)))
    rows = -(-len(paths) // columns)
    pad, caption = 4, 14 if labels else 0
    head = 20 if title else 0
    H = head + rows * (tile + caption + pad) + pad
    W = columns * (tile + pad) + pad
    sheet = np.ones((H, W, 3), dtype=np.float32)
    for k, path in enumerate(paths):
        r, c = divmod(k, columns)
        top, left = head + pad + r * (tile + caption + pad), pad + c * (tile + pad)
        sheet[top : top + tile, left : left + tile] = _tile(Path(path), tile)
    image = Image.fromarray(np.clip(np.rint(sheet * 255), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((pad, 4), title, fill=(0, 0, 0))
    if labels:
        for k, text in enumerate(labels):
            r, c = divmod(k, columns)
            top, left = head + pad + r * (tile + caption + pad), pad + c * (tile + pad)
            draw.text((left + 1, top + tile + 1), text[: max(4, tile // 6)], fill=(40, 40, 40))
    return np.asarray(image)
