"""Pose-solve speed on a GPU: the iNeRF step through pixelNeRF (``srn``), the grid field and a vanilla NeRF.

For each model it times, with CUDA events after a warm-up (median of several repeats):

* the pose step at 1024 / 2048 / 4096 rays: ``(T(n + m steps) - T(m steps)) / n`` of whole solves, so set-up
  and the final scoring cancel out;
* a 300-step solve (wall time of ``estimate_pose``, one hypothesis);
* 64 hypotheses x 300 steps (one batched solve, Parallel iNeRF's setting);
* for pixelNeRF, a full 128 x 128 render (both passes, chunked as ``inerf pixelnerf video``);

and, from ``torch.profiler`` over a few steps, the GPU-busy time per step (sum of kernel durations), kernels
and host synchronisations per step, plus the peak memory of the 64-hypothesis solve. ``--paths reference
fast`` times the solver paths in the same run (the ratio is the speed-up; absolute times on shared machines
vary from run to run). Prints a Markdown table and writes everything to ``--out`` (JSON).

Models: pixelNeRF with the published ``srn`` layout and the deterministic weights of the checkpoint fixture
(``tests/pixelnerf/fixtures/make_checkpoint.py``; speed does not depend on the weights), encoded on one
128 x 128 source view; the grid field of a trained run (``--grid-run``) or, by default, the "box chair" of
``bench_grid_pose_step.py`` (a trained-size grid whose density is the shared chair's boxes); a NeRF MLP
(``--nerf-run`` or randomly initialised, 64 + 128 samples). Targets are renders of the model itself at a
ground-truth pose; solves start 10 degrees / 0.05 away.

    python benchmarks/bench_pose_speed.py --out $OUT/speed.json
    python benchmarks/bench_pose_speed.py --models grid --grid-run runs/chair_grid --paths reference fast
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from inerf.fields.grid import FUSED_FACTORS_MIN_POINTS as VM_MIN_POINTS
from inerf.geometry import se3
from inerf.geometry.cameras import Cameras, look_at
from inerf.pose.config import PoseConfig
from inerf.pose.solver import PoseTarget, estimate_pose
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig

START_ROT_DEG, START_TRANS = 10.0, 0.05


def cuda_time(fn, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` measured with CUDA events (after ``warmup`` untimed calls); a host clock
    without CUDA (smoke runs on a CPU)."""
    for _ in range(warmup):
        fn()
    out = []
    if not torch.cuda.is_available():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(end) / 1e3)
    return out


