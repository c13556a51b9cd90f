"""PSNR / SSIM / LPIPS of rendered held-out views, aggregated as pixelNeRF's ``eval/calc_metrics.py``.

Input: the folder ``inerf pixelnerf eval`` (or the published ``eval.py``) writes, and the dataset's
ground truth::

    <output>/<object>/<view:06d>.png     renders (``<category>_<object>`` with --multicat)
    <datadir>/<object>/rgb/*.png          SRN ground truth (-F srn; datadir = the split folder, e.g. cars_test)
    <datadir>/[<category>/]<object>/image/*.png   DVR ground truth (-F dvr; list <category>/<list_name>.lst)

Two steps, as published:

1. **map** (per object, skipped when ``<output>/<object>/metrics.txt`` exists, unless ``overwrite``): every
   ground-truth view ``<n>.png`` whose render ``<n:06d>.png`` exists and is not excluded is scored; the
   object's value of each metric is the mean over its views. Writes ``metrics.txt`` (the published
   ``psnr ..`` / ``ssim ..`` / ``lpips ..`` lines) and ``metrics_views.csv`` (one row per view).
2. **reduce**: every folder of ``<output>`` not starting with ``_`` that holds a ``metrics.txt`` is an
   object; the overall value is the mean over objects (each object weighs the same, whatever its number
   of views), per category too with ``multicat``. Writes ``all_metrics.txt`` (published format) and the
   tables ``metrics_overall.csv``, ``metrics_objects.csv``, ``metrics_views.csv``, ``metrics.md``,
   ``metrics.json``. These summary files are recomputed from the per-object files on every run.

Metrics, on the saved 8-bit PNGs (quantised, as published) against the first three channels of the
ground-truth files (``nerf``: RGBA composited over white), both scaled to [0, 1]:

* PSNR over all pixels and channels (``skimage`` ``compare_psnr``, data range 1);
* SSIM with scikit-image's defaults (7x7 uniform window, sample covariance; :func:`ssim_skimage_default`),
  as ``compare_ssim(multichannel=True, data_range=1)`` in the published script;
* LPIPS v0.1 with the VGG backbone (:mod:`inerf.eval.lpips`), in batches of ``lpips_batch_size``.

Differences from the published script (all where it would crash or mis-file): a category without the
list file is skipped; ``-L`` works (the published code extends a tensor like a list and fails) and looks
objects up by category and id (not by replacing every ``_`` of the folder name); objects with no view to
score and folders without ``metrics.txt`` are reported and skipped; unreadable files raise a one-line
:class:`~inerf.errors.InerfError`; ``metadata.yaml`` is optional (category ids stand in for names).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from inerf.errors import InerfError

__all__ = [
    "DTU_BAD_VIEWS",
    "FORMATS",
    "METRICS",
    "GroupMetrics",
    "MapResult",
    "MetricsConfig",
    "MetricsSummary",
    "ObjectJob",
    "ObjectMetrics",
    "ViewMetrics",
    "compute_object_metrics",
    "find_objects",
    "read_metrics_txt",
    "reduce_metrics",
    "run_map",
    "run_metrics",
    "score_views",
]

METRICS = ("psnr", "ssim", "lpips")
"""Metric names, in the order of the published files."""

DTU_BAD_VIEWS = (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39)
"""Views the published ``--exclude_dtu_bad`` drops."""

FORMATS = {
    # -F: (ground-truth image folder inside an object, default list name or None for no list)
    "srn": ("rgb", None),
    "dvr": ("image", "softras_test"),
    "dvr_gen": ("image", "gen_test"),
    "dvr_dtu": ("image", "new_val"),
    "nerf": ("", None),
}
"""Dataset formats: the published ``srn``, ``dvr`` and ``nerf`` (images directly in the object folder),
plus ``dvr_gen`` / ``dvr_dtu``, which are ``dvr`` with the unseen-category / DTU list as default."""

_IMAGE_EXTS = (".png", ".jpg")
# Ground-truth names: the view number is the stem ("000064", NMR "0012"), or "r_<n>" (NeRF layout; other
# images there, such as "r_0_depth_0000", are not views).
_VIEW_NAME = re.compile(r"^(?:r_)?(\d+)$")


@dataclass
class MetricsConfig:
    """Settings of one ``calc_metrics`` run (the published flags)."""

    datadir: Path
    """``-D``: the folder holding the object folders (SRN: the split folder such as ``cars_test``); with
    ``multicat``, the root holding one folder per category (NMR)."""
    output: Path = Path("eval")
    """``-O``: the renders, ``<output>/<object>/<view:06d>.png``."""
    dataset_format: str = "dvr"
    """``-F``: a key of :data:`FORMATS`."""
    list_name: str | None = None
    """``--list_name``: object list ``<list_name>.lst`` per category (DVR); None = the format's default."""
    multicat: bool = False
    """``--multicat``: categories under ``datadir``; render folders named ``<category>_<object>``."""
    viewlist: Path | None = None
    """``-L``: source-view list (``category object view ...`` per line); those views are not scored."""
    eval_view_list: Path | None = None
    """``--eval_view_list``: only the views on the first line of this file are scored."""
    primary: tuple[int, ...] = ()
    """``-P``: views not scored (the source views)."""
    exclude_dtu_bad: bool = False
    """``--exclude_dtu_bad``: also drop :data:`DTU_BAD_VIEWS`."""
    lpips_batch_size: int = 32
    """Images per LPIPS network call."""
    lpips_net: str = "vgg"
    """LPIPS backbone: ``vgg`` (published) or ``alex``."""
    overwrite: bool = False
    """Recompute objects that already have a ``metrics.txt``."""
    metadata: str = "metadata.yaml"
    """With ``multicat``: JSON file under ``datadir`` mapping category id -> {"name": ...}."""
    dtu_sort: bool = False
    """Order objects by the number in their name (``scan8`` before ``scan21``) instead of by name."""
    device: str = "cpu"
    """Where LPIPS runs."""

    def __post_init__(self):
        self.datadir, self.output = Path(self.datadir), Path(self.output)
        self.viewlist = Path(self.viewlist) if self.viewlist else None
        self.eval_view_list = Path(self.eval_view_list) if self.eval_view_list else None
        self.primary = tuple(int(v) for v in self.primary)
        if self.dataset_format not in FORMATS:
            raise InerfError(f"-F {self.dataset_format!r}: expected one of {', '.join(FORMATS)}")
        if self.list_name is None:
            self.list_name = FORMATS[self.dataset_format][1]
        if self.lpips_batch_size < 1:
            raise InerfError("--lpips_batch_size must be at least 1")


