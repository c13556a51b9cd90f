"""pixelNeRF through the shared renderer: equal to the published renderer's definition (the slow reference in
``inerf.render._reference``) on the published-layout checkpoint, a video frame checked by hand on one ray,
rays as pixelNeRF's ``gen_rays``, and the settings taken from a published ``renderer`` block."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import opencv_to_opengl_c2w
from inerf.pixelnerf import load_config, pixelnerf_model, render_config
from inerf.pixelnerf.config import RendererConfig
from inerf.pixelnerf.video import orbit_c2w, render_video_frames, spherical_c2w
from inerf.rays import rays_for_image
from inerf.render._reference import published_render_image

NEAR, FAR = 0.8, 1.8


@pytest.fixture()
def encoded(srn_model):
    """(Re-encoded for every test: other modules encode the shared model too.) The fixture pixelNeRF encoded on one random 32 x 32 source view (SRN-car intrinsics scaled)."""
    f = 131.25 * 32 / 128
    src = Cameras(spherical_c2w(0.0, -20.0, 1.3)[None], fx=f, fy=f, cx=16.5, cy=16.5, height=32, width=32)
    images = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        srn_model.encode_views(images, src)
    return srn_model


def frame_cameras(n: int = 2, size: int = 4) -> Cameras:
    f = 131.25 * size / 128
    return Cameras.from_intrinsics(f, f, size / 2, size / 2, size, size).with_c2w(orbit_c2w(n, -10.0, 1.3))


@pytest.mark.parametrize("deterministic", [True, False])
def test_full_render_equals_published_renderer(encoded, deterministic):
    """A whole image through the shared core equals the published renderer's definition (float32 rounding),
    in the quantile variant and with a seeded generator (same stream), over several ray and point chunks."""
    cam = frame_cameras(size=6)[1]
    config = render_config(
        encoded.full_config.renderer,
        NEAR,
        FAR,
        deterministic=deterministic,
        ray_batch_size=20,
        field_chunk=500,
    )
    out = pixelnerf_model(encoded, config).render_image(cam, generator=torch.Generator().manual_seed(5))
    rgb, depth = published_render_image(
        encoded,
        cam,
        NEAR,
        FAR,
        ray_batch_size=20,
        eval_batch_size=500,
        deterministic=deterministic,
        generator=torch.Generator().manual_seed(5),
    )
    assert out.rgb.shape == (6, 6, 3) and out.depth.shape == (6, 6)
    assert torch.allclose(out.rgb, rgb, rtol=0, atol=1e-6)
    assert torch.allclose(out.depth, depth, rtol=0, atol=1e-6)
    assert 0.8 < depth.min() and depth.max() < 1.8  # a real render, not an empty one


def _composite_by_hand(t: list[float], rgb: torch.Tensor, sigma: torch.Tensor, closed: bool = True):
    """The published compositing, one sample at a time in float64: last interval ``far - t_last`` (closed),
    ``T_{i+1} = T_i (1 - alpha_i + 1e-10)``, white background. Returns (colour, depth, weights)."""
    T, color, depth, weights = 1.0, [0.0, 0.0, 0.0], 0.0, []
    for i, ti in enumerate(t):
        delta = (t[i + 1] if i + 1 < len(t) else (FAR if closed else ti + 1e10)) - ti
        alpha = 1.0 - math.exp(-delta * float(sigma[i]))
        w = T * alpha
        weights.append(w)
        color = [c + w * float(rgb[i, k]) for k, c in enumerate(color)]
        depth += w * ti
        T *= 1.0 - alpha + 1e-10
    acc = sum(weights)
    return [c + 1.0 - acc for c in color], depth, weights


def test_video_frame_matches_published_definition_on_a_hand_checked_ray(encoded):
    """One pixel of a video frame, recomputed by hand from the published definition (deterministic variant):
    64 coarse samples at the stratum mid-points, 16 importance samples at the centres of the uniform bins
    picked by the quantiles (k + 0.5) / 16 of w + 1e-5, 16 samples at depth + 0.01 Phi^-1((k + 0.5) / 16),
    the fine network on all 96 sorted samples, last interval closed at far, the 1e-10 transmittance guard."""
    cams = frame_cameras()
    model = pixelnerf_model(
        encoded, render_config(encoded.full_config.renderer, NEAR, FAR, deterministic=True)
    )
    frames = render_video_frames(model, cams, progress=False)
    assert frames.shape == (2, 4, 4, 3) and frames.dtype.name == "uint8"
    rendered = model.render_image(cams[1]).rgb

    i, j = 2, 1  # column, row of the checked pixel in frame 1
    c2w = cams.c2w[1].double()
    fx, fy, cx, cy = cams.intrinsics(1)
    d = c2w[:3, :3] @ torch.tensor([(i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, 1.0], dtype=torch.float64)
    origin, unit = c2w[:3, 3], d / d.norm()  # pixelNeRF: metric t along the unit direction

    def field(t: list[float], coarse: bool):
        xyz = (origin + torch.tensor(t, dtype=torch.float64)[:, None] * unit).float()
        with torch.no_grad():
            out = encoded(xyz[None], coarse=coarse, viewdirs=unit.float().expand(len(t), 3)[None])[0]
        return out[:, :3].double(), out[:, 3].double()

    t_coarse = [NEAR + (k + 0.5) / 64 * (FAR - NEAR) for k in range(64)]
    _, depth, w = _composite_by_hand(t_coarse, *field(t_coarse, True))
    pdf = [(wk + 1e-5) / sum(wv + 1e-5 for wv in w) for wk in w]
    cdf = [sum(pdf[: k + 1]) for k in range(64)]
    bins = [next(b for b in range(64) if cdf[b] > (k + 0.5) / 16) for k in range(16)]
    t_importance = [NEAR + (b + 0.5) / 64 * (FAR - NEAR) for b in bins]
    t_depth = [min(FAR, max(NEAR, depth + 0.01 * NormalDist().inv_cdf((k + 0.5) / 16))) for k in range(16)]
    t_fine = sorted(t_coarse + t_importance + t_depth)
    rgb_f, sigma_f = field(t_fine, False)
    color, _, weights = _composite_by_hand(t_fine, rgb_f, sigma_f)
    open_color, _, _ = _composite_by_hand(t_fine, rgb_f, sigma_f, closed=False)

    assert len(t_fine) == 96 and 0.5 < sum(weights) < 0.99  # partly transparent: the last interval matters
    assert torch.allclose(
        rendered[j, i].double(), torch.tensor(color, dtype=torch.float64), rtol=0, atol=2e-6
    )
    assert max(abs(a - b) for a, b in zip(open_color, color)) > 1e-2  # an open last interval would differ
    expected_u8 = [round(min(max(c, 0.0), 1.0) * 255) for c in color]
    assert frames[1, j, i].tolist() == expected_u8


def test_rays_are_pixelnerf_rays():
    """Rays through inerf pixel centres (i + 0.5, cx + 0.5) equal pixelNeRF's rays through integer pixels."""
    H, W, f, c = 6, 8, 5.0, (4.0, 3.0)  # pixelNeRF: focal, principal point at integer-centred (W / 2, H / 2)
    theta = 0.4
    c2w_cv = torch.eye(4)
    c2w_cv[:3, :3] = torch.tensor(
        [[math.cos(theta), 0, math.sin(theta)], [0, 1, 0], [-math.sin(theta), 0, math.cos(theta)]]
    )
    c2w_cv[:3, 3] = torch.tensor([0.3, -0.2, -1.5])
    cams = Cameras(c2w_cv[None], fx=f, fy=f, cx=c[0] + 0.5, cy=c[1] + 0.5, height=H, width=W)
    rays = rays_for_image(cams)
    # pixelNeRF's gen_rays: OpenGL camera direction ((i - cx) / f, -(j - cy) / f, -1), normalised.
    j, i = torch.meshgrid(
        torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
    )
    d_gl = torch.stack([(i - c[0]) / f, -(j - c[1]) / f, -torch.ones_like(i)], -1).reshape(-1, 3)
    d_world = torch.nn.functional.normalize(d_gl @ opencv_to_opengl_c2w(c2w_cv)[:3, :3].T, dim=-1)
    assert torch.allclose(rays.viewdirs, d_world, atol=1e-6)
    assert torch.allclose(rays.origins, c2w_cv[:3, 3].expand(H * W, 3))


def test_render_config_from_published_blocks():
    srn = render_config(load_config("srn").renderer, NEAR, FAR)
    assert (srn.sampler, srn.distance, srn.last_interval, srn.transmittance) == (
        "pixelnerf",
        "metric",
        "far",
        "product",
    )
    assert (srn.n_coarse, srn.n_fine, srn.n_fine_depth, srn.depth_std) == (64, 32, 16, 0.01)
    assert srn.jitter and not srn.deterministic_fine and not srn.normalize_depth
    assert (
        srn.background == (1.0, 1.0, 1.0) and srn.field_chunk == 100000 and (srn.near, srn.far) == (NEAR, FAR)
    )
    dtu = render_config(load_config("dtu").renderer, 0.1, 5.0, deterministic=True, ray_batch_size=7)
    assert dtu.background == (0.0, 0.0, 0.0) and dtu.chunk == 7
    assert not dtu.jitter and dtu.deterministic_fine
    custom = render_config(RendererConfig(n_fine=8, n_fine_depth=0, lindisp=True), 1.0, 2.0, n_coarse=16)
    assert (custom.n_coarse, custom.n_fine, custom.n_fine_depth, custom.lindisp) == (16, 8, 0, True)
