"""Occupied samples at a fixed budget per ray: empty-space skipping with static shapes.

A field with an occupancy grid is exactly zero in empty cells, so compositing only the samples in occupied
cells gives the same colour as compositing all of them (an empty sample has alpha 0: it multiplies the
transmittance by 1 and adds nothing). Gathering the occupied samples with ``nonzero`` makes the number of
field queries data-dependent, which forces a host synchronisation and defeats CUDA-graph capture. Here each
ray keeps its first ``budget`` occupied samples in a ``[R, budget]`` layout (rank by a cumulative sum,
placed by a scatter): no synchronisation, fixed shapes. Rays with fewer occupied samples are padded with
empty slots (zero-length intervals); a ray with more drops the samples behind its ``budget``-th occupied one,
where a solid object has long absorbed the light (the count of such rays is returned for checking).
"""

from __future__ import annotations

import torch

__all__ = ["compact_occupied", "compact_occupied_reference"]


def compact_occupied(occupied: torch.Tensor, budget: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the first ``budget`` occupied samples of each ray.

    Args:
        occupied: ``bool [R, S]``, whether sample ``s`` of ray ``r`` lies in an occupied cell (samples sorted
            along the ray).
        budget: ``M``, the samples kept per ray.
    Returns:
        ``index [R, M]`` (int64) into the ``S`` samples, increasing along each ray over the valid slots;
        ``valid bool [R, M]`` (padding slots point at sample ``S - 1`` and are invalid); ``overflow [R]``
        (bool), rays that had more than ``M`` occupied samples.
    """
    R, S = occupied.shape
    rank = occupied.long().cumsum(-1) - 1  # position of each occupied sample among its ray's occupied ones
    keep = occupied & (rank < budget)
    # Kept samples go to slot `rank`; everything else to a spare slot M, dropped below (scatter with repeated
    # indices leaves an unspecified winner there, which is never read).
    dest = torch.where(keep, rank, torch.full_like(rank, budget))
    index = torch.full((R, budget + 1), S - 1, dtype=torch.long, device=occupied.device)
    index.scatter_(1, dest, torch.arange(S, device=occupied.device).expand(R, S))
    count = keep.sum(-1, keepdim=True)
    valid = torch.arange(budget, device=occupied.device) < count
    return index[:, :budget], valid, rank[:, -1] >= budget


def compact_occupied_reference(occupied: torch.Tensor, budget: int):
    """Slow reference of :func:`compact_occupied`: a Python loop over rays with ``nonzero``."""
    R, S = occupied.shape
    index = torch.full((R, budget), S - 1, dtype=torch.long)
    valid = torch.zeros(R, budget, dtype=torch.bool)
    overflow = torch.zeros(R, dtype=torch.bool)
    for r in range(R):
        idx = occupied[r].nonzero().squeeze(1).cpu()
        overflow[r] = len(idx) > budget
        idx = idx[:budget]
        index[r, : len(idx)] = idx
        valid[r, : len(idx)] = True
    return index, valid, overflow
