"""Where a pixelNeRF training step's time goes, on one process or under torchrun (per rank).

Builds the trainer exactly as ``inerf pixelnerf train`` does (same flags), runs ``--warmup`` steps, then
``--steps`` steps under ``torch.profiler`` and prints, on every rank, the wall time per step, the GPU-busy time
per step, the kernel launches per step and the top operators by CPU time and by GPU time::

    python benchmarks/profile_pixelnerf_step.py -D DATA/chairs -c srn -B 4 -R 128 -V 1 --gpu_id 0
    torchrun --standalone --nproc_per_node 2 benchmarks/profile_pixelnerf_step.py -- -D DATA/chairs -c srn -B 8 ...

Nothing is written to the checkpoint folder the flags name except the trainer's own set-up (use a scratch
``--checkpoints_path``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from inerf import distributed
    from inerf.cli.pixelnerf_train import add_train_parser
    from inerf.pixelnerf.train import PixelNeRFTrainConfig, PixelNeRFTrainer

    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_train_parser(top.add_subparsers(dest="verb"))  # the flags of `inerf pixelnerf train`
    p = top._subparsers._group_actions[0].choices["train"]
    p.add_argument("--warmup", type=int, default=10, help="steps before the profile")
    p.add_argument("--profile-steps", type=int, default=10, help="profiled steps")
    p.add_argument("--rows", type=int, default=15, help="operators listed")
    args = top.parse_args(["train", *(a for a in (argv or sys.argv[1:]) if a != "--")])
    args.steps = args.profile_steps
    names = PixelNeRFTrainConfig.__dataclass_fields__
    cfg = PixelNeRFTrainConfig(**{k: v for k, v in vars(args).items() if k in names}, progress=False)
    with distributed.session("cpu" if str(cfg.gpu_id).strip() == "-1" else "auto", "--gpu_id"):
        trainer = PixelNeRFTrainer(cfg)
        cuda = trainer.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        for _ in range(args.warmup):
            trainer.train_step()
        sync()
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            for _ in range(args.steps):
                trainer.train_step()
            sync()
        wall = (time.perf_counter() - t0) / args.steps
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        busy = sum(e.device_time_total for e in kernels) / 1e3 / args.steps
        head = (
            f"rank {distributed.rank()}/{distributed.world_size()}: {1e3 * wall:.1f} ms per step under the "
            f"profiler, GPU busy {busy:.1f} ms, {len(kernels) / args.steps:.0f} kernels per step"
        )
        by_cpu = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
        by_gpu = (
            prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=args.rows) if cuda else ""
        )
        for r in range(distributed.world_size()):  # one rank at a time: tables do not interleave
            if r == distributed.rank():
                print(head + "\n" + by_cpu + "\n" + by_gpu, flush=True)
            distributed.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
