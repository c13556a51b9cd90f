"""``inerf synth``: generate datasets by rendering real 3D assets, with poses exact to the pixel.

    inerf synth scene --asset duck --out data/duck [--size 400] [--train 100 --val 20 --test 40] [--depth]
                      [--environment room]
    inerf synth category --source sweethome3d --category chair --out data/chairs [--views 50] [--size 128]
    inerf synth assets [--source sweethome3d --category chair]

The work is done by :mod:`inerf.synth`; this module only parses options and reports.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

__all__ = ["add_parser", "run"]


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    """The flags of both ``scene`` and ``category``; :func:`_common_config` and :func:`_output_options`
    read them."""
    p.add_argument("--seed", type=int, default=0, help="random seed of the camera positions (default 0)")
    p.add_argument(
        "--supersample",
        type=int,
        default=3,
        metavar="K",
        help="antialiasing: render at K x the size and average K x K blocks; odd (default 3)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="render processes (default: one per CPU, at most 8)",
    )
    p.add_argument(
        "--preview", action="store_true", help="also write preview.png, a contact sheet of the views"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing dataset made by inerf synth at --out (other folders are never touched)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="generate datasets (NeRF-synthetic, SRN) from real 3D assets",
        description="Render real 3D assets (pybullet_data, Sweet Home 3D, your own OBJ/PLY/OFF) into "
        "the published dataset layouts, with camera poses exact to the pixel. Every dataset "
        "carries a meta.json (asset, credits, object-to-world transform, near/far, renderer "
        "settings).",
    )
    sub = parser.add_subparsers(dest="synth_command", metavar="KIND")

    s = sub.add_parser(
        "scene",
        help="one asset in the NeRF-synthetic layout (transforms_*.json + RGBA PNG)",
        description="Render one asset into the NeRF-synthetic ('Blender') layout: "
        "transforms_{train,val,test}.json (camera_angle_x, c2w in OpenGL axes) and RGBA PNGs. "
        "Train/val cameras are uniform on the upper hemisphere, test cameras on a 30 degree "
        "circle; the object is scaled to a cube of side 2 at the origin, z up, resting on its "
        "base.",
    )
    s.add_argument(
        "--asset",
        required=True,
        metavar="NAME_OR_PATH",
        help="pybullet_data name (duck, soccerball, jenga, torus, textured_sphere, table, ...; "
        "random_urdfs/NNN), a Sweet Home 3D model (e.g. oakChair, 'Oak chair', "
        "blendswap-cc-0/oakChair; see `inerf synth assets`), or an OBJ/PLY/OFF/STL file",
    )
    s.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (absent or empty)")
    s.add_argument("--size", type=int, default=400, help="image width and height in pixels (default 400)")
    s.add_argument("--train", type=_non_negative_int, default=100, help="train views (default 100)")
    s.add_argument("--val", type=_non_negative_int, default=20, help="val views (default 20)")
    s.add_argument("--test", type=_non_negative_int, default=40, help="test views on the circle (default 40)")
    s.add_argument(
        "--depth",
        action="store_true",
        help="also write r_<i>_depth.npy: float32 z-depth at pixel centres (0 = background)",
    )
    s.add_argument(
        "--background",
        choices=["transparent", "white"],
        default="transparent",
        help="transparent: RGBA with straight alpha (as published); white: opaque, composited "
        "over white (default transparent)",
    )
    s.add_argument(
        "--radius",
        type=float,
        default=None,
        help="camera distance from the origin (default 4.0, 6.0 with --environment room, more if the object "
        "would not fit)",
    )
    s.add_argument(
        "--environment",
        choices=["none", "room"],
        default="none",
        help="surroundings: none (the object alone, default) or room (a textured floor and walls around it, "
        "opaque images in which structure-from-motion, e.g. `inerf colmap`, finds features)",
    )
    s.add_argument(
        "--path",
        choices=["none", "orbit", "handheld"],
        default="none",
        help="also render a camera path as the split 'path' (path/r_i.png, transforms_path.json, ground truth "
        "in path.tum): orbit (a circle, elevation swinging) or handheld (varying pace, height, distance, aim "
        "and roll), both with per-frame shake; an image sequence for `inerf track` (default none)",
    )
    s.add_argument("--frames", type=int, default=60, help="frames of --path (default 60)")
    s.add_argument(
        "--path-step", type=float, default=1.5, help="degrees of azimuth per frame of --path (default 1.5)"
    )
    s.add_argument(
        "--path-noise",
        type=float,
        default=0.2,
        help="per-frame camera shake of --path, degrees per axis (default 0.2)",
    )
    s.add_argument("--fps", type=float, default=30.0, help="frame rate of --path's timestamps (default 30)")
    s.add_argument(
        "--up",
        choices=["auto", "y", "z"],
        default="auto",
        help="axis of the mesh file that points up (auto: z for pybullet_data, y for Sweet "
        "Home 3D and for mesh files)",
    )
    _common(s)

    c = sub.add_parser(
        "category",
        help="many instances of a category in the SRN layout (rgb/, pose/, intrinsics.txt)",
        description="Render every asset of a category into SRN's layout at DIR_train, DIR_val, DIR_test "
        "(instances split by --split): <instance>/rgb/NNNNNN.png on white, pose/NNNNNN.txt "
        "(OpenCV c2w), intrinsics.txt. Defaults follow SRN cars: f = 131.25 at 128 x 128, radius "
        "1.3, near/far 0.8/1.8; objects are normalised to a unit bounding-box diagonal.",
    )
    c.add_argument(
        "--source",
        required=True,
        choices=["sweethome3d", "random-urdfs"],
        help="sweethome3d: the Sweet Home 3D furniture library (apt-get install "
        "sweethome3d-furniture); random-urdfs: pybullet_data's 1000 single-colour blobs",
    )
    c.add_argument(
        "--category",
        default=None,
        help="e.g. chair, table, car, sofa, bed, lamp, or a catalog room such as Vehicles "
        "(sweethome3d); blob (random-urdfs)",
    )
    c.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="output prefix: writes DIR_train, DIR_val, DIR_test",
    )
    c.add_argument("--views", type=int, default=50, help="views per train instance (default 50)")
    c.add_argument(
        "--eval-views",
        type=int,
        default=None,
        help="views per val/test instance, on a spiral shared by all (default: --views)",
    )
    c.add_argument("--size", type=int, default=128, help="image width and height (default 128)")
    c.add_argument(
        "--split",
        default="0.8/0.1/0.1",
        help="fractions of instances in train/val/test (default 0.8/0.1/0.1)",
    )
    c.add_argument(
        "--instances",
        type=int,
        default=None,
        help="use this many instances, drawn with --seed (default: all that match)",
    )
    c.add_argument(
        "--focal", type=float, default=None, help="focal length in pixels (default 131.25 * size / 128)"
    )
    c.add_argument("--radius", type=float, default=1.3, help="camera distance from the origin (default 1.3)")
    c.add_argument("--near", type=float, default=0.8, help="z-near recorded and used (default 0.8)")
    c.add_argument("--far", type=float, default=1.8, help="z-far recorded and used (default 1.8)")
    _common(c)

    a = sub.add_parser(
        "assets",
        help="list the assets that --asset / --category can name",
        description="List named pybullet_data assets, or the Sweet Home 3D models of a category.",
    )
    a.add_argument("--source", choices=["pybullet", "sweethome3d", "random-urdfs"], default="pybullet")
    a.add_argument("--category", default=None, help="Sweet Home 3D category to list (default: all models)")

    parser.set_defaults(func=run, _synth_parser=parser)
    return parser


def _common_config(args) -> dict:
    """The config fields set by :func:`_common`'s flags (both configs have them)."""
    return {
        "seed": args.seed,
        "supersample": args.supersample,
        "workers": args.workers,
        "preview": args.preview,
    }


