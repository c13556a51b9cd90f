"""Where the computation runs: the torch device from a user's string, and the CPU threads policy.

**Devices.** ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available). One definition for every verb and
for :func:`inerf.train.train` (whose config holds the string). Other torch device types (``mps``, ``xla``,
...) are not offered: nothing here is tested on them.

**CPU threads** (applied by the ``inerf`` command, :func:`inerf.cli.main.main`, not by ``import inerf``).
On a shared machine, two OpenMP threads on two cores, one of which another process keeps busy, spend
their time spinning at barriers for a partner that is not running: ``inerf demo`` took 2.6x its quiet
time with one competing busy process (BENCHMARKS.md). Two measures, each overridable:

1. *Threads from the CPU actually free* (:func:`choose_cpu_threads`). At start the command measures for
   0.1 s how many of the CPUs it may use (``os.sched_getaffinity``) other processes keep busy
   (``/proc/stat``; the load average where there is none) and uses the rest, at least 1 and never more
   than torch's own default. Overrides, strongest first: ``inerf --threads N``, ``INERF_THREADS=N``,
   ``OMP_NUM_THREADS`` (then torch's choice stands).
2. *Short spinning* (:func:`prepare_openmp_env`), for load that arrives after the start: OpenMP threads
   that find nothing to do spin :data:`SPIN_COUNT` times (about 0.1 ms) before they sleep, instead of
   libgomp's default 300 000 (several ms). This must be in the environment before torch is imported;
   a user's ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is left alone.

Measured on a quiet 2-core machine, the second measure alone keeps the quiet time and takes the busy
case from 2.6x to 1.6x; with the first, the demo runs on the free core at about its quiet speed.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from inerf.errors import InerfError

if TYPE_CHECKING:  # torch is imported only inside the functions: prepare_openmp_env must run before it
    import torch

__all__ = [
    "DEVICE_CHOICES",
    "SPIN_COUNT",
    "THREADS_ENV",
    "busy_cpus_elsewhere",
    "check_device_name",
    "choose_cpu_threads",
    "configure_cpu_threads",
    "free_cpu_threads",
    "gpu_device",
    "in_graph_capture",
    "prepare_openmp_env",
    "resolve_device",
]

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"
"""How messages and help texts spell the accepted values."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str, flag: str = "--device") -> str:
    """``name`` if it is spelled as one of :data:`DEVICE_CHOICES`, else a one-line error. Needs no GPU."""
    if not _DEVICE.match(name.strip()):
        raise InerfError(f"{flag} {name}: unknown device; expected {DEVICE_CHOICES}")
    return name.strip()


def resolve_device(name: str | None = "auto", flag: str = "--device") -> torch.device:
    """The device ``name`` asks for (``None`` or ``auto``: CUDA if available, else the CPU); refuses a CUDA
    device this machine does not have."""
    import torch

    name = check_device_name("auto" if name is None else name, flag)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InerfError(f"{flag} {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InerfError(
                f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ..)"
            )
    return device


# ----------------------------------------------------------------------------------------- CPU threads

THREADS_ENV = "INERF_THREADS"
"""Environment variable fixing the number of CPU threads of the ``inerf`` command (as ``--threads``)."""

SPIN_COUNT = 3000
"""``GOMP_SPINCOUNT`` set by the ``inerf`` command: busy-wait iterations of an idle OpenMP thread before it
sleeps. Measured with ``inerf demo --steps 100`` on the 2-core machine (one run each, BENCHMARKS.md): quiet
11.9 s at libgomp's default (300 000), 11.6 s at 3000, 12.7 s at 1000, 13.4 s at 0 (sleep at once: each
parallel region then waits for a thread to wake up); with a competing busy process and 2 threads, 31.5 s,
18.8 s, 15.5 s and 17.4 s. 3000 is the shortest spin that costs nothing on a quiet machine."""


def gpu_device(gpu_id) -> torch.device:
    """The device of the published pixelNeRF scripts' ``--gpu_id``: space- or comma-separated CUDA ids of
    which the first is used; the CPU when CUDA is unavailable, the list is empty or the first id is
    negative (the scripts' way to ask for the CPU)."""
    import torch

    ids = [int(x) for x in str(gpu_id).replace(",", " ").split()] if str(gpu_id).strip() else []
    if torch.cuda.is_available() and ids and ids[0] >= 0:
        return torch.device(f"cuda:{ids[0]}")
    return torch.device("cpu")


def in_graph_capture() -> bool:
    """Whether the current CUDA stream is capturing a graph. A Triton kernel that fails there may be failing
    because of the capture (an earlier call in it was refused, as cuBLASLt's once was): the callers that
    fall back to torch ops after a failed kernel re-raise instead, and the capture is retried
    (:class:`inerf.pose.fast.GraphedFn`), rather than giving up the kernel for the whole process."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def prepare_openmp_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless the user chose a wait policy or spin count.

    libgomp (the OpenMP runtime of torch's Linux wheels) reads it once, when torch is first imported, so
    call this before that. Returns whether it set the variable.
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        return False
    env["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def _cpu_jiffies(cpus: set[int]) -> tuple[int, int] | None:
    """``(busy, total)`` jiffies since boot summed over ``cpus`` (Linux ``/proc/stat``), or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = seen = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
        seen += 1
    return (busy, total) if seen == len(cpus) else None


def busy_cpus_elsewhere(interval: float = 0.1) -> float | None:
    """How many of the CPUs this process may use other processes keep busy, measured over ``interval``
    seconds while this process sleeps; the 1-minute load average where ``/proc/stat`` is missing; None
    if neither is available."""
    cpus = _allowed_cpus()
    before = _cpu_jiffies(cpus)
    if before is not None:
        time.sleep(interval)
        after = _cpu_jiffies(cpus)
        if after is not None and after[1] > before[1]:
            return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def free_cpu_threads(n_cpus: int, busy_elsewhere: float | None, default: int) -> int:
    """Threads to use: the CPUs not kept busy by others (a CPU counts as free when less than half busy),
    at least 1 and at most ``default`` (torch's own choice: one per physical core). Pure."""
    if busy_elsewhere is None:
        return max(1, default)
    free = math.floor(n_cpus - busy_elsewhere + 0.5)
    return max(1, min(default, free))


def _positive_int(text: str, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise InerfError(f"{what}: expected a number of threads >= 1")
    return n


def choose_cpu_threads(
    requested: int | None = None, environ: MutableMapping[str, str] | None = None
) -> tuple[int | None, str]:
    """The thread count of the ``inerf`` command and why: ``(n, reason)``, or ``(None, reason)`` to leave
    torch's choice (the user set ``OMP_NUM_THREADS``). ``requested`` is ``--threads``."""
    import torch

    env = os.environ if environ is None else environ
    if requested is not None:
        return _positive_int(str(requested), f"--threads {requested}"), "--threads"
    if env.get(THREADS_ENV, "").strip():
        return _positive_int(env[THREADS_ENV], f"{THREADS_ENV}={env[THREADS_ENV]}"), THREADS_ENV
    if env.get("OMP_NUM_THREADS", "").strip():
        return None, "OMP_NUM_THREADS"
    busy = busy_cpus_elsewhere()
    n = free_cpu_threads(len(_allowed_cpus()), busy, torch.get_num_threads())
    return n, "auto" if busy is None else f"auto ({busy:.1f} CPUs busy elsewhere)"


def configure_cpu_threads(requested: int | None = None) -> int:
    """Apply :func:`choose_cpu_threads` to torch; returns the thread count in effect."""
    import torch

    n, _ = choose_cpu_threads(requested)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()
