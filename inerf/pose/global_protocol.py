"""The evaluation protocol in global mode: every trial starts from no pose at all.

For each of the protocol's views and each of its ``trials``, :func:`inerf.pose.global_search.localize` finds
the pose from the scene's candidate grid (trial 0 the fixed grid, the others a grid turned by a random
azimuth and roll) and refines the best candidates; the trials of a view are solved together. The result has
the shape of :func:`inerf.pose.protocol.run_pose_benchmark`'s (success rate and errors against step of each
trial's best hypothesis, one row per trial), so :func:`inerf.pose.protocol.write_report` writes it; its
``meta["global"]`` holds the candidate counts and the mean scoring and refinement times per view.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np
import torch

from inerf.pose.config import PoseConfig, SamplingConfig
from inerf.pose.global_search import CameraPrior, GlobalConfig, ReferenceCache, localize
from inerf.pose.protocol import (
    BenchmarkResult,
    ProtocolConfig,
    _check_strategies,
    _progress_line,
    _trial_records,
    _uncertainty_fields,
    _view_target,
    select_images,
    solve_views,
)
from inerf.render.model import Model

__all__ = ["run_global_benchmark"]


def run_global_benchmark(
    model: Model,
    views,
    prior: CameraPrior,
    strategies: list[SamplingConfig],
    pose_config: PoseConfig,
    protocol: ProtocolConfig,
    global_config: GlobalConfig | None = None,
    *,
    device=None,
    progress: bool = True,
    log=print,
    uncertainty=None,
    shard_views: bool = False,
    model_error=None,
) -> BenchmarkResult:
    """The protocol with no initial poses (see the module docstring); arguments as
    :func:`inerf.pose.protocol.run_pose_benchmark` (``shard_views`` and ``model_error`` included), plus the scene's camera
    ``prior`` and the ``global_config`` of the search. The protocol's perturbation and hypothesis settings
    are not used."""
    global_config = global_config or GlobalConfig()
    device = torch.device(device) if device is not None else torch.device("cpu")
    steps = pose_config.steps
    labels = _check_strategies(strategies, protocol, steps)
    ids = select_images(len(views), protocol)
    base = replace(pose_config, stop=replace(pose_config.stop, tol=0.0))
    # Retrieval's reference renders depend on the field, the prior and the intrinsics only: render them for
    # the first view and reuse them for the others (the first view's time includes them).
    references = ReferenceCache()

    def solve_view(n_img: int, i: int) -> dict:
        """Every strategy on view ``i``: errors ``[T, S + 1]``, times, candidate counts and trial rows."""
        target, gt = _view_target(views, i, device)
        T = protocol.trials
        seed = protocol.seed * 1_000_003 + i * 1000
        seeds = [seed + t for t in range(T)]
        out = {}
        for strat, name in zip(strategies, labels):
            t0 = time.perf_counter()
            desc = f"view {i} ({n_img + 1}/{len(ids)}) global {name}"
            found = localize(
                model,
                target,
                prior,
                global_config,
                replace(base, sampling=strat),
                trials=T,
                seed=seed,
                progress=progress,
                desc=desc,
                references=references,
            )
            seconds = time.perf_counter() - t0
            res = found.result
            best = res.trajectory.best_c2w()  # [S + 1, T, 4, 4]
            r, t = res.trajectory.errors(gt[None].expand(T, 4, 4), best)
            records = _trial_records(name, views, i, seeds, res.init_c2w, gt, res, r, t, protocol, steps)
            if uncertainty is not None:
                for rec, extra in zip(
                    records,
                    _uncertainty_fields(
                        model, target, res, gt, uncertainty, seeds, found.pose_config, model_error
                    ),
                ):
                    rec.update(extra)
            log(_progress_line(i, f"global {name}", r, t, protocol, steps, found.seconds))
            out[name] = {
                "rot": r.T.numpy(),
                "trans": t.T.numpy(),
                "seconds": seconds,
                "score_s": found.score_seconds / T,
                "refine_s": found.refine_seconds / T,
                "counts": (
                    int(found.candidates.shape[1]),
                    int(found.chosen.shape[1]),
                    list(found.pose_config.prune_steps),
                ),
                "trials": records,
            }
        return out

    joined = solve_views(ids, solve_view, labels, protocol, steps, device, shard_views)
    solves = [v[n] for v in joined.per_view for n in labels]  # in the order one process solves them
    counts = solves[-1]["counts"]
    joined.meta["global"] = {
        "candidates": counts[0],
        "refined": counts[1],
        "prune_steps": counts[2],
        "score_seconds_per_trial": float(np.mean([x["score_s"] for x in solves])),
        "refine_seconds_per_trial": float(np.mean([x["refine_s"] for x in solves])),
        "retrieval_reference_renders": references.renders,
        "prior": prior.to_json(),
        "config": asdict(global_config),
    }
    return joined.result(protocol, base)
