"""Render rays through radiance fields: sample, query, composite; chunked image rendering.

One renderer for every field (NeRF MLP, grid, pixelNeRF): :class:`RenderConfig` says where the samples go
(``sampler``), what ``t`` measures (``distance``), whether the last interval is open (``last_interval``),
which transmittance form is used and whether the depth is normalised. pixelNeRF's published renderer is
this one with ``sampler="pixelnerf", distance="metric", last_interval="far", transmittance="product",
normalize_depth=False`` (equal to the published definition, :mod:`inerf.render._reference`, tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from inerf.fields.base import RadianceField
from inerf.fields.occupancy import OccupancyGrid
from inerf.geometry.cameras import Cameras
from inerf.rays.occupied import compact_occupied, gather_sorted_rows, occupied_two_level, pool_slots
from inerf.rays.rays import Rays, rays_for_image
from inerf.rays.samplers import NeRFSampler, PixelNeRFSampler
from inerf.render import volrend
from inerf.tensors import RowSlice, constant

__all__ = ["RenderConfig", "RenderOutput", "make_sampler", "render_image", "render_rays"]


@dataclass
class RenderConfig:
    """How rays are sampled and composited. The defaults are NeRF's; see :meth:`pixelnerf` for pixelNeRF's."""

    n_coarse: int = 64
    """Samples per ray of the coarse pass."""
    n_fine: int = 128
    """Samples per ray added for the fine pass (0 = single pass)."""
    near: float = 2.0
    """Start of the ray segment (in the units of ``distance``)."""
    far: float = 6.0
    """End of the ray segment."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour behind the scene (white for Blender scenes composited on white)."""
    jitter: bool = False
    """Random coarse samples inside their bins (training; pixelNeRF's published renderer always); else the
    nerf sampler's bin edges or the pixelnerf sampler's bin mid-points (evaluation and pose estimation)."""
    deterministic_fine: bool = True
    """Quantiles instead of random numbers for the fine samples (importance, and pixelNeRF's depth-guided)."""
    chunk: int = 8192
    """Rays per forward pass in :func:`render_image`."""
    coarse_grad: bool = True
    """Keep the coarse pass in the autograd graph. Pose solves that score only the fine colours turn it
    off: the coarse pass then only places the fine samples, and its graph would cost ~25% more memory."""
    sampler: Literal["nerf", "pixelnerf"] = "nerf"
    """Where the samples go (:mod:`inerf.rays.samplers`): ``nerf`` (coarse at the bin edges of [near, far],
    ``n_fine`` importance samples between coarse mid-points) or ``pixelnerf`` (stratified coarse samples;
    ``n_fine - n_fine_depth`` importance samples on the uniform bins and ``n_fine_depth`` around the coarse
    depth; the fine pass evaluates all of them)."""
    n_fine_depth: int = 16
    """``pixelnerf`` sampler: how many of the ``n_fine`` samples come from N(coarse depth, depth_std^2)."""
    depth_std: float = 0.01
    """``pixelnerf`` sampler: standard deviation of the depth-guided samples (units of ``distance``)."""
    lindisp: bool = False
    """Place samples linearly in disparity 1 / t instead of in t."""
    distance: Literal["z", "metric"] = "z"
    """What ``t`` (and ``near``, ``far``, the depth) measures: ``z``, steps along ray directions with unit
    camera-z, i.e. z-depth (NeRF); ``metric``, distance along unit directions (pixelNeRF)."""
    last_interval: Literal["open", "far"] = "open"
    """The last sample's interval: ``open`` (1e10 long, NeRF) or closed at ``far`` (pixelNeRF)."""
    transmittance: Literal["log", "product"] = "log"
    """``log``: exp(cumsum(log(1 - alpha))) with a clamp; ``product``: pixelNeRF's cumprod(1 - alpha + 1e-10)
    (see :func:`inerf.render.volrend.transmittance`)."""
    normalize_depth: bool = True
    """Divide the expected depth by the accumulated opacity (NeRF); pixelNeRF's depth is not normalised."""
    field_chunk: int = 0
    """Points per field call, over all objects (0 = all samples of a ray chunk at once): bounds the memory of
    wide fields (pixelNeRF's ``eval_batch_size``) without changing any sample."""
    sample_budget: int = 0
    """Fields with an occupancy grid (``occupied``/``query``, e.g. the grid field): query only each ray's
    first ``sample_budget`` samples in occupied cells, with static shapes (:mod:`inerf.rays.occupied`; no host
    synchronisation, so a CUDA graph can capture the render). Equal to querying every sample while no ray
    has more occupied samples than the budget. 0: the field skips empty space itself."""
    sample_pool: float = 0.0
    """With ``sample_budget``: query the field at no more than ``ceil(sample_pool * R)`` of the kept samples
    of ``R`` rays, packed into one pool (most rays of a pose step miss the object and keep none; see
    :mod:`inerf.rays.occupied`). Samples beyond the pool are treated as empty and counted in
    ``RenderOutput.dropped``. 0: query every slot of the ``[R, sample_budget]`` layout."""
    sample_chunk: int = 0
    """With ``sample_budget`` on a field with an :class:`~inerf.fields.occupancy.OccupancyGrid`
    (``occupancy``): test chunks of this many consecutive samples against the grid first (a conservative
    segment test), then test exactly only the samples of each ray's first ``chunk_budget`` possibly occupied
    chunks (:func:`~inerf.rays.occupied.occupied_two_level`): ``R x (S / c + chunk_budget c)`` points
    instead of ``R x S``. The kept samples are the same unless a ray has more possibly occupied chunks than
    ``chunk_budget`` and fewer occupied samples than ``sample_budget`` in the chunks kept. 0 or 1: test
    every sample."""
    chunk_budget: int = 0
    """With ``sample_chunk``: possibly occupied chunks kept per ray (0: ``ceil(1.5 sample_budget / c) + 1``)."""
    chunk_min_points: int = 0
    """With ``sample_chunk``: use the two-level test only for passes of at least this many samples
    (``R x S``, static per pass). It adds ~70 small ops to a step (``benchmarks/count_pose_ops.py``), which
    a one-hypothesis step bound by its kernel count would pay for; many hypotheses' steps are bound by the
    dense per-sample memory traffic it removes."""
    packed_composite: bool = False
    """With ``sample_pool``, colours only and the ``log`` transmittance: composite the pooled samples where
    they are (:func:`~inerf.render.volrend.composite_density_packed`, per-ray running sums over the pool)
    instead of scattering them back into the ``[R, sample_budget]`` layout: ~13x fewer values on the chair's
    64-hypothesis step (950 k pooled samples against 12.6 M slots). The pose solver's GPU fast path turns it on
    (:data:`inerf.pose.problem.FAST_PACKED_COMPOSITE`)."""
    deterministic: bool = False
    """With ``sample_pool``: take the pool's per-ray gradients as sums over each ray's run of slots
    (:func:`~inerf.rays.occupied.gather_sorted_rows`) instead of a scatter-add, whose atomic additions make
    GPU runs differ in the last bits (which 300 steps of a pose solve amplify)."""
    colour_only: bool = False
    """Compute only the colours of the final pass (pose solves score nothing else): the output's ``depth``,
    ``acc`` and ``weights`` are None, and the ops that would compute them are not launched."""

    @classmethod
    def pixelnerf(cls, near: float, far: float, **changes) -> RenderConfig:
        """pixelNeRF's published renderer (64 + 16 + 16 samples, metric distances, closed last interval,
        product transmittance, unnormalised depth, white background, always jittered, random fine samples);
        ``changes`` override any field."""
        published = cls(
            n_coarse=64,
            n_fine=32,
            n_fine_depth=16,
            depth_std=0.01,
            near=near,
            far=far,
            jitter=True,
            deterministic_fine=False,
            sampler="pixelnerf",
            distance="metric",
            last_interval="far",
            transmittance="product",
            normalize_depth=False,
        )
        return replace(published, **changes)


