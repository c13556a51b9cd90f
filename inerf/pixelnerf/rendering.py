"""pixelNeRF through the shared renderer (:mod:`inerf.render`): the published settings and a :class:`Model`.

The published renderer is :func:`inerf.render.renderer.render_rays` with the ``pixelnerf`` sampler (64
stratified + 16 importance samples on the uniform bins + 16 around the coarse depth, the fine network on all
96 sorted samples), distances along unit ray directions, the last interval closed at ``far``, the
transmittance ``cumprod(1 - alpha + 1e-10)`` and an unnormalised depth: :func:`render_config` translates a
``renderer`` block of a published ``.conf`` into that :class:`RenderConfig`.

Usage::

    net = load_pixelnerf("checkpoints/srn_car/pixel_nerf_latest", "srn_car")
    net.encode_views(images, source_cameras)                      # the source views, once
    model = pixelnerf_model(net, render_config(net.full_config.renderer, near=0.8, far=1.8))
    out = model.render_image(camera)                              # rgb [H, W, 3], depth [H, W]
"""

from __future__ import annotations

from inerf.pixelnerf.config import RendererConfig
from inerf.pixelnerf.model import PixelNeRF
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig

__all__ = ["pixelnerf_model", "render_config"]


def render_config(
    renderer: RendererConfig,
    near: float,
    far: float,
    *,
    deterministic: bool = False,
    ray_batch_size: int = 50000,
    **changes,
) -> RenderConfig:
    """The shared renderer's settings for a published ``renderer`` block.

    Args:
        renderer: sample counts, ``depth_std``, ``lindisp``, background and ``eval_batch_size`` (points per
            network call).
        near, far: distances along the unit ray directions.
        deterministic: quantiles instead of random numbers everywhere (coarse mid-points, importance and
            Gaussian quantiles): smooth pose losses and repeatable tests. The published renderer is
            stochastic (also at test time); a seeded generator makes it repeatable instead.
        ray_batch_size: rays per chunk of :func:`inerf.render.renderer.render_image` (the published ``-R``).
        changes: any other :class:`RenderConfig` field.
    """
    return RenderConfig.pixelnerf(
        near,
        far,
        **{
            "n_coarse": renderer.n_coarse,
            "n_fine": renderer.n_fine,
            "n_fine_depth": renderer.n_fine_depth,
            "depth_std": renderer.depth_std,
            "lindisp": renderer.lindisp,
            "background": (1.0, 1.0, 1.0) if renderer.white_bkgd else (0.0, 0.0, 0.0),
            "jitter": not deterministic,
            "deterministic_fine": deterministic,
            "chunk": ray_batch_size,
            "field_chunk": renderer.eval_batch_size,
            **changes,
        },
    )


def pixelnerf_model(net: PixelNeRF, config: RenderConfig) -> Model:
    """A renderable :class:`Model` of an encoded pixelNeRF: its coarse and fine networks as fields (the fine
    pass falls back to the coarse network when the checkpoint has none, as published)."""
    return Model(net.field(coarse=True), net.field(coarse=False), config)
