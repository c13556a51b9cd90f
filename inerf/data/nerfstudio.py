"""nerfstudio and Instant-NGP captures: one ``transforms.json`` beside the images.

Layout::

    ROOT/transforms.json   {"camera_model": "OPENCV", "fl_x": ..., "fl_y": ..., "cx": ..., "cy": ...,
                            "w": ..., "h": ..., "k1": ..., "k2": ..., "p1": ..., "p2": ...,
                            "frames": [{"file_path": "images/frame_00001.png",
                                        "transform_matrix": [[...4x4 c2w, OpenGL camera axes...]],
                                        "mask_path": "masks/frame_00001.png"}, ...],
                            "applied_transform": [[...3x4...]]}
    ROOT/images/...        the images (``file_path`` is relative to ROOT; ``.png`` is tried if it has no
                           extension); ``images_k/`` holds copies downscaled k times (nerfstudio's layout)

Intrinsics ``fl_x, fl_y, cx, cy, w, h`` (pixels of a ``w x h`` image; Instant-NGP's ``camera_angle_x`` /
``camera_angle_y`` also work) and the distortion keys may sit at the top level or in a frame (the frame
wins). Pixel centres are at +0.5 in both tools, as in inerf.

Camera models: ``PINHOLE`` (default), ``SIMPLE_PINHOLE``, ``OPENCV`` (``k1, k2, p1, p2`` and optionally
``k3``), ``OPENCV_FISHEYE`` (``k1 .. k4``), and COLMAP's ``SIMPLE_RADIAL`` / ``RADIAL`` (``k1[, k2]``). Without
``camera_model`` a file with distortion keys is ``OPENCV`` (Instant-NGP writes none), ``OPENCV_FISHEYE``
with Instant-NGP's ``"is_fisheye": true``. **Distortion is removed when loading**: each image is
resampled into a pinhole camera of the same size with OpenCV (:mod:`inerf.data.undistort`), so every
returned camera is pinhole and its intrinsics are the undistorted camera's.

Masks: ``mask_path`` (grey image, 0 = masked out) becomes the view's ``alphas`` and the image is composited
on ``background`` where it is 0. nerfstudio ignores masked pixels in its loss; inerf has no per-pixel
loss mask, so masked-out pixels are treated as empty background (right for object masks).

World frame (the user's original frame is the frame of ``transforms.json``):

* **nerfstudio**: poses come in arbitrary units (COLMAP's). The loader centres them on the mean camera
  centre and scales by the largest coordinate of a centred camera (nerfstudio's own ``auto_scale_poses``
  and ``center_method="poses"``), so all cameras lie in the cube [-1, 1]^3, inside the grid field's box;
  the scene box ``bounds`` is that cube, ``near = 0.05`` (nerfstudio's), ``far`` = the largest distance
  from a camera to a corner of the box. With ``before_applied_transform`` the recorded original frame is
  the one *before* the file's ``applied_transform`` (nerfstudio's COLMAP conversion swaps and flips world
  axes; ``p_file = applied_transform @ p_colmap``), i.e. the COLMAP world of the capture.
* **Instant-NGP** (the file has ``aabb_scale``, ``scale`` or ``offset``): Instant-NGP maps a point to
  ``scale * p + offset`` (defaults 0.33 and (0.5, 0.5, 0.5)) and expects the scene in the unit cube
  [0, 1]^3 (``aabb_scale`` times larger for unbounded scenes), then cycles the axes for its own use.
  inerf takes the same cube, without the axis cycle, as [-1, 1]^3: ``x_train = 2 (scale p + offset -
  0.5)``, and ``bounds = [-aabb_scale, aabb_scale]^3``.

Either way the move is recorded in ``ViewSet.transform``, so poses can be written in the file's frame.

Splits: nerfstudio files may list ``train_filenames`` / ``val_filenames`` / ``test_filenames``; they are
used when present (``val`` falls back to the test list). Otherwise, as for LLFF, frames sorted by
``file_path`` are held out every ``holdout``-th (0, 8, 16, ...) for ``test`` and ``val``; the rest is
``train``; ``all`` is every frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from inerf.data.common import (
    SplitImages,
    check_load_args,
    check_near_far,
    downscale_factor,
    first_views,
    frame_c2w,
    frame_image_path,
    frame_intrinsics,
    number,
    read_json,
)
from inerf.data.image_io import inside_root, parse_background, read_image
from inerf.data.undistort import CAMERA_MODELS, Distortion, PinholeK, Undistorter
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError
from inerf.geometry.conventions import check_rigid, opengl_to_opencv_c2w

__all__ = [
    "NERFSTUDIO_SPLITS",
    "NGP_DEFAULT_OFFSET",
    "NGP_DEFAULT_SCALE",
    "is_nerfstudio",
    "lens_from_keys",
    "load_nerfstudio",
]

NERFSTUDIO_SPLITS = ("train", "val", "test", "all")
NGP_DEFAULT_SCALE = 0.33
"""Instant-NGP's default ``scale`` (its ``NERF_SCALE``: NeRF-synthetic cameras at radius 4 -> 1.3)."""
NGP_DEFAULT_OFFSET = (0.5, 0.5, 0.5)
"""Instant-NGP's default ``offset``: the origin goes to the centre of its unit cube."""
NEAR = 0.05
"""Ray start in the normalised frame (nerfstudio's ``near_plane``)."""

