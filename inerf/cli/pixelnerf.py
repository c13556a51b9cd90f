"""``inerf pixelnerf``: run the published pixelNeRF checkpoints (or the model shipped with inerf); the verbs
``train``, ``eval``, ``export`` (inerf/cli/pixelnerf_train.py, pixelnerf_eval.py, pixelnerf_export.py) and
``metrics`` (pixelnerf_metrics.py) live in their own modules.

* ``inerf pixelnerf video``: the 360-degree video of the published ``gen_video.py`` (same flags): loads
  ``<checkpoints_path>/<name>/pixel_nerf_latest``, encodes the chosen source views of one object of a split
  and writes ``<visual_path>/<name>/video<t|v|><SSSS>_v<src>....mp4`` (or ``.gif``).
* ``inerf pixelnerf pose``: iNeRF-public's pose estimation (target image relative to one source image),
  solved on SE(3) with :mod:`inerf.pose` (see :mod:`inerf.pixelnerf.pose`); raw photos are normalised first
  (:mod:`inerf.cli.pixelnerf_real`).
* ``inerf pixelnerf real``: the published ``eval_real`` 360-degree video of real object photos
  (:mod:`inerf.cli.pixelnerf_real`).
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from inerf.cli.common import refuse_existing
from inerf.device import gpu_device
from inerf.errors import InerfError
from inerf.pixelnerf.config import parse_ints


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pixelnerf",
        help="pixelNeRF: train, eval, metrics, export; video, pose and real photos with published checkpoints "
        "or the shipped model",
        description="pixelNeRF: train and evaluate (published train.py, eval.py, calc_metrics.py), export a "
        "model folder, and run published checkpoints or the model shipped with inerf (video, pose, real "
        "photos).",
    )
    sub = parser.add_subparsers(dest="pixelnerf_command", metavar="COMMAND")

    def print_help(args) -> int:  # `inerf pixelnerf` without a command
        parser.print_help()
        return 1

    parser.set_defaults(func=print_help)
    _add_video(sub)
    from inerf.cli.pixelnerf_metrics import add_metrics_parser

    add_metrics_parser(sub)
    from inerf.cli.pixelnerf_train import add_train_parser

    add_train_parser(sub)
    from inerf.cli.pixelnerf_export import add_export_parser

    add_export_parser(sub)
    from inerf.cli.pixelnerf_eval import add_eval_parser

    add_eval_parser(sub)
    with contextlib.suppress(ImportError):  # the pose engine (inerf.pose) is optional for `video`
        _add_pose(sub)
    from inerf.cli.pixelnerf_real import add_real_parser

    add_real_parser(sub)


# ----------------------------------------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------------------------------------
def _add_video(sub) -> None:
    p = sub.add_parser(
        "video",
        help="render a 360-degree video from a few source views (published gen_video.py)",
        description="Render a 360-degree video of one object from a few source views with a published "
        "pixelNeRF checkpoint. Flags follow the published eval/gen_video.py; prints the video's path.",
    )
    p.add_argument(
        "-n",
        "--name",
        default=None,
        help="experiment name: checkpoint folder <checkpoints_path>/<name>/ (sn64, sn64_unseen, srn_car, "
        "srn_chair, dtu, or a run of inerf pixelnerf train); default: the model shipped with inerf",
    )
    from inerf.cli.pixelnerf_bundle import add_model_argument

    add_model_argument(p)
    p.add_argument(
        "-c",
        "--conf",
        default=None,
        help="pixelNeRF config name or .conf path (default: the published config of --name)",
    )
    p.add_argument(
        "-D",
        "--datadir",
        default=None,
        help="dataset root: <dir>/cars for SRN (reads cars_<split>), NMR_Dataset, or rs_dtu_4; default with "
        "a model folder: its held-out examples (split test)",
    )
    p.add_argument(
        "-F",
        "--dataset_format",
        default=None,
        help="srn | dvr | dvr_gen | dvr_dtu (default: data.format of the config)",
    )
    p.add_argument(
        "--split",
        default=None,
        choices=["train", "val", "test"],
        help="dataset split (default: train; test for a model folder's examples)",
    )
    p.add_argument(
        "-S",
        "--subset",
        type=int,
        default=0,
        help="index of the object/scene in the split (default: %(default)s)",
    )
    p.add_argument(
        "-P",
        "--source",
        default="64",
        help="space-separated source view indices; '-1' = one random view (default: %(default)s)",
    )
    p.add_argument(
        "--num_views", type=int, default=40, help="frames on the 360-degree path (default: %(default)s)"
    )
    p.add_argument(
        "--elevation",
        type=float,
        default=-10.0,
        help="elevation in degrees, negative = above (default: %(default)s)",
    )
    p.add_argument(
        "--radius",
        type=float,
        default=0.0,
        help="camera distance from the origin (0 = (z_near + z_far) / 2; DTU: 2.0)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="render resolution factor; source views are always encoded at full resolution "
        "(default: %(default)s)",
    )
    p.add_argument("--fps", type=int, default=30, help="frames per second (default: %(default)s)")
    p.add_argument(
        "-R",
        "--ray_batch_size",
        type=int,
        default=50000,
        help="rays (and points) per network call (default: %(default)s)",
    )
    p.add_argument(
        "--gpu_id", default="0", help="GPU id(s), space-separated; the first is used (CPU if no GPU)"
    )
    p.add_argument(
        "-G", "--exp_group_name", default=None, help="sub-folder of checkpoints_path and visual_path"
    )
    p.add_argument(
        "--checkpoints_path",
        default="checkpoints",
        help="folder of <name>/pixel_nerf_latest (default: %(default)s)",
    )
    p.add_argument(
        "--visual_path",
        default="visuals",
        help="output folder; videos go to <visual_path>/<name>/ (default: %(default)s)",
    )
    p.add_argument("--gif", action="store_true", help="write a .gif instead of an .mp4")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing video and _view.jpg of the same name"
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="fixed sample positions instead of the published random jitter",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="random seed (for '-P -1' and the renderer's jitter)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_video)


def open_split(data_format: str, datadir: str, split: str):
    """The published dataset of ``data_format`` (``srn``, ``dvr``, ``dvr_gen``, ``dvr_dtu``) for ``split``."""
    from inerf.pixelnerf.train import open_dataset

    return open_dataset(data_format, datadir, split)


def run_video(args) -> int:
    import torch

    from inerf.cli.pixelnerf_bundle import choose_video_model
    from inerf.pixelnerf.model import load_pixelnerf
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pixelnerf.video import (
        estimate_render_seconds,
        orbit_c2w,
        render_video_frames,
        scene_orbit_c2w,
        video_stem,
        write_video,
    )

    if args.num_views < 1:
        raise InerfError("--num_views must be at least 1")
    if args.scale <= 0:
        raise InerfError("--scale must be positive")
    if args.ray_batch_size < 1:
        raise InerfError("-R/--ray_batch_size must be positive")
    chosen = choose_video_model(args)
    config, checkpoint, name = chosen.config, chosen.checkpoint, chosen.label
    data_format = args.dataset_format or config.data_format or "dvr"
    group = Path(args.exp_group_name) if args.exp_group_name else Path()
    datadir, split = args.datadir, args.split
    if datadir is None:
        if chosen.bundle is None or chosen.bundle.examples_root is None:
            raise InerfError(
                "-D/--datadir is required (only a model folder with examples brings its own data)"
            )
        datadir, split, data_format = chosen.bundle.examples_root, split or "test", "srn"
    split = split or "train"
    args.split = split

    dataset = open_split(data_format, datadir, split)
    if not 0 <= args.subset < len(dataset):
        raise InerfError(
            f"-S {args.subset} is out of range: split {args.split!r} of {datadir} has "
            f"{len(dataset)} object(s) (0..{len(dataset) - 1})"
        )
    views = dataset[args.subset]
    rng = random.Random(args.seed)
    source = parse_ints(args.source, "-P/--source")
    if not source:
        raise InerfError("-P/--source: give at least one view index")
    if source[0] == -1:
        source = [rng.randrange(len(views))]
    bad = [s for s in source if not 0 <= s < len(views)]
    if bad:
        raise InerfError(
            f"-P: view(s) {bad} out of range: object {views.name} has {len(views)} views "
            f"(0..{len(views) - 1})"
        )

    out_dir = Path(args.visual_path) / group / name
    stem = video_stem(args.split, args.subset, source)
    refuse_existing(
        [
            out_dir / f"{stem}.{'gif' if args.gif else 'mp4'}",
            out_dir / f"{stem}_view.jpg",
            out_dir / f"{stem}_frames",
        ],
        args.overwrite,
    )

    device = gpu_device(args.gpu_id)
    model = load_pixelnerf(checkpoint, config, device=device)
    if data_format == "dvr_dtu":
        path = scene_orbit_c2w(views.cameras.c2w, args.num_views, args.radius if args.radius > 0 else 2.0)
    else:
        radius = args.radius if args.radius > 0 else 0.5 * (views.z_near + views.z_far)
        path = orbit_c2w(args.num_views, args.elevation, radius)
    render_camera = views.cameras[source[0]].scaled(args.scale)
    if render_camera.height < 1 or render_camera.width < 1:
        raise InerfError(f"--scale {args.scale} leaves an empty image")
    generator = torch.Generator(device=device).manual_seed(args.seed) if args.seed is not None else None
    print(
        f"pixelnerf video: {name}, {args.split} object {args.subset} ({views.name}), "
        f"source views {source}, "
        f"{args.num_views} frames of {render_camera.width}x{render_camera.height} on {device}"
    )
    model.encode_views(views.images[source].to(device), views.cameras[source].to(device))
    render = render_config(
        config.renderer,
        views.z_near,
        views.z_far,
        deterministic=args.deterministic,
        ray_batch_size=args.ray_batch_size,
        field_chunk=args.ray_batch_size,  # published gen_video: eval_batch_size = ray_batch_size
    )
    scene = pixelnerf_model(model, render)
    per_frame = estimate_render_seconds(scene, render_camera)
    total = per_frame * args.num_views
    print(
        f"  about {per_frame:.1f} s per frame, {total / 60:.1f} min in all (frames are written as they finish)"
    )
    if total > 120 and device.type == "cpu":
        print(
            "  hint: on a CPU, --scale 0.25 renders 16x fewer rays and --num_views 10 fewer frames; "
            "a GPU (--gpu_id 0) is ~100x faster"
        )
    frames = render_video_frames(
        scene,
        render_camera.with_c2w(path),
        progress=not args.quiet,
        generator=generator,
        frames_dir=out_dir / f"{stem}_frames",
    )

    video = write_video(out_dir / f"{stem}.{'gif' if args.gif else 'mp4'}", frames, args.fps)
    import imageio.v2 as imageio
    import numpy as np

    strip = np.concatenate(
        [(views.images[s].clamp(0, 1) * 255).round().byte().numpy() for s in source], axis=1
    )
    imageio.imwrite(out_dir / f"{stem}_view.jpg", strip)
    print(video)
    return 0


# ----------------------------------------------------------------------------------------------------------
# pose
# ----------------------------------------------------------------------------------------------------------
def _add_pose(sub) -> None:
    from inerf.cli.estimate import add_solver_arguments
    from inerf.pose.config import STRATEGIES, SamplingConfig

    p = sub.add_parser(
        "pose",
        help="pose of a target image relative to one source image (iNeRF-public's demo, on SE(3))",
        description="Estimate the camera pose of --target relative to --input with a pixelNeRF conditioned "
        "on --input alone. The world is the source camera's canonical frame: identity rotation (OpenGL "
        "axes) at (0, 0, --radius), the object at the origin. Defaults: SRN cars (srn_car).",
    )
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--input",
        required=True,
        help="source image or raw photo (PNG/JPG; normalised unless --no-normalize, see 'photos')",
    )
    g.add_argument("--target", required=True, help="target image or raw photo whose pose is estimated")
    g.add_argument(
        "-n",
        "--name",
        default=None,
        help="experiment name of a published checkpoint (default: srn_car when "
        "<checkpoints_path>/srn_car exists, else the model shipped with inerf)",
    )
    from inerf.cli.pixelnerf_bundle import add_model_argument

    add_model_argument(g)
    g.add_argument(
        "-c", "--conf", default=None, help="pixelNeRF config (default: the published one of --name)"
    )
    from inerf.cli.pixelnerf_bundle import add_checkpoint_arguments

    add_checkpoint_arguments(g)
    g.add_argument(
        "--radius",
        type=float,
        default=None,
        help="distance of the object from the source camera (default: the model's data; 1.3 for SRN cars)",
    )
    g.add_argument(
        "--focal",
        type=float,
        default=None,
        help="focal length in pixels of both images (default: the model's data, scaled to the image width; "
        "131.25 for SRN cars at 128 px)",
    )
    g.add_argument(
        "--target-focal", type=float, default=None, help="focal length of the target (default: --focal)"
    )
    g.add_argument(
        "--z-near", type=float, default=None, help="near bound of rays (default: the model's; SRN cars 0.8)"
    )
    g.add_argument(
        "--z-far", type=float, default=None, help="far bound of rays (default: the model's; SRN cars 1.8)"
    )
    g.add_argument("--init", default=None, help="initial target pose file (default: the source camera)")
    g.add_argument(
        "--target-pose",
        default=None,
        help="ground-truth target pose file, to report errors (canonical frame, or the frame of "
        "--source-pose)",
    )
    g.add_argument(
        "--source-pose",
        default=None,
        help="the source camera's pose in the frame of --target-pose (e.g. an SRN pose file); the "
        "ground truth is then mapped to the canonical frame",
    )
    g.add_argument(
        "--pose-convention",
        choices=["opencv", "opengl"],
        default=None,
        help="camera axes of pose files that do not say (default: opencv, as SRN pose files)",
    )
    g.add_argument(
        "--sampling",
        choices=STRATEGIES,
        default=SamplingConfig().strategy,
        help="pixel-sampling strategy (default: %(default)s)",
    )
    from inerf.cli.pixelnerf_real import add_normalize_arguments

    add_normalize_arguments(p)
    add_solver_arguments(p)
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--out", default=None, help="output folder (pose.json, trajectory, frames); default: print only"
    )
    o.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    o.add_argument("--frames", type=int, default=0, help="overlay frames in --out (each is a full render)")
    o.add_argument("--frame-size", type=int, default=400, help="longest side of the overlay frames")
    o.add_argument("--fps", type=float, default=5.0, help="frame rate of the GIF and MP4")
    p.set_defaults(func=run_pose)


def run_pose(args) -> int:
    import torch

    from inerf.cli.common import check_out_dir, input_file, prepare_out_dir, resolve_device
    from inerf.cli.estimate import pose_config_from_args
    from inerf.cli.pixelnerf_bundle import choose_pose_model, scale_focal
    from inerf.cli.pixelnerf_real import read_pose_images, write_pose_photos
    from inerf.geometry.cameras import Cameras
    from inerf.pixelnerf.model import load_pixelnerf
    from inerf.pixelnerf.pose import canonical_source_c2w, encode_source, to_canonical_frame
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pose.io import read_pose
    from inerf.pose.report import OutputOptions, summary_lines, write_estimate_outputs
    from inerf.pose.sampling import PixelSampler
    from inerf.pose.solver import PoseTarget, estimate_pose

    focal_given = args.focal is not None
    chosen = choose_pose_model(args)  # also fills --radius, --focal, --z-near, --z-far left unset
    if args.radius <= 0 or args.focal <= 0 or (args.target_focal is not None and args.target_focal <= 0):
        raise InerfError("--radius, --focal and --target-focal must be positive")
    if not 0 < args.z_near < args.z_far:
        raise InerfError(f"need 0 < --z-near < --z-far, got {args.z_near} and {args.z_far}")
    if args.source_pose and not args.target_pose:
        raise InerfError("--source-pose is only used with --target-pose")
    pose_config_from_args(args, args.sampling)  # every solver flag checked before any work
    if args.out:
        check_out_dir(args.out, args.overwrite)
    config, checkpoint = chosen.config, chosen.checkpoint
    background = (1.0, 1.0, 1.0) if config.renderer.white_bkgd else (0.0, 0.0, 0.0)

    # Files that need no model first, so bad input fails fast. Raw photos are normalised (pixelnerf_real).
    source, target_img, target_alpha, photos = read_pose_images(args, background)
    gt = None
    if args.target_pose:
        gt = read_pose(
            input_file(args.target_pose, "--target-pose"), args.pose_convention, "ground-truth target pose"
        )
        if args.source_pose:
            src = read_pose(
                input_file(args.source_pose, "--source-pose"), args.pose_convention, "source pose"
            )
            gt = to_canonical_frame(gt, src, args.radius)
    args.focal = scale_focal(chosen, focal_given, args.focal, source.shape[1])
    init = (
        read_pose(input_file(args.init, "--init"), args.pose_convention, "initial pose")
        if args.init
        else canonical_source_c2w(args.radius)
    )

    device = resolve_device(args.device, args.tf32)
    model = load_pixelnerf(checkpoint, config, device=device)
    encode_source(model, source, args.focal, args.radius)
    H, W = target_img.shape[:2]
    f_t = args.target_focal or args.focal
    # pixelNeRF's image centre (W / 2, H / 2) is integer-centred: + 0.5 in inerf's pixels.
    target = PoseTarget(
        image=target_img.to(device),
        camera=Cameras.from_intrinsics(f_t, f_t, W / 2 + 0.5, H / 2 + 0.5, H, W).to(device),
        alpha=target_alpha.to(device) if target_alpha is not None else None,
    )
    r = config.renderer
    n_coarse = r.n_coarse if args.samples is None else args.samples
    # pixelNeRF's sampler and compositing, deterministic: the loss is then a smooth function of the pose.
    scene = pixelnerf_model(
        model,
        render_config(
            r,
            args.z_near,
            args.z_far,
            deterministic=True,
            n_coarse=n_coarse,
            chunk=max(1, r.eval_batch_size // (n_coarse + r.n_fine)),
        ),
    )
    pose_config = pose_config_from_args(args, args.sampling)
    result = estimate_pose(
        scene,
        target,
        init,
        pose_config,
        seeds=args.seed,
        progress=not args.quiet,
        desc="iNeRF (pixelNeRF)",
    )

    print(
        f"inerf pixelnerf pose: {args.target} relative to {args.input} ({chosen.label}, {args.sampling} "
        f"sampling, {pose_config.n_rays} rays)"
    )
    for line in summary_lines(result, gt):
        print("  " + line)
    torch.set_printoptions(precision=5, sci_mode=False)
    print("  target c2w (OpenCV axes, canonical frame of the source camera):")
    for row in result.c2w[0].tolist():
        print("    " + "  ".join(f"{v: .5f}" for v in row))
    if args.out:
        out = prepare_out_dir(args.out, args.overwrite)
        sampler = PixelSampler.for_target(target, pose_config, device="cpu")
        meta = {
            "target": str(args.target),
            "source": str(args.input),
            "checkpoint": str(checkpoint),
            "frame": f"canonical: source camera at identity rotation (OpenGL axes), (0, 0, {args.radius})",
            "focal": args.focal,
            "target_focal": f_t,
            "z_near": args.z_near,
            "z_far": args.z_far,
            "normalized": bool(photos),
        }
        photo_paths = write_pose_photos(out, photos)
        paths = write_estimate_outputs(
            out,
            result,
            target,
            scene,
            gt_c2w=gt,
            meta=meta,
            sampler=sampler,
            options=OutputOptions(
                frames=args.frames, max_side=args.frame_size, fps=args.fps, video=args.frames > 0
            ),
        )
        print(f"  wrote {out}/: " + ", ".join(p.name for p in [*photo_paths, *paths.values()]))
    if result.status[0] != "ok":
        raise InerfError(
            "the loss became NaN or infinite for every hypothesis; the printed pose is the last finite one"
        )
    return 0
