"""iNeRF pose estimation: camera pose by gradient descent through a frozen radiance field.

Design note. The solver optimises a twist ``xi`` with ``c2w = exp(xi) @ c2w0`` (never a raw matrix), so the
pose is rigid at every step. It takes a :class:`~inerf.render.model.Model` (fields and render settings), not
a run directory, so any field works (NeRF MLP, grid, a pixelNeRF field conditioned on its source views). Pixel
sampling strategies (:mod:`.sampling`) only choose pixel indices; the same renderer draws rays through
them. Many starting poses (hypotheses) and many independent problems (benchmark trials) are solved in one
batch that equals the separate solves. Modules:

* :mod:`.config`   ``PoseConfig`` (with ``AdamConfig``, ``LMConfig``, ``BlurConfig``, ``StopConfig``),
  ``SamplingConfig`` and presets;
* :mod:`.sampling` pixel-selection strategies (random, interest points/region, center, patch, mask);
* :mod:`.problem`  the target, its sampler and the frozen model: loss, gradient, Gauss-Newton system;
* :mod:`.state`    ``Hypotheses``, the state of a batched solve (``select`` prunes, ``freeze`` fails);
* :mod:`.steps`    Adam and Levenberg-Marquardt as step objects, and the schedule of which acts when;
* :mod:`.recorder` the trajectory of a solve;
* :mod:`.solver`   ``estimate_pose`` (sample, evaluate, record, prune, step) and its result types;
* :mod:`.perturb`  start poses a known distance from a pose (one definition for every verb) and the one
  success threshold set (5 degrees, 0.05);
* :mod:`.protocol` the paper's evaluation protocol and report;
* :mod:`.global_search` global localisation: candidates from the scene, cheap batched scoring, refinement of
  the best (:mod:`.global_protocol`: the protocol without initial poses);
* :mod:`.track`    tracking an image sequence (:mod:`.track_io`: frames, trajectories, output files);
* :mod:`.uncertainty` the covariance of an estimate from the Gauss-Newton matrix at the solution;
* :mod:`.io`       reading targets, poses and intrinsics; writing pose files;
* :mod:`.report`   the files written by ``inerf estimate``.

Example::

    from inerf.pose import PoseConfig, PoseTarget, SamplingConfig, estimate_pose
    target = PoseTarget(image, camera)                  # image [H, W, 3] on the device, one Cameras of H x W
    cfg = PoseConfig(sampling=SamplingConfig("interest_region"))
    result = estimate_pose(run.model, target, c2w_init, cfg)
    result.c2w[0]                                                   # [4, 4] camera-to-world, OpenCV axes
"""

from inerf.pose.config import PAPER, ROBUST, PoseConfig, SamplingConfig
from inerf.pose.solver import PoseResult, PoseTarget, PoseTrajectory, estimate_pose

__all__ = [
    "PAPER",
    "ROBUST",
    "PoseConfig",
    "PoseResult",
    "PoseTarget",
    "PoseTrajectory",
    "SamplingConfig",
    "estimate_pose",
]
