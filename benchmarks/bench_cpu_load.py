"""Time ``inerf demo`` on the CPU on a quiet machine and while another process keeps one core busy.

Issue 11, item 8: the CPU path must degrade in proportion to the CPU it gets. With one competing busy
process on a 2-core machine the demo gets about one core, so it should take at most about twice its quiet
time (the target is <= 2.2x). Two OpenMP threads that spin at barriers while their partner is descheduled
made it 2.7x; see the thread policy in :mod:`inerf.device`.

Each variant (an environment to run the demo with) is timed ``--repeats`` times in each condition, quiet and
busy interleaved (quiet, busy, quiet, busy, ...) so that a change in the machine's other load affects both
alike. The demo is the bundled default (``inerf demo``: target 0, 300 steps, 16 GIF frames) run as a new
process, as a user runs it. The competing process is a Python busy loop (``--pin``: pinned to CPU 0).

Other load is measured, not assumed: for each run the table gives the 1-minute load average at its start
and the CPU time that *other* processes used during it (from ``/proc/stat``, less the demo's and the busy
loop's own CPU time), in cores. On a shared machine, read the ratios with that column.

    .venv/bin/python benchmarks/bench_cpu_load.py                     # the policy of inerf.device
    .venv/bin/python benchmarks/bench_cpu_load.py --variant "torch default=OMP_WAIT_POLICY=,INERF_THREADS=2"
    .venv/bin/python benchmarks/bench_cpu_load.py --json benchmarks/results/cpu_load.json

A variant ``NAME=K=V,K=V`` sets those variables (an empty value is set as empty); the default variant
``inerf`` runs with none of the thread variables set (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``, ``MKL_NUM_THREADS``, ``INERF_THREADS``), as a new user's shell has.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "INERF_THREADS")
BUSY_LOOP = "while True:\n    pass\n"


def cpu_jiffies() -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of all CPUs since boot (Linux ``/proc/stat``), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux), 0 if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start_busy_loop(pin: bool) -> subprocess.Popen:
    """A Python busy loop in its own process (``pin``: on the first CPU we may use)."""
    code = (
        f"import os\nos.sched_setaffinity(0, {{{min(os.sched_getaffinity(0))}}})\n" if pin else ""
    ) + BUSY_LOOP
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    time.sleep(1.0)  # let it reach the scheduler's steady state before the demo starts
    return proc


def demo_env(variant: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(variant)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_once(variant: dict, busy: bool, pin: bool, demo_args: list[str], work: Path) -> dict:
    """One demo run: wall time, its CPU time, the load average at start and the other processes' load."""
    out = work / "demo"
    shutil.rmtree(out, ignore_errors=True)
    burner = start_busy_loop(pin) if busy else None
    burner_cpu0 = process_cpu_seconds(burner.pid) if burner else 0.0
    load1 = os.getloadavg()[0]
    cpu0, child0 = cpu_jiffies(), children_cpu_seconds()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "inerf.cli.main", "demo", "--out", str(out), "--quiet", "--device", "cpu"]
    proc = subprocess.run(cmd + demo_args, env=demo_env(variant), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu1, demo_cpu = cpu_jiffies(), children_cpu_seconds() - child0
    burner_cpu = (process_cpu_seconds(burner.pid) - burner_cpu0) if burner else 0.0
    if burner:
        burner.kill()
        burner.wait()
    if proc.returncode != 0:
        raise SystemExit(
            f"inerf demo failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    others = None
    if cpu0 and cpu1:
        hz = os.sysconf("SC_CLK_TCK")
        machine_busy = (cpu1[0] - cpu0[0]) / hz  # CPU-seconds of every process in the interval
        others = max(0.0, machine_busy - demo_cpu - burner_cpu) / wall  # in cores
    return {
        "busy": busy,
        "wall_s": round(wall, 2),
        "demo_cpu_s": round(demo_cpu, 2),
        "load1_at_start": round(load1, 2),
        "other_cores": None if others is None else round(others, 2),
    }


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, assignments = text.partition("=")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        env[key.strip()] = value
    return name.strip(), env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant and condition (median taken)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=K=V,K=V", help="see above")
    ap.add_argument("--pin", action="store_true", help="pin the busy loop to one CPU")
    ap.add_argument("--demo-args", default="", help="extra `inerf demo` options, e.g. '--steps 100'")
    ap.add_argument("--json", type=Path, help="write every run and the summary here")
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant] or [("inerf", {})]
    demo_args = args.demo_args.split()

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_cpu_load_") as tmp:
        for name, env in variants:
            for i in range(args.repeats):
                for busy in (False, True):
                    r = run_once(env, busy, args.pin, demo_args, Path(tmp))
                    r.update(variant=name, repeat=i)
                    runs.append(r)
                    print(
                        f"{name:>14} {'busy ' if busy else 'quiet'} #{i}: {r['wall_s']:6.1f} s "
                        f"(demo CPU {r['demo_cpu_s']:.1f} s, load {r['load1_at_start']:.2f}, "
                        f"others {r['other_cores']} cores)",
                        flush=True,
                    )

    summary = []
    print()
    print(
        "| variant | quiet: runs (s) | median | busy: runs (s) | median | busy / quiet | load avg at start "
        "(quiet; busy) | other processes, cores (quiet; busy) |"
    )
    print("|---|---|---:|---|---:|---:|---|---|")
    for name, _ in variants:
        q = [r for r in runs if r["variant"] == name and not r["busy"]]
        b = [r for r in runs if r["variant"] == name and r["busy"]]
        mq, mb = statistics.median(r["wall_s"] for r in q), statistics.median(r["wall_s"] for r in b)
        summary.append(
            {"variant": name, "quiet_median_s": mq, "busy_median_s": mb, "ratio": round(mb / mq, 2)}
        )

        def col(rows, key):
            return ", ".join(f"{r[key]}" for r in rows)

        print(
            f"| {name} | {col(q, 'wall_s')} | {mq:.1f} | {col(b, 'wall_s')} | {mb:.1f} | **{mb / mq:.2f}x** | "
            f"{col(q, 'load1_at_start')}; {col(b, 'load1_at_start')} | {col(q, 'other_cores')}; "
            f"{col(b, 'other_cores')} |"
        )
    if args.json:
        meta = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {platform.processor()}",
            "python": platform.python_version(),
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "pin": args.pin,
            "demo_args": demo_args,
        }
        args.json.write_text(
            json.dumps({"meta": meta, "variants": dict(variants), "runs": runs, "summary": summary}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
