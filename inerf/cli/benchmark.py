"""``inerf benchmark``: evaluation protocols, one sub-command each.

* ``inerf benchmark pose``: the iNeRF paper's pose-estimation protocol (random starts around test views,
  success rate at steps 50/100/200/300 per sampling strategy); see :mod:`inerf.pose.protocol`.

Example (the paper's chair experiment)::

    inerf benchmark pose --run runs/chair --split test --images 5 --trials 5 --perturb-rot 40 \\
        --perturb-trans 0.1 --sampling random,interest_points,interest_region --out bench/chair

Under ``torchrun --nproc_per_node N -m inerf.cli.main -- benchmark pose ...`` the N processes split the views
(each on its own GPU) and rank 0 writes the one table, equal to the one-process table
(:func:`inerf.pose.protocol.map_views`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from inerf.cli.common import HelpFormatter, add_out, add_run, prepare_out_dir
from inerf.cli.config_args import ConfigFlags
from inerf.errors import InerfError
from inerf.pose.config import PAPER, STRATEGIES

DEFAULT_STRATEGIES = ("random", "interest_points", "interest_region")
"""The strategies the iNeRF paper compares."""


def _strategies(text: str) -> tuple[str, ...]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown sampling strategy {', '.join(bad) or text!r}; choose from {', '.join(STRATEGIES)}"
        )
    return tuple(names)


def _protocol_flags() -> ConfigFlags:
    from inerf.pose.protocol import ProtocolConfig

    return ConfigFlags(
        ProtocolConfig,
        key="protocol",
        # --perturb-trans, --perturb-sampling, --perturb-pivot as inerf estimate spells them
        names={
            "perturbation.rot_deg": "--perturb-rot",
            "success.rot_deg": "--rot-thresh",
            "success.trans": "--trans-thresh",
        },
        prefixes={"perturbation": "perturb-", "success": ""},
        skip={"seed"},  # the solver's --seed seeds both
        help={
            "checkpoints": "steps at which the table reports success rates and errors (default: 50,100,200,300 "
            "for 300 steps; the same fractions of another --steps)"
        },
    )


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
    from inerf.cli.pose_options import (
        add_global_arguments,
        add_pose_output_arguments,
        add_uncertainty_arguments,
    )
    from inerf.pose.protocol import ProtocolConfig

    p = sub.add_parser(
        "pose",
        help="iNeRF pose-estimation protocol: success rate vs steps per sampling strategy",
        description="The iNeRF protocol: for each of --images test views and --trials random starts, solve with "
        "each sampling strategy and report the success rate (rotation error < --rot-thresh and translation error "
        "< --trans-thresh) at --checkpoints steps. The starts are the paper's by default: the ground truth turned "
        "by an angle uniform in [-perturb-rot, perturb-rot] degrees about a random axis through the world origin "
        "(which also moves the camera centre along an arc) and shifted uniformly in [-perturb-trans, "
        "perturb-trans] per axis; --perturb-sampling exact --perturb-pivot camera gives starts exactly "
        "--perturb-rot / --perturb-trans off, as inerf estimate and inerf demo draw them (see "
        "inerf.pose.perturb). Writes results.md, results.csv, trials.csv, results.json and success_curve.png "
        "to --out. Under torchrun (torchrun --nproc_per_node N -m inerf.cli.main -- benchmark pose ...) the "
        "processes split the views and rank 0 writes the same table as one process.",
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("data")
    add_run(g)
    g.add_argument(
        "--data", metavar="DIR", default=None, help="dataset folder (default: the run's training data)"
    )
    g.add_argument("--split", default="test", help="dataset split whose views are the targets")
    g.add_argument(
        "--sampling",
        type=_strategies,
        metavar="STRATEGY[,STRATEGY...]",
        default=DEFAULT_STRATEGIES,
        help=f"comma-separated strategies to compare ({', '.join(STRATEGIES)})",
    )
    _protocol_flags().add_to(p, ProtocolConfig(), title="protocol")
    add_solver_arguments(p)
    add_global_arguments(p, what="every view's pose")
    add_uncertainty_arguments(p)
    add_pose_output_arguments(p, what="every trial's final pose (named STRATEGY_VIEW_trialK)")
    add_out(p, "the tables and the plot")
    p.set_defaults(func=run_pose)


def protocol_from_args(args, steps: int):
    """The :class:`ProtocolConfig` of the command line for a solve of ``steps`` steps: the paper's
    checkpoints (of its 300 steps) at the same fractions of ``steps``, unless ``--checkpoints`` is typed."""
    from inerf.pose.protocol import ProtocolConfig

    base = ProtocolConfig(seed=args.seed)
    if steps != PAPER.steps:
        base = replace(
            base, checkpoints=tuple(max(1, round(c * steps / PAPER.steps)) for c in base.checkpoints)
        )
    protocol = _protocol_flags().build(base, args)
    if protocol.checkpoints and protocol.checkpoints[-1] > steps:
        raise InerfError(
            f"--checkpoints {','.join(map(str, protocol.checkpoints))}: goes to step {protocol.checkpoints[-1]} "
            f"but the solve has {steps} steps (--steps)"
        )
    return protocol


def run_pose(args) -> int:
    from inerf import distributed

    with distributed.session(args.device):  # joins the process group under torchrun, else does nothing
        return _run_pose(args)


def _run_pose(args) -> int:
    from inerf import distributed
    from inerf.cli.common import resolve_device, warn_if_undertrained
    from inerf.cli.estimate import (
        check_background,
        load_run_checked,
        pose_config_from_args,
        sampling_config_from_args,
    )
    from inerf.cli.pose_options import (
        camera_prior,
        global_config_from_args,
        model_error_from_args,
        pose_output_from_args,
        uncertainty_config_from_args,
        use_global_preset,
    )
    from inerf.pose.protocol import run_pose_benchmark, write_report

    main = distributed.is_main()  # under torchrun: rank 0 prints and writes; every rank solves its views
    use_global_preset(args)
    pose_output_from_args(args)  # a misspelt --pose-format fails before any work
    config = pose_config_from_args(args, args.sampling[0])
    global_config, uncertainty = global_config_from_args(args), uncertainty_config_from_args(args)
    protocol = protocol_from_args(args, config.steps)
    strategies = [sampling_config_from_args(args, s) for s in dict.fromkeys(args.sampling)]
    out = distributed.run_on_main(lambda: prepare_out_dir(args.out, args.overwrite))
    own = distributed.device()  # under torchrun: this process's device, from --device
    device = resolve_device(args.device if own is None else str(own), args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    if main:
        warn_if_undertrained(run_, "benchmark")
    views = run_.dataset.load(args.split, run_dir=run_.run_dir, root=args.data)
    check_background(views, run_.model.config.background)
    log = (lambda *a, **k: None) if args.quiet or not main else print
    model_error = model_error_from_args(args, run_.run_dir, log=log) if uncertainty is not None else None
    shard = distributed.world_size() > 1
    if args.global_search:
        from inerf.pose.global_protocol import run_global_benchmark

        prior = camera_prior(run_, args.data, log=log)
        result = run_global_benchmark(
            run_.model,
            views,
            prior,
            strategies,
            config,
            protocol,
            global_config,
            device=device,
            progress=not args.quiet and main,
            log=log,
            uncertainty=uncertainty,
            shard_views=shard,
            model_error=model_error,
        )
    else:
        result = run_pose_benchmark(
            run_.model,
            views,
            strategies,
            config,
            protocol,
            device=device,
            progress=not args.quiet and main,
            log=log,
            uncertainty=uncertainty,
            shard_views=shard,
            model_error=model_error,
        )
    result.meta.update(
        {
            "run": str(args.run),
            "data": str(views.root),
            "split": args.split,
            "tf32": bool(device.type == "cuda" and args.tf32),
            "model": run_.kind,
            "samples_per_ray": run_.model.config.n_coarse,
            "model_error": None if model_error is None else model_error.source,
        }
    )
    if not main:
        return 0
    paths = write_report(result, out)
    paths.update(_write_trial_poses(args, run_, views, result, out))
    print(paths["markdown"].read_text(encoding="utf-8"), end="")
    tops = dict.fromkeys(p.relative_to(out).parts[0] for p in paths.values())
    print(f"wrote {out}/: " + ", ".join(t + ("/" if (out / t).is_dir() else "") for t in tops))
    return 0


def _write_trial_poses(args, run_, views, result, out) -> dict:
    """``--pose-format``: every trial's final pose, named ``STRATEGY_VIEW_trialK`` (plus the image's suffix)."""
    from pathlib import Path

    import torch

    from inerf.cli.pose_options import pose_output_from_args, run_scene_transform
    from inerf.pose.pose_files import pinhole_of, write_pose_files

    output = pose_output_from_args(args, run_scene_transform(run_, args.data, views), run=str(args.run))
    if not output.formats:
        return {}
    trials = result.trials
    names = [
        f"{t['strategy']}_{Path(t['name']).stem}_trial{t['trial']}{Path(t['name']).suffix or '.png'}"
        for t in trials
    ]
    return write_pose_files(
        out,
        torch.tensor([t["final_c2w"] for t in trials], dtype=torch.float64),
        output,
        names=names,
        intrinsics=[pinhole_of(views.cameras, t["view"]) for t in trials],
    )
