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
import math
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from inerf.errors import InerfError
from inerf.pose.config import (
    DETECTORS,
    LOSSES,
    OPTIMIZERS,
    PAPER,
    ROBUST,
    STRATEGIES,
    AdamConfig,
    BlurConfig,
    LMConfig,
    PoseConfig,
    SamplingConfig,
    StopConfig,
)

DEFAULTS = PoseConfig()
SAMPLING_DEFAULTS = SamplingConfig()


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the solver shared by ``inerf estimate`` and ``inerf benchmark pose``."""
    g = parser.add_argument_group("solver (defaults: the iNeRF paper)")
    g.add_argument(
        "--preset",
        choices=("paper", "robust"),
        default="paper",
        help="paper: the iNeRF paper's solver (the defaults below); robust: plus coarse-to-fine blur "
        "(8 px over 100 steps, 4 rays per pixel) and 50 final Levenberg-Marquardt steps, 100%% instead "
        "of 72%% success on the paper's protocol (BENCHMARKS.md); options given explicitly still apply",
    )
    g.add_argument("--steps", type=int, default=DEFAULTS.steps, help="optimiser steps")
    g.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=DEFAULTS.optimizer,
        help="adam (the paper's), lm (Levenberg-Marquardt: Gauss-Newton steps on the pixel residuals, "
        "no learning rate, sub-pixel final accuracy) or adam+lm (Adam, then --lm-steps LM steps)",
    )
    g.add_argument(
        "--lm-steps",
        type=int,
        default=DEFAULTS.lm.steps,
        help="with --optimizer adam+lm: the last this many of --steps are LM steps",
    )
    g.add_argument(
        "--lm-average",
        type=int,
        default=DEFAULTS.lm.average,
        help="return the mean pose of the last this many LM steps (cancels their jitter with few rays)",
    )
    g.add_argument(
        "--lm-decay",
        type=float,
        default=DEFAULTS.lm.decay,
        help="LM step j goes min(1, 1/(lm_decay*j)) of the way (a running mean of the per-step fits, "
        "steadier with few rays); 0 = full steps",
    )
    g.add_argument(
        "--lm-damping",
        type=float,
        default=DEFAULTS.lm.damping,
        help="initial LM damping (relative to the Gauss-Newton diagonal); adapts per step",
    )
    g.add_argument("--lr", type=float, default=DEFAULTS.adam.lr, help="initial Adam learning rate")
    g.add_argument(
        "--trans-lr-scale",
        type=float,
        default=DEFAULTS.adam.trans_lr_scale,
        help="learning rate of the translation part = lr * this (raise for scenes larger than ~4 units)",
    )
    g.add_argument(
        "--lr-decay",
        type=float,
        default=DEFAULTS.adam.lr_decay,
        help="learning rate multiplied by this every --lr-decay-steps (smooth exponential decay)",
    )
    g.add_argument("--lr-decay-steps", type=int, default=DEFAULTS.adam.lr_decay_steps, help="see --lr-decay")
    g.add_argument(
        "--rays", type=int, default=DEFAULTS.n_rays, help="pixels rendered per step (per hypothesis)"
    )
    g.add_argument(
        "--blur",
        type=float,
        default=DEFAULTS.blur.sigma,
        help="coarse-to-fine: Gaussian blur (pixels) of render and target at the start, shrinking "
        "linearly to 0 at --blur-steps; widens the basin of convergence (0 = off, the paper)",
    )
    g.add_argument(
        "--blur-steps", type=int, default=DEFAULTS.blur.steps, help="step at which the blur reaches 0"
    )
    g.add_argument(
        "--blur-rays",
        type=int,
        default=DEFAULTS.blur.rays,
        help="rays per pixel while blurring (their mean colour is the blurred render)",
    )
    g.add_argument("--loss", choices=LOSSES, default=DEFAULTS.loss, help="photometric loss")
    g.add_argument(
        "--huber-delta", type=float, default=DEFAULTS.huber_delta, help="transition point of --loss huber"
    )
    g.add_argument(
        "--coarse-loss-weight",
        type=float,
        default=DEFAULTS.coarse_loss_weight,
        help="weight of the coarse pass's loss when the model has a fine pass",
    )
    g.add_argument(
        "--detector",
        choices=DETECTORS,
        default=SAMPLING_DEFAULTS.detector,
        help="keypoint detector of the interest_points / interest_region strategies",
    )
    g.add_argument(
        "--max-keypoints",
        type=int,
        default=SAMPLING_DEFAULTS.max_keypoints,
        help="keep at most this many strongest keypoints (0 = all)",
    )
    g.add_argument(
        "--dilate-kernel",
        type=int,
        default=SAMPLING_DEFAULTS.dilate_kernel,
        help="side of the square kernel that grows keypoints into the interest region",
    )
    g.add_argument(
        "--dilate-iters",
        type=int,
        default=SAMPLING_DEFAULTS.dilate_iterations,
        help="dilation iterations of the interest region (the paper's I)",
    )
    g.add_argument(
        "--mask-dilate",
        type=int,
        default=SAMPLING_DEFAULTS.mask_dilate,
        help="mask strategy: also sample the background within this many pixels of the silhouette",
    )
    g.add_argument(
        "--center-fraction",
        type=float,
        default=SAMPLING_DEFAULTS.center_fraction,
        help="side of the 'center' strategy's box as a fraction of the image side",
    )
    g.add_argument(
        "--prune-steps",
        type=_ints,
        default=(),
        help="with several hypotheses, keep the best half at these steps (e.g. 100,200)",
    )
    g.add_argument(
        "--stop-tol",
        type=float,
        default=DEFAULTS.stop.tol,
        help="stop once every hypothesis moves less than this per step (radians / scene units) for "
        "--stop-window steps; 0 = always run --steps",
    )
    g.add_argument("--stop-window", type=int, default=DEFAULTS.stop.window, help="see --stop-tol")
    g.add_argument(
        "--samples",
        type=int,
        default=None,
        help="stratified samples per ray for the pose renders (default: the run's own; a grid field "
        "trained at high resolution renders nearly as well with 128-256 and several times faster)",
    )
    g.add_argument(
        "--ray-chunk",
        type=int,
        default=DEFAULTS.ray_chunk,
        help="rays per forward/backward pass (lower it if the GPU runs out of memory)",
    )
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="allow TensorFloat-32 matrix products on CUDA (faster field evaluation)",
    )
    g.add_argument("--seed", type=int, default=0, help="seeds the pixel sampling and any random start poses")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def sampling_config_from_args(args, strategy: str) -> SamplingConfig:
    try:
        return SamplingConfig(
            strategy=strategy,
            detector=args.detector,
            max_keypoints=args.max_keypoints,
            dilate_kernel=args.dilate_kernel,
            dilate_iterations=args.dilate_iters,
            center_fraction=args.center_fraction,
            mask_dilate=args.mask_dilate,
        )
    except ValueError as exc:
        raise InerfError(str(exc)) from None


def pose_config_from_args(args, strategy: str) -> PoseConfig:
    if args.samples is not None and args.samples < 3:
        raise InerfError(f"--samples must be at least 3, got {args.samples}")
    try:
        config = PoseConfig(
            steps=args.steps,
            optimizer=args.optimizer,
            lm=LMConfig(
                steps=args.lm_steps, damping=args.lm_damping, average=args.lm_average, decay=args.lm_decay
            ),
            blur=BlurConfig(sigma=args.blur, steps=args.blur_steps, rays=args.blur_rays),
            adam=AdamConfig(
                lr=args.lr,
                trans_lr_scale=args.trans_lr_scale,
                lr_decay=args.lr_decay,
                lr_decay_steps=args.lr_decay_steps,
            ),
            n_rays=args.rays,
            sampling=sampling_config_from_args(args, strategy),
            loss=args.loss,
            huber_delta=args.huber_delta,
            coarse_loss_weight=args.coarse_loss_weight,
            prune_steps=args.prune_steps,
            stop=StopConfig(tol=args.stop_tol, window=args.stop_window),
            ray_chunk=args.ray_chunk,
        )
        if args.preset == "robust":
            # The preset replaces the paper's values; any option given with another value still wins.
            given = {
                f.name: getattr(config, f.name)
                for f in fields(PoseConfig)
                if f.name != "sampling" and getattr(config, f.name) != getattr(PAPER, f.name)
            }
            config = replace(ROBUST, sampling=config.sampling, **given)
        return config
    except ValueError as exc:
        raise InerfError(str(exc)) from None


def resolve_device(name: str | None, tf32: bool = True) -> torch.device:
    """The torch device to use (``cuda`` when available by default); sets the TF32 switch for CUDA."""
    try:
        device = torch.device(name) if name else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    except RuntimeError as exc:
        raise InerfError(f"--device: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InerfError("--device cuda: no CUDA device is available")
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
    return device


def prepare_out_dir(path: str, overwrite: bool) -> Path:
    """Create the output folder; refuse a non-empty one unless ``overwrite``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InerfError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InerfError(f"--out {out}: directory is not empty (pass --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    return out


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("inputs")
    g.add_argument("--run", required=True, help="run directory written by `inerf train`")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="target image (PNG/JPG; RGBA is composited on the model's background)")
    src.add_argument(
        "--view",
        type=int,
        help="use view VIEW of the dataset split as target (image, intrinsics and ground-truth pose)",
    )
    g.add_argument(
        "--data", default=None, help="dataset folder for --view (default: the run's training data)"
    )
    g.add_argument("--split", default="test", help="dataset split for --view")
    g.add_argument(
        "--intrinsics",
        help="intrinsics JSON: fx/fy/cx/cy[/width/height], fl_x/fl_y/cx/cy/w/h, K, or a "
        "Blender transforms file (camera_angle_x)",
    )
    g.add_argument("--fx", type=float, help="focal length in pixels (instead of --intrinsics)")
    g.add_argument("--fy", type=float, help="vertical focal length (default: --fx)")
    g.add_argument("--cx", type=float, help="principal point x in pixels (default: width / 2)")
    g.add_argument("--cy", type=float, help="principal point y in pixels (default: height / 2)")
    init = g.add_mutually_exclusive_group()
    init.add_argument("--init", help="initial camera-to-world pose (JSON with 'c2w', TXT or NPY 4x4)")
    init.add_argument(
        "--init-from-gt",
        action="store_true",
        help="start from the ground truth (--gt or --view) moved by --perturb-rot / --perturb-trans",
    )
    g.add_argument("--gt", help="ground-truth camera-to-world pose file, to report errors")
    g.add_argument(
        "--pose-convention",
        choices=["opencv", "opengl"],
        default=None,
        help="camera axes of pose files that do not state them (default opencv: x right, y down, z "
        "forward; opengl/Blender: y up, z backward)",
    )
    g.add_argument(
        "--perturb-rot",
        type=float,
        default=0.0,
        help="with --init-from-gt: rotate by exactly this many degrees about a random axis (world frame)",
    )
    g.add_argument(
        "--perturb-trans",
        type=float,
        default=0.0,
        help="with --init-from-gt: translate by this distance in a random direction",
    )
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
        type=float,
        default=30.0,
        help="extra hypotheses: rotation uniform in [-spread, spread] degrees about a random axis",
    )
    h.add_argument(
        "--spread-trans",
        type=float,
        default=0.1,
        help="extra hypotheses: translation uniform in [-spread, spread] per axis",
    )
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--sampling",
        choices=STRATEGIES,
        default=SAMPLING_DEFAULTS.strategy,
        help="which pixels to render each step",
    )
    add_solver_arguments(p)
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--out", required=True, help="output folder (pose.json, trajectory.csv, frames, GIF/MP4, plot)"
    )
    o.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    o.add_argument("--frames", type=int, default=20, help="overlay frames spread over the solve (0 = none)")
    o.add_argument(
        "--frame-size",
        type=int,
        default=None,
        help="render frames with the long side at most this many pixels (default: 400 on CUDA, 96 on "
        "the CPU, where every frame is a full render)",
    )
    o.add_argument("--fps", type=float, default=5.0, help="frame rate of the GIF and MP4")
    o.add_argument("--no-video", action="store_true", help="write frames but no GIF/MP4")
    p.set_defaults(func=run)


