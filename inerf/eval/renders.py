"""Render a trained run from the cameras of a split and score it: PSNR / SSIM per view, one PNG each.

The library side of ``inerf render`` (which adds the videos). The trainer's validation renders the same
way: :func:`inerf.render.render_image` with the run's evaluation :class:`RenderConfig`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from inerf.data.views import ViewSet
from inerf.eval.metrics import psnr, ssim
from inerf.render.renderer import RenderOutput
from inerf.train.checkpoint import LoadedRun, write_json_atomic

__all__ = ["SUMMARY_NAME", "ViewScore", "evaluate_views", "render_views", "to_uint8"]

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
        yield i, run.model.render_image(cams[i])


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """``[H, W, 3]`` float in [0, 1] -> uint8 array (rounded, clipped)."""
    return (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def evaluate_views(
    run: LoadedRun,
    views: ViewSet,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[dict, list[np.ndarray]]:
    """Render every view, write ``NNN_name.png`` and ``metrics.json`` into ``out_dir``.

    Returns the summary written to ``metrics.json`` (``mean`` PSNR and SSIM over the views, ``views`` with
    one :class:`ViewScore` each, and where it came from: run, step, split, dataset, image size) and the
    rendered frames (uint8 ``[H, W, 3]``) for videos.
    """
    import imageio.v3 as iio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

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
        scores.append(
            ViewScore(
                name=views.names[i],
                file=file,
                psnr=float(psnr(pred, target)),
                ssim=float(ssim(pred, target)) if min(pred.shape[:2]) >= 11 else None,
            )
        )
    seconds = time.perf_counter() - t0
    summary = {
        "run": str(run.run_dir),
        "step": run.step,
        "model": run.kind,
        "split": views.split,
        "dataset": views.root,
        "height": views.height,
        "width": views.width,
        "n_views": len(scores),
        "mean": {"psnr": _mean([s.psnr for s in scores]), "ssim": _mean([s.ssim for s in scores])},
        "seconds_per_view": seconds / max(len(scores), 1),
        "views": [asdict(s) for s in scores],
    }
    write_json_atomic(out / SUMMARY_NAME, summary)
    return summary, frames


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