_NGP_KEYS = ("aabb_scale", "scale", "offset")
_DIST_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def is_nerfstudio(root: str | Path) -> bool:
    """Whether ``root`` holds a nerfstudio / Instant-NGP ``transforms.json``."""
    return (Path(root) / "transforms.json").is_file()


def lens_from_keys(get, source: Path, where: str | None = None) -> tuple[str, Distortion]:
    """Camera model and distortion from nerfstudio / Instant-NGP keys (see the module docstring).

    Args:
        get: ``get(key)`` -> the key's value (a frame's or the file's) or None.
        source: the file, named in errors.
        where: what errors name (default ``source``), e.g. ``"transforms.json: frame 3"``.
    Returns:
        ``(model, distortion)``: the upper-case model name and its :class:`Distortion` in OpenCV's terms
        (``Distortion()`` for pinhole models).
    """
    where = where or str(source)
    model = get("camera_model")
    if model is None:
        if get("is_fisheye"):
            model = "OPENCV_FISHEYE"
        else:
            model = "OPENCV" if any(get(k) for k in _DIST_KEYS) else "PINHOLE"
    if not isinstance(model, str) or model.upper() not in CAMERA_MODELS:
        raise InerfError(f"{where}: unknown camera_model {model!r} (supported: {', '.join(CAMERA_MODELS)})")
    model = model.upper()
    k = {key: number(get(key), key, source) if get(key) is not None else 0.0 for key in _DIST_KEYS}
    if model in ("PINHOLE", "SIMPLE_PINHOLE"):
        return model, Distortion()
    if model == "OPENCV_FISHEYE":
        return model, Distortion("fisheye", (k["k1"], k["k2"], k["k3"], k["k4"]))
    if model in ("SIMPLE_RADIAL", "RADIAL"):
        return model, Distortion("radtan", (k["k1"], k["k2"] if model == "RADIAL" else 0.0, 0.0, 0.0))
    # OPENCV: OpenCV's coefficient order is (k1, k2, p1, p2, k3)
    return model, Distortion("radtan", (k["k1"], k["k2"], k["p1"], k["p2"], k["k3"]))


def _frame_camera(meta: dict, frame: dict, width: int, height: int, source: Path, index: int):
    """``(PinholeK, Distortion)`` of a frame, in pixels of the ``width x height`` image actually read."""

    def get(key):
        return frame.get(key, meta.get(key))

    _, dist = lens_from_keys(get, source, f"{source}: frame {index}")
    fx, fy, cx, cy = frame_intrinsics(meta, frame, width, height, source, index)
    # Distortion coefficients act on normalised coordinates: unlike the intrinsics, they do not change
    # with the size of the image read.
    return PinholeK(fx, fy, cx, cy), dist


