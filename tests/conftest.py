"""Suite-wide settings and fixtures."""

import contextlib
import os

import pytest
import torch

# `make test` runs two pytest workers on two cores. Two torch threads per worker would oversubscribe
# the cores, and an oversubscribed OpenMP barrier makes small ops 10-30x slower (measured in
# benchmarks/RESULTS_grid.md), so each worker computes on one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


class HostToDeviceSpy(torch.overrides.TorchFunctionMode):
    """Records tensor constructions from host data (``torch.tensor``, ``as_tensor`` of numbers or lists,
    ``new_tensor``, ``from_numpy``): on a GPU each is a host-to-device copy, which a CUDA graph cannot
    capture. Works on the CPU, where such copies are otherwise invisible."""

    NAMES = frozenset({"tensor", "as_tensor", "asarray", "scalar_tensor", "new_tensor", "from_numpy"})

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        data = args[1] if name == "new_tensor" and len(args) > 1 else args[0] if args else None
        if name in self.NAMES and not isinstance(data, torch.Tensor):
            import traceback

            frames = [f for f in traceback.extract_stack()[:-1] if "inerf" in f.filename]
            where = frames[-1] if frames else None
            self.calls.append(f"{name} at {where.filename}:{where.lineno}" if where else name)
        return func(*args, **kwargs)


@contextlib.contextmanager
def torch_threads(n: int):
    """``n`` intra-op torch threads inside the block, the previous count after it."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture()
def one_thread():
    """One intra-op thread for a test of small tensors: with two pytest workers on two cores a second thread
    per worker oversubscribes the CPU, and a busy OpenMP barrier then costs far more than the thread gains."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_per_module():
    """:func:`one_thread` for a whole module (``pytestmark = pytest.mark.usefixtures(...)`` or a conftest's
    autouse fixture that asks for it)."""
    with torch_threads(1):
        yield


@pytest.fixture()
def host_copy_spy():
    """A :class:`HostToDeviceSpy` to use as a context manager."""
    return HostToDeviceSpy()


def run_torchrun(args: list[str], nproc: int = 2, timeout: float = 240):
    """``inerf ARGS`` in ``nproc`` processes started by torchrun (``python -m torch.distributed.run
    --standalone``: a free port on this machine), on the CPU with gloo and one thread per process, from this
    checkout. Returns the ``CompletedProcess``; a failure shows both ranks' output."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU even on a machine with GPUs
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone"]
    proc = subprocess.run(
        [*cmd, "-m", "inerf.cli.main", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"torchrun exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def torchrun():
    """:func:`run_torchrun`: the CLI under torchrun, for the tests of several processes."""
    return run_torchrun
