"""pixelNeRF's volume renderer: samplers, pure compositing functions, and ray/image drivers.

Rays are ``origins [SB, B, 3]`` and **unit** ``directions [SB, B, 3]`` in world space, with ``near``/``far``
distances along the ray (``t``, metric because directions are unit). ``SB`` is the number of encoded
objects (the field's first dimension).

Sampling as published, for every ray (``s`` is the normalised position in [0, 1] between near and far):

1. ``n_coarse`` (64) stratified samples ``s_i = (i + U_i) / n_coarse``; the coarse network composites them.
2. ``n_fine - n_fine_depth`` (16) importance samples: a bin of the **uniform** grid ``[i, i + 1] / n_coarse``
   is drawn with probability proportional to ``w_i + 1e-5`` (coarse weights, detached), then a uniform
   position inside it.
3. ``n_fine_depth`` (16) samples ``t = depth_coarse + N(0, depth_std^2)``, clamped to [near, far].
4. The fine network composites **all** samples (64 + 16 + 16 = 96), sorted.

The published renderer is always stochastic (also at test time). ``deterministic=True`` replaces every
random number by a fixed quantile: bin mid-points, evenly spaced importance quantiles ``(k + 0.5) / n``
landing in bin centres, and Gaussian quantiles ``Phi^-1((k + 0.5) / n)`` for the depth samples. A seeded
``generator`` instead keeps the published distribution but makes it repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER
from inerf.pixelnerf.config import RendererConfig
from inerf.rays.rays import rays_from_pixels

__all__ = [
    "CompositeOutput",
    "Field",
    "RenderOutput",
    "alphas",
    "camera_rays",
    "composite",
    "depth_guided_distances",
    "importance_positions",
    "positions_to_distances",
    "render_rays",
    "render_views",
    "stratified_positions",
    "transmittance",
]

Field = Callable[..., torch.Tensor]
"""``field(xyz [SB, N, 3], coarse=bool, viewdirs=[SB, N, 3]) -> [SB, N, 4]`` (r, g, b, sigma); e.g. an
encoded :class:`~inerf.pixelnerf.model.PixelNeRF`."""


def _uniform(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)


# ------------------------------------------------------------------------------------------------------
# Samplers (positions s in [0, 1] between near and far)
# ------------------------------------------------------------------------------------------------------
def stratified_positions(
    batch_shape,
    n: int,
    like: torch.Tensor,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Increasing positions ``s_i = (i + U_i) / n`` ``[*batch_shape, n]``; ``U_i = 0.5`` if deterministic."""
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    jitter = (
        torch.full((*batch_shape, n), 0.5, dtype=like.dtype, device=like.device)
        if deterministic
        else _uniform((*batch_shape, n), like, generator)
    )
    return (i + jitter) / n


def positions_to_distances(s: torch.Tensor, near, far, lindisp: bool = False) -> torch.Tensor:
    """Normalised positions ``[..., K]`` -> ray distances ``t = near (1 - s) + far s`` (or linear in 1 / t).

    ``near``, ``far``: floats or tensors broadcastable to ``s.shape[:-1]``.
    """
    near, far = _as_bound(near, s), _as_bound(far, s)
    if lindisp:
        return 1.0 / (1.0 / near * (1.0 - s) + 1.0 / far * s)
    return near * (1.0 - s) + far * s


def _as_bound(b, like: torch.Tensor) -> torch.Tensor:
    b = torch.as_tensor(b, dtype=like.dtype, device=like.device)
    return b[..., None] if b.ndim > 0 else b


