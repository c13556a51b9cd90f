"""The solver's optimisers as step objects: what each evaluates at a step and how it moves the hypotheses.

Like gsplat's ``Strategy``, a step object keeps no tensors of a solve itself: ``init_state`` gives the
per-hypothesis state it needs (stored in :attr:`Hypotheses.optim`, so pruning re-indexes it with the rest),
``evaluate`` asks the :class:`~inerf.pose.problem.Problem` for what the update needs on this step's pixels,
and ``step`` returns the new twists and state. The :class:`Schedule` says which one acts at each step and
owns the per-step policy (learning rates, LM phase, LM step fraction, final averaging).

* :class:`AdamStep`: the paper's Adam on the twist, with an exponentially decaying learning rate.
* :class:`LMStep`: Levenberg-Marquardt. It linearises the colour residuals ``r_i`` around the current pose
  ``T`` for a left update ``exp(delta) @ T`` (:meth:`Problem.linearize`). The step
  ``-(H + lambda diag H)^-1 g`` with ``H = sum J^T W J``, ``g = sum J^T W r`` (IRLS weights ``W`` for Huber)
  is kept only if it lowers the loss on the same pixels, and the damping adapts per hypothesis.

For a host-sync-free step (issue 12) every tensor here stays on the solve's device and has a shape fixed by
the step's phase; the scalars that vary with the step (learning rate, bias corrections, LM fraction) are
static functions of the step number, not of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from inerf.geometry import se3
from inerf.pose.config import AdamConfig, LMConfig, PoseConfig
from inerf.pose.problem import Problem
from inerf.pose.state import Hypotheses

__all__ = [
    "AdamStep",
    "Evaluation",
    "LMStep",
    "Schedule",
    "adam_update",
    "lm_average",
    "lm_step",
    "solve_spd",
]


def adam_update(
    x: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: torch.Tensor | float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
):
    """One Adam step (Kingma & Ba 2015), written out so the solver can index the moments of individual
    hypotheses when pruning. Same arithmetic as ``torch.optim.Adam`` (tested against it).

    Args:
        x, grad, m, v: parameter, gradient, first and second moments, all the same shape.
        t: 1-based step count (for the bias corrections).
        lr: learning rate, a float or a tensor broadcastable to ``x`` (per-coordinate rates).
    Returns:
        ``(x, m, v)`` updated (new tensors).
    """
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    denom = v.sqrt() / math.sqrt(1 - b2**t) + eps
    return x - (lr / (1 - b1**t)) * m / denom, m, v


def lm_step(
    xi: torch.Tensor,
    H: torch.Tensor,
    g: torch.Tensor,
    damping: torch.Tensor,
    max_rot: float,
    max_trans: float,
    fraction: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Candidate twists after one damped Gauss-Newton step from ``exp(xi)``: ``[..., 6]``.

    ``delta = -(H + damping * diag(H))^-1 g`` (Marquardt's scaling, so the damping is unit-free), shortened to
    the trust region (``|phi| <= max_rot``, ``|rho| <= max_trans``), scaled by ``fraction`` (see
    :meth:`LMStep.fraction`), applied on the left as the gradient was: ``exp(xi') = exp(delta) exp(xi)``.
    Solved in float64. ``max_rot``, ``max_trans`` and ``fraction`` may be 0-d tensors (inside a CUDA graph).
    """
    Hd = H.double()
    diag = torch.diagonal(Hd, dim1=-2, dim2=-1)
    # A direction no pixel constrains (diag 0) gets a tiny floor, so the system stays solvable.
    floor = 1e-9 * diag.amax(-1, keepdim=True).clamp_min(1e-30)
    A = Hd + torch.diag_embed(damping.double()[..., None] * diag + floor)
    if A.device.type == "cuda":
        # Inside a CUDA graph: elimination in plain tensor ops (a cuSOLVER or MAGMA LU may not be capturable).
        delta = -solve_spd(A, g.double())
    else:
        # solve_ex: the same LU solve as linalg.solve without its error check (which syncs with a device); a
        # singular system gives a non-finite candidate, which the caller rejects.
        delta = -torch.linalg.solve_ex(A, g.double()[..., None])[0][..., 0]
    shrink = torch.minimum(
        max_trans / delta[..., :3].norm(dim=-1).clamp_min(1e-30),
        max_rot / delta[..., 3:].norm(dim=-1).clamp_min(1e-30),
    ).clamp(max=1.0)
    delta = delta * (shrink * fraction)[..., None]
    return se3.se3_log(se3.se3_exp(delta) @ se3.se3_exp(xi.double()), static=True).to(xi.dtype)


def solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x [..., n]`` with ``A x = b`` for symmetric positive definite ``A [..., n, n]`` (``b [..., n]``):
    Gauss-Jordan elimination without pivoting (the pivots of an SPD matrix are positive, and the elimination
    is as stable as Cholesky's), ``4 n`` tensor ops with fixed shapes and no host sync, for a CUDA graph. A
    singular ``A`` gives non-finite entries."""
    n = A.shape[-1]
    M = torch.cat([A, b[..., None]], -1)  # [..., n, n + 1]
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    for j in range(n):
        row = M[..., j : j + 1, :] / M[..., j : j + 1, j : j + 1]  # [..., 1, n + 1], pivot 1
        # Every other row loses its column-j multiple of the pivot row; row j becomes the pivot row.
        M = M - (M[..., :, j : j + 1] - eye[:, j : j + 1]) * row
    return M[..., -1]


@dataclass
class Evaluation:
    """What one step's pixels say about the live hypotheses.

    Attributes:
        loss: ``[G, K]`` photometric loss.
        grad: ``[G, K, 6]`` its gradient with respect to the twist (Adam), or ``g = sum J^T W r`` (LM).
        hessian: ``[G, K, 6, 6]`` Gauss-Newton matrix ``sum J^T W J`` (LM only).
    """

    loss: torch.Tensor
    grad: torch.Tensor
    hessian: torch.Tensor | None = None

    def bad(self) -> torch.Tensor:
        """``[G, K]`` hypotheses with a non-finite loss, gradient or Gauss-Newton matrix."""
        # x * 0 is 0 for a finite x and NaN for an infinite or NaN one: one sum per hypothesis finds any, in
        # 4 device ops (isfinite alone is several per tensor; these run eagerly at every step).
        parts = [self.loss[..., None], self.grad]
        if self.hessian is not None:
            parts.append(self.hessian.flatten(-2))
        return (torch.cat(parts, -1) * 0).sum(-1).isnan()

    def select(self, rows: torch.Tensor, keep: torch.Tensor) -> Evaluation:
        """The entries of slots ``keep`` ``[G, K']`` (see :meth:`Hypotheses.select`)."""
        return Evaluation(
            self.loss[rows, keep],
            self.grad[rows, keep],
            None if self.hessian is None else self.hessian[rows, keep],
        )

    def masked(self, failed: torch.Tensor) -> Evaluation:
        """Failed hypotheses' numbers replaced by harmless ones (zero gradient, identity matrix), so that no
        NaN enters arithmetic; their updates are discarded anyway (:meth:`Hypotheses.advance`)."""
        grad = torch.where(failed[..., None], 0.0, self.grad)
        hessian = self.hessian
        if hessian is not None:
            eye = torch.eye(6, device=hessian.device, dtype=hessian.dtype)
            hessian = torch.where(failed[..., None, None], eye, hessian)
        return Evaluation(self.loss, grad, hessian)


class AdamStep:
    """The paper's first-order step: Adam on the twist, learning rate ``lr_s = lr * decay ** (s / steps)``
    for the rotation part and ``trans_lr_scale`` times that for the translation part.

    Args:
        config: learning rate, schedule and Adam's constants.
        steps: the solve's length (the rate table covers it).
        device: where the state and the rates live.
    """

    name = "adam"

    def __init__(self, config: AdamConfig, steps: int, device: torch.device):
        self.config = config
        # Per-coordinate rate of every step, [S, 6], on the device: twist order (rho, phi) = (translation,
        # rotation). float32(lr_s) * scale: the same product as a Python float times the scale tensor.
        scale = torch.tensor([config.trans_lr_scale] * 3 + [1.0] * 3, device=device)
        lrs = torch.tensor([config.lr_at(s) for s in range(steps)], dtype=torch.float32, device=device)
        self.rates = lrs[:, None] * scale

    def init_state(self, xi: torch.Tensor) -> dict[str, torch.Tensor]:
        """Adam's first and second moments, zero, shaped like the twists ``[G, K, 6]``."""
        return {"m": torch.zeros_like(xi), "v": torch.zeros_like(xi)}

    def lr_at(self, step: int) -> float:
        """The learning rate of the update at ``step`` (for the record)."""
        return self.config.lr_at(step)

    def evaluate(self, problem: Problem, hyps: Hypotheses, pix, sigma: float, step: int) -> Evaluation:
        loss, grad = problem.evaluate(hyps.xi, hyps.c2w0, pix, need_grad=True, sigma=sigma, step=step)
        return Evaluation(loss, grad)

    def step(self, problem: Problem, hyps: Hypotheses, ev: Evaluation, pix, sigma: float, step: int):
        """``(xi, {"m", "v"})`` after one Adam update with the gradient ``ev.grad``."""
        c = self.config
        m, v = hyps.optim["m"], hyps.optim["v"]
        xi, m, v = adam_update(hyps.xi, ev.grad, m, v, step + 1, self.rates[step], c.betas, c.eps)
        return xi, {"m": m, "v": v}


class LMStep:
    """Levenberg-Marquardt: a damped Gauss-Newton step kept only if it lowers the loss on the step's pixels;
    the damping divided by 3 after an accepted step and multiplied by 4 after a rejected one.

    Args:
        config: damping, trust region, decay and averaging.
        start: the solve's first LM step (``0`` for ``optimizer="lm"``; after the Adam phase for ``adam+lm``).
    """

    name = "lm"

    def __init__(self, config: LMConfig, start: int):
        self.config = config
        self.start = start

    def init_state(self, xi: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-hypothesis damping ``[G, K]``, relative to the diagonal of the Gauss-Newton matrix."""
        return {"damping": torch.full(xi.shape[:2], self.config.damping, device=xi.device)}

    def lr_at(self, step: int) -> float:
        """No learning rate (NaN in the record): the damping adapts per hypothesis."""
        return math.nan

    def fraction(self, step: int) -> float:
        """Fraction of the Gauss-Newton step taken at ``step``: LM step ``j = step - start`` goes
        ``min(1, 1 / (decay * j))`` of the way (see :attr:`LMConfig.decay`); 1 without decay."""
        decay = self.config.decay
        if decay <= 0:
            return 1.0
        j = step - self.start
        return 1.0 if j * decay <= 1.0 else 1.0 / (decay * j)

    def evaluate(self, problem: Problem, hyps: Hypotheses, pix, sigma: float, step: int) -> Evaluation:
        loss, H, g = problem.linearize(hyps.xi, hyps.c2w0, pix, sigma=sigma, step=step)
        return Evaluation(loss, g, H)

    def step(self, problem: Problem, hyps: Hypotheses, ev: Evaluation, pix, sigma: float, step: int):
        """``(xi, {"damping"})``: the candidate of :func:`lm_step` where it lowers the loss on the same
        pixels, else the current twist (:meth:`Problem.lm_step`: decided on the device, no host sync)."""
        c = self.config
        xi, damping = problem.lm_step(
            hyps.xi,
            hyps.c2w0,
            pix,
            ev.hessian,
            ev.grad,
            ev.loss,
            hyps.optim["damping"],
            self.fraction(step),
            c.max_rot,
            c.max_trans,
            sigma=sigma,
            step=step,
        )
        return xi, {"damping": damping}

    def finish(
        self, hyps: Hypotheses, recent_xi: torch.Tensor, recent_c2w0: torch.Tensor, run=None
    ) -> Hypotheses:
        """``hyps`` at the mean of their current poses and the recent recorded iterates ``exp(recent_xi) @
        recent_c2w0`` (``[n, G, K0, 6]`` and ``[n, G, K0, 4, 4]``, by original hypothesis, as the
        :class:`~inerf.pose.recorder.Recorder` holds them): Polyak-Ruppert averaging
        (:attr:`LMConfig.average`, :func:`lm_average`). ``run(name, fn, *inputs)``: how to call it (e.g.
        :meth:`Problem.run`, a CUDA graph on the fast path); None calls it."""
        inputs = (hyps.xi, hyps.c2w0, hyps.ids, hyps.failed, recent_xi, recent_c2w0)
        xi = lm_average(*inputs) if run is None else run("lm_average", lm_average, *inputs)[0]
        return replace(hyps, xi=xi)


def lm_average(xi, c2w0, ids, failed, recent_xi, recent_c2w0) -> tuple[torch.Tensor]:
    """``(xi [G, K, 6],)``: the twists of the mean of the current poses ``exp(xi) @ c2w0`` and the recent
    iterates ``exp(recent_xi) @ recent_c2w0`` (``[n, G, K0, ...]`` by original hypothesis ``ids`` ``[G, K]``).
    Each LM step fits its own random pixels, so with few rays the iterates jitter around the optimum by a
    fraction of a degree; their mean does not. The mean is taken in the tangent space at the current pose
    (left perturbations). Hypotheses that ``failed`` ``[G, K]`` keep their twists. Fixed shapes, no host
    sync (capturable)."""
    rows = torch.arange(xi.shape[0], device=xi.device)[:, None]
    current = se3.se3_exp(xi.double()) @ c2w0.double()
    inv = se3.inverse(current)
    recent = se3.se3_exp(recent_xi) @ recent_c2w0  # as Recorder.c2w computes them
    deltas = se3.se3_log(recent[:, rows, ids].double() @ inv, static=True)
    mean = torch.cat([torch.zeros_like(deltas[:1]), deltas]).mean(0)
    averaged = se3.se3_log(se3.se3_exp(mean) @ se3.se3_exp(xi.double()), static=True).to(xi.dtype)
    ok = torch.isfinite(averaged).all(-1) & ~failed
    return (torch.where(ok[..., None], averaged, xi),)


@dataclass
class Schedule:
    """Which step object updates the hypotheses at each step of a solve, and the blur of that step.

    ``adam``: Adam throughout; ``lm``: LM throughout; ``adam+lm``: Adam for the first ``steps - lm.steps``
    steps, then LM.

    Attributes:
        config: the solve's settings.
        adam: the Adam step (None for ``optimizer="lm"``).
        lm: the LM step (None for ``optimizer="adam"``).
    """

    config: PoseConfig
    adam: AdamStep | None
    lm: LMStep | None

    @classmethod
    def from_config(cls, config: PoseConfig, device: torch.device) -> Schedule:
        adam = AdamStep(config.adam, config.steps, device) if config.optimizer != "lm" else None
        lm = None
        if config.optimizer != "adam":
            lm = LMStep(config.lm, 0 if config.optimizer == "lm" else config.steps - config.lm.steps)
        return cls(config, adam, lm)

    def at(self, step: int) -> AdamStep | LMStep:
        """The step object of the update at ``step`` (0-based)."""
        if self.lm is not None and step >= self.lm.start:
            return self.lm
        return self.adam

    def blur_at(self, step: int) -> float:
        """Blur (pixels, standard deviation) of renders and target at ``step`` (see :class:`BlurConfig`)."""
        return self.config.blur.at(step)

    def init_state(self, hyps: Hypotheses) -> Hypotheses:
        """``hyps`` with the state of every step object of the solve."""
        optim = {}
        for stepper in (self.adam, self.lm):
            if stepper is not None:
                optim.update(stepper.init_state(hyps.xi))
        return replace(hyps, optim=optim)

    def finish(self, hyps: Hypotheses, recorder, steps_taken: int, run=None) -> Hypotheses:
        """The hypotheses to score and return after ``steps_taken`` updates: with :attr:`LMConfig.average`
        ``n > 1``, at the mean of the last ``n`` LM iterates (at most the LM steps taken: the current poses
        and the ``n - 1`` last poses of ``recorder``, a :class:`~inerf.pose.recorder.Recorder`), else as
        they are. ``run``: see :meth:`LMStep.finish`."""
        if self.lm is None:
            return hyps
        n = min(self.lm.config.average, max(0, steps_taken - self.lm.start))
        if n <= 1:
            return hyps
        a, b = recorder.count - (n - 1), recorder.count
        return self.lm.finish(hyps, recorder.xi[a:b], recorder.c2w0[a:b], run)
