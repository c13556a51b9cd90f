"""Volume rendering on sample intervals as pure tensor functions (NeRF, Mildenhall et al. 2020, eq. 3).

A ray is cut into intervals ``[t_start_i, t_end_i]`` (nerfacc's ``t_starts, t_ends``), each with a density
``sigma_i`` and a colour ``c_i`` evaluated at its start:

    delta_i = (t_end_i - t_start_i) |d|     (|d| = 1 for metric t; the direction's norm for NeRF's z-depth t)
    alpha_i = 1 - exp(-sigma_i delta_i)
    T_i     = prod_{j<i} (1 - alpha_j)       (transmittance: the light that reaches interval i)
    w_i     = T_i alpha_i
    C       = sum_i w_i c_i + (1 - sum_i w_i) c_background
    D       = sum_i w_i t_start_i            (optionally divided by the opacity sum_i w_i)

Point samples ``t_1 < ... < t_N`` become intervals with :func:`sample_intervals`: ``[t_i, t_{i+1}]``, and
the last one is either **open** (``t_N + 1e10``, NeRF: everything behind the last sample) or **closed** at
``far`` (pixelNeRF: a ray that is empty up to ``far`` stays transparent). That choice, the transmittance
form (:func:`transmittance`) and the depth normalisation are arguments, so NeRF's and pixelNeRF's renderers
are the same functions with different data.

Worked example: alphas (0.5, 0.5) give T = (1, 0.5), w = (0.5, 0.25), accumulated opacity 0.75; over a
white background a red then green sample composite to (0.5, 0.25, 0) + 0.25 (1, 1, 1) = (0.75, 0.5, 0.25).
All functions take ``[..., N]`` (and ``[..., N, C]`` for colours) and are differentiable.
"""

from __future__ import annotations

from typing import Literal

import torch

from inerf.rays.occupied import run_bounds, running_sum
from inerf.tensors import constant

__all__ = [
    "FAR_DELTA",
    "TRANSMITTANCE_GUARD",
    "accumulated_opacity",
    "alpha_from_density",
    "composite",
    "composite_density",
    "cumprod_positive",
    "deltas",
    "expected_depth",
    "interval_lengths",
    "render_weights",
    "sample_intervals",
    "transmittance",
]

FAR_DELTA = 1e10
"""Length of the last, open-ended interval (everything behind the last sample), as in NeRF."""

TRANSMITTANCE_GUARD = 1e-10
"""The guard of both transmittance forms: the clamp of ``1 - alpha`` before the log, or the term added to
each factor of the published product."""

TransmittanceForm = Literal["log", "product"]


def sample_intervals(t: torch.Tensor, far: torch.Tensor | float | None = None):
    """Intervals ``(t_starts, t_ends)``, each ``[..., N]``, from sorted sample distances ``t`` ``[..., N]``.

    ``t_ends_i = t_{i+1}``; the last interval ends at ``t_N + 1e10`` (open, NeRF) when ``far`` is None,
    else at ``far`` (closed, pixelNeRF; a float or ``[...]`` per ray).

    Example: ``t = (1, 1.5, 1.9)``, ``far = 2`` gives ends ``(1.5, 1.9, 2)``; without ``far`` the last end is
    ``1e10`` (in float32, ``1.9 + 1e10`` rounds to ``1e10`` and the difference is exactly ``1e10``).
    """
    if far is None:
        last = t[..., -1:] + FAR_DELTA
    else:
        far = constant(far, t.dtype, t.device)
        last = (far[..., None] if far.ndim > 0 else far).expand_as(t[..., -1:])
    return t, torch.cat([t[..., 1:], last], -1)


def interval_lengths(
    t_starts: torch.Tensor, t_ends: torch.Tensor, directions: torch.Tensor | None = None
) -> torch.Tensor:
    """``delta_i = t_end_i - t_start_i``, ``[..., N]``; metric lengths.

    If ``directions`` ``[..., 3]`` is given, the lengths are scaled by its norm: ``t`` then counts steps of
    those directions (NeRF's rays have unit camera-z, so ``t`` is a z-depth, not a distance). Leave it None
    when ``t`` is already a distance (unit directions, pixelNeRF).
    """
    d = t_ends - t_starts
    if directions is not None:
        d = d * directions.norm(dim=-1, keepdim=True)
    return d