@dataclass
class RenderOutput:
    """Per-ray results, each with the rays' leading shape ``[...]``."""

    rgb: torch.Tensor
    """``[..., 3]`` colour of the final pass."""
    depth: torch.Tensor | None
    """``[...]`` expected depth of the final pass, in the units of ``RenderConfig.distance`` (normalised by
    the opacity if ``RenderConfig.normalize_depth``); None with ``RenderConfig.colour_only``."""
    acc: torch.Tensor | None
    """``[...]`` accumulated opacity of the final pass; None with ``RenderConfig.colour_only``."""
    rgb_coarse: torch.Tensor | None = None
    """``[..., 3]`` colour of the coarse pass (only when there is a fine pass)."""
    weights: torch.Tensor | None = None
    """``[..., K]`` compositing weights of the final pass (None from :func:`render_image` and with
    ``RenderConfig.colour_only``)."""
    t: torch.Tensor | None = None
    """``[..., K]`` sample distances of the final pass (interval starts; None from :func:`render_image`)."""
    dropped: torch.Tensor | None = None
    """Occupied samples left out because the query pool was full (``RenderConfig.sample_pool``; an int64
    scalar tensor, both passes), None without a pool."""


def make_sampler(config: RenderConfig) -> NeRFSampler | PixelNeRFSampler:
    """The sampler that ``config.sampler`` names, with its parameters from ``config``."""
    if config.sampler == "nerf":
        return NeRFSampler(
            config.n_coarse, config.n_fine, config.jitter, config.deterministic_fine, config.lindisp
        )
    if config.sampler == "pixelnerf":
        n_fine = max(config.n_fine, 0)
        n_depth = config.n_fine_depth if n_fine > 0 else 0  # no fine pass: nothing to split
        if not 0 <= n_depth <= n_fine:
            raise ValueError(f"n_fine_depth must be in [0, n_fine = {n_fine}], got {n_depth}")
        return PixelNeRFSampler(
            config.n_coarse,
            n_fine - n_depth,
            n_depth,
            config.depth_std,
            config.jitter,
            config.deterministic_fine,
            config.lindisp,
        )
    raise ValueError(f"unknown sampler {config.sampler!r}; expected 'nerf' or 'pixelnerf'")


