"""``inerf synth category``: many instances of a category in the SRN layout (as SRN cars/chairs).

Layout written for ``--out DIR``::

    DIR_train/ DIR_val/ DIR_test/        instances split by --split (0.8/0.1/0.1)
        <instance>/rgb/000000.png        RGB PNG, 8 bit, composited over white
        <instance>/pose/000000.txt       16 numbers: the 4x4 c2w, row-major, OpenCV camera axes (SRN's)
        <instance>/intrinsics.txt        "f cx cy 0." / "0. 0. 0." / "1." / "H W"  (SRN's format)
        meta.json                        per instance: asset, object_to_world, depth range; cameras,
                                         near/far, renderer, seed, credits
        ATTRIBUTION.txt, preview.png

Defaults follow SRN cars: 128 x 128, f = 131.25 px (scaled with --size), ``intrinsics.txt`` principal
point (64, 64), cameras 1.3 from the origin looking at it, z-near/far 0.8/1.8. Each object is normalised
as ShapeNet's are (bounding-box diagonal 1, centred), so it lies within 0.5 of the origin and the bounds
hold in every view. The world is z up. Train instances get random views on the upper hemisphere (a new
draw per instance); val and test instances share one spiral over the upper hemisphere, as SRN's test
trajectories are identical across objects.

Pixel centres: SRN files (and pixelNeRF, which reads them) put pixel centres at *integer* coordinates,
inerf at +0.5 (:mod:`inerf.geometry.conventions`; :mod:`inerf.data.srn` adds 0.5 to the file's cx, cy).
So that ``intrinsics.txt`` is exactly SRN cars' and its rays are exactly pixelNeRF's, the images are
rendered with the principal point at (W / 2 + 0.5, H / 2 + 0.5) in inerf's convention, i.e. (W / 2, H / 2)
in the file's: the optical axis passes through the centre of pixel (W / 2, H / 2), half a pixel off the
image centre, as pixelNeRF assumes for every SRN object.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from inerf.errors import InerfError
from inerf.synth.output import GENERATOR, staged, write_json, write_png
from inerf.synth.render import RenderSettings
from inerf.synth.workers import Intrinsics, RenderJob, ViewTask, default_workers, render_job, run_parallel

__all__ = [
    "SOURCES",
    "SRN_FOCAL_128",
    "CategoryConfig",
    "assign_splits",
    "category_assets",
    "generate_category",
    "parse_split",
    "split_dirs",
    "write_srn_intrinsics",
    "write_srn_pose",
]

SOURCES = ("sweethome3d", "random-urdfs")
SRN_FOCAL_128 = 131.25
"""Focal length of SRN cars at 128 x 128, in pixels."""
SPLITS = ("train", "val", "test")
TRAIN_PLACEMENT = "uniform on the upper hemisphere, drawn per instance"
EVAL_PLACEMENT = (
    "spiral over the upper hemisphere (z = 1 - (i + 0.5) / n, golden-angle azimuth), "
    "identical for every instance"
)


@dataclass
class CategoryConfig:
    """Settings of an SRN-style category (defaults: SRN cars)."""

    views: int = 50
    """Views per train instance."""
    eval_views: int | None = None
    """Views per val/test instance (None: same as ``views``)."""
    size: int = 128
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Fractions of instances in train, val, test."""
    instances: int | None = None
    """Use this many instances, drawn with the seed (None: all that match)."""
    focal: float | None = None
    """Focal length in pixels (None: 131.25 * size / 128, SRN's field of view)."""
    radius: float = 1.3
    near: float = 0.8
    far: float = 1.8
    seed: int = 0
    supersample: int = 3
    workers: int | None = None
    preview: bool = False

    def validate(self) -> None:
        if self.views < 1 or (self.eval_views is not None and self.eval_views < 1):
            raise InerfError("--views must be at least 1")
        if self.size < 8:
            raise InerfError(f"--size must be at least 8, got {self.size}")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6:
            raise InerfError(f"--split must be three non-negative fractions adding up to 1, got {self.split}")
        if self.instances is not None and self.instances < 1:
            raise InerfError(f"--instances must be at least 1, got {self.instances}")
        if not 0 < self.near < self.far:
            raise InerfError(f"need 0 < near < far, got {self.near}, {self.far}")
        if self.radius <= 0.5:
            raise InerfError(
                f"--radius must exceed 0.5 (the objects reach 0.5 from the origin), got {self.radius}"
            )
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise InerfError(f"--supersample must be an odd positive integer, got {self.supersample}")

    @property
    def focal_px(self) -> float:
        return self.focal if self.focal is not None else SRN_FOCAL_128 * self.size / 128.0


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8/0.1/0.1"`` -> (0.8, 0.1, 0.1); raises :class:`InerfError` on anything else."""
    try:
        values = tuple(float(x) for x in text.split("/"))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InerfError(f"--split must look like 0.8/0.1/0.1, got {text!r}")
    return values  # type: ignore[return-value]