@dataclass
class ObjectJob:
    """One object to score: where its ground truth and its renders are."""

    name: str
    """Render folder name (``<category>_<object>`` with multicat)."""
    object_id: str
    category: str | None
    gt_dir: Path
    render_dir: Path


@dataclass
class ViewMetrics:
    view: int
    psnr: float
    ssim: float
    lpips: float


@dataclass
class ObjectMetrics:
    name: str
    """Render folder name."""
    category: str | None
    psnr: float
    ssim: float
    lpips: float
    n_views: int | None = None
    """Scored views (None when the per-view file is absent, e.g. a metrics.txt of the published script)."""
    views: list[ViewMetrics] = field(default_factory=list)


@dataclass
class GroupMetrics:
    """Mean over the objects of a category (or of all objects: ``category`` None, ``name`` "total")."""

    category: str | None
    name: str
    n_objects: int
    psnr: float
    ssim: float
    lpips: float


@dataclass
class MapResult:
    n_objects: int
    """Objects of the dataset (after the list filter)."""
    n_available: int
    """Of those, objects with a render folder."""
    n_computed: int
    n_existing: int
    """Skipped because ``metrics.txt`` exists (no ``overwrite``)."""
    empty: list[str]
    """Render folders with no view to score (no metrics written)."""


@dataclass
class MetricsSummary:
    objects: list[ObjectMetrics]
    categories: list[GroupMetrics]
    """Per category (multicat only), sorted by category id."""
    total: GroupMetrics
    files: dict[str, Path]
    """Written files by kind (``all_metrics``, ``overall_csv``, ``objects_csv``, ``views_csv``, ``markdown``,
    ``json``)."""
    skipped: list[str] = field(default_factory=list)
    """Folders of ``output`` without ``metrics.txt``."""
    map_result: MapResult | None = None


