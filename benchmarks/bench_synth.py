"""Benchmarks of ``inerf synth`` (issue 3): wall-clock time of the CLI, end to end (Python start-up, asset
extraction into an empty cache, rendering, PNG writing), for

* a NeRF-synthetic scene, 100/20/40 views at 400 x 400 (target: <= 60 s on 2 cores), and
* an SRN-style category, 40 instances x 50 views at 128 x 128 (target: <= 60 s on 2 cores),

each with a pybullet_data asset and a Sweet Home 3D one (skipped if that package is missing). The pose
exactness of each generated dataset is checked afterwards (not timed) with :mod:`inerf.synth.verify`.

    python benchmarks/bench_synth.py [--write benchmarks/RESULTS_synth.md] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds (user + system) of the command and all its processes.

    The CPU time does not depend on what else the machine is doing; on an idle 2-core machine the wall
    time is about CPU time / 2 plus start-up."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", type=Path, default=None, help="write the results table (markdown) here")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from inerf.errors import InerfError
    from inerf.synth.sweethome3d import sweethome3d_dir
    from inerf.synth.verify import check_scene, check_srn_split, summarise

    try:
        sweethome3d_dir()
        have_sh3d = True
    except InerfError:
        have_sh3d = False

    inerf = [sys.executable, "-m", "inerf.cli.main"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "INERF_CACHE_DIR": str(tmp / "cache")}  # cold cache: extraction is timed too
        cases = [
            ("scene", "duck", ["--asset", "duck"]),
            ("category", "random-urdfs blob", ["--source", "random-urdfs", "--instances", "40"]),
        ]
        if have_sh3d:
            cases.insert(1, ("scene", "Sweet Home 3D oakChair", ["--asset", "oakChair"]))
            cases.append(
                (
                    "category",
                    "Sweet Home 3D chair",
                    ["--source", "sweethome3d", "--category", "chair", "--instances", "40"],
                )
            )
        for kind, label, extra in cases:
            out = tmp / f"{kind}-{len(rows)}"
            if kind == "scene":
                sizes = ["--size", "400", "--train", "100", "--val", "20", "--test", "40"]
            else:
                sizes = ["--views", "50", "--size", "128"]
            cmd = [
                *inerf,
                "synth",
                kind,
                *extra,
                "--out",
                str(out),
                *sizes,
                "--workers",
                str(args.workers),
                "--quiet",
            ]
            load_before = _load()
            seconds, cpu_seconds = _run(cmd, env)
            if kind == "scene":
                s = summarise(check_scene(out, views_per_split=10))
            else:
                s = summarise(check_srn_split(out.with_name(out.name + "_test"), views_per_instance=5))
            shown = ["inerf", *cmd[len(inerf) :]]
            shown[shown.index("--out") + 1] = "OUT"
            rows.append(
                {
                    "what": f"{kind}: {label}",
                    "seconds": seconds,
                    "cpu": cpu_seconds,
                    "command": shlex.join(shown),
                    "load": load_before,
                    "exact": s,
                }
            )
            print(
                f"{kind:8s} {label:28s} {seconds:6.1f} s (CPU {cpu_seconds:6.1f} s, "
                f"load before {load_before})   bbox err max {s['bbox_error_max']:.2f} px, "
                f"shift {s['bbox_shift'][0]:+.2f}/{s['bbox_shift'][1]:+.2f} px",
                flush=True,
            )

    cpu = platform.processor() or platform.machine()
    date = datetime.date.today().isoformat()
    lines = [
        "# inerf synth benchmarks (issue 3)",
        "",
        "Produced by `python benchmarks/bench_synth.py --write benchmarks/RESULTS_synth.md`.",
        "",
        (
            f"Machine: 2-core CPU ({os.cpu_count()} logical CPUs visible, {cpu}), "
            f"Python {platform.python_version()}, {args.workers} render workers. Date: {date}. "
            "Wall-clock time of the whole command (cold asset cache)."
        ),
        (
            "Targets: scene 100/20/40 views at 400x400 <= 60 s; "
            "category 40 instances x 50 views at 128x128 <= 60 s."
        ),
        "",
        (
            "| benchmark | wall time (s) | CPU time, all processes (s) | load avg before (1/5/15 min) "
            "| bbox error max (px) | mean shift x/y (px) | command |"
        ),
        "|---|---:|---:|---|---:|---|---|",
    ]
    for r in rows:
        s = r["exact"]
        lines.append(
            f"| {r['what']} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['load']} | "
            f"{s['bbox_error_max']:.2f} | {s['bbox_shift'][0]:+.2f} / {s['bbox_shift'][1]:+.2f} | "
            f"`{r['command']}` |"
        )
    lines += [
        "",
        "CPU time counts every process of the command (the CLI and its render workers). With two workers",
        "on an otherwise idle 2-core machine the wall time is about half of it plus a second or two of",
        "start-up; when the wall time is close to the CPU time, other jobs were sharing the two cores (see",
        "the load average). Exactness columns: the first 10 views per split of the scene / 5 views per test",
        "instance, mesh vertices projected with the dataset's own cameras vs the silhouette's box",
        "(inerf.synth.verify).",
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
