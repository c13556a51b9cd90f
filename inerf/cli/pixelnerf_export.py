"""``inerf pixelnerf export``: a training run's checkpoint as a model folder (float16 safetensors, config,
camera statistics, held-out examples; see :mod:`inerf.pixelnerf.bundle`), e.g. the model inerf ships."""

from __future__ import annotations

from inerf.errors import InerfError


def add_export_parser(sub) -> None:
    """Register ``export`` on the ``inerf pixelnerf`` sub-command parser ``sub``."""
    p = sub.add_parser(
        "export",
        help="write a trained run as a model folder (float16 weights, config, examples)",
        description="Write the checkpoint of `inerf pixelnerf train -n NAME` as a model folder: "
        "model.safetensors (float16 by default), pixelnerf.conf, model.json (camera statistics, training "
        "summary) and, with --examples-from, a few held-out objects in the SRN layout (examples_test/). "
        "`inerf pixelnerf video/pose --model DIR` read it; inerf ships one in inerf/assets/pixelnerf/chairs.",
    )
    p.add_argument("-n", "--name", required=True, help="experiment name: <checkpoints_path>/<name>/")
    p.add_argument("--checkpoints_path", default="checkpoints", help="(default: %(default)s)")
    p.add_argument("-G", "--exp_group_name", default=None, help="sub-folder of checkpoints_path")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument(
        "--model-name", default=None, help="name recorded in model.json (default: the experiment name)"
    )
    p.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "bfloat16", "float32"],
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--examples-from",
        default=None,
        help="an SRN split folder of held-out objects (e.g. chairs_test) to copy examples from",
    )
    p.add_argument("--examples", type=int, default=3, help="objects to copy (default: %(default)s)")
    p.add_argument(
        "--example-views",
        default="0 6 12 18",
        help="view indices to copy of each object (default: %(default)s)",
    )
    p.add_argument(
        "--radius", type=float, default=None, help="camera distance of the data (default: --examples-from's)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    import torch

    from inerf.pixelnerf.bundle import export_bundle, read_bundle
    from inerf.pixelnerf.config import parse_ints
    from inerf.pixelnerf.train import checkpoint_dir

    views = tuple(parse_ints(args.example_views, "--example-views"))
    if args.examples < 1 or not views:
        raise InerfError("--examples and --example-views need at least one object and one view")
    out = export_bundle(
        checkpoint_dir(args.checkpoints_path, args.name, args.exp_group_name),
        args.out,
        name=args.model_name or args.name,
        dtype=getattr(torch, args.dtype),
        examples_from=args.examples_from,
        n_examples=args.examples,
        example_views=views,
        radius=args.radius,
        overwrite=args.overwrite,
    )
    bundle = read_bundle(out)
    size = bundle.weights.stat().st_size / 1e6
    cam = bundle.camera
    print(
        f"pixelnerf export: {out} ({bundle.meta['parameters'] / 1e6:.2f} M parameters, {size:.1f} MB "
        f"{bundle.meta['dtype']}; step {bundle.meta['training']['steps']}; focal {cam['focal']:g} at "
        f"{cam['image_size'][1]}x{cam['image_size'][0]}, radius {cam['radius']:g}, near/far "
        f"{cam['near']:g}/{cam['far']:g})"
    )
    return 0