def deltas(
    t: torch.Tensor, directions: torch.Tensor | None = None, far: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Interval lengths ``[..., N]`` of point samples ``t`` ``[..., N]``: :func:`sample_intervals` then
    :func:`interval_lengths` (last interval open unless ``far`` is given)."""
    return interval_lengths(*sample_intervals(t, far), directions)


def alpha_from_density(sigma: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """alpha_i = 1 - exp(-sigma_i delta_i), ``[..., N]``."""
    return 1.0 - torch.exp(-sigma * delta)


class _CumprodPositive(torch.autograd.Function):
    """``torch.cumprod(x, -1)`` for ``x > 0``, with a backward that never reads a value back to the host.

    ``torch.cumprod``'s backward first asks whether the input holds a zero (a device-to-host read) to choose
    between two formulas; a pose step must not synchronise (it is replayed from a CUDA graph), and the
    published transmittance's factors ``1 - alpha + 1e-10`` are never zero, so the zero-free formula is the
    one torch would choose: ``grad_x_i = sum_{j >= i} grad_j P_j / x_i`` with ``P = cumprod(x)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.cumprod(x, -1)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, out = ctx.saved_tensors
        return (grad * out).flip(-1).cumsum(-1).flip(-1) / x


def cumprod_positive(x: torch.Tensor) -> torch.Tensor:
    """``torch.cumprod(x, -1)`` of a tensor with no zero (see :class:`_CumprodPositive`: its gradient needs
    no host synchronisation)."""
    return _CumprodPositive.apply(x)


def transmittance(alpha: torch.Tensor, form: TransmittanceForm = "log") -> torch.Tensor:
    """T_i = prod_{j<i} (1 - alpha_j), ``[..., N]`` (T_1 = 1), in one of two guarded forms:

    * ``"log"``: ``exp(cumsum(log(max(1 - alpha, 1e-10))))``. The clamp keeps the log finite when
      alpha = 1 (an opaque sample), where the exact transmittance behind it is 0 anyway.
    * ``"product"``: ``cumprod(1 - alpha + 1e-10)``, pixelNeRF's published form. The 1e-10 keeps the
      product's gradient finite when some alpha = 1; it also lets ~1e-10 of light through per opaque factor.

    Both agree to ~1e-7 for alphas away from 1 (tested).
    """
    if form == "product":
        trans = cumprod_positive(1.0 - alpha + TRANSMITTANCE_GUARD)
        return torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], -1)
    if form != "log":
        raise ValueError(f"transmittance form must be 'log' or 'product', got {form!r}")
    log_t = torch.cumsum(torch.log((1.0 - alpha).clamp_min(TRANSMITTANCE_GUARD)), -1)
    log_t = torch.cat([torch.zeros_like(log_t[..., :1]), log_t[..., :-1]], -1)
    return torch.exp(log_t)


def render_weights(alpha: torch.Tensor, form: TransmittanceForm = "log") -> torch.Tensor:
    """w_i = T_i alpha_i, ``[..., N]`` (``form``: see :func:`transmittance`)."""
    return transmittance(alpha, form) * alpha


