"""``inerf benchmark``: evaluation protocols, one sub-command each.

* ``inerf benchmark pose``: the iNeRF paper's pose-estimation protocol (random starts around test views,
  success rate at steps 50/100/200/300 per sampling strategy); see :mod:`inerf.pose.protocol`.

Example (the paper's chair experiment)::

    inerf benchmark pose --run runs/chair --split test --images 5 --trials 5 --perturb-rot 40 \\
        --perturb-trans 0.1 --sampling random,interest_points,interest_region --out bench/chair
"""

from __future__ import annotations

import argparse

from inerf.cli.estimate import _ints
from inerf.errors import InerfError
from inerf.pose.config import STRATEGIES


def _strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown sampling strategy {', '.join(bad) or text!r}; choose from {', '.join(STRATEGIES)}"
        )
    return names


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run evaluation protocols (pose: the iNeRF protocol)",
        description="Run evaluation protocols. Sub-commands: pose.",
    )
    sub = parser.add_subparsers(dest="benchmark_command", metavar="BENCHMARK")
    parser.set_defaults(func=lambda args: (parser.print_help(), 1)[1])
    _add_pose(sub)


def _add_pose(sub) -> None:
    from inerf.cli.estimate import add_solver_arguments
    from inerf.pose.protocol import ProtocolConfig

    d = ProtocolConfig()
    p = sub.add_parser(
        "pose",
        help="iNeRF pose-estimation protocol: success rate vs steps per sampling strategy",
        description="The iNeRF protocol: for each of --images test views and --trials random starts (rotation about "
        "a uniformly random axis by an angle uniform in [-perturb-rot, perturb-rot] degrees, translation uniform in "
        "[-perturb-trans, perturb-trans] per axis), solve with each sampling strategy and report the success rate "
        "(rotation error < --rot-thresh and translation error < --trans-thresh) at --checkpoints steps. Writes "
        "results.md, results.csv, trials.csv, results.json and success_curve.png to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("protocol")
    g.add_argument("--run", required=True, help="run directory written by `inerf train`")
    g.add_argument("--data", default=None, help="dataset folder (default: the run's training data)")
    g.add_argument("--split", default="test", help="dataset split whose views are the targets")
    g.add_argument("--images", type=int, default=d.images, help="views used, evenly spaced over the split")
    g.add_argument("--image-ids", type=_ints, default=None, help="explicit view indices (overrides --images)")
    g.add_argument("--trials", type=int, default=d.trials, help="random starts per view")
    g.add_argument(
        "--perturb-rot", type=float, default=d.perturb_rot, help="maximum start rotation error (degrees)"
    )
    g.add_argument(
        "--perturb-trans",
        type=float,
        default=d.perturb_trans,
        help="maximum start translation offset per axis (scene units)",
    )
    g.add_argument(
        "--perturb-frame",
        choices=["world", "camera"],
        default=d.perturb_frame,
        help="perturb about the world origin (D @ c2w) or about the camera (c2w @ D)",
    )
    g.add_argument(
        "--rot-thresh", type=float, default=d.rot_thresh, help="success: rotation error below (degrees)"
    )
    g.add_argument(
        "--trans-thresh", type=float, default=d.trans_thresh, help="success: translation error below"
    )
    g.add_argument("--checkpoints", type=_ints, default=d.checkpoints, help="steps reported in the table")
    g.add_argument(
        "--sampling",
        type=_strategies,
        default=["random", "interest_points", "interest_region"],
        help=f"comma-separated strategies to compare ({', '.join(STRATEGIES)})",
    )
    g.add_argument(
        "--hypotheses",
        type=int,
        default=d.hypotheses,
        help="hypotheses per trial: the perturbed start plus random starts around it",
    )
    g.add_argument(
        "--spread-rot",
        type=float,
        default=None,
        help="rotation spread (degrees) of the extra hypotheses (default: --perturb-rot)",
    )
    g.add_argument(
        "--spread-trans",
        type=float,
        default=None,
        help="translation spread per axis of the extra hypotheses (default: --perturb-trans)",
    )
    add_solver_arguments(p)
    o = p.add_argument_group("outputs")
    o.add_argument("--out", required=True, help="output folder for the tables and the plot")
    o.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=run_pose)


def run_pose(args) -> int:
    from inerf.cli.estimate import (
        check_background,
        load_run_checked,
        pose_config_from_args,
        prepare_out_dir,
        resolve_device,
        sampling_config_from_args,
    )
    from inerf.pose.protocol import ProtocolConfig, run_pose_benchmark, write_report

    try:
        protocol = ProtocolConfig(
            images=args.images,
            image_ids=args.image_ids,
            trials=args.trials,
            perturb_rot=args.perturb_rot,
            perturb_trans=args.perturb_trans,
            perturb_frame=args.perturb_frame,
            rot_thresh=args.rot_thresh,
            trans_thresh=args.trans_thresh,
            checkpoints=args.checkpoints,
            hypotheses=args.hypotheses,
            spread_rot=args.spread_rot,
            spread_trans=args.spread_trans,
            seed=args.seed,
        )
    except ValueError as exc:
        raise InerfError(str(exc)) from None
    if protocol.checkpoints and protocol.checkpoints[-1] > args.steps:
        raise InerfError(f"--checkpoints goes to step {protocol.checkpoints[-1]} but --steps is {args.steps}")
    config = pose_config_from_args(args, args.sampling[0])
    strategies = [sampling_config_from_args(args, s) for s in dict.fromkeys(args.sampling)]
    out = prepare_out_dir(args.out, args.overwrite)
    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    views = run_.dataset.load(args.split, run_dir=run_.run_dir, root=args.data)
    check_background(views, run_.model.config.background)
    log = (lambda *a, **k: None) if args.quiet else print
    result = run_pose_benchmark(
        run_.model,
        views,
        strategies,
        config,
        protocol,
        device=device,
        progress=not args.quiet,
        log=log,
    )
    result.meta.update(
        {
            "run": str(args.run),
            "data": str(views.root),
            "split": args.split,
            "tf32": bool(device.type == "cuda" and args.tf32),
            "model": run_.kind,
            "samples_per_ray": run_.model.config.n_coarse,
        }
    )
    paths = write_report(result, out)
    print(paths["markdown"].read_text(encoding="utf-8"), end="")
    print(f"wrote {out}/: " + ", ".join(p.name for p in paths.values()))
    return 0
