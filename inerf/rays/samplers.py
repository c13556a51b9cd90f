"""Samplers along rays: stratified (uniform bins with jitter) and hierarchical importance sampling."""

from __future__ import annotations

import torch


def stratified_samples(
    near,
    far,
    n_samples: int,
    n_rays: int | tuple = (),
    *,
    jitter: bool = False,
    device=None,
    dtype=torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample distances ``t`` in ``[near, far]``: one per equal-width bin.

    Args:
        near, far: floats or tensors broadcastable to ``[*n_rays]``.
        n_samples: samples per ray.
        n_rays: leading shape (int or tuple).
        jitter: if False, samples sit at bin edges starting at ``near`` and ending at ``far`` (the
            deterministic NeRF "linspace" layout); if True, one uniform sample inside each bin.
    Returns:
        ``[*n_rays, n_samples]`` increasing distances.
    """
    shape = (n_rays,) if isinstance(n_rays, int) else tuple(n_rays)
    near = torch.as_tensor(near, dtype=dtype, device=device)
    far = torch.as_tensor(far, dtype=dtype, device=device)
    s = torch.linspace(0.0, 1.0, n_samples, dtype=dtype, device=device)
    t = near[..., None] * (1 - s) + far[..., None] * s
    t = t.expand(*shape, n_samples)
    if jitter:
        mids = 0.5 * (t[..., 1:] + t[..., :-1])
        upper = torch.cat([mids, t[..., -1:]], -1)
        lower = torch.cat([t[..., :1], mids], -1)
        u = torch.rand(t.shape, dtype=dtype, device=device, generator=generator)
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
        u = torch.rand(shape, dtype=cdf.dtype, device=cdf.device, generator=generator)
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
