"""SRN ShapeNet renders (cars, chairs) as used by pixelNeRF, plus the per-object record of every
multi-object dataset (SRN here, NMR and DTU in :mod:`inerf.data.dvr`).

Layout (``root`` = ``<dir>/cars`` reads ``<dir>/cars_<split>``)::

    cars_train/<object>/intrinsics.txt     line 1 "f cx cy 0", ..., last line "H W"
                       /rgb/000000.png ...  RGB(A) views, sorted by name
                       /pose/000000.txt ... 16 numbers: camera-to-world, OpenCV camera axes

Conversions to inerf's convention (:mod:`inerf.geometry.conventions`), done once here:

* Poses are already OpenCV-axes c2w, which is the internal convention: no flip. (pixelNeRF flips them to
  OpenGL axes; :meth:`inerf.pixelnerf.PixelNeRF.encode_views` does that for the model.)
* SRN (like pixelNeRF) puts pixel centres at integer coordinates; inerf at +0.5. So the principal point
  moves by half a pixel: ``cx = cx_file + 0.5``. The rays of every pixel are then exactly pixelNeRF's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER

__all__ = ["ObjectViews", "SRNDataset", "mask_bbox", "read_mask", "read_rgb", "resize_views"]


@dataclass
class ObjectViews:
    """Every view of one object (or scene) of a multi-object dataset, in inerf's convention."""

    name: str
    """Object / scene folder name."""
    images: torch.Tensor
    """``[NV, H, W, 3]`` float32 RGB in [0, 1] (the package's layout, as :class:`inerf.data.ViewSet`)."""
    cameras: Cameras
    """``NV`` cameras: OpenCV c2w, intrinsics in pixels with pixel centres at +0.5."""
    z_near: float
    """Near bound of rays: a distance along **unit** rays (pixelNeRF's ``z_near``), not a z-depth."""
    z_far: float
    """Far bound of rays (distance along unit rays)."""
    white_background: bool
    """True if the renders have a white background (SRN, NMR), False for black (DTU)."""
    path: Path
    """Object folder."""
    category: str | None = None
    """Category folder (ShapeNet synset for NMR, ``DTU`` for DTU), None for SRN."""
    masks: torch.Tensor | None = None
    """``[NV, H, W]`` float32 foreground masks in [0, 1], or None."""
    bbox: torch.Tensor | None = None
    """``[NV, 4]`` foreground boxes ``(cmin, rmin, cmax, rmax)``, inclusive integer pixel indices, or None."""
    view_names: list[str] = field(default_factory=list)
    """File stem of every view, in order."""

    def __len__(self) -> int:
        return self.images.shape[0]


