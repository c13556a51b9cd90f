"""DVR-layout datasets used by pixelNeRF: ShapeNet NMR renders (``dvr``, ``dvr_gen``) and DTU ``rs_dtu_4``
(``dvr_dtu``).

Layout (``root`` = ``NMR_Dataset`` or ``rs_dtu_4``)::

    <root>/<category>/<prefix><split>.lst       one object folder name per line
    <root>/<category>/<object>/image/*.png|jpg  views, sorted by name (the i-th uses the keys ``*_i``)
                              /mask/*.png       optional foreground masks, sorted
                              /cameras.npz      world_mat_i, camera_mat_i, [world_mat_inv_i], [scale_mat_i]

Prefixes: ``softras_`` (NMR, 13 categories), ``gen_`` (NMR unseen-category split: lists written for the 10
categories not used in training), ``new_`` (DTU: a single category folder ``DTU`` with ``new_train.lst`` and
``new_val.lst``, the 15 test scans). A category without the list file contributes nothing, as published; a
split that ends up empty is an error.

Conversions to inerf's convention (OpenCV c2w, pixel centres at +0.5), done once here:

* NMR: ``world_mat_i`` is world-to-camera with OpenCV camera axes in DVR's y-up world; c2w is its inverse,
  rotated into a z-up world (pixelNeRF's, which its orbit videos assume): ``c2w = W c2w_dvr`` with
  ``W = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]``. ``camera_mat_i`` is in normalised device coordinates (image
  side 2), so ``fx = camera_mat[0, 0] W / 2``; the principal point is pixelNeRF's default image centre.
* DTU: ``world_mat_i[:3] = K [R | t]`` is decomposed (RQ) into intrinsics and camera centre, the centre is
  normalised by ``scale_mat_i`` (``(C - s_t) / diag(s_R)``), and the world is rotated 180 degrees about x,
  as pixelNeRF does, so that world frames (and the published models' inputs) agree. fx, fy, cx, cy are
  averaged over the scan's views, as published (pixelNeRF takes one camera model per scene).
* Both: file coordinates put pixel centres at integers (pixelNeRF, OpenCV); inerf at +0.5, so ``cx + 0.5``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from inerf.data.srn import ObjectViews, mask_bbox, object_views, read_mask, read_rgb
from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER

__all__ = [
    "DTU_WORLD_FLIP",
    "NMR_TO_Z_UP",
    "DVRDataset",
    "decompose_projection",
    "dtu_dataset",
    "nmr_dataset",
]

NMR_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""World rotation DVR (y up) -> pixelNeRF (z up): new (x, y, z) = (x, -z, y)."""

DTU_WORLD_FLIP = np.diag([1.0, -1.0, -1.0])
"""pixelNeRF's DTU world: the normalised scanner frame rotated 180 degrees about x."""

FORMATS = {
    # format: (list prefix, z_near, z_far, white background, DTU cameras)
    "dvr": ("softras_", 1.2, 4.0, True, False),
    "dvr_gen": ("gen_", 1.2, 4.0, True, False),
    "dvr_dtu": ("new_", 0.1, 5.0, False, True),
}


