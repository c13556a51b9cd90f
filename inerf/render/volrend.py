"""Volume rendering as pure tensor functions (NeRF, Mildenhall et al. 2020, eq. 3).

For samples ``t_1 < ... < t_N`` along a ray with densities ``sigma_i`` and colours ``c_i``:

    delta_i = t_{i+1} - t_i            (the last interval is open: 1e10, as in NeRF)
    alpha_i = 1 - exp(-sigma_i delta_i)
    T_i     = prod_{j<i} (1 - alpha_j)   (transmittance: the light that reaches sample i)
    w_i     = T_i alpha_i
    C       = sum_i w_i c_i + (1 - sum_i w_i) c_background

Worked example: alphas (0.5, 0.5) give T = (1, 0.5), w = (0.5, 0.25), accumulated opacity 0.75; over a
white background a red then green sample composite to (0.5, 0.25, 0) + 0.25 (1, 1, 1) = (0.75, 0.5, 0.25).
All functions take ``[..., N]`` (and ``[..., N, C]`` for colours) and are differentiable.
"""

from __future__ import annotations

import torch

__all__ = [
    "accumulated_opacity",
    "alpha_from_density",
    "composite",
    "deltas",
    "expected_depth",
    "render_weights",
    "transmittance",
]

FAR_DELTA = 1e10
"""Length of the last, open-ended interval (everything behind the last sample)."""


def deltas(t: torch.Tensor, directions: torch.Tensor | None = None) -> torch.Tensor:
    """Interval lengths ``[..., N]`` from sample distances ``t`` ``[..., N]``.

    If ``directions`` ``[..., 3]`` is given, intervals are scaled by its norm so they are metric lengths
    (our rays have unit z, not unit norm).
    """
    d = torch.cat([t[..., 1:] - t[..., :-1], torch.full_like(t[..., :1], FAR_DELTA)], -1)
    if directions is not None:
        d = d * directions.norm(dim=-1, keepdim=True)
    return d


def alpha_from_density(sigma: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """alpha_i = 1 - exp(-sigma_i delta_i), ``[..., N]``."""
    return 1.0 - torch.exp(-sigma * delta)


def transmittance(alpha: torch.Tensor) -> torch.Tensor:
    """T_i = prod_{j<i} (1 - alpha_j), ``[..., N]`` (T_1 = 1).

    Computed as exp(cumsum(log(1 - alpha))) shifted by one; the clamp keeps log finite when alpha = 1
    (an opaque sample), where the exact transmittance behind it is 0 anyway.
    """
    log_t = torch.cumsum(torch.log((1.0 - alpha).clamp_min(1e-10)), -1)
    log_t = torch.cat([torch.zeros_like(log_t[..., :1]), log_t[..., :-1]], -1)
    return torch.exp(log_t)


def render_weights(alpha: torch.Tensor) -> torch.Tensor:
    """w_i = T_i alpha_i, ``[..., N]``."""
    return transmittance(alpha) * alpha


def accumulated_opacity(weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i, ``[...]``: the ray's opacity (1 - transmittance behind the last sample)."""
    return weights.sum(-1)


def composite(
    weights: torch.Tensor, colors: torch.Tensor, background: torch.Tensor | float | None = None
) -> torch.Tensor:
    """C = sum_i w_i c_i + (1 - sum_i w_i) background.

    Args:
        weights: ``[..., N]``.
        colors: ``[..., N, C]``.
        background: ``[C]``, ``[..., C]`` or a float (1.0 = white, 0.0 = black); None means black.
    Returns:
        ``[..., C]``.
    """
    rgb = (weights[..., None] * colors).sum(-2)
    if background is not None:
        bg = torch.as_tensor(background, dtype=rgb.dtype, device=rgb.device)
        rgb = rgb + (1.0 - weights.sum(-1, keepdim=True)) * bg
    return rgb


def expected_depth(weights: torch.Tensor, t: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """sum_i w_i t_i, ``[...]``. With ``normalize`` divide by the opacity (depth of the visible surface
    even where the ray is partly transparent)."""
    d = (weights * t).sum(-1)
    if normalize:
        d = d / weights.sum(-1).clamp_min(1e-10)
    return d
