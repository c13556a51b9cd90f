"""Slow, plain reference of the pixelNeRF field (tested against :class:`~inerf.pixelnerf.model.PixelNeRF`;
never used in production).

:func:`published_forward` re-states the published forward pass one (object, source view) at a time with a
hand-written bilinear feature lookup, the positional encoding written out as sin / cos triples and the
ResnetFC blocks called one by one, for the published ``default_mv`` architecture (5 blocks, views averaged
before block 3, 6 frequencies x 1.5).
"""

from __future__ import annotations

import torch

from inerf.pixelnerf.model import PixelNeRF

__all__ = ["published_forward"]


def _bilinear_border(latent: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hand bilinear lookup of ``latent [C, H_l, W_l]`` at latent pixel coordinates, clamped to the border."""
    H_l, W_l = latent.shape[-2:]
    x, y = x.clamp(0, W_l - 1), y.clamp(0, H_l - 1)
    x0, y0 = x.floor().long().clamp(max=W_l - 2), y.floor().long().clamp(max=H_l - 2)
    ax, ay = x - x0, y - y0

    def g(yy, xx):  # [C, P]
        return latent[:, yy, xx]

    top = g(y0, x0) * (1 - ax) + g(y0, x0 + 1) * ax
    bottom = g(y0 + 1, x0) * (1 - ax) + g(y0 + 1, x0 + 1) * ax
    return (top * (1 - ay) + bottom * ay).T  # [P, C]


def published_forward(model: PixelNeRF, images, c2w_gl, fxfy, cxcy, xyz, viewdirs, coarse: bool):
    """Slow, plain re-statement of the published forward pass, one (object, view) at a time: ``[SB, B, 4]``.

    ``images [SB, NS, 3, H, W]`` in [-1, 1]; ``c2w_gl [SB, NS, 4, 4]``; ``fxfy``, ``cxcy [SB, NS, 2]``
    (pixelNeRF pixel coordinates); ``xyz``, ``viewdirs [SB, B, 3]``.
    """
    SB, NS, _, H, W = images.shape
    mlp = model.mlp_coarse if coarse else model.mlp_fine
    freqs = 1.5 * 2.0 ** torch.arange(6)
    outs = []
    for s in range(SB):
        per_view = []
        for k in range(NS):
            latent = model.encoder(images[s, k][None])[0]  # [C, H_l, W_l]
            R_w2c = c2w_gl[s, k, :3, :3].T
            x_rot = xyz[s] @ R_w2c.T
            x_cam = x_rot - (c2w_gl[s, k, :3, 3] @ R_w2c.T)
            d_rot = viewdirs[s] @ R_w2c.T
            # OpenGL camera: in front means z < 0; v runs against camera y.
            u = fxfy[s, k, 0] * x_cam[:, 0] / -x_cam[:, 2] + cxcy[s, k, 0]
            v = fxfy[s, k, 1] * -x_cam[:, 1] / -x_cam[:, 2] + cxcy[s, k, 1]
            H_l, W_l = latent.shape[-2:]
            feat = _bilinear_border(latent, u * W_l / W, v * H_l / H)
            arg = x_rot[:, None, :] * freqs[None, :, None]  # [B, 6, 3]
            pe = torch.stack([torch.sin(arg), torch.cos(arg)], dim=2).reshape(
                len(x_rot), -1
            )  # sin, cos triples
            z, x = feat, torch.cat([x_rot, pe, d_rot], dim=-1)
            h = mlp.lin_in(x)
            for i in range(3):
                h = mlp.blocks[i](h + mlp.lin_z[i](z))
            per_view.append(h)
        h = torch.stack(per_view).mean(0)  # average over source views before block 3
        for i in range(3, 5):
            h = mlp.blocks[i](h)
        raw = mlp.lin_out(torch.relu(h))
        outs.append(torch.cat([torch.sigmoid(raw[:, :3]), torch.relu(raw[:, 3:])], -1))
    return torch.stack(outs)
