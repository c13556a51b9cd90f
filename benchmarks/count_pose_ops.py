"""Device ops of one pose step, counted on the CPU: a proxy for the CUDA kernels the GPU fast path launches.

The grid field's fast pose step (a CUDA graph replaying a few hundred tiny kernels, issue #12) is bound by
the NUMBER of kernels, not their arithmetic. Each ATen op that does work (not a view, an empty allocation or
a metadata change) is one kernel or a few, so counting ops with a ``TorchDispatchMode`` tracks the kernel
count without a GPU. The step runs with the fast path's settings forced on the CPU (``sample_budget`` and the
query pool, as :class:`inerf.pose.problem.Problem` sets them on CUDA; the grid field's packed query,
:data:`inerf.fields.grid.PACKED_QUERY_DEVICES`).

Ops are attributed to stages by where they run (the innermost ``inerf`` frame; for backward ops, the frame
that created the autograd node, recorded by anomaly mode): ray generation and se3, sample placement,
occupancy lookup, compaction, pool slots, gathers, field query, scatter back, compositing, loss; and the
solver's own ops outside ``Problem.loss_and_grad`` (pixel sampling, Adam, the record: eager, not captured).

    python benchmarks/count_pose_ops.py --grid-run RUN --rays 2048 --solver     # a trained grid run
    python benchmarks/count_pose_ops.py --list          # the box chair; every counted op with its stage
    python benchmarks/count_pose_ops.py --track         # a tracked frame's eager launches and graph replays
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import traceback
import warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]

NO_KERNEL = {
    "_reshape_alias",
    "_unsafe_view",
    "alias",
    "as_strided",
    "detach",
    "diagonal",
    "empty",
    "empty_like",
    "empty_strided",
    "expand",
    "lift_fresh",
    "narrow",
    "permute",
    "reshape",
    "select",
    "slice",
    "split",
    "split_with_sizes",
    "squeeze",
    "t",
    "transpose",
    "unbind",
    "unsqueeze",
    "view",
    "view_as",
}
"""Ops that launch no kernel (views, allocations without a fill)."""

STAGES = (
    "rays+se3",
    "samples",
    "occupancy",
    "compaction",
    "pool",
    "gathers",
    "field",
    "scatter",
    "composite",
    "loss",
    "other",
)

# (file suffix, function or None, regex on the source line or None) -> stage; first match wins.
_RULES = (
    ("geometry/se3.py", None, None, "rays+se3"),
    ("rays/rays.py", None, None, "rays+se3"),
    ("pose/sampling.py", "flat_to_uv", None, "rays+se3"),
    ("pose/problem.py", "rays", None, "rays+se3"),
    ("rays/samplers.py", None, None, "samples"),
    ("render/volrend.py", "sample_intervals", None, "samples"),
    ("tensors.py", None, None, "samples"),
    ("fields/grid.py", "occupied", None, "occupancy"),
    ("fields/occupancy.py", None, None, "occupancy"),
    ("rays/occupied.py", "compact_occupied", None, "compaction"),
    ("rays/occupied.py", "occupied_two_level", None, "occupancy"),
    ("rays/occupied.py", "pool_slots", None, "pool"),
    ("render/renderer.py", None, r"pts_all|occupied\(|lambda tt", "occupancy"),
    ("render/renderer.py", None, r"t_c =|seg_c =|delta_c =|gather\(t|gather\(seg", "compaction"),
    ("render/renderer.py", None, r"slots|at =|ray =|pool =", "pool"),
    ("render/renderer.py", None, r"gather\(rays|pts =|packed", "gathers"),
    ("render/renderer.py", None, r"scatter\(|\[: R \* M\]", "scatter"),
    ("fields/", None, None, "field"),
    ("render/volrend.py", None, None, "composite"),
    ("render/renderer.py", None, None, "composite"),
    ("pose/problem.py", None, None, "loss"),
)


def _frames(entries):
    """``(file, function, line text)`` of the ``inerf`` frames in ``entries``, innermost last."""
    return [(f, fn, text) for f, fn, text in entries if "/inerf/" in f]


def _stage(frames) -> str:
    for path, fn, text in reversed(frames):
        for suffix, func, pattern, stage in _RULES:
            if not path.endswith(suffix) and not (suffix.endswith("/") and suffix in path):
                continue
            if func is not None and fn != func:
                continue
            if pattern is not None and not re.search(pattern, text or ""):
                continue
            return stage
    return "other"


_TB_LINE = re.compile(r'File "([^"]+)", line \d+, in (\S+)\n\s*(.*)')


class OpCounter(TorchDispatchMode):
    """Records every ATen op run inside it as ``(name, stage, backward)``; :meth:`kernels` keeps those that
    launch a kernel. With ``attribute=True`` (slower) stages come from Python stacks (run the counted code
    under ``torch.autograd.detect_anomaly(check_nan=False)`` so that backward ops know their forward frame)."""

    def __init__(self, attribute: bool = True):
        super().__init__()
        self.attribute = attribute
        self.ops: list[tuple[str, str, bool]] = []
        self.moved: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        node = torch._C._current_autograd_node()
        stage = "?"
        if self.attribute:
            if node is not None:
                tb = node.metadata.get("traceback_") or []
                frames = [m.groups() for m in _TB_LINE.finditer("".join(tb))]
            else:
                frames = [(f.filename, f.name, f.line) for f in traceback.extract_stack()]
            stage = _stage(_frames(frames))
        out = func(*args, **(kwargs or {}))
        moved = 0
        if name not in NO_KERNEL:
            tensors = [
                t for t in torch.utils._pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)
            ]
            moved = sum(_footprint(t) for t in tensors)
        self.ops.append((name, stage, node is not None))
        self.moved.append(moved)
        return out

    def kernels(self) -> list[tuple[str, str, bool]]:
        return [op for op in self.ops if op[0] not in NO_KERNEL]

    def bytes_by_stage(self) -> dict[str, tuple[float, float]]:
        """Per stage, MB read and written by the kernel ops (inputs + outputs, forward and backward): an
        upper bound of each op's memory traffic, the cost of the memory-bound ops of a GPU-bound step."""
        out: dict[str, list[float]] = {}
        for (name, stage, bwd), moved in zip(self.ops, self.moved):
            if name in NO_KERNEL:
                continue
            entry = out.setdefault(stage, [0.0, 0.0])
            entry[int(bwd)] += moved / 1e6
        return {k: (v[0], v[1]) for k, v in out.items()}


