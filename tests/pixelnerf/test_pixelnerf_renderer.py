"""pixelNeRF renderer: compositing against hand numbers, samplers, ray conventions, chunking."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.pixelnerf.config import RendererConfig
from inerf.pixelnerf.renderer import (
    alphas,
    camera_rays,
    composite,
    depth_guided_distances,
    importance_positions,
    positions_to_distances,
    render_rays,
    render_views,
    stratified_positions,
    transmittance,
)


class SphereField:
    """A solid sphere of radius 0.5 at the origin (sigma 50 inside), coloured by position; counts calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, xyz, coarse=True, viewdirs=None):
        self.calls.append((coarse, xyz.shape))
        inside = (xyz.norm(dim=-1) < 0.5).to(xyz.dtype)
        rgb = torch.sigmoid(3 * xyz)
        return torch.cat([rgb, 50.0 * inside[..., None]], dim=-1)


def test_composite_hand_numbers():
    t = torch.tensor([1.0, 2.0, 3.5])
    sigma = torch.tensor([math.log(2.0), 0.0, -5.0])  # negative sigma is clamped by the ReLU
    a = alphas(sigma, t, far=4.0)
    # delta = (1, 1.5, far - t_last = 0.5); alpha_0 = 1 - exp(-ln 2) = 0.5.
    assert torch.allclose(a, torch.tensor([0.5, 0.0, 0.0]))
    assert torch.allclose(
        transmittance(torch.tensor([0.5, 0.5, 0.5])), torch.tensor([1.0, 0.5, 0.25]), atol=1e-8
    )
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    white = composite(rgb, torch.tensor([math.log(2.0), math.log(2.0) / 1.5, 0.0]), t, 4.0, True)
    # w = (0.5, 0.25, 0); colour (0.5, 0.25, 0) + 0.25 white.
    assert torch.allclose(white.weights, torch.tensor([0.5, 0.25, 0.0]), atol=1e-6)
    assert torch.allclose(white.rgb, torch.tensor([0.75, 0.5, 0.25]), atol=1e-6)
    assert torch.allclose(white.depth, torch.tensor(0.5 * 1 + 0.25 * 2.0), atol=1e-6)  # not normalised
    black = composite(rgb, torch.tensor([math.log(2.0), math.log(2.0) / 1.5, 0.0]), t, 4.0, False)
    assert torch.allclose(black.rgb, torch.tensor([0.5, 0.25, 0.0]), atol=1e-6)


def test_delta_density_gives_one_hot_weights():
    t = torch.linspace(1, 2, 8)
    sigma = torch.zeros(8)
    sigma[3] = 1e6
    out = composite(torch.rand(8, 3), sigma, t, 2.5, True)
    assert torch.allclose(out.weights, torch.nn.functional.one_hot(torch.tensor(3), 8).float(), atol=1e-6)
    assert torch.isclose(out.depth, t[3])


def test_last_interval_ends_at_far():
    """A ray that is empty except for the last sample: its opacity comes from (far - t_last), not 1e10."""
    t = torch.tensor([1.0, 1.5, 1.9])
    out = composite(torch.ones(3, 3), torch.tensor([0.0, 0.0, 1.0]), t, 2.0, False)
    assert torch.isclose(out.weights[-1], torch.tensor(1 - math.exp(-0.1)))


def test_samplers():
    like = torch.zeros(())
    s = stratified_positions((2,), 4, like, deterministic=True)
    assert torch.allclose(s, torch.tensor([[0.125, 0.375, 0.625, 0.875]] * 2))
    g = torch.Generator().manual_seed(0)
    r = stratified_positions((1000,), 64, like, generator=g)
    assert ((r * 64).floor() == torch.arange(64)).all()  # one sample per stratum
    assert torch.allclose(
        positions_to_distances(torch.tensor([0.0, 0.5, 1.0]), 0.8, 1.8), torch.tensor([0.8, 1.3, 1.8])
    )
    assert torch.allclose(
        positions_to_distances(torch.tensor([0.5]), 1.0, 3.0, lindisp=True), torch.tensor([1.5])
    )
    # All weight in bin 5 of 64 -> every importance sample lands in [5, 6] / 64 (the 1e-5 floor is tiny).
    w = torch.zeros(3, 64)
    w[:, 5] = 1.0
    for det in (True, False):
        s_imp = importance_positions(w, 16, deterministic=det, generator=g)
        assert s_imp.shape == (3, 16) and ((s_imp * 64 >= 5) & (s_imp * 64 <= 6)).all()
    assert torch.allclose(importance_positions(w, 16, deterministic=True), torch.full((3, 16), 5.5 / 64))
    # Depth-guided: symmetric Gaussian quantiles, clamped to [near, far].
    d = depth_guided_distances(torch.tensor([1.3, 0.8]), 16, 0.01, 0.8, 1.8, deterministic=True)
    assert torch.allclose(d[0].mean(), torch.tensor(1.3)) and torch.allclose(d[0], (2.6 - d[0]).flip(0))
    assert (d[1] >= 0.8).all() and torch.isclose(d[1, :8], torch.tensor(0.8)).all()


