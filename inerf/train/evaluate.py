"""Render a trained run from the cameras of a split and score it: PSNR / SSIM per view, PNGs, a video.

This is the library side of ``inerf render``; the trainer's validation uses the same rendering path
(:func:`inerf.render.render_image` with the run's evaluation :class:`RenderConfig`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from inerf.data.views import ViewSet
from inerf.errors import InerfError
from inerf.eval.metrics import psnr, ssim
from inerf.render.renderer import RenderOutput, render_image
from inerf.train.checkpoint import LoadedRun, write_json_atomic

__all__ = ["VIDEO_FORMATS", "ViewScore", "evaluate_views", "render_views", "to_uint8", "write_video"]

VIDEO_FORMATS = ("gif", "mp4")
SUMMARY_NAME = "metrics.json"


@dataclass
class ViewScore:
    """Scores of one rendered view."""

    name: str
    """Source image (relative to the dataset folder)."""
    file: str
    """Rendered PNG (relative to the output folder)."""
    psnr: float
    """dB, against the source image composited on the run's background."""
    ssim: float | None
    """Gaussian-window SSIM (see :func:`inerf.eval.metrics.ssim`); None for images under 11 px."""


def render_views(run: LoadedRun, views: ViewSet, device: torch.device | str = "cpu", progress: bool = False):
    """Yield ``(index, RenderOutput)`` for every camera of ``views`` (``rgb [H, W, 3]`` on ``device``)."""
    cams = views.cameras.to(device)
    it = range(len(views))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"render {views.split}", unit="view", dynamic_ncols=True)
    for i in it:
        yield i, render_image(run.coarse, cams.c2w[i], cams.height, cams.width, cams.fx[i], cams.fy[i], cams.cx[i],
                              cams.cy[i], run.render_config, fine=run.fine)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` float in [0, 1] -> uint8 array (rounded, clipped)."""
    return (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write ``frames`` (uint8 ``[H, W, 3]``) as a looping GIF or an H.264 MP4, chosen by the suffix."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        import imageio.v2 as iio2

        # H.264 with 4:2:0 chroma needs even sides: pad by repeating the last row/column rather than let
        # ffmpeg rescale (which would blur every frame).
        h, w = frames[0].shape[:2]
        pad = ((0, h % 2), (0, w % 2), (0, 0))
        with iio2.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                             ffmpeg_log_level="error") as writer:
            for f in frames:
                writer.append_data(np.pad(f, pad, mode="edge"))
    else:
        raise InerfError(f"{path}: unknown video format (use .gif or .mp4)")
    return path


def evaluate_views(run: LoadedRun, views: ViewSet, out_dir: str | Path, *, videos: tuple[str, ...] = VIDEO_FORMATS,
                   fps: float = 10.0, device: torch.device | str = "cpu", progress: bool = False) -> dict:
    """Render every view, write ``NNN_name.png``, ``metrics.json`` and the videos into ``out_dir``.

    Returns the summary written to ``metrics.json``: ``mean`` (PSNR, SSIM over the views), ``views``
    (one :class:`ViewScore` each) and where it came from (run, step, split, dataset root, image size).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for fmt in videos:
        if fmt not in VIDEO_FORMATS:
            raise InerfError(f"unknown video format {fmt!r}; expected one of {', '.join(VIDEO_FORMATS)}")
    import imageio.v3 as iio

    scores, frames = [], []
    t0 = time.perf_counter()
    for i, result in render_views(run, views, device, progress):
        result: RenderOutput
        pred = result.rgb.float().cpu().clamp(0, 1)
        target = views.images[i].float()
        frame = to_uint8(pred)
        stem = Path(views.names[i]).stem
        file = f"{i:03d}_{stem}.png"
        iio.imwrite(out / file, frame)
        frames.append(frame)
        scores.append(ViewScore(name=views.names[i], file=file, psnr=float(psnr(pred, target)),
                                ssim=float(ssim(pred, target)) if min(pred.shape[:2]) >= 11 else None))
    seconds = time.perf_counter() - t0
    written = [write_video(out / f"{views.split or 'views'}.{fmt}", frames, fps).name for fmt in videos]
    summary = {
        "run": str(run.run_dir), "step": run.step, "model": run.model, "split": views.split,
        "dataset": views.root, "height": views.height, "width": views.width, "n_views": len(scores),
        "mean": {"psnr": _mean([s.psnr for s in scores]), "ssim": _mean([s.ssim for s in scores])},
        "seconds_per_view": seconds / max(len(scores), 1), "videos": written,
        "views": [asdict(s) for s in scores],
    }
    write_json_atomic(out / SUMMARY_NAME, summary)
    return summary


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
