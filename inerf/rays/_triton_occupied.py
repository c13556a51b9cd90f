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
    o_ptr,
    step_ptr,
    t_ptr,
    t_stride,
    mask_ptr,
    index_ptr,
    valid_ptr,
    S,
    M,
    lo0,
    lo1,
    lo2,
    hi0,
    hi1,
    hi2,
    sc0,
    sc1,
    sc2,
    top0,
    top1,
    top2,
    stride0,
    stride1,
    BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
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
        tl.store(index_ptr + r * M + rank - 1, s.to(tl.int64), mask=occ & (rank <= M))
        count += tl.sum(occ.to(tl.int32), 0)
    for j0 in range(0, M, BLOCK_M):
        j = j0 + tl.arange(0, BLOCK_M)
        inside_m = j < M
        filled = j < count
        tl.store(valid_ptr + r * M + j, filled.to(tl.uint8), mask=inside_m)
        tl.store(index_ptr + r * M + j, (S - 1 + 0 * j).to(tl.int64), mask=inside_m & (j >= count))


def compact_along_rays(origins, step, t, budget: int, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """``index [R, M]``, ``valid [R, M]`` of the first ``M = min(budget, S)`` samples of each ray in an
    occupied cell of ``grid`` (an :class:`~inerf.fields.occupancy.OccupancyGrid`), for the points
    ``origins [R, 3] + step [R, 3] * t [R or 1, S]``."""
    R, S = origins.shape[0], t.shape[-1]
    M = min(budget, S)
    consts = grid.host_constants()  # cached per grid state; float32 values pass exactly as Python floats
    index = torch.empty(R, M, dtype=torch.long, device=origins.device)
    valid = torch.empty(R, M, dtype=torch.bool, device=origins.device)
    if R and M:
        t = t.float().contiguous()
        _compact_kernel[(R,)](
            origins.float().contiguous(),
            step.float().contiguous(),
            t,
            t.stride(0) if t.shape[0] > 1 else 0,
            grid.mask.view(torch.uint8),
            index,
            valid.view(torch.uint8),
            S,
            M,
            *consts,
            BLOCK=min(1024, triton.next_power_of_2(S)),
            BLOCK_M=triton.next_power_of_2(M),
            enable_fp_fusion=False,
        )
    return index, valid
