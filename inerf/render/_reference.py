"""Slow, self-contained references of the fast rendering paths (tested against them; not used in production).

:func:`published_render_rays` is pixelNeRF's published renderer written out in its own terms (normalised
positions in [0, 1], a field returning ``[SB, B, 4]``), with its own samplers and compositing, none shared
with :mod:`inerf.rays.samplers` or :mod:`inerf.render.volrend`:

1. ``n_coarse`` stratified positions ``s_i = (i + U_i) / n_coarse``, ``t = near (1 - s) + far s``; the coarse
   network composites them.
2. ``n_fine - n_fine_depth`` positions on the **uniform** bins ``[i, i + 1] / n_coarse``, bin ``i`` drawn with
   probability ``w_i + 1e-5`` (coarse weights), then a uniform position inside the bin.
3. ``n_fine_depth`` distances ``depth_coarse + N(0, depth_std^2)`` clamped to ``[near, far]``.
4. The fine network composites all samples, sorted.

Compositing: ``delta_i = t_{i+1} - t_i`` and ``far - t_last`` for the last sample (closed at ``far``),
``alpha_i = 1 - exp(-delta_i relu(sigma_i))``, ``T_i = prod_{j<i} (1 - alpha_j + 1e-10)``,
``w_i = T_i alpha_i``, ``C = sum w_i c_i (+ 1 - sum w_i`` on white), depth ``sum w_i t_i`` (not
normalised). Directions are unit, so ``t`` is a distance. ``deterministic`` replaces each random number
by its quantile (``U = 0.5``, importance quantiles ``(k + 0.5) / n``, Gaussian quantiles
``Phi^-1((k + 0.5) / n)``); a seeded ``generator`` is drawn in the published order (coarse jitter,
importance ``u`` then offsets, depth noise).

This is the renderer that ``inerf.pixelnerf.renderer`` implemented before the shared core replaced it; the
tests check that :func:`inerf.render.renderer.render_rays` with ``RenderConfig.pixelnerf`` equals it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from inerf.geometry.cameras import Cameras
from inerf.rays.rays import rays_for_image

__all__ = ["published_render_image", "published_render_rays"]

PublishedField = Callable[..., torch.Tensor]
"""``field(xyz [SB, N, 3], coarse=bool, viewdirs=[SB, N, 3]) -> [SB, N, 4]`` (r, g, b, sigma)."""


def _rand(shape, like, generator):
    return torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)


def _bound(b, like):
    b = torch.as_tensor(b, dtype=like.dtype, device=like.device)
    return b[..., None] if b.ndim > 0 else b


def _to_t(s, near, far, lindisp):
    near, far = _bound(near, s), _bound(far, s)
    return 1.0 / (1.0 / near * (1.0 - s) + 1.0 / far * s) if lindisp else near * (1.0 - s) + far * s


def _composite(rgb, sigma, t, far, white_bkgd):
    """One pass: ``(colour [..., 3], depth [...], weights [..., K])``."""
    deltas = torch.cat([t[..., 1:] - t[..., :-1], _bound(far, t) - t[..., -1:]], -1)
    alpha = 1.0 - torch.exp(-deltas * torch.relu(sigma))
    trans = torch.cumprod(1.0 - alpha + 1e-10, -1)
    weights = alpha * torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], -1)
    color = (weights[..., None] * rgb).sum(-2)
    if white_bkgd:
        color = color + (1.0 - weights.sum(-1, keepdim=True))
    return color, (weights * t).sum(-1), weights


def _quantiles(shape, n: int, like: torch.Tensor) -> torch.Tensor:
    """``(k + 0.5) / n`` for k = 0..n-1, broadcast to ``[*shape, n]``."""
    q = (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) / n
    return q.expand(*shape, n).contiguous()


def _importance_positions(w_coarse, n, deterministic, generator):
    """``[..., n]`` positions: a uniform bin ``[i, i + 1] / K`` drawn by ``w_i + 1e-5``, then a point in it."""
    K = w_coarse.shape[-1]
    w = w_coarse.detach() + 1e-5
    cdf = torch.cat([torch.zeros_like(w[..., :1]), torch.cumsum(w / w.sum(-1, keepdim=True), -1)], -1)
    batch = w.shape[:-1]
    if deterministic:
        u, offset = _quantiles(batch, n, w), torch.full((*batch, n), 0.5, dtype=w.dtype, device=w.device)
    else:
        u, offset = _rand((*batch, n), w, generator), _rand((*batch, n), w, generator)
    idx = (torch.searchsorted(cdf, u, right=True) - 1).clamp(0, K - 1)
    return (idx.to(w.dtype) + offset) / K


def _depth_guided(depth, n, std, near, far, deterministic, generator):
    """``[..., n]`` distances ``depth + N(0, std^2)`` clamped to ``[near, far]``."""
    if deterministic:
        noise = torch.special.ndtri(_quantiles(depth.shape, n, depth))
    else:
        noise = torch.randn((*depth.shape, n), dtype=depth.dtype, device=depth.device, generator=generator)
    t = depth[..., None] + std * noise
    return torch.maximum(torch.minimum(t, _bound(far, t[..., 0])), _bound(near, t[..., 0]))


def published_render_rays(
    field: PublishedField,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near,
    far,
    *,
    n_coarse: int = 64,
    n_fine: int = 32,
    n_fine_depth: int = 16,
    depth_std: float = 0.01,
    white_bkgd: bool = True,
    lindisp: bool = False,
    eval_batch_size: int = 100000,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Render ``origins``, unit ``directions`` ``[SB, B, 3]`` (near, far: floats or ``[SB, B]``).

    Returns ``rgb [SB, B, 3]``, ``depth [SB, B]`` of the final pass, ``rgb_coarse``, ``depth_coarse``, and the
    final pass's ``weights`` and ``t`` ``[SB, B, K]``.
    """
    SB, B, _ = origins.shape

    def run(t, coarse):
        K = t.shape[-1]
        xyz = (origins[:, :, None] + t[..., None] * directions[:, :, None]).reshape(SB, B * K, 3)
        dirs = directions[:, :, None].expand(SB, B, K, 3).reshape(SB, B * K, 3)
        chunk = max(1, math.ceil(eval_batch_size / SB))  # points per network call, over all SB objects
        calls = [
            field(xyz[:, i : i + chunk], coarse=coarse, viewdirs=dirs[:, i : i + chunk])
            for i in range(0, B * K, chunk)
        ]
        out = torch.cat(calls, 1).reshape(SB, B, K, -1)
        return _composite(out[..., :3], out[..., 3], t, far, white_bkgd)

    if deterministic:
        u = torch.full((SB, B, n_coarse), 0.5, dtype=origins.dtype, device=origins.device)
    else:
        u = _rand((SB, B, n_coarse), origins, generator)
    s = (torch.arange(n_coarse, dtype=origins.dtype, device=origins.device) + u) / n_coarse
    t_coarse = _to_t(s, near, far, lindisp)
    rgb_c, depth_c, w_c = run(t_coarse, True)
    result = {"rgb_coarse": rgb_c, "depth_coarse": depth_c}
    if n_fine <= 0:
        return {**result, "rgb": rgb_c, "depth": depth_c, "weights": w_c, "t": t_coarse}
    parts = [t_coarse]
    if n_fine > n_fine_depth:
        s = _importance_positions(w_c, n_fine - n_fine_depth, deterministic, generator)
        parts.append(_to_t(s, near, far, lindisp))
    if n_fine_depth > 0:
        parts.append(_depth_guided(depth_c, n_fine_depth, depth_std, near, far, deterministic, generator))
    t_fine = torch.sort(torch.cat(parts, -1), -1).values
    rgb_f, depth_f, w_f = run(t_fine, False)
    return {**result, "rgb": rgb_f, "depth": depth_f, "weights": w_f, "t": t_fine}


@torch.no_grad()
def published_render_image(
    field: PublishedField, camera: Cameras, near, far, *, ray_batch_size: int = 50000, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole image of camera 0 for **one** encoded object, rays chunked by ``ray_batch_size`` (the generator,
    if any, is drawn from chunk by chunk). Returns ``rgb [H, W, 3]``, ``depth [H, W]``; ``kwargs`` go to
    :func:`published_render_rays`. Rays through inerf's pixel centres with unit directions."""
    rays = rays_for_image(camera)
    origins, directions = rays.origins[None], rays.viewdirs[None]
    rgb, depth = [], []
    for i in range(0, origins.shape[1], ray_batch_size):
        out = published_render_rays(
            field,
            origins[:, i : i + ray_batch_size],
            directions[:, i : i + ray_batch_size],
            near,
            far,
            **kwargs,
        )
        rgb.append(out["rgb"][0])
        depth.append(out["depth"][0])
    return (
        torch.cat(rgb).reshape(camera.height, camera.width, 3),
        torch.cat(depth).reshape(camera.height, camera.width),
    )
