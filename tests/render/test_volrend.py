import math

import pytest
import torch

from inerf.render import volrend


def test_hand_computed_compositing():
    alpha = torch.tensor([0.5, 0.5])
    w = volrend.render_weights(alpha)
    assert torch.allclose(w, torch.tensor([0.5, 0.25]))
    assert torch.allclose(volrend.transmittance(alpha), torch.tensor([1.0, 0.5]))
    assert volrend.accumulated_opacity(w).item() == 0.75
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert torch.allclose(volrend.composite(w, colors, 1.0), torch.tensor([0.75, 0.5, 0.25]))
    assert torch.allclose(volrend.composite(w, colors, 0.0), torch.tensor([0.5, 0.25, 0.0]))
    assert torch.allclose(
        volrend.composite(w, colors, torch.tensor([0.0, 0.0, 1.0])), torch.tensor([0.5, 0.25, 0.25])
    )
    t = torch.tensor([2.0, 4.0])
    assert torch.allclose(volrend.expected_depth(w, t), torch.tensor(2.0))
    assert torch.allclose(volrend.expected_depth(w, t, normalize=True), torch.tensor(2.0 / 0.75))


def test_alpha_and_deltas():
    t = torch.tensor([[1.0, 1.5, 3.0]])
    d = volrend.deltas(t)
    assert torch.allclose(d[0, :2], torch.tensor([0.5, 1.5]))
    assert d[0, 2] == volrend.FAR_DELTA
    d2 = volrend.deltas(t, torch.tensor([[0.0, 3.0, 4.0]]))
    assert torch.allclose(d2[0, :2], torch.tensor([2.5, 7.5]))
    sigma = torch.tensor([[0.0, 2.0, 1.0]])
    a = volrend.alpha_from_density(sigma, d)
    assert torch.allclose(a, torch.tensor([[0.0, 1 - torch.exp(torch.tensor(-3.0)), 1.0]]))


def test_delta_density_gives_one_hot_weights():
    sigma = torch.zeros(4, 16)
    idx = torch.tensor([0, 5, 9, 15])
    sigma[torch.arange(4), idx] = 1e6
    t = torch.linspace(2, 6, 16).expand(4, 16)
    w = volrend.render_weights(volrend.alpha_from_density(sigma, volrend.deltas(t)))
    assert torch.allclose(w, torch.nn.functional.one_hot(idx, 16).float(), atol=1e-6)
    assert torch.allclose(volrend.expected_depth(w, t), t[torch.arange(4), idx], atol=1e-4)


def test_opaque_sample_blocks_everything_behind():
    alpha = torch.tensor([0.2, 1.0, 0.7])
    w = volrend.render_weights(alpha)
    assert torch.allclose(w, torch.tensor([0.2, 0.8, 0.0]))


def test_weights_gradcheck():
    sigma = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.sort(torch.rand(3, 8, dtype=torch.float64), -1).values
    colors = torch.rand(3, 8, 3, dtype=torch.float64, requires_grad=True)

    def f(s, c):
        w = volrend.render_weights(volrend.alpha_from_density(s, volrend.deltas(t)))
        return volrend.composite(w, c, 1.0)

    assert torch.autograd.gradcheck(f, (sigma, colors))


# ----------------------------------------------------------------------------------------------------------
# Intervals: open (NeRF) or closed at far (pixelNeRF); the two transmittance forms
# ----------------------------------------------------------------------------------------------------------
def test_intervals_open_and_closed():
    t = torch.tensor([[1.0, 1.5, 1.9], [0.5, 1.0, 1.2]])
    starts, ends = volrend.sample_intervals(t)
    assert torch.equal(starts, t)
    assert torch.equal(ends[:, :2], t[:, 1:]) and (ends[:, 2] - t[:, 2] == volrend.FAR_DELTA).all()
    _, closed = volrend.sample_intervals(t, 2.0)
    assert torch.allclose(closed, torch.tensor([[1.5, 1.9, 2.0], [1.0, 1.2, 2.0]]))
    _, per_ray = volrend.sample_intervals(t, torch.tensor([2.0, 3.0]))  # far per ray
    assert torch.allclose(per_ray[:, -1], torch.tensor([2.0, 3.0]))
    delta = volrend.interval_lengths(*volrend.sample_intervals(t, 2.0))
    assert torch.allclose(delta, torch.tensor([[0.5, 0.4, 0.1], [0.5, 0.2, 0.8]]))
    assert torch.equal(volrend.deltas(t, far=2.0), delta)
    # t along directions of norm 2 counts half-distances: the metric lengths double.
    scaled = volrend.interval_lengths(*volrend.sample_intervals(t, 2.0), torch.tensor([[0.0, 0.0, 2.0]] * 2))
    assert torch.allclose(scaled, 2 * delta)


