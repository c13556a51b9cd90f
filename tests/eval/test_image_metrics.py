"""PSNR and SSIM against hand values, identities and a slow per-window reference."""

from __future__ import annotations

import math

import pytest
import torch

from inerf.eval.metrics import gaussian_window, mse, psnr, ssim

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
