"""PSNR and SSIM against hand values, identities and a slow per-window reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inerf.eval.metrics import gaussian_window, mse, psnr, ssim, ssim_skimage_default

C1, C2 = 0.01**2, 0.03**2


def test_psnr_hand_values():
    a = torch.zeros(4, 5, 3)
    assert psnr(a + 0.1, a).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr(a + 0.5, a).item() == pytest.approx(10 * math.log10(4), abs=1e-4)
    assert psnr(a, a).item() == math.inf
    assert psnr(a + 25.5, a, max_val=255.0).item() == pytest.approx(20.0, abs=1e-4)
    batch = torch.stack([a + 0.1, a + 0.01])
    torch.testing.assert_close(psnr(batch, torch.zeros_like(batch)), torch.tensor([20.0, 40.0]))
    assert mse(a + 0.1, a).shape == ()


def test_gaussian_window():
    g = gaussian_window(11, 1.5)
    assert g.shape == (11,) and g.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(g, g.flip(0))
    assert g.argmax().item() == 5
    assert (g[5] / g[6]).item() == pytest.approx(math.exp(0.5 / 1.5**2))


def test_ssim_identity_and_symmetry():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 16, 20, 3, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert (ssim(x, y) < 1).all()
    assert ssim(x, y, return_map=True).shape == (2, 6, 10, 3)


@pytest.mark.parametrize(("a", "b"), [(0.2, 0.7), (0.5, 0.5), (0.0, 1.0)])
def test_ssim_constant_images(a, b):
    # Flat images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    x, y = torch.full((12, 12, 1), a, dtype=torch.float64), torch.full((12, 12, 1), b, dtype=torch.float64)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-9)


def _ssim_reference(x: torch.Tensor, y: torch.Tensor) -> float:
    """One explicit weighted window per output pixel and channel (the obvious, slow definition)."""
    g = gaussian_window(11, 1.5)
    w = g[:, None] * g[None, :]
    H, W, C = x.shape
    vals = []
    for c in range(C):
        for i in range(H - 10):
            for j in range(W - 10):
                px, py = x[i : i + 11, j : j + 11, c], y[i : i + 11, j : j + 11, c]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cxy = (w * (px - mx) * (py - my)).sum()
                vals.append((2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2)))
    return torch.stack(vals).mean().item()


def test_ssim_matches_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(14, 15, 2, generator=g, dtype=torch.float64)
    y = (x * 0.7 + 0.2 * torch.rand(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert ssim(x, y).item() == pytest.approx(_ssim_reference(x, y), abs=1e-10)
    # float32 input goes through float64 internally: same value to float32 precision.
    assert ssim(x.float(), y.float()).item() == pytest.approx(_ssim_reference(x, y), abs=1e-5)


def test_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(4, 4, 3), torch.zeros(4, 5, 3))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3))
    with pytest.raises(ValueError, match=r"\[..., H, W, C\]"):
        psnr(torch.zeros(4, 4), torch.zeros(4, 4))


# -- against scikit-image, on real renders ------------------------------------------------------------------


def _skimage_pairs(demo_images):
    """Pairs of real images (float64 [0, 1]): two views, and a view against a noisy copy of itself."""
    from eval_helpers import resize

    x = resize(demo_images[:3], 64)
    noisy = (x + 0.05 * np.random.default_rng(0).standard_normal(x.shape)).clip(0, 1)
    return [(x[0], x[1]), (x[1], x[2]), (x[0], noisy[0]), (x[2], noisy[2]), (demo_images[0], demo_images[4])]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssim_matches_skimage(demo_images, dtype):
    """Our default SSIM is scikit-image's Gaussian setting; ``ssim_skimage_default`` its default setting."""
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (test extra)")
    worst_gauss = worst_default = spread = 0.0
    for a, b in _skimage_pairs(demo_images):
        ta, tb = torch.from_numpy(a).to(dtype), torch.from_numpy(b).to(dtype)
        ref_gauss = metrics.structural_similarity(
            a, b, channel_axis=-1, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        ref_default = metrics.structural_similarity(a, b, channel_axis=-1, data_range=1)
        worst_gauss = max(worst_gauss, abs(ssim(ta, tb).item() - ref_gauss))
        worst_default = max(worst_default, abs(ssim_skimage_default(ta, tb).item() - ref_default))
        spread = max(spread, abs(ref_gauss - ref_default))
    print(f"SSIM ({dtype}): max |ours - skimage| gaussian {worst_gauss:.3g}, default {worst_default:.3g}")
    assert worst_gauss <= 1e-4 and worst_default <= 1e-4
    assert spread > 1e-2  # the two settings give really different numbers
    # batched = one by one
    a = torch.from_numpy(np.stack([p[0] for p in _skimage_pairs(demo_images)[:4]]))
    b = torch.from_numpy(np.stack([p[1] for p in _skimage_pairs(demo_images)[:4]]))
    torch.testing.assert_close(ssim_skimage_default(a, b)[2], ssim_skimage_default(a[2], b[2]))


def test_psnr_matches_skimage(demo_images):
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is not installed (test extra)")
    worst = 0.0
    for a, b in _skimage_pairs(demo_images):
        ref = metrics.peak_signal_noise_ratio(a, b, data_range=1)
        worst = max(worst, abs(psnr(torch.from_numpy(a), torch.from_numpy(b)).item() - ref))
    print(f"PSNR: max |ours - skimage| {worst:.3g} dB")
    assert worst <= 1e-4


def test_uniform_window_sample_covariance_by_hand():
    """A 7x7 image is one window: SSIM from the unbiased (N - 1) statistics of the 49 pixels."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(7, 7, 1, generator=g, dtype=torch.float64)
    y = (0.5 * x + 0.3 * torch.rand(7, 7, 1, generator=g, dtype=torch.float64)).clamp(0, 1)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(unbiased=True), y.var(unbiased=True)
    cxy = ((x - mx) * (y - my)).sum() / 48
    expected = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    assert ssim_skimage_default(x, y).item() == pytest.approx(expected.item(), abs=1e-12)
    with pytest.raises(ValueError, match="unknown SSIM window"):
        ssim(x, y, window_size=7, window="box")
