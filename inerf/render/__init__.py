"""Rendering: one core for every field (NeRF MLP, grid, pixelNeRF).

Design: a field maps points to colour and density and knows nothing about rays; a sampler
(:mod:`inerf.rays.samplers`) places the samples of each pass; this package turns samples into pixels. Every
difference between NeRF's and pixelNeRF's published renderers is a :class:`RenderConfig` value (sampler, what
``t`` measures, open or closed last interval, transmittance form, depth normalisation), never a second code
path, and nothing outside this package composites along rays.

* :mod:`~inerf.render.volrend`: volume rendering on sample intervals (``t_starts, t_ends``) as pure tensor
  functions with their equations: intervals, alpha, transmittance, weights, composite, expected depth.
* :mod:`~inerf.render.renderer`: :class:`RenderConfig`, :func:`render_rays` (sample -> query the field ->
  composite, coarse then fine pass; rays ``[R]`` or ``[SB, R]`` for fields with an object axis) and
  :func:`render_image` (one camera, chunked; equal to the unchunked render).
* :mod:`~inerf.render.model`: :class:`Model`, the fields of both passes with their :class:`RenderConfig`
  (what evaluation, videos and pose solves take).
* :mod:`~inerf.render._reference`: slow, self-contained references (pixelNeRF's published renderer), used
  only by the tests that pin the fast path to them.
"""

from inerf.render import volrend
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig, RenderOutput, render_image, render_rays

__all__ = ["Model", "RenderConfig", "RenderOutput", "render_image", "render_rays", "volrend"]
