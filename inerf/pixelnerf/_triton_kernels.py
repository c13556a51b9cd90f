"""Triton kernels of :mod:`inerf.pixelnerf.fast_mlp`: elementwise steps fused into one pass over memory, and
the bilinear feature lookup (forward and its gradient with respect to the image coordinates).

Rows of ``C`` (the network width, a power of two) values; a row stride of 0 broadcasts a bias vector. Each
program handles ``ROWS`` rows. The torch versions in :mod:`inerf.pixelnerf.fast_mlp` are the reference
(tests run these kernels in Triton's interpreter on the CPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ROWS = 8


@triton.jit
def _add_relu_kernel(
    h_ptr,
    y_ptr,
    z_ptr,
    out_ptr,
    act_ptr,
    n_rows,
    h_stride,
    y_stride,
    z_stride,
    C: tl.constexpr,
    ROWS: tl.constexpr,
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, C)
    mask = (rows < n_rows)[:, None]
    r = rows[:, None].to(tl.int64)
    h = tl.load(h_ptr + r * h_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + r * y_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + r * z_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    out = h + y + z
    offs = r * C + cols[None, :]
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(act_ptr + offs, tl.maximum(out, 0.0).to(act_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _add_relu_out_kernel(
    h_ptr,
    y_ptr,
    z_ptr,
    w_ptr,
    b_ptr,
    act_ptr,
    raw_ptr,
    n_rows,
    h_stride,
    y_stride,
    z_stride,
    C: tl.constexpr,
    D: tl.constexpr,
    ROWS: tl.constexpr,
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, C)
    valid = rows < n_rows
    mask = valid[:, None]
    r = rows[:, None].to(tl.int64)
    h = tl.load(h_ptr + r * h_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + r * y_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + r * z_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    act = tl.maximum(h + y + z, 0.0).to(act_ptr.dtype.element_ty)
    tl.store(act_ptr + r * C + cols[None, :], act, mask=mask)
    a = act.to(tl.float32)  # the output layer sees the stored (rounded) activation, as a matrix product would
    for k in tl.static_range(D):
        w = tl.load(w_ptr + k * C + cols).to(tl.float32)
        out = tl.sum(a * w[None, :], axis=1) + tl.load(b_ptr + k).to(tl.float32)
        tl.store(raw_ptr + rows.to(tl.int64) * D + k, out, mask=valid)


@triton.jit
def _relu_grad_kernel(g_ptr, r_ptr, n_rows, C: tl.constexpr, ROWS: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, C)
    mask = (rows < n_rows)[:, None]
    offs = rows[:, None].to(tl.int64) * C + cols[None, :]
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    r = tl.load(r_ptr + offs, mask=mask, other=0.0)
    tl.store(g_ptr + offs, tl.where(r > 0, g, 0.0).to(g_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _add_masked_kernel(
    g_ptr, ga_ptr, a_ptr, out_ptr, n_rows, g_stride, out_stride, C: tl.constexpr, ROWS: tl.constexpr
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, C)[None, :]
    mask = (rows < n_rows)[:, None]
    r = rows[:, None].to(tl.int64)
    g = tl.load(g_ptr + r * g_stride + cols, mask=mask, other=0.0).to(tl.float32)
    ga = tl.load(ga_ptr + r * C + cols, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + r * C + cols, mask=mask, other=0.0)
    out = g + tl.where(a > 0, ga, 0.0)
    tl.store(out_ptr + r * out_stride + cols, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _out_grad_kernel(
    graw_ptr, w_ptr, a_ptr, g_ptr, n_rows, C: tl.constexpr, D: tl.constexpr, ROWS: tl.constexpr
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, C)
    valid = rows < n_rows
    acc = tl.zeros((ROWS, C), dtype=tl.float32)
    for k in tl.static_range(D):
        gk = tl.load(graw_ptr + rows.to(tl.int64) * D + k, mask=valid, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + k * C + cols).to(tl.float32)
        acc += gk[:, None] * w[None, :]
    offs = rows[:, None].to(tl.int64) * C + cols[None, :]
    a = tl.load(a_ptr + offs, mask=valid[:, None], other=0.0)
    tl.store(g_ptr + offs, tl.where(a > 0, acc, 0.0).to(g_ptr.dtype.element_ty), mask=valid[:, None])


def _row_stride(t: torch.Tensor) -> int:
    if t.ndim == 1:
        return 0
    if t.stride(1) != 1:
        raise ValueError("fast_mlp kernels need rows of contiguous values")
    return t.stride(0)


def add_relu(h: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, C = y.shape
    out = torch.empty(n, C, device=y.device, dtype=y.dtype)
    act = torch.empty_like(out)
    if n:
        _add_relu_kernel[(triton.cdiv(n, ROWS),)](
            h, y, z, out, act, n, _row_stride(h), _row_stride(y), _row_stride(z), C=C, ROWS=ROWS
        )
    return out, act


def add_relu_out(h, y, z, w_out, b_out) -> tuple[torch.Tensor, torch.Tensor]:
    n, C = y.shape
    D = w_out.shape[0]
    act = torch.empty(n, C, device=y.device, dtype=y.dtype)
    raw = torch.empty(n, D, device=y.device, dtype=torch.float32)
    if n:
        _add_relu_out_kernel[(triton.cdiv(n, ROWS),)](
            h, y, z, w_out.contiguous(), b_out, act, raw, n, _row_stride(h), _row_stride(y), _row_stride(z),
            C=C, D=D, ROWS=ROWS,
        )  # fmt: skip
    return act, raw


def relu_grad(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    n, C = g.shape
    if not (g.is_contiguous() and r.is_contiguous()):
        raise ValueError("relu_grad needs contiguous tensors")
    if n:
        _relu_grad_kernel[(triton.cdiv(n, ROWS),)](g, r, n, C=C, ROWS=ROWS)
    return g


def add_masked(g: torch.Tensor, ga: torch.Tensor, a: torch.Tensor, out=None) -> torch.Tensor:
    n, C = ga.shape
    if not (ga.is_contiguous() and a.is_contiguous()):
        raise ValueError("add_masked needs a contiguous gradient and activation")
    out = ga if out is None else out
    if n:
        _add_masked_kernel[(triton.cdiv(n, ROWS),)](
            g, ga, a, out, n, _row_stride(g), _row_stride(out), C=C, ROWS=ROWS
        )
    return out


def out_grad(g_raw: torch.Tensor, w_out: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    n, C = a.shape
    g = torch.empty_like(a)
    if n:
        _out_grad_kernel[(triton.cdiv(n, ROWS),)](
            g_raw.contiguous(), w_out.contiguous(), a, g, n, C=C, D=w_out.shape[0], ROWS=ROWS
        )
    return g


@triton.jit
def _corners(uv_ptr, rows, valid, sx, sy, H, W):
    """Bilinear corners of the points ``rows``: clamped (border padding) latent-pixel coordinates, the
    top-left tap and the fractions, and whether each coordinate lies strictly inside (it has a gradient)."""
    px = tl.load(uv_ptr + rows * 2, mask=valid, other=0.0) * sx
    py = tl.load(uv_ptr + rows * 2 + 1, mask=valid, other=0.0) * sy
    inside_x = (px > 0) & (px < W - 1)
    inside_y = (py > 0) & (py < H - 1)
    px = tl.minimum(tl.maximum(px, 0.0), W - 1.0)
    py = tl.minimum(tl.maximum(py, 0.0), H - 1.0)
    x0 = tl.minimum(tl.floor(px), W - 2.0)
    y0 = tl.minimum(tl.floor(py), H - 2.0)
    return x0.to(tl.int64), y0.to(tl.int64), px - x0, py - y0, inside_x, inside_y


@triton.jit
def _taps(lat_ptr, base, cols, m, C, W):
    """The four bilinear taps (top-left, top-right, bottom-left, bottom-right) of channels ``cols``."""
    t00 = tl.load(lat_ptr + base + cols, mask=m, other=0.0).to(tl.float32)
    t01 = tl.load(lat_ptr + base + C + cols, mask=m, other=0.0).to(tl.float32)
    t10 = tl.load(lat_ptr + base + W * C + cols, mask=m, other=0.0).to(tl.float32)
    t11 = tl.load(lat_ptr + base + (W + 1) * C + cols, mask=m, other=0.0).to(tl.float32)
    return t00, t01, t10, t11


@triton.jit
def _points(uv_ptr, n_rows, points, H, W, sx, sy, C: tl.constexpr, ROWS: tl.constexpr):
    """This program's points: their rows, validity, the offset of their top-left tap, the fractions (as
    columns) and whether each coordinate has a gradient."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    valid = rows < n_rows
    x0, y0, fx, fy, inside_x, inside_y = _corners(uv_ptr, rows, valid, sx, sy, H, W)
    base = (((rows // points).to(tl.int64) * H * W + y0 * W + x0) * C)[:, None]
    return rows, valid, base, fx[:, None], fy[:, None], inside_x, inside_y


@triton.jit
def _lookup_fwd_kernel(
    lat_ptr, uv_ptr, out_ptr, n_rows, points, out_stride, H, W, sx, sy,
    C: tl.constexpr, CB: tl.constexpr, ROWS: tl.constexpr,
):  # fmt: skip
    rows, valid, base, fx, fy, _, _ = _points(uv_ptr, n_rows, points, H, W, sx, sy, C, ROWS)
    m = valid[:, None]
    out_rows = rows[:, None].to(tl.int64) * out_stride
    for b in tl.static_range(C // CB):  # channel blocks of a power-of-two width
        cols = b * CB + tl.arange(0, CB)[None, :]
        t00, t01, t10, t11 = _taps(lat_ptr, base, cols, m, C, W)
        top = t00 + fx * (t01 - t00)
        bottom = t10 + fx * (t11 - t10)
        out = top + fy * (bottom - top)
        tl.store(out_ptr + out_rows + cols, out.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _lookup_bwd_kernel(
    lat_ptr, uv_ptr, g_ptr, guv_ptr, n_rows, points, g_stride, H, W, sx, sy,
    C: tl.constexpr, CB: tl.constexpr, ROWS: tl.constexpr,
):  # fmt: skip
    rows, valid, base, fx, fy, inside_x, inside_y = _points(uv_ptr, n_rows, points, H, W, sx, sy, C, ROWS)
    m = valid[:, None]
    g_rows = rows[:, None].to(tl.int64) * g_stride
    d_px = tl.zeros((ROWS,), dtype=tl.float32)
    d_py = tl.zeros((ROWS,), dtype=tl.float32)
    for b in tl.static_range(C // CB):
        cols = b * CB + tl.arange(0, CB)[None, :]
        t00, t01, t10, t11 = _taps(lat_ptr, base, cols, m, C, W)
        g = tl.load(g_ptr + g_rows + cols, mask=m, other=0.0).to(tl.float32)
        d_px += tl.sum(g * ((1.0 - fy) * (t01 - t00) + fy * (t11 - t10)), axis=1)
        d_py += tl.sum(g * ((1.0 - fx) * (t10 - t00) + fx * (t11 - t01)), axis=1)
    tl.store(guv_ptr + rows * 2, tl.where(inside_x, d_px * sx, 0.0), mask=valid)
    tl.store(guv_ptr + rows * 2 + 1, tl.where(inside_y, d_py * sy, 0.0), mask=valid)


LOOKUP_ROWS = 4


def channel_block(C: int) -> int:
    """The largest power of two (at most 512) dividing ``C``: the lookup kernels' channel block."""
    return min(C & -C, 512)


def _launch_lookup(kernel, latent_cl, uv, data, out, points: int, stride: int, scale) -> None:
    """One lookup kernel over ``uv``'s points (``data``/``out``: the kernel's third and fourth pointers)."""
    _, H, W, C = latent_cl.shape
    n = uv.shape[0]
    if n:
        kernel[(triton.cdiv(n, LOOKUP_ROWS),)](
            latent_cl, uv, data, *([] if out is None else [out]), n, points, stride, H, W,
            float(scale[0]), float(scale[1]), C=C, CB=channel_block(C), ROWS=LOOKUP_ROWS,
        )  # fmt: skip


def lookup(latent_cl: torch.Tensor, uv: torch.Tensor, points: int, scale: tuple[float, float], out=None):
    """Bilinear features (border padding) of ``latent_cl [V, H, W, C]`` at ``uv [V * points, 2]`` (latent
    pixel = ``uv * scale``), into ``out [V * points, C]`` (a strided view is fine) or a new tensor."""
    if out is None:
        out = torch.empty(uv.shape[0], latent_cl.shape[-1], device=uv.device, dtype=latent_cl.dtype)
    _launch_lookup(_lookup_fwd_kernel, latent_cl, uv, out, None, points, _row_stride(out), scale)
    return out


def lookup_backward(latent_cl, uv, g, points: int, scale: tuple[float, float]) -> torch.Tensor:
    """``d loss / d uv [V * points, 2]`` (float32) from ``g = d loss / d features [V * points, C]``."""
    guv = torch.empty(uv.shape[0], 2, device=uv.device, dtype=torch.float32)
    _launch_lookup(_lookup_bwd_kernel, latent_cl, uv, g, guv, points, _row_stride(g), scale)
    return guv
