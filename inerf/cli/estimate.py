"""``inerf estimate``: the camera pose of one image by inverting a trained radiance field (iNeRF).

Examples::

    # a dataset view, starting 30 degrees / 0.1 off its ground truth
    inerf estimate --run runs/chair --view 3 --init-from-gt --perturb-rot 30 --perturb-trans 0.1 --out est/
    # any image with its intrinsics and a starting pose
    inerf estimate --run runs/chair --image photo.png --intrinsics data/chair/transforms_test.json \\
        --init start.json --out est/ --sampling interest_region
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from inerf.cli.common import (
    HelpFormatter,
    add_device,
    add_out,
    add_quiet,
    add_run,
    check_out_dir,
    input_file,
    prepare_out_dir,
    resolve_device,
    warn_if_undertrained,
)
from inerf.cli.config_args import ConfigFlags, Given, finite_float
from inerf.cli.pose_options import (
    PERTURB_FLAGS,
    add_global_arguments,
    add_intrinsics_arguments,
    add_uncertainty_arguments,
    camera_prior,
    global_config_from_args,
    intrinsics_from_args,
    uncertainty_config_from_args,
    use_global_preset,
)
from inerf.errors import InerfError
from inerf.pose.config import FAST, PAPER, ROBUST, STRATEGIES, PoseConfig, SamplingConfig

PRESETS = {"paper": PAPER, "robust": ROBUST, "fast": FAST}
"""``--preset`` name -> the config it starts from (:mod:`inerf.pose.config`)."""

POSE_FLAGS = ConfigFlags(
    PoseConfig,
    key="pose",
    # Spellings kept from before the flags were derived: Adam's and the sampler's fields have no prefix.
    prefixes={"adam": "", "sampling": ""},
    names={
        "n_rays": "--rays",
        "blur.sigma": "--blur-sigma",
        "adam.betas": "--adam-betas",
        "adam.eps": "--adam-eps",
        "sampling.dilate_iterations": "--dilate-iters",
        "sampling.strategy": "--sampling",
    },
    aliases={"blur.sigma": ("--blur",), "sampling.dilate_iterations": ("--dilate-iterations",)},
    skip={"sampling.strategy"},  # each verb spells it: one strategy (estimate) or a list (benchmark)
)
"""The solver's flags, one per :class:`PoseConfig` field (``--lr``, ``--lm-steps``, ``--blur``, ...)."""


