"""``inerf render``: render a trained run from the cameras of a split; write PNGs, PSNR/SSIM, a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from inerf.cli.common import (
    HelpFormatter,
    add_device,
    add_quiet,
    refuse_existing,
    resolve_device,
    warn_if_undertrained,
    write_json,
)
from inerf.cli.config_args import finite_float
from inerf.errors import InerfError
from inerf.eval.renders import SUMMARY_NAME, evaluate_views
from inerf.train.checkpoint import load_run

VIDEO_FORMATS = ("gif", "mp4")

SPLITS = ("train", "val", "test", "all")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "render",
        help="render a trained run and score it (PSNR/SSIM)",
        description="Render a run written by `inerf train` from the cameras of a dataset split. Writes one "
        "PNG per view, metrics.json (PSNR and SSIM per view and their means) and a GIF/MP4 of the views.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--run", metavar="RUN_DIR", required=True, help="Run directory written by `inerf train`.")
    p.add_argument(
        "--split",
        default="test",
        choices=SPLITS,
        help="Cameras to render (Blender: train/val/test; LLFF also all).",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="Dataset folder, overriding the one recorded in the run (e.g. after moving it). "
        "The run's image scale, background and near/far are kept.",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="Output folder (default: RUN_DIR/renders/SPLIT). Files of an earlier render there (metrics.json, "
        "the view PNGs, the videos) are only replaced with --overwrite.",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Replace the files of an earlier render in --out."
    )
    p.add_argument("--max-views", type=int, default=None, help="Render only the first N views of the split.")
    p.add_argument(
        "--video",
        choices=(*VIDEO_FORMATS, "both", "none"),
        default="both",
        help="Video(s) of the rendered views to write.",
    )
    p.add_argument("--fps", type=finite_float, default=10.0, help="Frames per second of the videos.")
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="Rays per forward pass (default: the run's); lower it if memory runs out.",
    )
    add_device(p)
    add_quiet(p, no_progress_alias=True)
    p.set_defaults(func=run)
    return p


def _earlier_render(out: Path, split: str) -> list[Path]:
    """Files in ``out`` that a render of ``split`` would replace: the scores, the videos, the view PNGs."""
    if not out.is_dir():
        return []
    named = [out / SUMMARY_NAME, *(out / f"{split}.{ext}" for ext in VIDEO_FORMATS)]
    return [p for p in named if p.exists()] + sorted(out.glob("[0-9][0-9][0-9]*_*.png"))


def run(args) -> int:
    if args.max_views is not None and args.max_views < 1:
        raise InerfError(f"--max-views {args.max_views}: must be at least 1")
    if args.fps <= 0:
        raise InerfError(f"--fps {args.fps:g}: must be positive")
    if args.chunk is not None and args.chunk < 1:
        raise InerfError(f"--chunk {args.chunk}: must be at least 1")
    out = Path(args.out) if args.out else Path(args.run) / "renders" / args.split
    refuse_existing(_earlier_render(out, args.split), args.overwrite)  # before loading anything
    device = resolve_device(args.device)
    loaded = load_run(args.run, device)
    warn_if_undertrained(loaded, "render")
    if args.chunk is not None:
        loaded.model = loaded.model.with_config(chunk=args.chunk)
    views = loaded.dataset.load(args.split, run_dir=loaded.run_dir, root=args.data, max_views=args.max_views)
    summary, frames = evaluate_views(loaded, views, out, device=device, progress=not args.quiet)
    written = []
    if args.video in ("gif", "both"):
        from inerf.viz.video import write_gif

        written.append(write_gif(out / f"{args.split}.gif", frames, fps=args.fps, hold_last=0.0))
    if args.video in ("mp4", "both"):
        from inerf.viz.video import write_mp4

        written.append(write_mp4(out / f"{args.split}.mp4", frames, fps=args.fps, hold_last=0.0))
    summary["videos"] = [p.name for p in written if p is not None]  # write_mp4 gives None without ffmpeg
    write_json(out / SUMMARY_NAME, summary)
    ssim = summary["mean"]["ssim"]
    print(
        f"{summary['n_views']} {args.split} views at {summary['width']}x{summary['height']}: "
        f"PSNR {summary['mean']['psnr']:.2f} dB, SSIM {'n/a' if ssim is None else f'{ssim:.4f}'} "
        f"(step {summary['step']}); wrote {out}"
    )
    return 0
