"""Tracking: the camera pose of every frame of an image sequence, each solve warm-started from the last.

For frame ``k`` the start is a prediction from the poses already found (:func:`predict`):

    constant velocity:  T_k = exp(v) @ T_{k-1},  v = log(T_{k-1} @ T_{k-2}^-1)   (a left twist per frame)

and a short solve (a few Levenberg-Marquardt or Adam steps, :data:`TRACK`) corrects it. A frame is *lost*
when its final loss jumps above ``jump`` times the median of the recent frames' losses (or the solve fails
numerically), the loss being above ``floor``; it is then re-localised (``relocalize``):

* ``wide``: a longer coarse-to-fine solve (:data:`RECOVER`) from the prediction, the previous pose and
  ``recover_hypotheses - 2`` starts spread around the previous pose, with pruning;
* ``global``: global localisation (:func:`inerf.pose.global_search.localize`), no use of the past;
* ``off``: the tracked pose is kept.

The re-localised pose replaces the tracked one only if its loss is lower, and the next frame is then
predicted from it alone (the last motion would include the jump). The first frame is solved with
the recovery settings from the given initial pose, or found by global localisation when there is none.

Poses are OpenCV camera-to-world (:mod:`inerf.geometry.conventions`). Frames come from any iterable of
:class:`Frame`, so a video is tracked as it is decoded.

**Speed.** The per-frame solves share one :class:`~inerf.pose.problem.Problem` (:meth:`Problem.retarget`
swaps the image): the model settings and query pool, pixel directions, blur rings and kernels, the sampler
and, on the GPU, the CUDA graphs of the LM step (:mod:`inerf.pose.fast`) are made once for a sequence of one
image size and intrinsics. A frame then launches its LM steps as graph replays plus a few hundred small
eager ops (``benchmarks/count_pose_ops.py --track``).

Example::

    result = track(run.model, frames, init_c2w, TrackConfig(), TRACK)
    result.c2w()                          # [N, 4, 4]
    result.fps                            # frames per second of the solves
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import torch

from inerf.geometry import se3
from inerf.pose.config import BlurConfig, LMConfig, PoseConfig, StopConfig
from inerf.pose.perturb import perturb, spread
from inerf.pose.problem import PoseTarget, Problem
from inerf.pose.solver import PoseResult, estimate_pose
from inerf.render.model import Model

__all__ = [
    "MOTIONS",
    "RECOVER",
    "RELOCALIZE",
    "TRACK",
    "Frame",
    "TrackConfig",
    "TrackFrame",
    "TrackResult",
    "predict",
    "track",
]

Motion = Literal["constant_velocity", "static"]
MOTIONS: tuple[str, ...] = get_args(Motion)
"""Motion models: ``constant_velocity`` (the last frame-to-frame motion repeats) or ``static`` (the last pose)."""

Relocalize = Literal["wide", "global", "off"]
RELOCALIZE: tuple[str, ...] = get_args(Relocalize)
"""What a lost frame does, see the module docstring."""

TRACK = PoseConfig(
    steps=8,
    optimizer="lm",
    n_rays=1024,
    lm=LMConfig(damping=1e-2, max_rot=0.05, max_trans=0.1, average=3),
    blur=BlurConfig(sigma=2.0, steps=5, rays=4),
)
"""The per-frame solve: 8 Levenberg-Marquardt steps on 1024 rays (no learning rate to tune; each step's
Gauss-Newton fit is kept only if it lowers the loss), the first 5 on images blurred by 2 pixels shrinking to
0, the result the mean of the last 3 iterates.

Measured on a 128 x 128 handheld sequence of the demo duck (1.5 degrees of motion per frame): without the
blur a Gauss-Newton step sees only the pixels within about one pixel of where an edge should be, and the
prediction is a few pixels off, so frames drifted to 2-4 degrees; with it every frame stayed below 1 degree.
Motion in pixels grows with the image, so ``inerf track`` scales the blur with the image's long side."""

