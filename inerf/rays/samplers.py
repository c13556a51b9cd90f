"""Samplers along rays: where each rendering pass evaluates the field.

A sampler has two stages, used by :func:`inerf.render.renderer.render_rays` for every field:

* ``coarse(near, far, shape, ...)`` -> sorted distances ``t [*shape, n_coarse]``;
* ``fine(t_coarse, weights, depth, near, far, ...)`` -> the sorted distances of the fine pass, given the
  coarse pass's compositing weights ``[*shape, n_coarse]`` and its (unnormalised) expected depth
  ``sum_i w_i t_i`` ``[*shape]``.

Two samplers, selected by ``RenderConfig.sampler``:

* :class:`NeRFSampler` (NeRF, Mildenhall et al. 2020 §5.2): ``n_coarse`` samples at the bin edges of
  ``[near, far]`` (``linspace``, first at ``near``, last at ``far``), or jittered inside bins around them;
  ``n_fine`` importance samples from the piecewise-constant pdf on the bins between coarse mid-points.
* :class:`PixelNeRFSampler` (pixelNeRF, Yu et al. 2021, as published): ``n_coarse`` stratified samples
  ``s_i = (i + U_i) / n_coarse`` of the normalised position ``s`` in ``[0, 1]``; then ``n_importance`` samples
  on the **uniform** bins ``[i, i + 1] / n_coarse`` drawn with probability ``w_i + 1e-5`` (not on the
  jittered coarse positions), and ``n_depth`` samples ``t = depth + N(0, depth_std^2)`` clamped to
  ``[near, far]``; the fine pass evaluates all ``n_coarse + n_importance + n_depth`` samples, sorted. Its
  deterministic variant replaces every random number by a quantile (bin mid-points, importance quantiles
  ``(k + 0.5) / n`` landing at bin centres, Gaussian quantiles ``Phi^-1((k + 0.5) / n)``); a seeded
  ``generator`` keeps the published distribution but makes it repeatable.

The samplers only place samples: the compositing weights they are given are detached here, except that
pixelNeRF's depth-guided samples follow the coarse depth (not detached, as published).

Random numbers come from ``generator``: a ``torch.Generator``, or a :class:`inerf.tensors.RowSlice` when a
process renders only some rays (or objects) of a batch, which gives them the numbers the whole batch's draw
gives them (every draw here has the rays, or the objects, as its leading dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inerf.tensors import constant, rand, randn

__all__ = [
    "NeRFSampler",
    "PixelNeRFSampler",
    "depth_guided_samples",
    "importance_positions",
    "importance_samples",
    "positions_to_distances",
    "sample_pdf",
    "stratified_positions",
    "stratified_samples",
]


def stratified_samples(
    near,
    far,
    n_samples: int,
    n_rays: int | tuple = (),
    *,
    jitter: bool = False,
    lindisp: bool = False,
    device=None,
    dtype=torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample distances ``t`` in ``[near, far]``: one per equal-width bin (NeRF's layout).

    Args:
        near, far: floats or tensors broadcastable to ``[*n_rays]``.
        n_samples: samples per ray.
        n_rays: leading shape (int or tuple).
        jitter: if False, samples sit at bin edges starting at ``near`` and ending at ``far`` (the
            deterministic NeRF "linspace" layout); if True, one uniform sample inside each bin.
        lindisp: equal-width bins in disparity 1 / t instead of in t.
    Returns:
        ``[*n_rays, n_samples]`` increasing distances.
    """
    shape = (n_rays,) if isinstance(n_rays, int) else tuple(n_rays)
    near = constant(near, dtype, device)
    far = constant(far, dtype, device)
    s = torch.linspace(0.0, 1.0, n_samples, dtype=dtype, device=device)
    if lindisp:
        t = 1.0 / (1.0 / near[..., None] * (1 - s) + 1.0 / far[..., None] * s)
    else:
        t = near[..., None] * (1 - s) + far[..., None] * s
    t = t.expand(*shape, n_samples)
    if jitter:
        mids = 0.5 * (t[..., 1:] + t[..., :-1])
        upper = torch.cat([mids, t[..., -1:]], -1)
        lower = torch.cat([t[..., :1], mids], -1)
        u = rand(t.shape, dtype=dtype, device=device, generator=generator)
        t = lower + (upper - lower) * u
    return t.contiguous()


def sample_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    *,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverse-transform sampling of a piecewise-constant PDF.

    Args:
        bins: ``[..., M + 1]`` bin edges (increasing).
        weights: ``[..., M]`` non-negative bin weights (need not be normalised).
        n_samples: how many samples per ray.
        deterministic: evenly spaced quantiles (for evaluation and tests) instead of uniform random ones.
    Returns:
        ``[..., n_samples]`` samples, detached (the coarse weights only guide where to look).
    """
    weights = weights.detach() + 1e-5  # keep the CDF strictly increasing where the density is zero
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
    shape = (*cdf.shape[:-1], n_samples)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n_samples, dtype=cdf.dtype, device=cdf.device).expand(shape)
    else:
        u = rand(shape, dtype=cdf.dtype, device=cdf.device, generator=generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)
    below = (idx - 1).clamp(min=0)
    above = idx.clamp(max=cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = torch.gather(cdf, -1, below), torch.gather(cdf, -1, above)
    bin_lo, bin_hi = torch.gather(bins.detach(), -1, below), torch.gather(bins.detach(), -1, above)
    denom = cdf_hi - cdf_lo
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)  # flat CDF: take the bin start
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def importance_samples(
    t_coarse: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    *,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hierarchical sampling (NeRF §5.2): draw ``n_samples`` new distances from the coarse weights and
    return them merged and sorted with the coarse ones, ``[..., n_coarse + n_samples]``.

    The PDF lives on the bins between the midpoints of the coarse samples; the two end samples (whose
    bins would be half-open) are excluded from the weights, as in the original implementation.
    """
    mids = 0.5 * (t_coarse[..., 1:] + t_coarse[..., :-1])
    new = sample_pdf(mids, weights[..., 1:-1], n_samples, deterministic=deterministic, generator=generator)
    t, _ = torch.sort(torch.cat([t_coarse, new], -1), -1)
    return t


