"""GridField (TensoRF-VM + occupancy): fast path vs reference, gradients, skipping, schedule, fitting."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from inerf.fields import grid as grid_module
from inerf.fields._reference import bilinear_reference, grid_forward_reference, linear_reference
from inerf.fields.factory import build_field
from inerf.fields.grid import GridConfig, GridField, ray_aabb_intersect
from inerf.fields.occupancy import OccupancyGrid
from inerf.geometry.se3 import se3_exp
from inerf.rays.rays import Rays, rays_from_pixels
from inerf.render.renderer import RenderConfig, render_rays


def tiny_config(**kw) -> GridConfig:
    """Small grids (non-cubic box, so every plane is rectangular) for fast float64 tests."""
    base = {
        "aabb": (-1.0, -0.8, -1.2, 1.0, 0.9, 1.0),
        "n_voxels_init": 12**3,
        "n_voxels_final": 16**3,
        "density_components": 3,
        "appearance_components": 4,
        "appearance_dim": 5,
        "mlp_width": 8,
        "occupancy_resolution": 8,
        "upsample_steps": (2, 4),
        "occupancy_steps": (2, 3),
    }
    base.update(kw)
    return GridConfig(**base)


def tiny_field(dtype=torch.float64, **kw) -> GridField:
    torch.manual_seed(0)
    field = GridField(tiny_config(**kw)).to(dtype)
    with torch.no_grad():  # density of order one everywhere, so sigma and its gradients are not ~0
        for p in field.planes:
            p[:, :3] += 1.0
        for ln in field.lines:
            ln[:, :3] += 1.0
    return field


def carved_box_field(dtype=torch.float64) -> GridField:
    """:func:`tiny_field` in the cube [-1, 1]^3 carved empty but for a box of density, with its occupancy
    grid updated: rays cross empty and occupied cells, as the empty-space skipping tests need."""
    field = tiny_field(dtype=dtype, aabb=(-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
    with torch.no_grad():
        for p in field.planes:
            p[:, :3] -= 1.0
        field.planes[0][0, 0, 3:8, 4:9] += 8.0
        field.lines[0][0, 0, :3, 0] = 0.0
        field.lines[0][0, 0, 8:, 0] = 0.0
    field.update_occupancy()
    return field


def random_points(n: int, dtype=torch.float64, lo=-1.3, hi=1.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g, dtype=dtype) * (hi - lo) + lo
    dirs = F.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)
    return xyz, dirs


def carve_half(field: GridField) -> None:
    """A hand-made occupancy mask: only cells with x < 0 occupied (so some points are skipped)."""
    occ = OccupancyGrid(field.aabb, (4, 3, 2))
    occ.mask[2:] = False
    field.occupancy.aabb, field.occupancy.mask = occ.aabb.to(field.aabb.dtype), occ.mask


# ------------------------------------------------------------------ smoke, shapes, errors


def test_build_from_factory_and_shapes():
    field = build_field("grid", {"n_voxels_init": 8**3, "density_components": 2, "appearance_components": 3})
    assert isinstance(field, GridField)
    xyz, dirs = random_points(50, torch.float32)
    rgb, sigma = field(xyz, dirs)
    assert rgb.shape == (50, 3) and sigma.shape == (50,)
    assert (rgb >= 0).all() and (rgb <= 1).all() and (sigma >= 0).all()
    rgb, sigma = field(xyz[:0], dirs[:0])  # no points at all
    assert rgb.shape == (0, 3) and sigma.shape == (0,)


def test_view_independent_field_takes_none():
    field = GridField(tiny_config(view_dependent=False))
    rgb, sigma = field(random_points(7, torch.float32)[0], None)
    assert rgb.shape == (7, 3) and sigma.shape == (7,)


def test_wrong_inputs_raise():
    field = GridField(tiny_config())
    xyz, dirs = random_points(5, torch.float32)
    with pytest.raises(ValueError, match="xyz must be"):
        field(xyz[:, :2], dirs)
    with pytest.raises(ValueError, match="view-dependent"):
        field(xyz, None)
    with pytest.raises(ValueError, match="viewdirs must be"):
        field(xyz, dirs[:3])
    with pytest.raises(ValueError, match="aabb"):
        GridConfig(aabb=(0, 0, 0, 1, -1, 1))


def test_config_json_round_trip():
    cfg = GridConfig.cpu()
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()}  # what json gives back
    assert GridConfig(**d) == cfg


# ------------------------------------------------------------------ interpolation: fast vs reference


def test_reference_interpolation_hand_example():
    # 2 x 3 plane (H=2, W=3), one channel; vertices at u = -1, 0, 1 across and -1, 1 down.
    plane = torch.tensor([[[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]]], dtype=torch.float64)
    ua = torch.tensor([-1.0, 0.0, 1.0, 0.5, 0.5])
    ub = torch.tensor([-1.0, -1.0, 1.0, 0.0, 2.0])  # the last one is outside: border clamp to ub = 1
    out = bilinear_reference(plane, ua.double(), ub.double())[:, 0]
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 12.0, 6.5, 11.5], dtype=torch.float64))
    line = torch.tensor([[0.0, 4.0]], dtype=torch.float64)
    assert torch.allclose(
        linear_reference(line, torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64))[:, 0],
        torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64),
    )


def test_reference_interpolation_matches_grid_sample():
    g = torch.Generator().manual_seed(0)
    plane = torch.randn(4, 5, 7, generator=g, dtype=torch.float64)
    ua, ub = (torch.rand(300, generator=g, dtype=torch.float64) * 2.4 - 1.2 for _ in range(2))
    ref = bilinear_reference(plane, ua, ub)
    fast = F.grid_sample(
        plane[None],
        torch.stack([ua, ub], -1).view(1, 1, -1, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )[0, :, 0].t()
    assert torch.allclose(ref, fast, atol=1e-12)


def test_forward_matches_reference_values_and_gradients():
    field = tiny_field()
    carve_half(field)
    xyz, dirs = random_points(400)  # some outside the box, some in carved cells
    keep = field.occupied(xyz)
    assert 0 < keep.sum() < len(xyz)
    xyz.requires_grad_(True)
    dirs.requires_grad_(True)
    rgb_w = torch.randn(400, 3, dtype=torch.float64)
    sig_w = torch.randn(400, dtype=torch.float64)
    params = list(field.parameters())

    def grads(fn):
        rgb, sigma = fn(xyz, dirs)
        loss = (rgb * rgb_w).sum() + (sigma * sig_w).sum() / field.config.density_scale
        return (rgb, sigma, *torch.autograd.grad(loss, [xyz, dirs, *params], allow_unused=True))

    fast, ref = grads(field), grads(partial(grid_forward_reference, field))
    dense = grads(lambda x, d: field(x, d, skip_empty=False))
    for got in (fast, dense):
        for a, b in zip(got, ref):
            assert a is not None and b is not None
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)
    assert (fast[1][~keep] == 0).all() and (fast[2][~keep] == 0).all()  # empty: no density, no gradient
    assert fast[2][keep].abs().sum() > 0


def test_gradcheck_points_and_viewdirs():
    field = tiny_field()
    xyz, dirs = random_points(12, lo=-0.9, hi=0.75)
    xyz.requires_grad_(True)
    dirs.requires_grad_(True)
    field.requires_grad_(False)
    assert field.occupied(xyz).all()
    # Interpolation is piecewise polynomial; random points sit well inside cells, so finite differences
    # with eps 1e-6 never cross a vertex.
    assert torch.autograd.gradcheck(lambda x, d: field(x, d), (xyz, dirs), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(partial(grid_forward_reference, field), (xyz, dirs), eps=1e-6, atol=1e-6)


def test_float32_matches_float64():
    f64 = tiny_field()
    f32 = tiny_field(torch.float32)
    xyz, dirs = random_points(200)
    r64, s64 = f64(xyz, dirs)
    r32, s32 = f32(xyz.float(), dirs.float())
    assert torch.allclose(r32.double(), r64, atol=1e-5)
    assert torch.allclose(s32.double(), s64, rtol=1e-4, atol=1e-4)


def test_density_matches_forward():
    field = tiny_field()
    carve_half(field)
    xyz, dirs = random_points(300)
    assert torch.allclose(field.density(xyz), field(xyz, dirs)[1], atol=1e-12)


def test_box_is_one_rank_one_component():
    # Worked example: a fresh field with zero factors has sigma = 25 softplus(-10) = 1.135e-3 everywhere;
    # writing gain 20 into component 0 inside a box gives 25 softplus(10) = 250.0 there.
    field = GridField(tiny_config(aabb=(-1, -1, -1, 1, 1, 1), n_voxels_init=20**3))  # 21 vertices, 0.1 apart
    with torch.no_grad():
        for p, ln in zip(field.planes, field.lines):
            p[:, :3] = 0
            ln[:, :3] = 0
        v = torch.linspace(-1, 1, 21)
        inside = ((v >= -0.4) & (v <= 0.4)).float()
        field.planes[0][0, 0] = 20 * inside[:, None] * inside[None, :]
        field.lines[0][0, 0, :, 0] = inside
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.3, 0.3], [0.8, 0.0, 0.0], [0.0, 0.0, -0.8]])
    sigma = field.density(pts)
    inside, outside = 25 * (10 + math.log1p(math.exp(-10))), 25 * math.log1p(math.exp(-10))
    assert torch.allclose(sigma, torch.tensor([inside, inside, outside, outside]), rtol=1e-4)


# ------------------------------------------------------------------ occupancy and empty-space skipping


def test_occupancy_lookup_hand_example():
    occ = OccupancyGrid(torch.tensor([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]), (2, 2, 2))
    occ.mask[:] = False
    occ.mask[1, 0, 1] = True  # cell x in [1, 2), y in [0, 1), z in [1, 2)
    pts = torch.tensor(
        [
            [1.5, 0.5, 1.5],
            [0.5, 0.5, 1.5],
            [2.0, 0.0, 2.0],  # a point on the max face belongs to the last cell
            [2.01, 0.5, 1.5],
            [float("nan"), 0.5, 1.5],
        ]
    )
    assert occ(pts).tolist() == [True, False, True, False, False]
    assert torch.allclose(occ.bbox(), torch.tensor([[1.0, 0.0, 1.0], [2.0, 1.0, 2.0]]))


def test_occupancy_update_sphere_with_dilation():
    occ = OccupancyGrid(torch.zeros(2, 3))
    box = torch.tensor([[-1.0] * 3, [1.0] * 3])

    def sphere(x):
        return 100.0 * (x.norm(dim=-1) < 0.5).float()

    occ.update(sphere, box, (16, 16, 16), alpha_threshold=1e-3, dilation=0)
    # Cell centres are odd multiples of 1/16; inside the sphere when a^2 + b^2 + c^2 < 8^2 (in 1/16 units).
    odd = range(-15, 16, 2)
    n_inside = sum(a * a + b * b + c * c < 64 for a in odd for b in odd for c in odd)
    n0 = int(occ.mask.sum())
    assert n0 == n_inside and occ(torch.zeros(1, 3)).item() and not occ(torch.full((1, 3), 0.9)).item()
    occ.update(sphere, box, (16, 16, 16), alpha_threshold=1e-3, dilation=1)
    assert int(occ.mask.sum()) > n0  # one more cell all around


def test_occupancy_update_never_empties_the_field():
    field = GridField(tiny_config())  # fresh: sigma ~ 1e-3, below the threshold everywhere
    before = field.occupancy.mask.clone()
    assert field.update_occupancy() == 1.0  # kept the all-occupied grid instead of an empty one
    assert torch.equal(field.occupancy.mask, before)


def test_skipping_equals_full_rendering_values_and_pose_gradient():
    field = tiny_field(aabb=(-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
    with torch.no_grad():  # make most of the box empty, then carve it with the occupancy grid
        for p in field.planes:
            p[:, :3] -= 1.0
        field.planes[0][0, 0, 3:8, 4:9] += 8.0  # a box: a square of the (x, y) plane
        field.lines[0][0, 0, :3, 0] = 0.0  # times a segment of the z line
        field.lines[0][0, 0, 8:, 0] = 0.0
    frac = field.update_occupancy()
    assert 0.0 < frac < 0.9
    field.requires_grad_(False)
    c2w0 = torch.eye(4, dtype=torch.float64)
    c2w0[2, 3] = -3.0  # camera on -z looking at the origin along +z (OpenCV axes)
    uv = torch.stack(torch.meshgrid(torch.arange(0, 16, 2), torch.arange(0, 16, 2), indexing="xy"), -1)
    uv = uv.reshape(-1, 2)
    cfg = RenderConfig(n_coarse=48, n_fine=16, near=1.5, far=4.5)

    def render(fn):
        xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        out = render_rays(fn, rays_from_pixels(uv, se3_exp(xi) @ c2w0, 12.0, 12.0, 8.0, 8.0), cfg)
        (grad,) = torch.autograd.grad(out.rgb.sum() + out.depth.sum(), xi)
        return out.rgb, out.depth, out.acc, grad

    skip = render(field)
    for other in (
        render(lambda x, d: field(x, d, skip_empty=False)),
        render(partial(grid_forward_reference, field)),
    ):
        for a, b in zip(skip, other):
            assert torch.allclose(a, b, atol=1e-10)
    assert skip[2].max() > 0.5 and skip[3].abs().sum() > 0  # the image is not empty and has a gradient


def test_ray_aabb_intersect_hand_example():
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    o = torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.0, -3.0], [0.0, 2.0, -3.0], [0.5, 0.0, 0.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.25, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t_in, t_out = ray_aabb_intersect(o, d, aabb)
    # axis ray: faces z = -1, +1 at t = 2, 4; tilted: x = 1 reached at t = 4 first; third misses; the
    # last starts inside (t_in < 0) and leaves through x = 1 at t = 0.5.
    keep = torch.tensor([0, 1, 3])
    assert torch.allclose(t_in[keep], torch.tensor([2.0, 2.0, -1.5]))
    assert torch.allclose(t_out[keep], torch.tensor([4.0, 4.0, 0.5]))
    assert t_in[2] > t_out[2]  # parallel to the y slab and outside it: a miss


@pytest.mark.parametrize("jitter", [False, True])
def test_ray_bounds_keep_the_last_sample_outside_the_box(jitter):
    # A fresh field has a small positive density everywhere in its box; with the plain near/far the
    # last (open-interval) sample of a ray that ends inside the box is opaque.
    field = GridField(tiny_config(aabb=(-1, -1, -1, 1, 1, 1)))
    c2w = torch.eye(4)
    c2w[2, 3] = -1.8
    uv = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="xy"), -1).reshape(-1, 2)
    rays = rays_from_pixels(uv, c2w, 4.0, 4.0, 4.0, 4.0)
    cfg = RenderConfig(n_coarse=16, n_fine=0, near=0.5, far=2.5, jitter=jitter)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # The artefact: the rays whose far end lies inside the box (the central 4 x 4) are opaque.
        assert (render_rays(field, rays, cfg, generator=g).acc > 0.99).sum() == 16
        near, far = field.ray_bounds(rays.origins, rays.directions, cfg.near, cfg.n_coarse)
        acc = render_rays(field, rays, cfg, near=near, far=far, generator=g).acc
    assert acc.max() < 0.05  # only the faint density the rays cross
    assert (near >= 0.5).all() and (far > near).all()
    t_in, t_out = ray_aabb_intersect(rays.origins, rays.directions, field.aabb)
    assert torch.allclose(near, t_in.clamp_min(0.5)) and (far > t_out).all()


# ------------------------------------------------------------------ schedule, resampling, checkpoints


def test_upsample_resolution_and_exact_refinement():
    field = tiny_field()
    field.upsample(24**3)
    assert field.resolution == (26, 22, 28)  # 25 x 21 x 27 cubic voxels follow the (2, 1.7, 2.2) box
    # Halving the voxels (2 R - 1 vertices) keeps every old vertex and a piecewise (bi)linear function
    # restricted to half cells is still (bi)linear there: the field is reproduced exactly.
    xyz, dirs = random_points(300, lo=-0.7, hi=0.7)
    before = field(xyz, dirs)
    field.resample(field.aabb, tuple(2 * r - 1 for r in field.resolution))
    after = field(xyz, dirs)
    assert torch.allclose(after[1], before[1], atol=1e-10) and torch.allclose(after[0], before[0], atol=1e-10)


def test_shrink_crops_at_vertices_and_keeps_the_field():
    field = tiny_field()
    xyz, dirs = random_points(400, lo=-0.9, hi=0.9)
    before = field(xyz, dirs)
    vox, aabb0 = field.voxel_size.clone(), field.aabb.clone()
    occ = OccupancyGrid(field.aabb, (10, 10, 10))
    occ.mask[:] = False
    occ.mask[3:7, 2:8, 4:6] = True
    field.occupancy.aabb, field.occupancy.mask = occ.aabb, occ.mask
    box = occ.bbox()
    assert field.shrink()
    assert (field.aabb[0] <= box[0] + 1e-9).all() and (field.aabb[1] >= box[1] - 1e-9).all()
    assert (field.aabb[0] >= aabb0[0]).all() and (field.aabb[1] <= aabb0[1]).all()
    assert (field.aabb[1] - field.aabb[0] < 0.8 * (aabb0[1] - aabb0[0])).any()
    assert torch.allclose(field.voxel_size, vox, atol=1e-9)
    inside = field.occupied(xyz)
    assert 0 < inside.sum() < len(xyz)
    after = field(xyz, dirs)
    assert torch.allclose(after[1][inside], before[1][inside], atol=1e-10)
    assert torch.allclose(after[0][inside], before[0][inside], atol=1e-10)


def test_on_train_step_schedule():
    field = tiny_field()
    res0 = field.resolution
    assert not field.on_train_step(0) and not field.on_train_step(1)
    assert field.on_train_step(2)  # occupancy + shrink + first upsample
    assert field.occupancy.mask.numel() > 1 and field.resolution != res0
    assert not field.on_train_step(3)  # occupancy only: parameters unchanged
    assert field.on_train_step(4)
    n = math.prod(v - 1 for v in field.resolution)
    assert abs(n - 16**3) / 16**3 < 0.2
    assert field.upsample_schedule()[-1] == 16**3


def test_state_dict_round_trip_after_training_changes(tmp_path):
    from safetensors.torch import load_file, save_file

    field = tiny_field(torch.float32)
    for step in range(5):
        field.on_train_step(step)
    xyz, dirs = random_points(200, torch.float32)
    expected = field(xyz, dirs)
    path = tmp_path / "grid.safetensors"
    save_file({k: v.contiguous() for k, v in field.state_dict().items()}, str(path))
    fresh = GridField(tiny_config())  # initial shapes: load must adopt the checkpoint's
    fresh.load_state_dict(load_file(str(path)))
    got = fresh(xyz, dirs)
    assert fresh.resolution == field.resolution
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    # Half-precision weights (how demo checkpoints stay small) load into float32 parameters.
    half = GridField(tiny_config())
    half.load_state_dict({k: v.half() if v.is_floating_point() else v for k, v in field.state_dict().items()})
    assert half.planes[0].dtype == torch.float32
    assert torch.allclose(half(xyz, dirs)[0], expected[0], atol=2e-3)


def test_param_groups_cover_every_parameter_once():
    field = GridField(tiny_config())
    groups = field.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in field.parameters())
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"grids": 0.02, "network": pytest.approx(1e-3)}
    lrs = {g["name"]: g["lr"] for g in field.param_groups(0.002)}  # a decayed lr decays both groups
    assert lrs == {"grids": 0.002, "network": pytest.approx(1e-4)}
    torch.optim.Adam(groups)  # accepted as is


def test_regularization():
    field = GridField(tiny_config(tv_weight_density=1.0, tv_weight_appearance=0.5))
    reg = field.regularization()
    assert reg.ndim == 0 and reg > 0
    reg.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in field.planes)
    quiet = GridField(tiny_config(l1_weight=0.0, tv_weight_density=1.0))
    with torch.no_grad():
        for p, ln in zip(quiet.planes, quiet.lines):
            p.fill_(0.3)
            ln.fill_(0.3)
    assert quiet.regularization().item() == 0.0  # constant factors have no total variation


def test_samples_per_ray():
    field = GridField(tiny_config(aabb=(-1, -1, -1, 1, 1, 1), n_voxels_init=20**3, step_ratio=0.5))
    assert field.resolution == (21, 21, 21) and field.voxel_size.tolist() == pytest.approx([0.1] * 3)
    assert field.samples_per_ray(2.0, 6.0) == 80  # 4 units at half a voxel


# ------------------------------------------------------------------ it can fit something


class ColouredSphere(torch.nn.Module):
    """Analytic teacher: a sphere of radius 0.6 with a smooth density edge and position-dependent colour."""

    def forward(self, xyz, viewdirs=None):
        r = xyz.norm(dim=-1)
        sigma = 60.0 * torch.sigmoid((0.6 - r) * 40.0)
        x, y, z = xyz.unbind(-1)
        rgb = 0.5 + 0.45 * torch.tanh(torch.stack([2 * x, 2 * y, 2 * z + x], -1))
        return rgb, sigma


def orbit_c2w(azimuth: float, elevation: float, radius: float = 3.0) -> torch.Tensor:
    """OpenCV-axes camera on a sphere around the origin, looking at it, z up."""
    ce, se = math.cos(elevation), math.sin(elevation)
    eye = radius * torch.tensor([ce * math.cos(azimuth), ce * math.sin(azimuth), se])
    fwd = -eye / eye.norm()
    right = F.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0])), dim=0)
    down = torch.linalg.cross(fwd, right)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, fwd, eye
    return c2w


def test_fits_a_coloured_sphere_quickly(one_thread):
    torch.manual_seed(0)
    hw, focal = 24, 30.0
    cfg = RenderConfig(n_coarse=40, n_fine=0, near=1.8, far=4.2, jitter=False)
    j, i = torch.meshgrid(torch.arange(hw), torch.arange(hw), indexing="ij")
    uv = torch.stack([i, j], -1).reshape(-1, 2)
    views = [(a, e) for a in range(0, 360, 45) for e in (-20.0, 35.0)]
    rays = [
        rays_from_pixels(uv, orbit_c2w(math.radians(a), math.radians(e)), focal, focal, hw / 2, hw / 2)
        for a, e in views
    ]
    teacher = ColouredSphere()
    with torch.no_grad():
        targets = torch.cat([render_rays(teacher, r, cfg).rgb for r in rays])
    origins = torch.cat([r.origins for r in rays])
    directions = torch.cat([r.directions for r in rays])
    viewdirs = torch.cat([r.viewdirs for r in rays])

    field = GridField(
        GridConfig.cpu(
            aabb=(-1, -1, -1, 1, 1, 1),
            n_voxels_init=24**3,
            n_voxels_final=40**3,
            appearance_components=6,
            occupancy_steps=(120,),
            upsample_steps=(120, 160),
        )
    )
    opt = torch.optim.Adam(field.param_groups(), eps=1e-15)
    train_cfg = RenderConfig(n_coarse=40, n_fine=0, near=1.8, far=4.2, jitter=True)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(200):
        if field.on_train_step(step):
            opt = torch.optim.Adam(field.param_groups(), eps=1e-15)
        idx = torch.randint(0, len(targets), (512,), generator=g)
        near, far = field.ray_bounds(origins[idx], directions[idx], train_cfg.near, train_cfg.n_coarse)
        batch = Rays(origins[idx], directions[idx], viewdirs[idx])
        out = render_rays(field, batch, train_cfg, near=near, far=far, generator=g)
        loss = (out.rgb - targets[idx]).pow(2).mean() + field.regularization()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.cat([render_rays(field, r, cfg).rgb for r in rays])
    psnr = -10 * torch.log10((pred - targets).pow(2).mean()).item()
    elapsed = time.perf_counter() - start
    print(f"sphere fit: PSNR {psnr:.1f} dB after {elapsed:.0f} s")
    assert psnr > 25.0, f"PSNR {psnr:.1f} dB after {elapsed:.0f} s"
    assert field.resolution == (41, 41, 41) and field.occupancy.fraction() < 0.8  # the schedule ran


def test_frozen_field_packed_query_matches_reference_values_and_gradients(monkeypatch):
    """A frozen field on a GPU (pose solves, rendering) is queried through one grid_sample over edge-padded
    planes and lines (rectangular planes of different sizes here, points beyond the box read the border):
    values and gradients with respect to points and view directions equal the reference interpolation's.
    Checked on the CPU, where the packed path is not used by default."""
    monkeypatch.setattr(grid_module, "PACKED_QUERY_DEVICES", {"cuda", "cpu"})
    field = tiny_field()
    carve_half(field)
    field.requires_grad_(False)
    assert field._packed() is not None and len({p.shape for p in field.planes}) == 3
    xyz, dirs = random_points(400, lo=-1.6, hi=1.6)
    xyz.requires_grad_(True)
    dirs.requires_grad_(True)
    rgb_w, sig_w = torch.randn(400, 3, dtype=torch.float64), torch.randn(400, dtype=torch.float64)

    def grads(fn):
        rgb, sigma = fn(xyz, dirs)
        loss = (rgb * rgb_w).sum() + (sigma * sig_w).sum() / field.config.density_scale
        return (rgb, sigma, *torch.autograd.grad(loss, [xyz, dirs]))

    def unmasked_reference(x, d):
        mask = field.occupancy.mask
        field.occupancy.mask = torch.ones_like(mask)
        try:
            return grid_forward_reference(field, x, d)
        finally:
            field.occupancy.mask = mask

    for a, b in zip(grads(field), grads(partial(grid_forward_reference, field))):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    # The unmasked query against the reference in the whole box (carved cells included).
    lo, hi = field.aabb
    inside = ((xyz.detach() >= lo) & (xyz.detach() <= hi)).all(-1)
    got, ref = grads(field.query), grads(unmasked_reference)
    assert inside.sum() > 50
    torch.testing.assert_close(got[0][inside], ref[0][inside], atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(got[1][inside], ref[1][inside], atol=1e-10, rtol=1e-9)
    # Cached while the parameters are unchanged; rebuilt after an in-place change.
    packed = field._packed()
    assert field._packed() is packed
    with torch.no_grad():
        field.planes[0].mul_(1.5)
    assert field._packed() is not packed


def test_packed_query_with_the_fused_factors_equals_the_reference(monkeypatch):
    """The packed query's branch for the Triton factor kernel (point-major factors, the density sum, the
    appearance product) gives the reference's values and gradients; the kernel's own stand-in here is
    ``vm_factors_torch``, which the interpreter test below checks the kernel against."""
    monkeypatch.setattr(grid_module, "PACKED_QUERY_DEVICES", {"cuda", "cpu"})
    monkeypatch.setattr(
        grid_module,
        "_fused_factors",
        lambda xyz, packed, cd: grid_module.vm_factors_torch(
            xyz, packed["grids"], packed["coord_w"], packed["coord_b"], cd
        ),
    )
    field = tiny_field()
    carve_half(field)
    field.requires_grad_(False)
    xyz, dirs = random_points(300, lo=-1.6, hi=1.6)
    xyz.requires_grad_(True)
    w = torch.randn(300, 3, dtype=torch.float64)
    rgb, sigma = field(xyz, dirs)
    got = (rgb, sigma, *torch.autograd.grad((rgb * w).sum() + sigma.sum(), xyz))
    rgb, sigma = grid_forward_reference(field, xyz, dirs)
    want = (rgb, sigma, *torch.autograd.grad((rgb * w).sum() + sigma.sum(), xyz))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


FACTOR_KERNEL_CHECK = """
import sys
import torch
sys.path.insert(0, sys.argv[1])
from test_grid import carve_half, random_points, tiny_field
from inerf.fields import _triton_grid as G
from inerf.fields import grid as grid_module

