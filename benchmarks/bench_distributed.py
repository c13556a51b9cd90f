"""Scale-out throughput: training and the pose benchmark on 1 and on N GPUs (torchrun + DDP / sharded views).

One command on a machine with 2 GPUs (the whole run takes about 5-6 minutes on two H200s)::

    python benchmarks/bench_distributed.py --scene /path/to/scenes/chair --out bench/distributed

What it does, each step a plain ``inerf`` command (``torchrun --standalone --nproc_per_node N -m inerf.cli.main --
...`` for N > 1, a plain process for N = 1, so the one-GPU figure carries no DDP overhead):

1. **Base run**: the grid field trained on one GPU through its whole schedule (``--base-steps``, default 7200:
   past the last upsampling at 7000, so the grids have their final size and the occupancy grid skips empty
   space). The throughput runs start from it, so they measure the regime a run spends its time in.
2. **Training throughput** per case (grid field; pixelNeRF to add, see :data:`CASES`) and GPU count N: a copy
   of the base run is resumed (``--resume``, on any number of processes) for ``--steps`` more steps, with the
   global batch either N x ``--rays`` (*weak* scaling: each GPU keeps its batch, the usual data-parallel
   measure) or ``--rays`` (*strong*: the same batch split N ways). Steps/s comes from the run's
   ``train_log.jsonl``: steps over training time between the first log line after ``--warmup`` steps and
   the last (validation and checkpoints are off the clock); rays/s = steps/s x global batch.
3. **Pose benchmark throughput**: ``inerf benchmark pose`` on the base run (``--pose-images`` views x
   ``--pose-trials`` trials, ``--pose-steps`` steps, random sampling) on N GPUs; trials/s = trials over the
   solve's elapsed time (``meta.wall_s``: model loading excluded). The N-process table is compared with the
   one-process table (the same rows and numbers are expected on identical GPUs).

Prints a table and writes ``bench_distributed.json`` and ``bench_distributed.md`` to ``--out``. NCCL is
used as configured by the environment: the script sets no ``NCCL_*`` variable (the JSON records
``NCCL_NVLS_ENABLE`` as found). Smoke test on a CPU (gloo, numbers meaningless)::

    python benchmarks/bench_distributed.py --device cpu --tiny --out /tmp/bench_dist

Without ``--scene`` the script looks for ``shared/scenes/chair`` (in the checkout or beside it) and otherwise
writes an analytic textured-sphere scene (``--synthetic``) in the Blender layout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class TrainCase:
    """A model whose training throughput is measured: how to make its base run, how to continue it."""

    name: str
    base_argv: Callable[[argparse.Namespace, Path], list[str]]
    """``inerf`` arguments that train the base run into the given folder (on one GPU)."""
    resume_argv: Callable[[argparse.Namespace, Path, int, int], list[str]]
    """``inerf`` arguments that continue the run in the folder to the given total step count with the given
    global batch."""
    log_name: str = "train_log.jsonl"
    """The run's JSON-lines log (relative to its folder) with ``step``, ``loss`` and ``elapsed_s`` (training
    seconds) per logged step."""
    batch_of: Callable[[argparse.Namespace], int] = lambda args: args.rays
    """The batch of one GPU, in the case's unit (rays; objects for pixelNeRF)."""
    rays_per_item: Callable[[argparse.Namespace], int] = lambda args: 1
    """Rays rendered per unit of the batch."""
    step_of: Callable[[Path], int] = lambda run: json.loads((run / "config.json").read_text())["step"]
    """The step a run folder has reached."""
    base_case: str | None = None
    """Another case whose base run this one continues (trained once for both)."""


def _grid_base(args, out: Path) -> list[str]:
    return [
        *("train", "--data", str(args.scene), "--out", str(out), "--model", "grid", "--overwrite"),
        *("--max-steps", str(args.base_steps), "--rays-per-batch", str(args.rays), "--device", args.device),
        *("--val-every", "0", "--save-every", "0", "--log-every", "100", "--quiet"),
        *(args.tiny_grid if args.tiny else []),
    ]


