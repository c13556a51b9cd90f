"""Options of the pose verbs beyond the solver: the target's intrinsics (and lens), the start perturbation,
global localisation (``--global``), pose uncertainty, the frame of the pose files given (``--input-frame``)
and of those written (``--pose-format``, ``--pose-frame``).

Shared by ``inerf estimate``, ``inerf benchmark pose``, ``inerf track`` and ``inerf demo``. The flags are derived from
:class:`inerf.pose.global_search.GlobalConfig` (``--global-viewpoints``, ``--global-rolls``, ...) and
:class:`inerf.pose.uncertainty.UncertaintyConfig` (``--uncertainty-rays``, ...) as the solver's are from
:class:`~inerf.pose.config.PoseConfig` (:mod:`inerf.cli.config_args`); the pose-file flags are defined
once here (:func:`add_pose_output_arguments`) and read by :func:`pose_output_from_args`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from inerf.cli.common import input_file
from inerf.cli.config_args import ConfigFlags, finite_float
from inerf.errors import InerfError
from inerf.pose.global_search import CameraPrior, GlobalConfig
from inerf.pose.perturb import Perturbation
from inerf.pose.uncertainty import UncertaintyConfig

__all__ = [
    "GLOBAL_FLAGS",
    "GLOBAL_PRESET",
    "INPUT_FRAME_DEFAULT",
    "PERTURB_FLAGS",
    "UNCERTAINTY_FLAGS",
    "add_global_arguments",
    "add_input_frame_argument",
    "add_intrinsics_arguments",
    "add_pose_output_arguments",
    "add_uncertainty_arguments",
    "camera_prior",
    "camera_source",
    "global_config_from_args",
    "input_poses_to_training",
    "intrinsics_from_args",
    "model_error_from_args",
    "pose_output_from_args",
    "read_init_pose",
    "run_scene_transform",
    "uncertainty_config_from_args",
]

GLOBAL_PRESET = "robust"
"""The solver preset of ``--global`` when ``--preset`` is not typed: coarse-to-fine blur and an LM finish."""


def _prefixed(cls, prefix: str) -> dict[str, str]:
    return {f.name: f"--{prefix}-" + f.name.replace("_", "-") for f in dataclasses.fields(cls)}


GLOBAL_FLAGS = ConfigFlags(GlobalConfig, key="global", names=_prefixed(GlobalConfig, "global"))
"""One flag per :class:`GlobalConfig` field: ``--global-viewpoints``, ``--global-keep``, ..."""

UNCERTAINTY_FLAGS = ConfigFlags(
    UncertaintyConfig, key="uncertainty", names=_prefixed(UncertaintyConfig, "uncertainty")
)
"""One flag per :class:`UncertaintyConfig` field: ``--uncertainty-rays``, ``--uncertainty-estimator``, ..."""


PERTURB_FLAGS = ConfigFlags(
    Perturbation, key="perturb", names=_prefixed(Perturbation, "perturb") | {"rot_deg": "--perturb-rot"}
)
"""One flag per :class:`Perturbation` field: ``--perturb-rot``, ``--perturb-trans``, ``--perturb-sampling``,
``--perturb-pivot`` (``inerf benchmark pose`` spells its protocol's perturbation the same way)."""


def add_intrinsics_arguments(group) -> None:
    """``--intrinsics FILE`` or ``--fx`` with optional ``--fy``, ``--cx``, ``--cy``: the target camera's
    intrinsics (read by :func:`intrinsics_from_args`)."""
    group.add_argument(
        "--intrinsics",
        metavar="FILE",
        help="intrinsics JSON: fx/fy/cx/cy[/width/height], fl_x/fl_y/cx/cy/w/h, K, or a Blender transforms "
        "file (camera_angle_x)",
    )
    group.add_argument("--fx", type=finite_float, help="focal length in pixels (instead of --intrinsics)")
    group.add_argument("--fy", type=finite_float, help="vertical focal length (default: --fx)")
    group.add_argument("--cx", type=finite_float, help="principal point x in pixels (default: width / 2)")
    group.add_argument("--cy", type=finite_float, help="principal point y in pixels (default: height / 2)")


def intrinsics_from_args(args):
    """``(width, height) -> Cameras`` of the typed intrinsics flags (an image's size completes them), or
    None when none is typed. Checked now, before any work: ``--intrinsics`` must exist and not come with
    ``--fx``..., and ``--fy``/``--cx``/``--cy`` need ``--fx``."""
    from inerf.pose.io import intrinsics_camera, read_intrinsics

    flags = [args.fx, args.fy, args.cx, args.cy]
    if args.intrinsics and any(v is not None for v in flags):
        raise InerfError("give --intrinsics or --fx/--fy/--cx/--cy, not both")
    if args.intrinsics:
        path = input_file(args.intrinsics, "--intrinsics")
        return lambda w, h: read_intrinsics(path, w, h)
    if args.fx is not None:
        return lambda w, h: intrinsics_camera(
            args.fx,
            args.fy if args.fy is not None else args.fx,
            args.cx if args.cx is not None else w / 2,
            args.cy if args.cy is not None else h / 2,
            w,
            h,
            source="--fx/--fy/--cx/--cy",
        )
    if any(v is not None for v in flags):
        raise InerfError("--fy/--cx/--cy need --fx")
    return None


def camera_source(args, dataset_camera=None):
    """``camera_for(width, height) -> (Cameras, Undistorter or None)`` of the intrinsics flags, else of a
    dataset view's camera (``inerf estimate --view``).

    An ``--intrinsics`` file with distortion keys gives the :class:`~inerf.data.undistort.Undistorter` that
    resamples a frame of that size into the pinhole camera returned beside it (:func:`inerf.pose.io.read_camera`:
    the same undistortion the nerfstudio and COLMAP loaders apply to the training images); ``--fx`` ... and
    the dataset camera are pinhole (None)."""
    from inerf.pose.io import read_camera

    pinhole = intrinsics_from_args(args)  # checks the flags against each other
    if args.intrinsics:
        path = input_file(args.intrinsics, "--intrinsics")
        return lambda w, h: read_camera(path, w, h)
    if pinhole is not None:
        return lambda w, h: (pinhole(w, h), None)
    if dataset_camera is not None:
        return lambda w, h: (dataset_camera, None)
    dataset_view = " (or use --view for a dataset image)" if hasattr(args, "view") else ""
    raise InerfError(f"no intrinsics: give --intrinsics FILE or --fx{dataset_view}")


def add_global_arguments(parser: argparse.ArgumentParser, what: str = "the pose") -> None:
    """``--global`` and the :class:`GlobalConfig` flags, in their own help group."""
    g = parser.add_argument_group(
        "global localisation",
        "With --global no initial pose is needed: candidate poses around the scene are scored at low "
        "resolution and the best --global-keep are refined together, pruned to the best (the solver flags "
        f"apply to that refinement; its default preset is {GLOBAL_PRESET}).",
    )
    g.add_argument(
        "--global",
        dest="global_search",
        action="store_true",
        help=f"find {what} with no initial guess (candidates from the training cameras and a sphere around "
        "the scene, scored cheaply, the best refined)",
    )
    GLOBAL_FLAGS.add_to(parser, GlobalConfig(), group=g)


def add_uncertainty_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-uncertainty`` and the :class:`UncertaintyConfig` flags."""
    g = parser.add_argument_group(
        "uncertainty",
        "A 6x6 covariance of the estimate from the Gauss-Newton matrix of the pixel residuals at the "
        "solution, reported as 1-sigma rotation (degrees) and translation.",
    )
    g.add_argument("--no-uncertainty", action="store_true", help="skip the covariance of the estimate")
    g.add_argument(
        "--no-model-error",
        action="store_true",
        help="do not add the run's model-error term (RUN/calibration.json, made by `inerf calibrate`) to "
        "the covariance",
    )
    g.add_argument(
        "--calibration",
        metavar="FILE",
        default=None,
        help="the model-error term to add, a file written by `inerf calibrate` (default: RUN/calibration.json "
        "when the run has one)",
    )
    UNCERTAINTY_FLAGS.add_to(parser, UncertaintyConfig(), group=g)


def global_config_from_args(args) -> GlobalConfig:
    """The :class:`GlobalConfig` of the typed ``--global-*`` flags (validated, one-line errors)."""
    if GLOBAL_FLAGS.given(args) and not getattr(args, "global_search", False):
        typed = next(iter(GLOBAL_FLAGS.given(args).values()))
        raise InerfError(f"{typed.flag}: only used with --global")
    return GLOBAL_FLAGS.build(GlobalConfig(), args)


def uncertainty_config_from_args(args) -> UncertaintyConfig | None:
    """The :class:`UncertaintyConfig` of the typed flags, or None with ``--no-uncertainty``."""
    if getattr(args, "no_uncertainty", False):
        if UNCERTAINTY_FLAGS.given(args):
            typed = next(iter(UNCERTAINTY_FLAGS.given(args).values()))
            raise InerfError(f"{typed.flag} and --no-uncertainty: choose one")
        return None
    return UNCERTAINTY_FLAGS.build(UncertaintyConfig(), args)


def model_error_from_args(args, run_dir, log=print):
    """The run's model-error term (:func:`inerf.pose.calibration.load_calibration`) to add to every
    covariance, or None: no covariance, ``--no-model-error``, or the run has no ``calibration.json`` (then
    a hint to make one is logged: the covariance alone is overconfident on a trained field)."""
    from inerf.pose.calibration import CALIBRATION_FILE, load_calibration

    given = getattr(args, "calibration", None)
    if getattr(args, "no_uncertainty", False) or getattr(args, "no_model_error", False):
        if given:
            raise InerfError("--calibration and --no-uncertainty/--no-model-error: choose one")
        return None
    if given:
        path = Path(given)
        if not path.is_file():
            raise InerfError(f"--calibration {given}: no such file")
        return load_calibration(path.parent, path.name)
    found = load_calibration(run_dir)
    if found is None:
        log(
            f"note: {run_dir} has no {CALIBRATION_FILE}: the covariance omits the field's own error "
            f"(make one with `inerf calibrate --run {run_dir}`)"
        )
    return found


def use_global_preset(args) -> None:
    """With ``--global`` and no ``--preset`` typed, solve with :data:`GLOBAL_PRESET` (call before reading the
    solver config: the refinement of many far-off candidates needs the blur and the LM finish)."""
    if getattr(args, "global_search", False) and getattr(args, "preset", None) is None:
        args.preset = GLOBAL_PRESET


def camera_prior(run_, data: str | None = None, log=print) -> CameraPrior:
    """Where the cameras of ``run_``'s scene are: its training cameras when the training data can be read
    (``data`` overrides the folder), else a sphere of radius ``(near + far) / 2`` around the origin."""
    try:
        views = run_.dataset.load("train", run_dir=run_.run_dir, root=data)
    except (InerfError, OSError) as exc:
        prior = CameraPrior.from_bounds(run_.model.config.near, run_.model.config.far)
        log(
            f"  global: training cameras unavailable ({str(exc).splitlines()[0]}); candidates on the {prior.source}"
        )
        return prior
    return CameraPrior.from_cameras(
        views.cameras.c2w, source=f"{len(views)} training cameras of {views.root}"
    )


def add_pose_output_arguments(parser: argparse.ArgumentParser, what: str = "the estimated pose") -> None:
    """``--pose-format`` and ``--pose-frame``, in their own help group (one definition for every pose verb)."""
    from inerf.geometry.formats import POSE_FORMATS
    from inerf.pose.pose_files import POSE_FRAMES

    g = parser.add_argument_group(
        "pose files",
        "The JSON output always states its convention (OpenCV c2w: x right, y down, looking along +z) and "
        "world frame, and holds the OpenGL c2w too; when the run recorded how its data was centred and "
        "scaled (COLMAP, nerfstudio captures), also the pose in your original frame.",
    )
    g.add_argument(
        "--pose-format",
        default=None,
        metavar="FORMAT[,FORMAT...]",
        help=f"also write {what} as {', '.join(POSE_FORMATS)} files under OUT/poses/ (opencv.json, "
        "opengl.json, nerfstudio transforms.json + camera_path.json, colmap/images.txt + cameras.txt, "
        "tum.txt, kitti.txt)",
    )
    g.add_argument(
        "--pose-frame",
        choices=POSE_FRAMES,
        default="original",
        help="world frame of the --pose-format files: original (your capture's world, e.g. COLMAP's, "
        "undoing the loader's centring and scaling; the training frame when the run recorded none) or "
        "training (the frame the field was trained in)",
    )


INPUT_FRAME_DEFAULT = "training"
"""Default of ``--input-frame``. The training frame, as before the flag existed: every recorded command line
still reads its pose files alike, and inerf's own ``pose.json`` ``c2w`` and ``trajectory.json`` (the poses a
user most often feeds back) are in that frame. ``--pose-frame`` defaults to ``original`` instead: what inerf
writes for other tools is in their frame."""


def add_input_frame_argument(group, flags: str = "--init, --gt") -> None:
    """``--input-frame original|training``: the world frame of the pose files the user gives (read by
    :func:`input_poses_to_training`)."""
    from inerf.pose.pose_files import POSE_FRAMES

    group.add_argument(
        "--input-frame",
        choices=POSE_FRAMES,
        default=INPUT_FRAME_DEFAULT,
        help=f"world frame of the poses of {flags}: training (the frame the field was trained in, as "
        "pose.json's c2w and trajectory.json) or original (your capture's world, e.g. the images.txt of "
        "your COLMAP model or your transforms.json: converted through the centring and scaling the run "
        "recorded; for a Blender run both are the same)",
    )


def read_init_pose(args):
    """The ``[4, 4]`` c2w of ``--init`` (camera axes from the file or ``--pose-convention``; frame as typed:
    map it with :func:`input_poses_to_training`), or None without ``--init``."""
    from inerf.pose.io import read_pose

    if not args.init:
        return None
    return read_pose(input_file(args.init, "--init"), args.pose_convention, "initial pose")


def input_poses_to_training(args, transform, flags: str = "--init/--gt"):
    """``to_training(c2w) -> c2w``: OpenCV c2w ``[..., 4, 4]`` of the user's pose files, in the frame of
    ``--input-frame``, mapped into the run's training frame, the frame every solve and error is in.

    Args:
        transform: the run's recorded original -> training similarity (:func:`run_scene_transform`), or
            None when it recorded none: then ``--input-frame original`` is a one-line error (the original
            frame is unknown), never a silent use of the training frame.
        flags: the flags whose poses are mapped, for that error.
    """
    if getattr(args, "input_frame", INPUT_FRAME_DEFAULT) == "training":
        return lambda c2w: c2w
    if transform is None:
        raise InerfError(
            f"--input-frame original: the run {args.run} recorded no original frame (trained before inerf "
            f"recorded it, and its data is not found); give {flags} in its training frame"
        )
    return transform.c2w_to_training


def run_scene_transform(run_, data: str | None = None, views=None):
    """How ``run_``'s data was moved into its training frame: the record in its ``config.json``, else (runs
    trained before inerf recorded it) that of ``views`` or of one view loaded from its data; None when
    neither can be had."""
    recorded = getattr(run_.dataset, "scene_transform", None)
    tf = recorded() if callable(recorded) else None
    if tf is not None:
        return tf
    if views is not None:
        return views.transform
    if getattr(run_.dataset, "format", None) == "blender":  # the Blender loader uses the files' poses as is
        from inerf.data.views import SceneTransform

        return SceneTransform.identity("world frame of the transforms_*.json files")
    try:
        return run_.dataset.load("train", run_dir=run_.run_dir, root=data, max_views=1).transform
    except (InerfError, OSError):
        return None


def pose_output_from_args(args, transform=None, run: str = ""):
    """The :class:`~inerf.pose.pose_files.PoseOutput` of ``--pose-format`` / ``--pose-frame`` (call it once
    before any work with no ``transform``: a misspelt format is then a one-line error at once)."""
    from inerf.pose.pose_files import PoseOutput, parse_pose_formats

    text = getattr(args, "pose_format", None)
    return PoseOutput(
        formats=parse_pose_formats(text) if text is not None else (),
        frame=getattr(args, "pose_frame", "original"),
        transform=transform,
        run=run,
    )
