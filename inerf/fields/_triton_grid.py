"""Triton kernels of the frozen grid field's factors (:meth:`inerf.fields.grid.GridField._query_packed`).

The packed query samples six textures (three planes, three lines, ``C`` channels each) with one
``grid_sample`` and multiplies plane by line: ``[6, C, N]`` samples, ``[3, C, N]`` factors, and in the
backward pass the same sizes again for each product rule term. For a 64-hypothesis pose step (950 k pooled
points, ``C = 32``) that is ~8.6 GB of memory traffic per step (``benchmarks/count_pose_ops.py --bytes``).
Here one program per block of points computes its points' texture coordinates, the bilinear taps (from a
channels-last copy of the textures, small enough to stay in L2), the factors ``f [N, 3 C]`` (point-major,
ready for the appearance product) and the density sum over the first ``cd`` channels; the backward kernel
recomputes the taps and returns the gradient with respect to the points only (the field is frozen).

Coordinates follow ``grid_sample(align_corners=True, padding_mode="border")``: texture pixel
``(g + 1) / 2 (size - 1)`` clamped to the texture, no gradient where clamped. The torch path in
``_query_packed`` is the reference (tests run these kernels in Triton's interpreter on the CPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _axis(xyz0, xyz1, xyz2, w_ptr, b_ptr, k: tl.constexpr, j: tl.constexpr, size):
    """Texture ``k``'s pixel coordinate ``j`` (0: x, 1: y) of the points, its clamp, tap and fraction."""
    w0 = tl.load(w_ptr + k * 6 + j * 3)
    w1 = tl.load(w_ptr + k * 6 + j * 3 + 1)
    w2 = tl.load(w_ptr + k * 6 + j * 3 + 2)
    g = xyz0 * w0 + xyz1 * w1 + xyz2 * w2 + tl.load(b_ptr + k * 2 + j)
    p = (g + 1.0) * 0.5 * (size - 1)
    inside = (p > 0) & (p < size - 1)
    p = tl.minimum(tl.maximum(p, 0.0), size - 1.0)
    p0 = tl.minimum(tl.floor(p), size - 2.0)
    return p0.to(tl.int64), p - p0, inside, w0, w1, w2


@triton.jit
def _texture(tex_ptr, k: tl.constexpr, x0, y0, fx, fy, cols, m, Hm, Wm, C: tl.constexpr):
    """Bilinear value of texture ``k`` and its derivatives along its x and y pixel axes, ``[ROWS, BC]``."""
    base = ((k * Hm + y0) * Wm + x0) * C
    b = base[:, None] + cols
    t00 = tl.load(tex_ptr + b, mask=m, other=0.0)
    t01 = tl.load(tex_ptr + b + C, mask=m, other=0.0)
    t10 = tl.load(tex_ptr + b + Wm * C, mask=m, other=0.0)
    t11 = tl.load(tex_ptr + b + (Wm + 1) * C, mask=m, other=0.0)
    fx, fy = fx[:, None], fy[:, None]
    top = t00 + fx * (t01 - t00)
    bottom = t10 + fx * (t11 - t10)
    value = top + fy * (bottom - top)
    d_x = (1.0 - fy) * (t01 - t00) + fy * (t11 - t10)
    d_y = bottom - top
    return value, d_x, d_y