def _footprint(t: torch.Tensor) -> int:
    """Bytes a kernel reads or writes for ``t``: its elements, or its storage if smaller (a broadcast)."""
    try:
        storage = t.untyped_storage().nbytes()
    except RuntimeError:
        storage = t.numel() * t.element_size()
    return min(t.numel() * t.element_size(), storage)


def count_ops(fn, attribute: bool = True) -> OpCounter:
    """Run ``fn()`` under an :class:`OpCounter` (and anomaly mode when attributing) and return it."""
    counter = OpCounter(attribute)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anomaly = torch.autograd.detect_anomaly(check_nan=False) if attribute else _null()
        with anomaly, counter:
            fn()
    return counter


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fast_problem(model, target, config):
    """A :class:`Problem` with the GPU fast path's render settings on any device (static-shape skipping with a
    query pool for fields with an occupancy grid), its pool sized by one evaluation."""
    from inerf.pose.problem import FAST_CHUNK_MIN_POINTS, FAST_SAMPLE_CHUNK, Problem, fast_sample_budget

    if hasattr(model.coarse, "occupied") and model.config.sample_budget <= 0:
        model = model.with_config(
            sample_budget=fast_sample_budget(model.config.n_coarse),
            sample_chunk=model.config.sample_chunk or FAST_SAMPLE_CHUNK,
            chunk_min_points=model.config.chunk_min_points or FAST_CHUNK_MIN_POINTS,
        )
    return Problem(model, target, config)


