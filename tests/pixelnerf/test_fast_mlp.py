"""The pose fast path's frozen ResnetFC (inerf.pixelnerf.fast_mlp) against the module it restructures, and its
Triton kernels (run in Triton's interpreter on the CPU) against their torch references."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from inerf.pixelnerf import fast_mlp
from inerf.pixelnerf.config import MLPConfig
from inerf.pixelnerf.resnetfc import ResnetFC

ROOT = Path(__file__).resolve().parents[2]


def make_mlp(config: MLPConfig | None = None, width: int = 64, d_latent: int = 32, seed: int = 0):
    """A frozen ResnetFC with every weight and bias random (the training init zeroes fc_1 and biases)."""
    config = config if config is not None else MLPConfig()
    torch.manual_seed(seed)
    mlp = ResnetFC(42, d_latent, 4, replace(config, d_hidden=width))
    with torch.no_grad():
        for p in mlp.parameters():
            p.normal_(0.0, 1.0 / p.shape[-1] ** 0.5 if p.ndim == 2 else 0.1)
    return mlp.double().requires_grad_(False)


def inputs(n: int, d_latent: int, dtype=torch.float64):
    z = torch.randn(n, d_latent, dtype=dtype).requires_grad_(True)
    x = torch.randn(n, 42, dtype=dtype).requires_grad_(True)
    return z, x


@pytest.mark.parametrize(
    "config, num_views",
    [
        (MLPConfig(), 1),
        (MLPConfig(), 3),  # averaging over source views after block 3
        (MLPConfig(n_blocks=3, combine_layer=1), 2),  # one latent term, combine early
        (MLPConfig(n_blocks=2, combine_layer=5), 1),  # never combines: every block gets a latent term
    ],
)
def test_frozen_network_equals_resnetfc_in_float64(config, num_views):
    """Outputs and input gradients of the restructured network equal ResnetFC's to float64 rounding."""
    mlp = make_mlp(config)
    points = 20
    z, x = inputs(2 * num_views * points, mlp.d_latent)
    ref = mlp(torch.cat([z, x], 1), num_views, points)
    g = torch.randn_like(ref)
    gz, gx = torch.autograd.grad(ref, (z, x), g)
    net = fast_mlp.FrozenResnetFC(mlp, torch.float64, torch.device("cpu"))
    out = fast_mlp.frozen_resnetfc(net, z, x, num_views, points)
    fz, fx = torch.autograd.grad(out, (z, x), g)
    assert out.shape == ref.shape
    for a, b in ((out, ref), (fz, gz), (fx, gx)):
        assert (a - b).abs().max() <= 1e-11 * b.abs().max()


@pytest.mark.parametrize("folded", [False, True])
@pytest.mark.parametrize("num_views", [1, 2])
def test_lookup_forms_equal_resnetfc_in_float64(folded, num_views):
    """With the lookup inside (features at image points), folded (``lin_z`` applied to the feature map) or
    not, outputs and gradients w.r.t. the points' image coordinates equal ``grid_sample`` + ResnetFC."""
    mlp = make_mlp(MLPConfig(n_blocks=4, combine_layer=2))
    V, points, H, W = 2 * num_views, 30, 5, 7
    torch.manual_seed(1)
    latent = torch.randn(V, mlp.d_latent, H, W, dtype=torch.float64)
    image = (14.0, 10.0)  # (W, H) of the encoded images: latent pixel = uv * (W_l / W, H_l / H)
    scale = (W / image[0], H / image[1])
    uv = (torch.rand(V * points, 2, dtype=torch.float64) * torch.tensor([18.0, 14.0]) - 2).requires_grad_(
        True
    )
    x = torch.randn(V * points, 42, dtype=torch.float64, requires_grad=True)
    latent_cl = latent.permute(0, 2, 3, 1).contiguous()
    z = fast_mlp.lookup_torch(latent_cl, uv, points, scale)
    ref = mlp(torch.cat([z, x], 1), num_views, points)
    g = torch.randn_like(ref)
    guv, gx = torch.autograd.grad(ref, (uv, x), g)
    net = fast_mlp.FrozenResnetFC(mlp, torch.float64, torch.device("cpu"))
    lookup_map = net.fold_map(latent_cl) if folded else latent_cl
    out = fast_mlp.frozen_resnetfc(net, uv, x, num_views, points, (lookup_map, scale, folded))
    fuv, fx = torch.autograd.grad(out, (uv, x), g)
    for a, b in ((out, ref), (fuv, guv), (fx, gx)):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()


