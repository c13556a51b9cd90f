"""Positional encoding: NeRF's and pixelNeRF's variants of one module (layout, values, state-dict keys)."""

from __future__ import annotations

import math

import torch

from inerf.fields.encoding import PositionalEncoding
from inerf.pixelnerf.config import CodeConfig
from inerf.pixelnerf.resnetfc import code_encoding


def test_layout_hand_numbers():
    enc = PositionalEncoding(2, include_input=True, in_dim=2)
    x = torch.tensor([[0.3, -1.0]])
    a, b = 0.3, -1.0
    expected = [a, b, math.sin(a), math.sin(b), math.cos(a), math.cos(b)]
    expected += [math.sin(2 * a), math.sin(2 * b), math.cos(2 * a), math.cos(2 * b)]
    assert enc.out_dim == 10 and torch.allclose(enc(x), torch.tensor([expected]), atol=1e-7)
    assert PositionalEncoding(3, include_input=False)(torch.zeros(5, 4, 3)).shape == (5, 4, 18)
    assert PositionalEncoding(4).state_dict() == {}  # NeRF / grid runs store no encoding buffers


def test_pixelnerf_code_is_the_same_encoding():
    """pixelNeRF's ``code``: f_k = 1.5 2^k, cos as sin(. + pi / 2) from the persistent checkpoint buffers."""
    code = code_encoding(3, CodeConfig())
    assert isinstance(code, PositionalEncoding) and code.out_dim == 39
    sd = code.state_dict()
    assert set(sd) == {"_freqs", "_phases"} and sd["_freqs"].shape == sd["_phases"].shape == (1, 12, 1)
    assert torch.equal(sd["_freqs"].flatten(), torch.tensor([1.5, 1.5, 3, 3, 6, 6, 12, 12, 24, 24, 48, 48.0]))
    x = torch.rand(7, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    # Bit for bit the published evaluation: sin(x f + phase) per column, input first.
    published = torch.sin(x[:, None, :] * sd["_freqs"] + sd["_phases"]).reshape(7, -1)
    assert torch.equal(code(x), torch.cat([x, published], -1))
    # Same values as NeRF's sin / cos form with factor 1.5, up to float32 rounding of the shifted sine.
    nerf_form = PositionalEncoding(6, in_dim=3, freq_factor=1.5)
    assert torch.allclose(code(x), nerf_form(x), atol=2e-6)
    assert torch.equal(code(x[None, None])[0, 0], code(x))  # any leading dimensions
