"""Render held-out views of held-out objects from a few source views: the published ``eval/eval.py`` (and,
with ``approx``, ``eval/eval_approx.py``), through inerf's one renderer.

For every object of the split: encode the source views (``-P``, the same indices for every object; ``-1`` =
one random view per object; or per object from a ``-L`` list), render every other view (``include_src``
keeps the sources; ``eval_view_list`` restricts the targets; ``exclude_dtu_bad`` skips DTU's views 3-7,
16-21, 36-39), and write::

    <output>/<object>/<view:06d>.png      the render, clamped to [0, 1], x255, truncated to 8 bits (published)
    <output>/finish.txt                   "<object> <psnr> <ssim> 1" per finished object (resume: those
                                          objects are skipped)

``<object>`` is ``<category>_<object>`` with ``multicat``; ``<view>`` is the number of the view's file (its
index for SRN, NMR and DTU files, which are numbered from 0), so ``inerf pixelnerf metrics`` pairs each
render with its ground truth. PSNR and SSIM (scikit-image's defaults) are measured on the unquantised
renders, per view, averaged per object, then over objects, as published.

Differences from the published script: each object's own cameras are used (the published script reuses the
first object's rays, identical for SRN and NMR test trajectories, unless ``-L``/``--free_pose``);
``--write_depth`` and ``--scale`` are not offered; ``--approx`` replaces ``eval_approx.py`` (one random
target view per object, seed 1234).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError
from inerf.eval.pixelnerf_metrics import DTU_BAD_VIEWS, _read_eval_views, _read_viewlist

__all__ = ["EvalConfig", "EvalSummary", "ObjectResult", "render_targets", "run_eval", "view_number"]

FINISH_NAME = "finish.txt"


@dataclass
class EvalConfig:
    """Settings of ``inerf pixelnerf eval`` (the published flags)."""

    source: str = "64"
    """``-P``: source-view indices (sorted), the same for every object; ``-1`` = one random view per object."""
    viewlist: Path | None = None
    """``-L``: per-object source views (``category object view ...`` per line; overrides ``-P``)."""
    eval_view_list: Path | None = None
    """Render only the target views on the first line of this file."""
    include_src: bool = False
    """Also render (and score) the source views."""
    exclude_dtu_bad: bool = False
    """Skip DTU's bad views (3-7, 16-21, 36-39) as targets."""
    multicat: bool = False
    """Name render folders ``<category>_<object>``."""
    output: Path = Path("eval")
    """``-O``."""
    coarse: bool = False
    """Render with the coarse network for both passes (64 coarse + 128 fine samples), as published."""
    no_compare_gt: bool = False
    """Do not score against the ground truth (render only)."""
    write_compare: bool = False
    """Also write ``<view:06d>_compare.png`` (ground truth | render)."""
    approx: bool = False
    """eval_approx: one random target view per object."""
    seed: int = 1234
    """Seeds ``-P -1``, ``approx`` and the renderer's random samples."""
    ray_batch_size: int = 50000
    """``-R``: rays per rendering call (and points per network call, as published, unless ``field_chunk``)."""
    field_chunk: int | None = None
    """Points per network call (None: ``ray_batch_size``, published; 0: a whole ray chunk at once)."""
    deterministic: bool = False
    """Fixed sample positions instead of the published random ones."""
    max_objects: int | None = None
    """Evaluate only the first this many objects of the split."""
    overwrite: bool = False
    """Render objects again although ``finish.txt`` lists them."""


@dataclass
class ObjectResult:
    name: str
    """Render folder name."""
    psnr: float
    ssim: float
    views: int
    sources: list[int]


@dataclass
class EvalSummary:
    output: Path
    objects: list[ObjectResult] = field(default_factory=list)
    """Objects rendered by this run."""
    skipped: list[str] = field(default_factory=list)
    """Objects already in ``finish.txt``."""
    psnr: float = float("nan")
    """Mean over every object of ``finish.txt`` (this run's and earlier ones)."""
    ssim: float = float("nan")
    n_finished: int = 0


def view_number(name: str, index: int) -> int:
    """The number a view's render file carries: its file stem when numeric (``000064``, ``r_3``), else its
    index in the object's sorted file list."""
    stem = name.removeprefix("r_")
    return int(stem) if stem.isdigit() else index


def render_targets(scene, cameras, chunk: int, generator=None, progress: bool = False) -> torch.Tensor:
    """Render every camera of ``cameras`` (one size): ``[N, H, W, 3]``. All rays are rendered ``chunk`` at a
    time across the views (the published script's batching), which keeps a GPU busy on small images."""
    from inerf.rays.rays import rays_for_image

    H, W = cameras.height, cameras.width
    origins, dirs, viewdirs = [], [], []
    for i in range(len(cameras)):
        r = rays_for_image(cameras, i)
        origins.append(r.origins)
        dirs.append(r.directions)
        viewdirs.append(r.viewdirs)
    from inerf.rays.rays import Rays

    rays = Rays(torch.cat(origins), torch.cat(dirs), torch.cat(viewdirs))
    starts = range(0, len(rays), chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="render", unit="chunk", leave=False)
    with torch.no_grad():
        rgb = torch.cat([scene.render_rays(rays[s : s + chunk], generator=generator).rgb for s in starts])
    return rgb.reshape(len(cameras), H, W, 3)