def test_fused_product_glue_equals_resnetfc(monkeypatch):
    """The forward and backward with every product-and-epilogue step taken by the fused-kernel branch (its
    torch reference standing in for the Triton kernel, whose own test is below) equal ResnetFC in float64:
    the weight layouts the kernel gets are right."""
    shim = type(
        "Shim",
        (),
        {"mm": staticmethod(fast_mlp.mm_torch), "EPI_ADD_RELU": 1, "EPI_MASK": 2, "EPI_ADD_MASKED": 3},
    )
    monkeypatch.setattr(fast_mlp, "_matmul", lambda: shim)
    monkeypatch.setattr(fast_mlp, "fused_matmul", lambda t: True)
    test_lookup_forms_equal_resnetfc_in_float64(True, 2)
    test_frozen_network_equals_resnetfc_in_float64(MLPConfig(), 1)


def test_bf16_network_as_accurate_as_autocast():
    """In bf16 the restructured network's error against float32 is that of ResnetFC under autocast."""
    mlp = make_mlp(width=256, d_latent=128).float()
    z, x = inputs(4000, 128, torch.float32)
    rows = torch.cat([z, x], 1)
    ref = mlp(rows, 1, 4000)
    g = torch.randn_like(ref)
    gz, gx = torch.autograd.grad(ref, (z, x), g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = mlp(torch.cat([z, x], 1), 1, 4000).float()
    az, ax = torch.autograd.grad(auto, (z, x), g)
    net = fast_mlp.FrozenResnetFC(mlp, torch.bfloat16, torch.device("cpu"))
    out = fast_mlp.frozen_resnetfc(net, z, x, 1, 4000)
    fz, fx = torch.autograd.grad(out, (z, x), g)
    assert out.dtype == fz.dtype == fx.dtype == torch.float32

    def err(a, b):
        return float((a - b).detach().norm() / b.detach().norm())

    for fast, autocast, exact in ((out, auto, ref), (fz, az, gz), (fx, ax, gx)):
        assert 1e-4 < err(fast, exact) <= 1.5 * err(autocast, exact) + 1e-3, (
            err(fast, exact),
            err(autocast, exact),
        )


def test_supports():
    mlp = make_mlp()
    assert fast_mlp.supports(mlp, 1) and fast_mlp.supports(mlp, 2)
    assert not fast_mlp.supports(make_mlp(MLPConfig(beta=2.0)), 1)  # softplus: not a ReLU network
    assert fast_mlp.supports(make_mlp(MLPConfig(combine_type="max")), 1)
    assert not fast_mlp.supports(make_mlp(MLPConfig(combine_type="max")), 2)
    trainable = make_mlp().requires_grad_(True)
    assert not fast_mlp.supports(trainable, 1)  # weights that take gradients go through autograd
    fast_mlp.ENABLED = False
    try:
        assert not fast_mlp.supports(mlp, 1)
    finally:
        fast_mlp.ENABLED = True


def test_packed_weights_follow_in_place_changes():
    mlp = make_mlp()
    net = fast_mlp.FrozenResnetFC(mlp, torch.float64, torch.device("cpu"))
    assert not net.stale(mlp)
    with torch.no_grad():
        mlp.blocks[2].fc_1.bias.add_(1.0)
    assert net.stale(mlp)


KERNEL_CHECK = textwrap.dedent(
    """
    import torch, torch.nn.functional as F
    from inerf.pixelnerf import _triton_kernels as K, fast_mlp as M

    torch.manual_seed(0)
    n, C = 37, 64
    bf = torch.bfloat16

    def close(a, b, what, tol=0.02):
        a, b = a.detach().float(), b.detach().float()
        err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-6))
        assert err <= tol, (what, err)

    first = torch.randn(n, 3 * C).to(bf)
    h, z, b = first[:, :C], first[:, C : 2 * C], torch.randn(C).to(bf)
    y = torch.randn(n, C).to(bf)
    for zz in (z, b):
        for got, want in zip(K.add_relu(h, y, zz), M.add_relu_torch(h, y, zz)):
            close(got, want, "add_relu")
    w_out, b_out = torch.randn(4, C).to(bf), torch.randn(4).to(bf)
    for got, want in zip(K.add_relu_out(h, y, z, w_out, b_out), M.add_relu_out_torch(h, y, z, w_out, b_out)):
        close(got, want, "add_relu_out")
    a = torch.relu(torch.randn(n, C)).to(bf)
    g, ga = torch.randn(n, C).to(bf), torch.randn(n, C).to(bf)
    close(K.relu_grad(g.clone(), a), M.relu_grad_torch(g.clone(), a), "relu_grad", 0)
    into = torch.zeros(n, 2 * C).to(bf)
    K.add_masked(first[:, :C], ga.clone(), a, into[:, C:])
    close(into[:, C:], M.add_masked_torch(first[:, :C], ga.clone(), a), "add_masked")
    g_raw = torch.randn(n, 4)
    close(K.out_grad(g_raw, w_out, a), M.out_grad_torch(g_raw, w_out, a), "out_grad")

    # The lookup against grid_sample (align_corners, border padding), points inside and outside the image.
    V, H, W, P = 2, 6, 8, 50
    lat = torch.randn(V, C, H, W).to(bf).float()
    Wi, Hi = 16, 12
    uv = (torch.rand(V, P, 2) * torch.tensor([Wi + 4.0, Hi + 4.0]) - 2).requires_grad_()
    scale = torch.tensor((2.0 * W / ((W - 1) * Wi), 2.0 * H / ((H - 1) * Hi)))
    grid = (uv * scale - 1)[:, :, None]
    ref = F.grid_sample(lat, grid, align_corners=True, padding_mode="border")[..., 0].transpose(1, 2)
    ref = ref.reshape(-1, C)
    gref = torch.randn_like(ref)
    (guv_ref,) = torch.autograd.grad(ref, uv, gref)
    cl = lat.permute(0, 2, 3, 1).contiguous()
    flat = uv.detach().reshape(-1, 2).contiguous()
    out = K.lookup(cl, flat, P, (W / Wi, H / Hi))
    guv = K.lookup_backward(cl, flat, gref, P, (W / Wi, H / Hi))
    close(out, ref, "lookup", 1e-5)
    close(guv, guv_ref.reshape(-1, 2), "lookup_backward", 1e-5)
    # A width that is not a power of two (the folded map's 3 x 512): blocks of 32 channels here.
    wide = torch.randn(V, H, W, 96).to(bf).float()
    ref = M.lookup_torch(wide, flat, P, (W / Wi, H / Hi))
    close(K.lookup(wide, flat, P, (W / Wi, H / Hi)), ref, "lookup 96", 1e-5)
    g96 = torch.randn_like(ref)
    want = M.lookup_backward_torch(wide, flat, g96, P, (W / Wi, H / Hi))
    close(K.lookup_backward(wide, flat, g96, P, (W / Wi, H / Hi)), want, "lookup_backward 96", 1e-5)
    # The product with each epilogue, against fast_mlp.mm_torch. float32: Triton's interpreter mishandles
    # bf16 dot products (numpy has no bf16), the compiled kernel is checked on the GPU by the benchmark.
    from inerf.pixelnerf import _triton_matmul as T

    plain = {"BM": 32, "BN": 32, "BK": 32, "num_warps": 4, "num_stages": 2}
    tma = dict(plain, TMA=True)
    # persistent: 3 programs walk the 3 x 2 tiles (two each)
    T.torch.cuda.get_device_properties = lambda device: type("P", (), {"multi_processor_count": 3})
    for cfg in (plain, tma, dict(tma, PERSISTENT=True), dict(tma, PERSISTENT=True, FLATTEN=True)):
        rows, Kd, N = 70, 80, 64  # K not a multiple of the block
        a = torch.randn(rows, 2 * Kd)[:, :Kd]  # strided rows
        b = torch.randn(Kd, N) / Kd**0.5
        first = torch.randn(rows, 3 * N)
        r = torch.relu(torch.randn(rows, N))
        close(T.mm(a, b, config=cfg), M.mm_torch(a, b), f"mm {cfg}", 1e-5)
        for zz in (first[:, N : 2 * N], torch.randn(N)):
            got = T.mm(a, b, 1, h=first[:, :N], z=zz, config=cfg)
            for g, want in zip(got, M.mm_torch(a, b, 1, first[:, :N], zz)):
                close(g, want, f"mm add_relu {cfg}", 1e-5)
        close(T.mm(a, b, 2, aux=r, config=cfg), M.mm_torch(a, b, 2, aux=r), f"mm mask {cfg}", 1e-5)
        into = torch.zeros(rows, 2 * N)
        T.mm(a, b, 3, h=first[:, :N], aux=r, out=into[:, N:], config=cfg)
        close(into[:, N:], M.mm_torch(a, b, 3, first[:, :N], aux=r), f"mm add_masked {cfg}", 1e-5)
        assert (into[:, :N] == 0).all(), "mm add_masked wrote outside its slice"
    print("kernels ok")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_triton_kernels_in_the_interpreter(tmp_path):
    """Each Triton kernel against its torch reference (the lookup against grid_sample and its gradient),
    run by Triton's interpreter on the CPU; on a GPU the benchmark checks the compiled path end to end."""
    script = tmp_path / "check_kernels.py"
    script.write_text(KERNEL_CHECK)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert res.returncode == 0 and "kernels ok" in res.stdout, res.stderr[-3000:]


def test_kernels_that_fail_fall_back_to_torch(monkeypatch):
    """A Triton kernel that fails to build (an unsupported GPU or Triton) costs speed, not the solve: one
    warning, then the torch references give the same numbers."""

    class Broken:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RuntimeError("PassManager::run failed")

            return fail

    mlp = make_mlp()
    z, x = inputs(40, mlp.d_latent)
    net = fast_mlp.FrozenResnetFC(mlp, torch.float64, torch.device("cpu"))
    want = fast_mlp.frozen_resnetfc(net, z, x, 1, 40)
    monkeypatch.setattr(fast_mlp, "_triton_kernels", Broken())
    monkeypatch.setattr(fast_mlp, "use_triton", lambda t: fast_mlp._kernels() is not None)
    with pytest.warns(UserWarning, match="Triton kernels unusable"):
        got = fast_mlp.frozen_resnetfc(net, z, x, 1, 40)
    assert torch.equal(got, want)
    assert fast_mlp._kernels() is None  # not tried again


def test_a_kernel_failing_inside_a_graph_capture_is_not_given_up(monkeypatch):
    """Inside a CUDA-graph capture a failed launch may be the capture's fault (an earlier call in it was
    refused): the error propagates, so the capture is retried, and the Triton kernels stay in use."""

    class Broken:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RuntimeError(
                    "Triton Error [CUDA]: operation failed due to a previous error during capture"
                )

            return fail

    mlp = make_mlp()
    z, x = inputs(40, mlp.d_latent)
    net = fast_mlp.FrozenResnetFC(mlp, torch.float64, torch.device("cpu"))
    broken = Broken()
    monkeypatch.setattr(fast_mlp, "_triton_kernels", broken)
    monkeypatch.setattr(fast_mlp, "use_triton", lambda t: fast_mlp._kernels() is not None)
    monkeypatch.setattr(fast_mlp, "in_graph_capture", lambda: True)
    with pytest.raises(RuntimeError, match="during capture"):
        fast_mlp.frozen_resnetfc(net, z, x, 1, 40)
    assert fast_mlp._triton_kernels is broken  # still the kernels: the retried capture uses them
