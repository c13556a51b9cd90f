"""Positional (frequency) encoding, NeRF §5.1; pixelNeRF's ``code`` is the same encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionalEncoding"]


class PositionalEncoding(nn.Module):
    """gamma(p) = (p, sin(f_0 p), cos(f_0 p), ..., sin(f_{L-1} p), cos(f_{L-1} p)), f_k = freq_factor 2^k.

    Layout of the output ``[..., out_dim]``, ``out_dim = in_dim (include_input + 2L)``: the input, then per
    frequency a sin block of ``in_dim`` values followed by a cos block. NeRF's reference code drops the pi
    (it scales the scene instead); we follow it, ``freq_factor=1``, so the 10/4-frequency defaults behave as
    in the paper's experiments. pixelNeRF uses ``freq_factor=1.5`` and the same layout (its first linear
    layer's columns are fixed by it).

    Args:
        n_freqs: L.
        include_input: prepend p itself.
        in_dim: size of p.
        freq_factor: f_0.
        cos_as_shifted_sin: evaluate cos(z) as sin(z + pi / 2), pixelNeRF's published form, which reproduces
            its values to the last bit (its weights were trained on them); else torch.cos (NeRF, grid).
        persistent: store the per-column buffers ``_freqs`` = (f_0, f_0, f_1, f_1, ...) and ``_phases`` =
            (0, pi / 2, 0, pi / 2, ...), each ``[1, 2L, 1]``, in the state dict (pixelNeRF's checkpoints hold
            them as ``code._freqs``, ``code._phases``); NeRF and grid runs store none.
    """

    def __init__(
        self,
        n_freqs: int,
        include_input: bool = True,
        in_dim: int = 3,
        *,
        freq_factor: float = 1.0,
        cos_as_shifted_sin: bool = False,
        persistent: bool = False,
    ):
        super().__init__()
        self.n_freqs, self.include_input, self.in_dim = n_freqs, include_input, in_dim
        self.cos_as_shifted_sin = cos_as_shifted_sin
        freqs = freq_factor * 2.0 ** torch.arange(n_freqs, dtype=torch.float32)
        phases = torch.zeros(2 * n_freqs)
        phases[1::2] = math.pi / 2
        # Each frequency twice, once per phase: the columns of sin(f p + phase) in output order.
        self.register_buffer("_freqs", freqs.repeat_interleave(2).view(1, -1, 1), persistent=persistent)
        self.register_buffer("_phases", phases.view(1, -1, 1), persistent=persistent)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (int(self.include_input) + 2 * self.n_freqs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., in_dim]`` -> ``[..., out_dim]``."""
        if self.cos_as_shifted_sin:
            enc = torch.sin(x[..., None, :] * self._freqs[0] + self._phases[0])  # [..., 2L, D]
        else:
            xb = x[..., None, :] * self._freqs[0, ::2]  # [..., L, D]
            enc = torch.cat([torch.sin(xb), torch.cos(xb)], -1)
        enc = enc.flatten(-2)
        return torch.cat([x, enc], -1) if self.include_input else enc