def _output_options(args) -> dict:
    """The keyword arguments of ``generate_scene`` / ``generate_category`` set by :func:`_common`'s flags."""
    return {"overwrite": args.overwrite, "progress": not args.quiet, "command": _command(args)}


def _command(args) -> str:
    """The command line that reproduces this run (recorded in meta.json)."""
    skip = {"func", "verb", "synth_command", "_synth_parser", "quiet", "overwrite", "workers"}
    parts = ["inerf", "synth", args.synth_command]
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def run(args) -> int:
    kind = getattr(args, "synth_command", None)
    if kind is None:
        args._synth_parser.print_help()
        return 1
    if kind == "assets":
        return _run_assets(args)
    start = time.perf_counter()
    if kind == "scene":
        from inerf.synth.scene import SceneConfig, generate_scene

        config = SceneConfig(
            size=args.size,
            n_train=args.train,
            n_val=args.val,
            n_test=args.test,
            depth=args.depth,
            background=args.background,
            radius=args.radius,
            up=args.up,
            environment=args.environment,
            **_common_config(args),
            path=args.path,
            path_frames=args.frames,
            path_step=args.path_step,
            path_noise=args.path_noise,
            fps=args.fps,
        )
        meta = generate_scene(args.asset, args.out, config, **_output_options(args))
        n = args.train + args.val + args.test + (args.frames if args.path != "none" else 0)
        print(
            f'wrote {n} views of "{meta["asset"]["title"]}" ({meta["asset"]["source"]}) to {args.out} in '
            f"{time.perf_counter() - start:.1f} s; near {meta['near']}, far {meta['far']}"
            + (f"; preview: {args.out / 'preview.png'}" if args.preview else "")
        )
        if meta["views_touching_border"]:
            print(
                f"note: the object touches the image border in {meta['views_touching_border']} views "
                "(use a larger --radius)"
            )
        return 0
    from inerf.synth.category import CategoryConfig, generate_category, parse_split, split_dirs

    config = CategoryConfig(
        views=args.views,
        eval_views=args.eval_views,
        size=args.size,
        split=parse_split(args.split),
        instances=args.instances,
        focal=args.focal,
        radius=args.radius,
        near=args.near,
        far=args.far,
        **_common_config(args),
    )
    metas = generate_category(args.source, args.category, args.out, config, **_output_options(args))
    dirs = split_dirs(args.out)
    counts = ", ".join(f"{len(metas[s]['instances'])} in {dirs[s]}" for s in ("train", "val", "test"))
    print(
        f"wrote {sum(len(m['instances']) for m in metas.values())} instances ({counts}) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


def _run_assets(args) -> int:
    if args.source == "pybullet":
        from inerf.synth.assets import PYBULLET_ASSETS

        for name, entry in PYBULLET_ASSETS.items():
            print(f"{name:16s} {entry.title}  [pybullet_data/{entry.path}]")
        print("random_urdfs/NNN  one of 1000 single-colour blobs (NNN = 000..999)")
        return 0
    if args.source == "random-urdfs":
        from inerf.synth.assets import random_urdf_assets

        print("\n".join(random_urdf_assets()))
        return 0
    from inerf.synth import sweethome3d

    models = sweethome3d.models_in_category(args.category) if args.category else sweethome3d.load_catalogs()
    for m in models:
        print(f"{m.key:48s} {m.name}  [{m.category}; by {m.creator}; {m.licence[0]}]")
    return 0