def _grid_resume(args, run: Path, total_steps: int, batch: int) -> list[str]:
    return [
        *("train", "--out", str(run), "--resume", "--max-steps", str(total_steps)),
        *("--rays-per-batch", str(batch), "--device", args.device),
        *("--val-every", "0", "--save-every", "0", "--log-every", str(args.log_every), "--quiet"),
    ]


def _pixelnerf_common(args, run: Path) -> list[str]:
    return [
        *("pixelnerf", "train", "-D", str(args.pixelnerf_data), "-n", "bench", "-c", args.pixelnerf_conf),
        *("--checkpoints_path", str(run / "checkpoints"), "--visual_path", str(run / "visuals")),
        *("--logs_path", str(run / "logs"), "-R", str(args.pixelnerf_rays), "-V", "1"),
        *("--val-every", "0", "--quiet", *(["--gpu_id", "-1"] if args.device == "cpu" else [])),
    ]


def _pixelnerf_base(args, out: Path) -> list[str]:
    return [
        *_pixelnerf_common(args, out),
        *("--overwrite", "--max-steps", str(args.pixelnerf_base_steps), "-B", str(args.pixelnerf_objects)),
        *("--save-every", str(max(args.pixelnerf_base_steps, 1)), "--print-every", "50"),
    ]


def _pixelnerf_resume(args, run: Path, total_steps: int, batch: int) -> list[str]:
    return [
        *_pixelnerf_common(args, run),
        *("--resume", "--max-steps", str(total_steps), "-B", str(batch)),
        *("--save-every", str(10**9), "--print-every", str(args.log_every)),
    ]


def _pixelnerf_resume_nosync(args, run: Path, total_steps: int, batch: int) -> list[str]:
    return [*_pixelnerf_resume(args, run, total_steps, batch), "--no-sync-bn"]


def _pixelnerf_step(run: Path) -> int:
    import torch

    return int(torch.load(run / "checkpoints" / "bench" / "_iter", weights_only=True)["iter"])


_PIXELNERF = TrainCase(
    "pixelnerf",
    _pixelnerf_base,
    _pixelnerf_resume,
    log_name="logs/bench/train_log.jsonl",
    batch_of=lambda args: args.pixelnerf_objects,
    rays_per_item=lambda args: args.pixelnerf_rays,
    step_of=_pixelnerf_step,
)
CASES = {
    "grid": TrainCase("grid", _grid_base, _grid_resume),
    "pixelnerf": _PIXELNERF,
    "pixelnerf-nosyncbn": replace(
        _PIXELNERF, name="pixelnerf-nosyncbn", resume_argv=_pixelnerf_resume_nosync, base_case="pixelnerf"
    ),
}
"""Training cases by name. pixelNeRF (``--cases pixelnerf``, needs ``--pixelnerf-data``): a base run of
``--pixelnerf-base-steps`` on one GPU, resumed with ``-B`` = the global batch of objects (``--pixelnerf-objects``
per GPU for weak scaling, in all for strong); rays/s counts ``-R`` rays per object. ``pixelnerf-nosyncbn``:
the same resumed with ``--no-sync-bn`` (BatchNorm statistics per process)."""


# ------------------------------------------------------------------------------------------- processes


def inerf_command(n: int, argv: list[str]) -> list[str]:
    """``inerf ARGV`` in ``n`` processes: a plain process for one, torchrun (this machine) for more."""
    if n == 1:
        return [sys.executable, "-m", "inerf.cli.main", *argv]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]
    return [
        *launch,
        "-m",
        "inerf.cli.main",
        "--",
        *argv,
    ]  # `--`: torchrun would take --run for its --run-path


