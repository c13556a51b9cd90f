"""The iNeRF solver: camera pose by gradient descent through a frozen radiance field.

For a target image ``I`` with intrinsics ``K`` and an initial camera-to-world pose ``T0`` (OpenCV axes),
iNeRF minimises the photometric error of rendered pixels over a twist ``xi`` (se3 order (rho, phi)):

    T(xi) = exp(xi^) @ T0                          (left update in the world frame, iNeRF eq. 2)
    xi*   = argmin_xi  sum_{p in P_s} l(C(r_p(T(xi))), I[p]) / |P_s|

where ``P_s`` are the pixels chosen at step ``s`` (:mod:`inerf.pose.sampling`), ``r_p(T)`` the ray through
pixel ``p`` and ``C`` volume rendering. ``xi`` starts at 0, so every solve starts exactly at ``T0`` and
the pose is rigid at every step (it is a matrix exponential times a rigid matrix; a raw 4x4 would drift
off SE(3) as in iNeRF-public).

**The loop.** Each step samples the step's pixels, evaluates the hypotheses on them (loss and gradient, or
the Gauss-Newton system), fails the non-finite ones, records, prunes at the configured steps and lets the
step's optimiser move the rest:

* :mod:`inerf.pose.problem`  the target, its sampler and the frozen model: loss, gradient, Gauss-Newton;
* :mod:`inerf.pose.state`    :class:`Hypotheses`, the state of the solve, with ``select`` and ``freeze``;
* :mod:`inerf.pose.steps`    the optimisers as step objects (Adam; Levenberg-Marquardt, whose step is kept
  only if it lowers the loss on the same pixels) and the :class:`Schedule` of which acts when;
* :mod:`inerf.pose.recorder` the trajectory.

**Batched hypotheses.** ``init_c2w`` has shape ``[G, K, 4, 4]``: ``G`` independent problems (e.g.
benchmark trials, each with its own pixel seed) of ``K`` hypotheses each (different starting poses
of one problem, sharing that problem's pixels at every step so their losses compare fairly). All
``G * K`` renders go through one batched ``render_rays`` call per chunk. The objective is the sum over
hypotheses of per-hypothesis means; its gradient with respect to ``xi[g, k]`` is the gradient of
hypothesis ``(g, k)``'s own loss, and Adam acts elementwise, so the batch solve equals ``G * K``
separate solves with the same seeds (tested). Optionally the worse half of each problem's hypotheses is
dropped at ``config.prune_steps``; the result is the lowest-loss hypothesis of each problem.

**Coarse-to-fine blur.** With ``blur.sigma > 0`` the first ``blur.steps`` steps compare a blurred render
(the mean colour of ``blur.rays`` rays on a ring of radius ``sqrt(2) sigma`` around each pixel, the ring's
second moment matching a Gaussian's) with the target blurred by a Gaussian of the same ``sigma``, which
shrinks linearly to 0. This widens the basin of the loss to about the blur's size.

**Numerical safety.** A hypothesis whose loss or gradient is not finite is frozen at its last finite
pose and marked ``"nan"`` (with the step); the others continue. Nothing non-finite ever enters a pose.

**Device efficiency.** Per-step state (twists, moments, damping, failure flags, the record, the stop test's
running maximum) stays on the device; the host syncs only to refresh the progress bar every
``progress_every`` steps and to check the stop test every ``stop.window`` steps (when enabled).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from inerf.errors import InerfError
from inerf.geometry.conventions import check_rigid
from inerf.pose.config import PoseConfig, StopConfig
from inerf.pose.problem import PoseTarget, Problem, field_precision, frozen_fields, photometric_loss
from inerf.pose.recorder import PoseTrajectory, Recorder
from inerf.pose.state import Hypotheses, as_batch
from inerf.pose.steps import Schedule, adam_update, lm_step
from inerf.render.model import Model

__all__ = [
    "PoseResult",
    "PoseTarget",
    "PoseTrajectory",
    "adam_update",
    "estimate_pose",
    "frozen_fields",
    "lm_step",
    "photometric_loss",
    "require_finite",
]


@dataclass
class PoseResult:
    """Outcome of :func:`estimate_pose` for ``G`` problems.

    Attributes:
        c2w: ``[G, 4, 4]`` estimated camera-to-world (OpenCV axes), float64 on the CPU.
        loss: ``[G]`` its photometric loss on the last step's pixels.
        hypothesis: ``[G]`` index of the returned hypothesis among the ``K`` starts.
        status: per problem, ``"ok"`` or ``"nan"`` (every hypothesis hit a non-finite loss or gradient; the
            pose is then the last finite one of hypothesis ``hypothesis``).
        failed_step: ``[G, K]`` step at which each hypothesis went non-finite (-1: never).
        steps: updates taken (fewer than ``config.steps`` when the stop test fired).
        stopped_early: whether the stop test fired.
        seconds: wall time of the solve (including keypoint detection, excluding nothing else).
        device: where it ran.
        init_c2w: ``[G, K, 4, 4]`` the starting poses.
        trajectory: per-step record, see :class:`PoseTrajectory`.
    """

    c2w: torch.Tensor
    loss: torch.Tensor
    hypothesis: torch.Tensor
    status: list[str]
    failed_step: torch.Tensor
    steps: int
    stopped_early: bool
    seconds: float
    device: str
    init_c2w: torch.Tensor
    trajectory: PoseTrajectory

    def track(self) -> torch.Tensor:
        """``[S + 1, G, 4, 4]`` the trajectory of each problem's returned hypothesis."""
        idx = self.hypothesis[None, :, None, None, None].expand(self.trajectory.steps + 1, -1, 1, 4, 4)
        return torch.take_along_dim(self.trajectory.c2w, idx, dim=2)[:, :, 0]


