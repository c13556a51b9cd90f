"""Photos -> camera poses, offline: pycolmap's SIFT extraction, matching and incremental mapping (COLMAP
built into the wheel; no COLMAP binary, no network).

``run_sfm(IMAGES_DIR, OUT)`` writes a COLMAP scene that :func:`inerf.data.load_colmap` (and so
``inerf train --data OUT``) reads, and that COLMAP, nerfstudio and 3D Gaussian Splatting read too::

    OUT/images/        copies of the photos (names kept)
    OUT/sparse/0/      the reconstruction with the most registered images (.bin: cameras, images,
                       points3D, rigs, frames)
    OUT/database.db    COLMAP's feature and match database (to re-run or inspect with COLMAP's tools)
    OUT/colmap.json    what ran: inputs, options, registered and unregistered images, timings

Defaults follow COLMAP's: one ``SIMPLE_RADIAL`` camera shared by all photos (one phone or camera at one
zoom; ``single_camera=False`` gives each photo its own), SIFT on images up to 3200 px, exhaustive
matching (``sequential`` for video frames). One change, measured on small images: COLMAP's mapper wants
100 inlier matches to start a model and 30 to add an image, numbers made for photos with thousands of
features. With ``min_init_inliers=None`` the thresholds scale with the mean number of features per image
(``features / 20`` clamped to [30, 100] and ``features / 60`` clamped to [15, 30]): a 128 px render has
about 250 features and its best pairs about 50-120 inliers, so with COLMAP's numbers no model starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from inerf.data.colmap import import_pycolmap
from inerf.data.image_io import IMAGE_EXTENSIONS, one_line
from inerf.errors import InerfError
from inerf.io_utils import check_replaceable, staged_dir

__all__ = ["GENERATOR", "MATCHERS", "SFM_CAMERA_MODELS", "SfmConfig", "SfmResult", "list_images", "run_sfm"]

GENERATOR = "inerf colmap"
"""``colmap.json``'s ``generator.name``: marks folders that ``--overwrite`` may replace."""
MATCHERS = ("exhaustive", "sequential")
SFM_CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
"""Camera models SfM may estimate: those :func:`inerf.data.load_colmap` reads."""


@dataclass
class SfmConfig:
    """Options of ``inerf colmap`` (their docstrings are the CLI's help texts)."""

    matcher: str = "exhaustive"
    """exhaustive (every pair; photos in any order) or sequential (each image with the next 10 and
    quadratically spaced ones, in the order of the file names: video frames with zero-padded numbers)."""
    camera_model: str = "SIMPLE_RADIAL"
    """COLMAP camera model to estimate: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL (COLMAP's default), RADIAL or
    OPENCV. Distortion is removed when the dataset is loaded."""
    single_camera: bool = True
    """One camera shared by all photos (same device and zoom); False gives each photo its own."""
    max_image_size: int = 3200
    """SIFT runs on images downscaled to at most this side (pixels)."""
    max_features: int = 8192
    """Most SIFT features per image."""
    min_init_inliers: int | None = None
    """Inlier matches needed to start a model (COLMAP: 100); None scales it with the features per image."""
    seed: int = 0
    """Random seed of the mapper's RANSAC and initial-pair choices."""
    threads: int = -1
    """CPU threads (-1: all)."""

    def validate(self) -> None:
        if self.matcher not in MATCHERS:
            raise InerfError(f"--matcher must be one of {', '.join(MATCHERS)}, got {self.matcher!r}")
        if self.camera_model not in SFM_CAMERA_MODELS:
            raise InerfError(
                f"--camera-model must be one of {', '.join(SFM_CAMERA_MODELS)}, got {self.camera_model!r}"
            )
        for name in ("max_image_size", "max_features"):
            if getattr(self, name) < 16:
                raise InerfError(f"--{name.replace('_', '-')} must be at least 16, got {getattr(self, name)}")
        if self.min_init_inliers is not None and self.min_init_inliers < 5:
            raise InerfError(f"--min-init-inliers must be at least 5, got {self.min_init_inliers}")