def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a ``3 x 4`` projection ``P = K [R | -R C]`` into intrinsics, rotation and camera centre.

    Returns:
        ``K [3, 3]`` upper triangular with positive diagonal and ``K[2, 2] = 1``, ``R [3, 3]`` world-to-camera
        rotation (det +1), ``C [3]`` camera centre in world coordinates. Same result as OpenCV's
        ``decomposeProjectionMatrix`` for a valid camera.
    """
    P = np.asarray(P, dtype=np.float64)[:3, :4]
    M = P[:, :3]
    if np.linalg.det(M) < 0:
        P, M = -P, -M  # P is homogeneous: -P is the same camera, and makes det R = +1 below
    C = -np.linalg.solve(M, P[:, 3])
    # RQ from QR of the row-reversed transpose: with J the reversal, J M = (Q' R')^T J gives M = K R.
    J = np.eye(3)[::-1]
    Q, U = np.linalg.qr((J @ M).T)
    K = J @ U.T @ J
    R = J @ Q.T
    D = np.diag(np.sign(np.diag(K)))  # make K's diagonal positive; D D = I keeps K R unchanged
    K, R = K @ D, D @ R
    return K / K[2, 2], R, C


class DVRDataset:
    """One :class:`ObjectViews` per object of a DVR-layout split (all its views), in list order per category,
    categories sorted by folder name.

    Args:
        root: dataset root (``NMR_Dataset`` or ``rs_dtu_4``).
        split: ``train``, ``val`` or ``test`` (list ``<prefix><split>.lst``).
        format: ``dvr`` (NMR), ``dvr_gen`` (NMR unseen categories) or ``dvr_dtu`` (DTU).
        image_size: optional ``(H, W)`` to resize to (area averaging).
        z_near, z_far: override the format's ray bounds (NMR 1.2 / 4.0, DTU 0.1 / 5.0).
    """

    lindisp = False

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        format: str = "dvr",
        image_size: tuple[int, int] | None = None,
        z_near: float | None = None,
        z_far: float | None = None,
    ):
        if format not in FORMATS:
            raise InerfError(f"unknown DVR dataset format {format!r}; choose one of {', '.join(FORMATS)}")
        prefix, near, far, white, dtu = FORMATS[format]
        self.root, self.split, self.format, self.is_dtu = Path(root), split, format, dtu
        self.z_near = near if z_near is None else z_near
        self.z_far = far if z_far is None else z_far
        self.white_background = white
        self.image_size = image_size
        if not self.root.is_dir():
            raise InerfError(f"dataset folder not found: {self.root}")
        self.list_name = f"{prefix}{split}.lst"
        self.objects: list[tuple[str, Path]] = []
        for cat in sorted(p for p in self.root.iterdir() if p.is_dir()):
            lst = cat / self.list_name
            if not lst.is_file():
                continue  # published behaviour: a category without this split's list is skipped
            names = [line.strip() for line in lst.read_text().splitlines() if line.strip()]
            self.objects += [(cat.name, cat / name) for name in names]
        if not self.objects:
            raise InerfError(
                f"{format} split {split!r} is empty: no {self.list_name} with entries in the "
                f"category folders of {self.root}"
            )

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def names(self) -> list[str]:
        return [p.name for _, p in self.objects]

    def __getitem__(self, index: int) -> ObjectViews:
        if not -len(self) <= index < len(self):
            raise InerfError(
                f"object index {index} out of range: split {self.split!r} has {len(self)} objects"
            )
        category, obj = self.objects[index]
        if not obj.is_dir():
            raise InerfError(f"object folder listed in {category}/{self.list_name} is missing: {obj}")
        image_files = sorted(
            p for p in (obj / "image").glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")
        )
        if not image_files:
            raise InerfError(f"no images in {obj / 'image'}")
        mask_files = sorted((obj / "mask").glob("*.png"))
        if mask_files and len(mask_files) != len(image_files):
            raise InerfError(f"{obj}: {len(image_files)} images but {len(mask_files)} masks")
        try:
            cams = dict(np.load(obj / "cameras.npz"))
        except (OSError, ValueError) as exc:
            raise InerfError(f"cannot read {obj / 'cameras.npz'}: {exc}") from None

        images = torch.from_numpy(np.stack([read_rgb(p) for p in image_files])).float() / 255.0
        n, H, W, _ = images.shape
        if self.is_dtu:
            c2w, fx, fy, cx, cy = self._dtu_cameras(cams, n, obj)
        else:
            c2w, fx, fy, cx, cy = self._nmr_cameras(cams, n, obj, W, H)
        cameras = Cameras(
            torch.from_numpy(c2w).float(),
            torch.from_numpy(fx).float(),
            torch.from_numpy(fy).float(),
            torch.from_numpy(cx).float(),
            torch.from_numpy(cy).float(),
            H,
            W,
        )
        masks = bbox = None
        if mask_files:
            masks = torch.from_numpy(np.stack([read_mask(p) for p in mask_files]))
            if not self.is_dtu:  # published: no bbox sampling on DTU
                boxes = [mask_bbox(m > 0) for m in masks]
                bbox = torch.stack(
                    [b if b is not None else torch.tensor([0.0, 0.0, W - 1.0, H - 1.0]) for b in boxes]
                )
        return object_views(self, obj, images, cameras, masks, bbox, image_files, category)

    @staticmethod
    def _key(cams: dict, name: str, i: int, obj: Path) -> np.ndarray:
        key = f"{name}_{i}"
        if key not in cams:
            raise InerfError(f"{obj / 'cameras.npz'} has no {key} (one entry per image is needed)")
        return np.asarray(cams[key], dtype=np.float64)

    @staticmethod
    def _homogeneous(m: np.ndarray) -> np.ndarray:
        if m.shape == (3, 4):
            m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
        return m

    def _nmr_cameras(self, cams: dict, n: int, obj: Path, W: int, H: int):
        c2w = np.zeros((n, 4, 4))
        fx, fy = np.zeros(n), np.zeros(n)
        for i in range(n):
            if f"world_mat_inv_{i}" in cams:
                c2w_dvr = self._homogeneous(self._key(cams, "world_mat_inv", i, obj))
            else:
                c2w_dvr = np.linalg.inv(self._homogeneous(self._key(cams, "world_mat", i, obj)))
            # DVR y-up world -> pixelNeRF z-up world (a world rotation: camera axes stay OpenCV).
            c2w[i] = c2w_dvr
            c2w[i, :3, :] = NMR_TO_Z_UP @ c2w_dvr[:3, :]
            K_ndc = self._key(cams, "camera_mat", i, obj)
            # NDC intrinsics are for an image of side 2: scale by half the image size.
            fx[i], fy[i] = K_ndc[0, 0] * W / 2, K_ndc[1, 1] * H / 2
            if abs(abs(fx[i]) - abs(fy[i])) > 1e-3 * abs(fx[i]):
                raise InerfError(
                    f"{obj / 'cameras.npz'}: camera_mat_{i} has fx != fy ({fx[i]:.3f} vs {fy[i]:.3f} px)"
                )
        # pixelNeRF's default principal point (W / 2, H / 2), integer-centred -> +0.5 in inerf's pixels.
        cx = np.full(n, W / 2 + PIXEL_CENTER)
        cy = np.full(n, H / 2 + PIXEL_CENTER)
        return c2w, fx, np.abs(fy), cx, cy

    def _dtu_cameras(self, cams: dict, n: int, obj: Path):
        c2w = np.tile(np.eye(4), (n, 1, 1))
        Ks = np.zeros((n, 3, 3))
        for i in range(n):
            K, R_w2c, C = decompose_projection(self._key(cams, "world_mat", i, obj))
            if f"scale_mat_{i}" in cams:
                S = self._key(cams, "scale_mat", i, obj)
                C = (C - S[:3, 3]) / np.diag(S[:3, :3])  # into the normalised (unit-sphere) scene frame
            c2w[i, :3, :3] = DTU_WORLD_FLIP @ R_w2c.T  # world rotation only: camera axes stay OpenCV
            c2w[i, :3, 3] = DTU_WORLD_FLIP @ C
            Ks[i] = K
        # One camera model per scan, as published: average fx, fy, cx, cy over the views.
        fx, fy = np.full(n, Ks[:, 0, 0].mean()), np.full(n, Ks[:, 1, 1].mean())
        # OpenCV intrinsics put pixel centres at integers; inerf at +0.5.
        cx, cy = np.full(n, Ks[:, 0, 2].mean() + PIXEL_CENTER), np.full(n, Ks[:, 1, 2].mean() + PIXEL_CENTER)
        return c2w, fx, fy, cx, cy


def nmr_dataset(root: str | os.PathLike, split: str = "train", unseen: bool = False, **kw) -> DVRDataset:
    """ShapeNet NMR renders (``softras_<split>.lst``; ``gen_<split>.lst`` for the unseen-category split)."""
    return DVRDataset(root, split, "dvr_gen" if unseen else "dvr", **kw)


def dtu_dataset(root: str | os.PathLike, split: str = "train", **kw) -> DVRDataset:
    """DTU ``rs_dtu_4`` (``DTU/new_<split>.lst``; pixelNeRF has train and val, val doubling as test)."""
    return DVRDataset(root, split, "dvr_dtu", **kw)
