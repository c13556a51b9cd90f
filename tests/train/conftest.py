"""A tiny analytic scene in the Blender layout, rendered by ray-sphere intersection (no NeRF involved)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from inerf.geometry import look_at, opencv_to_opengl_c2w

CAMERA_ANGLE_X = 0.6911112070083618  # the NeRF-synthetic field of view
RADIUS = 1.0  # sphere at the origin
DISTANCE = 4.0  # camera distance from the origin


def look_at_c2w_gl(position: np.ndarray) -> np.ndarray:
    """OpenGL/Blender c2w of a camera at ``position`` looking at the origin with world +z up."""
    return opencv_to_opengl_c2w(look_at(position)).numpy()


def sphere_colour(n: np.ndarray) -> np.ndarray:
    """Colour of the surface point with unit normal ``n`` ``[..., 3]``: smooth, and different on every side."""
    return np.clip(0.5 + 0.45 * n[..., [0, 1, 2]] * np.array([1.0, -1.0, 1.0]), 0, 1)


def render_sphere(c2w_gl: np.ndarray, size: int, supersample: int = 4) -> np.ndarray:
    """Straight-alpha RGBA ``[size, size, 4]`` in [0, 1]: pixel centres at +0.5, box-filtered supersamples."""
    f = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    s = supersample
    u = (np.arange(size * s) + 0.5) / s  # sub-pixel centres in pixel units
    uu, vv = np.meshgrid(u, u, indexing="xy")
    d_cam = np.stack([(uu - size / 2) / f, -(vv - size / 2) / f, -np.ones_like(uu)], -1)  # OpenGL camera axes
    d = d_cam @ c2w_gl[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w_gl[:3, 3]
    b = d @ o
    disc = b**2 - (o @ o - RADIUS**2)
    hit = disc > 0
    t = -b - np.sqrt(np.where(hit, disc, 0))
    n = o + t[..., None] * d
    rgb = np.where(hit[..., None], sphere_colour(n), 0.0)
    # Box-filter the supersamples: premultiplied colour and coverage, then straight colour again.
    a = hit.astype(np.float64).reshape(size, s, size, s).mean((1, 3))
    prem = rgb.reshape(size, s, size, s, 3).mean((1, 3))
    straight = np.where(a[..., None] > 0, prem / np.maximum(a[..., None], 1e-8), 0)
    return np.concatenate([straight, a[..., None]], -1)


def write_sphere_scene(root: Path, size: int = 32, n_train: int = 8, n_val: int = 2, n_test: int = 3) -> Path:
    """Blender-layout scene: train views on two rings, val/test views in between (never seen in training)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def positions(n: int, elev_deg: float, phase: float) -> list[np.ndarray]:
        out = []
        for k in range(n):
            az = 2 * math.pi * k / n + phase
            el = math.radians(elev_deg + rng.uniform(-5, 5))
            out.append(
                DISTANCE * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
            )
        return out

    splits = {
        "train": positions(n_train // 2, 15, 0.0) + positions(n_train - n_train // 2, 45, 0.4),
        "val": positions(n_val, 30, 0.2),
        "test": positions(n_test, 30, 0.9),
    }
    for split, pos in splits.items():
        (root / split).mkdir(exist_ok=True)
        frames = []
        for k, p in enumerate(pos):
            c2w = look_at_c2w_gl(p)
            rgba = render_sphere(c2w, size)
            iio.imwrite(root / split / f"r_{k}.png", np.round(rgba * 255).astype(np.uint8))
            frames.append(
                {"file_path": f"./{split}/r_{k}", "rotation": 0.0, "transform_matrix": c2w.tolist()}
            )
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames})
        )
    return root


@pytest.fixture(scope="session")
def sphere_scene(tmp_path_factory) -> Path:
    return write_sphere_scene(tmp_path_factory.mktemp("sphere_scene"))


# A NeRF small enough to fit the sphere in seconds on one CPU core (the architecture is NeRF's, scaled down).
TINY_FIELD = {"width": 64, "depth": 3, "skip": 1, "pos_freqs": 4, "dir_freqs": 2}
TINY_FIELD_ARGS = [a for k, v in TINY_FIELD.items() for a in ("--field", f"{k}={v}")]


def tiny_config(data, out, **overrides):
    from inerf.train import TrainConfig

    kw = {
        "data": None if data is None else str(data),
        "out": str(out),
        "field": dict(TINY_FIELD),
        "n_coarse": 32,
        "n_fine": 16,
        "rays_per_batch": 256,
        "lr": 5e-3,
        "max_steps": 200,
        "val_every": 100,
        "save_every": 0,
        "log_every": 50,
        "device": "cpu",
        "progress": False,
    }
    kw.update(overrides)
    return TrainConfig(**kw)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """These tests run tiny networks, where extra threads only contend with the other pytest worker."""


@pytest.fixture(scope="session")
def trained_run(sphere_scene, tmp_path_factory):
    """One short training run shared by the tests that only read a run: ``(TrainResult, run_dir)``."""
    import torch

    from inerf.train import train

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(tiny_config(sphere_scene, tmp_path_factory.mktemp("runs") / "sphere"))
    finally:
        torch.set_num_threads(old)
    return result