def accumulated_opacity(weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_i, ``[...]``: the ray's opacity (1 - transmittance behind the last interval)."""
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
        bg = constant(background, rgb.dtype, rgb.device)
        rgb = rgb + (1.0 - weights.sum(-1, keepdim=True)) * bg
    return rgb


class _CompositeDensity(torch.autograd.Function):
    """:func:`composite_density` for the ``log`` transmittance with a hand-written backward (see there)."""

    @staticmethod
    def forward(ctx, sigma, delta, rgb, valid, background):
        alpha = alpha_from_density(sigma, delta)
        one_minus = 1.0 - alpha
        log_t = torch.cumsum(torch.log(one_minus.clamp_min(TRANSMITTANCE_GUARD)), -1)
        trans = torch.exp(torch.cat([torch.zeros_like(log_t[..., :1]), log_t[..., :-1]], -1))
        w = trans * alpha
        if valid is not None:
            w = w * valid
        # C = sum_i w_i c_i + (1 - sum_i w_i) bg = sum_i w_i (c_i - bg) + bg: fewer ops, and the backward
        # needs c_i - bg too.
        diff = rgb - background
        ctx.save_for_backward(sigma, delta, diff, valid, alpha, one_minus, trans, w)
        return (w[..., None] * diff).sum(-2) + background

    @staticmethod
    def backward(ctx, grad):
        sigma, delta, diff, valid, alpha, one_minus, trans, w = ctx.saved_tensors
        grad_rgb = w[..., None] * grad[..., None, :]
        # dL/dw_i = g . (c_i - background)
        grad_w = (diff * grad[..., None, :]).sum(-1)
        if valid is not None:
            grad_w = grad_w * valid
        # w_i = T_i alpha_i with log T_i = sum_{j<i} log(1 - alpha_j): alpha_k reaches w_k directly and every
        # later w_i through T_i, dL/dlog(1 - alpha_k) = sum_{i>k} dL/dw_i w_i (a reverse exclusive cumsum).
        s = grad_w * w
        later = s.sum(-1, keepdim=True) - torch.cumsum(s, -1)
        # The clamp guarding the log passes no gradient where it is active (an opaque sample).
        through_log = torch.where(one_minus >= TRANSMITTANCE_GUARD, later / one_minus, 0.0)
        grad_alpha = grad_w * trans - through_log
        grad_x = grad_alpha * (1.0 - alpha)  # alpha = 1 - exp(-x), x = sigma delta: dalpha/dx = exp(-x)
        return grad_x * delta, grad_x * sigma, grad_rgb, None, None


def composite_density(
    sigma: torch.Tensor,
    delta: torch.Tensor,
    rgb: torch.Tensor,
    background: torch.Tensor,
    valid: torch.Tensor | None = None,
    form: TransmittanceForm = "log",
) -> torch.Tensor:
    """The colour ``[..., 3]`` of samples with densities ``sigma`` and interval lengths ``delta`` ``[..., N]``
    and colours ``rgb`` ``[..., N, 3]`` over ``background`` ``[3]``: :func:`composite` of
    :func:`render_weights` of :func:`alpha_from_density` (weights times ``valid`` ``[..., N]`` if given).

    The ``log`` form has a hand-written backward (gradients to ``sigma``, ``delta`` and ``rgb``; none to
    ``background`` or ``valid``): about 17 ops where autograd through the chain takes about 30, which
    matters in a pose step bound by its kernel count. Equal to the chain to rounding, values and gradients
    (tested). The ``product`` form, or a background that needs a gradient, takes the chain itself.
    """
    if form == "log" and not background.requires_grad:
        return _CompositeDensity.apply(sigma, delta, rgb, valid, background)
    w = render_weights(alpha_from_density(sigma, delta), form)
    return composite(w if valid is None else w * valid, rgb, background)


class _CompositeDensityPacked(torch.autograd.Function):
    """:func:`composite_density_packed` with its backward written out (``log`` transmittance)."""

    @staticmethod
    def forward(ctx, sigma, delta, rgb, ray, kept, rows: int, background):
        alpha = alpha_from_density(sigma, delta)
        one_minus = 1.0 - alpha
        log_one_minus = torch.where(kept, torch.log(one_minus.clamp_min(TRANSMITTANCE_GUARD)), 0.0)
        bounds = run_bounds(ray, rows)
        running = running_sum(log_one_minus)
        # Exclusive within each run: the sum over the earlier samples of the same ray.
        trans = torch.exp((running[:-1] - running[bounds[ray]]).to(alpha.dtype))
        w = trans * alpha * kept
        diff = rgb - background
        ctx.save_for_backward(sigma, delta, diff, kept, alpha, one_minus, trans, w, ray, bounds)
        colour = running_sum(w[:, None] * diff)
        return (colour[bounds[1:]] - colour[bounds[:-1]]).to(rgb.dtype) + background

    @staticmethod
    def backward(ctx, grad):
        sigma, delta, diff, kept, alpha, one_minus, trans, w, ray, bounds = ctx.saved_tensors
        g = grad[ray]  # each sample's ray's colour gradient
        grad_rgb = w[:, None] * g
        grad_w = (diff * g).sum(-1) * kept
        # dL/dlog(1 - alpha_k) = sum over the later samples i of the same ray of dL/dw_i w_i.
        running = running_sum(grad_w * w)
        later = (running[bounds[ray + 1]] - running[1:]).to(w.dtype)
        through_log = torch.where(one_minus >= TRANSMITTANCE_GUARD, later / one_minus, 0.0)
        grad_x = (grad_w * trans - through_log) * (1.0 - alpha)
        return grad_x * delta, grad_x * sigma, grad_rgb, None, None, None, None


def composite_density_packed(
    sigma: torch.Tensor,
    delta: torch.Tensor,
    rgb: torch.Tensor,
    ray: torch.Tensor,
    kept: torch.Tensor,
    rows: int,
    background: torch.Tensor,
) -> torch.Tensor:
    """:func:`composite_density` (``log`` transmittance) of samples packed ray after ray: ``sigma``,
    ``delta`` ``[P]``, ``rgb [P, 3]``, ``ray [P]`` (non-decreasing, each sample's ray; samples of a ray in
    order along it), ``kept bool [P]`` (False: padding, no light) -> the colours of the ``rows`` rays
    ``[rows, 3]`` over ``background [3]`` (a ray with no sample gets the background).

    The per-ray cumulative sums are float64 running sums over the whole pack, differenced at each ray's
    bounds: no ``[rows, budget]`` layout, no atomic additions (run-to-run identical on a GPU). Values and
    gradients equal :func:`composite_density`'s on the same samples to float32 rounding (tested)."""
    return _CompositeDensityPacked.apply(sigma, delta, rgb, ray, kept, rows, background)


def expected_depth(weights: torch.Tensor, t: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """D = sum_i w_i t_i, ``[...]``, in the units of ``t`` (z-depth or distance).

    With ``normalize`` divide by the opacity (NeRF: the depth of the visible surface even where the ray is
    partly transparent); pixelNeRF's published depth is not normalised (an empty ray has depth 0).
    """
    d = (weights * t).sum(-1)
    if normalize:
        d = d / weights.sum(-1).clamp_min(1e-10)
    return d
