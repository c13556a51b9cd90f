"""Several processes, one job: PyTorch's own engine (``torchrun`` starts them, ``torch.distributed`` joins them).

**Launching.** A verb that supports it runs unchanged under torchrun, one process per GPU::

    torchrun --nproc_per_node 2 -m inerf.cli.main -- train --data DIR --out runs/grid --model grid
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m inerf.cli.main -- benchmark pose --run runs/grid --out bench/grid

(The ``--`` ends torchrun's own options: without it torchrun's parser stops at ``--run``, which abbreviates
its ``--run-path``; :func:`inerf.cli.main.main` drops it when Python passes it on.)

torchrun gives every process ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address);
:func:`init_from_env` reads them, puts the process on ``cuda:LOCAL_RANK`` (the CPU with ``--device cpu`` or
without CUDA) and joins the process group: NCCL between GPUs, gloo between CPUs. A plain ``inerf`` command
has no such variables: then every function here acts for a world of one process (rank 0, :func:`shard`
keeps every item, :func:`gather_rows` returns its input), so code written with them needs no second path.

**Two ways work is spread.**

* *One model* (``inerf train``): every rank holds the whole model, wrapped by :func:`wrap_ddp` in
  ``DistributedDataParallel``, and renders its contiguous slice :func:`shard_range` of each global batch;
  DDP averages the gradients (an all-reduce of every parameter's gradient per step), so each rank takes
  the same optimiser step.
* *Independent items* (``inerf benchmark pose`` views; batch localisation): rank ``r`` takes items
  ``r, r + W, r + 2W, ...`` (:func:`shard`: strided, so neighbouring items of similar cost spread over the
  ranks) and :func:`gather_rows` puts one result per item back in the input order, on rank 0 (or on all).
  Each item is computed exactly as one process computes it, so the gathered table equals the one-process
  table to the last bit (on the same kind of device).

  The hook for batch localisation (``inerf estimate --images``) is the same three lines::

      mine = shard(images)                          # this rank's images
      rows = [localise(image) for image in mine]    # one result per image of `mine`, in its order
      rows = gather_rows(rows)                      # all images' rows in the order of `images`; None off rank 0

**Host-side agreement** (a shared clock, Python rows, barriers) travels through a gloo group on the CPU even
when gradients travel by NCCL: it needs no GPU synchronisation, and pickled rows need not visit a GPU.
Only rank 0 writes files (:func:`is_main`); :func:`run_on_main` runs a check-and-create step there and
raises its error on every rank.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from inerf.device import check_device_name, resolve_device
from inerf.errors import InerfError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "TORCHRUN_ENV",
    "barrier",
    "broadcast_state",
    "cleanup",
    "device",
    "gather_rows",
    "init_from_env",
    "is_distributed",
    "is_main",
    "launched_by_torchrun",
    "main_value",
    "mean_over_ranks",
    "rank",
    "run_on_main",
    "session",
    "shard",
    "shard_range",
    "world_size",
    "wrap_ddp",
]

T = TypeVar("T")

TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
"""Environment variables torchrun sets for each process it starts."""


@dataclass
class _Session:
    device: torch.device
    cpu_group: Any
    """gloo group for host-side collectives; None when the default group is gloo already."""
    owned: bool
    """Whether :func:`init_from_env` created the default process group (and so destroys it)."""


_SESSION: _Session | None = None


def launched_by_torchrun(environ=None) -> bool:
    """Whether this process was started by torchrun (it set every variable of :data:`TORCHRUN_ENV`)."""
    env = os.environ if environ is None else environ
    return all(k in env for k in TORCHRUN_ENV)


def _dist():
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """Whether this process belongs to a process group (of any size)."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the group (0 outside one)."""
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 outside one)."""
    return _dist().get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes files and prints: rank 0 of the group, or, outside a group, the process
    torchrun called ``RANK=0`` (a verb that already left its group still prints once), or a plain process."""
    if is_distributed():
        return rank() == 0
    return not launched_by_torchrun() or int(os.environ["RANK"] or 0) == 0