def run(n: int, argv: list[str], timeout: float, log: list[dict]) -> float:
    """Run ``inerf ARGV`` on ``n`` processes from this checkout; returns its wall time (s)."""
    cmd = inerf_command(n, argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
    }
    print("bench: inerf " + " ".join(argv) + f"  [{n} process(es)]", flush=True)
    t0 = time.perf_counter()
    # A session of its own: on a timeout the whole tree (torchrun and its workers) is killed, not torchrun alone.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        log.append({"processes": n, "argv": argv, "returncode": None, "wall_s": round(timeout, 2)})
        raise CommandFailed(f"the command above ran past --timeout {timeout:.0f} s") from None
    wall = time.perf_counter() - t0
    log.append({"processes": n, "argv": argv, "returncode": proc.returncode, "wall_s": round(wall, 2)})
    if proc.returncode != 0:
        sys.stderr.write(stdout[-4000:] + stderr[-8000:])
        raise CommandFailed(f"the command above failed (exit {proc.returncode})")
    return wall


class CommandFailed(RuntimeError):
    """An ``inerf`` command of the benchmark exited non-zero: its case is recorded as failed, the others run."""


def steps_per_second(log_path: Path, from_step: int) -> tuple[float, int]:
    """Steps per training second between the first logged step >= ``from_step`` and the last; and the number
    of steps timed."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    rows = [r for r in rows if "loss" in r and r["step"] >= from_step]
    if len(rows) < 2:
        raise CommandFailed(f"{log_path} has fewer than two log lines after step {from_step}")
    steps = rows[-1]["step"] - rows[0]["step"]
    return steps / max(rows[-1]["elapsed_s"] - rows[0]["elapsed_s"], 1e-9), steps


_ONE_PROCESS: dict[tuple, tuple[float, int]] = {}
"""One-process rates by (base case, batch): a case that continues another's base run and differs from it only
with several processes (``pixelnerf-nosyncbn``) reuses them instead of timing the same run again."""


def train_throughput(args, case: TrainCase, runs: Path, commands: list[dict]) -> list[dict]:
    """Rows of steps/s and rays/s of ``case`` for every scaling mode and process count (see the module
    docstring), each run resumed from one base run trained here on one GPU."""
    base = runs / f"{case.base_case or case.name}_base"
    if case.base_case is None or not base.is_dir():
        wall = run(1, case.base_argv(args, base), args.timeout, commands)
        print(f"bench: {case.name} base run, {case.step_of(base)} steps, {wall:.0f} s", flush=True)
    base_step = case.step_of(base)
    rows, done = [], {}
    for mode in args.modes:
        for n in args.gpus:
            unit = case.batch_of(args)
            batch = unit * n if mode == "weak" else unit
            if batch < n:
                continue
            if n == 1 and case.base_case and (case.base_case, batch) in _ONE_PROCESS:
                done[n, batch] = _ONE_PROCESS[case.base_case, batch]
            if (n, batch) not in done:  # one GPU: weak and strong are the same run
                folder = runs / f"{case.name}_{mode}_{n}"
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(base, folder)
                run(n, case.resume_argv(args, folder, base_step + args.steps, batch), args.timeout, commands)
                done[n, batch] = steps_per_second(folder / case.log_name, base_step + args.warmup)
                if n == 1:
                    _ONE_PROCESS[case.name, batch] = done[n, batch]
            rate, timed = done[n, batch]
            rays = rate * batch * case.rays_per_item(args)
            rows.append(
                {
                    "case": case.name,
                    "mode": mode,
                    "processes": n,
                    "global_batch": batch,
                    "per_process_batch": batch / n,
                    "steps_timed": timed,
                    "steps_per_s": rate,
                    "rays_per_s": rays,
                    # against the first process count of the same mode
                    "speedup_rays_per_s": rays / next(r["rays_per_s"] for r in rows if r["mode"] == mode)
                    if any(r["mode"] == mode for r in rows)
                    else 1.0,
                }
            )
            print(f"bench: {case.name} {mode} x{n}: {rate:.1f} steps/s, {rays:,.0f} rays/s", flush=True)
    return rows


def pose_throughput(args, out: Path, base: Path, commands: list[dict]) -> list[dict]:
    """Rows of trials/s of ``inerf benchmark pose`` on the grid base run for every process count, and
    whether each table equals the first's."""
    rows, tables = [], {}
    for n in args.gpus:
        folder = out / f"pose_{n}"
        argv = [
            *("benchmark", "pose", "--run", str(base), "--split", "test", "--images", str(args.pose_images)),
            *("--trials", str(args.pose_trials), "--steps", str(args.pose_steps), "--sampling", "random"),
            *("--rays", str(args.pose_rays), "--no-uncertainty", "--device", args.device),
            *("--out", str(folder), "--overwrite", "--quiet"),
        ]
        wall = run(n, argv, args.timeout, commands)
        res = json.loads((folder / "results.json").read_text())
        trials = len(res["trials"])
        tables[n] = (res["summary"], res["trials"])
        rows.append(
            {
                "processes": n,
                "views": len(res["meta"]["views"]),
                "trials": trials,
                "solve_s": res["meta"]["wall_s"],
                "trials_per_s": trials / res["meta"]["wall_s"],
                "command_wall_s": wall,
                "same_table_as_first": tables[n] == tables[args.gpus[0]],
                "max_trial_difference": _max_difference(tables[n][1], tables[args.gpus[0]][1]),
            }
        )
        rows[-1]["speedup"] = rows[-1]["trials_per_s"] / rows[0]["trials_per_s"]
        print(f"bench: pose x{n}: {trials} trials in {res['meta']['wall_s']:.1f} s", flush=True)
    return rows