# ----------------------------------------------------------------------------------------------------------
# map
# ----------------------------------------------------------------------------------------------------------
def find_objects(config: MetricsConfig) -> tuple[list[ObjectJob], int]:
    """Objects of the dataset that have a render folder, and the number of dataset objects.

    As published: categories (multicat) and objects in name order; with a list name, only the objects in
    ``<category>/<list_name>.lst``; non-folders are ignored.
    """
    root = config.datadir
    if not root.is_dir():
        raise InerfError(f"-D {root}: dataset folder not found")
    img_dir = FORMATS[config.dataset_format][0]
    cats = sorted(p.name for p in root.iterdir() if p.is_dir()) if config.multicat else [None]
    jobs, total, lists_seen = [], 0, 0
    for cat in cats:
        cat_root = root / cat if cat is not None else root
        names = sorted(p.name for p in cat_root.iterdir() if p.is_dir())
        if config.list_name:
            lst = cat_root / f"{config.list_name}.lst"
            if not lst.is_file():
                continue  # as the DVR loader: a category without the split list contributes nothing
            lists_seen += 1
            listed = {line.strip() for line in lst.read_text().splitlines() if line.strip()}
            names = [n for n in names if n in listed]
        total += len(names)
        for n in names:
            render_name = f"{cat}_{n}" if cat is not None else n
            job = ObjectJob(
                render_name,
                n,
                cat,
                cat_root / n / img_dir if img_dir else cat_root / n,
                config.output / render_name,
            )
            if job.render_dir.is_dir():
                jobs.append(job)
    if config.list_name and lists_seen == 0:
        where = (
            f"<category>/{config.list_name}.lst under {root}"
            if config.multicat
            else root / f"{config.list_name}.lst"
        )
        raise InerfError(f"no object list {where} (set --list_name, or -F srn for SRN folders)")
    return jobs, total


def _read_viewlist(path: Path) -> dict[tuple[str, str], set[int]]:
    if not path.is_file():
        raise InerfError(f"-L {path}: view list not found")
    lut: dict[tuple[str, str], set[int]] = {}
    for k, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            lut[(parts[0], parts[1])] = {int(v) for v in parts[2:]}
        except (IndexError, ValueError):
            raise InerfError(f"-L {path}, line {k}: expected 'category object view ...'") from None
    return lut


def _read_eval_views(path: Path) -> set[int]:
    if not path.is_file():
        raise InerfError(f"--eval_view_list {path}: file not found")
    try:
        first = path.read_text().splitlines()[0]
        return {int(v) for v in first.split()}
    except (IndexError, ValueError):
        raise InerfError(f"--eval_view_list {path}: the first line must hold view numbers") from None


def _read_image(path: Path, composite_white: bool = False) -> np.ndarray:
    """``[H, W, 3]`` float32 in [0, 1]: the first three channels (published), or with ``composite_white`` an
    RGBA image composited over white (NeRF-layout ground truth, whose background is transparent)."""
    from inerf.data.image_io import composite_straight, read_image

    img = read_image(path)  # one-line InerfError naming the file if unreadable
    if composite_white and img.shape[-1] == 4:
        return composite_straight(img, (1.0, 1.0, 1.0))[0]
    return img[..., :3]