def split_dirs(out: str | Path) -> dict[str, Path]:
    """``DIR`` -> ``{"train": DIR_train, "val": DIR_val, "test": DIR_test}`` (SRN's naming, which
    pixelNeRF's ``-D DIR`` expects)."""
    out = Path(out)
    return {s: out.with_name(f"{out.name}_{s}") for s in SPLITS}


def category_assets(source: str, category: str | None) -> list[str]:
    """Asset names (for :func:`~inerf.synth.assets.resolve_asset`) of a source's category, sorted."""
    if source == "sweethome3d":
        from inerf.synth import sweethome3d

        if not category:
            raise InerfError("--category is required with --source sweethome3d (e.g. chair, table, car)")
        return [f"sweethome3d:{m.key}" for m in sweethome3d.models_in_category(category)]
    if source == "random-urdfs":
        from inerf.synth.assets import random_urdf_assets

        if category not in (None, "", "blob", "random", "all"):
            raise InerfError(f"--source random-urdfs has one category (blob), not {category!r}")
        return random_urdf_assets()
    raise InerfError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")


def instance_id(asset_name: str) -> str:
    """Folder name of an instance: the asset name with anything but letters, digits, '.', '-' as '_'."""
    name = asset_name.split(":", 1)[-1]
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


def assign_splits(names: list[str], fractions, rng: np.random.Generator) -> dict[str, list[str]]:
    """Shuffle ``names`` and cut them by ``fractions``: floors, the remainder to the largest fractional
    parts, then every split with a positive fraction gets at least one instance, taken from the largest
    split, while that has more than one. Each split is returned sorted."""
    order = [names[i] for i in rng.permutation(len(names))]
    n = len(order)
    exact = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    for k in range(3):
        if fractions[k] > 0 and counts[k] == 0 and counts.max() > 1:
            counts[np.argmax(counts)] -= 1
            counts[k] += 1
    a, b = counts[0], counts[0] + counts[1]
    return {"train": sorted(order[:a]), "val": sorted(order[a:b]), "test": sorted(order[b:])}


def write_srn_intrinsics(path: Path, f: float, cx: float, cy: float, height: int, width: int) -> None:
    """SRN's ``intrinsics.txt``: ``f cx cy 0.``, the grid barycentre ``0. 0. 0.``, the scale ``1.``,
    ``H W`` (loaders read the first and the last line). ``cx, cy`` in SRN's convention: pixel centres at
    integer coordinates."""
    Path(path).write_text(f"{f:.6f} {cx:.6f} {cy:.6f} 0.\n0. 0. 0.\n1.\n{height} {width}\n")


def write_srn_pose(path: Path, c2w: np.ndarray) -> None:
    """SRN's ``pose/NNNNNN.txt``: the 4x4 c2w in OpenCV camera axes (our internal convention, so no
    conversion), 16 numbers row-major on one line."""
    Path(path).write_text(" ".join(f"{x:.10g}" for x in np.asarray(c2w, dtype=np.float64).reshape(-1)) + "\n")


@dataclass
class InstanceJob:
    """Everything a worker needs to make one instance folder."""

    asset: str
    folder: str
    c2w: np.ndarray  # [n, 4, 4] OpenCV
    c2w_gl: np.ndarray  # [n, 4, 4] OpenGL (the same cameras)
    intrinsics: Intrinsics
    settings: RenderSettings
    cache: str | None