def step_inputs(problem, c2w0: torch.Tensor, K: int = 1):
    """``(xi, c2w0, pix, ring, tgt)`` of one step of ``K`` hypotheses at ``c2w0`` ``[4, 4]`` (pool sized)."""
    device = problem.target_flat.device
    pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64, device=device), 0)
    xi = torch.full((1, K, 6), 1e-3, device=device)
    c2w0 = c2w0.to(device=device, dtype=torch.float32)[None, None].expand(1, K, 4, 4).contiguous()
    problem.evaluate(xi, c2w0, pix, need_grad=False)  # sizes the query pool
    return xi, c2w0, pix, None, problem.targets(pix, 0.0, K)


def table(counter: OpCounter) -> str:
    """Per-stage forward / backward kernel-op counts as a Markdown table."""
    fwd = collections.Counter(s for _, s, b in counter.kernels() if not b)
    bwd = collections.Counter(s for _, s, b in counter.kernels() if b)
    rows = ["| stage | forward | backward | total |", "|---|---:|---:|---:|"]
    for s in STAGES:
        if fwd[s] or bwd[s]:
            rows.append(f"| {s} | {fwd[s]} | {bwd[s]} | {fwd[s] + bwd[s]} |")
    nf, nb = sum(fwd.values()), sum(bwd.values())
    rows.append(f"| **all** | {nf} | {nb} | {nf + nb} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--grid-run", help="trained grid run directory (default: bench_pose_speed.py's synthetic box chair)"
    )
    ap.add_argument("--rays", type=int, default=2048)
    ap.add_argument("--scale", type=float, default=0.25, help="target image scale (op counts do not depend)")
    ap.add_argument("--solver", action="store_true", help="also count the solver's eager ops per step")
    ap.add_argument(
        "--sample-chunk",
        type=int,
        default=None,
        help="RenderConfig.sample_chunk of the step, used whatever the step's size (default: the fast "
        "path's, gated by FAST_CHUNK_MIN_POINTS; 0: test every sample)",
    )
    ap.add_argument("--list", action="store_true", help="list every kernel op with its stage")
    ap.add_argument(
        "--hypotheses", type=int, default=1, help="hypotheses of the step (K poses x --rays rays)"
    )
    ap.add_argument(
        "--bytes", action="store_true", help="also MB moved per stage (inputs + outputs of each kernel op)"
    )
    ap.add_argument(
        "--packed", action="store_true", help="composite in the query pool (RenderConfig.packed_composite)"
    )
    ap.add_argument(
        "--track",
        action="store_true",
        help="count a tracked frame's ops (the per-frame LM solve of inerf.pose.track.TRACK at --rays)",
    )
    ap.add_argument("--legacy", action="store_true", help="with --track: every op eager, a problem per frame")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from inerf.fields import grid

    grid.PACKED_QUERY_DEVICES.add("cpu")  # count the field's GPU path
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_pose_speed import grid_scene, make_target

    from inerf.pose.config import PoseConfig
    from inerf.pose.problem import frozen_fields

    device = torch.device("cpu")
    model, camera, gt = grid_scene(device, args.grid_run)
    if args.packed:
        model = model.with_config(packed_composite=True)
    if args.sample_chunk is not None:
        # 1: one level (0 would pick the default); chunk_min_points 1: no gate
        model = model.with_config(sample_chunk=args.sample_chunk or 1, chunk_min_points=1)
    camera = camera.scaled(args.scale)
    target = make_target(model, camera, gt, device)
    config = PoseConfig(n_rays=args.rays)
    with frozen_fields(*model.fields()):
        problem = fast_problem(model, target, config)
        if args.hypotheses > 1:
            problem.ray_chunk = max(problem.ray_chunk, args.rays * args.hypotheses)  # one pass, as on CUDA
        inputs = step_inputs(problem, gt, args.hypotheses)
        counter = count_ops(lambda: problem.loss_and_grad(*inputs))
    print(
        f"one fast-path step (Problem.loss_and_grad, {args.rays} rays): {len(counter.ops)} ops, "
        f"{len(counter.kernels())} that launch kernels\n"
    )
    print(table(counter))
    if args.bytes:
        moved = counter.bytes_by_stage()
        total = sum(f + b for f, b in moved.values())
        print("\n| stage | MB forward | MB backward | share |\n|---|---:|---:|---:|")
        for stage in STAGES:
            if stage in moved:
                f, b = moved[stage]
                print(f"| {stage} | {f:.0f} | {b:.0f} | {100 * (f + b) / max(total, 1e-9):.0f}% |")
        print(f"| **all** | | | {total:.0f} MB |")
    if args.list:
        for name, stage, bwd in counter.kernels():
            print(f"  {'B' if bwd else 'F'} {stage:11s} {name}")
    if args.track:
        from dataclasses import replace

        from inerf.pose.track import TRACK

        counts = track_ops(model, target, gt, replace(TRACK, n_rays=args.rays), legacy=args.legacy)
        print(f"\ntracking ({'legacy' if args.legacy else 'fast'}, {args.rays} rays):")
        for key, value in counts.items():
            print(f"  {key}: {value:.1f}")
    if args.solver:
        print(
            "\nsolver ops per step outside the captured call:", solver_ops_per_step(model, target, config, gt)
        )
    return 0


