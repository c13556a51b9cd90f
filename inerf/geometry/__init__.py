"""Cameras, conventions and SE(3). Imports nothing else of ours."""

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras, look_at
from inerf.geometry.conventions import (
    CONVENTION,
    check_rigid,
    opencv_to_opengl_c2w,
    opengl_to_opencv_c2w,
)

__all__ = [
    "CONVENTION",
    "Cameras",
    "check_rigid",
    "look_at",
    "opencv_to_opengl_c2w",
    "opengl_to_opencv_c2w",
    "se3",
]