def _preset_help() -> str:
    r, f = ROBUST, FAST
    return (
        "the solver to start from: the flags you type replace its values, and --steps N rescales its phases "
        "(blur, LM, learning-rate decay, pruning) to N steps. "
        f"paper: the iNeRF paper's (Adam, {PAPER.steps} steps, {PAPER.n_rays} rays, lr x{PAPER.adam.lr_decay:g} "
        f"per {PAPER.adam.lr_decay_steps} steps at any --steps; the defaults below); "
        f"robust: plus a coarse-to-fine blur ({r.blur.sigma:g} pixels, gone after {r.blur.steps} steps) and "
        f"{r.lm.steps} final Levenberg-Marquardt steps, 100%% instead of 72%% success on the paper's protocol "
        f"at about twice the cost (BENCHMARKS.md); fast: {f.steps} steps, {f.n_rays} rays, lr {f.adam.lr:g} "
        "(quick CPU previews)"
    )


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the solver shared by ``inerf estimate``, ``inerf benchmark pose`` and ``inerf pixelnerf pose``:
    ``--preset``, one flag per :class:`PoseConfig` field (defaults shown: the paper preset's), and the run's
    ``--samples``, ``--device``, ``--tf32``, ``--seed``, ``--quiet``."""
    g = parser.add_argument_group(
        "solver", "Defaults shown are the paper preset's; another --preset changes some of them."
    )
    g.add_argument(
        "--preset", choices=tuple(PRESETS), default=None, help=_preset_help() + " (default: paper)"
    )
    POSE_FLAGS.add_to(parser, PAPER, title="solver", group=g)
    add_run_options(parser)


def add_run_options(parser, seed_help: str = "seeds the pixel sampling and any random start poses"):
    """The ``run`` group of the pose verbs: ``--samples``, ``--device``, ``--tf32``, ``--seed``, ``--quiet``;
    returns it."""
    g = parser.add_argument_group("run")
    g.add_argument(
        "--samples",
        type=int,
        default=None,
        help="stratified samples per ray for the pose renders (default: the run's own; a grid field "
        "trained at high resolution renders nearly as well with 128-256 and several times faster)",
    )
    add_device(g)
    g.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="allow TensorFloat-32 matrix products on CUDA (faster field evaluation)",
    )
    g.add_argument("--seed", type=int, default=0, help=seed_help)
    add_quiet(g)
    return g


def sampling_config_from_args(args, strategy: str) -> SamplingConfig:
    """The sampler of ``pose_config_from_args(args, strategy)`` (``inerf benchmark pose`` compares several)."""
    return pose_config_from_args(args, strategy).sampling


def pose_config_from_args(args, strategy: str) -> PoseConfig:
    """The solver config of the command line: ``--preset`` (rescaled to ``--steps`` when given, see
    :meth:`PoseConfig.with_steps`) with the other typed flags replacing its values."""
    if getattr(args, "samples", None) is not None and args.samples < 3:
        raise InerfError(f"--samples {args.samples}: must be at least 3")
    base = PRESETS[getattr(args, "preset", None) or "paper"]
    given = POSE_FLAGS.given(args)
    steps = given.pop(("steps",), None)
    if steps is not None:
        try:
            # The paper's solver has no phases: its learning rate decays x0.8 per 100 steps at any length (as
            # the paper's code), which also keeps every recorded command line reproducing.
            base = replace(base, steps=steps.value) if base is PAPER else base.with_steps(steps.value)
        except ValueError as exc:
            raise InerfError(f"{steps}: {POSE_FLAGS.spell_fields(str(exc))}") from None
    given[("sampling", "strategy")] = Given(strategy, "--sampling", strategy)
    return POSE_FLAGS.build(base, given)


def load_run_checked(run_dir: str, device, samples: int | None = None):
    """:func:`inerf.train.checkpoint.load_run` with the run directory's existence checked first; ``samples``
    overrides the run's stratified samples per ray (``--samples``)."""

    from inerf.train.checkpoint import load_run

    if not Path(run_dir).is_dir():
        raise InerfError(f"--run {run_dir}: run directory not found")
    run_ = load_run(run_dir, device)
    if samples is not None:
        run_.model = run_.model.with_config(n_coarse=samples)
    return run_


def check_background(views, background) -> None:
    """The dataset's images must be composited on the colour the model renders behind the scene."""
    if views.background is None or any(abs(a - b) > 1e-6 for a, b in zip(views.background, background)):
        raise InerfError(
            f"the dataset images are composited on {views.background} but the model renders on "
            f"{tuple(background)}"
        )


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate",
        help="estimate the camera pose of an image by inverting a trained field (iNeRF)",
        description="Estimate the 6DoF camera pose (camera-to-world, OpenCV axes) of an RGB image by gradient "
        "descent through a trained radiance field: c2w = exp(xi) @ c2w_init, xi optimised with Adam on the "
        "photometric error of sampled pixels (iNeRF, Yen-Chen et al. 2021).",
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("inputs")
    add_run(g)
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--image", metavar="FILE", help="target image (PNG/JPG; RGBA is composited on the model's background)"
    )
    src.add_argument(
        "--view",
        type=int,
        metavar="N",
        help="use view N of the dataset split as target (image, intrinsics and ground-truth pose)",
    )
    g.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="dataset folder for --view (default: the run's training data)",
    )
    g.add_argument("--split", default="test", help="dataset split for --view")
    add_intrinsics_arguments(g)
    init = g.add_mutually_exclusive_group()
    init.add_argument(
        "--init", metavar="POSE_FILE", help="initial camera-to-world pose (JSON with 'c2w', TXT or NPY 4x4)"
    )
    init.add_argument(
        "--init-from-gt",
        action="store_true",
        help="start from the ground truth (--gt or --view) moved by --perturb-rot / --perturb-trans (below)",
    )
    g.add_argument(
        "--gt", metavar="POSE_FILE", help="ground-truth camera-to-world pose file, to report errors"
    )
    g.add_argument(
        "--pose-convention",
        choices=["opencv", "opengl"],
        default=None,
        help="camera axes of pose files that do not state them (default opencv: x right, y down, z "
        "forward; opengl/Blender: y up, z backward)",
    )
    from inerf.pose.perturb import Perturbation

    start = p.add_argument_group(
        "start from the ground truth (--init-from-gt)",
        "The start is the ground truth moved as inerf.pose.perturb defines it (the same in inerf demo and "
        "inerf benchmark pose): by default turned by exactly --perturb-rot degrees about a random axis "
        "through the camera centre and shifted by exactly --perturb-trans, so the start errors are exactly "
        "those. The draw is seeded by --seed and the --view index (0 for --gt).",
    )
    PERTURB_FLAGS.add_to(p, Perturbation(), group=start)
    h = p.add_argument_group("hypotheses")
    h.add_argument(
        "--hypotheses",
        type=int,
        default=1,
        help="optimise this many starts at once (the initial pose and random poses around it) and return "
        "the lowest-loss one",
    )
    h.add_argument(
        "--spread-rot",
        type=finite_float,
        default=30.0,
        help="extra hypotheses: rotation uniform in [-spread, spread] degrees about a random axis through "
        "the world origin (the scene centre, so they keep it in view)",
    )
    h.add_argument(
        "--spread-trans",
        type=finite_float,
        default=0.1,
        help="extra hypotheses: translation uniform in [-spread, spread] per axis",
    )
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--sampling",
        choices=STRATEGIES,
        default=SamplingConfig().strategy,
        help="which pixels to render each step",
    )
    add_solver_arguments(p)
    add_global_arguments(p)
    add_uncertainty_arguments(p)
    o = add_out(p, "pose.json, trajectory.csv, frames, GIF/MP4, plot")
    o.add_argument("--frames", type=int, default=20, help="overlay frames spread over the solve (0 = none)")
    o.add_argument(
        "--frame-size",
        type=int,
        default=None,
        help="render frames with the long side at most this many pixels (default: 400 on CUDA, 96 on "
        "the CPU, where every frame is a full render)",
    )
    o.add_argument("--fps", type=finite_float, default=5.0, help="frame rate of the GIF and MP4")
    o.add_argument("--no-video", action="store_true", help="write frames but no GIF/MP4")
    p.set_defaults(func=run)