class _SolverCounter(TorchDispatchMode):
    """Kernel ops run outside ``Problem.loss_and_grad`` (and the one-off pool sizing), by innermost function."""

    def __init__(self):
        super().__init__()
        self.seen: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] not in NO_KERNEL:
            stack = traceback.extract_stack()
            names = {f.name for f in stack}
            if "loss_and_grad" not in names and "_size_pool" not in names:
                inner = [f for f in stack if "/inerf/" in f.filename]
                self.seen[inner[-1].name if inner else "?"] += 1
        return func(*args, **(kwargs or {}))


def solver_ops_per_step(model, target, config, gt) -> dict[str, float]:
    """Eager kernel ops per step of :func:`estimate_pose` outside ``Problem.loss_and_grad`` (by innermost
    function), from the difference of a 10- and a 2-step solve with the fast path's render settings."""
    from dataclasses import replace

    from inerf.pose import problem as problem_mod
    from inerf.pose.solver import estimate_pose

    init = problem_mod.Problem.__init__

    def forced(self, model, target, config):
        if hasattr(model.coarse, "occupied") and model.config.sample_budget <= 0:
            model = model.with_config(sample_budget=problem_mod.fast_sample_budget(model.config.n_coarse))
        init(self, model, target, config)

    counts = {}
    problem_mod.Problem.__init__ = forced
    try:
        for n in (2, 10):
            counter = _SolverCounter()
            with counter:
                estimate_pose(model, target, gt, replace(config, steps=n))
            counts[n] = counter.seen
    finally:
        problem_mod.Problem.__init__ = init
    keys = sorted(set(counts[2]) | set(counts[10]))
    per_step = {k: (counts[10][k] - counts[2][k]) / 8 for k in keys if counts[10][k] != counts[2][k]}
    per_step["all"] = sum(per_step.values())
    return per_step


class _Tally(TorchDispatchMode):
    """Kernel ops, split into those inside a (stand-in) CUDA graph and the eager rest, plus the launches a
    graph replay costs (its input copies, the replay, its output clones)."""

    def __init__(self):
        super().__init__()
        self.inside = 0
        self.eager = self.captured = self.replays = self.graph_launches = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] not in NO_KERNEL:
            if self.inside:
                self.captured += 1
            else:
                self.eager += 1
        return func(*args, **(kwargs or {}))

    def snapshot(self) -> dict[str, int]:
        return {
            "eager": self.eager,
            "captured": self.captured,
            "replays": self.replays,
            "launches": self.eager + self.graph_launches,
        }


