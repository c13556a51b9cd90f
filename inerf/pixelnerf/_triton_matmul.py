"""A bf16 matrix product with the frozen ResnetFC's elementwise steps in its epilogue (Triton).

cuBLAS writes a product to memory and a second kernel reads it back for the residual sum, the next ReLU
or a ReLU's backward mask: on an H200 each such pass over a 98k x 512 bf16 matrix costs about as much as
the product itself (0.09 ms). Here the product's tile is finished in registers before it is stored:

* ``EPI_ADD_RELU``: ``h' = h + A @ B + z`` and ``relu(h')`` (a block's ``fc_1`` with its residual sum, latent
  term or bias, and the next block's ReLU; ``z`` may be a bias row, row stride 0);
* ``EPI_MASK``: ``(A @ B) * (r > 0)`` (the gradient through ``fc_1`` and the inner ReLU);
* ``EPI_ADD_MASKED``: ``g + (A @ B) * (a > 0)`` (through ``fc_0`` and the block's first ReLU, summed into the
  residual's gradient; the output may be a strided slice).

``A [M, K]`` (rows may be strided), ``B [K, N]`` row-major (the weights, transposed once at packing).
The torch versions in :mod:`inerf.pixelnerf.fast_mlp` are the reference (tests run this kernel in Triton's
interpreter on the CPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

EPI_ADD_RELU, EPI_MASK, EPI_ADD_MASKED = 1, 2, 3

CONFIG = {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 3}
"""Tile sizes and launch settings: the fastest of :data:`CANDIDATES` on an H200
(``benchmarks/bench_pose_speed.py --tune-matmul``)."""

CANDIDATES = [
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 3},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 4, "num_stages": 4},
    {"BM": 128, "BN": 256, "BK": 64, "num_warps": 8, "num_stages": 3},
    {"BM": 64, "BN": 256, "BK": 64, "num_warps": 4, "num_stages": 4},
    {"BM": 128, "BN": 64, "BK": 64, "num_warps": 4, "num_stages": 4},
]
"""Configurations the benchmark tries."""


@triton.jit
def _mm_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    act_ptr,
    h_ptr,
    z_ptr,
    aux_ptr,
    M,
    N,
    K,
    a_stride,
    c_stride,
    h_stride,
    z_stride,
    EPI: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
):
    n_tiles = tl.cdiv(N, BN)
    pid = tl.program_id(0)
    # Column tiles of one row block run side by side: the row block is read from L2 after the first.
    pid_m, pid_n = pid // n_tiles, pid % n_tiles
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    m_ok, n_ok = rm < M, rn < N
    a_rows = a_ptr + rm[:, None].to(tl.int64) * a_stride
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + rk
        a = tl.load(a_rows + k[None, :], mask=m_ok[:, None] & (k[None, :] < K), other=0.0)
        b = tl.load(b_ptr + k[:, None] * N + rn[None, :], mask=(k[:, None] < K) & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
    mask = m_ok[:, None] & n_ok[None, :]
    rows = rm[:, None].to(tl.int64)
    cols = rn[None, :]
    if EPI == 1:  # h + A @ B + z, and its ReLU
        h = tl.load(h_ptr + rows * h_stride + cols, mask=mask, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + rows * z_stride + cols, mask=mask, other=0.0).to(tl.float32)
        out = h + acc + z
        tl.store(act_ptr + rows * N + cols, tl.maximum(out, 0.0).to(act_ptr.dtype.element_ty), mask=mask)
    elif EPI == 2:  # (A @ B) * (r > 0)
        r = tl.load(aux_ptr + rows * N + cols, mask=mask, other=0.0)
        out = tl.where(r > 0, acc, 0.0)
    elif EPI == 3:  # g + (A @ B) * (a > 0)
        g = tl.load(h_ptr + rows * h_stride + cols, mask=mask, other=0.0).to(tl.float32)
        a = tl.load(aux_ptr + rows * N + cols, mask=mask, other=0.0)
        out = g + tl.where(a > 0, acc, 0.0)
    else:
        out = acc
    tl.store(c_ptr + rows * c_stride + cols, out.to(c_ptr.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor | None) -> int:
    if t is None:
        return 0
    if t.ndim == 1:
        return 0  # a bias row, broadcast
    if t.stride(-1) != 1:
        raise ValueError("fused matmul operands need contiguous rows")
    return t.stride(0)


def mm(a, b_kn, epi: int = 0, h=None, z=None, aux=None, out=None, config=None):
    """``A @ B`` with epilogue ``epi`` (module docstring). Returns ``out`` (and, for ``EPI_ADD_RELU``, the
    ReLU as a second tensor). ``aux`` (``r`` or ``a``) must be contiguous ``[M, N]``."""
    M, K = a.shape
    N = b_kn.shape[1]
    cfg = dict(CONFIG if config is None else config)
    if out is None:
        out = torch.empty(M, N, device=a.device, dtype=a.dtype)
    act = torch.empty(M, N, device=a.device, dtype=a.dtype) if epi == EPI_ADD_RELU else out
    if aux is not None and not aux.is_contiguous():
        raise ValueError("fused matmul: the mask operand must be contiguous")
    if M:
        BM, BN = cfg.pop("BM"), cfg.pop("BN")
        grid = (triton.cdiv(M, BM) * triton.cdiv(N, BN),)
        operands = (out if h is None else h, out if z is None else z, out if aux is None else aux)
        _mm_kernel[grid](
            a, b_kn.contiguous(), out, act, *operands, M, N, K, _rows(a), _rows(out), _rows(h), _rows(z),
            EPI=epi, BM=BM, BN=BN, **cfg,
        )  # fmt: skip
    return (out, act) if epi == EPI_ADD_RELU else out
