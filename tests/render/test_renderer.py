from dataclasses import replace

import pytest
import torch

from inerf.fields import NeRFConfig, NeRFField
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras
from inerf.rays import Rays, importance_samples, rays_for_image, rays_from_pixels, stratified_samples
from inerf.render import RenderConfig, render_image, render_rays


def small_field(seed=0):
    torch.manual_seed(seed)
    return NeRFField(NeRFConfig(depth=2, width=32, skip=0, pos_freqs=4, dir_freqs=2)).eval()


def camera():
    c2w = torch.eye(4)
    c2w[2, 3] = -4.0  # 4 units behind the origin, looking along +z at it
    return c2w


def test_chunked_equals_unchunked():
    f, g = small_field(0), small_field(1)
    c2w = camera()
    cfg = RenderConfig(n_coarse=16, n_fine=8, chunk=7)
    cam = Cameras.from_intrinsics(12.0, 12.0, 5.5, 4.5, 9, 11, c2w=c2w)
    a = render_image(f, cam, cfg, fine=g)
    rays = rays_for_image(cam)
    b = render_rays(f, rays, cfg, fine=g)
    assert torch.allclose(a.rgb.reshape(-1, 3), b.rgb, atol=1e-6)
    assert torch.allclose(a.depth.reshape(-1), b.depth, atol=1e-5)
    assert a.rgb.shape == (9, 11, 3) and a.acc.shape == (9, 11)


def test_arbitrary_pixels_match_full_image():
    f = small_field()
    cfg = RenderConfig(n_coarse=16, n_fine=0)
    full = render_image(f, Cameras.from_intrinsics(10.0, 10.0, 4.0, 4.0, 8, 8, c2w=camera()), cfg)
    uv = torch.tensor([[0, 0], [7, 3], [2, 6]])
    part = render_rays(f, rays_from_pixels(uv, camera(), 10.0, 10.0, 4.0, 4.0), cfg)
    assert torch.allclose(part.rgb, full.rgb[uv[:, 1], uv[:, 0]], atol=1e-6)


def test_gradient_reaches_pose():
    f = small_field()
    xi = torch.zeros(6, requires_grad=True)
    c2w = se3.se3_exp(xi) @ camera()
    out = render_rays(
        f,
        rays_from_pixels(torch.tensor([[1, 2], [3, 4]]), c2w, 10.0, 10.0, 4.0, 4.0),
        RenderConfig(n_coarse=8, n_fine=4),
    )
    out.rgb.sum().backward()
    assert torch.isfinite(xi.grad).all() and xi.grad.abs().sum() > 0


def test_stratified_and_importance_samples():
    t = stratified_samples(2.0, 6.0, 5, 3)
    assert torch.allclose(t[0], torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]))
    tj = stratified_samples(2.0, 6.0, 5, 100, jitter=True, generator=torch.Generator().manual_seed(0))
    assert (tj[:, 1:] >= tj[:, :-1]).all() and tj.min() >= 2.0 and tj.max() <= 6.0
    # all coarse weight in the bin around 4.0 -> importance samples land in [3.5, 4.5]
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])
    t_all = importance_samples(t[:1], w, 16)
    assert t_all.shape == (1, 21)
    # the quantiles 0 and 1 map to the ends of the PDF's support; the 14 between lie in the heavy bin
    inside = ((t_all >= 3.5) & (t_all <= 4.5)).sum().item()
    assert inside >= 14 + 1  # + the coarse sample at 4.0
    assert (t_all[:, 1:] >= t_all[:, :-1]).all()


# ----------------------------------------------------------------------------------------------------------
# pixelNeRF's settings through the same renderer: sampler, metric distances, closed last interval
# ----------------------------------------------------------------------------------------------------------
class SphereField:
    """A solid sphere of radius 0.5 at the origin (sigma 50 inside), coloured by position; records call shapes.
    Works on any leading (object) dimensions, as the field protocol allows."""

    def __init__(self):
        self.calls = []

    def __call__(self, xyz, viewdirs=None):
        self.calls.append(tuple(xyz.shape))
        return torch.sigmoid(3 * xyz), 50.0 * (xyz.norm(dim=-1) < 0.5).to(xyz.dtype)