class _GraphStandIn:
    """What :class:`inerf.pose.fast.GraphedFn` does on the GPU, on the CPU: ``fn`` runs eagerly, its ops
    counted as captured, and the replay's launches counted (one copy per input, the replay, one clone per
    output)."""

    def __init__(self, fn, tally: _Tally):
        self.fn, self.tally = fn, tally
        self.captures: dict = {}
        self.failed = False
        self.sources: dict = {}  # per input shape, as each graph skips the copy of an unchanged input

    def __call__(self, *inputs):
        t = self.tally
        t.inside += 1
        try:
            out = self.fn(*inputs)
        finally:
            t.inside -= 1
        from inerf.pose.fast import _key, _Sources

        key = _key(inputs)
        copies = sum(x is not None for x in inputs)
        if key in self.sources:
            copies = sum(f and x is not None for f, x in zip(self.sources[key].update(inputs), inputs))
        else:
            self.sources[key] = _Sources(inputs)
        t.replays += 1
        t.graph_launches += 1 + copies + sum(o is not None for o in out)
        return out


def track_ops(model, target, c2w, config, frames: int = 3, legacy: bool = False) -> dict[str, float]:
    """Device ops of tracking ``frames`` frames of ``target`` (the same image each time: op counts do not
    depend on it) with the per-frame solve ``config`` from ``c2w`` ``[4, 4]``, with the GPU fast path's render
    settings on the CPU, the first frame (pool sizing, set-up) excluded:

    * ``eager_per_frame``: kernel ops the host launches per frame outside the CUDA graphs, the graphs' input
      copies, replays and output clones included (``launches_per_frame`` adds nothing else);
    * ``eager_per_lm_step``: the same per LM step, from the difference of a ``steps + 4`` and a ``steps``
      solve (the extra steps unblurred);
    * ``captured_per_step``: kernel ops inside the graphs per step (what a replay runs).

    ``legacy``: the solve as before issue 16 when run on that code (a new problem per frame, nothing of
    the LM step captured): every op eager.
    """
    from dataclasses import replace

    from inerf.pose.problem import Problem, fast_sample_budget, frozen_fields
    from inerf.pose.solver import estimate_pose

    if hasattr(model.coarse, "occupied") and model.config.sample_budget <= 0:
        model = model.with_config(sample_budget=fast_sample_budget(model.config.n_coarse))

    def per_frame(cfg) -> dict[str, float]:
        tally = _Tally()
        problem = None
        if not legacy:
            problem = Problem(model, target, cfg)
            problem.graphed = _GraphStandIn(lambda *a: problem.loss_and_grad(*a, need_grad=True), tally)
            problem.graphed_loss = _GraphStandIn(problem._loss_only, tally)
            problem.graphed_gn = _GraphStandIn(problem.gauss_newton, tally)
            problem.graphed_lm = _GraphStandIn(problem.lm_update, tally)
            named: dict[str, _GraphStandIn] = {}
            problem.run = lambda name, fn, *inputs: named.setdefault(name, _GraphStandIn(fn, tally))(*inputs)
        kw = {} if legacy else {"problem": problem}
        with frozen_fields(*model.fields()):
            estimate_pose(model, target, c2w, cfg, seeds=0, **kw)  # frame 0: pool sizing, first-use caches
            before = tally.snapshot()
            with tally:
                for k in range(1, frames):
                    if problem is not None:
                        problem.retarget(target)
                    estimate_pose(model, target, c2w, cfg, seeds=k, **kw)
        after = tally.snapshot()
        return {key: (after[key] - before[key]) / (frames - 1) for key in after}

    base = per_frame(config)
    longer = per_frame(replace(config, steps=config.steps + 4))
    return {
        "eager_per_frame": base["launches"],
        "eager_per_lm_step": (longer["launches"] - base["launches"]) / 4,
        "captured_per_step": base["captured"] / config.steps,
        "replays_per_frame": base["replays"],
        "kernel_ops_per_frame": base["eager"] + base["captured"],
    }


if __name__ == "__main__":
    sys.exit(main())