@triton.jit
def _vm_kernel(
    xyz_ptr, tex_ptr, w_ptr, b_ptr, f_ptr, raw_ptr, g_f_ptr, g_raw_ptr, g_xyz_ptr, n, Hm, Wm, cd,
    C: tl.constexpr, BC: tl.constexpr, ROWS: tl.constexpr, BACKWARD: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    valid = rows < n
    r64 = rows.to(tl.int64)
    x = tl.load(xyz_ptr + r64 * 3, mask=valid, other=0.0)
    y = tl.load(xyz_ptr + r64 * 3 + 1, mask=valid, other=0.0)
    z = tl.load(xyz_ptr + r64 * 3 + 2, mask=valid, other=0.0)
    c = tl.arange(0, BC)
    cols = c[None, :]
    m = valid[:, None] & (cols < C)
    dens = (cols < cd).to(tl.float32)
    raw = tl.zeros((ROWS,), dtype=tl.float32)
    if BACKWARD:
        g_raw = tl.load(g_raw_ptr + r64, mask=valid, other=0.0)
        gx = tl.zeros((ROWS,), dtype=tl.float32)
        gy = tl.zeros((ROWS,), dtype=tl.float32)
        gz = tl.zeros((ROWS,), dtype=tl.float32)
    for k in tl.static_range(3):
        # Plane k over its two axes; line k (texture 3 + k) along its y axis only (its x is pinned at the
        # first column by a zero weight row: clamped, no gradient).
        px0, pfx, pin_x, a0, a1, a2 = _axis(x, y, z, w_ptr, b_ptr, k, 0, Wm)
        py0, pfy, pin_y, b0, b1, b2 = _axis(x, y, z, w_ptr, b_ptr, k, 1, Hm)
        lx0, lfx, _, _, _, _ = _axis(x, y, z, w_ptr, b_ptr, 3 + k, 0, Wm)
        ly0, lfy, lin_y, e0, e1, e2 = _axis(x, y, z, w_ptr, b_ptr, 3 + k, 1, Hm)
        plane, p_dx, p_dy = _texture(tex_ptr, k, px0, py0, pfx, pfy, cols, m, Hm, Wm, C)
        line, _, l_dy = _texture(tex_ptr, 3 + k, lx0, ly0, lfx, lfy, cols, m, Hm, Wm, C)
        if BACKWARD:
            g = tl.load(g_f_ptr + r64[:, None] * (3 * C) + k * C + cols, mask=m, other=0.0)
            g = g + g_raw[:, None] * dens
            # d/d(pixel) -> d/d(grid coordinate): (size - 1) / 2, zero where the coordinate was clamped.
            d_px = tl.where(pin_x, tl.sum(g * line * p_dx, axis=1) * (0.5 * (Wm - 1)), 0.0)
            d_py = tl.where(pin_y, tl.sum(g * line * p_dy, axis=1) * (0.5 * (Hm - 1)), 0.0)
            d_ly = tl.where(lin_y, tl.sum(g * plane * l_dy, axis=1) * (0.5 * (Hm - 1)), 0.0)
            gx += d_px * a0 + d_py * b0 + d_ly * e0
            gy += d_px * a1 + d_py * b1 + d_ly * e1
            gz += d_px * a2 + d_py * b2 + d_ly * e2
        else:
            f = plane * line
            tl.store(f_ptr + r64[:, None] * (3 * C) + k * C + cols, f, mask=m)
            raw += tl.sum(f * dens, axis=1)
    if BACKWARD:
        tl.store(g_xyz_ptr + r64 * 3, gx, mask=valid)
        tl.store(g_xyz_ptr + r64 * 3 + 1, gy, mask=valid)
        tl.store(g_xyz_ptr + r64 * 3 + 2, gz, mask=valid)
    else:
        tl.store(raw_ptr + r64, raw, mask=valid)


ROWS = 32


def _launch(xyz, textures_cl, coord_w, coord_b, cd: int, f, raw, g_f, g_raw, g_xyz, backward: bool):
    n = xyz.shape[0]
    _, Hm, Wm, C = textures_cl.shape
    if n:
        _vm_kernel[(triton.cdiv(n, ROWS),)](
            xyz, textures_cl, coord_w, coord_b, f, raw, g_f, g_raw, g_xyz, n, Hm, Wm, cd,
            C=C, BC=triton.next_power_of_2(C), ROWS=ROWS, BACKWARD=backward,
        )  # fmt: skip


class _VMFactors(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xyz, textures_cl, coord_w, coord_b, cd: int):
        xyz = xyz.contiguous()
        n, C = xyz.shape[0], textures_cl.shape[-1]
        f = torch.empty(n, 3 * C, device=xyz.device, dtype=torch.float32)
        raw = torch.empty(n, device=xyz.device, dtype=torch.float32)
        _launch(xyz, textures_cl, coord_w, coord_b, cd, f, raw, f, raw, xyz, backward=False)
        ctx.save_for_backward(xyz, textures_cl, coord_w, coord_b)
        ctx.cd = cd
        return f, raw

    @staticmethod
    def backward(ctx, g_f, g_raw):
        xyz, textures_cl, coord_w, coord_b = ctx.saved_tensors
        n, C = xyz.shape[0], textures_cl.shape[-1]
        g_f = xyz.new_zeros(n, 3 * C) if g_f is None else g_f.float().contiguous()
        g_raw = xyz.new_zeros(n) if g_raw is None else g_raw.float().contiguous()
        g_xyz = torch.empty_like(xyz)
        _launch(xyz, textures_cl, coord_w, coord_b, ctx.cd, g_f, g_raw, g_f, g_raw, g_xyz, backward=True)
        return g_xyz, None, None, None, None


def vm_factors(xyz, textures_cl, coord_w, coord_b, cd: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f [N, 3 C], raw [N])``: the factors ``plane_k * line_k`` of the points ``xyz [N, 3]`` (point-major,
    factor-major columns: ``f[:, k C + c]``) and the density sum over channels ``c < cd``, from the
    channels-last textures ``[6, Hm, Wm, C]`` and the packed affine maps ``coord_w [6, 2, 3]``,
    ``coord_b [6, 2]``; differentiable with respect to ``xyz``."""
    return _VMFactors.apply(xyz, textures_cl, coord_w.contiguous(), coord_b.contiguous(), cd)
