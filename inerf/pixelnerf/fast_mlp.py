"""pixelNeRF's ResnetFC with frozen weights, restructured for the pose solve's fast path (issue 12).

In a pose step the network's weights are constants: only the inputs (features looked up at projected points,
encoded positions and view directions) carry gradients. Run through autograd under autocast, every
``nn.Linear`` casts its input, adds its bias in a separate kernel, and every ReLU, residual sum and gradient
mask is a kernel of its own; on an H200 the 13 matrix products of a 98k-row pass took 1.1 ms of a 3.5 ms
forward (``benchmarks/bench_pose_speed.py --explain``). This module computes the same function with fewer
passes over memory:

* the first layer and every ``lin_z`` are **one** matrix product ``[z | x] @ W_first^T``, whose output slices
  are block 0's input and the latent terms ``lin_z[i](z)`` added before blocks 1, 2 (biases folded in,
  including the preceding block's ``fc_1`` bias); on CUDA the ``lin_z`` part is instead applied to the
  encoded feature map once per encode (:meth:`FrozenResnetFC.fold_map`) and looked up per point with the
  position's product added (13 products per point become 10), the lookup and its gradient w.r.t. the image
  coordinates being one Triton kernel each;
* ``fc_0`` with its bias and ReLU is one cuBLASLt call (``torch._addmm_activation``);
* ``fc_1`` is a plain product whose residual sum, latent term and the next block's ReLU are one fused
  elementwise kernel (Triton on CUDA, torch ops elsewhere);
* the backward pass is written out: two products per block and the ReLU masks read from the saved
  activations, no weight gradients, no casts.

:func:`frozen_resnetfc` is the reference-checked entry; ``ResnetFC.forward`` under autocast stays the slow
reference (tests compare the two on the CPU; the benchmark compares them on the GPU).
"""

from __future__ import annotations

import warnings

import torch

from inerf.device import in_graph_capture
from inerf.pixelnerf.resnetfc import ResnetFC

__all__ = ["FrozenResnetFC", "frozen_resnetfc", "lookup_supported", "supports"]

_ALIGN = 16
"""The packed input's width is padded to a multiple of this (bf16 tensor-core products want 16-byte rows)."""


ENABLED = True
"""Whether pixelNeRF's fast path uses this module (False: the ResnetFC under autocast, for ablations)."""

FUSED_MATMUL = False
"""On CUDA: run the products followed by elementwise steps as one Triton kernel with the steps in its
epilogue (:mod:`inerf.pixelnerf._triton_matmul`) instead of cuBLAS then a Triton elementwise kernel. Off: on
an H200 (Triton 3.6, GPU time in CUDA graphs, 98k x 512 x 512 bf16) the best fused kernel (TMA, persistent)
took 0.180 / 0.151 / 0.181 ms per product with its add+ReLU / mask / masked-add epilogue, against 0.181 /
0.153 / 0.181 ms for cuBLAS then the elementwise kernel: a tie, as Triton's product runs at about half of
cuBLAS's rate on this shape (``bench_pose_speed.py --tune-matmul``, BENCHMARKS.md, fifth round). Kept,
tested, for a faster product kernel to slot into."""

FOLD_LATENT = True
"""With the fused lookup: fold ``lin_z`` into the feature map (:meth:`FrozenResnetFC.fold_map`; False: look
up the features and apply ``lin_z`` per point, for ablations)."""


def supports(mlp: ResnetFC, num_views: int) -> bool:
    """Whether :class:`FrozenResnetFC` computes ``mlp``: ReLU activations (``beta = 0``), frozen weights, and
    averaging over source views (or a single view, for which max and mean agree)."""
    cfg = mlp.config
    if not ENABLED or cfg.beta > 0 or any(p.requires_grad for p in mlp.parameters()):
        return False
    return num_views == 1 or cfg.combine_type == "average"