@dataclass
class SfmResult:
    """What :func:`run_sfm` did (also written to ``colmap.json``)."""

    out: Path
    n_images: int
    n_registered: int
    n_points: int
    registered: list[str]
    unregistered: list[str]
    camera: dict
    """The (first) camera: model, width, height, params."""
    mean_reprojection_error: float
    timings: dict = field(default_factory=dict)
    """Seconds per stage: copy, features, matching, mapping, total."""
    other_models: list[int] = field(default_factory=list)
    """Registered images of the other (smaller, discarded) models, if the mapper made several."""


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_images(folder: str | Path) -> list[str]:
    """Names of the PNG/JPEG files directly in ``folder``, sorted; :class:`InerfError` if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InerfError(f"{folder}: not a folder of images")
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not names:
        raise InerfError(f"{folder}: no images found (expected .png, .jpg or .jpeg files)")
    return names


def _image_sizes(folder: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    from PIL import Image

    sizes = {}
    for n in names:
        try:
            with Image.open(folder / n) as im:  # reads the header only
                sizes[n] = im.size
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
            raise InerfError(f"{folder / n}: unreadable image ({one_line(exc)})") from None
    return sizes


def check_destination(out: Path, images_dir: Path, overwrite: bool) -> None:
    """Refuse to write over anything but an empty folder or (with ``overwrite``) an earlier result."""
    out_abs, img_abs = Path(os.path.abspath(out)), Path(os.path.abspath(images_dir))
    if out_abs == img_abs or out_abs in img_abs.parents:
        raise InerfError(f"--out {out} holds the input images {images_dir}; choose another folder")
    check_replaceable(
        out, overwrite, meta_file="colmap.json", generator=GENERATOR, what="an inerf colmap result"
    )


def _staged(out: Path, images_dir: Path, overwrite: bool):
    """A fresh folder beside ``out``, renamed to ``out`` on success (never half a dataset at ``out``)."""
    return staged_dir(out, partial(check_destination, out, images_dir, overwrite))


@contextmanager
def _quiet_colmap(pycolmap, verbose: bool):
    """COLMAP logs every step through glog on stderr; keep only fatal messages unless ``verbose``."""
    old = pycolmap.logging.minloglevel
    if not verbose:
        pycolmap.logging.minloglevel = 3
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def _mapper_thresholds(config: SfmConfig, mean_features: float) -> tuple[int, int]:
    if config.min_init_inliers is not None:
        return config.min_init_inliers, min(30, config.min_init_inliers)
    init = int(np.clip(round(mean_features / 20), 30, 100))
    return init, int(np.clip(round(mean_features / 60), 15, 30))


def run_sfm(
    images_dir: str | Path,
    out: str | Path,
    config: SfmConfig | None = None,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = print,
    progress: bool = True,
    verbose: bool = False,
    command: str | None = None,
) -> SfmResult:
    """Run structure-from-motion on the photos in ``images_dir`` and write a COLMAP scene to ``out``.

    Args:
        images_dir: folder of PNG/JPEG photos (not searched recursively).
        out: destination; absent, empty, or an earlier result with ``overwrite``.
        config: :class:`SfmConfig`.
        log: called with one line per stage (None: silent).
        progress: a progress bar of registered images while mapping.
        verbose: let COLMAP print its own log.
        command: the command line, recorded in ``colmap.json``.
    Raises:
        InerfError: no images, unreadable images, mixed sizes with one shared camera, an unusable ``out``,
            or no image registered.
    """
    from inerf import __version__

    pycolmap = import_pycolmap()
    config = config or SfmConfig()
    config.validate()
    images_dir, out = Path(images_dir), Path(out)
    say = log or (lambda _line: None)
    names = list_images(images_dir)
    sizes = _image_sizes(images_dir, names)
    if config.single_camera and len(set(sizes.values())) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(set(sizes.values()))[:4])
        raise InerfError(
            f"{images_dir}: images of different sizes ({shown}) cannot share one camera; resize them or pass "
            "--per-image-camera"
        )
    check_destination(out, images_dir, overwrite)  # fail before the long work
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    with _staged(out, images_dir, overwrite) as stage, _quiet_colmap(pycolmap, verbose):
        t = time.perf_counter()
        (stage / "images").mkdir()
        for n in names:
            shutil.copy2(images_dir / n, stage / "images" / n)
        timings["copy"] = time.perf_counter() - t
        db = stage / "database.db"

        say(f"[1/3] extracting SIFT features from {len(names)} images ...")
        t = time.perf_counter()
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = config.camera_model
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.max_image_size = config.max_image_size
        extraction.sift.max_num_features = config.max_features
        extraction.num_threads = config.threads
        mode = pycolmap.CameraMode.SINGLE if config.single_camera else pycolmap.CameraMode.PER_IMAGE
        try:
            pycolmap.extract_features(
                str(db),
                str(stage / "images"),
                image_names=names,
                camera_mode=mode,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
            )
        except Exception as exc:  # noqa: BLE001 - pycolmap raises C++ errors as several types
            raise InerfError(f"{images_dir}: feature extraction failed ({one_line(exc)})") from None
        database = pycolmap.Database.open(str(db))
        try:
            n_db = database.num_images()
            mean_features = database.num_keypoints() / max(1, n_db)
        finally:
            database.close()
        timings["features"] = time.perf_counter() - t
        say(f"      {mean_features:.0f} features per image on average ({timings['features']:.1f} s)")

        if config.matcher == "sequential" and sorted(names, key=_natural_key) != names:
            # COLMAP pairs neighbours in the order of the names: frame_10 would come before frame_2.
            say(
                "warning: the file names do not sort in frame order (frame_10 before frame_2?); sequential "
                "matching pairs neighbours by name: zero-pad the numbers"
            )
        say(f"[2/3] matching ({config.matcher}) ...")
        t = time.perf_counter()
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = config.threads
        try:
            if config.matcher == "exhaustive":
                pycolmap.match_exhaustive(str(db), matching_options=matching, device=pycolmap.Device.cpu)
            else:
                pycolmap.match_sequential(str(db), matching_options=matching, device=pycolmap.Device.cpu)
        except Exception as exc:  # noqa: BLE001
            raise InerfError(f"{images_dir}: feature matching failed ({one_line(exc)})") from None
        database = pycolmap.Database.open(str(db))
        try:
            n_pairs = database.num_verified_image_pairs()
        finally:
            database.close()
        timings["matching"] = time.perf_counter() - t
        say(f"      {n_pairs} image pairs verified ({timings['matching']:.1f} s)")

        say("[3/3] incremental mapping ...")
        t = time.perf_counter()
        opts = pycolmap.IncrementalPipelineOptions()
        init_inliers, abs_inliers = _mapper_thresholds(config, mean_features)
        opts.mapper.init_min_num_inliers = init_inliers
        opts.mapper.abs_pose_min_num_inliers = abs_inliers
        opts.min_model_size = int(min(10, max(3, len(names) // 3)))
        opts.random_seed = config.seed
        opts.mapper.random_seed = config.seed
        opts.num_threads = config.threads
        pycolmap.set_random_seed(config.seed)
        sparse = stage / "sparse_all"
        sparse.mkdir()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(names), desc="registered", unit="image", leave=False)
        registered_count = [0]

        def next_image():
            registered_count[0] += 1
            if bar is not None:
                bar.update(1)

        try:
            models = pycolmap.incremental_mapping(
                str(db), str(stage / "images"), str(sparse), opts, next_image_callback=next_image
            )
        except Exception as exc:  # noqa: BLE001
            raise InerfError(f"{images_dir}: incremental mapping failed ({one_line(exc)})") from None
        finally:
            if bar is not None:
                bar.close()
        timings["mapping"] = time.perf_counter() - t
        ranked = sorted(models.values(), key=lambda r: r.num_reg_images(), reverse=True)
        if not ranked or ranked[0].num_reg_images() == 0:
            raise InerfError(
                f"SfM registered 0 of {len(names)} images in {images_dir}: too few features match between "
                "views; photograph textured surroundings with overlapping views (an object on a plain "
                "background gives SfM nothing to match)"
            )
        best = ranked[0]
        model_dir = stage / "sparse" / "0"
        model_dir.mkdir(parents=True)
        best.write(str(model_dir))
        shutil.rmtree(sparse)
        registered = sorted(best.image(i).name for i in best.reg_image_ids())
        unregistered = sorted(set(names) - set(registered))
        cam = best.cameras[best.image(best.reg_image_ids()[0]).camera_id]
        timings["total"] = time.perf_counter() - t_start
        result = SfmResult(
            out=out,
            n_images=len(names),
            n_registered=len(registered),
            n_points=best.num_points3D(),
            registered=registered,
            unregistered=unregistered,
            camera={
                "model": cam.model.name,
                "width": int(cam.width),
                "height": int(cam.height),
                "params": [float(v) for v in cam.params],
                "params_info": cam.params_info,
                "shared_by": "all images" if config.single_camera else "one image",
            },
            mean_reprojection_error=float(best.compute_mean_reprojection_error()),
            timings={k: round(v, 3) for k, v in timings.items()},
            other_models=[r.num_reg_images() for r in ranked[1:]],
        )
        doc = {
            "generator": {"name": GENERATOR, "version": __version__, "command": command},
            "images_dir": str(images_dir.absolute()),
            "pycolmap": getattr(pycolmap, "__version__", "unknown"),
            "options": asdict(config),
            "mapper_thresholds": {
                "init_min_num_inliers": init_inliers,
                "abs_pose_min_num_inliers": abs_inliers,
            },
            "mean_features_per_image": mean_features,
            "verified_pairs": n_pairs,
            "layout": {
                "images": "copies of the input photos",
                "sparse/0": "the largest reconstruction (COLMAP binary model; world-to-camera poses, OpenCV axes)",
                "database.db": "COLMAP's feature and match database",
            },
            **{k: v for k, v in asdict(result).items() if k != "out"},
        }
        (stage / "colmap.json").write_text(json.dumps(doc, indent=2) + "\n")
    return result
