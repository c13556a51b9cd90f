"""Slow, plain references of the fast field paths (tested against them; never used in production).

* :func:`bilinear_reference`, :func:`linear_reference`: interpolation with explicit index arithmetic, the
  references of ``F.grid_sample`` as :class:`~inerf.fields.grid.GridField` calls it.
* :func:`grid_forward_reference`: :meth:`GridField.forward <inerf.fields.grid.GridField.forward>` evaluated
  at every point with the reference interpolation, then multiplied by the occupancy mask (no skipping).
"""

from __future__ import annotations

import torch

from inerf.fields.grid import PLANE_AXES, GridField

__all__ = ["bilinear_reference", "grid_forward_reference", "linear_reference"]


def bilinear_reference(plane: torch.Tensor, ua: torch.Tensor, ub: torch.Tensor) -> torch.Tensor:
    """Reference bilinear interpolation of ``plane [C, H, W]`` at normalised ``(ua, ub) [N]`` -> ``[N, C]``.

    ``ua`` indexes the width: ``x = (ua + 1) / 2 (W - 1)`` (vertex 0 at -1, vertex W-1 at +1, i.e.
    ``grid_sample(align_corners=True)``), ``y`` likewise for the height. Coordinates outside are clamped to
    the border. Written with explicit indices, as the slow reference of ``F.grid_sample``.
    """
    C, H, W = plane.shape
    x = ((ua + 1) * 0.5 * (W - 1)).clamp(0, W - 1)
    y = ((ub + 1) * 0.5 * (H - 1)).clamp(0, H - 1)
    # Clamp the lower corner to W - 2 so a point on the last vertex interpolates inside the last cell
    # (weight 1 on its upper corner) instead of reading past the edge.
    x0 = x.detach().floor().clamp(0, max(W - 2, 0)).long()
    y0 = y.detach().floor().clamp(0, max(H - 2, 0)).long()
    x1, y1 = (x0 + 1).clamp(max=W - 1), (y0 + 1).clamp(max=H - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    flat = plane.reshape(C, H * W).t()  # [H W, C]: one row per vertex
    v00, v01 = flat[y0 * W + x0], flat[y0 * W + x1]
    v10, v11 = flat[y1 * W + x0], flat[y1 * W + x1]
    return (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy


def linear_reference(line: torch.Tensor, uc: torch.Tensor) -> torch.Tensor:
    """Reference linear interpolation of ``line [C, R]`` at normalised ``uc [N]`` -> ``[N, C]`` (same
    vertex placement and border clamp as :func:`bilinear_reference`)."""
    _C, R = line.shape
    z = ((uc + 1) * 0.5 * (R - 1)).clamp(0, R - 1)
    z0 = z.detach().floor().clamp(0, max(R - 2, 0)).long()
    z1 = (z0 + 1).clamp(max=R - 1)
    fz = (z - z0)[:, None]
    rows = line.t()
    return rows[z0] * (1 - fz) + rows[z1] * fz


def grid_forward_reference(field: GridField, xyz: torch.Tensor, viewdirs: torch.Tensor | None = None):
    """Slow reference of ``field(xyz, viewdirs)``: ``(rgb [N, 3], sigma [N])`` from explicit interpolation at
    every point (same factor layout ``3 x [C, N]`` as the fast path), then the box and occupancy mask."""
    field._check(xyz, viewdirs)
    u = field.normalize(xyz)
    factors = []
    for (a, b, c), plane, line in zip(PLANE_AXES, field.planes, field.lines):
        p = bilinear_reference(plane[0], u[:, a], u[:, b])
        ln = linear_reference(line[0, :, :, 0], u[:, c])
        factors.append((p * ln).t())
    rgb, sigma = field._decode(factors, viewdirs)
    m = field.occupied(xyz).to(sigma.dtype)
    return rgb * m[:, None], sigma * m
