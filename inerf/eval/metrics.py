"""Image-quality metrics: PSNR and SSIM (LPIPS is in :mod:`inerf.eval.lpips`).

Images are ``[..., H, W, C]`` tensors (channels last, as everything else in ``inerf``) with values in
``[0, max_val]``; leading dimensions are a batch and give one value per image.

SSIM follows Wang et al. 2004 with K1 = 0.01, K2 = 0.03, statistics per channel, "valid" filtering (border
pixels whose window leaves the image are not scored) and the mean over pixels and channels. Two windows are
in use, and they give different numbers:

* default: an 11x11 Gaussian window with sigma 1.5 and population (1/N) statistics, as NeRF and
  ``tf.image.ssim`` report, equal to scikit-image's
  ``structural_similarity(..., channel_axis=-1, data_range=1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``;
* :func:`ssim_skimage_default` (``window="uniform"``, 7x7, ``sample_covariance=True``): scikit-image's
  defaults (``structural_similarity(..., channel_axis=-1, data_range=1)``), which pixelNeRF's ``eval.py``
  and ``calc_metrics.py`` report.

Both are tested against scikit-image to 1e-4 (``tests/eval/test_image_metrics.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "mse", "psnr", "psnr_from_mse", "ssim", "ssim_skimage_default"]


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
    window: str = "gaussian",
    sample_covariance: bool = False,
) -> torch.Tensor:
    """Structural similarity per image: ``[..., H, W, C]`` -> ``[...]`` (or the SSIM map
    ``[..., H - window_size + 1, W - window_size + 1, C]`` with ``return_map``).

    With window-weighted local means mu, variances s^2 and covariance s_xy,

        SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
        C1 = (k1 max_val)^2, C2 = (k2 max_val)^2.

    Args:
        window: ``"gaussian"`` (``window_size`` taps, standard deviation ``sigma``) or ``"uniform"`` (a
            ``window_size`` box; ``sigma`` unused).
        sample_covariance: scale variances and covariance by N / (N - 1), N = ``window_size``^2 (unbiased
            estimates, scikit-image's default for the uniform window).

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
    if window == "gaussian":
        g = gaussian_window(window_size, sigma, device=x.device)
    elif window == "uniform":
        g = torch.full((window_size,), 1.0 / window_size, dtype=torch.float64, device=x.device)
    else:
        raise ValueError(f"unknown SSIM window {window!r}; expected 'gaussian' or 'uniform'")

    def blur(z: torch.Tensor) -> torch.Tensor:
        # Both windows are separable: two 1-D valid convolutions equal the 2-D window exactly.
        z = F.conv2d(z, g.view(1, 1, 1, -1))
        return F.conv2d(z, g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    n = window_size**2
    norm = n / (n - 1) if sample_covariance else 1.0
    var_x = norm * (blur(x * x) - mu_x**2)
    var_y = norm * (blur(y * y) - mu_y**2)
    cov = norm * (blur(x * y) - mu_x * mu_y)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    h, w = smap.shape[-2:]
    smap = smap.reshape(-1, C, h, w).permute(0, 2, 3, 1).reshape(*batch, h, w, C).to(pred.dtype)
    return smap if return_map else smap.flatten(-3).mean(-1)


def ssim_skimage_default(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """SSIM with scikit-image's default settings, as pixelNeRF's ``eval.py`` and ``calc_metrics.py`` report
    it (``compare_ssim(pred, gt, multichannel=True, data_range=1)``): a 7x7 uniform window, sample
    covariance, K1 = 0.01, K2 = 0.03, the 3-pixel border not scored. ``[..., H, W, C]`` -> ``[...]``.
    """
    return ssim(pred, target, max_val, window_size=7, window="uniform", sample_covariance=True)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.ndim < 3:
        raise ValueError(f"expected [..., H, W, C] images, got shape {tuple(pred.shape)}")
