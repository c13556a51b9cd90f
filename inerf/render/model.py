"""A renderable scene model: the fields of both passes and how rays through them are sampled.

nerfstudio bundles the same three things in its ``Model``; here they travel together wherever something is
rendered (evaluation, videos, pose solves), so a signature takes one ``model`` instead of
``(coarse, render_config, fine)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from inerf.fields.base import RadianceField
from inerf.geometry.cameras import Cameras
from inerf.rays.rays import Rays
from inerf.render.renderer import RenderConfig, RenderOutput, render_image, render_rays

__all__ = ["Model"]


@dataclass
class Model:
    """The fields of a scene and their sampling/compositing settings.

    Attributes:
        coarse: field of the coarse pass (the only field when ``fine`` is None).
        fine: field of the fine pass, or None when ``coarse`` serves both passes (or there is no fine pass).
        config: samples per ray, near/far, background, chunking (:class:`RenderConfig`).
    """

    coarse: RadianceField
    fine: RadianceField | None = None
    config: RenderConfig = field(default_factory=RenderConfig)

    def render_rays(self, rays: Rays, **kwargs) -> RenderOutput:
        """Render a flat batch of rays ``[R]`` (see :func:`inerf.render.renderer.render_rays`)."""
        return render_rays(self.coarse, rays, self.config, fine=self.fine, **kwargs)

    def render_image(
        self, camera: Cameras, progress: bool = False, generator: torch.Generator | None = None
    ) -> RenderOutput:
        """Render the full image of one camera, ``rgb [H, W, 3]``, ``depth [H, W]``, ``acc [H, W]``
        (``generator``: seeded random samples, for jittered or random sampling)."""
        return render_image(
            self.coarse, camera, self.config, fine=self.fine, progress=progress, generator=generator
        )

    def with_config(self, **changes) -> Model:
        """The same fields with some :class:`RenderConfig` entries changed (e.g. ``n_coarse=128``)."""
        return Model(self.coarse, self.fine, replace(self.config, **changes))

    def fields(self) -> list[RadianceField]:
        """The distinct fields (one or two)."""
        return [f for f in (self.coarse, self.fine) if f is not None]

    @property
    def device(self) -> torch.device:
        """Where the first field's parameters live (CPU for parameter-free analytic fields)."""
        for f in self.fields():
            if isinstance(f, torch.nn.Module):
                for p in f.parameters():
                    return p.device
                for b in f.buffers():
                    return b.device
        return torch.device("cpu")
