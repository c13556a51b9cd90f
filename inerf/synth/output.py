"""Writing datasets safely: never over a user's files, never half a dataset.

A dataset is written into a hidden staging folder beside its destination and renamed into place only
when complete. An existing destination is replaced only with ``overwrite=True`` *and* only if it is a
dataset this generator wrote (its ``meta.json`` says so); anything else is refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from inerf.errors import InerfError
from inerf.io_utils import write_json  # atomic, NaN as null

__all__ = ["GENERATOR", "check_destination", "staged", "to_uint8", "write_json", "write_png"]

GENERATOR = "inerf synth"
"""Value of ``meta.json``'s ``generator.name``; marks folders that ``--overwrite`` may replace."""


def _made_by_us(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and str(meta.get("generator", {}).get("name", "")).startswith(GENERATOR)


def check_destination(folder: Path, overwrite: bool) -> None:
    """Raise :class:`InerfError` unless ``folder`` may receive a new dataset: it does not exist, is an
    empty folder, or (with ``overwrite``) holds a dataset made by ``inerf synth``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InerfError(f"{folder} exists and is not a folder")
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise InerfError(
            f"{folder} is not empty; choose another --out or pass --overwrite to replace a "
            "dataset made by inerf synth"
        )
    if not _made_by_us(folder):
        raise InerfError(
            f"{folder} is not empty and holds no inerf synth meta.json; refusing to overwrite it"
        )


@contextmanager
def staged(folder: Path, overwrite: bool):
    """Yield a fresh staging folder; on success move it to ``folder`` (replacing an old dataset there
    if :func:`check_destination` allowed it), on failure delete it."""
    folder = Path(folder)
    check_destination(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    check_destination(folder, overwrite)  # again: it may have changed while we were rendering
    if folder.exists():
        shutil.rmtree(folder)  # an empty folder, or our own previous dataset
    stage.rename(folder)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, rounding to nearest."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an ``[H, W, 3 or 4]`` uint8 or [0, 1]-float image as an 8-bit PNG."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = to_uint8(image)
    Image.fromarray(image).save(path, compress_level=6)
