"""Scene helpers for the pose tests: an analytic radiance field whose renders are exact targets.

The field is a soft, textured ball of radius 1 at the origin: density and colour are closed-form
functions of xyz, so an image rendered at a known pose is a perfect target and the optimum of the
pose solve is known exactly. Cameras sit 4 units from the origin looking at it (NeRF-synthetic
geometry), images are 48 x 48.
"""

from __future__ import annotations

import math

import torch

from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.pose.perturb import apply_moves
from inerf.render.model import Model
from inerf.render.renderer import render_image

H = W = 48
FOCAL = 0.5 * W / math.tan(math.radians(20.0))  # 40 degree field of view


class TexturedBall(torch.nn.Module):
    """``(xyz [N, 3], viewdirs) -> (rgb [N, 3], sigma [N])``: soft ball, smooth colour texture."""

    def __init__(self, radius: float = 1.0, density: float = 8.0, softness: float = 0.1):
        super().__init__()
        self.radius, self.density, self.softness = radius, density, softness
        # A parameter, so the tests can check that the solver freezes it.
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, xyz, viewdirs=None):
        r = xyz.norm(dim=-1)
        # Smoothstep shell of width 2 * softness: exactly zero outside, so the renderer's open-ended last
        # interval (delta = 1e10) sees empty space and the background shows.
        s = ((self.radius + self.softness - r) / (2 * self.softness)).clamp(0.0, 1.0)
        sigma = self.density * s * s * (3 - 2 * s) * self.scale
        x, y, z = xyz.unbind(-1)
        rgb = torch.stack(
            [
                0.5 + 0.4 * torch.sin(3.0 * x + 1.0 * y),
                0.5 + 0.4 * torch.sin(2.5 * y - 1.5 * z + 0.3),
                0.5 + 0.4 * torch.cos(3.0 * z + 2.0 * x),
            ],
            dim=-1,
        )
        return rgb, sigma


class NaNField(TexturedBall):
    """Returns NaN density everywhere (to test NaN handling)."""

    def forward(self, xyz, viewdirs=None):
        rgb, sigma = super().forward(xyz, viewdirs)
        return rgb, sigma * torch.nan


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """OpenCV c2w (x right, y down, z forward) at ``eye`` looking at ``target``."""
    eye, target, up = (torch.tensor(v, dtype=torch.float64) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def perturb(c2w: torch.Tensor, rot_deg: float, trans: float, axis=(0.3, -0.5, 0.8)) -> torch.Tensor:
    """A pose exactly ``rot_deg`` degrees and ``trans`` units away from ``c2w``: the camera turned about
    ``axis`` (world frame) around its own centre, and the centre moved by ``trans`` in a fixed direction."""
    axis = torch.tensor(axis, dtype=torch.float64)
    move = torch.eye(4, dtype=torch.float64)
    move[:3, :3] = se3.axis_angle_to_matrix(
        axis / axis.norm(), torch.tensor(math.radians(rot_deg), dtype=torch.float64)
    )
    move[:3, 3] = trans * torch.tensor([0.6, -0.48, 0.64], dtype=torch.float64)
    return apply_moves(
        c2w, move, "camera"
    )  # the library's camera-pivot move, with a fixed axis and direction


def orbit_poses(n: int, radius: float = 4.0, elevation_deg: float = 25.0, phase: float = 0.3) -> torch.Tensor:
    """``[n, 4, 4]`` OpenCV c2w on a ring around the origin, looking at it."""
    el = math.radians(elevation_deg)
    out = []
    for k in range(n):
        az = phase + 2 * math.pi * k / n
        out.append(
            look_at(
                (
                    radius * math.cos(el) * math.cos(az),
                    radius * math.cos(el) * math.sin(az),
                    radius * math.sin(el),
                )
            )
        )
    return torch.stack(out)


def make_views(field, render_config, poses: torch.Tensor):
    """A :class:`ViewSet` of renders of ``field`` at ``poses`` (images are exact targets)."""
    from inerf.data.views import ViewSet

    images, alphas = [], []
    for c2w in poses:
        out = render_image(
            field, Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W, c2w.float()), render_config
        )
        images.append(out.rgb)
        alphas.append(out.acc)
    cams = Cameras(
        c2w=poses.float(),
        fx=torch.tensor(FOCAL),
        fy=torch.tensor(FOCAL),
        cx=torch.tensor(W / 2),
        cy=torch.tensor(H / 2),
        height=H,
        width=W,
    )
    return ViewSet(
        images=torch.stack(images),
        alphas=torch.stack(alphas),
        cameras=cams,
        near=render_config.near,
        far=render_config.far,
        background=render_config.background,
        names=[f"test/r_{i}.png" for i in range(len(poses))],
        root="analytic",
        split="test",
    )


class FakeDataset:
    """Stands in for :class:`inerf.train.checkpoint.DatasetInfo`: ``load`` returns prepared views."""

    def __init__(self, views):
        self.views = views

    def load(self, split, run_dir=None, root=None, **kwargs):
        return self.views


class FakeRun:
    """Stands in for :class:`inerf.train.checkpoint.LoadedRun` with the analytic field."""

    def __init__(self, field, render_config, views, run_dir="analytic-run"):
        self.model = Model(field, None, render_config)
        self.dataset, self.run_dir, self.kind, self.step = FakeDataset(views), run_dir, "analytic", 0
        self.config = {"model": "analytic", "step": 0}  # no recorded validation PSNR: no warning
