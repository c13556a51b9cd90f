"""``inerf pixelnerf eval``: render held-out views of held-out objects (the published ``eval/eval.py``, and
``eval_approx.py`` with ``--approx``; see :mod:`inerf.pixelnerf.evaluate`). ``inerf pixelnerf metrics``
scores the renders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from inerf.errors import InerfError


def add_eval_parser(sub) -> None:
    """Register ``eval`` on the ``inerf pixelnerf`` sub-command parser ``sub``."""
    from inerf.cli.pixelnerf_bundle import add_model_argument

    p = sub.add_parser(
        "eval",
        help="render held-out views from given source views (published eval.py / eval_approx.py)",
        description="Render every non-source view of every object of a split from the source views -P (or "
        "per object from -L) into <output>/<object>/<view:06d>.png, with PSNR and SSIM per object in "
        "<output>/finish.txt (objects listed there are skipped: rerunning resumes). Score the renders "
        "with `inerf pixelnerf metrics -D <split folder> -O <output> -P '<sources>'`. Flags follow the "
        "published eval/eval.py.",
    )
    p.add_argument(
        "-n",
        "--name",
        default=None,
        help="experiment name: <checkpoints_path>/<name>/pixel_nerf_latest (default: the shipped model)",
    )
    add_model_argument(p)
    p.add_argument(
        "-c", "--conf", default=None, help="config (default: the run's pixelnerf.conf or published)"
    )
    p.add_argument(
        "-D", "--datadir", default=None, help="dataset root (default with a model folder: its examples)"
    )
    p.add_argument("-F", "--dataset_format", default=None, help="srn | dvr | dvr_gen | dvr_dtu")
    p.add_argument("--split", default=None, choices=["train", "val", "test"], help="(default: test)")
    p.add_argument(
        "-P",
        "--source",
        default=None,
        help="source view indices, the same for every object; '-1' = one random view (default: 64, as "
        "published; 0 for a model folder's examples)",
    )
    p.add_argument(
        "-L", "--viewlist", default=None, help="per-object source views: 'category object view ...'"
    )
    p.add_argument("--eval_view_list", default=None, help="render only the views on this file's first line")
    p.add_argument("--include_src", action="store_true", help="also render the source views")
    p.add_argument("--exclude_dtu_bad", action="store_true", help="skip DTU views 3-7, 16-21 and 36-39")
    p.add_argument("--multicat", action="store_true", help="render folders <category>_<object>")
    p.add_argument("-O", "--output", default="eval", help="output folder (default: %(default)s)")
    p.add_argument("--coarse", action="store_true", help="coarse network for both passes (64 + 128 samples)")
    p.add_argument("--no_compare_gt", action="store_true", help="render only; no PSNR/SSIM")
    p.add_argument("--write_compare", action="store_true", help="also write <view>_compare.png (GT | render)")
    p.add_argument("--approx", action="store_true", help="eval_approx: one random target view per object")
    p.add_argument("--seed", type=int, default=1234, help="random views and samples (default: %(default)s)")
    p.add_argument(
        "-R", "--ray_batch_size", type=int, default=50000, help="rays per network call (default: %(default)s)"
    )
    p.add_argument("--deterministic", action="store_true", help="fixed sample positions (not published)")
    p.add_argument("--max_objects", type=int, default=None, help="only the first N objects of the split")
    p.add_argument("--overwrite", action="store_true", help="render again the objects in finish.txt")
    p.add_argument("--gpu_id", default="0", help="GPU id(s); the first is used; the CPU if none")
    p.add_argument("-G", "--exp_group_name", default=None, help="sub-folder of checkpoints_path")
    p.add_argument("--checkpoints_path", default="checkpoints", help="(default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval_command)


def run_eval_command(args) -> int:
    from inerf.cli.pixelnerf import open_split
    from inerf.cli.pixelnerf_bundle import choose_video_model
    from inerf.device import gpu_device
    from inerf.pixelnerf.evaluate import EvalConfig, run_eval
    from inerf.pixelnerf.model import load_pixelnerf

    chosen = choose_video_model(args)
    fmt = args.dataset_format or chosen.config.data_format or "dvr"
    datadir, split, source = args.datadir, args.split or "test", args.source
    if datadir is None:
        if chosen.bundle is None or chosen.bundle.examples_root is None:
            raise InerfError(
                "-D/--datadir is required (only a model folder with examples brings its own data)"
            )
        datadir, fmt = chosen.bundle.examples_root, "srn"
        source = source if source is not None else "0"
    source = source if source is not None else "64"
    dataset = open_split(fmt, datadir, split)
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and k != "source"}
    config = EvalConfig(**given, source=source)
    config.output = Path(config.output)
    device = gpu_device(args.gpu_id)
    net = load_pixelnerf(chosen.checkpoint, chosen.config, device=device)
    print(
        f"pixelnerf eval: {chosen.label} on {split} of {datadir} ({len(dataset)} objects), sources "
        f"{'from ' + str(args.viewlist) if args.viewlist else source}{', approx' if args.approx else ''}, on {device}"
    )
    summary = run_eval(net, dataset, config, progress=not args.quiet)
    for o in summary.objects:
        print(f"  {o.name}: psnr {o.psnr:.3f}  ssim {o.ssim:.4f}  ({o.views} views, sources {o.sources})")
    if summary.skipped:
        print(f"  {len(summary.skipped)} object(s) already in finish.txt (--overwrite renders them again)")
    print(
        f"  mean over {summary.n_finished} object(s): psnr {summary.psnr:.3f}  ssim {summary.ssim:.4f}  "
        f"-> {summary.output}/"
    )
    return 0
