"""pixelNeRF, compatible with the published checkpoints (sn64, sn64_unseen, srn_car, srn_chair, dtu).

* :mod:`~inerf.pixelnerf.config`: typed configs read from the published HOCON ``.conf`` files (shipped in
  ``configs/``: ``srn``, ``sn64``, ``sn64_unseen``, ``dtu``, ``multi_obj`` and their bases).
* :mod:`~inerf.pixelnerf.encoder`, :mod:`~inerf.pixelnerf.resnetfc`, :mod:`~inerf.pixelnerf.model`: the
  field (``encode`` source views, then ``forward`` points) with the published module names, so a
  ``pixel_nerf_latest`` file loads strictly (278 entries); ``PixelNeRF.field(coarse)`` is its
  :class:`~inerf.fields.base.RadianceField` view.
* :mod:`~inerf.pixelnerf.rendering`: the published renderer as settings of the shared one
  (:mod:`inerf.render`, with the ``pixelnerf`` sampler of :mod:`inerf.rays.samplers`: 64 coarse + 16
  importance + 16 depth-guided, the fine network on all 96), and a renderable
  :class:`~inerf.render.model.Model` of an encoded pixelNeRF.
* :mod:`~inerf.pixelnerf._reference`: the published forward pass re-stated slowly, one view at a time (tests).
* :mod:`~inerf.pixelnerf.video`: the 360-degree video of the published ``gen_video.py``.
* :mod:`~inerf.pixelnerf.pose`: iNeRF-public's pose estimation against one source image, on SE(3).
* :mod:`~inerf.pixelnerf.real`: real photos: the object's mask (alpha, a mask file or GrabCut) and the
  published normalisation of ``scripts/preproc.py`` (ellipse fit, square crop, white background, 128 px).

Conventions: :meth:`PixelNeRF.encode` keeps the published ones (OpenGL c2w, images in [-1, 1], integer
pixel centres); everything else in inerf uses OpenCV c2w, [0, 1] images and pixel centres at +0.5, and
:meth:`PixelNeRF.encode_views` converts between the two in one place.
"""

from inerf.pixelnerf.config import PixelNeRFConfig, RendererConfig, load_config
from inerf.pixelnerf.model import PixelNeRF, PixelNeRFField, load_pixelnerf, read_checkpoint
from inerf.pixelnerf.rendering import pixelnerf_model, render_config

__all__ = [
    "PixelNeRF",
    "PixelNeRFConfig",
    "PixelNeRFField",
    "RendererConfig",
    "load_config",
    "load_pixelnerf",
    "pixelnerf_model",
    "read_checkpoint",
    "render_config",
]