class _StopTest:
    """Stops the solve once every hypothesis moved less than ``tol`` (the larger of the rotation and the
    translation change) at each step of a window. The running maximum stays on the device; the host reads
    it once per window."""

    def __init__(self, config: StopConfig, device: torch.device):
        self.config = config
        self.window_max = torch.zeros((), device=device)

    def __call__(self, step: int, delta: torch.Tensor) -> bool:
        """After the update at ``step`` that changed the twists by ``delta`` ``[G, K, 6]``: stop now?"""
        if self.config.tol <= 0:
            return False
        moved = torch.maximum(delta[..., :3].norm(dim=-1), delta[..., 3:].norm(dim=-1)).amax()
        self.window_max = torch.maximum(self.window_max, moved)
        if (step + 1) % self.config.window != 0:
            return False
        if self.window_max.item() < self.config.tol:
            return True
        self.window_max.zero_()
        return False


class _ProgressBar:
    """A tqdm bar whose loss (the best live hypothesis') refreshes every ``progress_every`` steps (a sync)."""

    def __init__(self, config: PoseConfig, enabled: bool, desc: str):
        self.config, self.bar = config, None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=config.steps, desc=desc, unit="step", leave=False, dynamic_ncols=True)

    def update(self, step: int, hyps: Hypotheses, loss: torch.Tensor) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % self.config.progress_every == 0 or step == self.config.steps - 1:
            self.bar.set_postfix(loss=f"{hyps.scores(loss).min().item():.3e}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _start_poses(init_c2w: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``[G, K, 4, 4]`` float32 start poses on ``device``, checked rigid and finite (on the CPU: one check,
    one sync)."""
    c2w0 = as_batch(torch.as_tensor(init_c2w)).detach().cpu()
    return check_rigid(c2w0, "initial pose").to(device=device, dtype=torch.float32)


def _seed_tensor(seeds: int | list[int], G: int, device: torch.device) -> torch.Tensor:
    """``[G]`` pixel-sampling seeds: ``seeds`` itself, or ``s, s + 1, ..., s + G - 1`` for an int ``s``."""
    if isinstance(seeds, int):
        seed_list = [seeds + g for g in range(G)]
    else:
        seed_list = [int(s) for s in seeds]
        if len(seed_list) != G:
            raise ValueError(f"need {G} seeds (one per problem), got {len(seed_list)}")
    return torch.tensor(seed_list, dtype=torch.int64, device=device)


def _score_final(problem: Problem, hyps: Hypotheses, seeds: torch.Tensor, steps: int) -> torch.Tensor:
    """``[G, K]`` loss of the final poses on the next step's pixels (no update, no blur): the loss of the
    returned pose. Hypotheses whose loss is not finite fail at ``steps``."""
    pix = problem.sampler.sample(seeds, steps)
    loss, _ = problem.evaluate(hyps.xi, hyps.c2w0, pix, need_grad=False, graph=True)
    hyps.freeze(~torch.isfinite(loss), steps)
    return loss


def _result(hyps, loss, recorder, init_c2w, steps, stopped_early, seconds, device) -> PoseResult:
    """Each problem's lowest-loss live hypothesis (all failed: slot 0, at its last finite pose), on the CPU."""
    rows = hyps.rows[:, 0]
    best = hyps.scores(loss).argmin(dim=1)  # argmin of all-inf is slot 0
    all_failed = hyps.failed.all(dim=1)
    trajectory = recorder.trajectory()
    hypothesis = hyps.ids[rows, best].cpu()
    return PoseResult(
        # The last record holds the returned poses (the same numbers as hyps.c2w(), computed once).
        c2w=trajectory.c2w[-1, torch.arange(len(hypothesis)), hypothesis],
        loss=torch.where(all_failed, math.nan, loss[rows, best]).double().cpu(),
        hypothesis=hypothesis,
        status=["nan" if d else "ok" for d in all_failed.cpu().tolist()],
        failed_step=hyps.failed_step.cpu(),
        steps=steps,
        stopped_early=stopped_early,
        seconds=seconds,
        device=str(device),
        init_c2w=as_batch(torch.as_tensor(init_c2w)).detach().double().cpu(),
        trajectory=trajectory,
    )


