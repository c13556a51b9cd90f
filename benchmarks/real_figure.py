"""Figure of the real-photo pipeline (issue 14): photo -> mask -> normalised crop -> three frames of its video.

The photo is segmented and normalised exactly as ``inerf pixelnerf real`` does (``prepare_photo``), then the
chosen frames of the published ``eval_real`` orbit (``real_orbit_c2w``) are rendered with the model that
``--checkpoint`` (and ``-c/--conf``) or ``-n``/``--checkpoints_path`` select. Without a checkpoint the frame
panels say so (the first three panels need no model).

    # the committed figure's first panels (scikit-image's coffee photograph, no model)
    python benchmarks/real_figure.py --out docs/real_pipeline.png
    # with the car model trained here (GPU: seconds; CPU: --out-size 64, minutes)
    python benchmarks/real_figure.py --photo car.jpg --checkpoint inerf/assets/pixelnerf/<...> -c <conf> \\
        --label "pixelNeRF trained here" --device cuda --out docs/real_pipeline.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inerf.cli.pixelnerf_real import SRN_FOCAL, SRN_SIZE, prepare_photo
from inerf.pixelnerf.real import mask_preview, read_photo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photo", default=None, help="object photo (default: scikit-image's coffee photograph)")
    p.add_argument("--mask", default=None, help="its mask (default: alpha channel, else GrabCut)")
    p.add_argument("--out", default="docs/real_pipeline.png", help="figure file (default: %(default)s)")
    p.add_argument("--checkpoint", default=None, help="pixelNeRF checkpoint file")
    p.add_argument("-n", "--name", default="srn_car", help="experiment name / published config")
    p.add_argument("-c", "--conf", default=None, help="pixelNeRF config name or .conf (default: of --name)")
    p.add_argument(
        "--checkpoints_path",
        default=None,
        help="folder of <name>/pixel_nerf_latest (instead of --checkpoint)",
    )
    p.add_argument("--label", default=None, help="model name printed on the figure (default: the file)")
    p.add_argument("-e", "--elevation", type=float, default=-10.0, help="orbit elevation, degrees")
    p.add_argument(
        "--num-views", type=int, default=24, help="frames of the full orbit (default: %(default)s)"
    )
    p.add_argument(
        "--frames", default="3,6,12", help="orbit frames shown, comma-separated (default: %(default)s)"
    )
    p.add_argument(
        "--out-size", type=int, default=SRN_SIZE, help="frame side in pixels (default: %(default)s)"
    )
    p.add_argument("--device", default="auto", help="torch device (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="renderer jitter seed")
    return p.parse_args(argv)


def _photo(args, tmp: Path) -> tuple[Path, str]:
    if args.photo:
        return Path(args.photo), Path(args.photo).name
    import imageio.v3 as iio
    from skimage import data

    path = tmp / "coffee.png"
    iio.imwrite(path, data.coffee())
    return path, "scikit-image coffee photograph"


def _render(args, normalized, frames: list[int]) -> tuple[list[np.ndarray], str, float]:
    """The chosen orbit frames ``[S, S, 3]`` uint8, the model's label and the seconds per frame."""
    import torch

    from inerf.cli.common import resolve_device
    from inerf.geometry.cameras import Cameras
    from inerf.geometry.conventions import PIXEL_CENTER
    from inerf.pixelnerf.config import load_config
    from inerf.pixelnerf.model import load_pixelnerf
    from inerf.pixelnerf.pose import encode_source
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pixelnerf.video import real_orbit_c2w, render_video_frames

    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else Path(args.checkpoints_path) / args.name / "pixel_nerf_latest"
    )
    config = load_config(args.conf or args.name)
    device = resolve_device(args.device)
    model = load_pixelnerf(checkpoint, config, device=device)
    encode_source(model, torch.from_numpy(normalized.image), SRN_FOCAL, 1.3)
    scene = pixelnerf_model(model, render_config(config.renderer, 0.8, 1.8, ray_batch_size=50000))
    size, f = args.out_size, SRN_FOCAL * args.out_size / SRN_SIZE
    c = size / 2 + PIXEL_CENTER
    path = real_orbit_c2w(args.num_views, args.elevation, 1.3)[frames]
    camera = Cameras.from_intrinsics(f, f, c, c, size, size).with_c2w(path)
    t0 = time.perf_counter()
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = render_video_frames(scene, camera, generator=generator)
    seconds = (time.perf_counter() - t0) / len(frames)
    return list(images), args.label or str(checkpoint), seconds


def main(argv=None) -> int:
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args = parse_args(argv)
    frames = [int(k) for k in args.frames.split(",")]
    if any(not 0 <= k < args.num_views for k in frames):
        raise SystemExit(f"--frames: each must be in 0..{args.num_views - 1}")
    with tempfile.TemporaryDirectory() as tmp:
        photo, photo_label = _photo(args, Path(tmp))
        prepare_photo(photo, args.mask, SRN_SIZE, verb="real_figure")  # warm-up: imports OpenCV
        t0 = time.perf_counter()
        item = prepare_photo(photo, args.mask, SRN_SIZE, verb="real_figure")
        seconds_prepare = time.perf_counter() - t0
        original, _ = read_photo(photo)
    # The photo-sized preview (the crop often extends far past the photo; its side is in the title).
    preview = mask_preview(original, item.mask, item.normalized.ellipse, item.normalized.box, extend=False)
    rendered = None
    if args.checkpoint or args.checkpoints_path:
        rendered = _render(args, item.normalized, frames)

    aspect = original.shape[1] / original.shape[0]
    widths = [aspect, aspect, 1, 1, 1, 1]
    fig, axes = plt.subplots(1, 6, figsize=(2.3 * sum(widths), 2.9), gridspec_kw={"width_ratios": widths})
    e, box = item.normalized.ellipse, item.normalized.box
    panels = [
        (original, f"photo ({photo_label})"),
        (preview, f"mask ({item.source}), ellipse; crop {box.side} px"),
        ((item.normalized.image * 255).round().astype(np.uint8), "normalised, 128 px"),
    ]
    step = 360.0 / args.num_views
    for i, k in enumerate(frames):
        title = f"frame {k}: {k * step:+.0f}°"
        panels.append((rendered[0][i] if rendered else None, title))
    for ax, (img, title) in zip(axes, panels, strict=True):
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
        if img is None:
            ax.add_patch(plt.Rectangle((0, 0), 1, 1, color="0.9", transform=ax.transAxes))
            ax.text(0.5, 0.5, "rerun with\n--checkpoint", ha="center", va="center", fontsize=8, color="0.3")
        else:
            ax.imshow(img)
    model_text = f"model: {rendered[1]}" if rendered else "no model given"
    fig.suptitle(
        f"Real photo -> pixelNeRF (published eval_real orbit, elevation {args.elevation:g}°). {model_text}",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(
        f"{out}: ellipse {e.major:.0f} x {e.minor:.0f} px, crop {box.side} px, mask from {item.source} "
        f"({seconds_prepare:.2f} s to segment and normalise)"
        + (f"; {rendered[2]:.1f} s per {args.out_size}-px frame" if rendered else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
