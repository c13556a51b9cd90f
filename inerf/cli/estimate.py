"""``inerf estimate``: the camera pose of one image by inverting a trained radiance field (iNeRF).

Examples::

    # a dataset view, starting 30 degrees / 0.1 off its ground truth
    inerf estimate --run runs/chair --view 3 --init-from-gt --perturb-rot 30 --perturb-trans 0.1 --out est/
    # any image with its intrinsics and a starting pose; the pose also as a COLMAP images.txt and TUM line
    inerf estimate --run runs/chair --image photo.png --intrinsics data/chair/transforms_test.json \\
        --init start.json --out est/ --sampling interest_region --pose-format colmap,tum
    # every photo of a folder, no initial pose, with ground truth for the errors
    inerf estimate --run runs/room --images 'photos/*.jpg' --intrinsics cam.json --global \\
        --gt-poses photos/images.txt --out batch/

The work is done by :mod:`inerf.pose.localise` (one code path for one image and for many).

``--images`` also runs under torchrun, one process per GPU (:mod:`inerf.distributed`)::

    torchrun --nproc_per_node 2 -m inerf.cli.main -- estimate --run runs/room --images 'photos/*.jpg' ...

Rank ``r`` localises images ``r, r + W, ...`` of the sorted list into the folders one process would give
them (:func:`inerf.pose.localise.folder_names` of the whole list); rank 0 gathers the rows in the input
order and writes ``summary.csv``, ``summary.md`` and the pose files, which then equal one process's (every
image is solved as it is alone; only the ``seconds`` column, wall-clock time, differs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from inerf import distributed
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
    add_input_frame_argument,
    add_intrinsics_arguments,
    add_pose_output_arguments,
    add_uncertainty_arguments,
    camera_prior,
    camera_source,
    global_config_from_args,
    input_poses_to_training,
    model_error_from_args,
    pose_output_from_args,
    read_init_pose,
    run_scene_transform,
    uncertainty_config_from_args,
    use_global_preset,
)
from inerf.errors import InerfError
from inerf.pose.config import FAST, PAPER, ROBUST, STRATEGIES, PoseConfig, SamplingConfig
from inerf.pose.perturb import Perturbation

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
        "--images",
        metavar="PATTERN",
        help="localise many images: a quoted glob pattern ('photos/*.jpg') or a folder; one output folder "
        "per image under --out, plus summary.csv and summary.md",
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
        "--gt-poses",
        metavar="FILE",
        help="with --images: their ground-truth poses (in the frame of --input-frame), matched by image name "
        "(transforms*.json, COLMAP images.txt, inerf JSON) or by order (TUM, KITTI)",
    )
    add_input_frame_argument(g, "--init, --gt and --gt-poses")
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
    add_pose_output_arguments(p)
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


def _check_flags(args) -> None:
    """The checks of flags against each other, before any file is read."""
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
    if args.images and args.gt:
        raise InerfError("--gt is one pose; for --images give --gt-poses FILE")
    if args.gt_poses and not args.images:
        raise InerfError("--gt-poses goes with --images (for one image: --gt POSE_FILE)")
    if args.global_search and (args.init or args.init_from_gt or args.hypotheses > 1):
        raise InerfError("--global needs no --init, --init-from-gt or --hypotheses (see --global-keep)")
    if not args.init and not args.init_from_gt and not args.global_search:
        raise InerfError("no initial pose: give --init POSE, --init-from-gt or --global")
    if args.init_from_gt and not (args.gt or args.gt_poses or args.view is not None):
        raise InerfError(
            "--init-from-gt needs a ground truth (--gt POSE, --view, or --gt-poses with --images)"
        )


def _localiser(args, run_, device, config, global_config, uncertainty_config, views=None):
    """The :class:`~inerf.pose.localise.Localiser` of the command line for a loaded run."""
    from inerf.pose.localise import Localiser
    from inerf.pose.report import OutputOptions
    from inerf.train.checkpoint import validation_psnr

    val_psnr = validation_psnr(run_)
    prior = None
    if args.global_search:
        prior = camera_prior(run_, args.data, log=(lambda *a: None) if args.quiet else print)
    transform = run_scene_transform(run_, args.data, views)
    model_error = None
    if uncertainty_config is not None:
        quiet = args.quiet or not distributed.is_main()
        model_error = model_error_from_args(args, run_.run_dir, log=(lambda *a: None) if quiet else print)
    return Localiser(
        model=run_.model,
        config=config,
        device=device,
        options=OutputOptions(
            frames=args.frames,
            max_side=args.frame_size or (400 if device.type == "cuda" else 96),
            fps=args.fps,
            video=not args.no_video,
            field_mse=None if val_psnr is None else 10 ** (-val_psnr / 10),
        ),
        pose_output=pose_output_from_args(args, transform, run=str(args.run)),
        global_config=global_config if args.global_search else None,
        prior=prior,
        uncertainty=uncertainty_config,
        model_error=model_error,
        hypotheses=args.hypotheses,
        spread_rot=args.spread_rot,
        spread_trans=args.spread_trans,
        perturbation=PERTURB_FLAGS.build(Perturbation(), args),
        seed=args.seed,
        meta={"run": str(args.run), "tf32": bool(device.type == "cuda" and args.tf32)},
    )


def run(args) -> int:
    if args.images:
        # Under torchrun the processes join one group and share the images; alone, nothing is joined.
        with distributed.session(args.device):
            return _run(args)
    if distributed.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        raise InerfError(
            "under torchrun, estimate shares the images of --images over the processes; one image (--image, "
            "--view) is one process's work: run it without torchrun"
        )
    return _run(args)


def _run(args) -> int:
    from inerf.data.image_io import read_image
    from inerf.pose.io import read_pose
    from inerf.pose.localise import Target, image_paths, localise_one, read_image_target

    _check_flags(args)
    use_global_preset(args)
    config = pose_config_from_args(args, args.sampling)  # every solver flag checked before any work
    PERTURB_FLAGS.build(Perturbation(), args)  # checked now; the localiser builds it again
    if PERTURB_FLAGS.given(args) and not args.init_from_gt:
        raise InerfError(f"{' '.join(map(str, PERTURB_FLAGS.given(args).values()))}: needs --init-from-gt")
    global_config, uncertainty_config = global_config_from_args(args), uncertainty_config_from_args(args)
    pose_output_from_args(args)
    # Rank 0 alone looks (another rank could see the folder rank 0 has just made); all ranks get its verdict.
    distributed.run_on_main(lambda: check_out_dir(args.out, args.overwrite))
    if args.images:
        return _run_batch(args, image_paths(args.images), config, global_config, uncertainty_config)

    # Inputs that need no model first, so bad files fail fast.
    if args.image:
        raw = read_image(input_file(args.image, "--image", "an image file"))
        camera_source(args)(raw.shape[1], raw.shape[0])  # intrinsics checked against the image
    init = read_init_pose(args)
    gt = (
        read_pose(input_file(args.gt, "--gt"), args.pose_convention, "ground-truth pose") if args.gt else None
    )

    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    warn_if_undertrained(run_, "estimate")
    views = None
    if args.view is not None:
        views = run_.dataset.load(args.split, run_dir=run_.run_dir, root=args.data)
        if not 0 <= args.view < len(views):
            raise InerfError(f"--view {args.view}: the {args.split} split has {len(views)} views")
        check_background(views, run_.model.config.background)
        camera, _ = camera_source(args, views.cameras[args.view])(views.width, views.height)
        alpha = views.alphas[args.view] if views.alphas is not None else None
        name = f"{args.split}[{args.view}] {views.names[args.view]}"
        gt = views.cameras.c2w[args.view].double()
        target = Target(
            views.images[args.view],
            alpha,
            camera,
            name,
            gt=gt,
            file_name=views.names[args.view],
            index=args.view,
        )
    else:
        target = read_image_target(args.image, camera_source(args), run_.model.config.background)
        target.gt = gt

    loc = _localiser(args, run_, device, config, global_config, uncertainty_config, views)
    # The user's pose files change frame here, once; a --view's ground truth is the dataset's, already there.
    to_training = input_poses_to_training(args, loc.pose_output.transform, "--init/--gt")
    if args.gt:
        target.gt = to_training(target.gt)
    target.init = to_training(init) if init is not None else None
    target.init_from_gt = args.init_from_gt
    if args.input_frame == "original" and (args.gt or args.init):
        target.source["input_frame"] = f"original: {loc.pose_output.transform.original}"
    out = prepare_out_dir(args.out, args.overwrite)
    done = localise_one(loc, target, out, progress=not args.quiet)
    _print_single(args, done, target, out)
    return 0


def _print_single(args, done, target, out) -> None:
    """What ``inerf estimate`` prints for one image (and the error of a solve that went NaN)."""
    from inerf.pose.report import summary_lines

    result, found = done.result, done.found
    print(
        f"inerf estimate: {target.name} ({args.sampling} sampling, {done.config.n_rays} rays"
        + (f", {args.hypotheses} hypotheses" if args.hypotheses > 1 else "")
        + (
            f", global: {found.candidates.shape[1]} candidates, {found.chosen.shape[1]} refined"
            if found
            else ""
        )
        + ")"
    )
    for line in summary_lines(result, target.gt, uncertainty=done.uncertainty):
        print("  " + line)
    verdict = json.loads(done.paths["pose"].read_text(encoding="utf-8"))["convergence"]
    if verdict["verdict"] != "unknown":
        print(
            f"  {verdict['verdict']}: final MSE {verdict['ratio']:.1f}x the field's own validation MSE "
            f"(converged at <= {verdict['threshold']:g}x)"
        )
    tops = dict.fromkeys(Path(p).relative_to(out).parts[0] for p in done.paths.values())
    names = [t + ("/" if (out / t).is_dir() else "") for t in tops]
    print(f"  wrote {out}/: " + ", ".join(names))
    if result.status[0] != "ok":
        step = int(result.failed_step[0].clamp_min(0).min())
        raise InerfError(
            f"the loss became NaN or infinite at step {step} for every hypothesis; {out}/pose.json holds "
            'the last finite pose (status "nan")'
        )


def _run_batch(args, paths, config, global_config, uncertainty_config) -> int:
    """``inerf estimate --images``: every image localised with the same settings, then the tables (under
    torchrun: this rank's share of the images, the tables on rank 0)."""
    from PIL import Image

    from inerf.pose.localise import folder_names, ground_truth_lookup, localise_images, write_batch_summary

    # Every file checked before the model is loaded: sizes against the intrinsics, a ground truth per image.
    camera_for = camera_source(args)
    for size in dict.fromkeys(_image_size(p, Image) for p in paths):
        camera_for(*size)
    gt_for = ground_truth_lookup(input_file(args.gt_poses, "--gt-poses"), paths) if args.gt_poses else None
    init = read_init_pose(args)

    # Under torchrun the session put this process on its device (cuda:LOCAL_RANK or the CPU).
    device = resolve_device(str(distributed.device() or args.device), args.tf32)
    main = distributed.is_main()
    run_ = load_run_checked(args.run, device, args.samples)
    if main:
        warn_if_undertrained(run_, "estimate")
    loc = _localiser(args, run_, device, config, global_config, uncertainty_config)
    to_training = input_poses_to_training(args, loc.pose_output.transform, "--init/--gt-poses")
    init = to_training(init) if init is not None else None
    gt_for = (lambda image, read=gt_for: to_training(read(image))) if gt_for is not None else None
    out = distributed.run_on_main(lambda: prepare_out_dir(args.out, args.overwrite))
    folders = folder_names(paths)  # of the whole list: a name does not depend on the split
    mine = distributed.shard(range(len(paths)))
    rows = localise_images(
        loc,
        [paths[i] for i in mine],
        out,
        camera_for=camera_for,
        init=init,
        gt_for=gt_for,
        init_from_gt=args.init_from_gt,
        folders=[folders[i] for i in mine],
        progress=not args.quiet and main,  # rank 0's images: one bar
    )
    rows = distributed.gather_rows(rows)  # every image's row, in the order of `paths`; None off rank 0
    if not main:
        return 0
    written = write_batch_summary(out, rows, loc.pose_output)
    print(written["markdown"].read_text(encoding="utf-8"), end="")
    failed = [r["image"] for r in rows if r["status"] != "ok"]
    extra = sorted({p.relative_to(out).parts[0] for p in written.values()})
    print(f"inerf estimate: {len(rows)} images; wrote {out}/: one folder per image, " + ", ".join(extra))
    if failed:
        print(
            f"inerf estimate: warning: the loss became NaN for {len(failed)} image(s): {', '.join(failed[:5])}",
            file=sys.stderr,
        )
    return 0


def _image_size(path: Path, Image) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header; one-line error naming an unreadable one."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as exc:
        raise InerfError(f"--images: unreadable image {path} ({exc})") from None