def axis_rays(offsets, z0=-2.0):
    """Rays along +z from ``(x, y, z0)`` for each (x, y) in ``offsets`` (unit directions)."""
    o = torch.tensor([[x, y, z0] for x, y in offsets])
    d = torch.tensor([[0.0, 0.0, 1.0]]).expand_as(o)
    return Rays(o, d, d)


def test_pixelnerf_sampler_counts_and_sphere():
    field = SphereField()
    cfg = RenderConfig.pixelnerf(1.0, 3.0, jitter=False, deterministic_fine=True)
    out = render_rays(field, axis_rays([(0.0, 0.0), (0.0, 2.0)]), cfg)
    assert field.calls == [(2 * 64, 3), (2 * 96, 3)]  # fine net on all 64 + 16 + 16 samples
    assert out.weights.shape == out.t.shape == (2, 96) and (out.t.diff(dim=-1) >= 0).all()
    # Ray 0 hits the sphere at t = 1.5; ray 1 misses (white background, depth 0: not normalised).
    assert abs(out.depth[0].item() - 1.5) < 2.0 / 64
    assert torch.allclose(out.rgb[1], torch.ones(3), atol=1e-4) and out.depth[1].abs() < 1e-3
    assert ((out.t[0] - out.depth[0]).abs() < 0.03).sum() >= 16  # the depth-guided samples
    again = render_rays(field, axis_rays([(0.0, 0.0), (0.0, 2.0)]), cfg)
    assert torch.equal(again.rgb, out.rgb)
    seeded = RenderConfig.pixelnerf(1.0, 3.0)  # the published, random variant
    a, b = (
        render_rays(field, axis_rays([(0.1, 0.0)]), seeded, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    )
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.t, b.t)
    coarse_only = render_rays(field, axis_rays([(0.0, 0.0)]), RenderConfig.pixelnerf(1.0, 3.0, n_fine=0))
    assert coarse_only.rgb_coarse is None and coarse_only.t.shape == (1, 64)


@pytest.mark.parametrize("white", [True, False])
def test_background_and_empty_rays(white):
    def empty(xyz, viewdirs=None):
        return torch.zeros(*xyz.shape), torch.zeros(xyz.shape[:-1])

    bg = (1.0, 1.0, 1.0) if white else (0.0, 0.0, 0.0)
    for cfg in (
        RenderConfig(n_coarse=8, n_fine=4, background=bg),
        RenderConfig.pixelnerf(0.1, 5.0, background=bg),
    ):
        out = render_rays(empty, axis_rays([(0.0, 0.0)] * 3), cfg)
        assert torch.allclose(out.rgb, torch.full((3, 3), bg[0])) and (out.acc == 0).all()


def test_object_axis_equals_per_object_renders():
    """Rays [SB, R] reach the field as [SB, N, 3] and give each object's own render."""
    field = SphereField()
    rays = axis_rays([(0.0, 0.0), (0.2, 0.1), (0.0, 2.0), (0.3, -0.2)])
    cfg = RenderConfig.pixelnerf(1.0, 3.0, jitter=False, deterministic_fine=True)
    nested = render_rays(field, rays.reshape(2, 2), cfg)
    assert field.calls[0] == (2, 2 * 64, 3)
    for k in range(2):
        alone = render_rays(field, rays[2 * k : 2 * k + 2], cfg)
        assert torch.equal(nested.rgb[k], alone.rgb) and torch.equal(nested.depth[k], alone.depth)


def test_field_chunks_do_not_change_results():
    field = SphereField()
    g = torch.Generator().manual_seed(1)
    o = torch.randn(2, 5, 3, generator=g) * 0.1 + torch.tensor([0.0, 0.0, -2.0])
    d = torch.nn.functional.normalize(
        torch.tensor([0.0, 0.0, 1.0]) + 0.1 * torch.randn(2, 5, 3, generator=g), dim=-1
    )
    rays = Rays(o, d, d)
    near, far = torch.full((2, 5), 1.0), torch.full((2, 5), 3.0)  # per-ray bounds
    cfg = RenderConfig.pixelnerf(1.0, 3.0, jitter=False, deterministic_fine=True)
    whole = render_rays(field, rays, cfg, near=near, far=far)
    chunked = render_rays(field, rays, replace(cfg, field_chunk=37), near=near, far=far)
    assert set(field.calls[2:]) == {(2, 19, 3), (2, 64 * 5 - 19 * 16, 3), (2, 96 * 5 - 19 * 25, 3)}
    assert torch.equal(whole.rgb, chunked.rgb) and torch.equal(whole.depth, chunked.depth)


