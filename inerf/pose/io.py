"""Reading the inputs of a pose estimate (target image, intrinsics, poses) and writing pose files.

Every failure caused by the user's files raises :class:`inerf.errors.InerfError` with one line naming the
file. Poses are returned in the internal convention (OpenCV camera axes, camera-to-world); the one place a
file's OpenGL/Blender pose is converted is :func:`read_pose`.

Pose files:

* JSON: ``{"c2w": [[4x4]], "convention": "opencv"}`` (what ``inerf estimate`` writes), or
  ``{"w2c": [[4x4]]}``, or a Blender/nerfstudio frame ``{"transform_matrix": [[4x4]]}`` (OpenGL axes unless
  ``convention`` says otherwise), or a bare 4x4 / 3x4 list;
* TXT: 16 or 12 whitespace-separated numbers (a 4x4 or 3x4 c2w, row-major);
* NPY: a 4x4 or 3x4 array.

Intrinsics files (JSON): ``{"fx", "fy", "cx", "cy"[, "width", "height"]}``, the instant-ngp/nerfstudio keys
``fl_x, fl_y, cx, cy, w, h``, ``{"K": [[3x3]]}``, or Blender's ``camera_angle_x`` (a centred camera with
square pixels; focal from the image width). Pixel centres are at +0.5 in all of them, our convention.
A lens with distortion (nerfstudio's ``camera_model`` OPENCV / OPENCV_FISHEYE / (SIMPLE_)RADIAL with
``k1 .. k4, p1, p2``) is read by :func:`read_camera`, which undistorts the target as the loaders undistort
the training images (:mod:`inerf.data.undistort`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import check_rigid, opengl_to_opencv_c2w

__all__ = [
    "POSE_CONVENTIONS",
    "camera_to_json",
    "composite_target",
    "intrinsics_camera",
    "pose_to_json",
    "read_camera",
    "read_intrinsics",
    "read_pose",
    "read_target_image",
    "write_json",
]

POSE_CONVENTIONS = {
    "opencv": "opencv",
    "opencv_c2w": "opencv",
    "vision": "opencv",
    "opengl": "opengl",
    "opengl_c2w": "opengl",
    "blender": "opengl",
    "graphics": "opengl",
}
"""Accepted names of camera-axis conventions in pose files and on the command line."""


def intrinsics_camera(
    fx, fy, cx, cy, width: int, height: int, source: str = "intrinsics", size: tuple[int, int] | None = None
) -> Cameras:
    """One :class:`Cameras` (identity c2w: the pose is what is sought) from pinhole intrinsics in pixels,
    validated for a ``width x height`` image; :class:`InerfError` naming ``source`` when they do not fit.

    ``size`` is the ``(width, height)`` the intrinsics' source states they belong to, when it states one.
    """
    try:
        camera = Cameras.from_intrinsics(
            torch.tensor(float(fx), dtype=torch.float64),
            torch.tensor(float(fy), dtype=torch.float64),
            torch.tensor(float(cx), dtype=torch.float64),
            torch.tensor(float(cy), dtype=torch.float64),
            size[1] if size else height,
            size[0] if size else width,
            c2w=torch.eye(4, dtype=torch.float64),
        )
        return camera.check_image(width, height, source)
    except ValueError as exc:
        raise InerfError(str(exc)) from None


def camera_to_json(camera: Cameras, i: int = 0) -> dict:
    """Intrinsics of camera ``i`` as a JSON-ready dict (``fx, fy, cx, cy, width, height``)."""
    fx, fy, cx, cy = camera.intrinsics(i)
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": camera.width, "height": camera.height}


def read_target_image(path: str | Path, background) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read a PNG/JPEG target: ``(rgb [H, W, 3] float32 in [0, 1], alpha [H, W] or None)``.

    RGBA images are composited (straight alpha) on ``background`` (the field's background colour, RGB in
    [0, 1]), as the training images were; ``alpha`` is then returned for ``mask`` sampling.
    """
    from inerf.data.image_io import read_image

    return composite_target(read_image(Path(path)), background)


def composite_target(img: np.ndarray, background) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float ``[H, W, 3 or 4]`` image (as :func:`inerf.data.image_io.read_image` returns) -> ``(rgb, alpha)``
    tensors, compositing RGBA on ``background`` (RGB in [0, 1])."""
    from inerf.data.image_io import composite_straight

    if img.shape[-1] == 4:
        rgb, alpha = composite_straight(img, tuple(float(c) for c in background))
        return torch.from_numpy(rgb), torch.from_numpy(alpha)
    return torch.from_numpy(np.ascontiguousarray(img[..., :3])), None


def _load_matrix(path: Path) -> tuple[np.ndarray, str | None, bool]:
    """``(matrix, convention named in the file or None, is_w2c)`` from a pose file."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InerfError(f"pose file not found: {path}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None, False
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InerfError(f"{path}: cannot read pose ({exc})") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InerfError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, list):
            return _array(data, path), None, False
        if not isinstance(data, dict):
            raise InerfError(f"{path}: expected a JSON object with a 'c2w' matrix")
        conv = data.get("convention")
        if "c2w" in data:
            return _array(data["c2w"], path), conv, False
        if "w2c" in data:
            return _array(data["w2c"], path), conv, True
        if "transform_matrix" in data:  # Blender / nerfstudio frame: OpenGL camera axes by definition
            return _array(data["transform_matrix"], path), conv or "opengl", False
        raise InerfError(f"{path}: no pose found; expected a 'c2w', 'w2c' or 'transform_matrix' entry")
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        raise InerfError(f"{path}: expected 12 or 16 numbers (a 3x4 or 4x4 matrix)") from None
    if values.size not in (12, 16):
        raise InerfError(f"{path}: expected 12 or 16 numbers (a 3x4 or 4x4 matrix), found {values.size}")
    return values.reshape(-1, 4), None, False


