"""Check :class:`inerf.sync_batchnorm.SyncBatchNorm2d` on the device it runs on, against one BatchNorm over the
whole batch: run under torchrun with N processes (on GPUs this checks the fused CUDA path, which the CPU tests
cannot reach)::

    torchrun --standalone --nproc_per_node 2 benchmarks/check_sync_batchnorm.py

Each process holds a different number of rows of one batch (rank r: r + 2 rows), in float32 and under bf16
autocast; the outputs, the input and weight gradients and the running statistics must match the single layer's.
Prints the largest differences and exits non-zero on a mismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from inerf import distributed
    from inerf.sync_batchnorm import SyncBatchNorm2d

    with distributed.session("auto") as device:
        rank, world = distributed.rank(), distributed.world_size()
        sizes = [r + 2 for r in range(world)]
        g = torch.Generator().manual_seed(0)
        x_all = (torch.randn(sum(sizes), 8, 6, 5, generator=g) * 3 + 1).to(device)
        w_out = torch.randn(sum(sizes), 8, 6, 5, generator=g).to(device)
        start = sum(sizes[:rank])
        rows = slice(start, start + sizes[rank])
        worst = 0.0
        for dtype in (None, torch.bfloat16):
            ref = torch.nn.BatchNorm2d(8).to(device)
            ours = SyncBatchNorm2d(8).to(device)
            with torch.no_grad():
                for m in (ref, ours):
                    m.weight.copy_(torch.linspace(0.5, 1.5, 8))
                    m.bias.copy_(torch.linspace(-1, 1, 8))
            xr = x_all.clone().requires_grad_(True)
            xo = x_all[rows].clone().requires_grad_(True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                yr = ref(xr)
                yo = ours(xo)
            (yr.float() * w_out).sum().backward()
            (yo.float() * w_out[rows]).sum().backward()
            tol = 1e-4 if dtype is None else 3e-2
            checks = {
                "output": (yo.float(), yr[rows].float()),
                "input grad": (xo.grad, xr.grad[rows]),
                "weight grad": (sum_over_ranks(ours.weight.grad), ref.weight.grad),
                "running mean": (ours.running_mean, ref.running_mean),
                "running var": (ours.running_var, ref.running_var),
            }
            for name, (a, b) in checks.items():
                d = float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-6))
                worst = max(worst, d / tol)
                print(f"rank {rank} {dtype or 'float32'} {name}: max relative difference {d:.2e}", flush=True)
        ok = worst <= 1.0
        print(f"rank {rank}: {'OK' if ok else 'MISMATCH'} on {device}", flush=True)
    return 0 if ok else 1


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    dist.all_reduce(t)
    return t


if __name__ == "__main__":
    sys.exit(main())