def _intrinsics(args, width: int, height: int, dataset_camera=None):
    """The target's camera: the typed intrinsics flags, else the dataset view's camera (``--view``)."""
    camera_for = intrinsics_from_args(args)
    if camera_for is not None:
        return camera_for(width, height)
    if dataset_camera is not None:
        return dataset_camera
    raise InerfError("no intrinsics: give --intrinsics FILE or --fx (or use --view for a dataset image)")


def run(args) -> int:
    from inerf.data.image_io import read_image
    from inerf.geometry.conventions import check_rigid
    from inerf.pose.io import camera_to_json, composite_target, read_pose
    from inerf.pose.perturb import Perturbation, perturb, spread, start_pose
    from inerf.pose.report import OutputOptions, summary_lines, write_estimate_outputs
    from inerf.pose.sampling import PixelSampler
    from inerf.pose.solver import PoseTarget, estimate_pose

    if args.hypotheses < 1:
        raise InerfError(f"--hypotheses {args.hypotheses}: must be >= 1")
    if args.spread_rot < 0 or args.spread_trans < 0:
        raise InerfError(
            f"--spread-rot {args.spread_rot:g} --spread-trans {args.spread_trans:g}: must be >= 0"
        )
    if args.frames < 0:
        raise InerfError(f"--frames {args.frames}: must be >= 0")
    if args.frame_size is not None and args.frame_size < 1:
        raise InerfError(f"--frame-size {args.frame_size}: must be >= 1")
    if args.fps <= 0:
        raise InerfError(f"--fps {args.fps:g}: must be > 0")
    if args.view is not None and args.gt:
        raise InerfError("--gt and --view both give a ground truth; use one")
    if args.global_search and (args.init or args.init_from_gt or args.hypotheses > 1):
        raise InerfError("--global needs no --init, --init-from-gt or --hypotheses (see --global-keep)")
    if not args.init and not args.init_from_gt and not args.global_search:
        raise InerfError("no initial pose: give --init POSE, --init-from-gt or --global")
    if args.init_from_gt and not (args.gt or args.view is not None):
        raise InerfError("--init-from-gt needs a ground truth (--gt POSE or --view)")
    use_global_preset(args)
    config = pose_config_from_args(args, args.sampling)  # every solver flag checked before any work
    perturbation = PERTURB_FLAGS.build(Perturbation(), args)
    if PERTURB_FLAGS.given(args) and not args.init_from_gt:
        raise InerfError(f"{' '.join(map(str, PERTURB_FLAGS.given(args).values()))}: needs --init-from-gt")
    global_config, uncertainty_config = global_config_from_args(args), uncertainty_config_from_args(args)
    check_out_dir(args.out, args.overwrite)

    # Inputs that need no model first, so bad files fail fast.
    raw = intr = None
    if args.image:
        raw = read_image(input_file(args.image, "--image", "an image file"))
        intr = _intrinsics(args, raw.shape[1], raw.shape[0])
    init = (
        read_pose(input_file(args.init, "--init"), args.pose_convention, "initial pose")
        if args.init
        else None
    )
    gt = (
        read_pose(input_file(args.gt, "--gt"), args.pose_convention, "ground-truth pose") if args.gt else None
    )

    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    warn_if_undertrained(run_, "estimate")
    background = run_.model.config.background
    alpha = None
    if args.view is not None:
        views = run_.dataset.load(args.split, run_dir=run_.run_dir, root=args.data)
        if not 0 <= args.view < len(views):
            raise InerfError(f"--view {args.view}: the {args.split} split has {len(views)} views")
        check_background(views, background)
        image = views.images[args.view]
        alpha = views.alphas[args.view] if views.alphas is not None else None
        intr = _intrinsics(args, views.width, views.height, views.cameras[args.view])
        gt = views.cameras.c2w[args.view].double()
        target_name = f"{args.split}[{args.view}] {views.names[args.view]}"
    else:
        image, alpha = composite_target(raw, background)
        target_name = args.image

    if args.init_from_gt:  # drawn as inerf demo and inerf benchmark pose draw view --view's start
        init = start_pose(gt, perturbation, args.seed, args.view or 0)
    if not args.global_search:
        if args.init:  # a file; a start drawn from the ground truth is rigid and keeps its float64 bits
            init = check_rigid(init, "initial pose").double()
        starts = init[None]
    if args.hypotheses > 1:
        gen = torch.Generator().manual_seed(args.seed)
        around = spread(args.spread_rot, args.spread_trans)
        starts = torch.cat([starts, perturb(init, around, gen, (args.hypotheses - 1,))])

    target = PoseTarget(
        image=image.to(device),
        camera=intr.to(device),
        alpha=alpha.to(device) if alpha is not None else None,
    )
    found = None
    if args.global_search:
        from inerf.pose.global_search import localize

        prior = camera_prior(run_, args.data, log=(lambda *a: None) if args.quiet else print)
        found = localize(
            run_.model, target, prior, global_config, config, seed=args.seed, progress=not args.quiet
        )
        result, config = found.result, found.pose_config
    else:
        result = estimate_pose(
            run_.model,
            target,
            starts,
            config,
            seeds=args.seed,
            progress=not args.quiet,
            desc="iNeRF",
        )
    uncertainty = None
    if uncertainty_config is not None and result.status[0] == "ok":
        from inerf.pose.uncertainty import pose_uncertainty

        uncertainty = pose_uncertainty(run_.model, target, result.c2w[0], uncertainty_config, seed=args.seed)

    out = prepare_out_dir(args.out, args.overwrite)
    sampler = PixelSampler.for_target(target, config, device="cpu")
    meta = {
        "target": target_name,
        "run": str(args.run),
        "intrinsics": camera_to_json(intr),
        "tf32": bool(device.type == "cuda" and args.tf32),
        "config": asdict(config),
    }
    if found is not None:
        meta["global"] = found.record()
    from inerf.train.checkpoint import validation_psnr

    val_psnr = validation_psnr(run_)
    paths = write_estimate_outputs(
        out,
        result,
        target,
        run_.model,
        gt_c2w=gt,
        meta=meta,
        sampler=sampler,
        uncertainty=uncertainty,
        options=OutputOptions(
            frames=args.frames,
            max_side=args.frame_size or (400 if device.type == "cuda" else 96),
            fps=args.fps,
            video=not args.no_video,
            field_mse=None if val_psnr is None else 10 ** (-val_psnr / 10),
            loss=config.loss,
        ),
    )
    print(
        f"inerf estimate: {target_name} ({args.sampling} sampling, {config.n_rays} rays"
        + (f", {args.hypotheses} hypotheses" if args.hypotheses > 1 else "")
        + (
            f", global: {found.candidates.shape[1]} candidates, {found.chosen.shape[1]} refined"
            if found
            else ""
        )
        + ")"
    )
    for line in summary_lines(result, gt, uncertainty=uncertainty):
        print("  " + line)
    verdict = json.loads(paths["pose"].read_text(encoding="utf-8"))["convergence"]
    if verdict["verdict"] != "unknown":
        print(
            f"  {verdict['verdict']}: final MSE {verdict['ratio']:.1f}x the field's own validation MSE "
            f"(converged at <= {verdict['threshold']:g}x)"
        )
    names = [p.name + ("/" if p.is_dir() else "") for p in paths.values()]
    print(f"  wrote {out}/: " + ", ".join(names))
    if result.status[0] != "ok":
        step = int(result.failed_step[0].clamp_min(0).min())
        raise InerfError(
            f"the loss became NaN or infinite at step {step} for every hypothesis; {out}/pose.json holds "
            'the last finite pose (status "nan")'
        )
    return 0
