"""Pure volume-rendering functions and chunked ray/image renderers."""

from inerf.render import volrend
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig, RenderOutput, render_image, render_rays

__all__ = ["Model", "RenderConfig", "RenderOutput", "render_image", "render_rays", "volrend"]
