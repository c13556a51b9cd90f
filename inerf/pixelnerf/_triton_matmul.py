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

CONFIG = {"BM": 128, "BN": 256, "BK": 64, "num_warps": 8, "num_stages": 3, "TMA": True, "PERSISTENT": True}
"""Tile sizes and launch settings: the fastest of :data:`CANDIDATES` on an H200 (GPU time,
``benchmarks/bench_pose_speed.py --tune-matmul``, 2026-11-30)."""

CANDIDATES = [
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 3},
    {"BM": 128, "BN": 256, "BK": 64, "num_warps": 8, "num_stages": 3},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 4, "TMA": True},
    {"BM": 128, "BN": 256, "BK": 64, "num_warps": 8, "num_stages": 3, "TMA": True},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 4, "TMA": True, "PERSISTENT": True},
    {"BM": 128, "BN": 256, "BK": 64, "num_warps": 8, "num_stages": 3, "TMA": True, "PERSISTENT": True},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 8, "num_stages": 4, "TMA": True, "PERSISTENT": True,
     "FLATTEN": True},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 4, "num_stages": 4, "TMA": True},
    {"BM": 128, "BN": 128, "BK": 64, "num_warps": 4, "num_stages": 4, "TMA": True, "PERSISTENT": True,
     "FLATTEN": True},
    {"BM": 64, "BN": 256, "BK": 64, "num_warps": 4, "num_stages": 4, "TMA": True},
]  # fmt: skip
"""Configurations the benchmark tries: pointer loads (:func:`_mm_kernel`), or ``TMA`` tiles
(:func:`_mm_tma_kernel`), one program per tile or ``PERSISTENT`` (one per multiprocessor, with the tile loop
``FLATTEN``-ed into the product's pipeline or not)."""


@triton.jit
def _epilogue(acc, rows, cols, mask, h_ptr, z_ptr, aux_ptr, h_stride, z_stride, N, EPI: tl.constexpr):
    """The finished tile ``acc`` (float32) with epilogue ``EPI``: ``(out, relu(out))`` (the second only for
    ``EPI_ADD_RELU``; ``out`` again otherwise)."""
    if EPI == 1:  # h + A @ B + z, and its ReLU
        h = tl.load(h_ptr + rows * h_stride + cols, mask=mask, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + rows * z_stride + cols, mask=mask, other=0.0).to(tl.float32)
        out = h + acc + z
        return out, tl.maximum(out, 0.0)
    elif EPI == 2:  # (A @ B) * (r > 0)
        r = tl.load(aux_ptr + rows * N + cols, mask=mask, other=0.0)
        out = tl.where(r > 0, acc, 0.0)
        return out, out
    elif EPI == 3:  # g + (A @ B) * (a > 0)
        g = tl.load(h_ptr + rows * h_stride + cols, mask=mask, other=0.0).to(tl.float32)
        a = tl.load(aux_ptr + rows * N + cols, mask=mask, other=0.0)
        out = g + tl.where(a > 0, acc, 0.0)
        return out, out
    else:
        return acc, acc


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
    out, act = _epilogue(acc, rows, cols, mask, h_ptr, z_ptr, aux_ptr, h_stride, z_stride, N, EPI)
    if EPI == 1:
        tl.store(act_ptr + rows * N + cols, act.to(act_ptr.dtype.element_ty), mask=mask)
    tl.store(c_ptr + rows * c_stride + cols, out.to(c_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _mm_tma_kernel(
    a_desc, b_desc, c_desc, act_desc, h_ptr, z_ptr, aux_ptr, M, N, K, h_stride, z_stride,
    programs, EPI: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, FLATTEN: tl.constexpr,
):  # fmt: skip
    """:func:`_mm_kernel` with the operands read by the tensor memory accelerator (Hopper's TMA: whole tiles,
    no per-element addresses or masks; out-of-range rows and columns read as zeros) and the outputs written
    by it. With ``programs`` below the tile count, each program walks tiles ``pid, pid + programs, ...``
    (persistent: launched once per multiprocessor, its next tile's loads overlap this tile's epilogue)."""
    n_tiles = tl.cdiv(N, BN)
    tiles = tl.cdiv(M, BM) * n_tiles
    for tile in tl.range(tl.program_id(0), tiles, programs, flatten=FLATTEN):
        pid_m, pid_n = tile // n_tiles, tile % n_tiles
        off_m, off_n = pid_m * BM, pid_n * BN
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            acc = tl.dot(a_desc.load([off_m, k0]), b_desc.load([k0, off_n]), acc)
        rm = off_m + tl.arange(0, BM)
        rn = off_n + tl.arange(0, BN)
        rows = rm[:, None].to(tl.int64)
        cols = rn[None, :]
        mask = (rm[:, None] < M) & (cols < N)
        out, act = _epilogue(acc, rows, cols, mask, h_ptr, z_ptr, aux_ptr, h_stride, z_stride, N, EPI)
        c_desc.store([off_m, off_n], out.to(c_desc.dtype))
        if EPI == 1:
            act_desc.store([off_m, off_n], act.to(act_desc.dtype))


def _descriptor(t: torch.Tensor, rows: int, cols: int):
    """A TMA descriptor of the 2-D ``t`` (unit column stride; a row stride of whole 16-byte units) read and
    written in ``[rows, cols]`` blocks."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor(t, list(t.shape), [t.stride(0), 1], [rows, cols])


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
        operands = (out if h is None else h, out if z is None else z, out if aux is None else aux)
        tiles = triton.cdiv(M, BM) * triton.cdiv(N, BN)
        if cfg.pop("TMA", False):
            programs = tiles
            if cfg.pop("PERSISTENT", False):
                programs = min(tiles, torch.cuda.get_device_properties(a.device).multi_processor_count)
            BK = cfg.pop("BK")
            _mm_tma_kernel[(programs,)](
                _descriptor(a, BM, BK), _descriptor(b_kn.contiguous(), BK, BN), _descriptor(out, BM, BN),
                _descriptor(act, BM, BN), *operands, M, N, K, _rows(h), _rows(z), programs,
                EPI=epi, BM=BM, BN=BN, BK=BK, FLATTEN=cfg.pop("FLATTEN", False), **cfg,
            )  # fmt: skip
        else:
            _mm_kernel[(tiles,)](
                a, b_kn.contiguous(), out, act, *operands, M, N, K, _rows(a), _rows(out), _rows(h), _rows(z),
                EPI=epi, BM=BM, BN=BN, **cfg,
            )  # fmt: skip
    return (out, act) if epi == EPI_ADD_RELU else out