def test_distance_conventions_agree():
    """t as z-depth along unit-z directions (NeRF) and t as distance along unit directions (pixelNeRF) sample
    the same points when the bounds are converted: distance = z-depth * |d|."""
    f = small_field(2)
    uv = torch.tensor([[0, 0], [7, 3], [2, 6], [4, 4]])
    rays = rays_from_pixels(uv, camera(), 6.0, 6.0, 4.0, 4.0)
    norm = rays.directions.norm(dim=-1)
    z = RenderConfig(n_coarse=16, n_fine=8)
    metric = replace(z, distance="metric")
    a = render_rays(f, rays, z)
    b = render_rays(f, rays, metric, near=z.near * norm, far=z.far * norm)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-5) and torch.allclose(a.acc, b.acc, atol=1e-5)
    assert torch.allclose(a.depth * norm, b.depth, atol=1e-4)
    assert norm.max() > 1.1  # off-axis rays: the conventions really differ


def test_gradient_reaches_pose_with_pixelnerf_settings():
    """Pose estimation needs d(colour)/d(camera) also with metric t and the depth-guided samples."""
    f = small_field()
    xi = torch.zeros(6, requires_grad=True)
    c2w = se3.se3_exp(xi) @ camera()
    rays = rays_from_pixels(torch.tensor([[1, 2], [3, 4]]), c2w, 10.0, 10.0, 4.0, 4.0)
    cfg = RenderConfig.pixelnerf(
        2.0, 6.0, n_coarse=8, n_fine=4, n_fine_depth=2, jitter=False, deterministic_fine=True
    )
    render_rays(f, rays, cfg).rgb.sum().backward()
    assert torch.isfinite(xi.grad).all() and xi.grad.abs().sum() > 0


def test_bad_sampler_settings():
    with pytest.raises(ValueError, match="n_fine_depth"):
        render_rays(small_field(), axis_rays([(0.0, 0.0)]), RenderConfig.pixelnerf(1.0, 3.0, n_fine_depth=40))
    with pytest.raises(ValueError, match="unknown sampler"):
        render_rays(small_field(), axis_rays([(0.0, 0.0)]), RenderConfig(sampler="nerfacc"))


@pytest.mark.parametrize("sampler", ["nerf", "pixelnerf"])
def test_row_slices_render_as_rows_of_the_whole_batch(sampler):
    """Data-parallel training: two processes render halves of a batch with RowSlice generators and get the
    rows of the one-process render (every random number: coarse jitter, importance and depth-guided samples),
    and their generators end where the one-process generator ends."""
    from inerf.tensors import RowSlice

    f, g = small_field(0), small_field(1)
    cam = Cameras.from_intrinsics(12.0, 12.0, 5.5, 4.5, 6, 7, c2w=camera())
    rays = rays_for_image(cam)  # 42 rays, split 21 / 21 and 13 / 29
    cfg = RenderConfig(
        n_coarse=16, n_fine=8, n_fine_depth=4, jitter=True, deterministic_fine=False, sampler=sampler
    )
    whole_gen = torch.Generator().manual_seed(5)
    whole = render_rays(f, rays, cfg, fine=g, generator=whole_gen)
    for cut in (21, 13):
        parts = []
        for start, stop in ((0, cut), (cut, len(rays.origins))):
            gen = torch.Generator().manual_seed(5)
            out = render_rays(f, rays[start:stop], cfg, fine=g, generator=RowSlice(gen, start, stop, 42))
            parts.append(out)
            assert torch.equal(gen.get_state(), whole_gen.get_state())
        assert torch.equal(torch.cat([p.t for p in parts]), whole.t)
        assert torch.allclose(torch.cat([p.rgb for p in parts]), whole.rgb, atol=1e-6)
    # The plain generator draws only its own rows: a different render, which is what RowSlice avoids.
    alone = render_rays(f, rays[21:], cfg, fine=g, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(alone.t, whole.t[21:])


def test_row_slice_checks_its_rows():
    from inerf.tensors import RowSlice, rand

    with pytest.raises(ValueError, match="not inside"):
        RowSlice(torch.Generator(), 3, 2, 10)
    with pytest.raises(ValueError, match="rows lead"):
        rand((4, 2), generator=RowSlice(torch.Generator(), 0, 5, 10))
