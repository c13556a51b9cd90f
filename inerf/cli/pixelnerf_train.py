"""``inerf pixelnerf train``: train a pixelNeRF (the published ``train/train.py``, same flags where they exist;
see :mod:`inerf.pixelnerf.train`)."""

from __future__ import annotations

import dataclasses


def add_train_parser(sub) -> None:
    """Register ``train`` on the ``inerf pixelnerf`` sub-command parser ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a pixelNeRF on a multi-object dataset (published train.py)",
        description="Train a pixelNeRF on the train split of -D (SRN or DVR layout; validation on its val "
        "split). Checkpoints in the published layout go to <checkpoints_path>/<name>/ (pixel_nerf_latest, "
        "pixel_nerf_backup, _optim, _iter, _renderer) plus pixelnerf.conf; --resume continues exactly. "
        "Flags follow the published train/train.py.",
    )
    p.add_argument("-n", "--name", default="example", help="experiment name (default: %(default)s)")
    p.add_argument(
        "-c",
        "--conf",
        default=None,
        help="config name (srn, sn64, dtu, small, ...) or .conf path (default: the run's pixelnerf.conf on "
        "--resume, else the published config of --name, else default_mv)",
    )
    p.add_argument(
        "-D", "--datadir", required=True, help="dataset root: <dir>/chairs for SRN (reads chairs_train, ...)"
    )
    p.add_argument(
        "-F", "--dataset_format", default=None, help="srn | dvr | dvr_gen | dvr_dtu (default: the config's)"
    )
    p.add_argument("-B", "--batch_size", type=int, default=4, help="objects per batch (default: %(default)s)")
    p.add_argument(
        "-V",
        "--nviews",
        default="1",
        help="source views per object; several ('1 2') = one count drawn per batch (default: %(default)s)",
    )
    p.add_argument(
        "--source_views",
        default=None,
        help="fixed source-view indices for every object (e.g. '0 10'), instead of random views",
    )
    p.add_argument(
        "-R",
        "--ray_batch_size",
        type=int,
        default=128,
        help="rays per object per step (default: %(default)s)",
    )
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: %(default)s)")
    p.add_argument(
        "--no_bbox_step",
        type=int,
        default=100000,
        help="draw rays inside the foreground boxes until this step; 0 = never (default: %(default)s)",
    )
    p.add_argument(
        "--freeze_enc", action="store_true", help="freeze the encoder (weights and BatchNorm statistics)"
    )
    p.add_argument(
        "--no-sync-bn",
        dest="sync_bn",
        action="store_false",
        help="under torchrun, BatchNorm statistics per process (as published DataParallel) instead of the "
        "whole batch's",
    )
    p.add_argument(
        "--fixed_test", action="store_true", help="validate on the same object and views every time"
    )
    p.add_argument("-r", "--resume", action="store_true", help="continue the run in the checkpoint folder")
    p.add_argument("--overwrite", action="store_true", help="start afresh, replacing the run in the folder")
    p.add_argument("-G", "--exp_group_name", default=None, help="sub-folder of the output folders")
    p.add_argument("--checkpoints_path", default="checkpoints", help="(default: %(default)s)")
    p.add_argument("--visual_path", default="visuals", help="validation pictures (default: %(default)s)")
    p.add_argument("--logs_path", default="logs", help="train_log.jsonl (default: %(default)s)")
    p.add_argument("--gpu_id", default="0", help="GPU id(s); the first is used; the CPU if none or -1")
    p.add_argument(
        "--max-steps",
        "--max_steps",
        dest="max_steps",
        type=int,
        default=None,
        help="stop at this step (total)",
    )
    p.add_argument(
        "--max-minutes",
        "--max_minutes",
        dest="max_minutes",
        type=float,
        default=None,
        help="wall-clock budget of this invocation (loading included); the final checkpoint follows it",
    )
    p.add_argument(
        "--save-every",
        "--save_every",
        dest="save_every",
        type=int,
        default=50,
        help="checkpoint every N steps (default: %(default)s, as published)",
    )
    p.add_argument(
        "--val-every",
        "--val_every",
        dest="val_every",
        type=int,
        default=100,
        help="validation render + PSNR every N steps; 0 = never (default: %(default)s)",
    )
    p.add_argument(
        "--print-every",
        "--print_every",
        dest="print_every",
        type=int,
        default=20,
        help="read the loss back (one device synchronisation) every N steps (default: %(default)s)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "tf32", "bf16"],
        help="auto = bf16 autocast + TF32 on CUDA, fp32 on the CPU (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and every draw (default: 0)")
    p.add_argument("--z_near", type=float, default=None, help="near bound (default: the dataset's)")
    p.add_argument("--z_far", type=float, default=None, help="far bound (default: the dataset's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    """Under torchrun the processes join one group for the run (``--gpu_id -1``: the CPU and gloo, else one
    GPU per process and NCCL) and rank 0 speaks for it; see :mod:`inerf.pixelnerf.train`."""
    from inerf import distributed
    from inerf.pixelnerf.train import PixelNeRFTrainConfig, PixelNeRFTrainer

    names = {f.name for f in dataclasses.fields(PixelNeRFTrainConfig)}
    cfg = PixelNeRFTrainConfig(**{k: v for k, v in vars(args).items() if k in names}, progress=not args.quiet)
    ids = str(cfg.gpu_id).replace(",", " ").split()
    with distributed.session("cpu" if ids[:1] == ["-1"] else "auto", "--gpu_id"):
        trainer = PixelNeRFTrainer(cfg)
        obj = trainer.objects
        n_params = sum(p.numel() for p in trainer.net.parameters())
        main = distributed.is_main()
        world = distributed.world_size()
        if main:
            where = f"{world} processes, e.g. {trainer.device}" if world > 1 else str(trainer.device)
            print(
                f"pixelnerf train: {cfg.name} ({trainer.config.name}, {n_params / 1e6:.2f} M parameters"
                f"{', encoder frozen' if trainer.frozen else ''}) on {where} ({trainer.precision}); "
                f"{len(obj)} objects x {int(obj.num_views.max())} views of {obj.width}x{obj.height}, "
                f"near/far {obj.near:g}/{obj.far:g}; "
                + (f"resuming at step {trainer.step}" if trainer.step else "from step 0")
            )
            if not cfg.resume and trainer.config.model.encoder.pretrained and trainer.step == 0:
                print("  note: no ImageNet weights offline: the encoder starts from random weights")
        summary = trainer.run()
    if not main:
        return 0
    rate = summary.steps_this_run / summary.seconds if summary.seconds > 0 else 0.0
    loss = f"{summary.last_loss:.5f}" if summary.last_loss is not None else "n/a"
    val = f"{summary.val_psnr:.2f} dB" if summary.val_psnr is not None else "n/a"
    print(
        f"  {summary.steps_this_run} steps in {summary.seconds:.1f} s ({rate:.2f} steps/s, loading included); "
        f"at step {summary.step}: loss {loss}, validation PSNR {val}"
    )
    print(f"  checkpoint: {summary.folder}/pixel_nerf_latest")
    return 0
