"""Lens distortion, removed once at load time with OpenCV, so the rest of inerf sees pinhole cameras.

Real captures (COLMAP, nerfstudio, Instant-NGP) come with distortion coefficients. inerf's ray generation,
projection and pose solver are pinhole-only, so the loaders **resample each distorted image into a
pinhole image** here (``cv2.remap`` through OpenCV's undistortion maps) instead of modelling distortion in
ray generation: one code path for every camera model, no per-ray iterative inversion during training or
pose estimation, and the undistorted images are what the field learns and what poses are solved against.

Models (COLMAP / nerfstudio names) and their OpenCV equivalents:

=================  ===============================  ==============================================
model              parameters                        OpenCV
=================  ===============================  ==============================================
SIMPLE_PINHOLE     f, cx, cy                         none
PINHOLE            fx, fy, cx, cy                    none
SIMPLE_RADIAL      f, cx, cy, k                      (k1, k2, p1, p2) = (k, 0, 0, 0)
RADIAL             f, cx, cy, k1, k2                 (k1, k2, 0, 0)
OPENCV             fx, fy, cx, cy, k1, k2, p1, p2    (k1, k2, p1, p2) (+ k3 from nerfstudio files)
OPENCV_FISHEYE     fx, fy, cx, cy, k1, k2, k3, k4    ``cv2.fisheye`` (k1, k2, k3, k4)
=================  ===============================  ==============================================

The pinhole camera of the undistorted image keeps the image size; its intrinsics are chosen so that every
output pixel sees a pixel of the input (``cv2.getOptimalNewCameraMatrix`` with ``alpha = 0``; for fisheye
``estimateNewCameraMatrixForUndistortRectify`` with ``balance = 0``), so no black borders enter training.

Pixel centres: COLMAP, nerfstudio and inerf put pixel (i, j)'s centre at (i + 0.5, j + 0.5); OpenCV's
image functions put it at (i, j). The principal point is shifted by 0.5 on the way into OpenCV and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inerf.errors import InerfError

__all__ = ["CAMERA_MODELS", "Distortion", "PinholeK", "Undistorter", "camera_from_params"]

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
"""Camera models the loaders accept (COLMAP's names; nerfstudio and Instant-NGP use the same)."""

# Our pixel centres are at +0.5, OpenCV's at +0: subtract this from cx, cy going into OpenCV.
_OPENCV_CENTRE_SHIFT = 0.5


@dataclass(frozen=True)
class PinholeK:
    """Pinhole intrinsics in pixels (pixel centres at +0.5)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def opencv_matrix(self) -> np.ndarray:
        """``[3, 3]`` K in OpenCV's pixel convention (centres at integers)."""
        return np.array(
            [
                [self.fx, 0.0, self.cx - _OPENCV_CENTRE_SHIFT],
                [0.0, self.fy, self.cy - _OPENCV_CENTRE_SHIFT],
                [0.0, 0.0, 1.0],
            ]
        )

    @classmethod
    def from_opencv_matrix(cls, K: np.ndarray) -> PinholeK:
        return cls(
            float(K[0, 0]),
            float(K[1, 1]),
            float(K[0, 2]) + _OPENCV_CENTRE_SHIFT,
            float(K[1, 2]) + _OPENCV_CENTRE_SHIFT,
        )


@dataclass(frozen=True)
class Distortion:
    """Lens distortion in OpenCV's terms.

    Attributes:
        kind: ``none``, ``radtan`` (OpenCV's standard model, coefficients ``(k1, k2, p1, p2[, k3])``) or
            ``fisheye`` (``cv2.fisheye``, coefficients ``(k1, k2, k3, k4)``).
        coeffs: the coefficients in OpenCV's order.
    """

    kind: str = "none"
    coeffs: tuple[float, ...] = ()

    @property
    def is_none(self) -> bool:
        return self.kind == "none" or (self.kind == "radtan" and not any(self.coeffs))


def camera_from_params(model: str, params, source: str) -> tuple[PinholeK, Distortion]:
    """COLMAP-style ``model`` and parameter list -> pinhole part and distortion.

    Raises :class:`InerfError` naming ``source`` for an unsupported model or a wrong parameter count.
    """
    p = [float(v) for v in params]
    expected = {
        "SIMPLE_PINHOLE": 3,
        "PINHOLE": 4,
        "SIMPLE_RADIAL": 4,
        "RADIAL": 5,
        "OPENCV": 8,
        "OPENCV_FISHEYE": 8,
    }
    if model not in expected:
        raise InerfError(
            f"{source}: unsupported camera model {model!r} (supported: {', '.join(CAMERA_MODELS)})"
        )
    if len(p) != expected[model]:
        raise InerfError(f"{source}: camera model {model} needs {expected[model]} parameters, got {len(p)}")
    if not all(np.isfinite(p)):
        raise InerfError(f"{source}: camera parameters must be finite, got {p}")
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        K = PinholeK(p[0], p[0], p[1], p[2])
    else:
        K = PinholeK(*p[:4])
    if K.fx <= 0 or K.fy <= 0:
        raise InerfError(f"{source}: focal lengths must be positive, got fx={K.fx}, fy={K.fy}")
    if model == "SIMPLE_RADIAL":
        dist = Distortion("radtan", (p[3], 0.0, 0.0, 0.0))
    elif model == "RADIAL":
        dist = Distortion("radtan", (p[3], p[4], 0.0, 0.0))
    elif model == "OPENCV":
        dist = Distortion("radtan", tuple(p[4:8]))
    elif model == "OPENCV_FISHEYE":
        dist = Distortion("fisheye", tuple(p[4:8]))
    else:
        dist = Distortion()
    return K, dist


class Undistorter:
    """Resamples the images of one distorted camera into a pinhole camera of the same size.

    Build once per camera (the maps cost one pass over the image), then call :meth:`image` per image.

    Attributes:
        K: the distorted camera's pinhole part.
        dist: its distortion.
        width, height: image size.
        new_K: intrinsics of the undistorted images (equal to ``K`` when there is no distortion).
    """

    def __init__(self, K: PinholeK, dist: Distortion, width: int, height: int):
        self.K, self.dist, self.width, self.height = K, dist, int(width), int(height)
        self._maps = None
        if dist.is_none:
            self.new_K = K
            return
        import cv2

        K_cv = K.opencv_matrix()
        D = np.asarray(dist.coeffs, dtype=np.float64)
        size = (self.width, self.height)
        if dist.kind == "fisheye":
            new = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
                K_cv, D, size, np.eye(3), balance=0.0
            )
            maps = cv2.fisheye.initUndistortRectifyMap(K_cv, D, np.eye(3), new, size, cv2.CV_32FC1)
        else:
            # alpha = 0: the largest pinhole view in which every pixel comes from inside the input image.
            new, _ = cv2.getOptimalNewCameraMatrix(K_cv, D, size, 0.0, size)
            maps = cv2.initUndistortRectifyMap(K_cv, D, None, new, size, cv2.CV_32FC1)
        self.new_K = PinholeK.from_opencv_matrix(new)
        self._maps = maps

    def record(self) -> dict:
        """What was undone, for the output files: ``{"kind", "coeffs"}`` (OpenCV's order)."""
        return {"kind": self.dist.kind, "coeffs": [float(c) for c in self.dist.coeffs]}

    def image(self, img: np.ndarray) -> np.ndarray:
        """Undistort ``[H, W]`` or ``[H, W, C]`` float32 (C <= 4; RGBA with straight alpha).

        RGBA is resampled premultiplied (averaging straight colours would bleed the colour of transparent
        pixels into edges) and returned straight again.
        """
        if self._maps is None:
            return img
        import cv2

        if img.shape[:2] != (self.height, self.width):
            raise ValueError(f"image is {img.shape[1]}x{img.shape[0]}, camera is {self.width}x{self.height}")
        rgba = img.ndim == 3 and img.shape[2] == 4
        src = np.concatenate([img[..., :3] * img[..., 3:], img[..., 3:]], -1) if rgba else img
        # Border pixels of the alpha = 0 camera can map a hair outside the input: replicate, do not blacken.
        out = cv2.remap(
            np.ascontiguousarray(src, dtype=np.float32),
            self._maps[0],
            self._maps[1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if out.ndim == 2 and img.ndim == 3:  # OpenCV drops a trailing axis of size 1
            out = out[..., None]
        if rgba:
            a = np.clip(out[..., 3:], 0.0, 1.0)
            out = np.concatenate([np.where(a > 0, out[..., :3] / np.maximum(a, 1e-8), 0.0), a], -1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
