"""``inerf pixelnerf metrics``: PSNR / SSIM / LPIPS tables of rendered held-out views (the published
``eval/calc_metrics.py``, same flags; see :mod:`inerf.eval.pixelnerf_metrics`)."""

from __future__ import annotations

import dataclasses


def add_metrics_parser(sub) -> None:
    """Register ``metrics`` on the ``inerf pixelnerf`` sub-command parser ``sub``."""
    from inerf.eval.pixelnerf_metrics import FORMATS

    p = sub.add_parser(
        "metrics",
        help="PSNR / SSIM / LPIPS per object and overall of rendered views (published calc_metrics.py)",
        description="Score the renders of `inerf pixelnerf eval` (<output>/<object>/<view:06d>.png) against "
        "the dataset's ground truth: PSNR, SSIM (scikit-image defaults) and LPIPS (VGG) per view, the mean "
        "per object (<output>/<object>/metrics.txt, skipped when present unless --overwrite) and the mean "
        "over objects (and per category with --multicat): all_metrics.txt, metrics_overall.csv, "
        "metrics_objects.csv, metrics_views.csv, metrics.md and metrics.json in --output, rewritten on "
        "every run. Flags follow the published eval/calc_metrics.py.",
    )
    p.add_argument(
        "-D",
        "--datadir",
        required=True,
        help="folder holding the object folders (SRN: the split folder, e.g. cars_test; DVR: a category "
        "folder); with --multicat the dataset root holding one folder per category (NMR_Dataset)",
    )
    p.add_argument(
        "-O",
        "--output",
        default="eval",
        help="renders written by eval: <output>/<object>/ (default: %(default)s)",
    )
    p.add_argument(
        "-F",
        "--dataset_format",
        default="dvr",
        choices=list(FORMATS),
        help="srn (ground truth in <object>/rgb/), dvr (<object>/image/, objects from <list_name>.lst), "
        "dvr_gen / dvr_dtu (dvr with the gen_test / new_val list), nerf (images in <object>/) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--list_name",
        default=None,
        help="DVR object list <list_name>.lst per category (default: softras_test; gen_test for dvr_gen, "
        "new_val for dvr_dtu)",
    )
    p.add_argument(
        "--multicat", action="store_true", help="categories under -D; render folders <category>_<object>"
    )
    p.add_argument(
        "-L",
        "--viewlist",
        default=None,
        help="source-view list (e.g. src_dvr.txt: 'category object view ...' per line); those views are not "
        "scored",
    )
    p.add_argument(
        "--eval_view_list", default=None, help="score only the views on the first line of this file"
    )
    p.add_argument(
        "-P", "--primary", default="", help="space-separated views not to score (the source views)"
    )
    p.add_argument(
        "--exclude_dtu_bad", action="store_true", help="do not score DTU views 3-7, 16-21 and 36-39"
    )
    p.add_argument(
        "--dtu_sort",
        action="store_true",
        help="order objects by scan number (scan8 before scan21) instead of by name",
    )
    p.add_argument(
        "--lpips_batch_size",
        type=int,
        default=32,
        help="images per LPIPS network call (default: %(default)s)",
    )
    p.add_argument(
        "--lpips_net",
        default="vgg",
        choices=["vgg", "alex"],
        help="LPIPS backbone (default: %(default)s, as pixelNeRF reports)",
    )
    p.add_argument(
        "-R",
        "--reduce_only",
        action="store_true",
        help="skip scoring; only aggregate existing metrics.txt files",
    )
    p.add_argument(
        "--metadata",
        default="metadata.yaml",
        help='with --multicat: category names, JSON {id: {"name": ...}} under -D (default: %(default)s; '
        "category ids are used if it is absent)",
    )
    p.add_argument("--overwrite", action="store_true", help="recompute objects that have a metrics.txt")
    p.add_argument(
        "--gpu_id",
        type=int,
        default=0,
        help="GPU for LPIPS (default: %(default)s; the CPU if none, or if < 0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_metrics_command)


def run_metrics_command(args) -> int:
    import torch

    from inerf.eval.pixelnerf_metrics import MetricsConfig, run_metrics
    from inerf.pixelnerf.config import parse_ints

    primary = tuple(parse_ints(args.primary, "-P/--primary"))
    device = f"cuda:{args.gpu_id}" if args.gpu_id >= 0 and torch.cuda.is_available() else "cpu"
    # Each flag is named as the config field it sets (the published calc_metrics.py's names); the device
    # comes from --gpu_id and -P is parsed above.
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(MetricsConfig) if f.name != "device"}
    config = MetricsConfig(**{**given, "primary": primary, "device": device})
    summary = run_metrics(config, reduce_only=args.reduce_only, progress=not args.quiet)
    m = summary.map_result
    if m is not None:
        print(
            f"pixelnerf metrics: {m.n_available} of {m.n_objects} objects rendered in {config.output}; "
            f"scored {m.n_computed}, {m.n_existing} already had metrics.txt"
            + ("" if config.overwrite or not m.n_existing else " (--overwrite recomputes them)")
        )
        if m.empty:
            print(
                f"  no view to score in {len(m.empty)} folder(s): {', '.join(m.empty[:5])}"
                + (" ..." if len(m.empty) > 5 else "")
            )
    if summary.skipped:
        print(
            f"  not included (no metrics.txt): {', '.join(summary.skipped[:5])}"
            + (" ..." if len(summary.skipped) > 5 else "")
        )
    for g in [*summary.categories, summary.total]:
        print(
            f"  {g.name:12s} psnr {g.psnr:.3f}  ssim {g.ssim:.4f}  lpips ({config.lpips_net}) {g.lpips:.4f}"
            f"  ({g.n_objects} object{'s' if g.n_objects != 1 else ''})"
        )
    print(
        f"  wrote {summary.files['all_metrics']}, {summary.files['markdown'].name}, "
        f"{summary.files['overall_csv'].name}, {summary.files['objects_csv'].name}, "
        f"{summary.files['views_csv'].name}, {summary.files['json'].name}"
    )
    return 0
