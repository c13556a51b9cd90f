"""The field interface shared by every radiance field (NeRF MLP, grid, pixelNeRF adapter).

A field maps world points (and view directions) to colour and density. It knows nothing about rays,
images or cameras.
"""

from __future__ import annotations

from typing import Protocol

import torch


class RadianceField(Protocol):
    """``field(xyz [N, 3], viewdirs [N, 3] or None) -> (rgb [N, 3] in [0, 1], sigma [N] >= 0)``.

    ``viewdirs`` are unit-length world directions of the rays (the direction from the camera towards
    the point). Fields that are not view-dependent ignore them.
    """

    def __call__(
        self, xyz: torch.Tensor, viewdirs: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
