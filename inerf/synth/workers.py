"""Rendering views in worker processes.

pybullet keeps one scene per connection and is not thread-safe, so parallelism is by process: each
worker opens its own DIRECT connection (:class:`~inerf.synth.render.TinyRenderer`) and keeps the last
loaded object, so consecutive jobs on the same parts load them once. Workers are started with ``spawn``
(no inherited pybullet or torch state) and write their images themselves, so only file names and small
statistics cross process boundaries. With one worker everything runs in the calling process.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inerf.synth.output import to_uint8, write_png
from inerf.synth.render import RenderResult, RenderSettings, TinyRenderer

__all__ = [
    "BACKGROUNDS",
    "Intrinsics",
    "RenderJob",
    "ViewTask",
    "default_workers",
    "encode_image",
    "render_job",
    "run_parallel",
]

BACKGROUNDS = ("transparent", "white")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (pixel centres at +0.5) and the clipping range (z-depth)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    near: float
    far: float


@dataclass
class ViewTask:
    """One image to render: ``c2w_gl`` ``[4, 4]`` (OpenGL camera axes) and where to write it."""

    c2w_gl: np.ndarray
    image_path: str
    depth_path: str | None = None


@dataclass
class RenderJob:
    """Views of one object, rendered by one worker.

    Attributes:
        parts_key: identifies ``parts`` (a worker that has them loaded skips reloading).
        parts: ``(obj path, rgb or None)`` from :func:`inerf.synth.assets.export_parts`.
        image_mode: ``rgba`` (straight alpha, RGB 0 where empty), ``rgba_white`` (opaque, composited over
            white) or ``rgb_white`` (3 channels, composited over white; SRN).
        views: the images to make.
        bound_points: ``[N, 3]`` world points that enclose the object (its vertices): only the pixels
            they project to are rasterised (see :meth:`~inerf.synth.render.TinyRenderer.render`).
    """

    parts_key: str
    parts: list
    intrinsics: Intrinsics
    settings: RenderSettings
    image_mode: str
    views: list[ViewTask] = field(default_factory=list)
    bound_points: np.ndarray | None = None


_RENDERER: TinyRenderer | None = None


def _renderer(settings: RenderSettings) -> TinyRenderer:
    """This process's renderer (recreated if the settings change)."""
    global _RENDERER
    if _RENDERER is None or _RENDERER.settings != settings:
        if _RENDERER is not None:
            _RENDERER.close()
        _RENDERER = TinyRenderer(settings)
    return _RENDERER


def encode_image(result: RenderResult, mode: str) -> np.ndarray:
    """uint8 ``[H, W, 4 or 3]`` image of a render in the given mode (see :class:`RenderJob`).

    Compositing over white is done on the sRGB values, ``c a + (1 - a)``, exactly as NeRF and pixelNeRF
    loaders composite RGBA images, so a ``rgba_white`` image equals what they make of the ``rgba`` one.
    """
    a = result.alpha[..., None]
    if mode == "rgba":
        return to_uint8(np.concatenate([result.rgb, a], axis=-1))
    white = result.rgb * a + (1.0 - a)
    if mode == "rgba_white":
        return to_uint8(np.concatenate([white, np.ones_like(a)], axis=-1))
    if mode == "rgb_white":
        return to_uint8(white)
    raise ValueError(f"unknown image mode {mode!r}")


def render_job(job: RenderJob) -> list[dict]:
    """Render and write every view of ``job``; return per-view statistics: ``coverage`` (mean alpha),
    ``bbox`` ([col_min, row_min, col_max, row_max] of alpha > 0.5, or None) and ``touches_border``."""
    r = _renderer(job.settings)
    r.load(job.parts, key=job.parts_key)
    k = job.intrinsics
    stats = []
    for view in job.views:
        res = r.render(
            view.c2w_gl,
            k.fx,
            k.fy,
            k.cx,
            k.cy,
            k.width,
            k.height,
            k.near,
            k.far,
            depth=view.depth_path is not None,
            bound_points=job.bound_points,
        )
        write_png(Path(view.image_path), encode_image(res, job.image_mode))
        if view.depth_path is not None:
            np.save(view.depth_path, res.depth)
        on = res.alpha > 0.5
        rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
        bbox = [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])] if len(rows) else None
        edge = np.concatenate([res.alpha[0], res.alpha[-1], res.alpha[:, 0], res.alpha[:, -1]])
        stats.append(
            {"coverage": float(res.alpha.mean()), "bbox": bbox, "touches_border": bool(edge.max() > 0)}
        )
    return stats


def default_workers() -> int:
    """Processes to use: the CPUs this process may run on, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def run_parallel(
    fn: Callable,
    jobs: list,
    workers: int,
    desc: str,
    units: Callable[[object], int] = lambda j: 1,
    progress: bool = True,
) -> Iterator[tuple[int, object]]:
    """Yield ``(job index, fn(job))`` as jobs finish, with a tqdm bar counting ``units(job)`` per job.

    ``fn`` must be a module-level function (it is pickled by name for the workers). Exceptions raised in a
    worker (e.g. :class:`~inerf.errors.InerfError`) propagate to the caller.
    """
    from tqdm import tqdm

    total = sum(units(j) for j in jobs)
    with tqdm(total=total, desc=desc, unit="view", disable=not progress, leave=False) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(job)
                bar.update(units(job))
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            pending = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        yield i, fut.result()
                        bar.update(units(jobs[i]))
            finally:
                for fut in pending:
                    fut.cancel()


def chunks(items: list, n_chunks: int) -> Iterable[list]:
    """Split ``items`` into at most ``n_chunks`` contiguous, nearly equal lists."""
    n_chunks = max(1, min(n_chunks, len(items)))
    bounds = np.linspace(0, len(items), n_chunks + 1).round().astype(int)
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]
