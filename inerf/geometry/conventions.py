"""The one internal camera convention, and the only converters to and from it.

Internal convention (used everywhere inside ``inerf``):

* Camera axes are **OpenCV / "vision"**: x right, y down, z forward (the camera looks along +z).
* Poses are **camera-to-world** matrices ``c2w`` of shape ``[..., 4, 4]`` (or ``[..., 3, 4]``): a point
  ``p_cam`` in camera coordinates maps to ``p_world = c2w[:3, :3] @ p_cam + c2w[:3, 3]``.
  The inverse is always named ``w2c``.
* Pixel ``(i, j)`` (column ``i``, row ``j``, origin at the top-left corner of the image) has its
  **centre at (i + 0.5, j + 0.5)**. With intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` the
  principal point of an un-shifted camera is ``(W / 2, H / 2)``; this is how Blender and pybullet (with
  our half-pixel correction) render, so poses from those renderers are exact to the pixel.

Published datasets use OpenGL / Blender camera axes ("graphics": x right, y up, z backward, the camera
looks along -z). Loaders convert **once**, with the named functions below, and nothing else in the
package flips axes.
"""

from __future__ import annotations

import torch

from inerf.errors import InerfError

CONVENTION = "opencv_c2w"
"""Name of the internal convention, written into every pose file we produce."""

PIXEL_CENTER = 0.5
"""Offset of a pixel's centre from its integer index (pixel (i, j) is centred at (i + 0.5, j + 0.5))."""

# graphics [right, up, back] <-> vision [right, down, forward]: flip the camera's y and z axes.
_FLIP_YZ = (1.0, -1.0, -1.0)


def _flip_camera_axes(c2w: torch.Tensor) -> torch.Tensor:
    # Right-multiplying by diag(1, -1, -1) changes the camera frame only; the camera centre stays.
    flip = torch.tensor(_FLIP_YZ, dtype=c2w.dtype, device=c2w.device)
    out = c2w.clone()
    out[..., :3, :3] = c2w[..., :3, :3] * flip
    return out


def opengl_to_opencv_c2w(c2w_gl: torch.Tensor) -> torch.Tensor:
    """Graphics/OpenGL/Blender c2w (x right, y up, looks along -z) -> internal OpenCV c2w.

    Args:
        c2w_gl: ``[..., 3 or 4, 4]`` camera-to-world in OpenGL camera axes.
    Returns:
        Same shape, camera-to-world in OpenCV camera axes (x right, y down, looks along +z).
    """
    return _flip_camera_axes(c2w_gl)


def opencv_to_opengl_c2w(c2w_cv: torch.Tensor) -> torch.Tensor:
    """Internal OpenCV c2w -> graphics/OpenGL/Blender c2w. The flip is its own inverse."""
    return _flip_camera_axes(c2w_cv)


def check_rigid(c2w, name: str = "pose", atol: float = 1e-3) -> torch.Tensor:
    """Validate a user-given pose and return it as a float ``[4, 4]`` (or ``[..., 4, 4]``) tensor.

    Raises :class:`InerfError` with a one-line message if the matrix has the wrong shape, holds NaN or
    infinity, or its rotation block is not orthonormal with determinant +1 (within ``atol``).
    """
    t = torch.as_tensor(c2w, dtype=torch.float64)
    if t.shape[-2:] == (3, 4):
        bottom = torch.zeros(*t.shape[:-2], 1, 4, dtype=t.dtype, device=t.device)
        bottom[..., 0, 3] = 1.0
        t = torch.cat([t, bottom], dim=-2)
    if t.shape[-2:] != (4, 4):
        raise InerfError(f"{name}: expected a 4x4 (or 3x4) matrix, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InerfError(f"{name}: the matrix contains NaN or infinite values")
    R = t[..., :3, :3]
    eye = torch.eye(3, dtype=t.dtype, device=t.device)
    ortho = (R.transpose(-1, -2) @ R - eye).abs().amax()
    det = torch.linalg.det(R)
    if ortho > atol or (det - 1.0).abs().amax() > atol:
        raise InerfError(
            f"{name}: not a rigid transform (|R^T R - I| = {ortho:.2e}, det R = {det.flatten()[0]:.4f}); "
            "expected a rotation with determinant +1"
        )
    if (
        t[..., 3, :] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=t.dtype, device=t.device)
    ).abs().amax() > atol:
        raise InerfError(f"{name}: the last row must be [0, 0, 0, 1]")
    return t.float()  # stays on the input's device