def test_closed_last_interval_keeps_an_empty_ray_transparent():
    """Hand numbers (pixelNeRF's test case): a density only at the last sample, 0.1 before far."""
    t = torch.tensor([1.0, 1.5, 1.9])
    sigma = torch.tensor([0.0, 0.0, 1.0])
    w_closed = volrend.render_weights(
        volrend.alpha_from_density(sigma, volrend.deltas(t, far=2.0)), "product"
    )
    assert torch.allclose(w_closed, torch.tensor([0.0, 0.0, 1 - math.exp(-0.1)]))
    w_open = volrend.render_weights(volrend.alpha_from_density(sigma, volrend.deltas(t)), "product")
    assert torch.allclose(w_open[-1], torch.tensor(1.0))  # NeRF: everything behind the last sample


def test_pixelnerf_composite_hand_numbers():
    """Closed interval, product transmittance, unnormalised depth: w = (0.5, 0.25, 0) by hand."""
    t = torch.tensor([1.0, 2.0, 3.5])
    sigma = torch.tensor([math.log(2.0), math.log(2.0) / 1.5, 0.0])  # deltas (1, 1.5, 0.5)
    alpha = volrend.alpha_from_density(sigma, volrend.deltas(t, far=4.0))
    assert torch.allclose(alpha, torch.tensor([0.5, 0.5, 0.0]))
    w = volrend.render_weights(alpha, "product")
    assert torch.allclose(w, torch.tensor([0.5, 0.25, 0.0]), atol=1e-6)
    rgb = torch.eye(3)
    assert torch.allclose(volrend.composite(w, rgb, 1.0), torch.tensor([0.75, 0.5, 0.25]), atol=1e-6)
    assert torch.allclose(volrend.composite(w, rgb, 0.0), torch.tensor([0.5, 0.25, 0.0]), atol=1e-6)
    assert torch.allclose(volrend.expected_depth(w, t), torch.tensor(0.5 * 1 + 0.25 * 2.0))  # not normalised


def test_transmittance_forms():
    alpha = torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
    guard = volrend.TRANSMITTANCE_GUARD
    product = volrend.transmittance(alpha, "product")
    # Each factor carries the published +1e-10.
    assert torch.equal(product, torch.tensor([1.0, 0.5 + guard, (0.5 + guard) ** 2], dtype=torch.float64))
    assert torch.allclose(
        volrend.transmittance(alpha, "log"), torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    )
    a = torch.rand(64, 32, generator=torch.Generator().manual_seed(0)) * 0.3
    assert torch.allclose(
        volrend.transmittance(a, "log"), volrend.transmittance(a, "product"), rtol=1e-5, atol=1e-7
    )
    # An opaque sample: both forms leave (about) 1e-10 behind it, never NaN.
    opaque = torch.tensor([0.2, 1.0, 0.7])
    for form in ("log", "product"):
        T = volrend.transmittance(opaque, form)
        assert torch.isfinite(T).all() and T[2] < 1e-9
    with pytest.raises(ValueError, match="transmittance form"):
        volrend.transmittance(alpha, "cumsum")


def test_layouts_agree():
    """Rays in [R] or [SB, R] layout give the same weights (the renderer's object axis)."""
    g = torch.Generator().manual_seed(1)
    sigma = torch.rand(6, 10, generator=g) * 3
    t = torch.sort(torch.rand(6, 10, generator=g) + 1, -1).values
    for form, far in (("log", None), ("product", 2.5)):
        flat = volrend.render_weights(volrend.alpha_from_density(sigma, volrend.deltas(t, far=far)), form)
        s2, t2 = sigma.reshape(2, 3, 10), t.reshape(2, 3, 10)
        nested = volrend.render_weights(volrend.alpha_from_density(s2, volrend.deltas(t2, far=far)), form)
        assert torch.equal(nested.reshape(6, 10), flat)


@pytest.mark.parametrize("form", ["log", "product"])
def test_closed_interval_gradcheck(form):
    sigma = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.sort(torch.rand(3, 8, dtype=torch.float64), -1).values
    far = torch.full((3,), 1.5, dtype=torch.float64, requires_grad=True)
    colors = torch.rand(3, 8, 3, dtype=torch.float64, requires_grad=True)

    def f(s, c, fr):
        w = volrend.render_weights(volrend.alpha_from_density(s, volrend.deltas(t, far=fr)), form)
        return volrend.composite(w, c, 1.0), volrend.expected_depth(w, t)

    assert torch.autograd.gradcheck(f, (sigma, colors, far))