def _split_indices(meta: dict, frames: list, split: str, holdout: int, source: Path) -> list[int]:
    """Frame indices of ``split`` (see the module docstring)."""
    if split == "all":
        return list(range(len(frames)))
    lists = {k: meta.get(f"{k}_filenames") for k in ("train", "val", "test")}
    if any(v is not None for v in lists.values()):
        wanted = lists[split] if lists[split] is not None else (lists["test"] if split == "val" else None)
        if wanted is None:
            raise InerfError(f"{source}: has no '{split}_filenames' list")
        norm = {os.path.normpath(str(p)) for p in wanted}
        return [i for i, f in enumerate(frames) if os.path.normpath(str(f.get("file_path", ""))) in norm]
    order = sorted(range(len(frames)), key=lambda i: str(frames[i].get("file_path", "")))
    if holdout <= 0:
        return order if split == "train" else []
    held = [i for r, i in enumerate(order) if r % holdout == 0]
    return held if split in ("val", "test") else [i for r, i in enumerate(order) if r % holdout != 0]


def _ngp_transform(meta: dict, source: Path) -> SceneTransform:
    s = number(meta.get("scale", NGP_DEFAULT_SCALE), "scale", source, positive=True)
    off = meta.get("offset", list(NGP_DEFAULT_OFFSET))
    try:
        offset = np.asarray(off, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        raise InerfError(f"{source}: 'offset' must be three numbers, got {off!r}") from None
    # Instant-NGP's unit cube [0, 1]^3 (before its axis cycle) -> inerf's [-1, 1]^3.
    return SceneTransform(
        2.0 * s, translation=tuple(2.0 * (offset - 0.5)), original=f"world frame of {source}"
    )


def _camera_transform(centres: np.ndarray, source: Path) -> SceneTransform:
    centre = centres.mean(0)
    extent = float(np.abs(centres - centre).max())
    s = 1.0 / extent if extent > 0 else 1.0  # one camera (or all at one spot): only centre
    return SceneTransform(s, translation=tuple(-s * centre), original=f"world frame of {source}")


def _far_to_box(centres: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return float(np.linalg.norm(centres[:, None] - corners[None], axis=-1).max())


def _applied_transform(meta: dict, source: Path) -> SceneTransform:
    try:
        A = np.asarray(meta["applied_transform"], dtype=np.float64)
        if A.shape == (3, 4):
            A = np.concatenate([A, [[0.0, 0.0, 0.0, 1.0]]])
        check_rigid(torch.from_numpy(A), name=f"{source}: applied_transform")
        return SceneTransform.from_matrix(A, original=f"frame before the applied_transform of {source}")
    except (TypeError, ValueError):
        raise InerfError(f"{source}: 'applied_transform' must be a 3x4 or 4x4 rigid matrix") from None


def load_nerfstudio(
    root: str | Path,
    split: str = "train",
    *,
    scale: float = 1.0,
    background="white",
    near: float | None = None,
    far: float | None = None,
    max_views: int | None = None,
    holdout: int = 8,
    normalize: bool = True,
    before_applied_transform: bool = False,
) -> ViewSet:
    """Load one split of a nerfstudio / Instant-NGP capture (see the module docstring).

    Args:
        root: the folder holding ``transforms.json``.
        split: ``train``, ``val``, ``test`` or ``all``.
        scale: image scale (0.5 halves the images; ``images_2/`` is used when it exists).
        background: ``white``, ``black``, ``none`` or RGB: what RGBA images and masked pixels are
            composited on.
        near, far: override the ray bounds (training-frame units).
        max_views: keep the first ``max_views`` views of the split.
        holdout: without split lists, every ``holdout``-th frame is a test frame (0: none).
        normalize: centre and scale nerfstudio poses (Instant-NGP files always use their own scale and
            offset); False keeps the file's units.
        before_applied_transform: record the frame before ``applied_transform`` as the original frame.
    Returns:
        A :class:`ViewSet` with pinhole cameras (distortion removed), OpenCV c2w in the training frame,
        ``transform`` (file frame -> training frame) and ``bounds``.
    """
    root = check_load_args(root, split, NERFSTUDIO_SPLITS, scale, "a nerfstudio capture")
    source = root / "transforms.json"
    if not source.is_file():
        raise InerfError(f"{source}: file not found (a nerfstudio capture needs transforms.json)")
    bg = parse_background(background)
    meta = read_json(source)
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise InerfError(f"{source}: expected a non-empty 'frames' list of objects")

    # Poses of every frame (all splits share one normalisation).
    c2w_file = opengl_to_opencv_c2w(torch.stack([frame_c2w(f, i, source) for i, f in enumerate(frames)]))
    centres = c2w_file[:, :3, 3].numpy()
    ngp = any(k in meta for k in _NGP_KEYS)
    if ngp:
        to_train = _ngp_transform(meta, source)
        a = number(meta.get("aabb_scale", 1), "aabb_scale", source, positive=True)
        lo, hi = np.full(3, -a), np.full(3, a)
        unit = 1.0  # half the side of Instant-NGP's unit cube, in training units
    else:
        normalising = _camera_transform(centres, source)
        to_train = normalising if normalize else SceneTransform.identity(f"world frame of {source}")
        # The cameras' cube [-1, 1]^3 of the normalised frame, in the frame actually used.
        cube = torch.tensor([[-1.0] * 3, [1.0] * 3], dtype=torch.float64)
        lo, hi = to_train.points_to_training(normalising.points_to_original(cube)).numpy()
        unit = float(hi[0] - lo[0]) / 2.0
    c2w_train = to_train.c2w_to_training(c2w_file)
    recorded = to_train
    if before_applied_transform:
        if "applied_transform" not in meta:
            raise InerfError(f"{source}: has no 'applied_transform' to undo")
        recorded = _applied_transform(meta, source).then(to_train)

    n = float(near) if near is not None else NEAR * unit
    f = float(far) if far is not None else _far_to_box(c2w_train[:, :3, 3].numpy(), lo, hi)
    n, f = check_near_far(root, n, f)

    idx = first_views(_split_indices(meta, frames, split, holdout, source), max_views)
    if not idx:
        raise InerfError(f"{source}: split {split!r} is empty ({len(frames)} frames, holdout={holdout})")

    stack = SplitImages(bg)
    Ks = []
    undistorters: dict = {}
    for i in idx:
        frame = frames[i]
        path, name = frame_image_path(root, frame, i, source)
        small = _downscaled(root, path, scale)
        img = read_image(small)
        # Copies downscaled on disk are already at the size asked for.
        stack.check_size(small, img, 1.0 if small != path else scale)
        h, w = stack.size
        mask = _read_mask(root, frame, i, source, stack.size) if frame.get("mask_path") is not None else None
        K, dist = _frame_camera(meta, frame, w, h, source, i)
        key = (K, dist)
        if key not in undistorters:
            undistorters[key] = Undistorter(K, dist, w, h)
        und = undistorters[key]
        if mask is not None:
            a = mask if img.shape[-1] == 3 else mask * img[..., 3]
            img = np.concatenate([img[..., :3], a[..., None]], -1)
        stack.add(und.image(img), name)
        Ks.append(und.new_K)

    kt = torch.tensor([[k.fx, k.fy, k.cx, k.cy] for k in Ks], dtype=torch.float64)
    return ViewSet(
        **stack.view_fields(source),
        cameras=stack.cameras(c2w_train[idx], kt),
        near=n,
        far=f,
        root=str(root),
        split=split,
        transform=recorded,
        bounds=torch.tensor(np.stack([lo, hi]), dtype=torch.float32),
    )


def _downscaled(root: Path, path: Path, scale: float) -> Path:
    """nerfstudio keeps ``images_k/`` copies of ``images/`` downscaled k times: the copy of ``path`` for
    ``scale = 1 / k`` when it exists, else ``path``."""
    k = downscale_factor(scale)
    if k == 1:
        return path
    rel = Path(os.path.relpath(path, os.path.abspath(root)))
    if len(rel.parts) < 2:
        return path
    cand = Path(root) / f"{rel.parts[0]}_{k}" / Path(*rel.parts[1:])
    return cand if cand.is_file() else path


def _read_mask(root: Path, frame: dict, index: int, source: Path, size: tuple[int, int]) -> np.ndarray:
    rel = frame["mask_path"]
    if not isinstance(rel, str) or not rel:
        raise InerfError(f"{source}: frame {index}: 'mask_path' must be a path string")
    path = inside_root(root, rel, source)
    if not path.is_file():
        raise InerfError(f"{source}: frame {index}: mask not found: {path}")
    m = read_image(path)[..., 0]  # grey masks are read as RGB; its first channel is the mask
    if m.shape != size:
        raise InerfError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, its image is {size[1]}x{size[0]}")
    return m
