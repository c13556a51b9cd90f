"""Occupied samples at a fixed budget per ray: empty-space skipping with static shapes.

A field with an occupancy grid is exactly zero in empty cells, so compositing only the samples in occupied
cells gives the same colour as compositing all of them (an empty sample has alpha 0: it multiplies the
transmittance by 1 and adds nothing). Gathering the occupied samples with ``nonzero`` makes the number of
field queries data-dependent, which forces a host synchronisation and defeats CUDA-graph capture. Here each
ray keeps its first ``budget`` occupied samples in a ``[R, budget]`` layout (rank by a cumulative sum,
placed by a scatter): no synchronisation, fixed shapes. Rays with fewer occupied samples are padded with
empty slots (zero-length intervals); a ray with more drops the samples behind its ``budget``-th occupied one,
where a solid object has long absorbed the light (the count of such rays is returned for checking).

The per-ray budget must hold the occupied samples of the rays that hit the object, yet most rays of a pose
step (random pixels) miss it: on the shared chair's grid field 79% of the rays have no occupied sample and
the others 57 on average (of 933), so a ``[R, budget]`` query would be ~90% padding. :func:`pool_slots`
therefore packs the valid slots of all rays into one pool of fixed size ``P`` (the field is queried only
there, then the results are scattered back into the ``[R, budget]`` layout for compositing); the count of
valid slots that did not fit is returned so that the caller can grow ``P``.

Two levels (:func:`occupied_two_level`). Testing every sample still touches ``R x S`` points per pass (the
chair: 933 samples per ray, 2048 rays x 64 hypotheses), although the kept layout is ``[R, budget]``. So
consecutive samples are grouped in chunks of ``c``; a conservative test of each chunk's segment
(:meth:`inerf.fields.occupancy.OccupancyGrid.segments_occupied`) keeps each ray's first ``Mc`` possibly
occupied chunks (:func:`compact_occupied` over ``[R, S / c]``), whose ``Mc c`` samples alone get the exact
test and the compaction to ``budget``. A chunk the coarse test calls empty holds no occupied sample, so the
candidates hold every occupied sample of the ray up to the end of its ``Mc``-th kept chunk, in order: the
result is :func:`compact_occupied`'s, slot for slot, unless a ray has more than ``Mc`` possibly occupied
chunks and fewer than ``budget`` occupied samples in the first ``Mc`` (``truncated``, returned).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "FUSED",
    "compact_occupied",
    "compact_occupied_reference",
    "fused_available",
    "gather_sorted_rows",
    "occupied_two_level",
    "pool_slots",
    "pool_slots_reference",
    "run_bounds",
    "running_sum",
]


FUSED = True
"""Whether :func:`fused_available` may say yes (False: the torch ops everywhere, for ablations)."""


def fused_available(t: torch.Tensor) -> bool:
    """Whether the one-kernel occupancy compaction (:meth:`OccupancyGrid.compact_along_rays`) serves tensors
    like ``t``: CUDA with Triton importable."""
    if not (FUSED and t.is_cuda):
        return False
    try:
        import inerf.rays._triton_occupied  # noqa: F401
    except Exception:  # noqa: BLE001 - no Triton: the torch ops serve
        return False
    return True


def compact_occupied(occupied: torch.Tensor, budget: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the first ``budget`` occupied samples of each ray.

    Args:
        occupied: ``bool [R, S]``, whether sample ``s`` of ray ``r`` lies in an occupied cell (samples sorted
            along the ray).
        budget: ``M``, the samples kept per ray.
    Returns:
        ``index [R, M]`` (int64) into the ``S`` samples, increasing along each ray over the valid slots;
        ``valid bool [R, M]`` (padding slots point at sample ``S - 1`` and are invalid); ``overflow [R]``
        (bool), rays that had more than ``M`` occupied samples.
    """
    R, S = occupied.shape
    device = occupied.device
    # 1-based position of each occupied sample among its ray's occupied ones.
    rank = occupied.cumsum(-1, dtype=torch.long)
    # Kept samples go to column `rank` (1..M) of an [R, M + 1] buffer; everything else to the spare column
    # 0, dropped below (scatter with repeated indices leaves an unspecified winner there, never read).
    # Columns a ray does not fill keep their initial S - 1: the padding needs no second pass.
    dest = rank * (occupied & (rank <= budget))
    index = torch.full((R, budget + 1), S - 1, dtype=torch.long, device=device)
    index.scatter_(1, dest, torch.arange(S, device=device).expand(R, S))
    last = rank[:, -1:]  # occupied samples per ray
    valid = torch.arange(1, budget + 1, device=device) <= last
    return index[:, 1:], valid, last[:, 0] > budget


