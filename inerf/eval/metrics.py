"""Image-quality metrics: PSNR and SSIM.

Images are ``[..., H, W, C]`` tensors (channels last, as everything else in ``inerf``) with values in
``[0, max_val]``; leading dimensions are a batch and give one value per image.

SSIM follows Wang et al. 2004 with the constants everyone reports numbers with (and that NeRF,
pixelNeRF and tf.image.ssim use): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
"valid" filtering (no padding: border pixels whose window leaves the image are not scored), statistics
per channel, and the mean over pixels and channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "mse", "psnr", "psnr_from_mse", "ssim"]


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: ``[..., H, W, C]`` -> ``[...]``."""
    _check_pair(pred, target)
    return ((pred - target) ** 2).flatten(-3).mean(-1)


def psnr_from_mse(err: torch.Tensor | float, max_val: float = 1.0) -> torch.Tensor:
    """PSNR = 10 log10(max_val^2 / mse) in dB (infinite for identical images)."""
    err = torch.as_tensor(err, dtype=torch.float64 if not torch.is_tensor(err) else None)
    return 10.0 * torch.log10(max_val**2 / err)


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``[..., H, W, C]`` -> ``[...]``.

    Example: images differing by 0.1 everywhere have mse 0.01 and PSNR 20 dB.
    """
    return psnr_from_mse(mse(pred, target), max_val)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian ``[size]`` centred on the middle tap (the 2-D window is its outer product)."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    max_val: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    return_map: bool = False,
) -> torch.Tensor:
    """Structural similarity per image: ``[..., H, W, C]`` -> ``[...]`` (or the SSIM map
    ``[..., H - window_size + 1, W - window_size + 1, C]`` with ``return_map``).

    With Gaussian-weighted local means mu, variances s^2 and covariance s_xy,

        SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
        C1 = (k1 max_val)^2, C2 = (k2 max_val)^2.

    Identities (tested): SSIM(x, x) = 1; for two constant images a and b,
    SSIM = (2ab + C1) / (a^2 + b^2 + C1). Computed in float64 internally: the variances are differences
    of nearly equal numbers (E[x^2] - E[x]^2), which float32 leaves visibly noisy on flat regions.
    """
    _check_pair(pred, target)
    *batch, H, W, C = pred.shape
    if H < window_size or W < window_size:
        raise ValueError(f"SSIM needs images of at least {window_size}x{window_size}, got {H}x{W}")
    x = pred.detach().to(torch.float64).reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(-1, 1, H, W)
    y = target.detach().to(torch.float64).reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(-1, 1, H, W)
    g = gaussian_window(window_size, sigma, device=x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:
        # The Gaussian is separable: two 1-D valid convolutions equal the 2-D window exactly.
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    h, w = smap.shape[-2:]
    smap = smap.reshape(-1, C, h, w).permute(0, 2, 3, 1).reshape(*batch, h, w, C).to(pred.dtype)
    return smap if return_map else smap.flatten(-3).mean(-1)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.ndim < 3:
        raise ValueError(f"expected [..., H, W, C] images, got shape {tuple(pred.shape)}")
