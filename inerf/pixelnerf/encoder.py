"""Pixel-aligned image features: a torchvision ResNet's multi-scale feature stack, sampled at projections.

Module names mirror the published checkpoints (``encoder.model.<torchvision resnet>``): the ResNet object
is kept whole, ``layer4`` included (its weights are in every published file although the features stop at
``layer3``); ``fc`` and ``avgpool`` are parameter-free identities, so they contribute no keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from inerf.pixelnerf.config import EncoderConfig
from inerf.tensors import constant

__all__ = ["SpatialEncoder"]


class SpatialEncoder(nn.Module):
    """ResNet feature stack at half the input resolution.

    ``forward(images [N, 3, H, W] in [-1, 1]) -> [N, C, H_l, W_l]`` with ``(H_l, W_l)`` the size of conv1's
    output (``ceil(H / 2)``, ``ceil(W / 2)``) and ``C = config.latent_size`` (512 for 4 layers): the maps
    after conv1-bn-relu, layer1, layer2, layer3 (as many as ``num_layers``), each resized bilinearly with
    ``align_corners=True`` to conv1's size and concatenated in that order.

    The input is **not** ImageNet-normalised: the published models were trained on [-1, 1] images.
    """

    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else EncoderConfig()
        # weights=None: never download; the checkpoint provides every weight.
        self.model = getattr(torchvision.models, config.backbone)(weights=None)
        # Not used by the feature stack; identities keep them out of the state_dict.
        self.model.fc = nn.Identity()
        self.model.avgpool = nn.Identity()
        if not config.keep_unused_layers:
            # Stages the stack never runs (layer4 always; layer k > num_layers - 1): out of the module and
            # the file. The published checkpoints keep them (keep_unused_layers = True).
            for k in range(max(config.num_layers, 1), 5):
                setattr(self.model, f"layer{k}", nn.Identity())

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters of the ResNet stages :meth:`forward` never runs (``layer4`` always, ``layer k`` for
        ``k >= num_layers``), present when ``keep_unused_layers`` keeps them for the published file layout;
        they never get a gradient."""
        first = max(self.config.num_layers, 1)
        return [p for k in range(first, 5) for p in getattr(self.model, f"layer{k}").parameters()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        m, cfg = self.model, self.config
        x = m.relu(m.bn1(m.conv1(images)))
        feats = [x]
        if cfg.num_layers > 1:
            if cfg.use_first_pool:
                x = m.maxpool(x)
            for layer in (m.layer1, m.layer2, m.layer3)[: cfg.num_layers - 1]:
                x = layer(x)
                feats.append(x)
        size = feats[0].shape[-2:]
        # align_corners=True for every interpolation mode, as published (bilinear for all published models).
        kw = {"align_corners": True} if cfg.upsample_interp in ("bilinear", "bicubic") else {}
        feats = [feats[0]] + [F.interpolate(f, size=size, mode=cfg.upsample_interp, **kw) for f in feats[1:]]
        return torch.cat(feats, dim=1)

    def index(self, latent: torch.Tensor, uv: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Sample features at continuous image coordinates.

        Args:
            latent: ``[N, C, H_l, W_l]`` from :meth:`forward`.
            uv: ``[N, P, 2]`` image coordinates (u right, v down) in **pixelNeRF's pixel convention**, where
                integer coordinates are pixel centres (pixel (0, 0) is centred at (0, 0)).
            image_size: ``(W, H)`` of the encoded images.
        Returns:
            ``[N, P, C]`` features. Out-of-image points take the border feature (no culling, as published).
        """
        W, H = image_size
        W_l, H_l = latent.shape[-1], latent.shape[-2]
        # Latent pixel coordinate = u * W_l / W (a stride-2 map whose centres sit at integer multiples of
        # W / W_l in image coordinates); grid_sample(align_corners=True) maps -1 .. 1 to centres 0 .. W_l - 1.
        scale = constant((2.0 * W_l / ((W_l - 1) * W), 2.0 * H_l / ((H_l - 1) * H)), uv.dtype, uv.device)
        grid = uv * scale - 1.0
        out = F.grid_sample(
            latent,
            grid[:, :, None, :],
            mode=self.config.index_interp,
            padding_mode=self.config.index_padding,
            align_corners=True,
        )  # [N, C, P, 1]
        return out[..., 0].transpose(1, 2)