def _query(fld: RadianceField, xyz: torch.Tensor, viewdirs: torch.Tensor, chunk: int):
    """``fld`` at ``xyz``, ``viewdirs`` ``[..., P, 3]`` (leading dims: objects), ``chunk`` points per call
    over all objects (0 = one call). Returns ``rgb [..., P, 3]``, ``sigma [..., P]``."""
    n_points = xyz.shape[-2]
    per_object = math.ceil(chunk / max(1, math.prod(xyz.shape[:-2]))) if chunk > 0 else n_points
    if per_object >= n_points:
        return fld(xyz, viewdirs)
    outs = [
        fld(xyz[..., i : i + per_object, :], viewdirs[..., i : i + per_object, :])
        for i in range(0, n_points, per_object)
    ]
    return torch.cat([o[0] for o in outs], -2), torch.cat([o[1] for o in outs], -1)


def _shade(
    fld: RadianceField, rays: Rays, t: torch.Tensor, far, config: RenderConfig, background, weights=True
):
    """Query ``fld`` at the samples ``t`` ``[..., R, K]`` of ``rays`` ``[..., R]`` and composite.

    Returns the colour ``[..., R, 3]``, the weights ``[..., R, K]`` (None if not ``weights`` and the
    static-shape skipping path runs, which would need an extra scatter for them) and the number of occupied
    samples left out for want of room in the query pool (an int64 scalar tensor; None without a pool).
    """
    metric = config.distance == "metric"
    step = rays.viewdirs if metric else rays.directions  # what one unit of t moves along the ray
    t_starts, t_ends = volrend.sample_intervals(t, far if config.last_interval == "far" else None)
    if config.sample_budget > 0 and hasattr(fld, "occupied") and t.ndim == 2:
        return _shade_occupied(fld, rays, step, t, t_ends - t_starts, metric, config, background, weights)
    pts = rays.origins[..., None, :] + step[..., None, :] * t[..., None]
    dirs = rays.viewdirs[..., None, :].expand_as(pts)
    delta = volrend.interval_lengths(t_starts, t_ends, None if metric else rays.directions)
    # One point axis per object: the field's [..., N, 3] (N spelt out: an empty batch has no -1 to infer).
    flat = (*t.shape[:-2], t.shape[-2] * t.shape[-1], 3)
    rgb, sigma = _query(fld, pts.reshape(flat), dirs.reshape(flat), config.field_chunk)
    rgb, sigma = rgb.reshape(*t.shape, 3), sigma.reshape(t.shape)
    w = volrend.render_weights(volrend.alpha_from_density(sigma, delta), config.transmittance)
    return volrend.composite(w, rgb, background), w, None