def test_cumprod_positive_matches_torch_cumprod_and_its_gradient():
    """The sync-free product (pose steps replay it from a CUDA graph) equals torch.cumprod, values and
    gradients, including factors at the 1e-10 guard (an opaque sample)."""
    g = torch.Generator().manual_seed(0)
    alpha = torch.rand(5, 17, generator=g, dtype=torch.float64)
    alpha[0, 3] = 1.0  # opaque: the factor is the guard alone
    x = (1.0 - alpha + volrend.TRANSMITTANCE_GUARD).requires_grad_(True)
    w = torch.randn(5, 17, generator=g, dtype=torch.float64)
    ours = volrend.cumprod_positive(x)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), x)
    ref = torch.cumprod(x, -1)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(volrend.cumprod_positive, (x[1:3, :6].detach().requires_grad_(True),))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_composite_density_equals_the_chain_values_and_gradients(dtype):
    """The fused compositing (hand-written backward, pose steps) equals alpha -> weights -> composite, with a
    validity mask, empty and opaque samples (an opaque one activates the log's clamp)."""
    g = torch.Generator().manual_seed(0)
    R, N = 40, 25
    sigma = torch.rand(R, N, generator=g, dtype=dtype) * 30 * (torch.rand(R, N, generator=g) < 0.5)
    sigma[0, 3] = 1e6
    sigma.requires_grad_(True)
    delta = (torch.rand(R, N, generator=g, dtype=dtype) * 0.1).requires_grad_(True)
    rgb = torch.rand(R, N, 3, generator=g, dtype=dtype).requires_grad_(True)
    valid = (torch.rand(R, N, generator=g) < 0.8).to(dtype)
    bg = torch.tensor([1.0, 0.5, 0.0], dtype=dtype)
    fused = volrend.composite_density(sigma, delta, rgb, bg, valid)
    w = volrend.render_weights(volrend.alpha_from_density(sigma, delta)) * valid
    chain = volrend.composite(w, rgb, bg)
    torch.testing.assert_close(fused, chain)
    weight = torch.randn(R, 3, generator=g, dtype=dtype)
    got = torch.autograd.grad((fused * weight).sum(), [sigma, delta, rgb])
    ref = torch.autograd.grad((chain * weight).sum(), [sigma, delta, rgb])
    for a, b in zip(got, ref):  # float32: the reverse cumsum's cancellation, relative to the largest entry
        assert torch.isfinite(a).all()
        tol = 1e-6 if dtype == torch.float32 else 1e-13
        assert (a - b).abs().max() <= tol * b.abs().max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_packed_compositing_equals_the_slot_layout(dtype):
    """Compositing samples packed ray after ray (running sums over the pack) equals compositing the
    ``[R, N]`` slot layout in which the missing samples have zero-length intervals: values and gradients,
    with empty rays, an opaque sample and padding entries after the last ray."""
    g = torch.Generator().manual_seed(1)
    R, N = 30, 20
    valid = torch.rand(R, N, generator=g) < torch.rand(R, 1, generator=g)
    valid[4] = False  # a ray with no sample
    sigma = torch.rand(R, N, generator=g, dtype=dtype) * 30
    sigma[0, 3] = 1e6
    delta = torch.rand(R, N, generator=g, dtype=dtype) * 0.1 * valid
    rgb = torch.rand(R, N, 3, generator=g, dtype=dtype)
    bg = torch.tensor([1.0, 0.5, 0.0], dtype=dtype)
    leaves = [t.clone().requires_grad_(True) for t in (sigma, delta, rgb)]
    slots = volrend.composite_density(*leaves[:2], leaves[2], bg, valid.to(dtype))
    # The pack: the valid samples in order, then 5 padding entries attached to the last ray.
    rows, cols = valid.nonzero(as_tuple=True)
    pad = 5
    ray = torch.cat([rows, torch.full((pad,), R - 1)])
    kept = torch.cat([torch.ones(len(rows), dtype=torch.bool), torch.zeros(pad, dtype=torch.bool)])
    packs = [
        torch.cat([t[rows, cols], torch.rand(pad, *t.shape[2:], generator=g, dtype=dtype)])
        for t in (sigma, delta, rgb)
    ]
    packs = [t.requires_grad_(True) for t in packs]
    packed = volrend.composite_density_packed(*packs[:3], ray, kept, R, bg)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert (packed - slots).abs().max() <= tol and torch.equal(packed[4], bg)
    weight = torch.randn(R, 3, generator=g, dtype=dtype)
    got = torch.autograd.grad((packed * weight).sum(), packs)
    ref = torch.autograd.grad((slots * weight).sum(), leaves)
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all() and not a[-pad:].any()  # padding takes no gradient
        assert (a[: len(rows)] - b[rows, cols]).abs().max() <= 10 * tol * b.abs().max()
