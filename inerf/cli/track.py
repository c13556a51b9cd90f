"""``inerf track``: the camera pose of every frame of an image sequence or video, each warm-started from the last.

Examples::

    # a generated sequence with ground truth (inerf synth scene --path handheld --frames 200)
    inerf track --run runs/duck --images data/duck/path --intrinsics data/duck/transforms_path.json \\
        --gt data/duck/path.tum --init-from-gt --out track/
    # a video, no initial pose
    inerf track --run runs/duck --images clip.mp4 --fx 600 --global --out track/
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, replace
from pathlib import Path

from inerf.cli.common import (
    HelpFormatter,
    add_out,
    add_run,
    check_out_dir,
    input_file,
    prepare_out_dir,
    resolve_device,
)
from inerf.cli.config_args import ConfigFlags, Given, finite_float
from inerf.errors import InerfError
from inerf.pose.perturb import SUCCESS

__all__ = ["add_parser", "run"]


def _track_flags() -> ConfigFlags:
    from inerf.pose.track import TrackConfig

    return ConfigFlags(TrackConfig, key="track")


def add_parser(subparsers) -> None:
    from inerf.cli.estimate import POSE_FLAGS, add_run_options
    from inerf.cli.pose_options import (
        add_global_arguments,
        add_input_frame_argument,
        add_intrinsics_arguments,
        add_pose_output_arguments,
    )
    from inerf.pose.config import STRATEGIES
    from inerf.pose.track import TRACK, TrackConfig

    p = subparsers.add_parser(
        "track",
        help="track the camera through an image sequence or video (warm-started iNeRF per frame)",
        description="Estimate the camera pose (camera-to-world, OpenCV axes) of every frame of an image sequence "
        "or video: each frame's solve starts from a constant-velocity prediction and takes a few "
        "Levenberg-Marquardt steps; a frame whose loss jumps is re-localised. Writes trajectory.json, "
        "trajectory.tum, trajectory.kitti, an overlay video and, with --gt, per-frame errors and their plot.",
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("inputs")
    add_run(g)
    g.add_argument(
        "--images",
        metavar="DIR|VIDEO",
        required=True,
        help="a folder of PNG/JPG frames (natural name order) or a video file",
    )
    add_intrinsics_arguments(g)
    g.add_argument(
        "--gt",
        metavar="FILE",
        help="ground-truth trajectory, one pose per frame: TUM, KITTI or JSON (transforms_*.json, trajectory.json)",
    )
    g.add_argument(
        "--fps", type=finite_float, default=30.0, help="frame rate for timestamps of image folders"
    )
    g.add_argument("--stride", type=int, default=1, help="track every N-th frame")
    g.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--init", metavar="POSE_FILE", help="approximate camera-to-world pose of the first frame")
    s.add_argument(
        "--init-from-gt", action="store_true", help="start from the ground truth of the first frame"
    )
    g.add_argument(
        "--pose-convention",
        choices=["opencv", "opengl"],
        default=None,
        help="camera axes of an --init file that does not state them (default opencv)",
    )
    add_input_frame_argument(g, "--init and --gt")
    _track_flags().add_to(p, TrackConfig(), title="tracking")
    g = p.add_argument_group(
        "per-frame solver",
        "Defaults shown are the tracking preset's (inerf.pose.track.TRACK). Unless --blur is typed, the blur "
        "scales with the image: 2 pixels per 128 of its long side.",
    )
    g.add_argument(
        "--sampling", choices=STRATEGIES, default=TRACK.sampling.strategy, help="pixels rendered per step"
    )
    g.add_argument(
        "--recover-steps",
        type=int,
        default=None,
        help="steps of the first frame's and a lost frame's solve (default: inerf.pose.track.RECOVER's 80)",
    )
    POSE_FLAGS.add_to(p, TRACK, title="per-frame solver", group=g)
    add_global_arguments(
        p, what="the first frame's pose when no --init is given (and a lost frame's with --relocalize global)"
    )
    add_run_options(p, seed_help="seeds the pixel sampling")
    add_pose_output_arguments(p, what="the trajectory")
    o = add_out(p, "trajectory.json, .tum, .kitti, overlay video, errors")
    o.add_argument("--no-video", action="store_true", help="no overlay video (saves a render per frame)")
    o.add_argument(
        "--video-size",
        type=int,
        default=None,
        help="long side of the overlay video's frames (default: 400 on CUDA, 128 on the CPU)",
    )
    o.add_argument(
        "--uncertainty",
        action="store_true",
        help="also compute each frame's 1-sigma rotation and translation (a 1024-pixel Gauss-Newton matrix per frame)",
    )
    p.set_defaults(func=run)


def _configs(args, long_side: int):
    """The tracking, per-frame and recovery configs of the command line, the blur scaled to the image."""
    from inerf.cli.estimate import POSE_FLAGS
    from inerf.pose.track import RECOVER, TRACK

    given = POSE_FLAGS.given(args)
    base = TRACK
    if ("blur", "sigma") not in given:
        base = replace(TRACK, blur=replace(TRACK.blur, sigma=TRACK.blur.sigma * long_side / 128))
    given[("sampling", "strategy")] = Given(args.sampling, "--sampling", args.sampling)
    pose_config = POSE_FLAGS.build(base, given)
    recover = replace(RECOVER, blur=replace(RECOVER.blur, sigma=RECOVER.blur.sigma * long_side / 128))
    if args.recover_steps is not None:
        if args.recover_steps < 4:
            raise InerfError(f"--recover-steps {args.recover_steps}: must be >= 4")
        recover = recover.with_steps(args.recover_steps)
    return _track_flags().build(_default_track(), args), pose_config, recover


def _default_track():
    from inerf.pose.track import TrackConfig

    return TrackConfig()


def run(args) -> int:
    from inerf.cli.estimate import load_run_checked
    from inerf.cli.pose_options import (
        camera_source,
        global_config_from_args,
        input_poses_to_training,
        pose_output_from_args,
        read_init_pose,
        run_scene_transform,
    )
    from inerf.pose.io import camera_to_json
    from inerf.pose.pose_files import pinhole_of, write_pose_files
    from inerf.pose.track import track
    from inerf.pose.track_io import image_files, iter_frames, read_trajectory, write_track_outputs

    if args.stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        raise InerfError("--stride and --max-frames must be >= 1")
    if args.video_size is not None and args.video_size < 8:
        raise InerfError(f"--video-size {args.video_size}: must be >= 8")
    if args.init_from_gt and not args.gt:
        raise InerfError("--init-from-gt needs --gt")
    if not (args.init or args.init_from_gt or args.global_search):
        raise InerfError("no initial pose: give --init POSE, --init-from-gt or --global")
    global_config = global_config_from_args(args)
    pose_output_from_args(args)
    _track_flags().build(_default_track(), args)  # flags checked before any work
    check_out_dir(args.out, args.overwrite)
    camera_for = camera_source(args)  # with a lens in --intrinsics, every frame is undistorted
    source = Path(args.images)
    gt = read_trajectory(input_file(args.gt, "--gt"), "--gt")[:: args.stride] if args.gt else None
    if gt is not None and source.is_dir():
        n = len(image_files(source))
        n = len(range(0, n, args.stride))
        n = min(n, args.max_frames or n)
        if len(gt) < n:
            raise InerfError(f"--gt {args.gt}: {len(gt)} poses for {n} frames of {source}")
    init = read_init_pose(args)

    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    model = run_.model
    scene_transform = run_scene_transform(run_)
    # The user's pose files change frame here, once: tracking and its errors are in the training frame.
    to_training = input_poses_to_training(args, scene_transform, "--init/--gt")
    gt = to_training(gt) if gt is not None else None
    init = gt[0] if args.init_from_gt else to_training(init) if init is not None else None
    frames = iter_frames(
        source,
        camera_for,
        model.config.background,
        device,
        fps=args.fps,
        stride=args.stride,
        max_frames=args.max_frames,
    )
    first = next(frames)
    track_config, pose_config, recover = _configs(args, max(first.target.height, first.target.width))
    if track_config.relocalize == "global" and not args.global_search:
        raise InerfError("--relocalize global needs --global (its candidates and settings)")
    localize_fn = None
    if args.global_search:
        from inerf.cli.pose_options import camera_prior
        from inerf.pose.config import ROBUST
        from inerf.pose.global_search import localize

        prior = camera_prior(run_, log=(lambda *a: None) if args.quiet else print)

        def localize_fn(target, seed):
            return localize(model, target, prior, global_config, ROBUST, seed=args.seed + seed).result

    video_side = args.video_size or (400 if device.type == "cuda" else 128)
    overlays, uncertainty = [], [] if args.uncertainty else None
    cameras = []  # each frame's intrinsics, for the COLMAP and nerfstudio pose files

    def on_frame(frame, tf):
        cameras.append(pinhole_of(frame.target.camera))
        if args.uncertainty:
            from inerf.pose.uncertainty import UncertaintyConfig, pose_uncertainty

            uncertainty.append(
                pose_uncertainty(
                    model,
                    frame.target,
                    tf.c2w,
                    UncertaintyConfig(rays=1024),
                    solver=recover if tf.index == 0 or tf.relocalized else pose_config,
                )
            )
        if not args.no_video:
            from inerf.geometry import se3
            from inerf.pose.report import render_frames

            label = [f"frame {tf.index}  loss {tf.loss:.2e}" + ("  re-localised" if tf.relocalized else "")]
            if gt is not None and tf.index < len(gt):
                r = float(se3.rotation_error_deg(tf.c2w, gt[tf.index]))
                e = float(se3.translation_error(tf.c2w, gt[tf.index]))
                label.append(f"rot {r:.2f} deg  trans {e:.3f}")
            overlays.extend(
                render_frames(model, frame.target, tf.c2w[None], max_side=video_side, labels=[label])
            )

    result = track(
        model,
        itertools.chain([first], frames),
        init,
        track_config,
        pose_config,
        recover,
        localize_fn=localize_fn,
        on_frame=on_frame,
        progress=not args.quiet,
    )
    n = len(result.frames)
    if gt is not None and len(gt) < n:
        raise InerfError(f"--gt {args.gt}: {len(gt)} poses for {n} frames of {source}")
    gt_used = gt[:n] if gt is not None else None
    out = prepare_out_dir(args.out, args.overwrite)
    meta = {
        "images": str(source),
        "run": str(args.run),
        "gt": args.gt,
        "init": args.init or ("ground truth of frame 0" if args.init_from_gt else "global localisation"),
        "relocalize": track_config.relocalize,
        "stride": args.stride,
        "tf32": bool(device.type == "cuda" and args.tf32),
        "intrinsics": camera_to_json(first.target.camera),
        "input_frame": args.input_frame,
    }
    undistorter = camera_for(first.target.width, first.target.height)[1]
    if undistorter is not None:
        meta["undistorted"] = undistorter.record()
    if args.global_search:
        meta["global"] = asdict(global_config)
    pose_output = pose_output_from_args(args, scene_transform, run=str(args.run))
    meta["frame"] = pose_output.training_frame
    tf_ = pose_output.transform
    meta["original"] = None if tf_ is None else {"frame": tf_.original, "transform": tf_.to_dict()}
    paths = write_track_outputs(
        out,
        result,
        gt_c2w=gt_used,
        overlays=overlays,
        video_fps=min(args.fps / args.stride, 30.0),
        meta=meta,
        uncertainty=uncertainty,
    )
    paths.update(
        write_pose_files(
            out,
            result.c2w(),
            pose_output,
            names=[f.name for f in result.frames],
            intrinsics=cameras,
            timestamps=[f.timestamp for f in result.frames],
        )
    )
    reloc = sum(bool(f.relocalized) for f in result.frames[1:])
    print(
        f"inerf track: {n} frames of {source} in {result.seconds:.1f} s of solves "
        f"({result.fps:.2f} frames/s after the first) on {result.device}; {reloc} re-localised"
    )
    if gt_used is not None:
        rot, trans = result.errors(gt_used)
        print(
            f"  error per frame: rotation median {float(rot.median()):.3f} / max {float(rot.max()):.3f} deg, "
            f"translation median {float(trans.median()):.4f} / max {float(trans.max()):.4f}; "
            f"{int(SUCCESS.ok(rot, trans).sum())} of {n} frames a success ({SUCCESS.describe()})"
        )
    tops = dict.fromkeys(p.relative_to(out).parts[0] for p in paths.values())
    print(f"  wrote {out}/: " + ", ".join(t + ("/" if (out / t).is_dir() else "") for t in tops))
    return 0