def estimate_pose(
    model: Model,
    target: PoseTarget,
    init_c2w: torch.Tensor,
    config: PoseConfig | None = None,
    *,
    seeds: int | list[int] = 0,
    progress: bool = False,
    desc: str = "iNeRF",
    problem: Problem | None = None,
) -> PoseResult:
    """Estimate camera poses by inverting a radiance field (iNeRF).

    Args:
        model: the fields and their render settings (frozen for the solve; pixelNeRF callers encode their
            source views first and pass the conditioned fields).
        target: the observed image and its intrinsics; its device is the solve's device.
        init_c2w: starting camera-to-world poses, OpenCV axes: ``[4, 4]``, ``[K, 4, 4]`` (one problem, K
            hypotheses) or ``[G, K, 4, 4]`` (G independent problems).
        config: solver settings (default: the paper's, :data:`inerf.pose.config.PAPER`).
        seeds: pixel-sampling seed per problem; an int ``s`` means ``s, s + 1, ..., s + G - 1``. Problem ``g``
            of a batch gives exactly what a single solve with seed ``seeds[g]`` gives.
        progress: show a tqdm progress bar.
        desc: the progress bar's label.
        problem: the solve's :class:`Problem` of ``model``, ``target`` and ``config``, built by the caller to
            be reused (the frames of a track, :meth:`Problem.retarget`: its sized query pool, caches and CUDA
            graphs carry over); None builds one.
    Returns:
        :class:`PoseResult`.
    Raises:
        InerfError: ``init_c2w`` is not rigid or not finite; the sampling strategy cannot be used on this
            target (no keypoints, no alpha).
    """
    config = config or PoseConfig()
    device = target.image.device
    c2w0 = _start_poses(init_c2w, device)
    seeds_t = _seed_tensor(seeds, c2w0.shape[0], device)
    t_start = time.perf_counter()
    fast = config.fast and device.type == "cuda"
    with (
        frozen_fields(model.coarse, model.fine),
        field_precision(torch.bfloat16 if fast else None, *model.fields()),
    ):
        if problem is None:
            problem = Problem(model, target, config)
        schedule = Schedule.from_config(config, device)
        hyps = schedule.init_state(Hypotheses.start(c2w0))
        recorder = Recorder(*c2w0.shape[:2], config.steps, device)
        stop, bar = _StopTest(config.stop, device), _ProgressBar(config, progress, desc)
        steps_taken, stopped_early = config.steps, False
        for step in range(config.steps):
            optimiser, sigma = schedule.at(step), schedule.blur_at(step)
            pix = problem.sampler.sample(seeds_t, step)
            ev = optimiser.evaluate(problem, hyps, pix, sigma, step)
            hyps.freeze(ev.bad(), step)  # a hypothesis fails for good the first time a number is not finite
            recorder.record(hyps, ev.loss, optimiser.lr_at(step))
            if step in config.prune_steps and hyps.size > 1:
                keep = hyps.best_half(ev.loss)
                ev, hyps = ev.select(hyps.rows, keep), hyps.select(keep)
            xi, state = optimiser.step(problem, hyps, ev.masked(hyps.failed), pix, sigma, step)
            delta = hyps.advance(xi, state)
            bar.update(step, hyps, ev.loss)
            if step % config.progress_every == config.progress_every - 1:
                problem.check_pool()
            if stop(step, delta):
                steps_taken, stopped_early = step + 1, True
                break
        bar.close()
        hyps = schedule.finish(hyps, recorder, steps_taken, problem.run)
        loss = _score_final(problem, hyps, seeds_t, steps_taken)
        recorder.record(hyps, loss, math.nan)
        problem.check_pool()  # one sync; a reused problem's next solve gets a pool grown if this one overflowed
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t_start
    return _result(hyps, loss, recorder, init_c2w, steps_taken, stopped_early, seconds, device)


def require_finite(result: PoseResult) -> None:
    """Raise :class:`InerfError` if any problem of ``result`` failed numerically (for callers that want an
    exception rather than a status)."""
    for g, s in enumerate(result.status):
        if s != "ok":
            first = int(result.failed_step[g].clamp_min(0).min())
            raise InerfError(
                f"the photometric loss became NaN or infinite at step {first} for every hypothesis; "
                "check the field, the target image and the learning rate"
            )
