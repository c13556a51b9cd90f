"""Scene loaders. Every loader returns a :class:`ViewSet` in the internal convention (OpenCV camera axes,
camera-to-world, pixel centres at +0.5) and converts the format's own camera axes exactly once; lens
distortion is removed at load time, so every camera it returns is pinhole. ``ViewSet.transform`` records
how the loader moved the user's world into the training frame.

``load_dataset(root, split)`` picks the loader from the folder's layout, in this order:

* ``transforms_*.json`` -> :func:`load_blender` (NeRF-synthetic; also ``inerf synth`` output),
* ``transforms.json`` -> :func:`load_nerfstudio` (nerfstudio and Instant-NGP captures),
* ``poses_bounds.npy`` -> :func:`load_llff` (forward-facing LLFF captures; they often also hold a COLMAP
  model, and LLFF's own poses win),
* ``sparse/0/`` (or ``sparse/``, or the model files in the folder) -> :func:`load_colmap` (COLMAP sparse
  models, e.g. written by ``inerf colmap``).
"""

from __future__ import annotations

from pathlib import Path

from inerf.data.blender import is_blender, load_blender
from inerf.data.colmap import is_colmap, load_colmap
from inerf.data.llff import is_llff, llff_to_opencv_c2w, load_llff
from inerf.data.nerfstudio import is_nerfstudio, load_nerfstudio
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError

__all__ = [
    "DATASET_FORMATS",
    "SceneTransform",
    "ViewSet",
    "detect_format",
    "llff_to_opencv_c2w",
    "load_blender",
    "load_colmap",
    "load_dataset",
    "load_llff",
    "load_nerfstudio",
]

DATASET_FORMATS = ("blender", "nerfstudio", "llff", "colmap")


def detect_format(root: str | Path) -> str:
    """One of :data:`DATASET_FORMATS` from the files in ``root``; :class:`InerfError` if none fits."""
    root = Path(root)
    if not root.is_dir():
        raise InerfError(f"dataset folder not found: {root}")
    if is_blender(root):
        return "blender"
    if is_nerfstudio(root):
        return "nerfstudio"
    if is_llff(root):
        return "llff"
    if is_colmap(root):
        return "colmap"
    raise InerfError(
        f"{root}: not a recognised dataset (expected transforms_train.json for a Blender scene, "
        "transforms.json for a nerfstudio / Instant-NGP capture, poses_bounds.npy for an LLFF scene, "
        "or sparse/0/ for a COLMAP model)"
    )


def load_dataset(root: str | Path, split: str = "train", *, format: str | None = None, **kwargs) -> ViewSet:
    """Load ``split`` of the scene in ``root``, detecting its layout unless ``format`` is given.

    Keyword arguments go to the loader: all take ``scale``, ``background``, ``near``, ``far`` and
    ``max_views``; LLFF also takes ``llffhold`` and ``bd_factor``; nerfstudio and COLMAP take ``holdout``
    and ``normalize``.
    """
    fmt = format or detect_format(root)
    loaders = {
        "blender": load_blender,
        "nerfstudio": load_nerfstudio,
        "llff": load_llff,
        "colmap": load_colmap,
    }
    if fmt not in loaders:
        raise InerfError(f"unknown dataset format {fmt!r}; expected one of {', '.join(DATASET_FORMATS)}")
    return loaders[fmt](root, split, **kwargs)
