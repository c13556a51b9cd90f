"""A nerfstudio capture taken through distorted lenses, made from pixel-exact pinhole renders.

``inerf synth scene`` renders pinhole views (poses and intrinsics exact); each image is then resampled into
the image a distorted camera at the same pose takes: for every pixel of the distorted image, OpenCV's inverse
of the lens model gives the ray, and the pinhole render is sampled where that ray lands. Frames alternate
between two cameras, as a capture with two lenses would: an ``OPENCV`` one (``k1, k2, p1, p2``, barrel) and
an ``OPENCV_FISHEYE`` one (``k1 .. k4``), each with its own focal length and principal point, stored per frame
in ``transforms.json`` (nerfstudio's multi-camera layout). A module name no other test folder uses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

LENSES = {
    # model: (focal as a multiple of the pinhole render's, principal point offset in px, coefficients)
    "OPENCV": (1.12, (0.6, -0.4), {"k1": -0.3, "k2": 0.05, "p1": 0.002, "p2": -0.0015}),
    "OPENCV_FISHEYE": (1.1, (-0.5, 0.3), {"k1": -0.02, "k2": 0.005, "k3": 0.0, "k4": 0.0}),
}


def ideal_coords(
    u: np.ndarray, v: np.ndarray, K: dict, model: str, coeffs: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Distorted pixel centres ``(u, v)`` (pixel centres at +0.5) -> undistorted normalised coordinates."""
    pts = np.stack([(u - K["cx"]) / K["fl_x"], (v - K["cy"]) / K["fl_y"]], -1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    if model == "OPENCV_FISHEYE":
        D = np.array([coeffs[k] for k in ("k1", "k2", "k3", "k4")])
        und = cv2.fisheye.undistortPoints(pts, np.eye(3), D, criteria=crit)
    else:
        D = np.array([coeffs[k] for k in ("k1", "k2", "p1", "p2")])
        und = cv2.undistortPoints(pts, np.eye(3), D, R=None, P=None, criteria=crit)
    und = und.reshape(*u.shape, 2)
    return und[..., 0], und[..., 1]


def distort_image(pinhole: np.ndarray, f_pinhole: float, K: dict, model: str, coeffs: dict) -> np.ndarray:
    """The image a ``model`` camera with intrinsics ``K`` takes from the pose of the centred pinhole render
    ``pinhole`` (uint8 ``[H, W, 3]``, focal ``f_pinhole``). Every ray must land inside the render."""
    h, w = pinhole.shape[:2]
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = ideal_coords(i + 0.5, j + 0.5, K, model, coeffs)
    # Pixel centres at +0.5 on both sides; cv2.remap samples pixel centres at integers.
    map_x = (f_pinhole * x + w / 2 - 0.5).astype(np.float32)
    map_y = (f_pinhole * y + h / 2 - 0.5).astype(np.float32)
    inside = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    assert inside.all(), f"{model}: {int((~inside).sum())} rays leave the pinhole render"
    return cv2.remap(pinhole, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def lens(model: str, size: int, f_pinhole: float) -> dict:
    """nerfstudio keys of one of :data:`LENSES` for ``size`` x ``size`` images."""
    scale, (dx, dy), coeffs = LENSES[model]
    f = scale * f_pinhole
    keys = {"camera_model": model, "fl_x": f, "fl_y": f, "cx": size / 2 + dx, "cy": size / 2 + dy}
    return {**keys, "w": size, "h": size, **coeffs}


def write_distorted_capture(scene: Path, out: Path) -> dict:
    """Turn the Blender-layout synth ``scene`` (train and test splits, opaque images) into a nerfstudio
    capture at ``out``; return ``{"test": [(image path, lens keys, OpenCV c2w in the file's frame)]}``."""
    from inerf.geometry.conventions import opengl_to_opencv_c2w

    (out / "images").mkdir(parents=True)
    frames, lists, held_out = [], {"train": [], "test": []}, []
    k = 0
    for split in ("train", "test"):
        meta = json.loads((scene / f"transforms_{split}.json").read_text())
        for frame in meta["frames"]:
            img = iio.imread(scene / f"{frame['file_path']}.png")[..., :3]
            size = img.shape[1]
            f_pinhole = 0.5 * size / math.tan(0.5 * meta["camera_angle_x"])
            model = ("OPENCV", "OPENCV_FISHEYE")[k % 2]
            keys = lens(model, size, f_pinhole)
            name = f"images/{split}_{k:03d}.png"
            iio.imwrite(out / name, distort_image(img, f_pinhole, keys, model, LENSES[model][2]))
            frames.append({"file_path": name, "transform_matrix": frame["transform_matrix"], **keys})
            lists[split].append(name)
            if split == "test":
                import torch

                c2w = opengl_to_opencv_c2w(torch.tensor(frame["transform_matrix"], dtype=torch.float64))
                held_out.append((out / name, keys, c2w.numpy()))
            k += 1
    doc = {"frames": frames, "train_filenames": lists["train"], "test_filenames": lists["test"]}
    (out / "transforms.json").write_text(json.dumps(doc, indent=1))
    return {"test": held_out}