def _rank_device(name: str | None, local_rank: int, flag: str) -> torch.device:
    """The device of the process with ``LOCAL_RANK = local_rank`` for a user's ``--device``."""
    import torch

    name = check_device_name("auto" if name is None else name, flag)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise InerfError(
            f"{flag} {name}: under torchrun each process uses cuda:LOCAL_RANK; pass --device cuda (or auto)"
        )
    if not torch.cuda.is_available():
        raise InerfError(f"{flag} {name}: CUDA is not available on this machine")
    if local_rank >= torch.cuda.device_count():
        raise InerfError(
            f"LOCAL_RANK {local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s): start "
            "at most that many processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def init_from_env(device_name: str | None = "auto", flag: str = "--device") -> torch.device:
    """Join the process group torchrun prepared and return this process's device.

    Without torchrun (or with ``WORLD_SIZE=1``) nothing is joined and the device is
    :func:`inerf.device.resolve_device` of ``device_name``. Under torchrun the device is ``cuda:LOCAL_RANK``
    (``auto``/``cuda``, when CUDA is available) or the CPU, and the backend NCCL or gloo to match. Idempotent:
    a second call returns the first call's device. A group created by the caller beforehand is joined
    as it is (only the gloo side group is added).
    """
    global _SESSION
    if _SESSION is not None:
        return _SESSION.device
    dist = _dist()
    world = int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1
    if world <= 1 and not is_distributed():
        return resolve_device(device_name, flag)
    if not dist.is_available():
        raise InerfError("this PyTorch build has no torch.distributed: run one process (without torchrun)")
    import torch

    dev = _rank_device(device_name, int(os.environ.get("LOCAL_RANK", "0")), flag)
    owned = not dist.is_initialized()
    if owned:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group("nccl", device_id=dev)
        else:
            dist.init_process_group("gloo")
    cpu_group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    _SESSION = _Session(dev, cpu_group, owned)
    return dev


def device() -> torch.device | None:
    """The device :func:`init_from_env` gave this process, or None before (or outside) a session."""
    return None if _SESSION is None else _SESSION.device


def cleanup() -> None:
    """Leave the process group (destroy it when :func:`init_from_env` created it); safe to call twice."""
    global _SESSION
    s, _SESSION = _SESSION, None
    if s is None or not is_distributed():
        return
    dist = _dist()
    if s.owned:
        dist.destroy_process_group()
    elif s.cpu_group is not None:
        dist.destroy_process_group(s.cpu_group)


@contextlib.contextmanager
def session(device_name: str | None = "auto", flag: str = "--device"):
    """``with session(args.device) as device:`` -- :func:`init_from_env` on entry, :func:`cleanup` on exit,
    unless an outer session (or the caller's own group) was there first, which then stays."""
    outer = _SESSION is not None
    dev = init_from_env(device_name, flag)
    try:
        yield dev
    finally:
        if not outer:
            cleanup()


def _cpu_group():
    return None if _SESSION is None else _SESSION.cpu_group


# --------------------------------------------------------------------------------------------- sharding


def shard(items: Iterable[T]) -> list[T]:
    """This rank's items: ``items[rank::world_size]`` (strided; every item for one process)."""
    return list(items)[rank() :: world_size()]


def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous rows ``[start, stop)`` of ``n``: sizes differ by at most one, and the ranges
    of ranks ``0 .. W-1`` tile ``[0, n)`` in order."""
    r, w = rank(), world_size()
    return n * r // w, n * (r + 1) // w


def _interleave(parts: Sequence[Sequence[T]]) -> list[T]:
    """Undo :func:`shard`: ``parts[r]`` holds the rows of items ``r, r + W, ...``; returns them in item order."""
    w = len(parts)
    total = sum(len(p) for p in parts)
    for r, p in enumerate(parts):
        if len(p) != len(range(r, total, w)):
            raise ValueError(
                f"rank {r} gathered {len(p)} rows, but shard() gave it {len(range(r, total, w))} of {total} "
                "items: gather_rows needs one row per item of shard(items)"
            )
    return [parts[i % w][i // w] for i in range(total)]


def gather_rows(rows: Sequence[T], *, to_all: bool = False) -> list[T] | None:
    """Gather one row per item of :func:`shard` ``(items)`` from every rank, back in the order of ``items``.

    Returns the whole list on rank 0 and None on the others, or the whole list on every rank with
    ``to_all``. Rows travel pickled through the CPU (gloo) group, so anything picklable goes: dicts,
    numpy arrays, CPU tensors. One process: ``list(rows)``.
    """
    w = world_size()
    if w == 1:
        return list(rows)
    dist = _dist()
    parts: list = [None] * w
    if to_all:
        dist.all_gather_object(parts, list(rows), group=_cpu_group())
    else:
        dist.gather_object(list(rows), parts if rank() == 0 else None, dst=0, group=_cpu_group())
        if rank() != 0:
            return None
    return _interleave(parts)


# ----------------------------------------------------------------------------------------- agreement


def barrier() -> None:
    """Wait until every rank gets here (no-op for one process)."""
    if world_size() > 1:
        _dist().barrier(group=_cpu_group())


def main_value(value: float) -> float:
    """Rank 0's ``value`` on every rank (host-side, through the CPU group: no GPU synchronisation)."""
    if world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.float64)
    _dist().broadcast(t, src=0, group=_cpu_group())
    return float(t.item())


