"""Which pixelNeRF ``inerf pixelnerf video`` and ``pose`` run: a published checkpoint (``-n``,
``--checkpoint``), a model folder (``--model``), or, when none is named, the model shipped with inerf
(:mod:`inerf.pixelnerf.bundle`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inerf.errors import InerfError

SRN_CAR_CAMERA = {"radius": 1.3, "focal": 131.25, "near": 0.8, "far": 1.8, "image_size": [128, 128]}
"""The SRN-car statistics iNeRF-public assumes (and the published srn_car model was trained on)."""


@dataclass
class ChosenModel:
    checkpoint: Path
    """Weights file (``pixel_nerf_latest`` or a model folder's ``model.safetensors``)."""
    config: object
    """:class:`inerf.pixelnerf.config.PixelNeRFConfig`."""
    label: str
    """Name for messages and output folders."""
    camera: dict
    """Camera statistics of the training data (see :attr:`inerf.pixelnerf.bundle.ModelBundle.camera`)."""
    bundle: object | None = None
    """The :class:`~inerf.pixelnerf.bundle.ModelBundle` when the model is a model folder."""


def add_checkpoint_arguments(group) -> None:
    """``--checkpoints_path`` (the published layout's folder of ``<name>/pixel_nerf_latest``) and
    ``--checkpoint FILE`` (a checkpoint file instead)."""
    group.add_argument(
        "--checkpoints_path",
        default="checkpoints",
        help="folder of <name>/pixel_nerf_latest (default: %(default)s)",
    )
    group.add_argument(
        "--checkpoint", default=None, help="checkpoint file (instead of --checkpoints_path/--name)"
    )


def add_model_argument(group) -> None:
    group.add_argument(
        "--model",
        default=None,
        help="a pixelNeRF model folder (inerf pixelnerf export); default when no checkpoint is named: the "
        "model shipped with inerf (Sweet Home 3D chairs)",
    )


def _from_bundle(path: str | None) -> ChosenModel:
    from inerf.pixelnerf.bundle import DEFAULT_BUNDLE, default_bundle, read_bundle
    from inerf.pixelnerf.config import load_config

    bundle = read_bundle(path) if path is not None else default_bundle()
    if bundle is None:
        raise InerfError(
            f"no checkpoint named and this install has no shipped pixelNeRF model ({DEFAULT_BUNDLE}/"
            "model.safetensors); pass -n NAME (checkpoints/NAME/pixel_nerf_latest) or --model DIR"
        )
    return ChosenModel(
        bundle.weights,
        load_config(bundle.conf),
        bundle.meta.get("name", bundle.path.name),
        bundle.camera,
        bundle,
    )


def _published_config(name: str, conf: str | None):
    from inerf.pixelnerf.config import EXPERIMENTS, load_config

    if conf is None and name not in EXPERIMENTS:
        raise InerfError(
            f"no published config for experiment {name!r}; pass -c/--conf (published: {', '.join(EXPERIMENTS)})"
        )
    return load_config(conf if conf is not None else name)


def choose_video_model(args) -> ChosenModel:
    """``video``: ``--model``, else ``-n`` (a checkpoint folder), else the shipped model."""
    if args.model is not None or args.name is None:
        if args.name is not None:
            raise InerfError("give -n (a checkpoint) or --model (a model folder), not both")
        return _from_bundle(args.model)
    from inerf.pixelnerf.train import CONF_NAME

    group = Path(args.exp_group_name) if args.exp_group_name else Path()
    folder = Path(args.checkpoints_path) / group / args.name
    checkpoint = folder / "pixel_nerf_latest"
    if args.conf is None and (folder / CONF_NAME).is_file():  # a run of inerf pixelnerf train
        from inerf.pixelnerf.config import load_config

        config = load_config(folder / CONF_NAME)
    else:
        config = _published_config(args.name, args.conf)
    if not checkpoint.is_file():
        raise InerfError(f"checkpoint not found: {checkpoint} (set --checkpoints_path and -n)")
    return ChosenModel(checkpoint, config, args.name, {})


def choose_pose_model(args) -> ChosenModel:
    """``pose``: ``--checkpoint`` or ``-n`` (published checkpoints, SRN-car camera defaults), else
    ``--model``, else ``checkpoints/srn_car`` when present, else the shipped model. Camera flags left unset
    (``--radius``, ``--focal``, ``--z-near``, ``--z-far``) take the chosen model's statistics."""
    if args.model is not None and (args.checkpoint or args.name):
        raise InerfError("give --model (a model folder) or -n/--checkpoint (a checkpoint), not both")
    if args.checkpoint or args.name:
        name = args.name or "srn_car"
        checkpoint = (
            Path(args.checkpoint)
            if args.checkpoint
            else Path(args.checkpoints_path) / name / "pixel_nerf_latest"
        )
        chosen = ChosenModel(checkpoint, _published_config(name, args.conf), name, SRN_CAR_CAMERA)
    elif args.model is None and (Path(args.checkpoints_path) / "srn_car" / "pixel_nerf_latest").is_file():
        chosen = ChosenModel(
            Path(args.checkpoints_path) / "srn_car" / "pixel_nerf_latest",
            _published_config("srn_car", args.conf),
            "srn_car",
            SRN_CAR_CAMERA,
        )
    else:
        chosen = _from_bundle(args.model)
    cam = chosen.camera
    for flag, key in (("radius", "radius"), ("focal", "focal"), ("z_near", "near"), ("z_far", "far")):
        if getattr(args, flag) is None:
            setattr(args, flag, float(cam[key]))
    if getattr(args, "size", 0) is None:  # photos are normalised to the model's training images
        args.size = int((cam.get("image_size") or SRN_CAR_CAMERA["image_size"])[1])
    return chosen


def scale_focal(chosen: ChosenModel, focal_given: bool, focal: float, width: int) -> float:
    """The model's focal length at an input ``width`` (a model folder records it at its training size)."""
    size = chosen.camera.get("image_size")
    if focal_given or not size or int(size[1]) == width:
        return focal
    return focal * width / int(size[1])
