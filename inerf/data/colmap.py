"""COLMAP sparse reconstructions (``cameras``, ``images``, ``points3D`` as ``.bin`` or ``.txt``), read with
pycolmap (``pip install 'inerf[capture]'``; COLMAP's own reader, not a hand-written one).

Layout (COLMAP's, and what ``inerf colmap`` writes)::

    ROOT/images/           the photos, named as in the model
    ROOT/images_k/         optional copies downscaled k times (LLFF / nerfstudio layout), used for scale 1/k
    ROOT/sparse/0/         cameras, images, points3D (.bin or .txt; COLMAP >= 3.12 adds rigs and frames)

``ROOT/sparse/`` holding the model directly, or the model files in ROOT itself, work too.

Poses: COLMAP stores world-to-camera (``cam_from_world``: ``x_cam = R x_world + t``) with OpenCV camera
axes, inerf's axes, so the loader only inverts them. Only registered images (those with a pose) are
loaded, sorted by name.

Cameras: ``SIMPLE_PINHOLE``, ``PINHOLE``, ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV`` and
``OPENCV_FISHEYE``; distortion is removed when loading (:mod:`inerf.data.undistort`), so every returned
camera is pinhole. COLMAP's pixel centres are at +0.5, as inerf's.

Normalisation (recorded in ``ViewSet.transform``; the original frame is COLMAP's world): the scene box
spans the camera centres and the 1st-99th percentile box of the sparse points (percentiles drop stray
points). The world is translated so that box is centred at the origin and scaled so its longest side is
2: cameras and scene content lie in [-1, 1]^3, inside the grid field's default box [-1.5, 1.5]^3. No
rotation: COLMAP's axes are kept. ``bounds`` is that box in training units.

Ray bounds from the sparse points, as LLFF's ``imgs2poses`` does: for each image, the depths of the points
it observes; ``near`` = 0.9 x the smallest 1st percentile, ``far`` = 1.1 x the largest 99th percentile.

Splits (the LLFF rule): registered images sorted by name, every ``holdout``-th (0, 8, 16, ...) is ``test``
and ``val``, the others ``train``; ``all`` is every image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inerf.data.common import SplitImages, check_load_args, check_near_far, first_views, image_folder
from inerf.data.image_io import one_line, parse_background, read_image
from inerf.data.llff import llff_split_indices
from inerf.data.undistort import Undistorter, camera_from_params
from inerf.data.views import SceneTransform, ViewSet
from inerf.errors import InerfError

__all__ = [
    "COLMAP_SPLITS",
    "ColmapModel",
    "find_colmap_model",
    "import_pycolmap",
    "is_colmap",
    "load_colmap",
    "read_colmap_model",
]

COLMAP_SPLITS = ("train", "val", "test", "all")
POINT_PERCENTILES = (1.0, 99.0)
"""Percentiles of the sparse points that bound the scene box and the ray bounds (outliers dropped)."""
_MODEL_STEMS = ("cameras", "images", "points3D")


def import_pycolmap():
    """``import pycolmap``, or a one-line :class:`InerfError` saying how to install it."""
    try:
        import pycolmap
    except ImportError:
        raise InerfError(
            "COLMAP support needs pycolmap: pip install 'inerf[capture]' (or pip install pycolmap)"
        ) from None
    return pycolmap


def _has_model(folder: Path) -> bool:
    return any(all((folder / f"{s}{ext}").is_file() for s in _MODEL_STEMS) for ext in (".bin", ".txt"))


def find_colmap_model(root: str | Path) -> Path | None:
    """The folder holding the sparse model of ``root``: ``sparse/0``, ``sparse`` or ``root`` itself."""
    root = Path(root)
    for cand in (root / "sparse" / "0", root / "sparse", root):
        if _has_model(cand):
            return cand
    return None


def is_colmap(root: str | Path) -> bool:
    """Whether ``root`` holds a COLMAP sparse model (see :func:`find_colmap_model`)."""
    return find_colmap_model(root) is not None


class ColmapModel:
    """The parts of a COLMAP reconstruction the loader uses, in plain numpy (float64).

    Attributes:
        folder: the model folder.
        names: registered image names, sorted.
        c2w: ``[N, 4, 4]`` OpenCV camera-to-world of those images, COLMAP's world.
        cameras: per image, ``(model name, params, width, height)``.
        points: ``[P, 3]`` sparse points (world).
        depths: per image, z-depths ``[k]`` of the points it observes.
    """

    def __init__(self, folder, names, c2w, cameras, points, depths):
        self.folder, self.names, self.c2w = folder, names, c2w
        self.cameras, self.points, self.depths = cameras, points, depths


def read_colmap_model(folder: str | Path) -> ColmapModel:
    """Read a sparse model with pycolmap; one-line :class:`InerfError` on any problem, naming the folder."""
    pycolmap = import_pycolmap()
    folder = Path(folder)
    try:
        rec = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # noqa: BLE001 - pycolmap raises ValueError/RuntimeError with C++ messages
        raise InerfError(f"{folder}: cannot read the COLMAP model ({one_line(exc)})") from None
    ids = [i for i in rec.reg_image_ids() if rec.image(i).has_pose]
    if not ids:
        raise InerfError(
            f"{folder}: the COLMAP model has no registered images ({rec.num_images()} images, none with a pose)"
        )
    ids.sort(key=lambda i: rec.image(i).name)
    names, c2w, cameras, depths = [], [], [], []
    xyz = {pid: p.xyz for pid, p in rec.points3D.items()}
    for i in ids:
        im = rec.image(i)
        w2c = np.eye(4)
        w2c[:3] = im.cam_from_world().matrix()
        c2w.append(np.linalg.inv(w2c))
        cam = rec.cameras[im.camera_id]
        cameras.append((cam.model.name, [float(v) for v in cam.params], int(cam.width), int(cam.height)))
        names.append(im.name)
        seen = [xyz[p.point3D_id] for p in im.points2D if p.has_point3D() and p.point3D_id in xyz]
        pts = np.asarray(seen, dtype=np.float64).reshape(-1, 3)
        depths.append(pts @ w2c[2, :3] + w2c[2, 3])  # z of each point in this camera
    points = np.asarray(list(xyz.values()), dtype=np.float64).reshape(-1, 3)
    return ColmapModel(folder, names, np.stack(c2w), cameras, points, depths)


def _scene_box(model: ColmapModel) -> tuple[np.ndarray, np.ndarray]:
    centres = model.c2w[:, :3, 3]
    lo, hi = centres.min(0), centres.max(0)
    if len(model.points):
        p_lo, p_hi = np.percentile(model.points, POINT_PERCENTILES, axis=0)
        lo, hi = np.minimum(lo, p_lo), np.maximum(hi, p_hi)
    return lo, hi


def _normalisation(lo: np.ndarray, hi: np.ndarray, folder: Path) -> SceneTransform:
    half = float((hi - lo).max()) / 2.0
    s = 1.0 / half if half > 0 else 1.0
    return SceneTransform(s, translation=tuple(-s * (lo + hi) / 2.0), original=f"COLMAP world of {folder}")


def load_colmap(
    root: str | Path,
    split: str = "train",
    *,
    scale: float = 1.0,
    background="black",
    near: float | None = None,
    far: float | None = None,
    max_views: int | None = None,
    holdout: int = 8,
    normalize: bool = True,
    images: str = "images",
) -> ViewSet:
    """Load one split of a COLMAP scene (see the module docstring).

    Args:
        root: the scene folder (``images/`` and ``sparse/0/``).
        split: ``train``, ``val``, ``test`` or ``all``.
        scale: image scale (1/k reads ``images_k/`` when it exists).
        background: colour recorded for renderers (photos have no alpha; black as for LLFF).
        near, far: override the ray bounds (training units).
        max_views: keep the first ``max_views`` views of the split.
        holdout: every ``holdout``-th image is a test image (0: none).
        normalize: centre and scale the scene (False keeps COLMAP's units and place).
        images: name of the image folder.
    Returns:
        A :class:`ViewSet` with pinhole cameras (distortion removed), OpenCV c2w in the training frame,
        ``transform`` (COLMAP world -> training frame) and ``bounds``; ``alphas`` is None.
    """
    root = check_load_args(root, split, COLMAP_SPLITS, scale, "a COLMAP scene")
    bg = parse_background(background) or (0.0, 0.0, 0.0)
    folder = find_colmap_model(root)
    if folder is None:
        raise InerfError(f"{root}: no COLMAP model (expected sparse/0/cameras.bin or .txt, images, points3D)")
    model = read_colmap_model(folder)

    lo, hi = _scene_box(model)
    to_train = (
        _normalisation(lo, hi, folder) if normalize else SceneTransform.identity(f"COLMAP world of {folder}")
    )
    c2w = to_train.c2w_to_training(torch.from_numpy(model.c2w))
    box = to_train.points_to_training(torch.from_numpy(np.stack([lo, hi]))).numpy()
    depths = [d * to_train.scale for d in model.depths if len(d)]
    if depths:
        n_auto = 0.9 * min(float(np.percentile(d, POINT_PERCENTILES[0])) for d in depths)
        f_auto = 1.1 * max(float(np.percentile(d, POINT_PERCENTILES[1])) for d in depths)
        n_auto = max(n_auto, 1e-3 * f_auto)  # points behind a camera (outliers) must not give near <= 0
    else:  # no points: a box around the cameras
        unit = float(box[1, 0] - box[0, 0]) / 2.0 or 1.0
        corners = np.array([[x, y, z] for x in box[:, 0] for y in box[:, 1] for z in box[:, 2]])
        n_auto = 0.05 * unit
        f_auto = float(np.linalg.norm(c2w[:, None, :3, 3].numpy() - corners[None], axis=-1).max())
    n = float(near) if near is not None else n_auto
    f = float(far) if far is not None else f_auto
    n, f = check_near_far(root, n, f)

    idx = first_views(llff_split_indices(len(model.names), split, holdout), max_views)
    if not idx:
        raise InerfError(
            f"{root}: split {split!r} is empty ({len(model.names)} registered images, holdout={holdout})"
        )

    img_dir, residual = image_folder(root, images, scale)
    stack = SplitImages(bg)
    Ks = []
    undistorters: dict = {}
    for i in idx:
        name = model.names[i]
        path = img_dir / name
        if not path.is_file():
            raise InerfError(f"{folder}: image {name!r} of the model not found in {img_dir}")
        img = read_image(path)[..., :3]  # photos: no meaningful alpha
        stack.check_size(path, img, residual)
        h, w = stack.size
        model_name, params, w_cam, h_cam = model.cameras[i]
        key = (model_name, tuple(params), w_cam, h_cam)
        if key not in undistorters:
            K, dist = camera_from_params(model_name, params, source=f"{folder}: camera of {name}")
            # The model's intrinsics are for w_cam x h_cam; the images on disk may be a resized copy.
            sx, sy = w / w_cam, h / h_cam
            K = type(K)(K.fx * sx, K.fy * sy, K.cx * sx, K.cy * sy)
            undistorters[key] = Undistorter(K, dist, w, h)
        und = undistorters[key]
        stack.add(und.image(img), f"{img_dir.name}/{name}")
        Ks.append(und.new_K)
    kt = torch.tensor([[k.fx, k.fy, k.cx, k.cy] for k in Ks], dtype=torch.float64)
    return ViewSet(
        **stack.view_fields(folder),
        cameras=stack.cameras(c2w[idx], kt),
        near=n,
        far=f,
        root=str(root),
        split=split,
        transform=to_train,
        bounds=torch.from_numpy(box).float(),
    )
