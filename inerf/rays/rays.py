"""Rays through arbitrary pixel coordinates (not only full images).

Which pixels to render is an argument, so iNeRF's sampling strategies are just different pixel
selections fed to the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER


@dataclass
class Rays:
    """A batch of rays in world space.

    Attributes:
        origins: ``[..., 3]`` ray origins (camera centres), world frame.
        directions: ``[..., 3]`` ray directions, world frame, scaled so that the camera-space z component
            is 1 (a step ``t`` along the ray is a z-depth of ``t``), as in the original NeRF.
        viewdirs: ``[..., 3]`` unit-length directions (fed to view-dependent colour heads).
    """

    origins: torch.Tensor
    directions: torch.Tensor
    viewdirs: torch.Tensor

    def reshape(self, *shape) -> Rays:
        return Rays(
            self.origins.reshape(*shape, 3),
            self.directions.reshape(*shape, 3),
            self.viewdirs.reshape(*shape, 3),
        )

    def __getitem__(self, idx) -> Rays:
        return Rays(self.origins[idx], self.directions[idx], self.viewdirs[idx])

    def __len__(self) -> int:
        return self.origins.shape[0]


def camera_directions(uv: torch.Tensor, fx, fy, cx, cy, *, centered: bool = True) -> torch.Tensor:
    """Camera-frame ray directions ``[..., N, 3]`` (OpenCV axes, z = 1) through pixel coordinates ``uv``
    ``[..., N, 2]`` (see :func:`rays_from_pixels`; intrinsics broadcastable to ``[...]``, in ``uv``'s dtype
    when it is floating)."""
    dtype = uv.dtype if uv.is_floating_point() else torch.float32
    uv = uv.to(dtype)
    if centered:
        uv = uv + PIXEL_CENTER
    fx, fy, cx, cy = (torch.as_tensor(v, dtype=dtype, device=uv.device) for v in (fx, fy, cx, cy))
    x = (uv[..., 0] - cx[..., None]) / fx[..., None]
    y = (uv[..., 1] - cy[..., None]) / fy[..., None]
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)  # OpenCV: +z is forward


def rays_from_directions(d_cam: torch.Tensor, c2w: torch.Tensor, unit: torch.Tensor | None = None) -> Rays:
    """Rays ``[..., N]`` of camera-frame directions ``d_cam`` ``[..., N, 3]`` (:func:`camera_directions`)
    from cameras ``c2w`` ``[..., 4, 4]`` (or ``[..., 3, 4]``; differentiable).

    ``unit``: ``d_cam`` normalised, if known (e.g. computed once for a fixed set of pixels): the view
    directions are then ``unit`` rotated (a rotation keeps lengths), one matrix product whose gradient is
    one more, instead of a normalisation whose gradient takes a dozen small ops; equal to rounding.
    """
    R = c2w[..., :3, :3]
    directions = d_cam @ R.transpose(-1, -2)
    origins = c2w[..., None, :3, 3].expand_as(directions)
    if unit is not None:
        viewdirs = unit @ R.transpose(-1, -2)
    else:
        viewdirs = directions / directions.norm(dim=-1, keepdim=True)
    return Rays(origins, directions, viewdirs)


def rays_from_pixels(uv: torch.Tensor, c2w: torch.Tensor, fx, fy, cx, cy, *, centered: bool = True) -> Rays:
    """Rays through pixel coordinates.

    Args:
        uv: ``[..., N, 2]`` pixel coordinates (column, row). With ``centered=True`` (default) these are
            integer pixel indices and the ray passes through the pixel centre ``(i + 0.5, j + 0.5)``;
            with ``centered=False`` they are already continuous image coordinates.
        c2w: ``[..., 4, 4]`` (or ``[..., 3, 4]``) camera-to-world, OpenCV axes. Differentiable, which is
            what iNeRF needs: gradients flow from rendered colours back to the pose.
        fx, fy, cx, cy: intrinsics broadcastable to ``[...]``.
    Returns:
        :class:`Rays` of shape ``[..., N]``.
    """
    d_cam = camera_directions(uv.to(c2w.dtype), fx, fy, cx, cy, centered=centered)
    return rays_from_directions(d_cam, c2w)


def rays_for_image(camera: Cameras, index: int = 0) -> Rays:
    """Rays through the centre of every pixel of camera ``index``, row-major: ``[H * W]``."""
    c2w = camera.c2w[index]
    j, i = torch.meshgrid(
        torch.arange(camera.height, device=c2w.device),
        torch.arange(camera.width, device=c2w.device),
        indexing="ij",
    )
    uv = torch.stack([i, j], dim=-1).reshape(-1, 2)
    fx, fy, cx, cy = (v[index] for v in (camera.fx, camera.fy, camera.cx, camera.cy))
    return rays_from_pixels(uv, c2w, fx, fy, cx, cy)