RECOVER = PoseConfig(
    steps=80,
    optimizer="adam+lm",
    n_rays=1024,
    lm=LMConfig(steps=20),
    blur=BlurConfig(sigma=4.0, steps=40, rays=4),
)
"""The first frame's and a lost frame's solve: coarse-to-fine blur, then an LM finish."""


@dataclass
class TrackConfig:
    """How a sequence is tracked (the per-frame and recovery solves are :class:`PoseConfig` of their own)."""

    motion: Motion = "constant_velocity"
    """How the next frame's start is predicted: one of :data:`MOTIONS`."""
    relocalize: Relocalize = "wide"
    """What a lost frame does: one of :data:`RELOCALIZE`."""
    jump: float = 4.0
    """A frame is lost when its loss exceeds this times the median loss of the last ``window`` frames."""
    window: int = 10
    """Frames whose losses make the reference median."""
    floor: float = 1e-4
    """A loss below this is never a jump (MSE of colours in [0, 1]: an rms error of 0.01): a near-exact fit
    varies by large factors from frame to frame while nothing is wrong."""
    warmup: int = 3
    """Frames tracked before the loss test starts (the median needs a few)."""
    recover_hypotheses: int = 4
    """Starts of a ``wide`` re-localisation (the prediction, the previous pose and the rest around it)."""
    recover_spread_rot: float = 20.0
    """Rotation spread (degrees) of the extra starts of a ``wide`` re-localisation around the previous pose
    (:func:`inerf.pose.perturb.spread`: uniform in [-spread, spread] about the world origin)."""
    recover_spread_trans: float = 0.1
    """Translation spread (scene units, uniform per axis) of those starts."""

    def __post_init__(self) -> None:
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion model {self.motion!r}; expected one of {MOTIONS}")
        if self.relocalize not in RELOCALIZE:
            raise ValueError(f"unknown relocalize mode {self.relocalize!r}; expected one of {RELOCALIZE}")
        if not (math.isfinite(self.jump) and self.jump > 1.0):
            raise ValueError(f"jump must be > 1, got {self.jump}")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"floor must be >= 0, got {self.floor}")
        if self.window < 1 or self.warmup < 1 or self.recover_hypotheses < 2:
            raise ValueError("window and warmup must be >= 1, recover_hypotheses >= 2")
        if self.recover_spread_rot < 0 or self.recover_spread_trans < 0:
            raise ValueError("recover spreads must be >= 0")


@dataclass
class Frame:
    """One image of a sequence.

    Attributes:
        target: the image and its intrinsics.
        name: where it came from (file name, ``video.mp4#12``).
        timestamp: seconds from the start of the sequence.
    """

    target: PoseTarget
    name: str = ""
    timestamp: float = 0.0


@dataclass
class TrackFrame:
    """What tracking found for one frame.

    Attributes:
        index: position in the sequence.
        name, timestamp: as in the :class:`Frame`.
        c2w: ``[4, 4]`` the estimate (float64, OpenCV c2w).
        predicted: ``[4, 4]`` the start the motion model gave (the initial pose for frame 0).
        loss: the photometric loss of the estimate.
        steps: solver steps spent on the frame (re-localisation included).
        seconds: wall time of the frame's solves.
        relocalized: whether the frame was lost and re-localised (``"wide"``/``"global"``), else ``""``.
        status: ``"ok"`` or ``"nan"`` (the solve failed numerically).
    """

    index: int
    name: str
    timestamp: float
    c2w: torch.Tensor
    predicted: torch.Tensor
    loss: float
    steps: int
    seconds: float
    relocalized: str = ""
    status: str = "ok"