def _max_difference(a, b) -> float | None:
    """Largest absolute difference between the numbers of two tables of the same rows (None if the rows or
    their keys differ). GPU solves are not bit-reproducible (atomic additions in scatter backward passes), so
    equal tables are not expected there; a difference at float-rounding level is."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return None
        parts = [_max_difference(a[k], b[k]) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        parts = [_max_difference(x, y) for x, y in zip(a, b)]
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        x, y = float(a), float(b)
        if math.isnan(x) or math.isnan(y):
            return 0.0 if math.isnan(x) and math.isnan(y) else math.inf
        return abs(x - y)
    else:
        return 0.0 if a == b else None
    return None if any(x is None for x in parts) else max(parts, default=0.0)


# ------------------------------------------------------------------------------------------ the scene


def find_scene() -> Path | None:
    for root in (REPO / "shared", REPO.parent / "shared"):
        if (root / "scenes" / "chair" / "transforms_train.json").is_file():
            return root / "scenes" / "chair"
    return None


def write_sphere_scene(root: Path, size: int = 200, n_train: int = 100, n_test: int = 16) -> Path:
    """An analytic scene in the Blender layout: a unit sphere coloured by its normal (every side differs) on
    a transparent background, cameras on an orbit at distance 4, NeRF-synthetic field of view."""
    import numpy as np
    from PIL import Image

    angle_x = 0.6911112070083618
    f = 0.5 * size / math.tan(0.5 * angle_x)
    u = np.arange(size) + 0.5  # pixel centres
    uu, vv = np.meshgrid(u, u, indexing="xy")
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", 1), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for k in range(n):
            az, el = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(5, 60))
            eye = 4.0 * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
            back = eye / np.linalg.norm(eye)  # OpenGL camera: it looks along -z
            right = np.cross([0.0, 0.0, 1.0], back)
            right /= np.linalg.norm(right)
            c2w = np.eye(4)
            c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(back, right), back, eye
            d = np.stack([(uu - size / 2) / f, -(vv - size / 2) / f, -np.ones_like(uu)], -1) @ c2w[:3, :3].T
            d /= np.linalg.norm(d, axis=-1, keepdims=True)
            b = d @ eye
            disc = b**2 - (eye @ eye - 1.0)
            hit = disc > 0
            normal = eye + (-b - np.sqrt(np.where(hit, disc, 0)))[..., None] * d
            rgb = np.clip(0.5 + 0.45 * normal * np.array([1.0, -1.0, 1.0]), 0, 1) * hit[..., None]
            rgba = np.concatenate([rgb, hit[..., None]], -1)
            Image.fromarray(np.round(rgba * 255).astype(np.uint8)).save(root / split / f"r_{k}.png")
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": c2w.tolist()})
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": angle_x, "frames": frames})
        )
    return root


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--scene", default=None, help="Blender-layout scene (default: shared/scenes/chair if found)"
    )
    p.add_argument(
        "--synthetic", action="store_true", help="use the analytic sphere scene even if a chair is found"
    )
    p.add_argument("--out", default="bench/distributed", help="output folder (its runs/ are overwritten)")
    p.add_argument("--gpus", default="1,2", help="process counts to measure (the first is the baseline)")
    p.add_argument("--device", default="cuda", help="cuda (one GPU per process) or cpu (gloo; smoke test)")
    p.add_argument("--cases", default="grid", help=f"training cases ({', '.join(CASES)})")
    p.add_argument("--rays", type=int, default=4096, help="rays per step per GPU (weak) / in all (strong)")
    p.add_argument(
        "--base-steps", type=int, default=7200, help="steps of the base run (grid schedule ends at 7000)"
    )
    p.add_argument("--steps", type=int, default=600, help="steps of each throughput run")
    p.add_argument("--warmup", type=int, default=100, help="steps of each throughput run left off the clock")
    p.add_argument("--log-every", type=int, default=50, help="log interval of the throughput runs")
    p.add_argument("--modes", default="weak,strong", help="weak (batch per GPU fixed), strong (global fixed)")
    p.add_argument("--pose-images", type=int, default=16, help="views of the pose benchmark")
    p.add_argument("--pose-trials", type=int, default=4, help="trials per view")
    p.add_argument("--pose-steps", type=int, default=300, help="solver steps per trial")
    p.add_argument("--pose-rays", type=int, default=2048, help="rays per pose step")
    p.add_argument("--no-pose", action="store_true", help="skip the pose benchmark")
    p.add_argument(
        "--pixelnerf-data",
        default=None,
        help="SRN-layout category root for the pixelnerf case (e.g. .../chairs)",
    )
    p.add_argument("--pixelnerf-conf", default="srn", help="pixelNeRF config of the pixelnerf case")
    p.add_argument(
        "--pixelnerf-objects", type=int, default=4, help="objects per step per GPU (weak) / in all"
    )
    p.add_argument("--pixelnerf-rays", type=int, default=128, help="rays per object per step (-R)")
    p.add_argument("--pixelnerf-base-steps", type=int, default=200, help="steps of the pixelNeRF base run")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed to one command")
    p.add_argument(
        "--budget", type=float, default=0, help="seconds for the whole run: later parts are skipped (0: none)"
    )
    p.add_argument(
        "--tiny", action="store_true", help="tiny sizes for a CPU smoke test (numbers mean nothing)"
    )
    args = p.parse_args(argv)
    args.gpus = [int(x) for x in args.gpus.split(",")]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in CASES] + [m for m in args.modes if m not in ("weak", "strong")]
    if bad:
        p.error(f"unknown case or mode: {', '.join(bad)}")
    if any(c.startswith("pixelnerf") for c in args.cases) and not args.pixelnerf_data:
        p.error(
            "--cases pixelnerf needs --pixelnerf-data (an SRN-layout category, e.g. inerf synth category)"
        )
    args.tiny_grid = []
    if args.tiny:
        args.base_steps, args.steps, args.warmup, args.log_every = 20, 20, 5, 5
        args.rays, args.pose_images, args.pose_trials, args.pose_steps, args.pose_rays = 128, 4, 2, 10, 64
        args.tiny_grid = ["--field", "n_voxels_init=8000", "--field", "n_voxels_final=27000"]
        args.pixelnerf_base_steps, args.pixelnerf_objects, args.pixelnerf_rays = 10, 2, 16
    return args


def environment(device: str) -> dict:
    import torch

    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "NCCL_NVLS_ENABLE": os.environ.get("NCCL_NVLS_ENABLE"),  # as found: the script sets no NCCL variable
    }
    if device == "cuda" and torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    return env


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    if args.device == "cuda":
        import torch

        if torch.cuda.device_count() < max(args.gpus):
            raise SystemExit(f"bench: {max(args.gpus)} GPUs asked for, {torch.cuda.device_count()} visible")
    if args.scene is None:
        found = None if args.synthetic or args.tiny else find_scene()
        args.scene = found or write_sphere_scene(
            out / "sphere_scene", **({"size": 32, "n_train": 8} if args.tiny else {})
        )
    print(f"bench: scene {args.scene}", flush=True)
    commands: list[dict] = []
    result: dict = {
        "benchmark": "distributed",
        "scene": str(Path(args.scene).resolve()),
        "settings": {k: v for k, v in vars(args).items() if k not in ("tiny_grid", "scene")},
        "environment": environment(args.device),
    }

    commands_failed: list[dict] = []
    result["training"], result["pose"], result["failed"], result["commands"] = (
        [],
        [],
        commands_failed,
        commands,
    )

    def save() -> None:  # after every part: a run stopped from outside keeps what was measured
        result["total_wall_s"] = time.perf_counter() - t_start
        (out / "bench_distributed.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "bench_distributed.md").write_text(report(result))

    # The grid case first, then its pose benchmark, then the others: the most-used figures come back first.
    order = [c for c in args.cases if c == "grid"] + (["pose"] if not args.no_pose else [])
    order += [c for c in args.cases if c != "grid"]
    if not args.no_pose and "grid" not in args.cases:
        print("bench: pose benchmark skipped: it localises with the grid case's base run", flush=True)
    for part in order:
        if args.budget and time.perf_counter() - t_start > args.budget:
            print(f"bench: --budget {args.budget:.0f} s spent, {part} skipped", flush=True)
            commands_failed.append({"part": part, "error": "skipped: --budget spent"})
            continue
        try:
            if part == "pose":
                if (runs / "grid_base" / "config.json").is_file():
                    result["pose"] = pose_throughput(args, out, runs / "grid_base", commands)
            else:
                result["training"] += train_throughput(args, CASES[part], runs, commands)
        except CommandFailed as exc:
            print(f"bench: {part}: {exc}", flush=True)
            commands_failed.append({"part": part, "error": str(exc)})
        save()

    save()
    print(report(result), end="")
    print(f"bench: wrote {out / 'bench_distributed.json'} and .md ({result['total_wall_s']:.0f} s in all)")
    return 0


def report(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"Device: {', '.join(env.get('gpus', [env['device']]))}; torch {env['torch']}"
        + (f", NCCL {env['nccl']}" if "nccl" in env else "")
        + f"; NCCL_NVLS_ENABLE={env['NCCL_NVLS_ENABLE']}.",
        "",
        "| training | scaling | processes | global batch | steps/s | rays/s | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["training"]:
        lines.append(
            f"| {r['case']} | {r['mode']} | {r['processes']} | {r['global_batch']} | {r['steps_per_s']:.1f} | "
            f"{r['rays_per_s']:,.0f} | {r['speedup_rays_per_s']:.2f}x |"
        )
    if result["pose"]:
        lines += [
            "",
            "| pose benchmark | views x trials | solve time | trials/s | speed-up | same table | max difference |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in result["pose"]:
            lines.append(
                f"| {r['processes']} process(es) | {r['views']} x {r['trials'] // max(r['views'], 1)} | "
                f"{r['solve_s']:.1f} s | {r['trials_per_s']:.2f} | {r['speedup']:.2f}x | {r['same_table_as_first']} | {r.get('max_trial_difference')} |"
            )
    for r in result.get("failed", []):
        lines += ["", f"Not measured: {r['part']}: {r['error']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
