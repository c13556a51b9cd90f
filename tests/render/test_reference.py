"""The shared renderer with pixelNeRF's settings equals the published renderer's definition, kept beside it as
the slow, self-contained reference :mod:`inerf.render._reference` (its own samplers and compositing)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from inerf.rays import Rays
from inerf.render import RenderConfig, render_rays
from inerf.render._reference import published_render_rays


class BlobField:
    """Smooth analytic colour and density (a soft ball at the origin), different for the coarse and the fine
    network, with an object axis (objects are shifted copies): ``field(xyz, viewdirs) -> (rgb, sigma)``."""

    def __init__(self, coarse: bool = True):
        self.coarse = coarse

    def __call__(self, xyz, viewdirs=None):
        shift = torch.arange(xyz.shape[0], dtype=xyz.dtype)[:, None, None] * 0.1 if xyz.ndim == 3 else 0.0
        p = xyz - shift
        sigma = 20.0 * torch.exp(-4.0 * (p * p).sum(-1)) * (1.0 if self.coarse else 1.3)
        return torch.sigmoid(2.0 * p + 0.5 * viewdirs + (0.0 if self.coarse else 0.2)), sigma


def published(xyz, coarse=True, viewdirs=None):
    """The same field with the published signature: ``[SB, N, 4]`` (r, g, b, sigma)."""
    rgb, sigma = BlobField(coarse)(xyz, viewdirs)
    return torch.cat([rgb, sigma[..., None]], -1)


def object_rays(SB=2, B=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.tensor([0.0, 0.0, -2.0]) + 0.2 * torch.randn(SB, B, 3, generator=g)
    dirs = torch.nn.functional.normalize(-origins + 0.3 * torch.randn(SB, B, 3, generator=g), dim=-1)
    return Rays(origins, dirs, dirs)


CASES = {
    "published": {},
    "black_lindisp": {"background": (0.0, 0.0, 0.0), "lindisp": True},
    "no_depth_samples": {"n_fine": 8, "n_fine_depth": 0},
    "only_depth_samples": {"n_fine": 8, "n_fine_depth": 8},
    "single_pass": {"n_fine": 0},
    "chunked": {"field_chunk": 50},
}


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_shared_core_equals_published_renderer(case, deterministic):
    rays = object_rays()
    near = torch.full((2, 7), 1.0)
    far = torch.tensor([2.8, 3.2])[:, None].expand(2, 7)  # per-object bounds, as tensors
    cfg = RenderConfig.pixelnerf(
        0.0, 0.0, n_coarse=24, jitter=not deterministic, deterministic_fine=deterministic, **CASES[case]
    )
    out = render_rays(
        BlobField(True),
        rays,
        cfg,
        fine=BlobField(False),
        near=near,
        far=far,
        generator=torch.Generator().manual_seed(4),
    )
    ref = published_render_rays(
        published,
        rays.origins,
        rays.viewdirs,
        near,
        far,
        n_coarse=cfg.n_coarse,
        n_fine=cfg.n_fine,
        n_fine_depth=cfg.n_fine_depth if cfg.n_fine > 0 else 0,
        white_bkgd=cfg.background[0] == 1.0,
        lindisp=cfg.lindisp,
        eval_batch_size=cfg.field_chunk or 10**9,
        deterministic=deterministic,
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(out.t, ref["t"])  # the same samples, bit for bit
    assert torch.allclose(out.weights, ref["weights"], rtol=0, atol=1e-6)
    assert torch.allclose(out.rgb, ref["rgb"], rtol=0, atol=1e-6)
    assert torch.allclose(out.depth, ref["depth"], rtol=0, atol=1e-6)
    if cfg.n_fine > 0:
        assert torch.allclose(out.rgb_coarse, ref["rgb_coarse"], rtol=0, atol=1e-6)
    assert out.acc.max() > 0.5 and out.acc.min() < 0.99  # partly opaque rays: every term matters


def test_gradients_agree():
    """Same gradients with respect to the ray origins (a pose), through the depth-guided samples too."""
    rays = object_rays(SB=1, B=4, seed=2)
    o1 = rays.origins.clone().requires_grad_(True)
    o2 = rays.origins.clone().requires_grad_(True)
    cfg = RenderConfig.pixelnerf(
        1.0, 3.0, n_coarse=16, n_fine=8, n_fine_depth=4, jitter=False, deterministic_fine=True
    )
    render_rays(
        BlobField(True), Rays(o1, rays.directions, rays.viewdirs), cfg, fine=BlobField(False)
    ).rgb.sum().backward()
    ref = published_render_rays(
        published, o2, rays.viewdirs, 1.0, 3.0, n_coarse=16, n_fine=8, n_fine_depth=4, deterministic=True
    )
    ref["rgb"].sum().backward()
    assert o1.grad.abs().sum() > 0 and torch.allclose(o1.grad, o2.grad, rtol=1e-5, atol=1e-6)


def test_published_renderer_is_not_nerfs():
    """The settings matter: NeRF's open interval, log transmittance and normalised depth give another result."""
    rays = object_rays()
    cfg = RenderConfig.pixelnerf(1.0, 3.0, n_coarse=24, jitter=False, deterministic_fine=True)
    a = render_rays(BlobField(True), rays, cfg, fine=BlobField(False))
    b = render_rays(
        BlobField(True),
        rays,
        replace(cfg, last_interval="open", transmittance="log", normalize_depth=True),
        fine=BlobField(False),
    )
    assert (a.rgb - b.rgb).abs().max() > 1e-2 and (a.depth - b.depth).abs().max() > 1e-2