def render_instance(job: InstanceJob) -> dict:
    """Prepare, render and write one instance (runs in a worker); return its ``meta.json`` entry."""
    from inerf.synth.assets import export_parts, prepare_asset, resolve_asset
    from inerf.synth.trajectories import depth_extents

    info = resolve_asset(job.asset)
    # ShapeNet's normalisation: unit bounding-box diagonal, so every point is within 0.5 of the origin.
    cache = Path(job.cache) if job.cache else None
    prepared = prepare_asset(info, normalise="diagonal", size=1.0, cache=cache)
    z_min, d_max = depth_extents(prepared.vertices, job.c2w)
    k = job.intrinsics
    if z_min.min() < k.near or d_max.max() > k.far:
        raise InerfError(
            f"{info.name}: the object spans depths {z_min.min():.3f}..{d_max.max():.3f}, "
            f"outside near/far {k.near}/{k.far}; change --radius, --near or --far"
        )
    folder = Path(job.folder)
    (folder / "rgb").mkdir(parents=True)
    (folder / "pose").mkdir()
    # The file holds SRN's integer-centred principal point (see the module docstring).
    write_srn_intrinsics(folder / "intrinsics.txt", k.fx, k.cx - 0.5, k.cy - 0.5, k.height, k.width)
    views = []
    for i, (c2w, c2w_gl) in enumerate(zip(job.c2w, job.c2w_gl)):
        write_srn_pose(folder / "pose" / f"{i:06d}.txt", c2w)
        views.append(ViewTask(c2w_gl, str(folder / "rgb" / f"{i:06d}.png")))
    with tempfile.TemporaryDirectory(prefix="inerf-synth-parts-") as tmp:
        parts = export_parts(prepared, Path(tmp), double_sided=job.settings.double_sided)
        stats = render_job(
            RenderJob(
                parts_key=tmp,
                parts=parts,
                intrinsics=k,
                settings=job.settings,
                image_mode="rgb_white",
                views=views,
                bound_points=prepared.vertices,
            )
        )
    return {
        "asset": prepared.meta(),
        "object_to_world": prepared.object_to_world.tolist(),
        "object_bounds": prepared.bounds.tolist(),
        "depth_range": {"z_min": float(z_min.min()), "distance_max": float(d_max.max())},
        "views": len(views),
        "views_touching_border": sum(s["touches_border"] for s in stats),
    }


