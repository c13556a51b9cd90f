"""``inerf pixelnerf real``: a pixelNeRF 360-degree video of an object in a real photo (published ``eval_real``).

Per photo: a foreground mask (alpha channel, ``--mask`` file, else GrabCut), the published normalisation
(:mod:`inerf.pixelnerf.real`) written as ``<stem>_normalize.png`` with ``<stem>_mask.png`` (the mask, which
can be edited and passed back with ``--mask``) and ``<stem>_mask_preview.png``; then the photo encoded at the
canonical source pose and the published orbit rendered to ``<stem>_frames/`` and ``<stem>_vid.mp4``/``.gif``.

Also the photo side of ``inerf pixelnerf pose`` (:func:`add_normalize_arguments`,
:func:`read_pose_images`): raw photos are normalised the same way before the solve.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inerf.errors import InerfError

if TYPE_CHECKING:
    import numpy as np

    from inerf.pixelnerf.real import Normalized

SRN_FOCAL = 131.25
"""eval_real's focal length in pixels of a 128-pixel image (SRN cars)."""
SRN_SIZE = 128

MASK_HELP = (
    "mask image per photo, in order (white = object; '-' = none for that photo). Without one, a photo's "
    "alpha channel is used, else GrabCut from a centred box: pass a mask when the object is not near the "
    "centre, touches the border, or shares colours with a cluttered background (check <stem>_mask_preview.png)"
)


def add_real_parser(sub) -> None:
    """Register ``inerf pixelnerf real`` on the ``pixelnerf`` sub-command parsers."""
    from inerf.cli.common import add_device

    p = sub.add_parser(
        "real",
        help="segment and normalise real object photos, render their 360-degree videos (published eval_real)",
        description="For each photo: find the object (alpha channel, --mask, else GrabCut from a centred box; "
        "no downloaded weights), crop and resize it as the published scripts/preproc.py does (ellipse fit, "
        "square of side max(4.37 x minor, 0.8 x major axis), white background, 128 px), then render the "
        "published eval_real 360-degree video: the photo as the only source view at the canonical pose "
        "(identity rotation, distance --radius), focal 131.25 px at 128 px. Writes into --out: "
        "<stem>_normalize.png, <stem>_mask.png, <stem>_mask_preview.png, <stem>_frames/, <stem>_vid.mp4.",
    )
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--input", nargs="+", required=True, metavar="PHOTO", help="object photos (PNG, JPEG, ...)"
    )
    g.add_argument("--mask", nargs="+", default=None, metavar="MASK", help=MASK_HELP)
    g.add_argument("--out", required=True, help="output folder (created if missing)")
    g.add_argument(
        "-n",
        "--name",
        default="srn_car",
        help="experiment name: checkpoint <checkpoints_path>/<name>/pixel_nerf_latest and its published config",
    )
    g.add_argument(
        "-c", "--conf", default=None, help="pixelNeRF config name or .conf path (default: of --name)"
    )
    from inerf.cli.pixelnerf_bundle import add_checkpoint_arguments

    add_checkpoint_arguments(g)
    n = p.add_argument_group("normalisation")
    n.add_argument(
        "--size", type=int, default=SRN_SIZE, help="side of the normalised image (default: %(default)s)"
    )
    n.add_argument(
        "-S", "--scale-minor", type=float, default=4.37, help="crop side / minor axis (default: %(default)s)"
    )
    n.add_argument(
        "-M", "--scale-major", type=float, default=0.8, help="crop side / major axis (default: %(default)s)"
    )
    v = p.add_argument_group("video")
    v.add_argument(
        "-e",
        "--elevation",
        type=float,
        default=0.0,
        help="camera elevation in degrees, negative = above the object (default: %(default)s)",
    )
    v.add_argument("--num-views", type=int, default=24, help="frames of the orbit (default: %(default)s)")
    v.add_argument("--fps", type=int, default=15, help="frames per second (default: %(default)s)")
    v.add_argument(
        "--format", choices=["mp4", "gif"], default="mp4", help="video format (default: %(default)s)"
    )
    v.add_argument("--out-size", type=int, default=SRN_SIZE, help="side of the frames (default: %(default)s)")
    v.add_argument(
        "--focal",
        type=float,
        default=None,
        help=f"focal length in pixels of the --size image (default: {SRN_FOCAL} x size / {SRN_SIZE})",
    )
    v.add_argument(
        "--radius", type=float, default=1.3, help="camera distance to the object (default: %(default)s)"
    )
    v.add_argument("--z-near", type=float, default=0.8, help="near bound of rays (default: %(default)s)")
    v.add_argument("--z-far", type=float, default=1.8, help="far bound of rays (default: %(default)s)")
    v.add_argument(
        "-R", "--ray_batch_size", type=int, default=50000, help="rays per network call (default: %(default)s)"
    )
    v.add_argument(
        "--deterministic", action="store_true", help="fixed sample positions instead of the published jitter"
    )
    v.add_argument("--seed", type=int, default=0, help="seed of the renderer's jitter (default: %(default)s)")
    v.add_argument(
        "--no-video", action="store_true", help="only segment and normalise (no checkpoint needed)"
    )
    add_device(v)
    o = p.add_argument_group("outputs")
    o.add_argument("--overwrite", action="store_true", help="replace files of the same names in --out")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_real)