def perturbed(c2w: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``c2w`` turned by exactly START_ROT_DEG about a random axis through the world origin (the object stays
    in view) and shifted by START_TRANS in a random direction (:mod:`inerf.pose.perturb`)."""
    from inerf.pose.perturb import Perturbation, start_pose

    return start_pose(c2w, Perturbation(START_ROT_DEG, START_TRANS, pivot="origin"), seed)


# ----------------------------------------------------------------------------------------------- models
def pixelnerf_scene(device) -> tuple[Model, Cameras, torch.Tensor]:
    """``(model, target camera, gt c2w)``: the srn pixelNeRF encoded on one source view (the fixture's),
    rendered as ``inerf pixelnerf pose`` renders it (published sampler, deterministic)."""
    from inerf.pixelnerf import load_pixelnerf
    from inerf.pixelnerf.config import load_config
    from inerf.pixelnerf.pose import canonical_source_c2w, encode_source
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config

    fixtures = ROOT / "tests" / "pixelnerf" / "fixtures"
    spec = importlib.util.spec_from_file_location("make_checkpoint", fixtures / "make_checkpoint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "pixel_nerf_latest"
        mod.main(str(fixtures / "keys_srn.json"), str(ckpt))
        net = load_pixelnerf(ckpt, "srn", device=device)
    case = torch.load(fixtures / "case_srn.pt", map_location="cpu", weights_only=True)
    source = (case["images"][0].permute(1, 2, 0) * 0.5 + 0.5).clamp(0, 1)  # [-1, 1] CHW -> [0, 1] HWC
    encode_source(net, source, 131.25, 1.3)
    r = load_config("srn").renderer
    config = render_config(
        r, 0.8, 1.8, deterministic=True, chunk=max(1, r.eval_batch_size // (r.n_coarse + r.n_fine))
    )
    camera = Cameras.from_intrinsics(131.25, 131.25, 64.5, 64.5, 128, 128)
    gt = se3.se3_exp(
        torch.tensor([0.0, 0.0, 0.0, 0.0, 0.35, 0.0], dtype=torch.float64)
    ) @ canonical_source_c2w(1.3)
    return pixelnerf_model(net, config), camera, gt


def grid_scene(device, run: str | None) -> tuple[Model, Cameras, torch.Tensor]:
    """The grid field of ``run`` (its first test camera) or the box chair (400 x 400, the chair's camera)."""
    if run:
        from inerf.train.checkpoint import load_run

        loaded = load_run(run, device)
        views = loaded.dataset.load("test", run_dir=loaded.run_dir, max_views=1)
        return loaded.model, views.cameras[0].with_c2w(torch.eye(4)), views.cameras.c2w[0].double()
    from bench_grid_pose_step import FAR, FOCAL, NEAR, H, W, box_chair_field

    torch.manual_seed(0)
    field = box_chair_field().to(device).eval().requires_grad_(False)
    config = RenderConfig(n_coarse=field.samples_per_ray(NEAR, FAR), n_fine=0, near=NEAR, far=FAR)
    elev, azim = math.radians(30.0), math.radians(-60.0)
    eye = 4.5 * torch.tensor(
        [math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)]
    )
    return (
        Model(field, None, config),
        Cameras.from_intrinsics(FOCAL, FOCAL, W / 2, H / 2, H, W),
        look_at(eye.double(), torch.zeros(3, dtype=torch.float64)),
    )


def nerf_scene(device, run: str | None) -> tuple[Model, Cameras, torch.Tensor]:
    """A NeRF MLP (trained run or random weights, 64 + 128 samples) seen by a 200 x 200 camera."""
    if run:
        return grid_scene(device, run)

    from inerf.fields.nerf import NeRFConfig, NeRFField

    torch.manual_seed(0)
    coarse, fine = (NeRFField(NeRFConfig()).to(device).eval().requires_grad_(False) for _ in range(2))
    config = RenderConfig(n_coarse=64, n_fine=128, near=2.0, far=6.0)
    f = 0.5 * 200 / math.tan(0.5 * 0.6911112070083618)
    eye = torch.tensor([2.5, -3.0, 2.0], dtype=torch.float64)
    return (
        Model(coarse, fine, config),
        Cameras.from_intrinsics(f, f, 100, 100, 200, 200),
        look_at(eye, torch.zeros(3, dtype=torch.float64)),
    )


# ----------------------------------------------------------------------------------------------- timing
def make_target(model: Model, camera: Cameras, gt: torch.Tensor, device) -> PoseTarget:
    with torch.no_grad():
        image = model.render_image(camera.with_c2w(gt.float()).to(device)).rgb
    return PoseTarget(image=image, camera=camera.to(device))


def solve(model, target, init, config: PoseConfig, seed: int = 0):
    return estimate_pose(model, target, init, config, seeds=seed)


def step_time(model, target, init, config: PoseConfig) -> float:
    """Seconds per step from the difference of a long and a short solve (set-up and scoring cancel)."""
    # 50 steps apart, medians of 5: a 30-step difference of medians of 3 scattered by up to 1 ms per step
    # on the grid field's sub-millisecond steps (H200, 2026-11-30).
    short, long = 10, 60
    t_short = statistics.median(
        cuda_time(lambda: solve(model, target, init, replace(config, steps=short)), 5)
    )
    t_long = statistics.median(cuda_time(lambda: solve(model, target, init, replace(config, steps=long)), 5))
    return (t_long - t_short) / (long - short)


def profile_steps(model, target, init, config: PoseConfig, steps: int = 20) -> dict:
    """GPU-busy ms, kernel launches and host syncs per step from ``torch.profiler`` (difference of two solve
    lengths, so the set-up's kernels cancel)."""
    from torch.profiler import ProfilerActivity, profile

    counts = {}
    for n in (5, 5 + steps):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            solve(model, target, init, replace(config, steps=n))
            torch.cuda.synchronize()
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        # A device-to-host copy (.item(), .cpu(), a data-dependent shape) shows as a synchronisation call.
        syncs = [e for e in prof.events() if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize")]
        counts[n] = (sum(e.device_time_total for e in kernels) / 1e3, len(kernels), len(syncs))
    a, b = counts[5], counts[5 + steps]
    return {
        "gpu_busy_ms_per_step": (b[0] - a[0]) / steps,
        "kernels_per_step": (b[1] - a[1]) / steps,
        "host_syncs_per_step": (b[2] - a[2]) / steps,
    }


def explain_step(model, target, init, config: PoseConfig, steps: int = 10) -> str:
    """The GPU kernels of a solve, summed by name (ms per step, top by time; graph replays included), and
    the Python lines that synchronise with the host."""
    from torch.profiler import ProfilerActivity, profile

    solve(model, target, init, replace(config, steps=3))  # warm-up (and capture)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], with_stack=True) as prof:
        solve(model, target, init, replace(config, steps=steps))
        torch.cuda.synchronize()
    by_name: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type.name == "CUDA":
            entry = by_name.setdefault(e.name[:110], [0.0, 0])
            entry[0] += e.device_time_total / 1e3
            entry[1] += 1
    total = sum(v[0] for v in by_name.values())
    lines = [f"GPU busy {total / steps:.3f} ms per step over {steps} steps (set-up included)"]
    lines.append(f"{'ms/step':>8} {'share':>6} {'calls/step':>10}  kernel")
    for name, (ms, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[:40]:
        lines.append(f"{ms / steps:8.3f} {100 * ms / max(total, 1e-9):5.1f}% {n / steps:10.1f}  {name}")
    sync_sites: dict[str, int] = {}
    for e in prof.events():
        if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize"):
            frames = [f for f in (e.stack or []) if "inerf" in f or "bench" in f]
            key = " <- ".join(frames[:3]) or "(no python frame)"
            sync_sites[key] = sync_sites.get(key, 0) + 1
    lines.append(f"host syncs over {steps} steps, by call site:")
    lines += [f"{n:5d}  {k}" for k, n in sorted(sync_sites.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def attribute_step(model, target, init, config: PoseConfig, steps: int = 3, top: int = 30) -> str:
    """GPU time of a solve's steps by the source line that ran it: the fast path run eagerly (no CUDA graphs)
    under ``torch.profiler`` and a ``TorchDispatchMode`` that wraps every tensor operation in a
    ``record_function`` range named after its innermost ``inerf`` frame (``file:line function``) and the
    operation. Kernel time is summed per range (the backward pass runs from one line, so its operations are
    told apart by name). On a CPU, operator time stands in for kernel time."""
    import traceback

    from torch.profiler import ProfilerActivity, profile, record_function
    from torch.utils._python_dispatch import TorchDispatchMode

    from inerf.pose import fast

    cuda = target.image.device.type == "cuda"

    def where() -> str:
        for frame in reversed(traceback.extract_stack(limit=40)):
            path = frame.filename.replace("\\", "/")
            if "/inerf/" in path:
                return f"{path.split('/inerf/')[-1]}:{frame.lineno} {frame.name}"
        return "(outside inerf)"

    class Label(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            with record_function(f"@@{func.overloadpacket.__name__} @ {where()}"):
                return func(*args, **(kwargs or {}))

    call = fast.GraphedFn.__call__
    fast.GraphedFn.__call__ = lambda self, *inputs: self.fn(*inputs)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        solve(model, target, init, replace(config, steps=2))  # warm-up
        with profile(activities=activities) as prof, Label():
            solve(model, target, init, replace(config, steps=steps))
            if cuda:
                torch.cuda.synchronize()
    finally:
        fast.GraphedFn.__call__ = call
    by_line: dict[str, float] = {}
    by_func: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for e in prof.key_averages():
        if not e.key.startswith("@@"):
            continue
        ms = (e.device_time_total if cuda else e.cpu_time_total) / 1e3
        line = e.key[2:].split(" @ ", 1)[1]
        by_op[e.key[2:]] = by_op.get(e.key[2:], 0.0) + ms
        by_line[line] = by_line.get(line, 0.0) + ms
        func = line.split(":")[0] + " " + line.split(" ")[-1]
        by_func[func] = by_func.get(func, 0.0) + ms
    total = sum(by_line.values())
    what = "GPU" if cuda else "CPU"
    out = [f"{what} time {total / steps:.3f} ms per step (eager, {steps} steps, set-up included)"]
    for title, table, n in (
        ("function", by_func, 15),
        ("line", by_line, top),
        ("operation and line", by_op, top),
    ):
        out.append(f"by {title}:")
        for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:n]:
            out.append(f"{v / steps:8.3f} {100 * v / max(total, 1e-9):5.1f}%  {k}")
    return "\n".join(out)


def graph_matches_eager(model, target, init, config: PoseConfig) -> dict:
    """The captured step against the same step run eagerly (same fast-path model): max differences."""
    from inerf.pose.problem import Problem, field_precision, frozen_fields

    device = target.image.device
    with frozen_fields(*model.fields()), field_precision(torch.bfloat16, *model.fields()):
        problem = Problem(model, target, replace(config, fast=True))
        c2w0 = init.to(device=device, dtype=torch.float32)[None, None]
        xi = torch.full((1, 1, 6), 1e-3, device=device)
        pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64, device=device), 0)
        loss_g, grad_g = problem.evaluate(xi, c2w0, pix, need_grad=True)  # captures, then replays
        loss_g, grad_g = problem.evaluate(xi, c2w0, pix, need_grad=True)
        loss_e, grad_e = problem.loss_and_grad(xi, c2w0, pix, None, problem.targets(pix, 0.0, 1))
    return {
        "graph_loss_rel_diff": float((loss_g - loss_e).abs().max() / loss_e.abs().max().clamp_min(1e-12)),
        "graph_grad_rel_diff": float((grad_g - grad_e).abs().max() / grad_e.abs().max().clamp_min(1e-12)),
        "graph_captured": bool(problem.graphed is not None and not problem.graphed.failed),
    }


def capture_diagnosis(model, target, init, config: PoseConfig) -> dict:
    """Why a step is not captured: the step run eagerly under ``torch.cuda.set_sync_debug_mode("error")``
    (raises at the first synchronising call, with its Python frames), then capture attempts with variants
    (relaxed capture mode; float32 network; forward only). Each entry is ``"ok"`` or the error's last lines."""
    import traceback

    from inerf.pose import fast
    from inerf.pose.problem import Problem, field_precision, frozen_fields

    device = target.image.device
    result = {}

    def attempt(name, fn):
        try:
            fn()
            result[name] = "ok"
        except Exception:  # noqa: BLE001 - a diagnosis records every failure
            frames = traceback.format_exc().strip().splitlines()
            result[name] = "\n".join([f for f in frames if "inerf" in f or "Error" in f][-8:])
        torch.cuda.synchronize()

    def setup():  # under the caller's field_precision
        problem = Problem(model, target, replace(config, fast=True))
        c2w0 = init.to(device=device, dtype=torch.float32)[None, None]
        xi = torch.full((1, 1, 6), 1e-3, device=device)
        pix = problem.sampler.sample(torch.zeros(1, dtype=torch.int64, device=device), 0)
        problem.evaluate(xi, c2w0, pix, need_grad=False)  # sizes the pool (a sync, before any capture)
        return problem, [xi, c2w0, pix, None, problem.targets(pix, 0.0, 1)]

    def eager_sync_check():
        problem, inputs = setup()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            problem.loss_and_grad(*inputs, need_grad=True)
        finally:
            torch.cuda.set_sync_debug_mode(0)

    def capture(need_grad=True, mode="global"):
        problem, inputs = setup()
        fast.CAPTURE_ERROR_MODE = mode
        try:
            fast._Capture(lambda *a: problem.loss_and_grad(*a, need_grad=need_grad), inputs)
        finally:
            fast.CAPTURE_ERROR_MODE = "global"

    with frozen_fields(*model.fields()):
        for dtype, tag in ((torch.bfloat16, "bf16"), (None, "fp32")):
            with field_precision(dtype, *model.fields()):
                attempt(f"eager_sync_debug_{tag}", eager_sync_check)
                attempt(f"capture_{tag}", capture)
                attempt(f"capture_relaxed_{tag}", lambda: capture(mode="relaxed"))
                attempt(f"capture_forward_only_{tag}", lambda: capture(need_grad=False))
    return result


@contextlib.contextmanager
def pool_disabled(off: bool):
    """With ``off``, solves query every slot of the per-ray sample budget instead of a packed pool."""
    from inerf.pose.problem import Problem

    init = Problem.__init__

    def no_pool(self, *a, **k):
        init(self, *a, **k)
        self.pooled = False

    if off:
        Problem.__init__ = no_pool
    try:
        yield
    finally:
        Problem.__init__ = init


def pixelnerf_field_check(model, device) -> dict:
    """The fast path's pixelNeRF network (bf16, :mod:`inerf.pixelnerf.fast_mlp`) against float32 on random
    points in the object's box: largest relative differences of outputs and of gradients w.r.t. the points."""
    from inerf.pose.problem import field_precision

    g = torch.Generator(device="cpu").manual_seed(0)
    xyz = (torch.rand(1, 20000, 3, generator=g) * 1.6 - 0.8).to(device)
    dirs = torch.nn.functional.normalize(torch.randn(1, 20000, 3, generator=g), dim=-1).to(device)
    w = torch.randn(1, 20000, 4, generator=g).to(device)
    res = {}
    for fine in (False, True):
        field = model.fine if fine else model.coarse
        outs = []
        for dtype in (None, torch.bfloat16):
            x = xyz.clone().requires_grad_(True)
            with field_precision(dtype, field):
                rgb, sigma = field(x, dirs)
            out = torch.cat([rgb, sigma[..., None]], -1)
            (gx,) = torch.autograd.grad((out * w).sum(), x)
            outs.append((out.detach(), gx))
        (o32, g32), (o16, g16) = outs
        tag = "fine" if fine else "coarse"
        res[f"field_{tag}_out_rel"] = float((o16 - o32).abs().max() / o32.abs().max())
        res[f"field_{tag}_grad_rel_norm"] = float((g16 - g32).norm() / g32.norm())
    return res


def graph_time(fn, calls: int = 10, repeats: int = 5) -> float:
    """GPU seconds per call of ``fn``: ``calls`` calls captured in one CUDA graph and replayed, so a slow
    launch on the host (Triton's Python launcher, building TMA descriptors) does not count, as in the pose
    step, which is replayed from a graph."""
    fn()  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return statistics.median(cuda_time(graph.replay, repeats, 1)) / calls


def tune_matmul(rows: int = 98304, width: int = 512) -> dict:
    """Time each candidate configuration of the fused-epilogue product (``inerf.pixelnerf._triton_matmul``)
    on the pose step's shapes, every epilogue, against cuBLAS followed by the elementwise kernel it replaces
    (GPU time, :func:`graph_time`); set the fastest as ``CONFIG``. Returns the times (ms) per configuration."""
    from inerf.pixelnerf import _triton_matmul as T
    from inerf.pixelnerf import fast_mlp as M

    bf = torch.bfloat16
    a = torch.randn(rows, width, device="cuda", dtype=bf)
    w = torch.randn(width, width, device="cuda", dtype=bf) / width**0.5
    h = torch.randn(rows, 3 * width, device="cuda", dtype=bf)[:, :width]
    r = torch.relu(torch.randn(rows, width, device="cuda", dtype=bf))
    into = torch.empty(rows, 3 * width, device="cuda", dtype=bf)[:, width : 2 * width]
    times = {"cublas_mm": round(1e3 * graph_time(lambda: torch.mm(a, w.t())), 4)}
    times["cublas_then_elementwise"] = [
        round(1e3 * graph_time(fn), 4)
        for fn in (
            lambda: M.add_relu(h, torch.mm(a, w.t()), h),
            lambda: M.relu_grad(torch.mm(a, w), r),
            lambda: M.add_masked(h, torch.mm(a, w), r, into),
        )
    ]
    best = None
    for cfg in T.CANDIDATES:
        name = "BM{BM}_BN{BN}_BK{BK}_w{num_warps}_s{num_stages}".format(**cfg) + "".join(
            f"_{k.lower()}" for k in ("TMA", "PERSISTENT", "FLATTEN") if cfg.get(k)
        )
        try:
            t = [
                graph_time(fn)
                for fn in (
                    lambda cfg=cfg: T.mm(a, w, T.EPI_ADD_RELU, h=h, z=h, config=cfg),
                    lambda cfg=cfg: T.mm(a, w, T.EPI_MASK, aux=r, config=cfg),
                    lambda cfg=cfg: T.mm(a, w, T.EPI_ADD_MASKED, h=h, aux=r, out=into, config=cfg),
                )
            ]
        except Exception as exc:  # noqa: BLE001 - a configuration that does not compile is skipped
            times[name] = repr(exc)[:120]
            continue
        times[name] = [round(1e3 * x, 4) for x in t]
        if best is None or sum(t) < best[0]:
            best = (sum(t), cfg)
    if best is not None:
        T.CONFIG = dict(best[1])
    times["chosen"] = dict(T.CONFIG)
    print(f"tune_matmul: {json.dumps(times)}", flush=True)
    return times


def bench_model(name: str, model, camera, gt, device, args, path: str) -> dict:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = _bench_variant(name, model, camera, gt, device, args, path)
    failures = [str(w.message).splitlines()[0][:200] for w in caught if "capture" in str(w.message)]
    row["capture_failures"] = len(failures)
    for message in sorted(set(failures)):
        print(f"[{name}/{path}] {message}", flush=True)
    return row


def _bench_variant(name: str, model, camera, gt, device, args, path: str) -> dict:
    from inerf.pixelnerf import fast_mlp

    fast_mlp.ENABLED = path != "fast-autocast"
    fast_mlp.FOLD_LATENT = path != "fast-nofold"
    fast_mlp.FUSED_MATMUL = path == "fast-matmul"
    from inerf.fields import grid
    from inerf.rays import occupied

    occupied.FUSED = path != "fast-torchocc"
    grid.FUSED_FACTORS = path != "fast-novmkernel"
    # fast-vmkernel: the factor kernel for every query (the default takes it for large ones only)
    grid.FUSED_FACTORS_MIN_POINTS = 0 if path in ("fast-vmkernel", "fast-all") else VM_MIN_POINTS
    if path in (
        "fast-deterministic",
        "fast-all",
    ):  # the pool's ray gradients as run sums, no atomic additions
        model = model.with_config(deterministic=True)
    from inerf.pose import problem

    # compositing in the pool (the default) or in the [R, budget] layout (fast-slots)
    problem.FAST_PACKED_COMPOSITE = path != "fast-slots"
    if path == "fast-onelevel":  # the ablation of the two-level occupancy test (RenderConfig.sample_chunk)
        model = model.with_config(sample_chunk=1)
    with pool_disabled(path == "fast-nopool"):
        return _bench_model(name, model, camera, gt, device, args, path)


def _bench_model(name: str, model, camera, gt, device, args, path: str) -> dict:
    camera = camera.scaled(args.scale) if args.scale != 1 else camera
    target = make_target(model, camera, gt, device)
    init = perturbed(gt)
    base = PoseConfig(n_rays=1024, progress_every=10**9)
    base = replace(base, fast=path != "reference")
    row: dict = {"model": name, "path": path}
    if path != "reference" and device.type == "cuda":
        if name == "pixelnerf":
            row.update(pixelnerf_field_check(model, device))
        row.update(graph_matches_eager(model, target, init, base))
        if not row["graph_captured"]:
            row["capture_diagnosis"] = capture_diagnosis(model, target, init, base)
            for k, v in row["capture_diagnosis"].items():
                print(f"[{name}] capture diagnosis {k}: {v}", flush=True)
    for rays in args.rays:
        row[f"step_ms@{rays}"] = 1e3 * step_time(model, target, init, replace(base, n_rays=rays))
    res = None

    def one():
        nonlocal res
        res = solve(model, target, init, replace(base, steps=args.steps))

    row[f"solve{args.steps}_s"] = statistics.median(cuda_time(one, 2))
    row["solve_rot_err_deg"] = float(se3.rotation_error_deg(res.c2w[0], gt))
    row["solve_trans_err"] = float(se3.translation_error(res.c2w[0], gt))
    # Run-to-run reproducibility: the same solve again (same start, same seed), largest pose difference.
    first = res.c2w.clone()
    one()
    row["solve_repeat_max_diff"] = float((res.c2w - first).abs().max())
    if args.hypotheses and name in args.hypotheses_models:
        g = torch.Generator().manual_seed(1)
        starts = torch.stack(
            [perturbed(gt, int(s)) for s in torch.randint(0, 10**6, (args.hypotheses,), generator=g)]
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        row[f"hyp{args.hypotheses}x{args.steps}_s"] = statistics.median(
            cuda_time(lambda: solve(model, target, starts, replace(base, steps=args.steps)), 1, warmup=1)
        )
        if device.type == "cuda":
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    if device.type == "cuda":
        row.update(profile_steps(model, target, init, base))
        if args.explain:
            try:
                print(
                    f"== {name}/{path}: a 10-step solve at 1024 rays ==\n"
                    + explain_step(model, target, init, base)
                )
                if args.hypotheses and name in args.hypotheses_models:
                    print(
                        f"== {name}/{path}: {args.hypotheses} hypotheses, 10 steps ==\n"
                        + explain_step(model, target, starts, base)
                    )
                if args.attribute:
                    init_a = starts if args.hypotheses and name in args.hypotheses_models else init
                    print(f"== {name}/{path}: attribution ==\n" + attribute_step(model, target, init_a, base))
            except Exception as exc:  # noqa: BLE001
                print(f"[{name}] explain failed: {exc!r}")
    if name == "pixelnerf":
        from inerf.pose.problem import field_precision

        cam = camera.with_c2w(gt.float()).to(device)
        dtype = torch.bfloat16 if path != "reference" else None
        with torch.no_grad(), field_precision(dtype, *model.fields()):
            row["render128_ms"] = 1e3 * statistics.median(cuda_time(lambda: model.render_image(cam), 5))
            # The same image in one pass of all 16384 rays (no chunk loop: fewer, larger kernels).
            whole = model.with_config(chunk=cam.width * cam.height)
            row["render128_onepass_ms"] = 1e3 * statistics.median(
                cuda_time(lambda: whole.render_image(cam), 5)
            )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--models", nargs="+", default=["pixelnerf", "grid", "nerf"], choices=["pixelnerf", "grid", "nerf"]
    )
    ap.add_argument(
        "--paths",
        nargs="+",
        default=["reference"],
        choices=[
            "reference",
            "fast",
            "fast-nopool",
            "fast-onelevel",
            "fast-autocast",
            "fast-nofold",
            "fast-torchocc",
            "fast-matmul",
            "fast-deterministic",
            "fast-vmkernel",
            "fast-novmkernel",
            "fast-packed",
            "fast-slots",
            "fast-all",
        ],
        help="reference: eager (--no-fast); fast: CUDA graphs and pooled field queries (the default on "
        "CUDA); fast-nopool: fast with every slot of the per-ray sample budget queried (the ablation); "
        "fast-onelevel: fast with every sample tested for occupancy (no chunk test, sample_chunk=1); "
        "fast-autocast: fast with pixelNeRF's ResnetFC under autocast instead of inerf.pixelnerf.fast_mlp; "
        "fast-nofold: fast_mlp with lin_z applied per point instead of folded into the feature map; "
        "fast-torchocc: occupancy compaction with torch ops instead of the one Triton kernel; "
        "fast-matmul: pixelNeRF's products with fused epilogues in Triton (off by default: slower than cuBLAS "
        "with separate elementwise kernels on an H200); fast-deterministic: the pool's ray gradients without "
        "atomic additions (RenderConfig.deterministic); fast-vmkernel: the grid field's factors in one Triton "
        "kernel for every query (the default: for large ones, inerf.fields.grid.FUSED_FACTORS_MIN_POINTS); "
        "fast-novmkernel: never; fast-packed: compositing in the query pool "
        "(RenderConfig.packed_composite, now the default: the same as fast); fast-slots: compositing in the "
        "[rays, budget] layout instead; fast-all: deterministic, vmkernel and packed together",
    )
    ap.add_argument("--rays", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--hypotheses", type=int, default=64, help="hypotheses of the batched solve (0: skip)")
    ap.add_argument(
        "--hypotheses-models", nargs="+", default=["grid"], help="models timed with --hypotheses (costly)"
    )
    ap.add_argument("--grid-run", help="trained grid run directory (default: the synthetic box chair)")
    ap.add_argument("--nerf-run", help="trained NeRF run directory (default: random weights)")
    ap.add_argument("--steps", type=int, default=300, help="steps of the timed solves")
    ap.add_argument(
        "--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke run of the script)"
    )
    ap.add_argument("--scale", type=float, default=1.0, help="scale the target images (smoke runs)")
    ap.add_argument("--explain", action="store_true", help="print the top kernels and the sync call sites")
    ap.add_argument(
        "--attribute",
        action="store_true",
        help="with --explain: GPU time per source line (the step run eagerly under the profiler)",
    )
    ap.add_argument(
        "--tune-matmul",
        action="store_true",
        help="first time the fused-epilogue product's candidate tile sizes and use the fastest",
    )
    ap.add_argument("--out", help="JSON file for all figures")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_pose_speed: no CUDA device (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    builders = {
        "pixelnerf": lambda: pixelnerf_scene(device),
        "grid": lambda: grid_scene(device, args.grid_run),
        "nerf": lambda: nerf_scene(device, args.nerf_run),
    }
    rows = []
    tuned = tune_matmul() if args.tune_matmul and device.type == "cuda" else None
    for name in args.models:
        try:  # one model's failure must not lose the others' figures
            model, camera, gt = builders[name]()
            for path in args.paths:
                t0 = time.perf_counter()
                rows.append(bench_model(name, model, camera, gt, device, args, path))
                print(f"[{name}/{path}] {time.perf_counter() - t0:.0f} s: {json.dumps(rows[-1])}", flush=True)
        except Exception as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            print(f"[{name}] failed: {exc!r}", flush=True)
    if not rows:
        return 1
    meta = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "args": vars(args),
        "tune_matmul": tuned,
    }
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    keys = [k for k in rows[0] if k not in ("model", "path")]
    for r in rows[1:]:
        keys += [k for k in r if k not in keys and k not in ("model", "path")]
    print(f"\n{meta['device']}, torch {meta['torch']}, {meta['date']}\n")
    print("| model | path | " + " | ".join(keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    for r in rows:
        cells = [f"{r[k]:.3g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        print(f"| {r['model']} | {r['path']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
