"""``inerf calibrate``: measure a run's model-error term for the pose covariance (``RUN/calibration.json``).

The covariance of a pose estimate comes from the residuals of the one target image; a trained field's own
error (coherent over the whole image) is invisible there, so the ellipsoid is too small on real runs. This
verb solves the poses of a few views with known poses (the run's training views by default: never the
views a benchmark then checks), compares each solution with its known pose against its predicted covariance
and fits an additive camera-frame covariance (:mod:`inerf.pose.calibration`). ``inerf estimate`` and
``inerf benchmark pose`` add it to every covariance of the run (``pose.json`` says whether it was applied;
``--no-model-error`` leaves it out)::

    inerf calibrate --run RUN --preset robust --steps 100
"""

from __future__ import annotations

import json
from pathlib import Path

from inerf.cli.common import HelpFormatter, add_run
from inerf.errors import InerfError


def add_parser(subparsers) -> None:
    from inerf.cli.estimate import add_solver_arguments
    from inerf.cli.pose_options import UNCERTAINTY_FLAGS
    from inerf.pose.calibration import CALIBRATION_FILE, CalibrationConfig
    from inerf.pose.uncertainty import UncertaintyConfig

    p = subparsers.add_parser(
        "calibrate",
        help="measure a run's model-error term for the pose covariance (RUN/calibration.json)",
        description=__doc__.split("\n\n")[1].replace("``", "")
        + " Use the solver settings (--preset, --steps, "
        "--rays, --samples) of the estimates it is for: the solver's scatter is part of the covariance.",
        formatter_class=HelpFormatter,
    )
    defaults = CalibrationConfig()
    g = p.add_argument_group("data")
    add_run(g)
    g.add_argument(
        "--data", metavar="DIR", default=None, help="dataset folder (default: the run's training data)"
    )
    g.add_argument(
        "--split",
        default=None,
        help="split with known poses to calibrate on, never the one you benchmark (default: val when the "
        "dataset has val views, else train: the field fits its training views better than new ones, so a "
        "term from them is smaller)",
    )
    g.add_argument("--views", type=int, default=defaults.views, help="views solved (evenly spaced)")
    g.add_argument("--trials", type=int, default=defaults.trials, help="perturbed starts per view")
    g.add_argument(
        "--rot", type=float, default=defaults.rot_deg, help="starts: rotation uniform in [-rot, rot] degrees"
    )
    g.add_argument(
        "--trans",
        type=float,
        default=defaults.trans,
        help="starts: offset uniform in [-trans, trans] per axis",
    )
    g.add_argument(
        "--form",
        choices=("auto", "diagonal", "full"),
        default=defaults.form,
        help="the term: six variances of the camera axes, a full 6x6 covariance, or auto: the one whose "
        "leave-one-view-out likelihood is higher",
    )
    add_solver_arguments(p)
    u = p.add_argument_group("uncertainty")
    UNCERTAINTY_FLAGS.add_to(p, UncertaintyConfig(), group=u)
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help=f"where the calibration goes (default: RUN/{CALIBRATION_FILE}, where the pose verbs read it)",
    )
    o.add_argument("--overwrite", action="store_true", help="replace an existing calibration file")
    p.set_defaults(func=run)


def run(args) -> int:
    from inerf.cli.common import resolve_device
    from inerf.cli.estimate import check_background, load_run_checked, pose_config_from_args
    from inerf.cli.pose_options import UNCERTAINTY_FLAGS
    from inerf.pose.calibration import CALIBRATION_FILE, CalibrationConfig, calibrate
    from inerf.pose.uncertainty import UncertaintyConfig

    try:
        config = CalibrationConfig(args.views, args.trials, args.rot, args.trans, args.form, seed=args.seed)
    except ValueError as exc:
        raise InerfError(f"--views/--trials/--rot/--trans: {exc}") from None
    out = Path(args.out) if args.out else Path(args.run) / CALIBRATION_FILE
    if out.exists() and not args.overwrite:
        raise InerfError(f"{out} exists; pass --overwrite to replace it")
    solver = pose_config_from_args(args, "random")
    uncertainty = UNCERTAINTY_FLAGS.build(UncertaintyConfig(), args)
    device = resolve_device(args.device, args.tf32)
    run_ = load_run_checked(args.run, device, args.samples)
    views = _calibration_views(args, run_)
    check_background(views, run_.model.config.background)
    log = (lambda *a, **k: None) if args.quiet else print
    cal = calibrate(run_.model, views, solver, config, uncertainty, device=device, log=log)
    cal.meta.update(
        {"run": str(args.run), "samples_per_ray": run_.model.config.n_coarse, "split": views.split}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cal.to_json(), indent=2))
    print(cal.summary())
    print(f"wrote {out}")
    return 0


def _calibration_views(args, run_):
    """The views of ``--split``, or by default the val views (held out from training, like the targets the
    term is for) when there are any, else the training views (with a note: their term is a lower bound)."""
    if args.split is not None:
        return run_.dataset.load(args.split, run_dir=run_.run_dir, root=args.data)
    try:
        views = run_.dataset.load("val", run_dir=run_.run_dir, root=args.data)
        if len(views) > 0:
            return views
    except (InerfError, OSError, ValueError, KeyError):
        pass
    if not args.quiet:
        print(
            "note: no val views; calibrating on the training views, which the field fits better than new "
            "ones: the term is a lower bound of its error on new views"
        )
    return run_.dataset.load("train", run_dir=run_.run_dir, root=args.data)
