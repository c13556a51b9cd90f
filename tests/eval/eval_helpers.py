"""Helpers shared by the metric tests (a module name no other test folder uses, unlike ``conftest``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
DEMO_TARGETS = REPO / "inerf" / "assets" / "demo" / "targets"
# The shared benchmark scene lives beside the clone (../shared), in CI as here.
CHAIR_SCENE = REPO.parent / "shared" / "scenes" / "chair"


def read_rgb_on_white(path: Path) -> np.ndarray:
    """``[H, W, 3]`` float64 in [0, 1] of an RGB(A) PNG, alpha composited over white."""
    import imageio.v3 as iio

    img = np.asarray(iio.imread(path)).astype(np.float64) / 255.0
    if img.shape[-1] == 4:
        img = img[..., :3] * img[..., 3:] + (1.0 - img[..., 3:])
    return img[..., :3]


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Area-resize ``[N, H, W, 3]`` to ``size`` x ``size``."""
    t = torch.from_numpy(images).permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(t, size=(size, size), mode="area").permute(0, 2, 3, 1).numpy()
