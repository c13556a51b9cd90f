"""Positional (frequency) encoding, NeRF §5.1."""

from __future__ import annotations

import torch
from torch import nn


class PositionalEncoding(nn.Module):
    """gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^{L-1} pi p), cos(2^{L-1} pi p)).

    NeRF's reference code drops the pi (it scales the scene instead); we follow it, ``scale=1``, so the
    10/4-frequency defaults behave as in the paper's experiments. Output: ``[..., d (include_input + 2L)]``.
    """

    def __init__(self, n_freqs: int, include_input: bool = True, in_dim: int = 3):
        super().__init__()
        self.n_freqs, self.include_input, self.in_dim = n_freqs, include_input, in_dim
        self.register_buffer("freqs", 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (int(self.include_input) + 2 * self.n_freqs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = x[..., None, :] * self.freqs[:, None]  # [..., L, D]
        enc = torch.cat([torch.sin(xb), torch.cos(xb)], -1).flatten(-2)
        # Order (sin f0 xyz, cos f0 xyz, sin f1 ...) differs from NeRF's only by a fixed permutation,
        # which the first linear layer absorbs.
        return torch.cat([x, enc], -1) if self.include_input else enc
