"""The record of a solve: the pose and loss of every original hypothesis at every step.

:class:`Recorder` writes into buffers preallocated on the solve's device (indexed writes of the twists, start
poses and losses per step, no host sync, fixed addresses); :meth:`Recorder.trajectory` copies them to the CPU once, at the end, as a
:class:`PoseTrajectory`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inerf.geometry import se3
from inerf.pose.state import Hypotheses

__all__ = ["PoseTrajectory", "Recorder"]


@dataclass
class PoseTrajectory:
    """Everything recorded during a solve, on the CPU. ``S`` = steps taken; entry ``s`` is the pose after
    ``s`` updates and the loss of that pose on step ``s``'s pixels (the last entry: the final pose, scored
    on step ``S``'s pixels without an update). Hypotheses keep their original index ``k``; after they are
    pruned their entries are NaN.

    Attributes:
        c2w: ``[S + 1, G, K, 4, 4]`` camera-to-world per step and hypothesis (float64).
        loss: ``[S + 1, G, K]`` photometric loss (NaN when pruned or failed).
        lr: ``[S + 1]`` learning rate of the update taken at that step (NaN for LM steps and the final entry).
    """

    c2w: torch.Tensor
    loss: torch.Tensor
    lr: torch.Tensor

    @property
    def steps(self) -> int:
        return self.loss.shape[0] - 1

    def best_hypothesis(self) -> torch.Tensor:
        """``[S + 1, G]`` index of the lowest-loss live hypothesis at every step (NaN counts as +inf)."""
        return torch.nan_to_num(self.loss, nan=math.inf).argmin(-1)

    def best_c2w(self) -> torch.Tensor:
        """``[S + 1, G, 4, 4]``: at every step, the pose of the hypothesis that is best at that step (what a
        solve stopped at that step would return)."""
        idx = self.best_hypothesis()
        return torch.take_along_dim(self.c2w, idx[..., None, None, None], dim=2)[:, :, 0]

    def errors(
        self, gt_c2w: torch.Tensor, c2w: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotation error (degrees, geodesic) and translation error (scene units) against ``gt_c2w``
        ``[G, 4, 4]`` (or ``[4, 4]``) for ``c2w`` (default: all entries, ``[S + 1, G, K]`` each)."""
        c2w = self.c2w if c2w is None else c2w
        gt = gt_c2w.to(c2w.dtype).reshape(-1, 4, 4)
        # [G, 4, 4] -> [1, G, 1, 4, 4] against [S + 1, G, K, 4, 4] (or [1, G, 4, 4] against [S + 1, G, 4, 4]).
        gt = gt.reshape(1, gt.shape[0], *([1] * (c2w.ndim - 4)), 4, 4)
        return se3.rotation_error_deg(c2w, gt), se3.translation_error(c2w, gt)


class Recorder:
    """Collects the trajectory of a solve of at most ``steps`` updates of ``G x K0`` hypotheses.

    Entry ``s`` holds, per original hypothesis, the pose before update ``s`` and its loss on step ``s``'s
    pixels (NaN once pruned, loss NaN once failed); the entry after the last update holds the returned poses.
    """

    def __init__(self, G: int, K0: int, steps: int, device: torch.device):
        # Twists and start poses, not matrices: a step then records with two indexed writes, and the poses
        # exp(xi) @ c2w0 of all steps are computed at once when read (the ~50 small ops of se3_exp are
        # launched once per solve, not once per step).
        self.xi = torch.full((steps + 1, G, K0, 6), math.nan, device=device)
        self.c2w0 = torch.full((steps + 1, G, K0, 4, 4), math.nan, device=device)
        self.loss = torch.full((steps + 1, G, K0), math.nan, device=device)
        self.lr: list[float] = []
        self.count = 0

    def record(self, hyps: Hypotheses, loss: torch.Tensor, lr: float) -> None:
        """Append the live hypotheses' poses and their ``loss`` ``[G, K]``, and the step's learning rate."""
        rows, ids, i = hyps.rows, hyps.ids, self.count
        self.xi[i, rows, ids] = hyps.xi.detach()
        self.c2w0[i, rows, ids] = hyps.c2w0
        self.loss[i, rows, ids] = torch.where(hyps.failed, math.nan, loss)
        self.lr.append(lr)
        self.count += 1

    def c2w(self, start: int, stop: int) -> torch.Tensor:
        """``[stop - start, G, K0, 4, 4]`` the recorded poses of entries ``[start, stop)`` (NaN where nothing
        was recorded), on the solve's device: ``exp(xi) @ c2w0`` as :meth:`Hypotheses.c2w` computes it."""
        return se3.se3_exp(self.xi[start:stop]) @ self.c2w0[start:stop]

    def recent(self, n: int) -> torch.Tensor:
        """``[n, G, K0, 4, 4]`` the last ``n`` recorded poses, oldest first."""
        return self.c2w(self.count - n, self.count)

    def trajectory(self) -> PoseTrajectory:
        """Everything recorded, on the CPU (float64)."""
        n = self.count
        return PoseTrajectory(
            c2w=self.c2w(0, n).double().cpu(),
            loss=self.loss[:n].double().cpu(),
            lr=torch.tensor(self.lr, dtype=torch.float64),
        )
