"""Scene loaders. Every loader returns a :class:`ViewSet` in the internal convention (OpenCV camera axes,
camera-to-world, pixel centres at +0.5) and converts the format's own camera axes exactly once.

``load_dataset(root, split)`` picks the loader from the folder's layout:

* ``transforms_*.json`` -> :func:`load_blender` (NeRF-synthetic; also ``inerf synth`` output),
* ``poses_bounds.npy`` -> :func:`load_llff` (forward-facing LLFF captures).
"""

from __future__ import annotations

from pathlib import Path

from inerf.data.blender import is_blender, load_blender
from inerf.data.llff import is_llff, llff_to_opencv_c2w, load_llff
from inerf.data.views import ViewSet
from inerf.errors import InerfError

__all__ = [
    "DATASET_FORMATS",
    "ViewSet",
    "detect_format",
    "llff_to_opencv_c2w",
    "load_blender",
    "load_dataset",
    "load_llff",
]

DATASET_FORMATS = ("blender", "llff")


def detect_format(root: str | Path) -> str:
    """``"blender"`` or ``"llff"`` from the files in ``root``; :class:`InerfError` if neither fits."""
    root = Path(root)
    if not root.is_dir():
        raise InerfError(f"dataset folder not found: {root}")
    if is_blender(root):
        return "blender"
    if is_llff(root):
        return "llff"
    raise InerfError(
        f"{root}: not a recognised dataset (expected transforms_train.json for a Blender scene "
        "or poses_bounds.npy for an LLFF scene)"
    )


def load_dataset(root: str | Path, split: str = "train", *, format: str | None = None, **kwargs) -> ViewSet:
    """Load ``split`` of the scene in ``root``, detecting its layout unless ``format`` is given.

    Keyword arguments go to the loader: both take ``scale``, ``background``, ``near``, ``far`` and
    ``max_views``; LLFF also takes ``llffhold`` and ``bd_factor``.
    """
    fmt = format or detect_format(root)
    if fmt == "blender":
        return load_blender(root, split, **kwargs)
    if fmt == "llff":
        return load_llff(root, split, **kwargs)
    raise InerfError(f"unknown dataset format {fmt!r}; expected one of {', '.join(DATASET_FORMATS)}")