def _shade_occupied(
    fld, rays: Rays, step, t, seg, metric: bool, config: RenderConfig, background, weights: bool = True
):
    """:func:`_shade` for a field that is zero outside its occupied cells (``t``, ``seg`` ``[R, K]``: sample
    distances and interval lengths in units of ``t``; ``step [R, 3]``: the ray's displacement per unit of
    ``t``). Only each ray's first ``config.sample_budget`` occupied samples are kept, in an ``[R, M]`` layout
    (:func:`~inerf.rays.occupied.compact_occupied`); an empty sample has alpha 0, so leaving it out changes
    no colour, and padding slots get zero-length intervals. With ``config.sample_pool`` the field is queried
    only at the valid slots, packed into a pool of ``ceil(sample_pool * R)`` points
    (:func:`~inerf.rays.occupied.pool_slots`). Points are rebuilt from the rays at the kept samples only, so
    the autograd graph holds ``[R, M]`` tensors, not ``[R, K]``.
    Returns the colour ``[R, 3]``, the weights ``[R, K]`` (zero at the skipped samples; None unless
    ``weights``) and the count of valid samples the pool left out (None without a pool)."""
    R, K = t.shape
    with torch.no_grad():
        grid = getattr(fld, "occupancy", None)
        two_level = config.sample_chunk > 1 and K > config.sample_chunk and R * K >= config.chunk_min_points
        along = getattr(fld, "occupied_along_rays", None)
        fused = along(rays.origins, step, t, config.sample_budget, seg) if along is not None else None
        if fused is not None:
            # One kernel: every sample tested exactly, the kept samples' t and intervals written with their
            # indices; nothing [R, K] is built.
            index, valid, t_c, seg_c = fused
        elif two_level and isinstance(grid, OccupancyGrid):
            index, valid, _ = occupied_two_level(
                lambda tt: rays.origins[:, None, :] + step[:, None, :] * tt[..., None],
                fld.occupied,
                grid.segments_occupied,
                t.expand(R, K),
                config.sample_budget,
                config.sample_chunk,
                config.chunk_budget,
            )
        else:
            pts_all = rays.origins[:, None, :] + step[:, None, :] * t[..., None]
            occupied = fld.occupied(pts_all.reshape(-1, 3)).reshape(R, K)
            del pts_all
            index, valid, _ = compact_occupied(occupied, min(config.sample_budget, K))
        if fused is None:
            t_c = torch.gather(t.expand(R, K), 1, index)
            seg_c = torch.gather(seg.expand(R, K), 1, index) * valid
    M = index.shape[1]
    # z-depth t: an interval's metric length scales with |d|, which depends on the pose (gradient kept).
    delta_c = seg_c if metric else seg_c * rays.directions.norm(dim=-1, keepdim=True)
    if config.sample_pool > 0:
        pool = min(R * M, max(1, math.ceil(config.sample_pool * R)))
        slots, kept, dropped = pool_slots(valid, pool)
        at = slots.clamp_max(R * M - 1)  # padding entries read any slot; their results go to the spare one
        # One gather of the packed ray tensors [R, 9] rather than three (fewer ops forward and backward);
        # gather, not advanced indexing: gather's backward is a scatter-add, indexing's sorts the indices.
        packed = torch.cat([rays.origins, step, rays.viewdirs], -1)
        if config.deterministic:  # slots are sorted by ray: per-ray sums of runs, no atomics
            ray = gather_sorted_rows(packed, at // M)
        else:
            ray = torch.gather(packed, 0, (at // M)[:, None].expand(pool, 9))
        # unbind (not slicing): its backward is one stack, slicing's a zero-fill and a copy per slice.
        o_q, step_q, dir_q = ray.view(pool, 3, 3).unbind(1)
        pts = o_q + step_q * t_c.reshape(-1)[at, None]
        rgb_q, sigma_q = fld.query(pts, dir_q)
        packed_ok = config.packed_composite and config.transmittance == "log" and not background.requires_grad
        if not weights and packed_ok:
            # Composited in the pool: the samples of a ray are consecutive there, in order along it.
            seg_q = seg_c.reshape(-1)[at]
            delta_q = seg_q if metric else seg_q * step_q.norm(dim=-1)
            rgb = volrend.composite_density_packed(sigma_q, delta_q, rgb_q, at // M, kept, R, background)
            return rgb, None, dropped
        # Colour and density scattered back together: [R * M (+ 1 spare), 4].
        out = torch.cat([rgb_q, sigma_q[:, None]], -1)
        out = out.new_zeros(R * M + 1, 4).scatter(0, slots[:, None].expand(pool, 4), out)[: R * M]
        rgb, sigma = out.view(R, M, 4).split([3, 1], -1)
        sigma = sigma[..., 0]
    else:
        pts = rays.origins[:, None, :] + step[:, None, :] * t_c[..., None]
        rgb, sigma = fld.query(pts.reshape(-1, 3), rays.viewdirs[:, None, :].expand(R, M, 3).reshape(-1, 3))
        rgb, sigma, dropped = rgb.reshape(R, M, 3), sigma.reshape(R, M), None
    if not weights:  # colours only: the fused compositing (fewer ops, hand-written backward)
        rgb = volrend.composite_density(sigma, delta_c, rgb, background, valid, config.transmittance)
        return rgb, None, dropped
    w_c = volrend.render_weights(volrend.alpha_from_density(sigma, delta_c), config.transmittance) * valid
    # Padding slots add 0 where they point.
    w = torch.zeros_like(t.expand(R, K)).scatter_add(1, index, w_c)
    return volrend.composite(w_c, rgb, background), w, dropped


def render_rays(
    coarse: RadianceField,
    rays: Rays,
    config: RenderConfig,
    fine: RadianceField | None = None,
    near: torch.Tensor | float | None = None,
    far: torch.Tensor | float | None = None,
    generator: torch.Generator | RowSlice | None = None,
) -> RenderOutput:
    """Render a batch of rays ``[R]``, or ``[SB, R]`` for ``SB`` objects of a field with an object axis.

    With ``fine`` (or ``config.n_fine > 0`` and one shared field) a second pass evaluates the samples that
    ``config.sampler`` places from the coarse weights (NeRF's hierarchical scheme, or pixelNeRF's). Gradients
    flow to the fields' parameters and to ``rays`` (so to a camera pose), not through the choice of sample
    positions (except pixelNeRF's depth-guided samples, which follow the coarse depth, as published).

    Args:
        near, far: override ``config.near``/``config.far``; floats or per-ray ``[..., R]`` tensors.
        generator: seeded random numbers for jittered / random samples; a :class:`inerf.tensors.RowSlice`
            renders these rays as rows of a larger batch (data-parallel training).
    """
    dev, dt = rays.origins.device, rays.origins.dtype
    near = config.near if near is None else near
    far = config.far if far is None else far
    sampler = make_sampler(config)
    t = sampler.coarse(near, far, rays.origins.shape[:-1], like=rays.origins, generator=generator)
    bg = constant(tuple(config.background), dt, dev)
    only = config.colour_only and config.n_fine <= 0  # the fine pass needs the coarse weights
    with torch.set_grad_enabled(torch.is_grad_enabled() and (config.coarse_grad or config.n_fine <= 0)):
        rgb_c, w_c, dropped = _shade(coarse, rays, t, far, config, bg, weights=not only)
    if config.n_fine <= 0:
        if config.colour_only:
            return RenderOutput(rgb_c, None, None, dropped=dropped)
        return _output(rgb_c, w_c, t, config, dropped=dropped)
    # The pixelnerf sampler centres its depth-guided samples on the published, unnormalised depth.
    t_f = sampler.fine(t, w_c, volrend.expected_depth(w_c, t), near, far, generator=generator)
    field = fine if fine is not None else coarse
    rgb_f, w_f, dropped_f = _shade(field, rays, t_f, far, config, bg, weights=not config.colour_only)
    if dropped is None or dropped_f is None:
        dropped = dropped if dropped_f is None else dropped_f
    else:
        dropped = dropped + dropped_f
    if config.colour_only:
        return RenderOutput(rgb_f, None, None, rgb_coarse=rgb_c, dropped=dropped)
    return _output(rgb_f, w_f, t_f, config, rgb_coarse=rgb_c, dropped=dropped)


def _output(rgb, weights, t, config: RenderConfig, rgb_coarse=None, dropped=None) -> RenderOutput:
    depth = volrend.expected_depth(weights, t, normalize=config.normalize_depth)
    return RenderOutput(
        rgb, depth, weights.sum(-1), rgb_coarse=rgb_coarse, weights=weights, t=t, dropped=dropped
    )


@torch.no_grad()
def render_image(
    coarse: RadianceField,
    camera: Cameras,
    config: RenderConfig,
    fine: RadianceField | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> RenderOutput:
    """Render the full ``H x W`` image of one camera (``camera[0]``), ``chunk`` rays at a time. Returns a
    :class:`RenderOutput` with ``rgb [H, W, 3]``, ``depth [H, W]``, ``acc [H, W]``.

    The chunked result equals rendering all rays at once (tested): chunks only bound memory (with random
    samples, ``generator`` is drawn from chunk by chunk).
    """
    height, width = camera.height, camera.width
    config = replace(config, colour_only=False)  # an image has depth and opacity too
    rays = rays_for_image(camera)
    outs = []
    starts = range(0, height * width, config.chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="render", leave=False, unit="chunk")
    for s in starts:
        outs.append(render_rays(coarse, rays[s : s + config.chunk], config, fine=fine, generator=generator))
    rgb = torch.cat([o.rgb for o in outs]).reshape(height, width, 3)
    depth = torch.cat([o.depth for o in outs]).reshape(height, width)
    acc = torch.cat([o.acc for o in outs]).reshape(height, width)
    return RenderOutput(rgb, depth, acc)
