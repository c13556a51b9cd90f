"""``inerf colmap``: photos -> a posed dataset, offline (pycolmap: SIFT, matching, incremental mapping).

    inerf colmap IMAGES_DIR --out DATA [--matcher exhaustive|sequential] [--camera-model SIMPLE_RADIAL]
                 [--per-image-camera] [--overwrite]

Writes ``DATA/images``, ``DATA/sparse/0`` and ``DATA/colmap.json`` (see :mod:`inerf.data.sfm`); then
``inerf train --data DATA`` trains on it. The work is done by :func:`inerf.data.sfm.run_sfm`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    from inerf.cli.train import attribute_docs
    from inerf.data.sfm import MATCHERS, SFM_CAMERA_MODELS, SfmConfig

    d = SfmConfig()
    doc = attribute_docs(SfmConfig)
    p = subparsers.add_parser(
        "colmap",
        help="recover camera poses from photos with COLMAP (pycolmap, offline) and write a dataset",
        description="Run structure-from-motion (pycolmap: SIFT features, matching, incremental mapping; no "
        "COLMAP binary needed) on a folder of photos and write a dataset that `inerf train --data OUT` reads: "
        "OUT/images (copies), OUT/sparse/0 (the COLMAP model), OUT/colmap.json (what ran). SfM needs texture "
        "that stays put and overlapping views: an object on a plain background does not register.",
    )
    p.add_argument(
        "images", type=Path, metavar="IMAGES_DIR", help="folder of PNG/JPEG photos (not recursive)"
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="DATA", help="dataset folder to write (absent or empty)"
    )
    p.add_argument(
        "--matcher", choices=MATCHERS, default=d.matcher, help=doc["matcher"] + f" Default {d.matcher}."
    )
    p.add_argument(
        "--camera-model", choices=SFM_CAMERA_MODELS, default=d.camera_model, help=doc["camera_model"]
    )
    p.add_argument(
        "--per-image-camera",
        action="store_true",
        help="give every photo its own camera (default: one shared camera)",
    )
    p.add_argument("--max-image-size", type=int, default=d.max_image_size, help=doc["max_image_size"])
    p.add_argument("--max-features", type=int, default=d.max_features, help=doc["max_features"])
    p.add_argument("--min-init-inliers", type=int, default=None, help=doc["min_init_inliers"])
    p.add_argument("--seed", type=int, default=d.seed, help=doc["seed"])
    p.add_argument("--threads", type=int, default=d.threads, help=doc["threads"])
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier inerf colmap result at --out (nothing else)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true", help="also show COLMAP's own log")
    p.set_defaults(func=run)
    return p


def _command(args) -> str:
    """The command line that reproduces this run (recorded in colmap.json)."""
    parts = ["inerf", "colmap", str(args.images), "--out", str(args.out)]
    for key in (
        "matcher",
        "camera_model",
        "max_image_size",
        "max_features",
        "min_init_inliers",
        "seed",
        "threads",
    ):
        value = getattr(args, key)
        if value is not None:
            parts += ["--" + key.replace("_", "-"), str(value)]
    if args.per_image_camera:
        parts.append("--per-image-camera")
    return shlex.join(parts)


def run(args) -> int:
    from inerf.data.sfm import SfmConfig, run_sfm

    config = SfmConfig(
        matcher=args.matcher,
        camera_model=args.camera_model,
        single_camera=not args.per_image_camera,
        max_image_size=args.max_image_size,
        max_features=args.max_features,
        min_init_inliers=args.min_init_inliers,
        seed=args.seed,
        threads=args.threads,
    )
    log = None if args.quiet else (lambda line: print(line, flush=True))
    result = run_sfm(
        args.images,
        args.out,
        config,
        overwrite=args.overwrite,
        log=log,
        progress=not args.quiet,
        verbose=args.verbose,
        command=_command(args),
    )
    cam = result.camera
    params = ", ".join(
        f"{k.strip()}={v:.4g}" for k, v in zip(cam["params_info"].split(","), cam["params"], strict=False)
    )
    print(
        f"registered {result.n_registered} of {result.n_images} images, {result.n_points} points, reprojection "
        f"error {result.mean_reprojection_error:.2f} px, in {result.timings['total']:.1f} s; camera "
        f"{cam['model']} {cam['width']}x{cam['height']} ({params}); wrote {args.out}"
    )
    if result.unregistered:
        shown = ", ".join(result.unregistered[:5]) + (" ..." if len(result.unregistered) > 5 else "")
        print(f"note: {len(result.unregistered)} images not registered (left out of the dataset): {shown}")
    print(f"next: inerf train --data {args.out}")
    return 0
