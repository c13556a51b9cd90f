"""The CPU threads policy of the ``inerf`` command (issue 11, item 8; :mod:`inerf.device`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from inerf import device
from inerf.cli.main import main
from inerf.device import (
    SPIN_COUNT,
    busy_cpus_elsewhere,
    choose_cpu_threads,
    free_cpu_threads,
    prepare_openmp_env,
)
from inerf.errors import InerfError

ROOT = Path(__file__).resolve().parents[2]


def test_free_threads_are_the_cpus_others_leave():
    assert free_cpu_threads(2, 0.0, default=2) == 2  # quiet: torch's own choice
    assert free_cpu_threads(2, 0.4, default=2) == 2  # a little background noise
    assert free_cpu_threads(2, 1.0, default=2) == 1  # one competing busy process: the free core
    assert free_cpu_threads(2, 6.0, default=2) == 1  # never fewer than one
    assert free_cpu_threads(16, 4.0, default=8) == 8  # never more than torch's choice (physical cores)
    assert free_cpu_threads(16, 10.2, default=8) == 6
    assert free_cpu_threads(4, None, default=4) == 4  # nothing measured: torch's choice


def test_spin_count_is_set_only_when_the_user_chose_nothing():
    env = {}
    assert prepare_openmp_env(env) and env == {"GOMP_SPINCOUNT": str(SPIN_COUNT)}
    for mine in ({"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "300000"}):
        env = dict(mine)
        assert not prepare_openmp_env(env) and env == mine


def test_precedence_of_the_overrides(monkeypatch):
    monkeypatch.setattr(device, "busy_cpus_elsewhere", lambda interval=0.1: 1.0)
    monkeypatch.setattr(device, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert choose_cpu_threads(None, {}) == (1, "auto (1.0 CPUs busy elsewhere)")
    assert choose_cpu_threads(None, {"OMP_NUM_THREADS": "2"}) == (None, "OMP_NUM_THREADS")
    assert choose_cpu_threads(None, {"OMP_NUM_THREADS": "2", "INERF_THREADS": "3"}) == (3, "INERF_THREADS")
    assert choose_cpu_threads(4, {"INERF_THREADS": "3"}) == (4, "--threads")
    with pytest.raises(InerfError, match=r"^--threads 0: expected a number of threads >= 1$"):
        choose_cpu_threads(0, {})
    with pytest.raises(InerfError, match=r"^INERF_THREADS=two: expected a number of threads >= 1$"):
        choose_cpu_threads(None, {"INERF_THREADS": "two"})


def test_a_busy_process_is_measured():
    """A busy loop pinned to one of our CPUs shows up as (at least most of) one busy CPU."""
    cpu = min(os.sched_getaffinity(0))
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    burner = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)
        assert busy_cpus_elsewhere(0.3) >= 0.7
    finally:
        burner.kill()
        burner.wait()


def test_calls_from_python_keep_their_thread_settings(capsys):
    """``main([...])`` from code that already imported torch (tests, notebooks) applies no policy of its
    own, but honours an explicit --threads; a bad --threads is one line."""
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert main(["demo", "--steps", "0"]) == 2  # fails in the verb, after the policy would have run
        assert torch.get_num_threads() == 1
        if os.cpu_count() and os.cpu_count() > 1:
            assert main(["--threads", "2", "demo", "--steps", "0"]) == 2
            assert torch.get_num_threads() == 2
        capsys.readouterr()
        assert main(["--threads", "0", "demo"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "inerf demo: error: --threads 0: expected a number of threads >= 1"
    finally:
        torch.set_num_threads(old)


def test_a_new_inerf_process_sets_the_policy_before_torch_loads():
    """In a new process the spin count is in the environment before torch (and libgomp) load, and
    --threads / INERF_THREADS set torch's thread count."""
    probe = (
        "import sys\n"
        "import inerf.device as d\n"
        "orig = d.configure_cpu_threads\n"
        "def spy(requested):\n"
        "    import os, torch\n"
        "    n = orig(requested)\n"
        "    print('threads', n, torch.get_num_threads(), os.environ.get('GOMP_SPINCOUNT'), flush=True)\n"
        "    return n\n"
        "d.configure_cpu_threads = spy\n"
        "assert 'torch' not in sys.modules\n"
        "from inerf.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    }
    env["PYTHONPATH"] = str(ROOT)
    for extra_env, args, expected in (
        ({}, ["--threads", "1"], "threads 1 1 3000"),
        ({"INERF_THREADS": "1"}, [], "threads 1 1 3000"),
        ({"GOMP_SPINCOUNT": "77", "INERF_THREADS": "1"}, [], "threads 1 1 77"),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args, "demo", "--steps", "0"],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout.strip() == expected, (extra_env, args, proc.stdout, proc.stderr)
