"""Render rays through radiance fields: sample, query, composite; chunked image rendering."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

import torch

from inerf.fields.base import RadianceField
from inerf.geometry.cameras import Cameras
from inerf.rays.rays import Rays, rays_for_image
from inerf.rays.samplers import importance_samples, stratified_samples
from inerf.render import volrend


@dataclass
class RenderConfig:
    """How rays are sampled and composited."""

    n_coarse: int = 64
    """Stratified samples per ray (coarse pass)."""
    n_fine: int = 128
    """Importance samples per ray added for the fine pass (0 = single pass)."""
    near: float = 2.0
    """Start of the ray segment (z-depth in scene units)."""
    far: float = 6.0
    """End of the ray segment."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour behind the scene (white for Blender scenes composited on white)."""
    jitter: bool = False
    """Jitter coarse samples inside their bins (training); off for evaluation and pose estimation."""
    deterministic_fine: bool = True
    """Evenly spaced quantiles for importance sampling (random ones if False)."""
    chunk: int = 8192
    """Rays per forward pass in :func:`render_image`."""
    coarse_grad: bool = True
    """Keep the coarse pass in the autograd graph. Pose solves that score only the fine colours turn it
    off: the coarse pass then only places the fine samples, and its graph would cost ~25% more memory."""


@dataclass
class RenderOutput:
    """Per-ray results, each ``[..., ...]`` with the rays' leading shape."""

    rgb: torch.Tensor
    """``[..., 3]`` colour of the final pass."""
    depth: torch.Tensor
    """``[...]`` expected z-depth of the final pass (normalised by opacity)."""
    acc: torch.Tensor
    """``[...]`` accumulated opacity of the final pass."""
    rgb_coarse: torch.Tensor | None = None
    """``[..., 3]`` colour of the coarse pass (only when there is a fine pass)."""
    extras: dict = dc_field(default_factory=dict)


def _shade(fld: RadianceField, rays: Rays, t: torch.Tensor, background):
    """Query the field at the samples ``t`` ``[R, S]`` of ``rays`` ``[R]`` and composite."""
    pts = rays.origins[..., None, :] + rays.directions[..., None, :] * t[..., None]
    dirs = rays.viewdirs[..., None, :].expand_as(pts)
    rgb, sigma = fld(pts.reshape(-1, 3), dirs.reshape(-1, 3))
    rgb = rgb.reshape(*t.shape, 3)
    sigma = sigma.reshape(t.shape)
    alpha = volrend.alpha_from_density(sigma, volrend.deltas(t, rays.directions))
    w = volrend.render_weights(alpha)
    return volrend.composite(w, rgb, background), w


def render_rays(
    coarse: RadianceField,
    rays: Rays,
    config: RenderConfig,
    fine: RadianceField | None = None,
    near: torch.Tensor | float | None = None,
    far: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> RenderOutput:
    """Render a flat batch of rays ``[R]``.

    With ``fine`` (or ``config.n_fine > 0`` and one shared field) a second pass evaluates the union of
    the coarse and importance samples, NeRF's hierarchical scheme. Gradients flow to the fields'
    parameters and to ``rays`` (so to a camera pose), not through the choice of sample positions.
    """
    n = rays.origins.shape[0]
    dev, dt = rays.origins.device, rays.origins.dtype
    near = config.near if near is None else near
    far = config.far if far is None else far
    t = stratified_samples(
        near, far, config.n_coarse, n, jitter=config.jitter, device=dev, dtype=dt, generator=generator
    )
    bg = torch.as_tensor(config.background, dtype=dt, device=dev)
    with torch.set_grad_enabled(torch.is_grad_enabled() and (config.coarse_grad or config.n_fine <= 0)):
        rgb_c, w_c = _shade(coarse, rays, t, bg)
    if config.n_fine <= 0:
        return RenderOutput(rgb_c, volrend.expected_depth(w_c, t, normalize=True), w_c.sum(-1))
    t_f = importance_samples(
        t, w_c, config.n_fine, deterministic=config.deterministic_fine, generator=generator
    )
    rgb_f, w_f = _shade(fine if fine is not None else coarse, rays, t_f, bg)
    return RenderOutput(
        rgb_f, volrend.expected_depth(w_f, t_f, normalize=True), w_f.sum(-1), rgb_coarse=rgb_c
    )


@torch.no_grad()
def render_image(
    coarse: RadianceField,
    camera: Cameras,
    config: RenderConfig,
    fine: RadianceField | None = None,
    progress: bool = False,
) -> RenderOutput:
    """Render the full ``H x W`` image of one camera (``camera[0]``), ``chunk`` rays at a time. Returns a
    :class:`RenderOutput` with ``rgb [H, W, 3]``, ``depth [H, W]``, ``acc [H, W]``.

    The chunked result equals rendering all rays at once (tested): chunks only bound memory.
    """
    height, width = camera.height, camera.width
    rays = rays_for_image(camera)
    outs = []
    starts = range(0, height * width, config.chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="render", leave=False, unit="chunk")
    for s in starts:
        outs.append(render_rays(coarse, rays[s : s + config.chunk], config, fine=fine))
    rgb = torch.cat([o.rgb for o in outs]).reshape(height, width, 3)
    depth = torch.cat([o.depth for o in outs]).reshape(height, width)
    acc = torch.cat([o.acc for o in outs]).reshape(height, width)
    return RenderOutput(rgb, depth, acc)
