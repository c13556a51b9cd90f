"""The NeRF MLP (Mildenhall et al. 2020, Fig. 7)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from inerf.fields.encoding import PositionalEncoding


@dataclass
class NeRFConfig:
    """Architecture of the NeRF MLP."""

    depth: int = 8
    """Number of 256-wide layers in the trunk."""
    width: int = 256
    """Width of the trunk."""
    skip: int = 4
    """The encoded input is concatenated to the output of this layer (0-based), i.e. fed into the 5th+1."""
    pos_freqs: int = 10
    """Frequencies of the positional encoding of xyz."""
    dir_freqs: int = 4
    """Frequencies of the encoding of view directions."""
    view_dependent: bool = True
    """Colour depends on the view direction (a 128-wide head after the trunk)."""


class NeRFField(nn.Module):
    """``(xyz [N, 3], viewdirs [N, 3]) -> (rgb [N, 3] in [0, 1], sigma [N] >= 0)``.

    Trunk of ``depth`` ReLU layers on gamma(xyz) with gamma(xyz) re-injected after layer ``skip``;
    density from the trunk alone (so geometry is view-independent); colour from a 256-d feature plus
    gamma(viewdir) through one 128-wide layer.
    """

    def __init__(self, config: NeRFConfig | None = None):
        super().__init__()
        self.config = cfg = config or NeRFConfig()
        self.pos_enc = PositionalEncoding(cfg.pos_freqs)
        self.dir_enc = PositionalEncoding(cfg.dir_freqs)
        layers = []
        in_dim = self.pos_enc.out_dim
        for i in range(cfg.depth):
            layers.append(nn.Linear(in_dim, cfg.width))
            in_dim = cfg.width + (self.pos_enc.out_dim if i == cfg.skip else 0)
        self.trunk = nn.ModuleList(layers)
        self.sigma_head = nn.Linear(cfg.width, 1)
        if cfg.view_dependent:
            self.feature = nn.Linear(cfg.width, cfg.width)
            self.view_layer = nn.Linear(cfg.width + self.dir_enc.out_dim, cfg.width // 2)
            self.rgb_head = nn.Linear(cfg.width // 2, 3)
        else:
            self.rgb_head = nn.Linear(cfg.width, 3)

    def density_features(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.pos_enc(xyz)
        h = enc
        for i, layer in enumerate(self.trunk):
            h = F.relu(layer(h))
            if i == self.config.skip:
                h = torch.cat([h, enc], -1)
        return self.sigma_head(h)[..., 0], h

    def forward(self, xyz: torch.Tensor, viewdirs: torch.Tensor | None = None):
        raw_sigma, h = self.density_features(xyz)
        if self.config.view_dependent:
            if viewdirs is None:
                raise ValueError("this field is view-dependent: pass viewdirs")
            h = torch.cat([self.feature(h), self.dir_enc(viewdirs)], -1)
            h = F.relu(self.view_layer(h))
        rgb = torch.sigmoid(self.rgb_head(h))
        return rgb, F.relu(raw_sigma)