def read_rgb(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of an image file (alpha and extra channels dropped, grey expanded)."""
    import imageio.v3 as iio

    try:
        img = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad input file
        raise InerfError(
            f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else exc}"
        ) from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    return img[..., :3].astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """``[H, W]`` float32 mask in [0, 1] (first channel of the file)."""
    import imageio.v3 as iio

    try:
        m = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad input file
        raise InerfError(f"cannot read mask {path}: {exc}") from None
    if m.ndim == 3:
        m = m[..., 0]
    scale = 65535.0 if m.dtype == np.uint16 else 255.0 if m.dtype == np.uint8 else 1.0
    return (m.astype(np.float32) / scale).clip(0.0, 1.0)


def mask_bbox(mask: torch.Tensor) -> torch.Tensor | None:
    """Inclusive bounds ``(cmin, rmin, cmax, rmax)`` of the non-zero pixels of ``mask [H, W]``, or None."""
    rows = torch.nonzero(mask.any(dim=1))
    cols = torch.nonzero(mask.any(dim=0))
    if len(rows) == 0:
        return None
    return torch.tensor([cols[0, 0], rows[0, 0], cols[-1, 0], rows[-1, 0]], dtype=torch.float32)


def resize_views(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    cameras: Cameras,
    bbox: torch.Tensor | None,
    size: tuple[int, int],
):
    """Resize views (``images [N, H, W, 3]``, ``masks [N, H, W]``) to ``size = (H', W')`` with area averaging
    (pixelNeRF's ``image_size`` option).

    Intrinsics scale by the size ratios in inerf's continuous pixel coordinates (pixel centres at +0.5),
    which is exact for area resampling; pixelNeRF scales its integer-centred coordinates instead, a
    difference of half a (new) pixel times ``1 - ratio``.
    """
    H, W = images.shape[1:3]
    if tuple(size) == (H, W):
        return images, masks, cameras, bbox
    images = (
        F.interpolate(images.permute(0, 3, 1, 2), size=size, mode="area").permute(0, 2, 3, 1).contiguous()
    )
    if masks is not None:
        masks = F.interpolate(masks[:, None], size=size, mode="area")[:, 0]
    sy, sx = size[0] / H, size[1] / W
    cameras = Cameras(
        cameras.c2w, cameras.fx * sx, cameras.fy * sy, cameras.cx * sx, cameras.cy * sy, size[0], size[1]
    )
    if bbox is not None:
        bbox = bbox * torch.tensor([sx, sy, sx, sy])
    return images, masks, cameras, bbox


def _sorted_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)
        if folder.is_dir()
        else []
    )


class SRNDataset:
    """SRN cars / chairs, one :class:`ObjectViews` per object (all its views), objects sorted by name.

    Args:
        root: ``<dir>/cars`` (or ``<dir>/chairs``): the split folder is ``<root>_<split>``.
        split: ``train``, ``val`` or ``test``.
        image_size: optional ``(H, W)`` to resize to (pixelNeRF uses 128 x 128, the SRN size).
        z_near, z_far: ray bounds; default: the ``near`` / ``far`` of the split's ``meta.json`` when
            ``inerf synth category`` wrote it, else 0.8 / 1.8 (SRN cars, camera radius 1.3), or 1.25 / 2.75
            when the folder name contains ``chair`` (SRN chairs, radius 2.0), as published.
    """

    white_background = True
    lindisp = False

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: tuple[int, int] | None = None,
        z_near: float | None = None,
        z_far: float | None = None,
    ):
        base = Path(root)
        base = Path(os.path.normpath(base))
        self.split = split
        self.path = base.parent / f"{base.name}_{split}"
        if split == "train" and (self.path / "chairs_2.0_train").is_dir():
            self.path = self.path / "chairs_2.0_train"  # the published chairs archive nests its train split
        if not self.path.is_dir():
            raise InerfError(f"SRN split folder not found: {self.path} (-D {root} reads <root>_<split>)")
        self.objects = sorted(p.parent for p in self.path.glob("*/intrinsics.txt"))
        if not self.objects:
            raise InerfError(f"SRN split {split!r} is empty: no <object>/intrinsics.txt under {self.path}")
        chairs = "chair" in base.name
        # A split written by `inerf synth category` records its own bounds (its chairs sit at the cars'
        # radius 1.3, so the name rule for SRN chairs would cut them off).
        recorded = _recorded_bounds(self.path)
        default = recorded or ((1.25, 2.75) if chairs else (0.8, 1.8))
        self.z_near = z_near if z_near is not None else default[0]
        self.z_far = z_far if z_far is not None else default[1]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.objects]

    def __getitem__(self, index: int) -> ObjectViews:
        if not -len(self) <= index < len(self):
            raise InerfError(
                f"object index {index} out of range: split {self.split!r} has {len(self)} objects"
            )
        obj = self.objects[index]
        rgb_files = _sorted_files(obj / "rgb", (".png", ".jpg", ".jpeg"))
        pose_files = _sorted_files(obj / "pose", (".txt",))
        if not rgb_files or len(rgb_files) != len(pose_files):
            raise InerfError(
                f"SRN object {obj}: {len(rgb_files)} images in rgb/ but {len(pose_files)} poses in pose/"
            )
        f, cx, cy = _read_srn_intrinsics(obj / "intrinsics.txt")

        rgb = np.stack([read_rgb(p) for p in rgb_files])  # [NV, H, W, 3] uint8
        # pixelNeRF's foreground: pixels where no channel is saturated (255); used only for the bbox.
        fg = torch.from_numpy(~(rgb == 255).any(axis=-1))
        bbox = []
        for k, m in enumerate(fg):
            b = mask_bbox(m)
            if b is None:
                raise InerfError(
                    f"SRN view {rgb_files[k]} has no foreground (every pixel has a channel at 255)"
                )
            bbox.append(b)
        images = torch.from_numpy(rgb).float() / 255.0
        c2w = torch.stack([_read_pose(p) for p in pose_files])  # OpenCV c2w already: no conversion
        H, W = images.shape[1:3]
        n = len(rgb_files)
        # SRN intrinsics put pixel centres at integers; inerf at +0.5.
        cameras = Cameras(
            c2w,
            torch.full((n,), f),
            torch.full((n,), f),
            torch.full((n,), cx + PIXEL_CENTER),
            torch.full((n,), cy + PIXEL_CENTER),
            H,
            W,
        )
        masks = fg.float()
        bbox_t = torch.stack(bbox)
        if self.image_size is not None:
            images, masks, cameras, bbox_t = resize_views(images, masks, cameras, bbox_t, self.image_size)
        return ObjectViews(
            name=obj.name,
            images=images,
            cameras=cameras,
            z_near=self.z_near,
            z_far=self.z_far,
            white_background=True,
            path=obj,
            masks=masks,
            bbox=bbox_t,
            view_names=[p.stem for p in rgb_files],
        )


def _recorded_bounds(split_dir: Path) -> tuple[float, float] | None:
    """``(near, far)`` from ``meta.json`` of a split written by ``inerf synth category``, else None."""
    import json

    try:
        meta = json.loads((split_dir / "meta.json").read_text())
        near, far = float(meta["near"]), float(meta["far"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("format") != "srn" or not 0 < near < far:
        return None
    return near, far


def _read_srn_intrinsics(path: Path) -> tuple[float, float, float]:
    try:
        first = path.read_text().splitlines()[0].split()
        f, cx, cy = (float(v) for v in first[:3])
    except (OSError, IndexError, ValueError):
        raise InerfError(f"cannot parse SRN intrinsics {path}: expected a first line 'f cx cy 0'") from None
    return f, cx, cy


def _read_pose(path: Path) -> torch.Tensor:
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, ValueError):
        values = np.zeros(0)
    if values.size != 16:
        raise InerfError(f"cannot parse SRN pose {path}: expected 16 numbers (a 4x4 camera-to-world)")
    return torch.from_numpy(values.reshape(4, 4)).float()
