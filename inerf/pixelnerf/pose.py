"""iNeRF with pixelNeRF: the pose of a target image relative to one source image (iNeRF-public's demo).

pixelNeRF needs no trained scene: the source image *is* the scene. As in iNeRF-public, the world is the
**canonical frame** of the source camera: its rotation is the identity in OpenGL axes and it sits at
``(0, 0, radius)``, so the object (the world origin) is ``radius`` in front of it. The SRN-car statistics
(focal 131.25 px at 128 x 128, radius 1.3, near 0.8, far 1.8) are the defaults.

Fixes over iNeRF-public (see the spec, section 7.2): the pose is solved on SE(3) by
:func:`inerf.pose.solver.estimate_pose` (a twist, never a raw matrix), the network is in eval mode with
frozen weights, and the source is encoded once (its features do not depend on the target pose).

Renders go through the shared renderer (:mod:`inerf.render`) with pixelNeRF's published sampling and
compositing (:func:`inerf.pixelnerf.rendering.render_config`: distances along unit rays, last interval closed
at ``far``), in its deterministic variant so that the photometric loss is a smooth function of the pose:
pose solves, overlay frames and videos render the same pixelNeRF.
"""

from __future__ import annotations

import torch

from inerf.geometry.cameras import Cameras
from inerf.geometry.conventions import PIXEL_CENTER, opengl_to_opencv_c2w
from inerf.pixelnerf.model import PixelNeRF

__all__ = ["canonical_source_c2w", "encode_source", "to_canonical_frame"]


def canonical_source_c2w(radius: float = 1.3) -> torch.Tensor:
    """``[4, 4]`` c2w (OpenCV axes) of the canonical source camera: identity rotation **in OpenGL axes** at
    ``(0, 0, radius)``, looking along -z at the origin (iNeRF-public's and pixelNeRF ``eval_real``'s)."""
    c2w_gl = torch.eye(4, dtype=torch.float64)
    c2w_gl[2, 3] = radius
    return opengl_to_opencv_c2w(c2w_gl)


def to_canonical_frame(c2w: torch.Tensor, source_c2w: torch.Tensor, radius: float = 1.3) -> torch.Tensor:
    """Express a pose given in a dataset's world in the canonical frame of its source camera.

    The rigid map ``M = P_can inv(P_src)`` sends the dataset's source camera onto the canonical one, so a
    target ``P_tgt`` becomes ``M P_tgt`` (relative poses ``inv(P_src) P_tgt`` are preserved). Rotation errors
    are then exact; translation errors also assume that the object centre lies ``radius`` in front of the
    source camera, as the canonical frame does.

    Args:
        c2w, source_c2w: ``[..., 4, 4]`` c2w (OpenCV axes) in the dataset's world.
    """
    can = canonical_source_c2w(radius).to(c2w.dtype)
    return can @ torch.linalg.inv(source_c2w.to(c2w.dtype)) @ c2w


def encode_source(
    model: PixelNeRF,
    image: torch.Tensor,
    focal: float,
    radius: float = 1.3,
    principal: tuple[float, float] | None = None,
) -> Cameras:
    """Encode one source image at the canonical pose; returns its camera.

    Args:
        image: ``[H, W, 3]`` RGB in [0, 1].
        focal: focal length in pixels (fx = fy).
        principal: ``(cx, cy)`` in inerf's pixels (centres at +0.5); default pixelNeRF's image centre,
            ``(W / 2, H / 2)`` in its integer-centred pixels, i.e. ``(W / 2 + 0.5, H / 2 + 0.5)`` here.
    """
    H, W = image.shape[:2]
    cx, cy = principal if principal is not None else (W / 2 + PIXEL_CENTER, H / 2 + PIXEL_CENTER)
    cam = Cameras(
        canonical_source_c2w(radius).float()[None], fx=focal, fy=focal, cx=cx, cy=cy, height=H, width=W
    )
    device = next(model.parameters()).device
    with torch.no_grad():  # the source features do not depend on the target pose: encode once
        model.encode_views(image[None].to(device), cam.to(device))
    return cam
