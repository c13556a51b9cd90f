"""pixelNeRF, compatible with the published checkpoints (sn64, sn64_unseen, srn_car, srn_chair, dtu).

* :mod:`~inerf.pixelnerf.config`: typed configs read from the published HOCON ``.conf`` files.
* :mod:`~inerf.pixelnerf.encoder`, :mod:`~inerf.pixelnerf.resnetfc`, :mod:`~inerf.pixelnerf.model`: the
  field (``encode`` source views, then ``forward`` points) with the published module names, so a
  ``pixel_nerf_latest`` file loads strictly.
* :mod:`~inerf.pixelnerf.renderer`: pixelNeRF's sampler (64 coarse + 16 importance + 16 depth-guided) and
  pure compositing functions, with a deterministic mode.
* :mod:`~inerf.pixelnerf.video`: the 360-degree video of the published ``gen_video.py``.
"""

from inerf.pixelnerf.config import PixelNeRFConfig, load_config
from inerf.pixelnerf.model import PixelNeRF, load_pixelnerf, read_checkpoint

__all__ = ["PixelNeRF", "PixelNeRFConfig", "load_config", "load_pixelnerf", "read_checkpoint"]