def occupied_two_level(
    points,
    occupied,
    segments_occupied,
    t: torch.Tensor,
    budget: int,
    chunk: int,
    chunk_budget: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`compact_occupied` of the samples ``t`` without testing every sample (module docstring).

    Args:
        points: ``t [R, N] -> xyz [R, N, 3]``, the rays' points at distances ``t`` (elementwise in ``t``, so
            a sample's point is the same floats whichever samples are computed with it).
        occupied: ``xyz [P, 3] -> bool [P]``, the exact per-sample test.
        segments_occupied: ``(first [P, 3], last [P, 3]) -> bool [P]``, a conservative test of straight
            segments: False only if no point between ``first`` and ``last`` is ``occupied``.
        t: ``[R, S]`` (or broadcastable to it along rays) sample distances, sorted along each ray.
        budget: ``M``, the occupied samples kept per ray.
        chunk: ``c``, samples per chunk (the last chunk may be shorter).
        chunk_budget: ``Mc``, possibly occupied chunks kept per ray; 0: ``ceil(1.5 M / c) + 1`` (the
            coarse test also passes chunks near occupied cells: on the chair's grid field, 2048 rays x 3
            poses, ``ceil(M / c) + 1`` changed 15-28 rays of 2048, this none); at least ``ceil(M / c)``
            (and at most the number of chunks).
    Returns:
        ``index [R, min(M, S)]``, ``valid``, as :func:`compact_occupied` (padding slots point at ``S - 1``);
        ``truncated bool [R]``: rays with more than ``Mc`` possibly occupied chunks whose first ``Mc`` hold
        fewer than ``M`` occupied samples (only these may differ from :func:`compact_occupied`).
    """
    S = t.shape[-1]
    device = t.device
    budget = min(budget, S)
    n_chunks = -(-S // chunk)
    mc = chunk_budget if chunk_budget > 0 else -(-3 * budget // (2 * chunk)) + 1
    mc = min(n_chunks, max(mc, -(-budget // chunk)))  # room for M samples
    starts = torch.arange(0, S, chunk, device=device)
    ends = (starts + chunk - 1).clamp_max(S - 1)
    ends_pts = points(t[:, torch.cat([starts, ends])])  # [R, 2 n_chunks, 3]: first and last samples
    first, last = ends_pts.reshape(-1, 2, n_chunks, 3).unbind(1)
    coarse = segments_occupied(first.reshape(-1, 3), last.reshape(-1, 3)).reshape(-1, n_chunks)
    c_index, c_valid, c_over = compact_occupied(coarse, mc)
    cand = (c_index[:, :, None] * chunk + torch.arange(chunk, device=device)).reshape(-1, mc * chunk)
    cand_ok = (c_valid[:, :, None].expand(-1, mc, chunk).reshape(cand.shape)) & (cand < S)
    cand = cand.clamp_max(S - 1)
    t_cand = torch.gather(t.expand(cand.shape[0], S), 1, cand)
    occ = occupied(points(t_cand).reshape(-1, 3)).reshape(cand.shape) & cand_ok
    j, valid, _ = compact_occupied(occ, budget)
    index = torch.where(valid, torch.gather(cand, 1, j), S - 1)
    return index, valid, c_over & (occ.sum(-1) < budget)


def compact_occupied_reference(occupied: torch.Tensor, budget: int):
    """Slow reference of :func:`compact_occupied`: a Python loop over rays with ``nonzero``."""
    R, S = occupied.shape
    index = torch.full((R, budget), S - 1, dtype=torch.long)
    valid = torch.zeros(R, budget, dtype=torch.bool)
    overflow = torch.zeros(R, dtype=torch.bool)
    for r in range(R):
        idx = occupied[r].nonzero().squeeze(1).cpu()
        overflow[r] = len(idx) > budget
        idx = idx[:budget]
        index[r, : len(idx)] = idx
        valid[r, : len(idx)] = True
    return index, valid, overflow


def pool_slots(valid: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``pool`` valid slots of ``valid`` in row-major order, with static shapes (no host sync).

    Args:
        valid: ``bool [R, M]`` (or any shape; it is flattened), e.g. :func:`compact_occupied`'s ``valid``.
        pool: ``P``, the number of slots kept.
    Returns:
        ``slots [P]`` (int64) flat indices into ``valid``, increasing over the kept slots; padding entries
        hold ``valid.numel()`` (one past the end: give the scatter target a spare element there);
        ``kept bool [P]``; ``dropped`` (int64 scalar tensor), the valid slots that did not fit.
    """
    flat = valid.reshape(-1)
    n = flat.numel()
    device = valid.device
    rank = flat.cumsum(0, dtype=torch.long)  # 1-based rank of each valid slot
    # As in compact_occupied: kept slots go to entries 1..P, the rest to the spare entry 0; entries not
    # written keep their initial n (padding).
    dest = rank * (flat & (rank <= pool))
    slots = torch.full((pool + 1,), n, dtype=torch.long, device=device)
    slots.scatter_(0, dest, torch.arange(n, device=device))
    slots = slots[1:]
    total = rank[-1] if n > 0 else torch.zeros((), dtype=torch.long, device=device)
    return slots, slots < n, (total - pool).clamp_min(0)


def pool_slots_reference(valid: torch.Tensor, pool: int):
    """Slow reference of :func:`pool_slots` with ``nonzero``."""
    flat = valid.reshape(-1)
    idx = flat.nonzero().squeeze(1)
    slots = torch.full((pool,), flat.numel(), dtype=torch.long)
    kept = torch.zeros(pool, dtype=torch.bool)
    m = min(pool, len(idx))
    slots[:m] = idx[:m]
    kept[:m] = True
    return slots, kept, torch.tensor(max(0, len(idx) - pool))


def run_bounds(index: torch.Tensor, rows: int) -> torch.Tensor:
    """``[rows + 1]``: where each row's run starts in the non-decreasing ``index [P]`` (and ``P`` at the end),
    so row ``r``'s entries are ``bounds[r] : bounds[r + 1]`` (empty for a row with none)."""
    return torch.searchsorted(index, torch.arange(rows + 1, device=index.device, dtype=index.dtype))


def running_sum(values: torch.Tensor) -> torch.Tensor:
    """``[P + 1, ...]`` float64: ``out[i]`` is the sum of ``values[:i]``. Differenced at run bounds it gives
    per-run sums without atomic additions (so run-to-run identical on a GPU); float64 keeps the difference of
    two long sums exact enough for float32 values."""
    P = values.shape[0]
    C = math.prod(values.shape[1:])
    flat = values.reshape(P, C)
    # One 1-D scan over the columns laid end to end, each behind a zero: ``[0, v_0[0], ..., v_0[P-1], 0,
    # v_1[0], ...]``. CUDA scans a 1-D tensor with CUB across the whole chip; a scan along dim 0 of ``[P, 3]``
    # parallelises over the 3 columns only, and one along the rows of ``[3, P]`` over 3 rows (on an H200 the
    # first made a 64-hypothesis step 15x slower, the second still took 2.9 of its 12 ms).
    laid = torch.empty(C, P + 1, dtype=torch.float64, device=values.device)
    laid[:, 0] = 0
    laid[:, 1:].copy_(flat.t())
    scanned = laid.view(-1).cumsum(0).view(C, P + 1)
    # Each column's sums start from the total of the columns before it: taken off at its leading zero.
    return (scanned - scanned[:, :1]).t().reshape(P + 1, *values.shape[1:])


class _GatherSortedRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index):
        ctx.save_for_backward(index)
        ctx.rows = src.shape[0]
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        # Each source row's gradient is the sum of a contiguous run of ``grad`` (``index`` is sorted).
        running, bounds = running_sum(grad), run_bounds(index, ctx.rows)
        return (running[bounds[1:]] - running[bounds[:-1]]).to(grad.dtype), None


def gather_sorted_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` for ``src [R, C]`` and a **non-decreasing** ``index [P]`` (a pool's ray of each slot),
    whose gradient w.r.t. ``src`` is computed without atomic additions: run-to-run identical on a GPU, where
    ``torch.gather``'s backward (a scatter-add) is not. Static shapes, no host synchronisation."""
    return _GatherSortedRows.apply(src, index)