class FrozenResnetFC:
    """Packed, cast weights of a frozen :class:`ResnetFC` (rebuilt when its parameters change in place)."""

    def __init__(self, mlp: ResnetFC, dtype: torch.dtype, device: torch.device):
        cfg = mlp.config
        self.dtype, self.device = dtype, device
        self.d_latent, self.d_in = mlp.d_latent, mlp.d_in
        self.width, self.n_z = cfg.d_hidden, len(mlp.lin_z)
        self.combine_layer, self.n_blocks = cfg.combine_layer, cfg.n_blocks
        self.k_in = -(-(self.d_latent + self.d_in) // _ALIGN) * _ALIGN
        self.version = self._version(mlp)
        C, S = self.width, max(self.n_z, 1)

        def cast(t):
            return t.detach().to(device=device, dtype=dtype)

        wide = torch.promote_types(mlp.lin_in.weight.dtype, torch.float32)  # fold in (at least) float32
        w_first = torch.zeros(S * C, self.k_in, device=device, dtype=wide)
        b_first = torch.zeros(S * C, device=device, dtype=wide)
        # Slice 0: lin_in(x) + lin_z[0](z), block 0's input.
        w_first[:C, self.d_latent : self.d_latent + self.d_in] = mlp.lin_in.weight
        b_first[:C] = mlp.lin_in.bias
        for i, lin in enumerate(mlp.lin_z):
            w_first[i * C : (i + 1) * C, : self.d_latent] = lin.weight
            b_first[i * C : (i + 1) * C] += lin.bias
            if i > 0:  # the term added before block i also carries block i-1's fc_1 bias
                b_first[i * C : (i + 1) * C] += mlp.blocks[i - 1].fc_1.bias
        self.w_first, self.b_first = cast(w_first), cast(b_first)
        # Folded form (lin_z applied to the feature map once per encode, see fold_map): the latent part of the
        # first layer in (at least) float32, and lin_in alone on the padded positions.
        self.w_z_wide, self.b_wide = w_first[:, : self.d_latent], b_first
        self.k_x = -(-self.d_in // _ALIGN) * _ALIGN
        w_x = torch.zeros(C, self.k_x, device=device, dtype=wide)
        w_x[:, : self.d_in] = mlp.lin_in.weight
        self.w_x = cast(w_x)
        self.zero_bias = torch.zeros(C, device=device, dtype=dtype)
        self.w0 = [cast(b.fc_0.weight) for b in mlp.blocks]
        self.b0 = [cast(b.fc_0.bias) for b in mlp.blocks]
        self.w1 = [cast(b.fc_1.weight) for b in mlp.blocks]
        # fc_1 biases not folded into a latent slice are added by the fused kernel (a row stride of 0).
        self.b1 = [cast(b.fc_1.bias) for b in mlp.blocks]
        self.w_out, self.b_out = cast(mlp.lin_out.weight), cast(mlp.lin_out.bias)
        # [K, N] row-major copies for the fused products (forward products use the transposes).
        self.w1_t = [w.t().contiguous() for w in self.w1]
        self.w_x_t = self.w_x.t().contiguous()

    @staticmethod
    def _version(mlp: ResnetFC) -> tuple[int, ...]:
        return tuple(p._version for p in mlp.parameters())

    def stale(self, mlp: ResnetFC) -> bool:
        return self._version(mlp) != self.version

    def fold_map(self, latent_cl: torch.Tensor) -> torch.Tensor:
        """The features ``latent_cl [V, H_l, W_l, d_latent]`` mapped by every ``lin_z`` at once (biases
        included): ``[V, H_l, W_l, S * width]`` in the network's dtype.

        Bilinear interpolation with border padding is an affine combination (weights summing to 1), so it
        commutes with the affine ``lin_z``: looking up this map gives ``lin_z[i](z)`` exactly (to rounding).
        Per pass that replaces ``S`` products of ``[N, d_latent] x [d_latent, width]`` with a lookup of
        ``S`` times the channels; the map itself is a product over the ``H_l x W_l`` feature pixels."""
        flat = latent_cl.reshape(-1, latent_cl.shape[-1]).to(self.w_z_wide.dtype)
        folded = torch.addmm(self.b_wide, flat, self.w_z_wide.t())
        return folded.to(self.dtype).reshape(*latent_cl.shape[:-1], -1)

    def pack_positions(self, x: torch.Tensor) -> torch.Tensor:
        """``[x | 0]`` as one ``[N, k_x]`` matrix of the network's dtype (the folded form's first product)."""
        packed = torch.empty(x.shape[0], self.k_x, device=x.device, dtype=self.dtype)
        packed[:, : self.d_in].copy_(x)
        packed[:, self.d_in :].zero_()
        return packed

    def pack_inputs(self, z: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """``[z | x | 0]`` as one ``[N, k_in]`` matrix of the network's dtype (``z`` None: the latent columns
        are left for the caller to fill)."""
        n = x.shape[0]
        packed = torch.empty(n, self.k_in, device=x.device, dtype=self.dtype)
        if self.d_latent and z is not None:
            packed[:, : self.d_latent].copy_(z)
        packed[:, self.d_latent : self.d_latent + self.d_in].copy_(x)
        packed[:, self.d_latent + self.d_in :].zero_()
        return packed


# ----------------------------------------------------------------------------------------------------
# Fused elementwise kernels: Triton on CUDA, torch ops elsewhere (and the reference for the tests).
# ----------------------------------------------------------------------------------------------------
def add_relu_torch(h: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``h + y + z`` and its ReLU (``z`` ``[N, C]`` or a ``[C]`` bias)."""
    out = h + y
    out += z
    return out, torch.relu(out)


def add_relu_out_torch(h, y, z, w_out, b_out) -> tuple[torch.Tensor, torch.Tensor]:
    """The last block's sum, its ReLU ``a`` and the output layer ``a @ w_out^T + b_out`` (float32)."""
    _, a = add_relu_torch(h, y, z)
    wide = torch.promote_types(a.dtype, torch.float32)
    return a, a.to(wide) @ w_out.to(wide).t() + b_out.to(wide)


def relu_grad_torch(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``g * (r > 0)`` in place: the gradient through a ReLU whose output was ``r``."""
    return g.masked_fill_(r <= 0, 0)


def add_masked_torch(g, ga, a, out=None) -> torch.Tensor:
    """``g + ga * (a > 0)`` (a ReLU's backward summed into the residual's gradient), into ``out`` (a
    strided view is fine) or ``ga``."""
    ga.masked_fill_(a <= 0, 0)
    ga += g
    return ga if out is None else out.copy_(ga)


def out_grad_torch(g_raw: torch.Tensor, w_out: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The gradient through the output layer and the last ReLU: ``(g_raw @ w_out) * (a > 0)``."""
    wide = torch.promote_types(a.dtype, torch.float32)
    return relu_grad_torch((g_raw.to(wide) @ w_out.to(wide)).to(a.dtype), a)


def lookup_torch(latent_cl, uv, points: int, scale) -> torch.Tensor:
    """Reference of the lookup kernel: ``grid_sample`` (bilinear, border, align_corners) of the channels-last
    map ``latent_cl [V, H, W, C]`` at latent pixels ``uv * scale`` (``uv [V * points, 2]``) -> ``[V * points, C]``."""
    V, H, W, C = latent_cl.shape
    s = torch.tensor([2.0 * scale[0] / (W - 1), 2.0 * scale[1] / (H - 1)], dtype=uv.dtype, device=uv.device)
    grid = (uv.reshape(V, points, 1, 2) * s - 1.0).to(latent_cl.dtype)
    out = torch.nn.functional.grid_sample(
        latent_cl.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[..., 0].permute(0, 2, 1).reshape(-1, C)


def lookup_backward_torch(latent_cl, uv, g, points: int, scale) -> torch.Tensor:
    """Reference of the lookup's backward kernel: ``d loss / d uv`` from ``g = d loss / d features``."""
    with torch.enable_grad():
        uv = uv.detach().requires_grad_(True)
        (guv,) = torch.autograd.grad(lookup_torch(latent_cl, uv, points, scale), uv, g.to(latent_cl.dtype))
    return guv


def _lookup(latent_cl, uv, points, scale, out=None):
    if uv.is_cuda and _kernels() is not None:
        try:
            return _kernels().lookup(latent_cl, uv, points, scale, out=out)
        except Exception as exc:  # noqa: BLE001 - a kernel that does not build: the torch ops serve
            _triton_unusable(exc)
    z = lookup_torch(latent_cl, uv, points, scale)
    return z if out is None else out.copy_(z)


def _lookup_backward(latent_cl, uv, g, points, scale):
    if uv.is_cuda and _kernels() is not None:
        try:
            return _kernels().lookup_backward(latent_cl, uv, g, points, scale)
        except Exception as exc:  # noqa: BLE001
            _triton_unusable(exc)
    return lookup_backward_torch(latent_cl, uv, g, points, scale)


_triton_kernels = None


def _triton_unusable(exc: Exception) -> None:
    """A Triton kernel failed to build or launch (an unsupported GPU or Triton version): warn once and use
    the torch references from now on (same results, slower). Inside a CUDA-graph capture the error is
    re-raised instead (:func:`inerf.device.in_graph_capture`)."""
    global _triton_kernels
    if in_graph_capture():
        raise exc
    _triton_kernels = False
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    warnings.warn(f"pixelNeRF fast path: Triton kernels unusable, using torch ops ({first})", stacklevel=3)


def _kernels():
    """The Triton kernels, compiled on first use (None where Triton or a GPU is missing)."""
    global _triton_kernels
    if _triton_kernels is None:
        try:
            from inerf.pixelnerf import _triton_kernels as kernels
        except Exception:  # noqa: BLE001 - no Triton (or a broken install): the torch ops serve
            kernels = False
        _triton_kernels = kernels
    return _triton_kernels or None


def use_triton(t: torch.Tensor) -> bool:
    """Whether the Triton kernels serve rows of ``t`` (CUDA, a power-of-two width, Triton importable)."""
    width = t.shape[-1]
    return t.is_cuda and width & (width - 1) == 0 and _kernels() is not None


def _op(name: str, reference):
    def op(first, *args, **kwargs):
        if use_triton(first):
            try:
                return getattr(_kernels(), name)(first, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a kernel that does not build: the torch ops serve
                _triton_unusable(exc)
        return reference(first, *args, **kwargs)

    op.__name__, op.__doc__ = name, reference.__doc__
    return op


add_relu = _op("add_relu", add_relu_torch)
add_relu_out = _op("add_relu_out", add_relu_out_torch)
relu_grad = _op("relu_grad", relu_grad_torch)
add_masked = _op("add_masked", add_masked_torch)


out_grad = _op("out_grad", out_grad_torch)


def mm_torch(a, b_kn, epi: int = 0, h=None, z=None, aux=None, out=None):
    """Reference of :func:`inerf.pixelnerf._triton_matmul.mm` (same arguments; ``epi`` 0 plain, 1 add+ReLU,
    2 mask, 3 add masked), computed in float32 (or wider) with one rounding per output."""
    wide = torch.promote_types(a.dtype, torch.float32)
    acc = a.to(wide) @ b_kn.to(wide)
    if epi == 1:
        res = h.to(wide) + acc + z.to(wide)
        return res.to(a.dtype), torch.relu(res).to(a.dtype)
    if epi == 2:
        res = torch.where(aux > 0, acc, 0.0)
    elif epi == 3:
        res = h.to(wide) + torch.where(aux > 0, acc, 0.0)
    else:
        res = acc
    return res.to(a.dtype) if out is None else out.copy_(res)


_matmul_module = None


def _matmul():
    """The fused-epilogue product module (None where Triton is missing)."""
    global _matmul_module
    if _matmul_module is None:
        try:
            from inerf.pixelnerf import _triton_matmul as module
        except Exception:  # noqa: BLE001 - no Triton: cuBLAS and the elementwise ops serve
            module = False
        _matmul_module = module
    return _matmul_module or None


def fused_matmul(t: torch.Tensor) -> bool:
    """Whether the products with fused epilogues serve ``t`` (CUDA, 16-bit floats, Triton importable)."""
    return FUSED_MATMUL and t.is_cuda and t.dtype in (torch.bfloat16, torch.float16) and _matmul() is not None


def _product_add_relu(x, w, w_t, h, z):
    """``h + x @ w^T + z`` and its ReLU (``w_t = w^T`` contiguous, for the fused kernel)."""
    if fused_matmul(x):
        T = _matmul()
        return T.mm(x, w_t, T.EPI_ADD_RELU, h=h, z=z)
    return add_relu(h, torch.mm(x, w.t()), z)


def _product_relu_grad(g, w, r):
    """``(g @ w) * (r > 0)``."""
    if fused_matmul(g):
        T = _matmul()
        return T.mm(g, w, T.EPI_MASK, aux=r)
    return relu_grad(torch.mm(g, w), r)


def _product_add_masked(g_r, w, g, a, into):
    """``g + (g_r @ w) * (a > 0)``, into ``into`` (a strided slice) or a new tensor."""
    if fused_matmul(g_r):
        T = _matmul()
        return T.mm(g_r, w, T.EPI_ADD_MASKED, h=g, aux=a, out=into)
    return add_masked(g, torch.mm(g_r, w), a, into)


# ----------------------------------------------------------------------------------------------------
# Forward and backward
# ----------------------------------------------------------------------------------------------------
def _forward(net: FrozenResnetFC, first, h, a, num_views: int, num_points: int, keep: bool):
    """The blocks and the output layer from the first layer's output ``first [N, S * C]`` (block 0's input
    ``h`` and its ReLU ``a``, then the latent terms of later blocks). Returns ``raw [rows_out, d_out]``
    (float32) and what the backward needs (if ``keep``): the input of each block's first ReLU ``a`` (as its
    output) and of its inner ReLU ``r``, and the last ``a``."""
    C = net.width
    saved_a, saved_r = [], []
    raw = None
    for i in range(net.n_blocks):
        if i == net.combine_layer and num_views > 1:
            h = h.reshape(-1, num_views, num_points, C).mean(dim=1).reshape(-1, C)
            a = torch.relu(h)
        r = torch._addmm_activation(net.b0[i], a, net.w0[i].t())  # relu(fc_0(a))
        z = first[:, (i + 1) * C : (i + 2) * C] if i + 1 < net.n_z else net.b1[i]
        if keep:
            saved_a.append(a)
            saved_r.append(r)
        if i + 1 < net.n_blocks:
            h, a = _product_add_relu(r, net.w1[i], net.w1_t[i], h, z)
        else:  # the last sum, its ReLU and the output layer in one pass
            a, raw = add_relu_out(h, torch.mm(r, net.w1[i].t()), z, net.w_out, net.b_out)
    if raw is None:  # no blocks
        raw = torch.addmm(net.b_out, a, net.w_out.t()).float()
    if keep:
        saved_a.append(a)
    return raw, saved_a, saved_r


def _backward(net: FrozenResnetFC, g_raw: torch.Tensor, saved_a, saved_r, num_views, num_points, n_rows):
    """``d loss / d first [N, S * C]`` (the first layer's output) from ``g_raw = d loss / d raw``."""
    C, S = net.width, max(net.n_z, 1)
    g_first = torch.empty(n_rows, S * C, device=g_raw.device, dtype=net.dtype)
    g = out_grad(g_raw.contiguous(), net.w_out, saved_a[-1])
    for i in reversed(range(net.n_blocks)):
        g_r = _product_relu_grad(g, net.w1[i], saved_r[i])
        # d loss / d (block i's input) is also d loss / d (the latent term added there): written straight
        # into its slice of the first layer's output gradient.
        combine = i == net.combine_layer and num_views > 1
        into = g_first[:, i * C : (i + 1) * C] if i < S and not combine else None
        g = _product_add_masked(g_r, net.w0[i], g, saved_a[i], into)
        if combine:
            g = (g.reshape(-1, 1, num_points, C) / num_views).expand(-1, num_views, -1, -1).reshape(-1, C)
    if net.n_blocks == 0 or (net.combine_layer == 0 and num_views > 1):
        g_first[:, :C].copy_(g)
    return g_first  # d loss / d (the first layer's output) [N, S * C]


class _FrozenResnetFCFn(torch.autograd.Function):
    """Inputs: ``z [N, d_latent]`` and ``x``; or, with ``lookup = (map_cl, scale, folded)``, the points'
    image coordinates ``uv [N, 2]`` instead of ``z``, whose features are looked up in ``map_cl`` (the encoded
    features, or with ``folded`` their :meth:`~FrozenResnetFC.fold_map`)."""

    @staticmethod
    def forward(ctx, z_or_uv, x, net: FrozenResnetFC, num_views: int, num_points: int, lookup):
        C = net.width
        folded = bool(lookup) and lookup[2]
        if folded:
            # Block 0's input is lin_in(x) plus the looked-up slice 0; later slices are the latent terms.
            first = _lookup(lookup[0], z_or_uv, num_points, lookup[1])
            h, a = _product_add_relu(net.pack_positions(x), net.w_x, net.w_x_t, first[:, :C], net.zero_bias)
        else:
            packed = net.pack_inputs(None if lookup else z_or_uv, x)
            if lookup:
                _lookup(lookup[0], z_or_uv, num_points, lookup[1], out=packed[:, : net.d_latent])
            first = torch.addmm(net.b_first, packed, net.w_first.t())  # [N, S * C]
            h = first[:, :C]
            a = torch.relu(h)
        keep = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        raw, saved_a, saved_r = _forward(net, first, h, a, num_views, num_points, keep)
        if keep:
            ctx.save_for_backward(*saved_a, *saved_r, *([z_or_uv] if lookup else []))
            ctx.net, ctx.num_views, ctx.num_points, ctx.n_rows = net, num_views, num_points, x.shape[0]
            ctx.lookup, ctx.z_dtype, ctx.x_dtype = lookup, z_or_uv.dtype, x.dtype
        return raw

    @staticmethod
    def backward(ctx, g_raw):
        net, lookup = ctx.net, ctx.lookup
        saved = ctx.saved_tensors
        n_a = net.n_blocks + 1
        saved_a, saved_r = list(saved[:n_a]), list(saved[n_a : n_a + net.n_blocks])
        g_first = _backward(net, g_raw, saved_a, saved_r, ctx.num_views, ctx.num_points, ctx.n_rows)
        g_z = g_x = None
        if lookup and lookup[2]:
            if ctx.needs_input_grad[0]:
                g_z = _lookup_backward(lookup[0], saved[-1], g_first, ctx.num_points, lookup[1])
            if ctx.needs_input_grad[1]:
                g_x = torch.mm(g_first[:, : net.width], net.w_x)[:, : net.d_in].to(ctx.x_dtype)
            return g_z, g_x, None, None, None, None
        g_in = torch.mm(g_first, net.w_first)  # [N, k_in]
        if ctx.needs_input_grad[0]:
            g_lat = g_in[:, : net.d_latent]
            if lookup:
                g_z = _lookup_backward(lookup[0], saved[-1], g_lat, ctx.num_points, lookup[1])
            else:
                g_z = g_lat.to(ctx.z_dtype)
        if ctx.needs_input_grad[1]:
            g_x = g_in[:, net.d_latent : net.d_latent + net.d_in].to(ctx.x_dtype)
        return g_z, g_x, None, None, None, None


def frozen_resnetfc(
    net: FrozenResnetFC,
    z: torch.Tensor,
    x: torch.Tensor,
    num_views: int,
    num_points: int,
    lookup: tuple[torch.Tensor, tuple[float, float], bool] | None = None,
) -> torch.Tensor:
    """``ResnetFC.forward`` of the packed network on ``rows = [z | x]`` (given apart: ``z [N, d_latent]``,
    ``x [N, d_in]``), as float32 ``[rows_out, d_out]``, differentiable in ``z`` and ``x``.

    With ``lookup = (map_cl, scale, folded)``, ``z`` is instead ``uv [N, 2]``, the points' image coordinates
    (rows ordered by source view, ``num_points`` each): the features are looked up bilinearly (border
    padding) in the channels-last map ``map_cl [V, H_l, W_l, channels]`` at latent pixel ``uv * scale`` and
    the gradient is returned for ``uv``. The map holds the encoded features (``folded`` False: the lookup
    kernel writes them into the network's packed input) or :meth:`FrozenResnetFC.fold_map` of them
    (``folded`` True: ``lin_z`` is already applied). On CUDA the lookup is one Triton kernel; elsewhere
    ``grid_sample`` (the reference, for tests).
    """
    if lookup is not None:
        z = z.contiguous()
    return _FrozenResnetFCFn.apply(z, x, net, num_views, num_points, lookup)


def lookup_supported(latent: torch.Tensor, interp: str, padding: str) -> bool:
    """Whether the fused lookup serves a ``[V, C, H_l, W_l]`` map with this interpolation and padding."""
    return (
        interp == "bilinear"
        and padding == "border"
        and min(latent.shape[-2:]) >= 2
        and use_triton(latent.transpose(1, -1))
    )