def importance_positions(
    weights: torch.Tensor, n: int, deterministic: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``n`` positions from the piecewise-constant pdf of ``K`` coarse weights over uniform bins.

    Args:
        weights: ``[..., K]`` compositing weights of the coarse samples (detached here: sampling is not
            differentiated). Bin ``i`` is ``[i / K, (i + 1) / K]`` -- the uniform grid, not the jittered
            coarse positions, as published.
    Returns:
        ``[..., n]`` positions in [0, 1] (unsorted).
    """
    K = weights.shape[-1]
    w = weights.detach() + 1e-5  # keeps every bin reachable and the pdf finite for empty rays
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, -1)], -1)  # [..., K + 1]
    batch = weights.shape[:-1]
    if deterministic:
        u = ((torch.arange(n, dtype=w.dtype, device=w.device) + 0.5) / n).expand(*batch, n).contiguous()
        offset = torch.full_like(u, 0.5)
    else:
        u = _uniform((*batch, n), w, generator)
        offset = _uniform((*batch, n), w, generator)
    # Upper clamp (not in the published code): cdf[-1] can round below u, which would index bin K.
    idx = (torch.searchsorted(cdf, u, right=True) - 1).clamp(0, K - 1)
    return (idx.to(w.dtype) + offset) / K


def depth_guided_distances(
    depth: torch.Tensor,
    n: int,
    std: float,
    near,
    far,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[..., n]`` distances ``depth + N(0, std^2)`` clamped to [near, far] (``depth [...]``, not detached).

    Deterministic: the Gaussian quantiles ``std Phi^-1((k + 0.5) / n)``.
    """
    if deterministic:
        q = (torch.arange(n, dtype=depth.dtype, device=depth.device) + 0.5) / n
        noise = torch.special.ndtri(q).expand(*depth.shape, n)
    else:
        noise = torch.randn((*depth.shape, n), dtype=depth.dtype, device=depth.device, generator=generator)
    t = depth[..., None] + std * noise
    near, far = _as_bound(near, t[..., 0]), _as_bound(far, t[..., 0])
    return torch.maximum(torch.minimum(t, far), near)


# ------------------------------------------------------------------------------------------------------
# Compositing (pure functions)
# ------------------------------------------------------------------------------------------------------
def alphas(sigma: torch.Tensor, t: torch.Tensor, far) -> torch.Tensor:
    """Opacity ``alpha_i = 1 - exp(-delta_i relu(sigma_i))`` of sorted samples ``t [..., K]``.

    ``delta_i = t_{i+1} - t_i`` and, for the last sample, ``far - t_last`` (published; not 1e10, so a ray
    that is empty up to ``far`` stays transparent).
    """
    far = _as_bound(far, t)
    deltas = torch.cat([t[..., 1:] - t[..., :-1], far - t[..., -1:]], dim=-1)
    return 1.0 - torch.exp(-deltas * torch.relu(sigma))


def transmittance(alpha: torch.Tensor) -> torch.Tensor:
    """``T_i = prod_{j < i} (1 - alpha_j + 1e-10)`` (``T_0 = 1``); the 1e-10 is published (it keeps the
    product's gradient finite when some ``alpha_j = 1``)."""
    trans = torch.cumprod(1.0 - alpha + 1e-10, dim=-1)
    return torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], dim=-1)


@dataclass
class CompositeOutput:
    """One rendering pass."""

    rgb: torch.Tensor
    """``[..., 3]`` composited colour (background added)."""
    depth: torch.Tensor
    """``[...]`` expected distance ``sum_i w_i t_i`` (not normalised by the accumulated opacity)."""
    weights: torch.Tensor
    """``[..., K]`` compositing weights ``w_i = T_i alpha_i``."""
    t: torch.Tensor
    """``[..., K]`` sample distances."""


def composite(
    rgb: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor, far, white_background: bool
) -> CompositeOutput:
    """Volume rendering of sorted samples.

    ``w_i = T_i alpha_i`` (see :func:`alphas`, :func:`transmittance`); ``C = sum_i w_i c_i (+ 1 - sum_i w_i``
    on a white background). Example: one sample with ``sigma = inf`` at ``t_0`` gives ``w = [1, 0, ...]``,
    ``C = c_0``, depth ``t_0``.

    Args:
        rgb: ``[..., K, 3]``; sigma: ``[..., K]``; t: ``[..., K]`` sorted distances; far: ``[...]`` or float.
    """
    alpha = alphas(sigma, t, far)
    weights = alpha * transmittance(alpha)
    color = (weights[..., None] * rgb).sum(-2)
    depth = (weights * t).sum(-1)
    if white_background:
        color = color + (1.0 - weights.sum(-1, keepdim=True))
    return CompositeOutput(rgb=color, depth=depth, weights=weights, t=t)


# ------------------------------------------------------------------------------------------------------
# Rays
# ------------------------------------------------------------------------------------------------------
@dataclass
class RenderOutput:
    """Both passes of :func:`render_rays`."""

    coarse: CompositeOutput
    fine: CompositeOutput | None
    """None when ``n_fine == 0``."""

    @property
    def final(self) -> CompositeOutput:
        """The fine pass if any, else the coarse one (what the published ``simple_output`` returns)."""
        return self.fine if self.fine is not None else self.coarse


def _evaluate(field: Field, origins, directions, t, coarse: bool, eval_batch_size: int) -> torch.Tensor:
    """Field at ``origins + t directions``; ``t [SB, B, K]`` -> ``[SB, B, K, 4]``, chunked over points."""
    SB, B, K = t.shape
    xyz = (origins[:, :, None, :] + t[..., None] * directions[:, :, None, :]).reshape(SB, B * K, 3)
    dirs = directions[:, :, None, :].expand(SB, B, K, 3).reshape(SB, B * K, 3)
    chunk = max(1, math.ceil(eval_batch_size / SB))  # points per call, over all SB objects
    out = [
        field(xyz[:, i : i + chunk], coarse=coarse, viewdirs=dirs[:, i : i + chunk])
        for i in range(0, B * K, chunk)
    ]
    return torch.cat(out, dim=1).reshape(SB, B, K, -1)