def _read_finished(path: Path) -> dict[str, tuple[float, float]]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                try:
                    done[parts[0]] = (float(parts[1]), float(parts[2]))
                except ValueError:
                    continue
    return done


def _u8(x: torch.Tensor) -> np.ndarray:
    # Published: clamp, x255, truncate (not round).
    return (x.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def run_eval(net, dataset, config: EvalConfig, progress: bool = True) -> EvalSummary:
    """Evaluate ``net`` (a loaded :class:`~inerf.pixelnerf.model.PixelNeRF`, eval mode) on every object of
    ``dataset`` (an SRN or DVR split); see the module docstring."""
    import imageio.v3 as iio
    from tqdm import tqdm

    from inerf.eval.metrics import psnr as psnr_fn
    from inerf.eval.metrics import ssim_skimage_default
    from inerf.pixelnerf.rendering import pixelnerf_model, render_config

    out = Path(config.output)
    if out.exists() and not out.is_dir():
        raise InerfError(f"-O {out}: exists and is not a folder")
    fixed = [int(v) for v in str(config.source).replace(",", " ").split()] if config.viewlist is None else []
    if config.viewlist is None and not fixed:
        raise InerfError("-P/--source: give at least one view index")
    lut = _read_viewlist(Path(config.viewlist)) if config.viewlist is not None else None
    allowed = _read_eval_views(Path(config.eval_view_list)) if config.eval_view_list is not None else None
    if config.ray_batch_size < 1:
        raise InerfError("-R/--ray_batch_size must be positive")
    out.mkdir(parents=True, exist_ok=True)
    finish = out / FINISH_NAME
    done = {} if config.overwrite else _read_finished(finish)
    if config.overwrite:
        finish.unlink(missing_ok=True)
    rng = random.Random(config.seed)
    device = next(net.parameters()).device
    renderer = net.full_config.renderer if net.full_config is not None else None
    summary = EvalSummary(out)
    n = len(dataset) if config.max_objects is None else min(config.max_objects, len(dataset))
    bar = tqdm(range(n), desc="eval", unit="object", disable=not progress)
    for i in bar:
        views = dataset[i]
        name = f"{views.category}_{views.name}" if config.multicat and views.category else views.name
        if name in done:
            summary.skipped.append(name)
            continue
        nv = len(views)
        if lut is not None:
            key = (views.category, views.name)
            found = lut.get(key) or next((v for (c, o), v in lut.items() if o == views.name), None)
            if found is None:
                raise InerfError(
                    f"-L {config.viewlist}: no line for object {views.category or '*'}/{views.name}"
                )
            src = sorted(found)
        elif fixed[0] == -1:
            src = [rng.randrange(nv)]
        else:
            src = sorted(fixed)
        bad = [s for s in src if not 0 <= s < nv]
        if bad:
            raise InerfError(
                f"-P: view(s) {bad} out of range: object {views.name} has {nv} views (0..{nv - 1})"
            )
        numbers = [
            view_number(views.view_names[k] if k < len(views.view_names) else str(k), k) for k in range(nv)
        ]
        targets = [
            k
            for k in range(nv)
            if (config.include_src or k not in src)
            and (allowed is None or numbers[k] in allowed)
            and not (config.exclude_dtu_bad and numbers[k] in DTU_BAD_VIEWS)
        ]
        if config.approx and targets:
            targets = [targets[rng.randrange(len(targets))]]
        if not targets:
            continue
        bar.set_postfix(object=name, sources=" ".join(map(str, src)))
        with torch.no_grad():
            net.encode_views(views.images[src].to(device), views.cameras[src].to(device))
        rc = render_config(
            renderer,
            views.z_near,
            views.z_far,
            deterministic=config.deterministic,
            ray_batch_size=config.ray_batch_size,
            field_chunk=config.ray_batch_size if config.field_chunk is None else config.field_chunk,
        )
        scene = pixelnerf_model(net, rc)
        if config.coarse:  # published --coarse: the coarse network for both passes, 64 + 128 samples
            scene.fine = scene.coarse
            scene = scene.with_config(n_coarse=64, n_fine=128)
        gen = torch.Generator(device=device).manual_seed(config.seed + i)
        rgb = render_targets(
            scene, views.cameras[targets].to(device), config.ray_batch_size, gen, progress=progress
        ).float()
        obj_dir = out / name
        obj_dir.mkdir(parents=True, exist_ok=True)
        gt = views.images[targets].to(device)
        for j, k in enumerate(targets):
            iio.imwrite(obj_dir / f"{numbers[k]:06d}.png", _u8(rgb[j]))
            if config.write_compare:
                iio.imwrite(
                    obj_dir / f"{numbers[k]:06d}_compare.png",
                    np.concatenate([_u8(gt[j]), _u8(rgb[j])], axis=1),
                )
        if config.no_compare_gt:
            p = s = float("nan")
        else:
            pred = rgb.clamp(0, 1).double()
            p = float(psnr_fn(pred, gt.double()).mean())
            s = float(ssim_skimage_default(pred, gt.double()).mean())
        with open(finish, "a", encoding="utf-8") as f:
            f.write(f"{name} {p} {s} 1\n")
        summary.objects.append(ObjectResult(name, p, s, len(targets), src))
    finished = _read_finished(finish)
    summary.n_finished = len(finished)
    if finished:
        summary.psnr = float(np.mean([v[0] for v in finished.values()]))
        summary.ssim = float(np.mean([v[1] for v in finished.values()]))
    return summary
