"""Configuration of the iNeRF pose solver.

Defaults follow the iNeRF paper (Yen-Chen et al., IROS 2021, §IV) and its public code: Adam with
learning rate 0.01 decayed exponentially by x0.8 every 100 steps, 300 steps, 2048 rays per step,
photometric MSE. Settings of one part of the solver live in a nested config (:class:`AdamConfig`,
:class:`LMConfig`, :class:`BlurConfig`, :class:`StopConfig`). Presets are plain module-level instances; change
a copy with ``dataclasses.replace(PAPER, steps=100)`` or :meth:`PoseConfig.with_steps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

__all__ = [
    "DETECTORS",
    "FAST",
    "LOSSES",
    "OPTIMIZERS",
    "PAPER",
    "ROBUST",
    "STRATEGIES",
    "AdamConfig",
    "BlurConfig",
    "Detector",
    "LMConfig",
    "Loss",
    "Optimizer",
    "PoseConfig",
    "SamplingConfig",
    "StopConfig",
    "Strategy",
]

Optimizer = Literal["adam", "lm", "adam+lm"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
"""``adam``: the paper's first-order solve; ``lm``: Levenberg-Marquardt (Gauss-Newton with adaptive damping)
on the per-pixel colour residuals, see :mod:`inerf.pose.steps`."""

Loss = Literal["mse", "huber", "mape"]
LOSSES: tuple[str, ...] = get_args(Loss)
"""Photometric losses: mean squared error (the paper's), Huber (robust to outliers such as unmodelled
occluders), mean absolute percentage error (relative error, weights dark pixels more)."""

Strategy = Literal["random", "interest_points", "interest_region", "center", "patch", "mask"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
"""Pixel-sampling strategies, see :mod:`inerf.pose.sampling`."""

Detector = Literal["sift", "orb"]
DETECTORS: tuple[str, ...] = get_args(Detector)
"""OpenCV keypoint detectors for the interest-point and interest-region strategies."""


@dataclass
class SamplingConfig:
    """Which pixels of the target image are rendered at each step (iNeRF §IV-B)."""

    strategy: Strategy = "random"
    """One of :data:`STRATEGIES`: ``random`` (uniform over the image, without replacement),
    ``interest_points`` (keypoints of the target; topped up with random other pixels when there are
    fewer keypoints than rays, as in the public code), ``interest_region`` (pixels of the keypoint mask
    dilated ``dilate_iterations`` times by a ``dilate_kernel`` square; only those pixels),
    ``center`` (uniform inside the central box covering ``center_fraction`` of each side), ``patch``
    (one square patch of about ``n_rays`` pixels at a random position) and ``mask`` (pixels whose
    alpha exceeds 0.5; needs an RGBA target or dataset alphas)."""
    detector: Detector = "sift"
    """Keypoint detector for the interest strategies: ``sift`` or ``orb`` (OpenCV)."""
    max_keypoints: int = 0
    """Keep at most this many of the strongest keypoints (0 = all the detector finds)."""
    dilate_kernel: int = 5
    """Side of the square structuring element that grows keypoints into the interest region (paper: 5)."""
    dilate_iterations: int = 3
    """How many times the dilation is applied (the paper's I = 3)."""
    mask_dilate: int = 0
    """``mask`` strategy: grow the foreground by this many pixels (a square of side ``2 r + 1``), so that
    the background just outside the silhouette, where a misaligned render spills over, is sampled too."""
    center_fraction: float = 0.5
    """Side of the ``center`` box as a fraction of the image side (0.5: the central half, as the
    pixelNeRF pose-estimation code)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown sampling strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown keypoint detector {self.detector!r}; expected one of {DETECTORS}")
        if (
            self.dilate_kernel < 1
            or self.dilate_iterations < 0
            or self.max_keypoints < 0
            or self.mask_dilate < 0
        ):
            raise ValueError(
                "dilate_kernel must be >= 1, dilate_iterations, max_keypoints and mask_dilate >= 0"
            )
        if not 0.0 < self.center_fraction <= 1.0:
            raise ValueError(f"center_fraction must be in (0, 1], got {self.center_fraction}")


@dataclass
class AdamConfig:
    """The paper's first-order solve: Adam on the twist with an exponentially decaying learning rate."""

    lr: float = 0.01
    """Initial learning rate for the rotation part of the twist (radians per step, roughly, since Adam
    normalises gradients)."""
    trans_lr_scale: float = 1.0
    """The translation part uses ``lr * trans_lr_scale`` (scene units per step, roughly). Raise it for
    scenes much larger than NeRF-synthetic's (cameras at radius 4)."""
    lr_decay: float = 0.8
    """Learning-rate decay factor per ``lr_decay_steps``: ``lr_s = lr * lr_decay ** (s / lr_decay_steps)``
    (smooth exponential decay, as the public code)."""
    lr_decay_steps: int = 100
    """Steps over which the learning rate is multiplied by ``lr_decay``."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment decay rates."""
    eps: float = 1e-8
    """Adam's denominator guard."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0) or not (
            math.isfinite(self.trans_lr_scale) and self.trans_lr_scale > 0
        ):
            raise ValueError(
                f"lr and trans_lr_scale must be finite and > 0, got {self.lr} and {self.trans_lr_scale}"
            )
        if not 0.0 < self.lr_decay <= 1.0 or self.lr_decay_steps < 1:
            raise ValueError(
                f"lr_decay must be in (0, 1] and lr_decay_steps >= 1, got {self.lr_decay} and {self.lr_decay_steps}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate used for the update at ``step`` (0-based)."""
        return self.lr * self.lr_decay ** (step / self.lr_decay_steps)


@dataclass
class LMConfig:
    """Levenberg-Marquardt refinement (``optimizer="lm"`` or ``"adam+lm"``), see :mod:`inerf.pose.steps`."""

    steps: int = 0
    """With ``optimizer="adam+lm"``: how many of the solve's steps are LM refinement steps at the end."""
    damping: float = 1e-2
    """Initial damping, relative to the diagonal of the Gauss-Newton matrix (Marquardt's scaling); divided
    by 3 after an accepted step, multiplied by 4 after a rejected one."""
    average: int = 0
    """Return the mean of the last this many LM iterates (Polyak-Ruppert averaging; 0 or 1 = the last
    iterate). Each LM step fits the step's random pixels exactly, so with few rays the iterates jitter
    around the optimum; their mean does not."""
    decay: float = 0.0
    """With ``> 0``, LM step ``j`` (0-based) goes only ``min(1, 1 / (decay * j))`` of the way to its
    Gauss-Newton target, so the pose becomes a running mean of the per-step targets (Robbins-Monro): each
    step fits its own random pixels, and with few rays those fits scatter. 0 = full steps."""
    max_rot: float = 0.1
    """Trust region of one step: at most this rotation (radians) ..."""
    max_trans: float = 0.2
    """... and this translation (scene units); larger steps are shortened along their direction."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.average < 0:
            raise ValueError(f"lm steps and average must be >= 0, got {self.steps} and {self.average}")
        for name in ("damping", "max_rot", "max_trans"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"lm {name} must be finite and > 0, got {v}")
        if not (math.isfinite(self.decay) and self.decay >= 0):
            raise ValueError(f"lm decay must be finite and >= 0, got {self.decay}")


@dataclass
class BlurConfig:
    """Coarse-to-fine: compare a Gaussian-blurred render with the target blurred alike, the blur shrinking
    linearly to 0. Blurring widens the basin of the photometric loss to about the blur's size, which thin or
    repeated structures (chair legs and spindles) otherwise shrink to a few pixels."""

    sigma: float = 0.0
    """Standard deviation of the blur at step 0, in pixels (0 = off, the paper)."""
    steps: int = 100
    """Step at which the blur reaches 0."""
    rays: int = 4
    """Rays per sampled pixel while blurring, spread on a ring of radius ``sqrt(2) * sigma`` (the blur's
    second moment) that turns from step to step; their mean colour is the blurred render."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma >= 0) or self.steps < 1 or self.rays < 1:
            raise ValueError(
                f"blur sigma must be finite and >= 0, steps and rays >= 1, got {self.sigma}, {self.steps}, {self.rays}"
            )

    def at(self, step: int) -> float:
        """Blur (pixels, standard deviation) of the renders and target at ``step`` (0-based)."""
        if self.sigma <= 0 or step >= self.steps:
            return 0.0
        return self.sigma * (1.0 - step / self.steps)


@dataclass
class StopConfig:
    """Early stopping once the poses stop moving."""

    tol: float = 0.0
    """Stop once every live hypothesis moved less than this (max of the rotation change in radians and the
    translation change, per step) for ``window`` consecutive steps; 0 disables the test."""
    window: int = 10
    """Steps the update must stay below ``tol``; also how often the test is checked (one host sync)."""

    def __post_init__(self) -> None:
        if self.window < 1 or not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(
                f"stop window must be >= 1 and tol finite and >= 0, got {self.window} and {self.tol}"
            )


@dataclass
class PoseConfig:
    """The gradient-descent solve ``c2w = exp(xi) @ c2w0`` over a twist ``xi`` (see :mod:`inerf.geometry.se3`)."""

    steps: int = 300
    """Optimiser steps (the paper uses 300 Adam steps)."""
    optimizer: Optimizer = "adam"
    """One of :data:`OPTIMIZERS`. ``adam`` is the paper's. ``lm`` (Levenberg-Marquardt) takes Gauss-Newton
    steps on the colour residuals, scaled by their curvature: no learning rate to tune, and it settles
    to a fraction of a pixel where Adam keeps jittering by about ``lr`` per step. ``adam+lm`` runs Adam
    for ``steps - lm.steps`` steps and then refines with ``lm.steps`` LM steps."""
    adam: AdamConfig = field(default_factory=AdamConfig)
    """Adam's learning rate and its schedule."""
    lm: LMConfig = field(default_factory=LMConfig)
    """Levenberg-Marquardt steps."""
    n_rays: int = 2048
    """Pixels rendered per step and per hypothesis (the paper's batch size)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Which pixels are rendered; resampled every step."""
    loss: Loss = "mse"
    """Photometric loss, one of :data:`LOSSES`."""
    huber_delta: float = 0.1
    """Transition point of the Huber loss (colour units in [0, 1])."""
    mape_eps: float = 0.01
    """Added to the target in the MAPE denominator, so black pixels do not divide by zero."""
    blur: BlurConfig = field(default_factory=BlurConfig)
    """Coarse-to-fine blur of render and target."""
    coarse_loss_weight: float = 0.0
    """Weight of the coarse pass's loss when the field has a fine pass (0 = fine colour only, as iNeRF)."""
    deterministic_render: bool = True
    """Render without jitter and with evenly spaced importance samples, so the loss is a deterministic
    function of the pose (a jittered renderer adds gradient noise)."""
    prune_steps: tuple[int, ...] = ()
    """With several hypotheses, keep the best half (lowest loss on that step's pixels, shared by all
    hypotheses of a problem) at each of these steps (Parallel iNeRF's scheme)."""
    stop: StopConfig = field(default_factory=StopConfig)
    """Early stopping."""
    ray_chunk: int = 8192
    """Rays rendered per forward/backward pass; bounds memory, since the field's activations are kept for
    the backward pass (the NeRF MLP with 64 + 128 samples keeps about 3 MB per ray: 8192 rays ~ 25 GB).
    Chunking does not change the result: every ray's gradient is computed exactly, chunk by chunk."""
    progress_every: int = 10
    """Refresh the progress bar's loss every this many steps (each refresh syncs with the device)."""
    fast: bool = True
    """On CUDA, run each Adam step's render-and-backward as the replay of a captured CUDA graph (one launch
    instead of hundreds; the host no longer paces the GPU), with the fields' fast paths; the same
    arithmetic as the reference path. No effect on the CPU. ``--no-fast`` selects the reference path."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.optimizer != "adam" and self.loss == "mape":
            raise ValueError("the lm optimizer supports the mse and huber losses, not mape")
        if self.optimizer == "adam+lm" and not 0 < self.lm.steps <= self.steps:
            raise ValueError(
                f"adam+lm needs 0 < lm steps <= steps, got lm steps {self.lm.steps} of {self.steps}"
            )
        if self.steps < 0 or self.n_rays < 1 or self.ray_chunk < 1 or self.progress_every < 1:
            raise ValueError(
                f"steps must be >= 0, n_rays, ray_chunk and progress_every >= 1, got {self.steps}, {self.n_rays}, "
                f"{self.ray_chunk} and {self.progress_every}"
            )
        if not (math.isfinite(self.huber_delta) and self.huber_delta > 0):
            raise ValueError(f"huber_delta must be finite and > 0, got {self.huber_delta}")
        if not (math.isfinite(self.mape_eps) and self.mape_eps >= 0):
            raise ValueError(f"mape_eps must be finite and >= 0, got {self.mape_eps}")
        if not (math.isfinite(self.coarse_loss_weight) and self.coarse_loss_weight >= 0):
            raise ValueError(f"coarse_loss_weight must be finite and >= 0, got {self.coarse_loss_weight}")
        self.prune_steps = tuple(sorted({int(s) for s in self.prune_steps}))

    def with_steps(self, steps: int) -> PoseConfig:
        """This config for a solve of ``steps`` steps, its phases scaled as fractions of the whole: the LM
        phase, the blur phase, the learning-rate schedule and the pruning steps keep their share of the solve
        (a preset made for 300 steps then fits 40 or 1000)."""
        if steps == self.steps or self.steps == 0:
            return replace(self, steps=steps)
        k = steps / self.steps

        def scale(n: int) -> int:
            return max(1, round(n * k))

        lm_steps = min(steps, scale(self.lm.steps)) if self.lm.steps > 0 else 0
        return replace(
            self,
            steps=steps,
            adam=replace(self.adam, lr_decay_steps=scale(self.adam.lr_decay_steps)),
            lm=replace(self.lm, steps=lm_steps),
            blur=replace(self.blur, steps=scale(self.blur.steps)),
            prune_steps=tuple(sorted({min(steps, scale(s)) for s in self.prune_steps})),
        )


PAPER = PoseConfig()
"""The iNeRF paper's settings (random sampling; pass a :class:`SamplingConfig` for the others)."""

FAST = PoseConfig(steps=150, n_rays=1024, adam=AdamConfig(lr=0.02, lr_decay_steps=50))
"""A quicker, coarser solve for CPU previews."""

ROBUST = PoseConfig(optimizer="adam+lm", lm=LMConfig(steps=50), blur=BlurConfig(sigma=8.0, steps=100, rays=4))
"""The paper's settings plus coarse-to-fine blur and a Levenberg-Marquardt finish: on the paper's protocol
(chair, +-40 degrees / +-0.1) random sampling succeeds in 100% of 25 trials instead of 72% (BENCHMARKS.md).
The first 100 steps render 4 rays per pixel, so a solve costs about twice the paper's. For another number of
steps use ``ROBUST.with_steps(n)`` (the blur and LM phases keep their share)."""