@dataclass
class TrackResult:
    """Every frame's estimate, with the settings used."""

    frames: list[TrackFrame]
    config: TrackConfig
    pose_config: PoseConfig
    recover_config: PoseConfig
    device: str = "cpu"
    extra: dict = field(default_factory=dict)

    def c2w(self) -> torch.Tensor:
        """``[N, 4, 4]`` the estimates (float64, OpenCV c2w)."""
        return torch.stack([f.c2w for f in self.frames])

    @property
    def seconds(self) -> float:
        """Wall time of all the solves."""
        return sum(f.seconds for f in self.frames)

    @property
    def fps(self) -> float:
        """Frames per second of the solves (the first frame, a longer solve, excluded when there are more)."""
        tracked = self.frames[1:] if len(self.frames) > 1 else self.frames
        s = sum(f.seconds for f in tracked)
        return len(tracked) / s if s > 0 else math.inf

    def errors(self, gt_c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame rotation (degrees) and translation errors ``[N]`` against ``gt_c2w`` ``[N, 4, 4]``."""
        c2w = self.c2w()
        return se3.rotation_error_deg(c2w, gt_c2w.double()), se3.translation_error(c2w, gt_c2w.double())


def predict(history: list[torch.Tensor], motion: str = "constant_velocity") -> torch.Tensor:
    """The next pose ``[4, 4]`` from the previous ones (oldest first, float64 c2w): the last one moved again
    by the last frame-to-frame motion (a left twist, ``T_k = (T_{k-1} T_{k-2}^-1) T_{k-1}``), or the last one
    itself for ``static`` motion or a single pose."""
    last = history[-1]
    if motion == "static" or len(history) < 2:
        return last.clone()
    step = last @ se3.inverse(history[-2])
    return se3.se3_exp(se3.se3_log(step)) @ last  # exp(log(.)): re-orthonormalised


def _solve(model, target, starts, config, seed, problem=None) -> PoseResult:
    return estimate_pose(model, target, starts, config, seeds=seed, problem=problem)


def track(
    model: Model,
    frames: Iterable[Frame],
    init_c2w: torch.Tensor | None,
    config: TrackConfig | None = None,
    pose_config: PoseConfig | None = None,
    recover_config: PoseConfig | None = None,
    *,
    localize_fn: Callable[[PoseTarget, int], PoseResult] | None = None,
    on_frame: Callable[[Frame, TrackFrame], None] | None = None,
    progress: bool = False,
) -> TrackResult:
    """Track the camera through ``frames`` (see the module docstring).

    Args:
        model: the frozen fields and their render settings.
        frames: the sequence (any iterable, consumed once).
        init_c2w: ``[4, 4]`` the first frame's approximate pose, or None to find it with ``localize_fn``.
        config: motion model and re-localisation.
        pose_config: the per-frame solve (default :data:`TRACK`).
        recover_config: the first frame's and the ``wide`` re-localisation's solve (default :data:`RECOVER`).
        localize_fn: ``(target, seed) -> PoseResult`` global localisation, for a first frame without
            ``init_c2w`` and for ``relocalize="global"``.
        on_frame: called after every frame with the frame and its estimate (to keep thumbnails, print).
        progress: a progress bar over the frames.
    """
    config = config or TrackConfig()
    pose_config = pose_config or TRACK
    recover_config = recover_config or RECOVER
    # The stop test would end the short per-frame solves at random points: the fixed budget is the point.
    pose_config = replace(pose_config, stop=StopConfig())
    if init_c2w is None and localize_fn is None:
        raise ValueError("the first frame needs init_c2w or a localize_fn")
    if config.relocalize == "global" and localize_fn is None:
        raise ValueError('relocalize="global" needs a localize_fn')
    tracker = _Tracker(model, config, pose_config, recover_config, init_c2w, localize_fn)
    out: list[TrackFrame] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="track", unit="frame", leave=False, dynamic_ncols=True)
    device = "cpu"
    for k, frame in enumerate(frames):
        device = str(frame.target.image.device)
        out.append(tracker.step(k, frame))
        if on_frame is not None:
            on_frame(frame, out[-1])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{out[-1].loss:.2e}", refresh=False)
    if bar is not None:
        bar.close()
    if not out:
        raise ValueError("no frames to track")
    return TrackResult(out, config, pose_config, recover_config, device=device)


class _Tracker:
    """The per-frame policy of :func:`track`: predict, solve, detect a lost frame, re-localise, remember."""

    def __init__(self, model, config, pose_config, recover_config, init_c2w, localize_fn):
        self.model, self.config = model, config
        self.pose_config, self.recover_config = pose_config, recover_config
        self.init_c2w, self.localize_fn = init_c2w, localize_fn
        self.gen = torch.Generator().manual_seed(0)
        self.history: list[torch.Tensor] = []
        self.losses: list[float] = []
        self.problem: Problem | None = None

    def _problem(self, target: PoseTarget) -> Problem:
        """The per-frame solve's :class:`Problem`, kept from frame to frame (:meth:`Problem.retarget`): the
        model settings, query pool, pixel directions, blur rings, sampler and CUDA graphs are the same for
        every frame of one size and intrinsics; only the image changes."""
        if self.problem is None or not self.problem.retarget(target):
            self.problem = Problem(self.model, target, self.pose_config)
        return self.problem

    def step(self, k: int, frame: Frame) -> TrackFrame:
        target = frame.target
        t0 = time.perf_counter()
        if k == 0:
            predicted, res, steps, relocalized = self._first(target)
        else:
            predicted = predict(self.history, self.config.motion)
            res = _solve(self.model, target, predicted, self.pose_config, k, self._problem(target))
            res, steps, relocalized = self._recover_if_lost(k, target, predicted, res)
        if target.image.device.type == "cuda":
            torch.cuda.synchronize(target.image.device)
        seconds = time.perf_counter() - t0
        c2w = res.c2w[0].double()
        # After a re-localisation the last motion includes the jump: predict the next frame from this one.
        self.history = [c2w] if relocalized else (self.history + [c2w])[-2:]
        if res.status[0] == "ok":
            self.losses.append(float(res.loss[0]))
        return TrackFrame(
            index=k,
            name=frame.name,
            timestamp=frame.timestamp,
            c2w=c2w,
            predicted=predicted.double().cpu(),
            loss=float(res.loss[0]),
            steps=steps,
            seconds=seconds,
            relocalized=relocalized,
            status=res.status[0],
        )

    def _first(self, target):
        """The first frame: from ``init_c2w`` with the recovery solve, or found by global localisation."""
        if self.init_c2w is None:
            res = self.localize_fn(target, 0)
            return res.c2w[0], res, res.steps, "global"
        predicted = torch.as_tensor(self.init_c2w).double()
        res = _solve(self.model, target, predicted, self.recover_config, 0)
        return predicted, res, res.steps, ""

    def _lost(self, res) -> bool:
        """The solve failed, or its loss jumped above ``jump`` times the recent median (after warm-up)."""
        c = self.config
        loss = float(res.loss[0])
        return res.status[0] != "ok" or (
            len(self.losses) >= c.warmup
            and loss > c.floor
            and loss > c.jump * statistics.median(self.losses[-c.window :])
        )

    def _recover_if_lost(self, k, target, predicted, res):
        """``(result, steps, relocalized)``: the frame's solve, replaced by a re-localisation that scores
        better when the frame looks lost."""
        c, steps = self.config, res.steps
        if not self._lost(res) or c.relocalize == "off":
            return res, steps, ""
        if c.relocalize == "global":
            alt = self.localize_fn(target, k)
        else:
            prev = self.history[-1]
            around = spread(c.recover_spread_rot, c.recover_spread_trans)
            extra = perturb(prev, around, self.gen, (c.recover_hypotheses - 2,))
            starts = torch.cat([predicted[None], prev[None], extra])
            alt = _solve(self.model, target, starts, self.recover_config, k)
        steps += alt.steps
        better = alt.status[0] == "ok" and (res.status[0] != "ok" or float(alt.loss[0]) < float(res.loss[0]))
        return (alt, steps, c.relocalize) if better else (res, steps, "")
