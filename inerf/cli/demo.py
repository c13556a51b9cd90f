"""``inerf demo``: recover the camera pose of a held-out image with the field bundled in the package.

Needs no GPU, no dataset and no download (the assets are package data, see :mod:`inerf.demo`)::

    inerf demo                       # target 0, outputs/demo/ (replacing an earlier demo run there)
    inerf demo --target all --out outputs/demo_all --overwrite
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from inerf.cli.common import HelpFormatter, add_device, add_quiet, resolve_device
from inerf.errors import InerfError

__all__ = ["DEFAULT_OUT", "add_parser", "run"]

DEFAULT_OUT = Path("outputs/demo")
"""Where ``inerf demo`` (and ``make demo``) writes without ``--out``."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from inerf.cli.pose_options import PERTURB_FLAGS
    from inerf.demo import DEMO_FRAMES, DEMO_PERTURBATION, DEMO_POSE
    from inerf.pose.perturb import SUCCESS

    p = subparsers.add_parser(
        "demo",
        help="estimate a camera pose with the bundled demo field (CPU, no download)",
        description="Pick a held-out image of the bundled scene, start from its ground-truth camera "
        f"{DEMO_PERTURBATION.describe()} (inerf.pose.perturb, as inerf estimate --init-from-gt "
        f"--perturb-rot {DEMO_PERTURBATION.rot_deg:g} --perturb-trans {DEMO_PERTURBATION.trans:g} does), and "
        "recover the pose by inverting the bundled radiance field (iNeRF). Prints the errors before and after "
        f"(recovered: {SUCCESS.describe()}) and writes pose.json, the convergence GIF/MP4, the error plot and "
        "report.html.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--target",
        default="0",
        metavar="N|all",
        help="which bundled target: an index, several (0,2), or 'all'",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEMO_POSE.steps,
        help="gradient steps per target",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the start perturbation and the pixel sampling")
    start = p.add_argument_group(
        "start",
        "How each start is drawn from the target's ground truth (inerf.pose.perturb; defaults: the demo's).",
    )
    PERTURB_FLAGS.add_to(p, DEMO_PERTURBATION, group=start)
    add_device(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help=f"output folder (default: {DEFAULT_OUT}, where a new demo run replaces the files of the previous "
        "one; a folder given here must be absent or empty unless --overwrite)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the previous demo run in --out (only the files it lists in demo.json; others are kept)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=DEMO_FRAMES,
        help="overlay frames in the convergence GIF (0 = none)",
    )
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def _previous_demo(out: Path) -> bool:
    """Whether ``out`` holds an earlier demo run: its record ``demo.json`` lists the files it wrote (only
    those are replaced; anything else in the folder is kept)."""
    try:
        record = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("outputs"), list)


def run(args) -> int:
    from inerf.cli.pose_options import PERTURB_FLAGS
    from inerf.demo import DEMO_PERTURBATION, check_out_dir, load_demo, parse_targets, run_demo
    from inerf.pose.perturb import SUCCESS

    t0 = time.perf_counter()
    if args.frames < 0:
        raise InerfError(f"--frames {args.frames}: must be >= 0")
    if args.steps < 1:
        raise InerfError(f"--steps {args.steps}: must be >= 1")
    perturbation = PERTURB_FLAGS.build(DEMO_PERTURBATION, args)
    out, overwrite = Path(args.out) if args.out else DEFAULT_OUT, args.overwrite
    if args.out is None and not overwrite and out.is_dir() and any(out.iterdir()):
        if not _previous_demo(out):
            raise InerfError(
                f"{out}: holds files that inerf demo did not write (pass --overwrite to write into it, or "
                "choose another --out)"
            )
        overwrite = True  # the README's first command works twice: the demo replaces its own last run
        print(f"inerf demo: replacing the previous demo run in {out}/")
    check_out_dir(out, overwrite)  # fail in milliseconds, before torch work
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
            + ("" if o.recovered else f"  (not recovered: {SUCCESS.describe()})")
        )

    print(
        f"inerf demo: {asset.get('title', 'bundled scene')} ({asset.get('source', '?')}), {assets.run.kind} field; "
        f"targets {', '.join(map(str, picks))} of {len(assets.targets)}"
    )
    demo = run_demo(
        out,
        picks,
        device=device,
        steps=args.steps,
        seed=args.seed,
        overwrite=overwrite,
        n_frames=args.frames,
        progress=not args.quiet,
        assets=assets,
        on_target=report,
        perturbation=perturbation,
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
            f"recovered {ok}/{len(demo.outcomes)} targets ({SUCCESS.describe()}; worst: {worst_r:.3f} deg, "
            f"{worst_t:.4f})"
        )
    print(f"wrote {demo.out}/ (report: {demo.report}) in {time.perf_counter() - t0:.1f} s total")
    if any(o.result.status[0] != "ok" for o in demo.outcomes):
        raise InerfError("the loss became NaN or infinite for a target; see demo.json")
    return 0
