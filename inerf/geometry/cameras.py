"""Pinhole cameras in the internal convention (OpenCV axes, c2w, pixel centres at +0.5).

See :mod:`inerf.geometry.conventions` for the convention itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inerf.geometry.conventions import PIXEL_CENTER


@dataclass
class Cameras:
    """A batch of ``B`` pinhole cameras sharing one image size.

    Attributes:
        c2w: ``[B, 4, 4]`` camera-to-world, OpenCV camera axes (x right, y down, looks along +z).
        fx: ``[B]`` focal length along x, in pixels.
        fy: ``[B]`` focal length along y, in pixels.
        cx: ``[B]`` principal point x, in pixels (W / 2 for a centred camera).
        cy: ``[B]`` principal point y, in pixels (H / 2 for a centred camera).
        height: image height H in pixels.
        width: image width W in pixels.
    """

    c2w: torch.Tensor
    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.c2w.ndim == 2:
            self.c2w = self.c2w[None]
        n = self.c2w.shape[0]
        if self.c2w.shape[-2:] == (3, 4):
            bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=self.c2w.dtype, device=self.c2w.device)
            self.c2w = torch.cat([self.c2w, bottom.expand(n, 1, 4)], dim=1)
        if self.c2w.shape[-2:] != (4, 4):
            raise ValueError(f"c2w must be [B, 4, 4], got {tuple(self.c2w.shape)}")
        for name in ("fx", "fy", "cx", "cy"):
            v = torch.as_tensor(getattr(self, name), dtype=self.c2w.dtype, device=self.c2w.device)
            setattr(self, name, v.reshape(-1).expand(n).clone() if v.numel() in (1, n) else v)
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have 1 or {n} values, got {tuple(v.shape)}")

    @classmethod
    def from_intrinsics(
        cls, fx, fy, cx, cy, height: int, width: int, c2w: torch.Tensor | None = None
    ) -> Cameras:
        """Cameras from pinhole intrinsics in pixels; ``c2w`` defaults to the identity (a camera whose pose is
        unknown, e.g. the target of a pose estimate: its intrinsics are all that is used)."""
        c2w = torch.eye(4) if c2w is None else c2w
        return cls(c2w=c2w, fx=fx, fy=fy, cx=cx, cy=cy, height=int(height), width=int(width))

    @classmethod
    def from_fov(cls, c2w: torch.Tensor, height: int, width: int, fov_x: float) -> Cameras:
        """Centred square-pixel cameras from a horizontal field of view (radians), as Blender's
        ``camera_angle_x``: fx = fy = W / (2 tan(fov_x / 2)), (cx, cy) = (W / 2, H / 2)."""
        f = 0.5 * width / torch.tan(torch.as_tensor(0.5 * fov_x, dtype=torch.float64)).item()
        return cls(
            c2w=c2w,
            fx=torch.tensor(f),
            fy=torch.tensor(f),
            cx=torch.tensor(width / 2),
            cy=torch.tensor(height / 2),
            height=height,
            width=width,
        )

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx) -> Cameras:
        sel = lambda t: t[idx].reshape(-1, *t.shape[1:])
        return Cameras(
            sel(self.c2w), sel(self.fx), sel(self.fy), sel(self.cx), sel(self.cy), self.height, self.width
        )

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.c2w.dtype

    def with_c2w(self, c2w: torch.Tensor) -> Cameras:
        """These intrinsics (camera 0's when ``c2w`` has another batch size) at the poses ``c2w`` ``[B, 4, 4]``."""
        c2w = c2w if c2w.ndim == 3 else c2w[None]
        n = len(self) if len(self) == c2w.shape[0] else 1
        k = [v[:n].to(device=c2w.device, dtype=c2w.dtype) for v in (self.fx, self.fy, self.cx, self.cy)]
        return Cameras(c2w, *k, self.height, self.width)

    def intrinsics(self, i: int = 0) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` of camera ``i`` as Python floats (for JSON and messages)."""
        return tuple(float(v[i]) for v in (self.fx, self.fy, self.cx, self.cy))

    def check_image(self, width: int, height: int, source: str = "intrinsics") -> Cameras:
        """Validate the intrinsics for an image of ``width x height``; raises ``ValueError`` with one line naming
        ``source``: finite, positive focal lengths, the same image size, the principal point inside."""
        for i in range(len(self)):
            fx, fy, cx, cy = self.intrinsics(i)
            if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
                raise ValueError(
                    f"{source}: intrinsics must be finite numbers, got fx={fx} fy={fy} cx={cx} cy={cy}"
                )
            if fx <= 0 or fy <= 0:
                raise ValueError(f"{source}: focal lengths must be positive, got fx={fx} fy={fy}")
            if (self.width, self.height) != (width, height):
                raise ValueError(
                    f"the image is {width}x{height} but {source} are for {self.width}x{self.height} images; "
                    "resize the image or scale the intrinsics"
                )
            # A principal point outside the image almost always means intrinsics of another resolution.
            if not (0 < cx < width and 0 < cy < height):
                raise ValueError(
                    f"{source}: principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image; "
                    "are these intrinsics for another resolution?"
                )
        return self

    def to(self, device) -> Cameras:
        return Cameras(
            self.c2w.to(device),
            self.fx.to(device),
            self.fy.to(device),
            self.cx.to(device),
            self.cy.to(device),
            self.height,
            self.width,
        )

    def scaled(self, factor: float) -> Cameras:
        """Cameras for the image resized by ``factor`` (intrinsics scale; pixel centres stay at +0.5)."""
        h, w = round(self.height * factor), round(self.width * factor)
        sx, sy = w / self.width, h / self.height
        return Cameras(self.c2w, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, h, w)

    def K(self) -> torch.Tensor:
        """``[B, 3, 3]`` intrinsic matrices."""
        K = torch.zeros(len(self), 3, 3, dtype=self.fx.dtype, device=self.fx.device)
        K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = self.fx, self.fy, self.cx, self.cy, 1
        return K

    def pixel_grid(self, device=None) -> torch.Tensor:
        """``[H, W, 2]`` integer pixel indices (i = column, j = row) as float."""
        j, i = torch.meshgrid(
            torch.arange(self.height, device=device), torch.arange(self.width, device=device), indexing="ij"
        )
        return torch.stack([i, j], dim=-1).float()


def project(points_world: torch.Tensor, c2w: torch.Tensor, fx, fy, cx, cy):
    """Project world points to continuous pixel coordinates.

    Args:
        points_world: ``[..., N, 3]`` world points.
        c2w: ``[..., 4, 4]`` camera-to-world (OpenCV axes).
        fx, fy, cx, cy: intrinsics broadcastable to ``[...]``.
    Returns:
        uv ``[..., N, 2]`` continuous image coordinates in which pixel (i, j) covers
        [i, i + 1) x [j, j + 1) (so its centre is at (i + 0.5, j + 0.5)), and z-depth ``[..., N]``.
    """
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    p_cam = (points_world - t[..., None, :]) @ R  # R^T (p - t), written as a row-vector product
    z = p_cam[..., 2]
    fx, fy, cx, cy = (
        torch.as_tensor(v, dtype=points_world.dtype, device=points_world.device) for v in (fx, fy, cx, cy)
    )
    u = fx[..., None] * p_cam[..., 0] / z + cx[..., None]
    v = fy[..., None] * p_cam[..., 1] / z + cy[..., None]
    return torch.stack([u, v], dim=-1), z


def unproject(uv: torch.Tensor, depth: torch.Tensor, c2w: torch.Tensor, fx, fy, cx, cy) -> torch.Tensor:
    """Inverse of :func:`project`: continuous pixel coordinates ``[..., N, 2]`` and z-depth ``[..., N]``
    -> world points ``[..., N, 3]``."""
    fx, fy, cx, cy = (torch.as_tensor(v, dtype=uv.dtype, device=uv.device) for v in (fx, fy, cx, cy))
    x = (uv[..., 0] - cx[..., None]) / fx[..., None] * depth
    y = (uv[..., 1] - cy[..., None]) / fy[..., None] * depth
    p_cam = torch.stack([x, y, depth], dim=-1)
    return p_cam @ c2w[..., :3, :3].transpose(-1, -2) + c2w[..., None, :3, 3]


def pixel_centers(ij: torch.Tensor) -> torch.Tensor:
    """Integer pixel indices ``[..., 2]`` (column, row) -> continuous coordinates of their centres."""
    return ij.float() + PIXEL_CENTER


def look_at(
    eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None
) -> torch.Tensor:
    """OpenCV c2w ``[..., 4, 4]`` of cameras at ``eye`` ``[..., 3]`` looking at ``target`` ``[3]`` (default the
    origin) with world ``up`` ``[3]`` (default +z) up in the image: x right, y down, z forward, so
    ``right = forward x up`` and ``down = forward x right``. A camera looking along ``up`` has no defined
    roll; another axis orthogonal to ``up`` stands in. Sequences are taken as float64 tensors."""
    eye = torch.as_tensor(eye, dtype=eye.dtype if isinstance(eye, torch.Tensor) else torch.float64)
    target = torch.zeros(3) if target is None else target
    up = torch.tensor([0.0, 0.0, 1.0]) if up is None else up
    target, up = (torch.as_tensor(v, device=eye.device).to(eye.dtype) for v in (target, up))
    fwd = target - eye
    fwd = fwd / fwd.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(fwd, up.expand_as(fwd), dim=-1)
    # At the poles fwd is parallel to up: use a fixed axis orthogonal to up instead.
    alt = torch.linalg.cross(fwd, orthogonal_unit(up).expand_as(fwd), dim=-1)
    right = torch.where(right.norm(dim=-1, keepdim=True) < 1e-6, alt, right)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(fwd, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, down, fwd, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def orthogonal_unit(v: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to ``v`` ``[3]`` (``v`` crossed with x, or with y when ``v`` is near x)."""
    a = torch.tensor([1.0, 0.0, 0.0] if abs(float(v[0])) < 0.9 else [0.0, 1.0, 0.0], dtype=v.dtype)
    w = torch.linalg.cross(v, a.to(v.device), dim=-1)
    return w / w.norm()