def render_rays(
    field: Field,
    origins: torch.Tensor,
    directions: torch.Tensor,
    near,
    far,
    config: RendererConfig | None = None,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    sigma_noise_std: float = 0.0,
) -> RenderOutput:
    """Render rays with pixelNeRF's coarse-to-fine sampling.

    Args:
        field: an encoded pixelNeRF (or any :data:`Field`).
        origins: ``[SB, B, 3]`` world ray origins; directions: ``[SB, B, 3]`` **unit** world directions.
        near, far: floats or ``[SB, B]`` distances along the ray.
        config: sample counts, ``depth_std``, background colour, ``eval_batch_size`` (default: published).
        deterministic: quantiles instead of random numbers (for tests and smooth pose losses).
        generator: seeded RNG for the stochastic (published) mode.
        sigma_noise_std: Gaussian noise added to sigma before compositing (training regulariser; 0 here).
    """
    if origins.ndim != 3 or origins.shape != directions.shape or origins.shape[-1] != 3:
        raise ValueError(
            f"origins and directions must both be [SB, B, 3], got {tuple(origins.shape)} and "
            f"{tuple(directions.shape)}"
        )
    SB, B, _ = origins.shape
    cfg = config if config is not None else RendererConfig()

    def run(t, coarse):
        out = _evaluate(field, origins, directions, t, coarse, cfg.eval_batch_size)
        sigma = out[..., 3]
        if sigma_noise_std > 0:
            sigma = sigma + sigma_noise_std * torch.randn(
                sigma.shape, dtype=sigma.dtype, device=sigma.device, generator=generator
            )
        return composite(out[..., :3], sigma, t, far, cfg.white_bkgd)

    s_coarse = stratified_positions((SB, B), cfg.n_coarse, origins, deterministic, generator)
    t_coarse = positions_to_distances(s_coarse, near, far, cfg.lindisp)
    coarse = run(t_coarse, coarse=True)
    if cfg.n_fine <= 0:
        return RenderOutput(coarse=coarse, fine=None)

    parts = [t_coarse]
    n_importance = cfg.n_fine - cfg.n_fine_depth
    if n_importance > 0:
        s_imp = importance_positions(coarse.weights, n_importance, deterministic, generator)
        parts.append(positions_to_distances(s_imp, near, far, cfg.lindisp))
    if cfg.n_fine_depth > 0:
        parts.append(
            depth_guided_distances(
                coarse.depth, cfg.n_fine_depth, cfg.depth_std, near, far, deterministic, generator
            )
        )
    t_fine, _ = torch.sort(torch.cat(parts, dim=-1), dim=-1)
    return RenderOutput(coarse=coarse, fine=run(t_fine, coarse=False))


def camera_rays(cameras: Cameras, pixels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays through pixels of cameras in inerf's convention (OpenCV c2w, pixel centres at +0.5).

    Args:
        cameras: ``N`` cameras.
        pixels: ``[N, P, 2]`` continuous image coordinates (u right, v down; the centre of pixel (i, j) is
            (i + 0.5, j + 0.5)), or None for the centre of every pixel, row-major (``P = H W``).
    Returns:
        ``origins [N, P, 3]`` and **unit** ``directions [N, P, 3]`` (pixelNeRF's ray distances are metric).
    """
    c2w = cameras.c2w
    if pixels is None:
        grid = cameras.pixel_grid(device=c2w.device).to(c2w.dtype) + PIXEL_CENTER  # [H, W, 2]
        pixels = grid.reshape(1, -1, 2).expand(len(cameras), -1, 2)
    rays = rays_from_pixels(pixels, c2w, cameras.fx, cameras.fy, cameras.cx, cameras.cy, centered=False)
    return rays.origins, rays.viewdirs


def render_views(
    field: Field,
    cameras: Cameras,
    near,
    far,
    config: RendererConfig | None = None,
    ray_batch_size: int = 50000,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render whole images of **one** encoded object from each camera (rays chunked by ``ray_batch_size``).

    Returns:
        ``rgb [N, H, W, 3]`` (final pass) and ``depth [N, H, W]``.
    """
    rgbs, depths = [], []
    for k in range(len(cameras)):
        origins, directions = camera_rays(cameras[k])
        rgb, depth = [], []
        for i in range(0, origins.shape[1], ray_batch_size):
            out = render_rays(
                field,
                origins[:, i : i + ray_batch_size],
                directions[:, i : i + ray_batch_size],
                near,
                far,
                config,
                deterministic,
                generator,
            ).final
            rgb.append(out.rgb)
            depth.append(out.depth)
        rgbs.append(torch.cat(rgb, 1).reshape(cameras.height, cameras.width, 3))
        depths.append(torch.cat(depth, 1).reshape(cameras.height, cameras.width))
    return torch.stack(rgbs), torch.stack(depths)
