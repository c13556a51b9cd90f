"""A distorted photograph of a known pattern, for the loaders' undistortion tests (a module name no other
test folder uses)."""

from __future__ import annotations

import cv2
import numpy as np


def checker(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A soft checkerboard on the plane z = 1 of the camera, as a function of normalised coordinates
    (squares of side 0.25; soft edges keep bilinear resampling errors small)."""
    return 0.5 + 0.4 * np.tanh(2.0 * np.sin(np.pi * x / 0.25) * np.sin(np.pi * y / 0.25))


def undistort_normalised(
    xd: np.ndarray, yd: np.ndarray, fisheye: bool, coeffs
) -> tuple[np.ndarray, np.ndarray]:
    """Distorted normalised coordinates -> undistorted ones (OpenCV's iterative inverse, run to 1e-12)."""
    pts = np.stack([xd, yd], -1).reshape(-1, 1, 2).astype(np.float64)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    D = np.asarray(coeffs, np.float64)
    if fisheye:
        und = cv2.fisheye.undistortPoints(pts, np.eye(3), D, criteria=crit)
    else:
        und = cv2.undistortPoints(pts, np.eye(3), D, R=None, P=None, criteria=crit)
    und = und.reshape(*xd.shape, 2)
    return und[..., 0], und[..., 1]


def distorted_checker(width, height, fx, fy, cx, cy, fisheye: bool, coeffs) -> np.ndarray:
    """What a camera with these intrinsics (pixel centres at +0.5) and distortion (OpenCV coefficients)
    photographs of :func:`checker`: 8-bit grey RGB ``[height, width, 3]``."""
    j, i = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = undistort_normalised((i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, fisheye, coeffs)
    v = np.round(checker(x, y) * 255).astype(np.uint8)
    return np.repeat(v[..., None], 3, -1)


def checker_error(image: np.ndarray, fx, fy, cx, cy) -> np.ndarray:
    """``|image - checker|`` per pixel for a pinhole camera with these intrinsics (``image`` grey [H, W])."""
    h, w = image.shape
    j, i = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.abs(image - checker((i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy))