def _array(value, path: Path) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InerfError(f"{path}: the pose matrix must contain numbers only") from None


def _convention(name: str, source: str) -> str:
    key = str(name).strip().lower()
    if key not in POSE_CONVENTIONS:
        raise InerfError(f"{source}: unknown camera convention {name!r}; expected opencv or opengl")
    return POSE_CONVENTIONS[key]


def read_pose(path: str | Path, convention: str | None = None, name: str = "pose") -> torch.Tensor:
    """Read a camera pose file as an internal c2w ``[4, 4]`` float64 (OpenCV axes).

    Args:
        path: JSON, TXT or NPY file (see the module docstring).
        convention: camera axes of the file (``opencv`` or ``opengl``) when the file does not say; a file
            that names one wins, and naming a different one here is an error. Default ``opencv``.
        name: what the pose is, for error messages (``initial pose``, ``ground-truth pose``).
    Raises:
        InerfError: unreadable file, wrong shape, NaN/inf, or not a rigid transform.
    """
    path = Path(path)
    mat, file_conv, is_w2c = _load_matrix(path)
    conv = _convention(convention, f"{path}") if convention else None
    if file_conv is not None:
        file_conv = _convention(file_conv, f"{path}")
        if conv is not None and conv != file_conv:
            raise InerfError(f"{path}: the file says its convention is {file_conv} but {conv} was requested")
        conv = file_conv
    c2w = check_rigid(torch.as_tensor(mat), f"{name} ({path})").double()
    if c2w.ndim != 2:
        raise InerfError(f"{path}: expected one 4x4 pose, got shape {tuple(c2w.shape)}")
    if is_w2c:
        c2w = se3.inverse(c2w)
    if (conv or "opencv") == "opengl":
        c2w = opengl_to_opencv_c2w(c2w)
    return c2w


def read_intrinsics(path: str | Path, width: int, height: int) -> Cameras:
    """Read intrinsics for a ``width x height`` image from JSON (see the module docstring); validated."""
    path = Path(path)
    if not path.is_file():
        raise InerfError(f"intrinsics file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InerfError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InerfError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InerfError(f"{path}: expected a JSON object with fx, fy, cx, cy")

    def num(key):
        try:
            return float(data[key])
        except (TypeError, ValueError):
            raise InerfError(f"{path}: {key!r} must be a number") from None

    w = int(data["width"]) if "width" in data else int(data["w"]) if "w" in data else None
    h = int(data["height"]) if "height" in data else int(data["h"]) if "h" in data else None
    if "K" in data:
        K = _array(data["K"], path)
        if K.shape != (3, 3):
            raise InerfError(f"{path}: 'K' must be a 3x3 matrix, got shape {K.shape}")
        values = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    elif "fx" in data or "fl_x" in data:
        fx = num("fx" if "fx" in data else "fl_x")
        fy = num("fy") if "fy" in data else num("fl_y") if "fl_y" in data else fx
        cx = num("cx") if "cx" in data else (w if w is not None else width) / 2
        cy = num("cy") if "cy" in data else (h if h is not None else height) / 2
        values = (fx, fy, cx, cy)
    elif "camera_angle_x" in data:
        # Blender: horizontal field of view of a centred, square-pixel camera, valid at any resolution.
        fov = num("camera_angle_x")
        if not 0 < fov < math.pi:
            raise InerfError(f"{path}: camera_angle_x must be in (0, pi) radians, got {fov}")
        f = 0.5 * width / math.tan(0.5 * fov)
        values = (f, f, width / 2, height / 2)
    else:
        raise InerfError(f"{path}: no intrinsics found; expected fx/fy/cx/cy, fl_x/fl_y, K or camera_angle_x")
    size = (w, h) if (w, h) != (None, None) else None
    return intrinsics_camera(*values, width, height, source=str(path), size=size)


def read_camera(path: str | Path, width: int, height: int):
    """:func:`read_intrinsics` with the lens: ``(camera, undistorter)``.

    Without distortion keys ``undistorter`` is None and ``camera`` is the file's pinhole camera. With them
    (see the module docstring), ``undistorter`` (an :class:`inerf.data.undistort.Undistorter`) resamples a
    ``width x height`` target into the pinhole ``camera`` it returns, exactly as the nerfstudio and COLMAP
    loaders undistort the images a field is trained on.
    """
    from inerf.data.nerfstudio import lens_from_keys
    from inerf.data.undistort import PinholeK, Undistorter

    camera = read_intrinsics(path, width, height)
    data = json.loads(Path(path).read_text(encoding="utf-8"))  # read_intrinsics checked it is a JSON object
    _, dist = lens_from_keys(data.get, Path(path))
    if dist.is_none:
        return camera, None
    und = Undistorter(PinholeK(*camera.intrinsics(0)), dist, width, height)
    k = und.new_K
    return intrinsics_camera(k.fx, k.fy, k.cx, k.cy, width, height, source=f"{path} (undistorted)"), und


def pose_to_json(c2w: torch.Tensor) -> list[list[float]]:
    """A ``[4, 4]`` pose as nested lists of floats (full precision)."""
    return [[float(x) for x in row] for row in c2w.detach().double().cpu().tolist()]


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON (NaN written as null, so the file stays strict JSON)."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    Path(path).write_text(json.dumps(clean(obj), indent=2) + "\n", encoding="utf-8")