# ----------------------------------------------------------------------------------------------------------
# One photo
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A photo read, segmented and normalised."""

    path: Path
    mask: np.ndarray
    """``[H, W]`` float32 mask in the photo."""
    source: str
    """Where the mask came from: ``alpha``, ``mask`` or ``grabcut``."""
    normalized: Normalized
    """The normalised photo."""
    preview: np.ndarray
    """``[h, w, 3]`` uint8 mask preview (:func:`inerf.pixelnerf.real.mask_preview`)."""


def prepare_photo(
    path: str | Path,
    mask_path: str | Path | None,
    size: int,
    scale_minor: float = 4.37,
    scale_major: float = 0.8,
    verb: str = "pixelnerf real",
) -> Prepared:
    """Read, segment and normalise one photo; warnings go to stderr as ``inerf VERB: warning: PHOTO: ...``.

    Raises:
        InerfError: one line naming the photo (or its mask) when it is unreadable or holds no object.
    """
    from inerf.pixelnerf.real import (
        GRABCUT_MARGIN,
        foreground_mask,
        mask_preview,
        normalize_photo,
        read_mask,
        read_photo,
    )

    path = Path(path)
    image, alpha = read_photo(path)
    mask = read_mask(mask_path, image.shape[:2]) if mask_path is not None else None
    try:
        m, source = foreground_mask(image, alpha, mask)
        margin = GRABCUT_MARGIN if source == "grabcut" else 0.0  # a GrabCut mask ends at its box
        normalized = normalize_photo(image, m, size, scale_minor, scale_major, margin)
    except InerfError as exc:
        what = f"{path} (mask {mask_path})" if mask_path is not None else str(path)
        raise InerfError(f"{what}: {exc}") from None
    for line in normalized.warnings:
        print(f"inerf {verb}: warning: {path}: {line}", file=sys.stderr)
    preview = mask_preview(image, m, normalized.ellipse, normalized.box)
    return Prepared(path, m, source, normalized, preview)


def _to_uint8(image):
    import numpy as np

    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def write_prepared(prepared: Prepared, out: Path, stem: str) -> list[Path]:
    """Write ``<stem>_normalize.png``, ``<stem>_mask.png`` and ``<stem>_mask_preview.png`` into ``out``."""
    import imageio.v3 as iio

    paths = [out / f"{stem}_normalize.png", out / f"{stem}_mask.png", out / f"{stem}_mask_preview.png"]
    iio.imwrite(paths[0], _to_uint8(prepared.normalized.image))
    iio.imwrite(paths[1], _to_uint8(prepared.mask))
    iio.imwrite(paths[2], prepared.preview)
    return paths


# ----------------------------------------------------------------------------------------------------------
# inerf pixelnerf real
# ----------------------------------------------------------------------------------------------------------
def _check_args(args) -> None:
    if args.size < 8 or args.out_size < 1:
        raise InerfError("--size must be at least 8 and --out-size positive")
    if args.scale_minor <= 0 or args.scale_major <= 0:
        raise InerfError("-S/--scale-minor and -M/--scale-major must be positive")
    if args.num_views < 1:
        raise InerfError("--num-views must be at least 1")
    if args.fps < 1:
        raise InerfError("--fps must be at least 1")
    if args.radius <= 0 or (args.focal is not None and args.focal <= 0):
        raise InerfError("--radius and --focal must be positive")
    if not 0 < args.z_near < args.z_far:
        raise InerfError(f"need 0 < --z-near < --z-far, got {args.z_near} and {args.z_far}")
    if args.ray_batch_size < 1:
        raise InerfError("-R/--ray_batch_size must be positive")


def _stems(inputs: list[str]) -> list[str]:
    stems = [Path(p).stem for p in inputs]
    seen: dict[str, str] = {}
    for path, stem in zip(inputs, stems, strict=True):
        if stem in seen:
            raise InerfError(f"--input {path} and {seen[stem]} would both write {stem}_*: rename one")
        seen[stem] = path
    return stems


def _mask_paths(args) -> list[str | None]:
    if args.mask is None:
        return [None] * len(args.input)
    if len(args.mask) != len(args.input):
        raise InerfError(
            f"--mask: {len(args.mask)} mask(s) for {len(args.input)} photo(s); give one per photo, '-' for none"
        )
    return [None if m == "-" else m for m in args.mask]


def resolve_checkpoint(args):
    """``(checkpoint path, config)`` of ``--checkpoint`` or ``--checkpoints_path/--name``, and ``--conf``."""
    from inerf.pixelnerf.config import EXPERIMENTS, load_config

    if args.conf is None and args.name not in EXPERIMENTS:
        raise InerfError(
            f"no published config for experiment {args.name!r}; pass -c/--conf (published: {', '.join(EXPERIMENTS)})"
        )
    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else Path(args.checkpoints_path) / args.name / "pixel_nerf_latest"
    )
    if not checkpoint.is_file():
        raise InerfError(
            f"checkpoint not found: {checkpoint} (pass --checkpoint, or -n and --checkpoints_path)"
        )
    return checkpoint, load_config(args.conf if args.conf is not None else args.name)


def run_real(args) -> int:
    from inerf.cli.common import input_file, refuse_existing

    _check_args(args)
    masks = _mask_paths(args)
    for photo, mask in zip(args.input, masks, strict=True):
        input_file(photo, "--input", "a photo")
        if mask is not None:
            input_file(mask, "--mask", "a mask image")
    stems = _stems(args.input)
    checkpoint = config = None
    if not args.no_video:
        checkpoint, config = resolve_checkpoint(args)  # before any work: a wrong path fails at once
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InerfError(f"--out {out}: exists and is not a directory")
    planned = []
    for stem in stems:
        planned += [out / f"{stem}_normalize.png", out / f"{stem}_mask.png", out / f"{stem}_mask_preview.png"]
        if not args.no_video:
            planned += [out / f"{stem}_vid.{args.format}", out / f"{stem}_frames"]
    refuse_existing(planned, args.overwrite)

    # Every photo first (cheap): a bad one stops the run before anything is written or the model loaded.
    prepared = [
        prepare_photo(photo, mask, args.size, args.scale_minor, args.scale_major)
        for photo, mask in zip(args.input, masks, strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    for photo, item, stem in zip(args.input, prepared, stems, strict=True):
        paths = write_prepared(item, out, stem)
        box, e = item.normalized.box, item.normalized.ellipse
        print(
            f"{photo}: mask from {item.source}, ellipse {e.major:.0f} x {e.minor:.0f} px at "
            f"({e.cx:.0f}, {e.cy:.0f}), crop {box.side} px -> {paths[0]}"
        )
    if args.no_video:
        return 0
    _render_videos(args, prepared, stems, checkpoint, config, out)
    return 0


def _render_videos(args, prepared, stems, checkpoint, config, out: Path) -> None:
    import torch

    from inerf.cli.common import resolve_device
    from inerf.geometry.cameras import Cameras
    from inerf.geometry.conventions import PIXEL_CENTER
    from inerf.pixelnerf.model import load_pixelnerf
    from inerf.pixelnerf.pose import encode_source
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pixelnerf.video import (
        estimate_render_seconds,
        real_orbit_c2w,
        render_video_frames,
        write_video,
    )

    device = resolve_device(args.device)
    model = load_pixelnerf(checkpoint, config, device=device)
    focal = args.focal if args.focal is not None else SRN_FOCAL * args.size / SRN_SIZE
    render = render_config(
        config.renderer,
        args.z_near,
        args.z_far,
        deterministic=args.deterministic,
        ray_batch_size=args.ray_batch_size,
        field_chunk=args.ray_batch_size,
    )
    scene = pixelnerf_model(model, render)
    path = real_orbit_c2w(args.num_views, args.elevation, args.radius)
    for item, stem in zip(prepared, stems, strict=True):
        image = torch.from_numpy(item.normalized.image)
        encode_source(model, image, focal, args.radius)
        # Frames: the source camera's field of view at --out-size pixels, principal point at the image centre
        # (pixelNeRF's integer-centred W / 2 is W / 2 + 0.5 in inerf's pixels).
        size, f_out = args.out_size, focal * args.out_size / args.size
        c = size / 2 + PIXEL_CENTER
        camera = Cameras.from_intrinsics(f_out, f_out, c, c, size, size)
        if item is prepared[0]:
            per_frame = estimate_render_seconds(scene, camera)
            total = per_frame * args.num_views * len(prepared)
            print(
                f"rendering {args.num_views} frames of {camera.width}x{camera.height} per photo on {device}: "
                f"about {per_frame:.1f} s per frame, {total / 60:.1f} min in all (frames are written as they "
                "finish)"
            )
            if total > 120 and device.type == "cpu":
                print(
                    "  hint: on a CPU, --out-size 64 renders 4x fewer rays and --num-views 8 fewer frames; "
                    "a GPU (--device cuda) is ~100x faster"
                )
        frames_dir = out / f"{stem}_frames"
        if frames_dir.is_dir():  # --overwrite: frames of a longer earlier orbit must not linger
            for old in frames_dir.glob("frame_*.png"):
                old.unlink()
        generator = torch.Generator(device=device).manual_seed(args.seed)
        frames = render_video_frames(
            scene, camera.with_c2w(path), progress=not args.quiet, generator=generator, frames_dir=frames_dir
        )
        video = write_video(out / f"{stem}_vid.{args.format}", frames, args.fps)
        print(f"{item.path}: {video}")


# ----------------------------------------------------------------------------------------------------------
# inerf pixelnerf pose: raw photos
# ----------------------------------------------------------------------------------------------------------
def add_normalize_arguments(parser) -> None:
    """The photo options of ``inerf pixelnerf pose`` (an argument group on ``parser``)."""
    g = parser.add_argument_group(
        "photos",
        "photos (--input and --target not both square images of --size px, or a mask given) are normalised as "
        "by `inerf pixelnerf real` (object found, cropped, white background, --size px); images already of "
        "that size are used as they are (SRN-like dataset images) unless --normalize. --focal is the focal "
        "length of the images used (131.25 suits --size 128)",
    )
    how = g.add_mutually_exclusive_group()
    how.add_argument(
        "--no-normalize",
        action="store_true",
        help="use the images as they are, whatever their size (already SRN-like: object centred on white)",
    )
    how.add_argument(
        "--normalize",
        action="store_true",
        help="normalise even images that already have --size x --size pixels",
    )
    g.add_argument(
        "--input-mask", default=None, help="mask of --input (white = object; default: alpha, else GrabCut)"
    )
    g.add_argument("--target-mask", default=None, help="mask of --target (as --input-mask)")
    g.add_argument(
        "--size",
        type=int,
        default=None,
        help=f"side of the normalised images (default: the model's image size; {SRN_SIZE} for SRN models)",
    )


def read_pose_images(args, background):
    """The source and target images of ``inerf pixelnerf pose``: ``(source [H, W, 3], target [H, W, 3],
    target alpha [H, W] or None, prepared)`` as float tensors in [0, 1]; ``prepared`` maps ``input`` and
    ``target`` to their :class:`Prepared` photos (empty when the images are used as they are: with
    ``--no-normalize``, or when both already are ``--size`` squares and neither ``--normalize`` nor a mask is
    given)."""
    import torch

    from inerf.cli.common import input_file
    from inerf.pose.io import read_target_image

    source_path = input_file(args.input, "--input", "an image file")
    target_path = input_file(args.target, "--target", "an image file")
    if args.no_normalize:
        if args.input_mask or args.target_mask:
            raise InerfError("--input-mask and --target-mask are only used without --no-normalize")
        source, _ = read_target_image(source_path, background)
        target, alpha = read_target_image(target_path, background)
        return source, target, alpha, {}
    if not (getattr(args, "normalize", False) or args.input_mask or args.target_mask):
        source, _ = read_target_image(source_path, background)
        target, alpha = read_target_image(target_path, background)
        if source.shape[:2] == target.shape[:2] == (args.size, args.size):
            return source, target, alpha, {}  # already SRN-like: a crop would change their scale
    if args.size < 8:
        raise InerfError("--size must be at least 8")
    masks = {
        "input": input_file(args.input_mask, "--input-mask", "a mask image") if args.input_mask else None,
        "target": input_file(args.target_mask, "--target-mask", "a mask image") if args.target_mask else None,
    }
    prepared = {
        key: prepare_photo(path, masks[key], args.size, verb="pixelnerf pose")
        for key, path in (("input", source_path), ("target", target_path))
    }
    # The normalised photos are composited on white, pixelNeRF's SRN background; any other background of the
    # config is composited here the same way, from the normalised mask.
    bg = torch.tensor(background, dtype=torch.float32)
    images = {}
    for key, item in prepared.items():
        m = torch.from_numpy(item.normalized.mask)[..., None]
        rgb = torch.from_numpy(item.normalized.image)
        images[key] = (rgb - (1 - m)) + (1 - m) * bg  # undo the white, put the background colour
    return images["input"], images["target"], torch.from_numpy(prepared["target"].normalized.mask), prepared


def write_pose_photos(out: Path, prepared: dict) -> list[Path]:
    """Write the normalised photos of a pose solve into ``out`` (``input_*.png``, ``target_*.png``)."""
    paths = []
    for key, item in prepared.items():
        paths += write_prepared(item, out, key)
    return paths
