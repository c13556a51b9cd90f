"""The dataclass every multi-view scene loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inerf.geometry.cameras import Cameras


@dataclass
class ViewSet:
    """Posed images of one scene, in the internal convention (OpenCV axes, c2w, pixel centres +0.5).

    Attributes:
        images: ``[N, H, W, 3]`` float32 in [0, 1], already composited on ``background`` when the
            source had alpha.
        alphas: ``[N, H, W]`` float32 in [0, 1] (foreground coverage), or None when the source has none.
        cameras: ``N`` cameras (c2w ``[N, 4, 4]`` and intrinsics at this image size).
        near: start of the ray segment that encloses the scene (scene units, z-depth).
        far: end of that segment.
        background: RGB the images were composited on (meaningful when ``alphas`` is not None).
        names: ``N`` file paths of the images (relative to the dataset root), for reports.
        root: the dataset folder.
        split: the split these views come from (``train``, ``val``, ``test``).
    """

    images: torch.Tensor
    alphas: torch.Tensor | None
    cameras: Cameras
    near: float
    far: float
    background: tuple[float, float, float]
    names: list[str]
    root: str = ""
    split: str = ""

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]