def _random_offset(rot_deg: float, trans: float, generator: torch.Generator) -> torch.Tensor:
    """A rigid transform ``[4, 4]``: rotation by exactly ``rot_deg`` about a uniformly random axis, translation
    of length ``trans`` in a uniformly random direction."""
    from inerf.geometry import se3

    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    direction = torch.randn(3, generator=generator, dtype=torch.float64)
    d = torch.eye(4, dtype=torch.float64)
    d[:3, :3] = se3.axis_angle_to_matrix(
        axis / axis.norm(), torch.tensor(math.radians(rot_deg), dtype=torch.float64)
    )
    d[:3, 3] = trans * direction / direction.norm()
    return d


def _intrinsics(args, width: int, height: int, dataset_camera=None):
    from inerf.pose.io import intrinsics_camera, read_intrinsics

    flags = [args.fx, args.fy, args.cx, args.cy]
    if args.intrinsics and any(v is not None for v in flags):
        raise InerfError("give --intrinsics or --fx/--fy/--cx/--cy, not both")
    if args.intrinsics:
        return read_intrinsics(args.intrinsics, width, height)
    if args.fx is not None:
        return intrinsics_camera(
            args.fx,
            args.fy if args.fy is not None else args.fx,
            args.cx if args.cx is not None else width / 2,
            args.cy if args.cy is not None else height / 2,
            width,
            height,
            source="--fx/--fy/--cx/--cy",
        )
    if any(v is not None for v in flags):
        raise InerfError("--fy/--cx/--cy need --fx")
    if dataset_camera is not None:
        return dataset_camera
    raise InerfError("no intrinsics: give --intrinsics FILE or --fx (or use --view for a dataset image)")