def generate_category(
    source: str,
    category: str | None,
    out: str | Path,
    config: CategoryConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    cache: str | Path | None = None,
) -> dict[str, dict]:
    """Render a category of assets into the SRN layout at ``DIR_{train,val,test}``.

    Args:
        source: ``sweethome3d`` or ``random-urdfs``.
        category: e.g. ``chair``, ``table``, ``car`` (Sweet Home 3D); ignored-or-``blob`` for random-urdfs.
        out: ``DIR``; the three split folders are its siblings ``DIR_train`` etc.
        config: :class:`CategoryConfig`.
        cache: folder for extracted meshes (default :func:`inerf.synth.assets.cache_dir`).
    Returns:
        The ``meta.json`` of each split.
    """
    from inerf import __version__
    from inerf.synth.output import check_destination
    from inerf.synth.scene import attribution_text, renderer_meta
    from inerf.synth.trajectories import hemisphere_positions, look_at, spiral_positions, to_opengl

    config = config or CategoryConfig()
    config.validate()
    dirs = split_dirs(out)
    for d in dirs.values():  # fail before rendering
        check_destination(d, overwrite)
    names = category_assets(source, category)
    rng = np.random.default_rng(config.seed)
    if config.instances is not None:
        if config.instances > len(names):
            raise InerfError(f"--instances {config.instances}: only {len(names)} assets match")
        names = sorted(names[i] for i in rng.choice(len(names), config.instances, replace=False))
    splits = assign_splits(names, config.split, rng)

    S = config.size
    f = config.focal_px
    # Principal point (S/2, S/2) in SRN's integer-centred pixels = S/2 + 0.5 in ours (module docstring).
    c_file = S / 2
    intrinsics = Intrinsics(f, f, c_file + 0.5, c_file + 0.5, S, S, config.near, config.far)
    settings = RenderSettings(supersample=config.supersample)
    workers = config.workers or default_workers()
    eval_views = config.eval_views or config.views
    spiral = np.stack([look_at(p) for p in spiral_positions(eval_views, config.radius)])

    ids = [instance_id(n) for n in names]
    if len(set(ids)) != len(ids):  # cannot happen with the shipped sources; guards future ones
        raise InerfError("two assets map to the same instance folder name")
    metas: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        stages = {s: stack.enter_context(staged(dirs[s], overwrite)) for s in SPLITS}
        jobs, where = [], []
        for split in SPLITS:
            for name in splits[split]:
                if split == "train":
                    # A fresh draw per instance, reproducible from (seed, instance name).
                    inst_rng = np.random.default_rng([config.seed, *instance_id(name).encode()])
                    positions = hemisphere_positions(config.views, config.radius, inst_rng)
                    c2w = np.stack([look_at(p) for p in positions])
                else:
                    c2w = spiral
                jobs.append(
                    InstanceJob(
                        name,
                        str(stages[split] / instance_id(name)),
                        c2w,
                        to_opengl(c2w),
                        intrinsics,
                        settings,
                        None if cache is None else str(cache),
                    )
                )
                where.append(split)
        results: dict[str, dict] = {s: {} for s in SPLITS}
        desc = f"synth category {category or source}"
        for i, entry in run_parallel(
            render_instance, jobs, workers, desc=desc, units=lambda j: len(j.c2w), progress=progress
        ):
            results[where[i]][instance_id(jobs[i].asset)] = entry

        for split in SPLITS:
            instances = dict(sorted(results[split].items()))
            credits = [e["asset"]["attribution"] for e in instances.values()]
            meta = {
                "generator": {"name": f"{GENERATOR} category", "version": __version__, "command": command},
                "format": "srn",
                "split": split,
                "source": source,
                "category": category,
                "instances": instances,
                "near": config.near,
                "far": config.far,
                "world": "z up, right-handed; each object's bounding box is centred at the origin with "
                "diagonal 1 (ShapeNet's normalisation)",
                "camera": {
                    "model": "pinhole",
                    "width": S,
                    "height": S,
                    "fx": f,
                    "fy": f,
                    "cx": intrinsics.cx,
                    "cy": intrinsics.cy,
                    "pixel_centers": 0.5,
                    "intrinsics_txt": {
                        "f": f,
                        "cx": c_file,
                        "cy": c_file,
                        "pixel_centers": 0.0,
                        "note": "SRN/pixelNeRF convention: pixel centres at integers, so cx_file = cx - 0.5",
                    },
                    "radius": config.radius,
                    "look_at": [0.0, 0.0, 0.0],
                    "pose": "pose/NNNNNN.txt: camera-to-world, OpenCV camera axes (x right, y down, looks "
                    "along +z), 16 numbers row-major",
                },
                "views": {
                    "count": config.views if split == "train" else eval_views,
                    "placement": TRAIN_PLACEMENT if split == "train" else EVAL_PLACEMENT,
                },
                "images": {
                    "format": "PNG RGB 8-bit, sRGB",
                    "background": "white",
                    "compositing": "c * a + (1 - a) in sRGB values",
                },
                "renderer": renderer_meta(settings),
                "seed": config.seed,
                "config": {**asdict(config), "split": list(config.split)},
                "attribution": credits,
            }
            write_json(stages[split] / "meta.json", meta)
            (stages[split] / "ATTRIBUTION.txt").write_text(
                attribution_text(credits) if credits else "This split holds no instances.\n"
            )
            if config.preview and instances:
                write_png(
                    stages[split] / "preview.png",
                    category_preview(stages[split], list(instances), f"{category or source} {split}"),
                )
            metas[split] = meta
    return metas


def category_preview(
    folder: Path, instances: list[str], title: str, rows: int = 8, columns: int = 8
) -> np.ndarray:
    """Contact sheet: up to ``rows`` instances, ``columns`` views each (evenly spread)."""
    from inerf.synth.preview import contact_sheet

    paths, labels, per_row = [], [], 1
    for name in instances[:rows]:
        views = sorted((folder / name / "rgb").glob("*.png"))
        pick = np.unique(np.linspace(0, len(views) - 1, min(columns, len(views))).round().astype(int))
        per_row = max(per_row, len(pick))  # every instance of a split has the same number of views
        for j in pick:
            paths.append(views[j])
            # The first tile of a row names the instance (its end, which is the distinctive part).
            labels.append(name[-16:] if j == pick[0] else views[j].stem)
    return contact_sheet(paths, labels, columns=per_row, tile=96, title=title)