# ------------------------------------------------------------------------------------------------------
# pixelNeRF's sampling (normalised positions s in [0, 1] between near and far)
# ------------------------------------------------------------------------------------------------------
def _uniform(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return rand(shape, dtype=like.dtype, device=like.device, generator=generator)


def _as_bound(b, like: torch.Tensor) -> torch.Tensor:
    """A float or per-ray ``[...]`` bound, broadcastable against ``like [..., K]``."""
    b = constant(b, like.dtype, like.device)
    return b[..., None] if b.ndim > 0 else b


def stratified_positions(
    batch_shape,
    n: int,
    like: torch.Tensor,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Increasing positions ``s_i = (i + U_i) / n`` ``[*batch_shape, n]``; ``U_i = 0.5`` if deterministic.

    ``like`` gives the dtype and device.
    """
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


def depth_guided_samples(
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
        noise = randn((*depth.shape, n), dtype=depth.dtype, device=depth.device, generator=generator)
    t = depth[..., None] + std * noise
    near, far = _as_bound(near, t[..., 0]), _as_bound(far, t[..., 0])
    return torch.maximum(torch.minimum(t, far), near)


# ------------------------------------------------------------------------------------------------------
# The two samplers
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NeRFSampler:
    """NeRF's hierarchical sampling (see the module docstring)."""

    n_coarse: int
    """Samples per ray of the coarse pass."""
    n_fine: int
    """Importance samples added for the fine pass."""
    jitter: bool = False
    """Jitter the coarse samples inside their bins (else at the bin edges, ``linspace(near, far)``)."""
    deterministic: bool = True
    """Evenly spaced importance quantiles (else uniform random ones)."""
    lindisp: bool = False
    """Coarse bins of equal width in disparity 1 / t."""

    def coarse(self, near, far, shape, *, like: torch.Tensor, generator=None) -> torch.Tensor:
        """``[*shape, n_coarse]`` sorted distances (``like``: dtype and device)."""
        return stratified_samples(
            near,
            far,
            self.n_coarse,
            shape,
            jitter=self.jitter,
            lindisp=self.lindisp,
            device=like.device,
            dtype=like.dtype,
            generator=generator,
        )

    def fine(self, t_coarse, weights, depth, near, far, *, generator=None) -> torch.Tensor:
        """``[*shape, n_coarse + n_fine]``: the coarse samples and the importance samples, sorted."""
        return importance_samples(
            t_coarse, weights, self.n_fine, deterministic=self.deterministic, generator=generator
        )


@dataclass(frozen=True)
class PixelNeRFSampler:
    """pixelNeRF's published sampling (see the module docstring)."""

    n_coarse: int = 64
    """Stratified samples per ray of the coarse pass."""
    n_importance: int = 16
    """Samples drawn from the coarse weights over the uniform bins."""
    n_depth: int = 16
    """Samples drawn from N(coarse depth, depth_std^2), clamped to [near, far]."""
    depth_std: float = 0.01
    """Standard deviation of the depth-guided samples (units of t)."""
    jitter: bool = True
    """Random positions inside the coarse strata (published; always on), else their mid-points."""
    deterministic: bool = False
    """Quantiles instead of random numbers for the importance and depth-guided samples."""
    lindisp: bool = False
    """Positions linear in disparity 1 / t (off for every published dataset)."""

    def coarse(self, near, far, shape, *, like: torch.Tensor, generator=None) -> torch.Tensor:
        """``[*shape, n_coarse]`` sorted distances (``like``: dtype and device)."""
        s = stratified_positions(tuple(shape), self.n_coarse, like, not self.jitter, generator)
        return positions_to_distances(s, near, far, self.lindisp)

    def fine(self, t_coarse, weights, depth, near, far, *, generator=None) -> torch.Tensor:
        """All coarse, importance and depth-guided samples, sorted: ``[*shape, n_coarse + n_importance +
        n_depth]``. ``depth [*shape]`` is the coarse pass's unnormalised ``sum_i w_i t_i``."""
        parts = [t_coarse]
        if self.n_importance > 0:
            s = importance_positions(weights, self.n_importance, self.deterministic, generator)
            parts.append(positions_to_distances(s, near, far, self.lindisp))
        if self.n_depth > 0:
            parts.append(
                depth_guided_samples(
                    depth, self.n_depth, self.depth_std, near, far, self.deterministic, generator
                )
            )
        return torch.sort(torch.cat(parts, -1), -1).values