def run(args) -> int:
    from inerf.data.image_io import read_image
    from inerf.geometry.conventions import check_rigid
    from inerf.pose.io import camera_to_json, composite_target, read_pose
    from inerf.pose.protocol import apply_perturbations, sample_perturbations
    from inerf.pose.report import OutputOptions, summary_lines, write_estimate_outputs
    from inerf.pose.sampling import PixelSampler
    from inerf.pose.solver import PoseTarget, estimate_pose

    if args.hypotheses < 1:
        raise InerfError("--hypotheses must be >= 1")
    if args.frames < 0 or (args.frame_size is not None and args.frame_size < 1) or args.fps <= 0:
        raise InerfError("--frames must be >= 0, --frame-size >= 1 and --fps > 0")
    if args.view is not None and args.gt:
        raise InerfError("--gt and --view both give a ground truth; use one")
    if not args.init and not args.init_from_gt:
        raise InerfError("no initial pose: give --init POSE or --init-from-gt")
    if args.init_from_gt and not (args.gt or args.view is not None):
        raise InerfError("--init-from-gt needs a ground truth (--gt POSE or --view)")
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:  # fail before any heavy work
        raise InerfError(f"--out {out}: directory is not empty (pass --overwrite to write into it)")

    # Inputs that need no model first, so bad files fail fast.
    raw = intr = None
    if args.image:
        raw = read_image(Path(args.image))
        intr = _intrinsics(args, raw.shape[1], raw.shape[0])
    init = read_pose(args.init, args.pose_convention, "initial pose") if args.init else None
    gt = read_pose(args.gt, args.pose_convention, "ground-truth pose") if args.gt else None

    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
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

    gen = torch.Generator().manual_seed(args.seed)
    if args.init_from_gt:
        init = _random_offset(args.perturb_rot, args.perturb_trans, gen) @ gt
    init = check_rigid(init, "initial pose").double()
    starts = init[None]
    if args.hypotheses > 1:
        around = sample_perturbations(args.hypotheses - 1, args.spread_rot, args.spread_trans, gen)
        starts = torch.cat([starts, apply_perturbations(init, around, "world")])

    config = pose_config_from_args(args, args.sampling)
    target = PoseTarget(
        image=image.to(device),
        camera=intr.to(device),
        alpha=alpha.to(device) if alpha is not None else None,
    )
    result = estimate_pose(
        run_.model,
        target,
        starts,
        config,
        seeds=args.seed,
        progress=not args.quiet,
        desc="iNeRF",
    )

    out = prepare_out_dir(args.out, args.overwrite)
    sampler = PixelSampler(
        target.height,
        target.width,
        config.n_rays,
        config.sampling,
        image=target.image,
        alpha=target.alpha,
        device="cpu",
    )
    meta = {
        "target": target_name,
        "run": str(args.run),
        "intrinsics": camera_to_json(intr),
        "tf32": bool(device.type == "cuda" and args.tf32),
        "config": asdict(config),
    }
    paths = write_estimate_outputs(
        out,
        result,
        target,
        run_.model,
        gt_c2w=gt,
        meta=meta,
        sampler=sampler,
        options=OutputOptions(
            frames=args.frames,
            max_side=args.frame_size or (400 if device.type == "cuda" else 96),
            fps=args.fps,
            video=not args.no_video,
        ),
    )
    print(
        f"inerf estimate: {target_name} ({args.sampling} sampling, {config.n_rays} rays"
        + (f", {args.hypotheses} hypotheses" if args.hypotheses > 1 else "")
        + ")"
    )
    for line in summary_lines(result, gt):
        print("  " + line)
    names = [p.name + ("/" if p.is_dir() else "") for p in paths.values()]
    print(f"  wrote {out}/: " + ", ".join(names))
    if result.status[0] != "ok":
        step = int(result.failed_step[0].clamp_min(0).min())
        raise InerfError(
            f"the loss became NaN or infinite at step {step} for every hypothesis; {out}/pose.json holds "
            'the last finite pose (status "nan")'
        )
    return 0
