"""pixelNeRF's point network: positional encoding and ResnetFC with averaging over source views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inerf.fields.encoding import PositionalEncoding
from inerf.pixelnerf.config import CodeConfig, MLPConfig

__all__ = ["PositionalEncoding", "ResnetBlockFC", "ResnetFC", "code_encoding"]


def code_encoding(d_in: int = 3, config: CodeConfig | None = None) -> PositionalEncoding:
    """pixelNeRF's positional encoding ``code``: :class:`inerf.fields.encoding.PositionalEncoding` with
    ``f_k = freq_factor 2^k`` and the published column order (per frequency a sin block of ``d_in`` values,
    then a cos block, after the input).

    ``cos`` is evaluated as ``sin(f x + pi / 2)`` from the persistent buffers ``_freqs`` and ``_phases``
    (``[1, 2 num_freqs, 1]`` each, both stored in the checkpoint), which reproduces the published values to
    the last bit.
    """
    config = config if config is not None else CodeConfig()
    return PositionalEncoding(
        config.num_freqs,
        config.include_input,
        d_in,
        freq_factor=config.freq_factor,
        cos_as_shifted_sin=True,
        persistent=True,
    )


class ResnetBlockFC(nn.Module):
    """Pre-activation residual block ``h + fc_1(act(fc_0(act(h))))`` (width in = out, so no shortcut)."""

    def __init__(self, width: int, beta: float = 0.0):
        super().__init__()
        self.fc_0 = nn.Linear(width, width)
        self.fc_1 = nn.Linear(width, width)
        self.beta = beta
        # Initialisation for training from scratch: fc_1 starts at zero so every block is the identity.
        nn.init.kaiming_normal_(self.fc_0.weight, a=0.0, mode="fan_in")
        nn.init.zeros_(self.fc_0.bias)
        nn.init.zeros_(self.fc_1.weight)
        nn.init.zeros_(self.fc_1.bias)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, beta=self.beta) if self.beta > 0 else F.relu(x)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc_1(self.act(self.fc_0(self.act(h))))


class ResnetFC(nn.Module):
    """ResnetFC conditioned on a per-view latent, reducing over source views after ``combine_layer`` blocks.

    Input rows ``[z (d_latent) | x (d_in)]`` are ordered (object, source view, point). With ``NS`` views and
    ``B`` points per object:

    * ``h = lin_in(x)``;
    * for block ``i``: if ``i == combine_layer``, reduce ``h`` over the NS views (rows become (object,
      point)); if ``i < combine_layer``, ``h = h + lin_z[i](z)``; then ``h = block_i(h)``;
    * ``out = lin_out(act(h))``.

    There are ``min(combine_layer, n_blocks)`` ``lin_z`` layers (3 in every published model).
    """

    def __init__(self, d_in: int, d_latent: int, d_out: int = 4, config: MLPConfig | None = None):
        super().__init__()
        config = config if config is not None else MLPConfig()
        width = config.d_hidden
        self.d_in, self.d_latent, self.config = d_in, d_latent, config
        self.lin_in = nn.Linear(d_in, width)
        self.lin_out = nn.Linear(width, d_out)
        self.blocks = nn.ModuleList([ResnetBlockFC(width, config.beta) for _ in range(config.n_blocks)])
        n_lin_z = min(config.combine_layer, config.n_blocks) if d_latent > 0 else 0
        self.lin_z = nn.ModuleList([nn.Linear(d_latent, width) for _ in range(n_lin_z)])
        for lin in (self.lin_in, self.lin_out, *self.lin_z):
            nn.init.kaiming_normal_(lin.weight, a=0.0, mode="fan_in")
            nn.init.zeros_(lin.bias)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, beta=self.config.beta) if self.config.beta > 0 else F.relu(x)

    def forward(self, rows: torch.Tensor, num_views: int, num_points: int) -> torch.Tensor:
        """``rows [SB * NS * B, d_latent + d_in]`` -> ``[SB * B, d_out]`` (or ``[SB * NS * B, d_out]`` if the
        network never combines, i.e. ``combine_layer >= n_blocks``)."""
        z, x = rows[:, : self.d_latent], rows[:, self.d_latent :]
        h = self.lin_in(x)
        for i, block in enumerate(self.blocks):
            if i == self.config.combine_layer:
                # Objects spelt out, not -1: a data-parallel process may hold none (0 rows).
                h = h.reshape(h.shape[0] // (num_views * num_points), num_views, num_points, h.shape[-1])
                h = h.mean(dim=1) if self.config.combine_type == "average" else h.amax(dim=1)
                h = h.reshape(-1, h.shape[-1])
            if i < len(self.lin_z):
                h = h + self.lin_z[i](z)
            h = block(h)
        return self.lin_out(self.act(h))
