"""Writing datasets safely: never over a user's files, never half a dataset.

A dataset is written into a hidden staging folder beside its destination and renamed into place only
when complete. An existing destination is replaced only with ``overwrite=True`` *and* only if it is a
dataset this generator wrote (its ``meta.json`` says so); anything else is refused.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from inerf.io_utils import (
    check_replaceable,
    staged_dir,
    write_json,  # atomic, NaN as null
)

__all__ = ["GENERATOR", "check_destination", "staged", "to_uint8", "write_json", "write_png"]

GENERATOR = "inerf synth"
"""Value of ``meta.json``'s ``generator.name`` (then a word: ``inerf synth scene``); marks folders that
``--overwrite`` may replace."""


def check_destination(folder: Path, overwrite: bool) -> None:
    """Raise :class:`InerfError` unless ``folder`` may receive a new dataset: it does not exist, is an
    empty folder, or (with ``overwrite``) holds a dataset made by ``inerf synth``."""
    check_replaceable(
        folder, overwrite, meta_file="meta.json", generator=GENERATOR, what="a dataset made by inerf synth"
    )


def staged(folder: Path, overwrite: bool):
    """A context manager yielding a fresh staging folder; on success it is moved to ``folder`` (replacing an
    old dataset there if :func:`check_destination` allows it), on failure deleted."""
    return staged_dir(folder, partial(check_destination, Path(folder), overwrite))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, rounding to nearest."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an ``[H, W, 3 or 4]`` uint8 or [0, 1]-float image as an 8-bit PNG."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = to_uint8(image)
    Image.fromarray(image).save(path, compress_level=6)