def score_views(
    preds: np.ndarray,
    gts: np.ndarray,
    lpips_net: str = "vgg",
    lpips_batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSNR, SSIM (scikit-image defaults) and LPIPS per view of ``preds``/``gts`` ``[N, H, W, 3]`` in [0, 1]."""
    from inerf.eval.lpips import lpips
    from inerf.eval.metrics import psnr, ssim_skimage_default

    p, g = torch.from_numpy(preds).to(torch.float64), torch.from_numpy(gts).to(torch.float64)
    with torch.no_grad():
        psnrs = psnr(p, g).numpy()
        ssims = ssim_skimage_default(p, g).numpy()
        lpipss = lpips(p, g, lpips_net, device=device, batch_size=lpips_batch_size).double().cpu().numpy()
    return psnrs, ssims, lpipss


def compute_object_metrics(
    job: ObjectJob,
    exclude: set[int],
    eval_views: set[int] | None,
    config: MetricsConfig,
) -> list[ViewMetrics]:
    """Score the views of one object (published rule: GT ``<n>.png`` against render ``<n:06d>.png``)."""
    if not job.gt_dir.is_dir():
        raise InerfError(f"ground-truth folder not found: {job.gt_dir}")
    views, preds, gts = [], [], []
    for path in sorted(job.gt_dir.iterdir()):
        m = _VIEW_NAME.match(path.stem)
        if path.suffix not in _IMAGE_EXTS or m is None:
            continue
        view = int(m.group(1))
        rendered = job.render_dir / f"{view:06d}.png"
        if not rendered.is_file() or view in exclude or (eval_views is not None and view not in eval_views):
            continue
        gt, pred = _read_image(path, config.dataset_format == "nerf"), _read_image(rendered)
        if gt.shape != pred.shape:
            raise InerfError(
                f"render {rendered} is {pred.shape[1]}x{pred.shape[0]} but its ground truth {path} is "
                f"{gt.shape[1]}x{gt.shape[0]}"
            )
        views.append(view)
        preds.append(pred)
        gts.append(gt)
    if not views:
        return []
    shapes = {p.shape for p in preds}
    if len(shapes) > 1:
        raise InerfError(f"renders in {job.render_dir} have different sizes: {sorted(shapes)}")
    psnrs, ssims, lpipss = score_views(
        np.stack(preds), np.stack(gts), config.lpips_net, config.lpips_batch_size, config.device
    )
    return [ViewMetrics(v, float(a), float(b), float(c)) for v, a, b, c in zip(views, psnrs, ssims, lpipss)]


def _write_text_atomic(path: Path, text: str) -> None:
    # Write then rename: an interrupted run never leaves a half-written file (a truncated metrics.txt
    # would otherwise be taken as done by the next run).
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _views_csv(rows: list[tuple[str, str | None, ViewMetrics]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["object", "category", "view", *METRICS])
    for name, cat, v in rows:
        w.writerow([name, cat or "", v.view, repr(v.psnr), repr(v.ssim), repr(v.lpips)])
    return buf.getvalue()


def run_map(config: MetricsConfig, progress: bool = True) -> MapResult:
    """The published map step: per-object ``metrics.txt`` (+ ``metrics_views.csv``) for every object of the
    dataset that has a render folder in ``config.output``."""
    from tqdm import tqdm

    if not config.output.is_dir():
        raise InerfError(
            f"-O {config.output}: render folder not found (write it with `inerf pixelnerf eval`)"
        )
    jobs, total = find_objects(config)
    lut = _read_viewlist(config.viewlist) if config.viewlist else None
    by_object = {obj: views for (_, obj), views in lut.items()} if lut is not None else None
    eval_views = _read_eval_views(config.eval_view_list) if config.eval_view_list else None
    base_exclude = set(config.primary) | (set(DTU_BAD_VIEWS) if config.exclude_dtu_bad else set())
    computed = existing = 0
    empty = []
    for job in tqdm(jobs, desc="metrics", unit="object", disable=not progress):
        out = job.render_dir / "metrics.txt"
        if out.exists() and not config.overwrite:
            existing += 1
            continue
        exclude = set(base_exclude)
        if lut is not None:
            key = (job.category, job.object_id)
            found = lut.get(key) if job.category is not None else by_object.get(job.object_id)
            if found is None:
                raise InerfError(
                    f"-L {config.viewlist}: no line for object {job.category or '*'}/{job.object_id}"
                )
            exclude |= found
        views = compute_object_metrics(job, exclude, eval_views, config)
        if not views:
            empty.append(job.name)
            continue
        means = {m: float(np.mean([getattr(v, m) for v in views])) for m in METRICS}
        _write_text_atomic(
            job.render_dir / "metrics_views.csv", _views_csv([(job.name, job.category, v) for v in views])
        )
        _write_text_atomic(out, "\n".join(f"{m} {means[m]}" for m in METRICS))
        computed += 1
    return MapResult(total, len(jobs), computed, existing, empty)


# ----------------------------------------------------------------------------------------------------------
# reduce
# ----------------------------------------------------------------------------------------------------------
def read_metrics_txt(path: Path) -> dict[str, float]:
    """The ``name value`` lines of a per-object ``metrics.txt`` (ours or the published script's)."""
    values = {}
    try:
        for line in path.read_text().splitlines():
            if line.strip():
                name, val = line.split()
                values[name] = float(val)
    except (OSError, ValueError):
        raise InerfError(f"cannot parse {path}: expected lines 'psnr X', 'ssim X', 'lpips X'") from None
    missing = [m for m in METRICS if m not in values]
    if missing:
        raise InerfError(f"{path} has no {', '.join(missing)} line")
    return values


def _read_views_csv(path: Path) -> list[ViewMetrics]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            return [
                ViewMetrics(int(r["view"]), float(r["psnr"]), float(r["ssim"]), float(r["lpips"]))
                for r in csv.DictReader(f)
            ]
    except (KeyError, ValueError, TypeError):
        raise InerfError(
            f"cannot parse {path}: expected columns object, category, view, psnr, ssim, lpips"
        ) from None


def _trailing_number(name: str) -> int:
    m = re.search(r"(\d+)$", name)
    if m is None:
        raise InerfError(f"--dtu_sort: render folder {name!r} does not end with a scan number")
    return int(m.group(1))


def _category_names(config: MetricsConfig) -> dict[str, str]:
    path = config.datadir / config.metadata
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
        # published: the first of the comma-separated ShapeNet names ("chair,seat" -> "chair")
        return {cat: str(v["name"]).split(",")[0] for cat, v in meta.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InerfError(f'--metadata {path}: expected JSON {{category: {{"name": ...}}}}') from None


def _mean_group(objs: list[ObjectMetrics], category: str | None, name: str) -> GroupMetrics:
    return GroupMetrics(
        category, name, len(objs), *(float(np.mean([getattr(o, m) for o in objs])) for m in METRICS)
    )


def _fmt(metric: str, value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def _all_metrics_txt(categories: list[GroupMetrics], total: GroupMetrics, multicat: bool) -> str:
    """The published ``all_metrics.txt``."""
    lines = []
    for c in categories:
        lines.append(
            f"{c.name:12s}"
            + "".join(f" {m}: {getattr(c, m):.6f}" for m in METRICS)
            + f" n_inst: {c.n_objects}"
        )
    head = "---\n" + f"{'total':12s}" if multicat else ""
    lines.append(head + "".join(f" {m}: {getattr(total, m):.6f}" for m in METRICS))
    return "\n".join(lines)


def _markdown(summary: MetricsSummary, config: MetricsConfig) -> str:
    out = [
        "# pixelNeRF metrics",
        "",
        (
            f"Renders `{config.output}`, ground truth `{config.datadir}` (`-F {config.dataset_format}`). "
            f"PSNR (dB) and SSIM (scikit-image defaults: 7x7 uniform window) on the 8-bit PNGs, LPIPS "
            f"({config.lpips_net}, v0.1); per object the mean over its views, overall the mean over objects."
        ),
        "",
        "| | objects | PSNR | SSIM | LPIPS |",
        "|---|---:|---:|---:|---:|",
    ]
    for g in [*summary.categories, summary.total]:
        label = f"{g.name} ({g.category})" if g.category and g.name != g.category else g.name
        out.append(
            f"| {label} | {g.n_objects} | " + " | ".join(_fmt(m, getattr(g, m)) for m in METRICS) + " |"
        )
    out += [
        "",
        "## Per object",
        "",
        "| object | category | views | PSNR | SSIM | LPIPS |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for o in summary.objects:
        n = "" if o.n_views is None else str(o.n_views)
        out.append(
            f"| {o.name} | {o.category or ''} | {n} | "
            + " | ".join(_fmt(m, getattr(o, m)) for m in METRICS)
            + " |"
        )
    return "\n".join(out) + "\n"


def reduce_metrics(config: MetricsConfig) -> MetricsSummary:
    """The published reduce step over the per-object ``metrics.txt`` files of ``config.output``; writes the
    summary files (see the module docstring) and returns the tables."""
    root = config.output
    if not root.is_dir():
        raise InerfError(f"-O {root}: render folder not found (write it with `inerf pixelnerf eval`)")
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")]
    folders = sorted(
        folders, key=(lambda p: _trailing_number(p.name)) if config.dtu_sort else (lambda p: p.name)
    )
    skipped = [p.name for p in folders if not (p / "metrics.txt").is_file()]
    objects = []
    for p in folders:
        if p.name in skipped:
            continue
        values = read_metrics_txt(p / "metrics.txt")
        views = _read_views_csv(p / "metrics_views.csv")
        # published: the category is the render folder name up to the first "_"
        category = p.name.split("_")[0] if config.multicat else None
        objects.append(
            ObjectMetrics(
                p.name, category, *(values[m] for m in METRICS), len(views) if views else None, views
            )
        )
    if not objects:
        raise InerfError(f"-O {root}: no <object>/metrics.txt to reduce (run without -R/--reduce_only first)")

    categories = []
    if config.multicat:
        names = _category_names(config)
        for cat in sorted({o.category for o in objects}):
            categories.append(
                _mean_group([o for o in objects if o.category == cat], cat, names.get(cat, cat))
            )
    total = _mean_group(objects, None, "total")
    summary = MetricsSummary(objects, categories, total, {}, skipped)

    files = {
        "all_metrics": root / "all_metrics.txt",
        "overall_csv": root / "metrics_overall.csv",
        "objects_csv": root / "metrics_objects.csv",
        "views_csv": root / "metrics_views.csv",
        "markdown": root / "metrics.md",
        "json": root / "metrics.json",
    }
    _write_text_atomic(files["all_metrics"], _all_metrics_txt(categories, total, config.multicat))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "category", "objects", *METRICS])
    for g in [*categories, total]:
        w.writerow([g.name, g.category or "", g.n_objects, *(repr(getattr(g, m)) for m in METRICS)])
    _write_text_atomic(files["overall_csv"], buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["object", "category", "views", *METRICS])
    for o in objects:
        w.writerow(
            [
                o.name,
                o.category or "",
                "" if o.n_views is None else o.n_views,
                *(repr(getattr(o, m)) for m in METRICS),
            ]
        )
    _write_text_atomic(files["objects_csv"], buf.getvalue())
    _write_text_atomic(
        files["views_csv"], _views_csv([(o.name, o.category, v) for o in objects for v in o.views])
    )
    _write_text_atomic(files["markdown"], _markdown(summary, config))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings["primary"] = list(config.primary)
    payload = {
        "settings": settings,
        "ssim": "scikit-image defaults: 7x7 uniform window, sample covariance, K1 0.01, K2 0.03",
        "lpips": f"v0.1, {config.lpips_net}",
        "total": asdict(total),
        "categories": [asdict(c) for c in categories],
        "objects": [{k: v for k, v in asdict(o).items() if k != "views"} for o in objects],
        "views": [{"object": o.name, "category": o.category, **asdict(v)} for o in objects for v in o.views],
        "skipped_folders": skipped,
    }
    # json writes inf / nan (a perfect render has infinite PSNR) as the non-standard Infinity / NaN.
    _write_text_atomic(files["json"], json.dumps(payload, indent=1) + "\n")
    summary.files = files
    return summary


def run_metrics(config: MetricsConfig, reduce_only: bool = False, progress: bool = True) -> MetricsSummary:
    """Map (unless ``reduce_only``) then reduce, as the published ``calc_metrics.py``."""
    map_result = None if reduce_only else run_map(config, progress)
    summary = reduce_metrics(config)
    summary.map_result = map_result
    return summary
