"""The field interface shared by every radiance field (NeRF MLP, grid, pixelNeRF).

A field maps world points (and view directions) to colour and density. It knows nothing about rays, images
or cameras; the renderer (:mod:`inerf.render`) samples rays and composites. Fields that need more than
points first take it in a separate step (pixelNeRF: ``PixelNeRF.encode`` of the source views, then
``PixelNeRF.field(coarse)`` is its view as a :class:`RadianceField`).
"""

from __future__ import annotations

from typing import Protocol

import torch


class RadianceField(Protocol):
    """``field(xyz [..., N, 3], viewdirs [..., N, 3] or None) -> (rgb [..., N, 3], sigma [..., N])``, colours
    in [0, 1], densities >= 0.

    ``viewdirs`` are unit-length world directions of the rays (the direction from the camera towards the
    point). Fields that are not view-dependent ignore them. Leading dimensions ``...`` are objects: the
    renderer passes ``[N, 3]`` for rays ``[R]`` (one scene; NeRF and grid fields take only this) and
    ``[SB, N, 3]`` for rays ``[SB, R]`` of ``SB`` objects (pixelNeRF encoded with ``SB`` objects).
    """

    def __call__(
        self, xyz: torch.Tensor, viewdirs: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
