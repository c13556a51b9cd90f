"""Occupancy grid: a coarse boolean voxel grid of where a field's density is non-negligible.

A field that owns an occupancy grid treats every point outside it as empty (density 0), in training and
in rendering alike, so the grid is part of the field's definition rather than an approximation made by the
renderer. That is what lets the field evaluate only the occupied samples and still return exactly what
the dense evaluation returns (TensoRF's "alpha mask" and Instant-NGP's density bitfield work the same way).

Layout: ``mask [X, Y, Z]`` (bool) tiles the box ``aabb = [[x0, y0, z0], [x1, y1, z1]]``; cell
``(i, j, k)`` covers ``[lo + (i, j, k) * s, lo + (i + 1, j + 1, k + 1) * s)`` with
``s = (hi - lo) / (X, Y, Z)``. Lookups are nearest-cell (no interpolation): one integer gather per point.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from inerf.device import in_graph_capture
from inerf.tensors import constant

__all__ = ["OccupancyGrid", "cell_centers", "resize_to_state"]


def cell_centers(aabb: torch.Tensor, resolution: Sequence[int]) -> torch.Tensor:
    """Centres of the cells of a ``resolution = (X, Y, Z)`` tiling of ``aabb [2, 3]``: ``[X, Y, Z, 3]``."""
    lo, hi = aabb
    axes = [
        lo[d] + (torch.arange(r, device=aabb.device, dtype=aabb.dtype) + 0.5) * (hi[d] - lo[d]) / r
        for d, r in enumerate(resolution)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def resize_to_state(module: nn.Module, state_dict: dict, prefix: str) -> None:
    """Give ``module``'s own parameters and buffers the shapes found in ``state_dict``.

    Grids change size during training (upsampling, shrinking, new occupancy), so a freshly built module
    must adopt the checkpoint's shapes before ``load_state_dict`` copies the values. The module's dtype
    and device are kept (a float16 checkpoint loads into float32 parameters).
    """
    for name, p in list(module._parameters.items()):
        key = prefix + name
        if p is not None and key in state_dict and state_dict[key].shape != p.shape:
            module._parameters[name] = nn.Parameter(p.new_empty(state_dict[key].shape), p.requires_grad)
    for name, b in list(module._buffers.items()):
        key = prefix + name
        if b is not None and key in state_dict and state_dict[key].shape != b.shape:
            module._buffers[name] = b.new_empty(state_dict[key].shape)


class OccupancyGrid(nn.Module):
    """``grid(xyz [N, 3]) -> bool [N]``: True where the point lies in an occupied cell.

    Points outside ``aabb`` are empty. A new grid is a single occupied cell covering ``aabb`` (every
    point of the box counts as occupied until :meth:`update` has seen the density).
    """

    def __init__(self, aabb: torch.Tensor, resolution: Sequence[int] = (1, 1, 1)):
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.register_buffer("mask", torch.ones(tuple(resolution), dtype=torch.bool))

    @property
    def resolution(self) -> tuple[int, int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]

    def forward(self, xyz: torch.Tensor, inside: torch.Tensor | None = None) -> torch.Tensor:
        """``bool [N]`` for ``xyz [N, 3]``; ``inside`` (``bool [N]``), if given, is the caller's own test of
        the points against this grid's ``aabb`` (skips repeating it)."""
        lo, hi, scale, zero, top, strides = self._lookup(xyz.dtype)
        if inside is None:
            inside = ((xyz >= lo) & (xyz <= hi)).all(-1)  # NaN compares False: a NaN point is empty
        # Truncation instead of floor: they differ only below 0, where the clamp gives cell 0 either way.
        # Clamp: a point on the max face belongs to the last cell; points outside the box (already False
        # through `inside`, NaN included) just need an index that does not overflow.
        cell = ((xyz - lo) * scale).long().clamp(zero, top)
        flat = (cell * strides).sum(-1)
        return inside & self.mask.reshape(-1)[flat]

    def _lookup(self, dtype: torch.dtype):
        """``(lo, hi, res / (hi - lo), 0, res - 1, row-major strides)`` in ``dtype`` (the last three int64), built
        once per state of ``aabb`` and ``mask`` (a lookup then launches a handful of ops, none of them for
        these constants)."""
        key = (dtype, *((id(t), t._version, t.data_ptr(), t.device) for t in (self.aabb, self.mask)))
        cached = getattr(self, "_lookup_cache", None)
        if cached is None or cached[0] != key:
            lo, hi = self.aabb.to(dtype)
            X, Y, Z = self.mask.shape
            res = constant((X, Y, Z), torch.long, self.mask.device)
            strides = constant((Y * Z, Z, 1), torch.long, self.mask.device)
            cached = (key, (lo, hi, res / (hi - lo), torch.zeros_like(res), res - 1, strides))
            self._lookup_cache = cached
        return cached[1]

    def host_constants(self) -> tuple:
        """:meth:`forward`'s constants as Python numbers (``lo``, ``hi``, ``scale`` per axis, the last cell
        per axis, the first two row-major strides), float32 values computed as :meth:`_lookup` computes them,
        for kernels that take scalars. Read from the device once per state of ``aabb`` and ``mask`` (a host
        sync: the first call must come before any CUDA-graph capture)."""
        key = tuple((id(t), t._version, t.data_ptr()) for t in (self.aabb, self.mask))
        cached = getattr(self, "_host_cache", None)
        if cached is None or cached[0] != key:
            lo, hi = self.aabb.detach().float().cpu()
            X, Y, Z = self.mask.shape
            scale = torch.tensor((X, Y, Z), dtype=torch.float32) / (hi - lo)
            values = (*lo.tolist(), *hi.tolist(), *scale.tolist(), X - 1, Y - 1, Z - 1, Y * Z, Z)
            cached = (key, values)
            self._host_cache = cached
        return cached[1]

    def compact_along_rays(
        self,
        origins: torch.Tensor,
        step: torch.Tensor,
        t: torch.Tensor,
        budget: int,
        seg: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`~inerf.rays.occupied.compact_occupied` of this grid's test of the points
        ``origins [R, 3] + step [R, 3] * t [R or 1, S]``: ``index``, ``valid`` ``[R, min(budget, S)]``, and the
        kept samples' ``t`` and interval lengths ``seg [R or 1, S]`` (zeros if None), zero-length on padding
        slots (whose ``t`` is the last sample's). Without building the ``[R, S]`` points: one Triton kernel on
        CUDA, the torch ops elsewhere (the reference)."""
        from inerf.rays.occupied import compact_occupied, fused_available

        if fused_available(origins):
            from inerf.rays import occupied
            from inerf.rays._triton_occupied import compact_along_rays

            try:
                return compact_along_rays(origins, step, t, budget, self, seg)
            except Exception as exc:  # a kernel that does not build: the torch ops serve
                if in_graph_capture():  # possibly the capture's failure, not the kernel's: it is retried
                    raise
                occupied.FUSED = False
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                warnings.warn(f"occupancy: Triton kernel unusable, using torch ops ({first})", stacklevel=2)
        R, S = origins.shape[0], t.shape[-1]
        pts = origins[:, None, :] + step[:, None, :] * t.expand(R, S)[..., None]
        index, valid, _ = compact_occupied(self(pts.reshape(-1, 3)).reshape(R, S), min(budget, S))
        t_c = torch.gather(t.expand(R, S), 1, index)
        seg_c = torch.zeros_like(t_c) if seg is None else torch.gather(seg.expand(R, S), 1, index) * valid
        return index, valid, t_c, seg_c

    MAX_DILATION = 3
    """Widest dilation (in cells) of :meth:`segments_occupied`'s pyramid; longer segments count as occupied."""

    def segments_occupied(self, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Conservative test of straight segments: ``bool [N]``, False only where no point of the segment
        from ``first [N, 3]`` to ``last [N, 3]`` lies in an occupied cell (or in the box at all).

        Why it is conservative. In cell units (``u = (x - lo) * res / (hi - lo)``, :meth:`forward`'s own
        formula, so the end points give the same floats as a lookup of them), every point ``p`` of the
        segment is within ``h`` of its mid-point ``m`` on every axis, ``h`` = half the largest per-axis extent.
        Then ``|floor(u_p) - floor(u_m)| <= ceil(h)`` (an integer below ``|u_p - u_m| + 1``), and clamping
        both cells to the grid keeps the bound, so ``p``'s cell lies in the ``(2 d + 1)^3`` block around
        ``m``'s cell for ``d = ceil(h + eps)``: one lookup of the mask max-pooled by that block (level ``d``
        of a stride-1 pyramid, :meth:`_pyramid`) covers the segment. ``eps`` (1e-3 cells) absorbs the
        rounding of sample points between the end points. Segments with ``d >`` :data:`MAX_DILATION` count as
        occupied; a segment whose bounding box misses the box is empty (as :meth:`forward` says of every
        point outside it, NaN included). Static shapes, no host synchronisation.
        """
        lo, _, scale, zero, top, strides = self._lookup(first.dtype)
        eps = 1e-3
        a, b = (first - lo) * scale, (last - lo) * scale  # cell coordinates of the end points
        res = (top + 1).to(a.dtype)
        inside = ((torch.minimum(a, b) <= res + eps) & (torch.maximum(a, b) >= -eps)).all(-1)
        h = (a - b).abs().amax(-1) * 0.5 + eps
        too_long = ~(h <= self.MAX_DILATION)  # also NaN
        level = h.clamp(0, self.MAX_DILATION).ceil().long()
        cell = ((a + b) * 0.5).long().clamp(zero, top)  # truncation: as in forward, equal after the clamp
        pyramid = self._pyramid()
        flat = (cell * strides).sum(-1) + level * self.mask.numel()
        return inside & (pyramid[flat] | too_long)

    def _pyramid(self) -> torch.Tensor:
        """``bool [(MAX_DILATION + 1) * X * Y * Z]``: level ``d`` is the mask max-pooled over ``(2 d + 1)^3``
        blocks centred on each cell (stride 1; level 0 is the mask). Built once per state of the mask."""
        key = (id(self.mask), self.mask._version, self.mask.data_ptr(), self.mask.device)
        cached = getattr(self, "_pyramid_cache", None)
        if cached is None or cached[0] != key:
            occ = self.mask[None, None].float()
            levels = [occ] + [
                F.max_pool3d(occ, 2 * d + 1, stride=1, padding=d) for d in range(1, self.MAX_DILATION + 1)
            ]
            cached = (key, (torch.cat(levels).reshape(-1) > 0.5))
            self._pyramid_cache = cached
        return cached[1]

    def fraction(self) -> float:
        """Fraction of the cells that are occupied."""
        return self.mask.float().mean().item()

    def bbox(self) -> torch.Tensor | None:
        """``[2, 3]`` box spanned by the occupied cells (their outer faces), or None if none is occupied."""
        idx = self.mask.nonzero()
        if idx.numel() == 0:
            return None
        res = torch.tensor(self.mask.shape, device=idx.device, dtype=self.aabb.dtype)
        size = (self.aabb[1] - self.aabb[0]) / res
        lo = self.aabb[0] + idx.min(0).values.to(size.dtype) * size
        hi = self.aabb[0] + (idx.max(0).values.to(size.dtype) + 1) * size
        return torch.stack([lo, hi])

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        aabb: torch.Tensor,
        resolution: Sequence[int],
        alpha_threshold: float,
        dilation: int = 1,
        chunk: int = 1 << 18,
    ) -> bool:
        """Rebuild the grid over ``aabb`` at ``resolution`` from the density at the cell centres.

        A cell is occupied when a ray segment one cell long through its centre absorbs at least
        ``alpha_threshold`` of the light, ``1 - exp(-sigma * s_mean) >= alpha_threshold``, or when one of
        its neighbours within ``dilation`` cells is (the centre sample can miss a thin surface that crosses
        the cell; dilation catches it). ``density_fn(xyz [M, 3]) -> sigma [M]`` is evaluated in chunks and
        should include the current mask, so that empty space, once carved, stays empty (except for the
        dilation margin, through which the field can grow back one cell per update).

        Returns False, keeping the old grid, if no cell would be occupied.
        """
        aabb = torch.as_tensor(aabb, dtype=self.aabb.dtype, device=self.aabb.device).reshape(2, 3)
        res = tuple(int(r) for r in resolution)
        pts = cell_centers(aabb, res).reshape(-1, 3)
        sigma = torch.cat(
            [density_fn(pts[s : s + chunk]).to(pts.dtype) for s in range(0, pts.shape[0], chunk)]
        )
        step = ((aabb[1] - aabb[0]) / torch.tensor(res, dtype=aabb.dtype, device=aabb.device)).mean()
        occ = (1.0 - torch.exp(-sigma * step)) >= alpha_threshold
        occ = occ.reshape(1, 1, *res).float()
        if dilation > 0:
            occ = F.max_pool3d(occ, 2 * dilation + 1, stride=1, padding=dilation)
        if not occ.any():
            # An all-empty grid could never recover (the field is zero, hence untrainable, everywhere):
            # this happens when the update comes before any density has formed. Keep the old grid.
            return False
        self.aabb = aabb.clone()
        self.mask = occ[0, 0] > 0.5
        return True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_to_state(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