def run_on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only (a check that creates files, say) and return its result on every rank.

    An :class:`InerfError` it raises is raised on every rank with the same message, so all ranks stop
    together instead of waiting for rank 0 at the next collective. The result must be picklable.
    """
    if world_size() == 1:
        return fn()
    outcome: list = [None]
    if rank() == 0:
        try:
            outcome[0] = (True, fn())
        except InerfError as exc:
            outcome[0] = (False, str(exc))
    _dist().broadcast_object_list(outcome, src=0, group=_cpu_group())
    ok, value = outcome[0]
    if not ok:
        raise InerfError(value)
    return value


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks (a copy; an all-reduce in the group's backend, on ``t``'s device)."""
    t = t.clone()
    if world_size() > 1:
        dist = _dist()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
    return t


def broadcast_state(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``modules`` (same shapes everywhere).

    For state that changes outside the gradient step (a grid field's occupancy mask and box, re-gridded
    planes): ranks compute it from the same weights, and this makes it bit-identical regardless.
    """
    if world_size() == 1:
        return
    import torch

    dist = _dist()
    with torch.no_grad():
        for m in modules:
            for t in [*m.parameters(), *m.buffers()]:
                # Backends differ in their bool support; a byte view moves the same bits.
                dist.broadcast(t.data.view(torch.uint8) if t.dtype == torch.bool else t.data, src=0)


def wrap_ddp(module: nn.Module, **ddp_options) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` (itself for one process).

    Each process drives one device, where ``module`` already lives, so no ``device_ids`` (inputs are not
    moved). Buffers are not broadcast at every forward: the state they hold changes at known steps, and
    :func:`broadcast_state` syncs it then. The wrapper copies rank 0's parameters to the other ranks.
    ``ddp_options`` go to ``DistributedDataParallel`` (e.g. ``find_unused_parameters=True`` for a model with
    parameters that get no gradient in a step, such as a ResNet's unused last stage).

    Layers that keep batch statistics (BatchNorm) see only this rank's share of the batch; to train as one
    process does, convert them first (``torch.nn.SyncBatchNorm.convert_sync_batchnorm``).
    """
    if world_size() == 1:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # torch >= 2.14 renames the switch (and deprecates the old name); earlier releases know only the old one.
    names = inspect.signature(DistributedDataParallel).parameters
    no_sync = (
        {"forward_sync_buffers": False} if "forward_sync_buffers" in names else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(module, **{**no_sync, **ddp_options})
