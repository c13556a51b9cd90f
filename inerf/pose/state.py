"""The state of a batched pose solve: ``G`` problems of ``K`` live hypotheses each.

Everything a step changes lives here, on the solve's device: the twists, the start poses, which original
hypothesis each slot holds, which have failed (and when), and the optimisers' per-hypothesis state (Adam's
moments, LM's damping). Two operations change it besides an update:

* :meth:`Hypotheses.freeze` marks hypotheses whose numbers went non-finite; they keep their last finite pose
  for good. A mask, so the shapes never change (no host sync, as a captured CUDA graph needs).
* :meth:`Hypotheses.select` keeps some slots of every problem (pruning): the one re-indexing of the solve,
  at steps fixed by the config, because rendering pruned hypotheses would cost as much as live ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from inerf.geometry import se3

__all__ = ["Hypotheses", "as_batch"]


def as_batch(init_c2w: torch.Tensor) -> torch.Tensor:
    """``[4, 4]``, ``[K, 4, 4]`` or ``[G, K, 4, 4]`` -> ``[G, K, 4, 4]``."""
    if init_c2w.ndim == 2:
        return init_c2w[None, None]
    if init_c2w.ndim == 3:
        return init_c2w[None]
    if init_c2w.ndim == 4:
        return init_c2w
    raise ValueError(f"init_c2w must be [4, 4], [K, 4, 4] or [G, K, 4, 4], got {tuple(init_c2w.shape)}")


@dataclass
class Hypotheses:
    """``G`` problems x ``K`` live hypotheses (``K`` halves at each pruning step; ``K0`` at the start).

    Attributes:
        xi: ``[G, K, 6]`` twists (se3 order (rho, phi)); the pose is ``exp(xi) @ c2w0``, a left update.
        c2w0: ``[G, K, 4, 4]`` start poses, OpenCV axes.
        ids: ``[G, K]`` original index in ``[0, K0)`` of the hypothesis in each slot.
        failed: ``[G, K]`` its loss or gradient went non-finite; frozen at its last finite pose since.
        failed_step: ``[G, K0]`` per original hypothesis, the step at which it failed (-1: never).
        optim: the optimisers' per-hypothesis state by name, each ``[G, K, ...]`` (see
            :mod:`inerf.pose.steps`: Adam's moments ``m``, ``v``; LM's ``damping``).
    """

    xi: torch.Tensor
    c2w0: torch.Tensor
    ids: torch.Tensor
    failed: torch.Tensor
    failed_step: torch.Tensor
    optim: dict[str, torch.Tensor]

    @classmethod
    def start(cls, c2w0: torch.Tensor) -> Hypotheses:
        """Every hypothesis at its start pose (``xi = 0``), none failed, no optimiser state yet."""
        G, K0 = c2w0.shape[:2]
        device = c2w0.device
        return cls(
            xi=torch.zeros(G, K0, 6, device=device),
            c2w0=c2w0,
            ids=torch.arange(K0, device=device).expand(G, K0).contiguous(),
            failed=torch.zeros(G, K0, dtype=torch.bool, device=device),
            failed_step=torch.full((G, K0), -1, dtype=torch.int64, device=device),
            optim={},
        )

    @property
    def rows(self) -> torch.Tensor:
        """``[G, 1]`` problem index, to pair with a ``[G, K]`` slot index."""
        return torch.arange(self.xi.shape[0], device=self.xi.device)[:, None]

    @property
    def size(self) -> int:
        """Live hypotheses per problem (``K``)."""
        return self.xi.shape[1]

    def c2w(self, xi: torch.Tensor | None = None) -> torch.Tensor:
        """``[G, K, 4, 4]`` current poses ``exp(xi) @ c2w0`` (or those of other twists ``xi``)."""
        return se3.se3_exp(self.xi if xi is None else xi) @ self.c2w0

    def scores(self, loss: torch.Tensor) -> torch.Tensor:
        """``[G, K]`` loss for ranking: failed hypotheses rank last (+inf)."""
        return torch.where(self.failed, math.inf, loss)

    def freeze(self, bad: torch.Tensor, step: int) -> None:
        """Fail the hypotheses flagged in ``bad`` ``[G, K]`` for good, recording ``step`` for those that
        had not failed before."""
        rows = self.rows
        newly = bad & ~self.failed
        self.failed_step[rows, self.ids] = torch.where(newly, step, self.failed_step[rows, self.ids])
        self.failed = self.failed | bad

    def select(self, keep: torch.Tensor) -> Hypotheses:
        """The hypotheses in slots ``keep`` ``[G, K']`` of every problem (``failed_step`` stays whole)."""
        rows = self.rows
        return replace(
            self,
            xi=self.xi[rows, keep],
            c2w0=self.c2w0[rows, keep],
            ids=self.ids[rows, keep],
            failed=self.failed[rows, keep],
            optim={name: t[rows, keep] for name, t in self.optim.items()},
        )

    def best_half(self, loss: torch.Tensor) -> torch.Tensor:
        """``[G, K // 2]`` slots of the lowest ``loss`` ``[G, K]`` in every problem, failed ones last, in
        slot order (Parallel iNeRF's pruning; all hypotheses of a problem share its pixels, so losses
        compare fairly)."""
        keep = torch.topk(self.scores(loss), self.size // 2, dim=1, largest=False).indices
        return keep.sort(dim=1).values

    def advance(self, xi: torch.Tensor, optim: dict[str, torch.Tensor]) -> torch.Tensor:
        """Move the live hypotheses to twists ``xi`` with new optimiser state ``optim`` (entries not given
        are unchanged); failed ones stay where they are. Returns the change of the twists ``[G, K, 6]``."""
        frozen = self.failed[..., None]
        delta = torch.where(frozen, 0.0, xi - self.xi)
        self.xi = self.xi + delta
        for name, new in optim.items():
            old = self.optim[name]
            self.optim[name] = torch.where(
                self.failed.reshape(*old.shape[:2], *[1] * (old.ndim - 2)), old, new
            )
        return delta
