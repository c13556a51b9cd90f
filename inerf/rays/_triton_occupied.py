"""Triton kernel of :func:`inerf.rays.occupied.compact_along_rays`: each ray's first occupied samples in one
pass, without materialising the ``[R, S]`` points, cells and flags that the torch version builds.

One program per ray walks its samples in blocks: the point ``o + step * t`` (a product, then a sum, in
float32: fused multiply-adds are disabled so the points are the torch version's floats), the occupancy
grid's cell by truncation and clamping, the mask lookup, then each occupied sample's rank among the ray's
occupied ones (a prefix sum) places its index in the ``[R, M]`` output. Slots past the ray's count are
padding (index ``S - 1``, invalid), written by the same program, so no slot is written twice.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _compact_kernel(
    o_ptr, step_ptr, t_ptr, t_stride, seg_ptr, seg_stride, mask_ptr, index_ptr, valid_ptr, tc_ptr, segc_ptr,
    S, M, lo0, lo1, lo2, hi0, hi1, hi2, sc0, sc1, sc2, top0, top1, top2, stride0, stride1,
    BLOCK: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0).to(tl.int64)
    o0 = tl.load(o_ptr + r * 3)
    o1 = tl.load(o_ptr + r * 3 + 1)
    o2 = tl.load(o_ptr + r * 3 + 2)
    d0 = tl.load(step_ptr + r * 3)
    d1 = tl.load(step_ptr + r * 3 + 1)
    d2 = tl.load(step_ptr + r * 3 + 2)
    count = tl.zeros((), dtype=tl.int32)
    for s0 in range(0, S, BLOCK):
        s = s0 + tl.arange(0, BLOCK)
        ok = s < S
        t = tl.load(t_ptr + r * t_stride + s, mask=ok, other=0.0)
        x = o0 + d0 * t
        y = o1 + d1 * t
        z = o2 + d2 * t
        inside = (x >= lo0) & (x <= hi0) & (y >= lo1) & (y <= hi1) & (z >= lo2) & (z <= hi2)
        cx = tl.minimum(tl.maximum(((x - lo0) * sc0).to(tl.int64), 0), top0)
        cy = tl.minimum(tl.maximum(((y - lo1) * sc1).to(tl.int64), 0), top1)
        cz = tl.minimum(tl.maximum(((z - lo2) * sc2).to(tl.int64), 0), top2)
        live = ok & inside
        cell = tl.load(mask_ptr + cx * stride0 + cy * stride1 + cz, mask=live, other=0)
        occ = live & (cell != 0)
        rank = tl.cumsum(occ.to(tl.int32), 0) + count  # 1-based among the ray's occupied samples
        kept = occ & (rank <= M)
        slot = r * M + rank - 1
        tl.store(index_ptr + slot, s.to(tl.int64), mask=kept)
        # The kept samples' distances and interval lengths: the gathers the caller would do next.
        tl.store(tc_ptr + slot, t, mask=kept)
        seg = tl.load(seg_ptr + r * seg_stride + s, mask=kept, other=0.0)
        tl.store(segc_ptr + slot, seg, mask=kept)
        count += tl.sum(occ.to(tl.int32), 0)
    t_last = tl.load(t_ptr + r * t_stride + S - 1)
    for j0 in range(0, M, BLOCK_M):
        j = j0 + tl.arange(0, BLOCK_M)
        inside_m = j < M
        filled = j < count
        pad = inside_m & (j >= count)
        tl.store(valid_ptr + r * M + j, filled.to(tl.uint8), mask=inside_m)
        # Padding: index S - 1, that sample's distance, a zero-length interval.
        tl.store(index_ptr + r * M + j, (S - 1 + 0 * j).to(tl.int64), mask=pad)
        tl.store(tc_ptr + r * M + j, t_last + 0.0 * j, mask=pad)
        tl.store(segc_ptr + r * M + j, 0.0 * j, mask=pad)


def compact_along_rays(origins, step, t, budget: int, grid, seg=None):
    """``index [R, M]``, ``valid [R, M]`` of the first ``M = min(budget, S)`` samples of each ray in an
    occupied cell of ``grid`` (an :class:`~inerf.fields.occupancy.OccupancyGrid`), for the points
    ``origins [R, 3] + step [R, 3] * t [R or 1, S]``; then ``t`` and ``seg [R or 1, S]`` (interval lengths;
    zeros if None) at those samples, ``[R, M]`` float32 each (padding: the last ``t``, a zero interval)."""
    R, S = origins.shape[0], t.shape[-1]
    M = min(budget, S)
    consts = grid.host_constants()  # cached per grid state; float32 values pass exactly as Python floats
    device = origins.device
    index = torch.empty(R, M, dtype=torch.long, device=device)
    valid = torch.empty(R, M, dtype=torch.bool, device=device)
    t_c = torch.empty(R, M, dtype=torch.float32, device=device)
    seg_c = torch.empty(R, M, dtype=torch.float32, device=device)
    if R and M:
        t = t.float().reshape(-1, S).contiguous()  # [R, S] or [1, S] (a 1-D t is one shared row)
        seg = torch.zeros_like(t[:1]) if seg is None else seg.float().reshape(-1, S).contiguous()
        _compact_kernel[(R,)](
            origins.float().contiguous(), step.float().contiguous(),
            t, t.stride(0) if t.shape[0] > 1 else 0, seg, seg.stride(0) if seg.shape[0] > 1 else 0,
            grid.mask.view(torch.uint8), index, valid.view(torch.uint8), t_c, seg_c, S, M, *consts,
            BLOCK=min(1024, triton.next_power_of_2(S)), BLOCK_M=triton.next_power_of_2(M),
            enable_fp_fusion=False,
        )  # fmt: skip
    return index, valid, t_c, seg_c