field = tiny_field(torch.float32)  # rectangular planes of different sizes: padded textures
carve_half(field)
field.requires_grad_(False)
packed = field._pack()
cd = field.config.density_components
xyz, _ = random_points(200, torch.float32, lo=-1.6, hi=1.6)  # beyond the box: border values, no gradient
x1, x2 = xyz.clone().requires_grad_(True), xyz.clone().requires_grad_(True)
gf = torch.randn(200, 3 * packed["grids"].shape[1])
gr = torch.randn(200)
f_ref, raw_ref = grid_module.vm_factors_torch(x1, packed["grids"], packed["coord_w"], packed["coord_b"], cd)
(g_ref,) = torch.autograd.grad((f_ref * gf).sum() + (raw_ref * gr).sum(), x1)
cl = packed["grids"].permute(0, 2, 3, 1).contiguous()
f, raw = G.vm_factors(x2, cl, packed["coord_w"], packed["coord_b"], cd)
(g,) = torch.autograd.grad((f * gf).sum() + (raw * gr).sum(), x2)
for a, b, what in ((f, f_ref, "f"), (raw, raw_ref, "raw"), (g, g_ref, "grad")):
    err = float((a - b).abs().max() / b.abs().max())
    assert err < 1e-5, (what, err)
print("factor kernel ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_factor_kernel_in_the_interpreter(tmp_path):
    """The Triton factor kernel (values, density sum, gradient w.r.t. points) against ``grid_sample`` on the
    padded textures, run by Triton's interpreter on the CPU (the GPU benchmark times the compiled kernel)."""
    script = tmp_path / "check.py"
    script.write_text(FACTOR_KERNEL_CHECK)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    res = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert res.returncode == 0 and "factor kernel ok" in res.stdout, res.stderr[-3000:]
