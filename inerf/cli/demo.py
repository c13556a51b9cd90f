"""``inerf demo``: recover the camera pose of a held-out image with the field bundled in the package.

Needs no GPU, no dataset and no download (the assets are package data, see :mod:`inerf.demo`)::

    inerf demo                       # target 0, outputs/demo/
    inerf demo --target all --out outputs/demo_all --overwrite
"""

from __future__ import annotations

import argparse
import time

from inerf.errors import InerfError

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    from inerf.demo import DEMO_FRAMES, DEMO_PERTURB_ROT, DEMO_PERTURB_TRANS, DEMO_POSE

    p = subparsers.add_parser(
        "demo",
        help="estimate a camera pose with the bundled demo field (CPU, no download)",
        description=f"Pick a held-out image of the bundled scene, move its ground-truth camera by a random "
        f"rotation of up to {DEMO_PERTURB_ROT:g} degrees and a translation of up to {DEMO_PERTURB_TRANS:g} per "
        "axis, and recover the pose by inverting the bundled radiance field (iNeRF). Prints the errors before "
        "and after and writes pose.json, the convergence GIF/MP4, the error plot and report.html.",
    )
    p.add_argument(
        "--target",
        default="0",
        metavar="N|all",
        help="which bundled target: an index, several (0,2), or 'all' (default: 0)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEMO_POSE.steps,
        help=f"gradient steps per target (default: {DEMO_POSE.steps})",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the start perturbation and the pixel sampling (default: 0)"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the previous demo run in --out (otherwise an existing run is an error)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=DEMO_FRAMES,
        help=f"overlay frames in the convergence GIF (0 = none; default: {DEMO_FRAMES})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from inerf.cli.estimate import resolve_device
    from inerf.demo import check_out_dir, load_demo, parse_targets, run_demo

    t0 = time.perf_counter()
    if args.frames < 0:
        raise InerfError("--frames must be >= 0")
    if args.steps < 1:
        raise InerfError(f"--steps must be >= 1, got {args.steps}")
    check_out_dir(args.out, args.overwrite)  # fail in milliseconds, before torch work
    device = resolve_device(args.device)
    assets = load_demo(device)
    picks = parse_targets(args.target, len(assets.targets))
    asset = assets.scene.get("asset", {})

    def report(o) -> None:
        t = o.target
        h, w = t.image.shape[:2]
        print(
            f"target {t.index} ({t.name}, {w}x{h}): start {o.rot_err0:.2f} deg / {o.trans_err0:.3f} off the ground "
            "truth"
        )
        print(f"  rotation error    {o.rot_err0:8.3f} deg -> {o.rot_err:.3f} deg")
        print(f"  translation error {o.trans_err0:8.4f}     -> {o.trans_err:.4f}")
        print(
            f"  {o.result.steps} steps in {o.result.seconds:.1f} s on {o.result.device}"
            + ("" if o.recovered else "  (not within 1 deg / 0.01)")
        )

    print(
        f"inerf demo: {asset.get('title', 'bundled scene')} ({asset.get('source', '?')}), {assets.run.kind} field; "
        f"targets {', '.join(map(str, picks))} of {len(assets.targets)}"
    )
    demo = run_demo(
        args.out,
        picks,
        device=device,
        steps=args.steps,
        seed=args.seed,
        overwrite=args.overwrite,
        n_frames=args.frames,
        progress=not args.quiet,
        assets=assets,
        on_target=report,
    )
    c = demo.config
    print(
        f"settings: {c.n_rays} rays/step ({c.sampling.strategy} sampling), lr {c.adam.lr:g} (x{c.adam.lr_decay:g} every "
        f"{c.adam.lr_decay_steps} steps), seed {args.seed}"
    )
    if len(demo.outcomes) > 1:
        ok = sum(o.recovered for o in demo.outcomes)
        worst_r = max(o.rot_err for o in demo.outcomes)
        worst_t = max(o.trans_err for o in demo.outcomes)
        print(
            f"recovered {ok}/{len(demo.outcomes)} targets within 1 deg / 0.01 (worst: {worst_r:.3f} deg, "
            f"{worst_t:.4f})"
        )
    print(f"wrote {demo.out}/ (report: {demo.report}) in {time.perf_counter() - t0:.1f} s total")
    if any(o.result.status[0] != "ok" for o in demo.outcomes):
        raise InerfError("the loss became NaN or infinite for a target; see demo.json")
    return 0