def test_render_rays_counts_and_sphere():
    field = SphereField()
    cfg = RendererConfig(eval_batch_size=10_000_000)
    origins = torch.tensor([[[0.0, 0.0, -2.0], [0.0, 2.0, -2.0]]])
    dirs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    out = render_rays(field, origins, dirs, 1.0, 3.0, cfg, deterministic=True)
    assert [c for c, _ in field.calls] == [True, False]
    assert field.calls[0][1] == (1, 2 * 64, 3) and field.calls[1][1] == (1, 2 * 96, 3)
    assert out.coarse.weights.shape == (1, 2, 64) and out.fine.weights.shape == (1, 2, 96)
    assert (out.fine.t.diff(dim=-1) >= 0).all()
    # Ray 0 hits the sphere surface at t = 1.5; ray 1 misses (white background).
    assert abs(out.fine.depth[0, 0].item() - 1.5) < 2.0 / 64  # within one coarse interval
    assert torch.allclose(out.final.rgb[0, 1], torch.ones(3), atol=1e-4)
    # The fine pass sees every coarse sample plus 16 near the coarse depth.
    near_depth = ((out.fine.t[0, 0] - out.coarse.depth[0, 0]).abs() < 0.03).sum()
    assert near_depth >= 16
    # Deterministic mode is deterministic; a seeded generator too.
    again = render_rays(field, origins, dirs, 1.0, 3.0, cfg, deterministic=True)
    assert torch.equal(again.final.rgb, out.final.rgb)
    a = render_rays(field, origins, dirs, 1.0, 3.0, cfg, generator=torch.Generator().manual_seed(3))
    b = render_rays(field, origins, dirs, 1.0, 3.0, cfg, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.final.rgb, b.final.rgb)
    # No fine pass.
    coarse_only = render_rays(
        field, origins, dirs, 1.0, 3.0, RendererConfig(n_fine=0, n_fine_depth=0), deterministic=True
    )
    assert coarse_only.fine is None and coarse_only.final is coarse_only.coarse


def test_chunking_does_not_change_results():
    field = SphereField()
    g = torch.Generator().manual_seed(1)
    origins = torch.randn(2, 5, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, -2.0])
    dirs = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, 1.0]) + 0.1 * torch.randn(2, 5, 3, generator=g), dim=-1
    )
    near, far = torch.full((2, 5), 1.0), torch.full((2, 5), 3.0)  # per-ray bounds
    whole = render_rays(
        field, origins, dirs, near, far, RendererConfig(eval_batch_size=10**6), deterministic=True
    )
    chunked = render_rays(
        field, origins, dirs, near, far, RendererConfig(eval_batch_size=37), deterministic=True
    )
    assert torch.equal(whole.final.rgb, chunked.final.rgb) and torch.equal(
        whole.final.depth, chunked.final.depth
    )


def test_gradient_reaches_ray_origins():
    """Pose estimation needs d(colour)/d(camera): the depth-guided samples are not detached."""
    field = SphereField()
    origins = torch.tensor([[[0.1, 0.0, -2.0]]], requires_grad=True)
    dirs = torch.tensor([[[0.0, 0.0, 1.0]]])
    out = render_rays(field, origins, dirs, 1.0, 3.0, RendererConfig(), deterministic=True)
    out.final.rgb.sum().backward()
    assert origins.grad is not None and torch.isfinite(origins.grad).all() and origins.grad.abs().sum() > 0


def test_camera_rays_match_pixelnerf_rays():
    """Rays through inerf pixel centres (i + 0.5, cx + 0.5) equal pixelNeRF's rays through integer pixels."""
    H, W, f, c = 6, 8, 5.0, (4.0, 3.0)  # pixelNeRF: focal, principal point at integer-centred (W / 2, H / 2)
    theta = 0.4
    c2w_cv = torch.eye(4)
    c2w_cv[:3, :3] = torch.tensor(
        [[math.cos(theta), 0, math.sin(theta)], [0, 1, 0], [-math.sin(theta), 0, math.cos(theta)]]
    )
    c2w_cv[:3, 3] = torch.tensor([0.3, -0.2, -1.5])
    cams = Cameras(c2w_cv[None], fx=f, fy=f, cx=c[0] + 0.5, cy=c[1] + 0.5, height=H, width=W)
    origins, dirs = camera_rays(cams)
    # pixelNeRF's gen_rays: OpenGL camera direction ((i - cx) / f, -(j - cy) / f, -1), normalised.
    j, i = torch.meshgrid(
        torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
    )
    d_gl = torch.stack([(i - c[0]) / f, -(j - c[1]) / f, -torch.ones_like(i)], -1).reshape(-1, 3)
    c2w_gl = opencv_to_opengl_c2w(c2w_cv)
    d_world = torch.nn.functional.normalize(d_gl @ c2w_gl[:3, :3].T, dim=-1)
    assert torch.allclose(dirs[0], d_world, atol=1e-6)
    assert torch.allclose(origins[0], c2w_cv[:3, 3].expand(H * W, 3))
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, H * W))


def test_render_views_shapes():
    cams = Cameras(torch.eye(4)[None].clone(), fx=4.0, fy=4.0, cx=2.5, cy=2.5, height=4, width=5)
    cams.c2w[0, 2, 3] = -2.0  # camera at z = -2 looking along +z at the sphere
    rgb, depth = render_views(
        SphereField(), cams, 1.0, 3.0, RendererConfig(), ray_batch_size=7, deterministic=True
    )
    assert rgb.shape == (1, 4, 5, 3) and depth.shape == (1, 4, 5)
    assert abs(depth[0, 2, 2].item() - 1.5) < 2.0 / 64  # pixel (2, 2) is on the optical axis


@pytest.mark.parametrize("white", [True, False])
def test_background_follows_config(white):
    def empty(xyz, coarse=True, viewdirs=None):
        return torch.zeros(*xyz.shape[:-1], 4)

    out = render_rays(
        empty,
        torch.zeros(1, 3, 3),
        torch.tensor([[[0.0, 0.0, 1.0]] * 3]),
        0.1,
        5.0,
        RendererConfig(white_bkgd=white),
        deterministic=True,
    )
    assert torch.allclose(out.final.rgb, torch.full((1, 3, 3), 1.0 if white else 0.0))
