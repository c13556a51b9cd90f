"""Beyond iNeRF (issue 16): global localisation, tracking and pose uncertainty, measured on one run.

Three measurements, each optional, all written to ``--out`` (``beyond.json``, ``BEYOND.md`` and the
folders below) and printed as a Markdown summary:

1. **Global localisation** (``global/``): for ``--images`` views of ``--split`` and ``--trials`` trials each,
   no initial pose: :func:`inerf.pose.global_search.localize` (candidates from the training cameras and a
   Fibonacci sphere, low-resolution scoring, the best ``--keep`` refined with pruning). Success rate
   (< 5 degrees, < 0.05) against step, seconds per image (scoring + refinement), the protocol report of
   ``inerf benchmark pose --global`` (results.md, success_curve.png).
2. **Tracking** (``track/``): a camera path (``--sequence DIR`` made by ``inerf synth scene --path``, or one
   made here with ``--make-sequence handheld|orbit``) tracked from the first frame's ground truth with
   :data:`inerf.pose.track.TRACK`: frames per second after the first, per-frame errors, the share of frames
   within 1 degree and 1% of the camera distance (and of ``--scene-radius``); trajectory files and plots as
   ``inerf track`` writes them. ``--track-frames N`` tracks the first N frames; ``--track-seconds S`` stops
   once S seconds of solving are spent (the frames so far are reported). Every frame is logged as solved.
3. **Uncertainty calibration** (``calibration/``): the paper's protocol (``--calib-images`` x
   ``--calib-trials``, starts +-``--perturb-rot`` / +-``--perturb-trans``, the robust preset rescaled to
   ``--calib-steps``); for every successful trial, whether its true pose lies inside the 95% ellipsoid of
   each covariance estimate (robust, sandwich, Gauss-Newton): a calibrated ellipsoid holds 85-99%.

With ``--demo`` the run is the bundled demo field and the views are its 5 held-out targets (no dataset
needed): the CPU smoke test. ``--figures DIR`` also writes the README's three pictures there
(``global_success.png``, ``track_trajectory.png``, ``uncertainty_bars.png``). ``beyond.json`` holds the
model loading time and each part's wall time (``part_seconds``) and is rewritten after every part; run the
parts as separate processes (``--skip``) to bound each with ``timeout`` (see ``.carry/call_beyond.sh`` of
the GPU run: the chair and the demo duck with ``inerf synth scene`` views and a 200-frame handheld path).

    python benchmarks/bench_beyond.py --run runs/chair_grid --data data/nerf_synthetic/chair --samples 256 \\
        --skip track,calibration --images 10 --trials 2 --rolls 1 --keep 8 --steps 300 --lm-average 16 \\
        --warmup --device cuda --out $OUT/chair_global
    python benchmarks/bench_beyond.py --run inerf/assets/demo/run --data GEN --skip global,calibration \\
        --sequence GEN --track-rays 2048 --track-seconds 55 --scene-radius 1 --device cuda --out $OUT/gen_track
    python benchmarks/bench_beyond.py --demo --images 2 --trials 1 --viewpoints 64 --rolls 1 --keep 4 \\
        --steps 60 --rays 256 --samples 64 --make-sequence handheld --frames 6 --size 96 --out /tmp/beyond
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inerf.geometry import se3
from inerf.pose.config import ROBUST, SamplingConfig
from inerf.pose.global_search import CameraPrior, GlobalConfig
from inerf.pose.perturb import PAPER_PERTURBATION, SUCCESS
from inerf.pose.uncertainty import UncertaintyConfig, pose_uncertainty

ROT_OK, TRANS_OK = SUCCESS.rot_deg, SUCCESS.trans
ESTIMATES = ("robust", "sandwich", "gauss_newton")
"""Covariances whose calibration is measured (:meth:`inerf.pose.uncertainty.PoseUncertainty.with_estimator`)."""


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that wall times are the work's own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory written by `inerf train`")
    src.add_argument("--demo", action="store_true", help="the bundled demo field and its 5 targets")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's)")
    p.add_argument("--split", default="test", help="split whose views are localised and calibrated")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=None, help="samples per ray (default: the run's)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: global, track, calibration")
    p.add_argument(
        "--warmup",
        action="store_true",
        help="one untimed global localisation of the first view first (CUDA kernels, cuBLAS, allocator)",
    )
    p.add_argument("--figures", default=None, help="also write the README pictures into this folder")
    g = p.add_argument_group("global localisation")
    g.add_argument("--images", type=int, default=10)
    g.add_argument("--trials", type=int, default=2)
    g.add_argument("--viewpoints", type=int, default=GlobalConfig.viewpoints)
    g.add_argument("--rolls", type=int, default=GlobalConfig.rolls)
    g.add_argument("--keep", type=int, default=GlobalConfig.keep)
    g.add_argument("--score-rays", type=int, default=GlobalConfig.score_rays)
    g.add_argument("--score-size", type=int, default=GlobalConfig.score_size)
    g.add_argument(
        "--steps", type=int, default=ROBUST.steps, help="refinement steps (the robust preset rescaled)"
    )
    g.add_argument("--rays", type=int, default=ROBUST.n_rays, help="refinement rays per step and hypothesis")
    g.add_argument(
        "--lm-average",
        type=int,
        default=ROBUST.lm.average,
        help="refinement: final pose = mean of the last N LM iterates (0: the last)",
    )
    g.add_argument(
        "--retrieval", action="store_true", help="also seed candidates by image retrieval (ORB + PnP)"
    )
    g.add_argument("--retrieval-references", type=int, default=GlobalConfig.retrieval_references)
    t = p.add_argument_group("tracking")
    t.add_argument("--sequence", default=None, help="a folder made by `inerf synth scene --path`")
    t.add_argument(
        "--make-sequence", choices=["orbit", "handheld"], default=None, help="generate one (pybullet)"
    )
    t.add_argument("--asset", default="duck", help="asset of --make-sequence (the demo's is the duck)")
    t.add_argument("--frames", type=int, default=200)
    t.add_argument("--size", type=int, default=200, help="image size of --make-sequence")
    t.add_argument("--track-rays", type=int, default=None, help="per-frame rays (default: TRACK's)")
    t.add_argument("--track-steps", type=int, default=None, help="per-frame steps (default: TRACK's)")
    t.add_argument("--track-frames", type=int, default=None, help="track only the first N frames")
    t.add_argument(
        "--track-seconds",
        type=float,
        default=None,
        help="stop after this many seconds of solving (the frames tracked so far are reported)",
    )
    t.add_argument(
        "--scene-radius",
        type=float,
        default=None,
        help="also count frames within 1 deg and 1%% of this scene radius (default: only of the camera distance)",
    )
    c = p.add_argument_group("uncertainty calibration")
    c.add_argument("--calib-images", type=int, default=5)
    c.add_argument("--calib-trials", type=int, default=5)
    c.add_argument("--calib-steps", type=int, default=ROBUST.steps)
    c.add_argument(
        "--calibration",
        default=None,
        help="a model-error term (`inerf calibrate` output) added to the robust covariance; the table then "
        "also shows the robust covariance without it (residual)",
    )
    c.add_argument("--perturb-rot", type=float, default=40.0)
    c.add_argument("--perturb-trans", type=float, default=0.1)
    c.add_argument("--uncertainty-rays", type=int, default=UncertaintyConfig.rays)
    c.add_argument("--uncertainty-tiles", type=int, default=UncertaintyConfig.tiles)
    return p.parse_args(argv)


def load(args, device):
    """``(model, views, prior, label)``: the run's model, the views to localise, the camera prior."""
    if args.demo:
        from inerf.data.views import ViewSet
        from inerf.demo import load_demo
        from inerf.geometry.cameras import Cameras

        assets = load_demo(device)
        model = assets.run.model
        ts = assets.targets
        cams = Cameras(
            torch.stack([t.gt_c2w for t in ts]).float(),
            *(torch.tensor([t.camera.intrinsics()[i] for t in ts]) for i in range(4)),
            ts[0].camera.height,
            ts[0].camera.width,
        )
        alphas = torch.stack([t.alpha for t in ts]) if all(t.alpha is not None for t in ts) else None
        views = ViewSet(
            torch.stack([t.image for t in ts]), alphas, cams, model.config.near, model.config.far,
            model.config.background, [t.name for t in ts], str(assets.root), "demo",
        )  # fmt: skip
        prior = CameraPrior.from_bounds(model.config.near, model.config.far)
        label = "bundled demo field (duck, grid)"
    else:
        from inerf.cli.pose_options import camera_prior
        from inerf.train.checkpoint import load_run

        run = load_run(args.run, device)
        model = run.model
        views = run.dataset.load(args.split, run_dir=run.run_dir, root=args.data)
        prior = camera_prior(run, args.data)
        label = f"{args.run} ({run.kind})"
    if args.samples:
        model = model.with_config(n_coarse=args.samples)
    return model, views, prior, label


def bench_global(args, model, views, prior, device, out: Path) -> dict:
    from inerf.pose.global_protocol import run_global_benchmark
    from inerf.pose.protocol import ProtocolConfig, write_report

    steps = args.steps
    checkpoints = tuple(sorted({max(1, round(steps * f)) for f in (0.25, 0.5, 0.75, 1.0)}))
    protocol = ProtocolConfig(images=args.images, trials=args.trials, checkpoints=checkpoints)
    gcfg = GlobalConfig(
        viewpoints=args.viewpoints,
        rolls=args.rolls,
        keep=args.keep,
        score_rays=args.score_rays,
        score_size=args.score_size,
        retrieval=args.retrieval,
        retrieval_references=args.retrieval_references,
    )
    robust = ROBUST.with_steps(steps)
    config = replace(robust, n_rays=args.rays, lm=replace(robust.lm, average=args.lm_average))
    warmup = 0.0
    if args.warmup:
        # Untimed: the first solve on a fresh process pays one-time costs (CUDA context and kernel loading,
        # cuBLAS handles, the caching allocator's growth) that a long-running localiser pays once.
        from inerf.pose.global_search import localize
        from inerf.pose.protocol import _view_target

        t_w = time.perf_counter()
        localize(model, _view_target(views, 0, device)[0], prior, gcfg, config, trials=1, seed=12345)
        _sync(device)
        warmup = time.perf_counter() - t_w
        print(f"warm-up localisation (untimed): {warmup:.2f} s", flush=True)
    t0 = time.perf_counter()
    result = run_global_benchmark(
        model, views, prior, [SamplingConfig("random")], config, protocol, gcfg, device=device, progress=False, log=print,
        uncertainty=UncertaintyConfig(rays=args.uncertainty_rays, tiles=args.uncertainty_tiles),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    write_report(result, out)
    n_views = len({t["view"] for t in result.trials})
    rate = float(result.success_curves()["random"][-1])
    g = result.meta["global"]
    per_image = g["score_seconds_per_trial"] + g["refine_seconds_per_trial"]
    return {
        "success_rate": rate,
        "trials": len(result.trials),
        "seconds_per_image": per_image,
        "score_seconds_per_image": g["score_seconds_per_trial"],
        "refine_seconds_per_image": g["refine_seconds_per_trial"],
        "wall_seconds": wall,
        # A view's trials are solved together (one batch): this bounds a single trial's time from above.
        "wall_seconds_per_view": wall / max(1, n_views),
        "warmup_seconds": warmup,
        "candidates": g["candidates"],
        "refined": g["refined"],
        "config": asdict(gcfg),
        "refine_steps": steps,
        "refine_rays": args.rays,
        "lm_average": args.lm_average,
        "curve": [float(x) for x in result.success_curves()["random"]],
        "command": f"inerf benchmark pose --run RUN --global --preset robust --steps {steps} --rays {args.rays} "
        f"--images {args.images} --trials {args.trials} --global-viewpoints {args.viewpoints} --global-rolls "
        f"{args.rolls} --global-keep {args.keep} --sampling random"
        + (f" --lm-average {args.lm_average}" if args.lm_average else "")
        + (f" --samples {args.samples}" if args.samples else "")
        + " --out OUT",
    }


def make_sequence(args, out: Path) -> Path:
    from inerf.synth.scene import SceneConfig, generate_scene

    folder = out / "sequence"
    config = SceneConfig(
        size=args.size,
        n_train=0,
        n_val=0,
        n_test=0,
        path=args.make_sequence,
        path_frames=args.frames,
        workers=None,
    )
    generate_scene(args.asset, folder, config, overwrite=True, progress=False)
    return folder


def bench_track(args, model, device, out: Path) -> dict:
    from inerf.pose.io import read_camera
    from inerf.pose.track import RECOVER, TRACK, TrackConfig, track
    from inerf.pose.track_io import iter_frames, read_trajectory, write_track_outputs

    seq = Path(args.sequence) if args.sequence else make_sequence(args, out)
    gt = read_trajectory(seq / "path.tum")
    frames = list(
        iter_frames(
            seq / "path",
            lambda w, h: read_camera(seq / "transforms_path.json", w, h),
            model.config.background,
            device,
            max_frames=args.track_frames,
        )
    )
    side = max(frames[0].target.height, frames[0].target.width)
    pose_config = replace(TRACK, blur=replace(TRACK.blur, sigma=TRACK.blur.sigma * side / 128))
    if args.track_rays:
        pose_config = replace(pose_config, n_rays=args.track_rays)
    if args.track_steps:
        pose_config = pose_config.with_steps(args.track_steps)
    recover = replace(RECOVER, blur=replace(RECOVER.blur, sigma=RECOVER.blur.sigma * side / 128))
    state = {"solving": 0.0}

    def budgeted():
        """The frames, until ``--track-seconds`` of solving are spent (always the first two)."""
        for k, frame in enumerate(frames):
            if args.track_seconds is not None and k >= 2 and state["solving"] >= args.track_seconds:
                print(f"track: stopping after {k} frames ({state['solving']:.1f} s of solving)", flush=True)
                return
            yield frame

    def on_frame(frame, est):
        # One line per frame: the log keeps the per-frame figures even if the part is killed.
        state["solving"] += est.seconds
        k = est.index
        r = float(se3.rotation_error_deg(est.c2w, gt[k].double()))
        t = float(se3.translation_error(est.c2w, gt[k].double()))
        print(
            f"frame {k} {frame.name}: {1000 * est.seconds:.1f} ms, error {r:.3f} deg / {t:.4f}, loss "
            f"{est.loss:.2e}{' relocalised' if est.relocalized else ''}",
            flush=True,
        )

    result = track(model, budgeted(), gt[0], TrackConfig(), pose_config, recover, on_frame=on_frame)
    n = len(result.frames)
    rot, trans = result.errors(gt[:n])
    radius = float(gt[:, :3, 3].norm(dim=-1).mean())
    ok = (rot < 1.0) & (trans < 0.01 * radius)
    (out / "track").mkdir(parents=True, exist_ok=True)
    write_track_outputs(out / "track", result, gt_c2w=gt[:n], meta={"sequence": str(seq)})
    tracked = result.frames[1:] if n > 1 else result.frames
    frame_ms = np.array([1000 * f.seconds for f in tracked])
    scene = {}
    if args.scene_radius:
        scene = {
            "scene_radius": args.scene_radius,
            "within_1deg_1pct_scene": float(
                ((rot < 1.0) & (trans < 0.01 * args.scene_radius)).double().mean()
            ),
        }
    return {
        "frames": n,
        "frames_available": len(frames),
        "size": side,
        "fps": result.fps,
        "seconds": result.seconds,
        "first_frame_seconds": result.frames[0].seconds,
        "frame_ms_median": float(np.median(frame_ms)),
        "frame_ms_p90": float(np.percentile(frame_ms, 90)),
        "rot_err_median": float(rot.median()),
        "rot_err_max": float(rot.max()),
        "trans_err_median": float(trans.median()),
        "trans_err_max": float(trans.max()),
        "camera_distance": radius,
        "within_1deg_1pct": float(ok.double().mean()),
        **scene,
        "relocalized": sum(bool(f.relocalized) for f in result.frames[1:]),
        "rays": pose_config.n_rays,
        "steps": pose_config.steps,
        "command": f"inerf track --run RUN --images {seq}/path --intrinsics {seq}/transforms_path.json "
        f"--gt {seq}/path.tum --init-from-gt"
        + (f" --samples {args.samples}" if args.samples else "")
        + (f" --max-frames {args.track_frames}" if args.track_frames else "")
        + (f" --rays {args.track_rays}" if args.track_rays else "")
        + (f" --steps {args.track_steps}" if args.track_steps else "")
        + " --out OUT",
    }


def bench_calibration(args, model, views, device, out: Path) -> dict:
    from inerf.pose.protocol import ProtocolConfig, run_pose_benchmark, write_report

    steps = args.calib_steps
    model_error = None
    if args.calibration:
        from inerf.pose.calibration import load_calibration

        path = Path(args.calibration)
        model_error = load_calibration(path.parent, path.name)
    estimates = ESTIMATES + (("residual",) if model_error is not None else ())
    protocol = ProtocolConfig(
        images=args.calib_images,
        trials=args.calib_trials,
        perturbation=replace(PAPER_PERTURBATION, rot_deg=args.perturb_rot, trans=args.perturb_trans),
        checkpoints=(steps,),
    )
    config = ROBUST.with_steps(steps)
    t0 = time.perf_counter()
    result = run_pose_benchmark(
        model,
        views,
        [SamplingConfig("random")],
        config,
        protocol,
        device=device,
        progress=False,
        log=lambda *a: print(*a, flush=True),
        # The covariances are computed below, per trial, with every estimator.
        uncertainty=None,
    )
    solve_wall = time.perf_counter() - t0
    from inerf.pose.problem import PoseTarget

    rows = []
    t1 = time.perf_counter()
    for trial in result.trials:
        i = trial["view"]
        alpha = views.alphas[i].to(device) if views.alphas is not None else None
        target = PoseTarget(views.images[i].to(device), views.cameras[i].to(device), alpha)
        final, gt = torch.tensor(trial["final_c2w"]), torch.tensor(trial["gt_c2w"])
        r, t = float(se3.rotation_error_deg(final, gt)), float(se3.translation_error(final, gt))
        unc = pose_uncertainty(
            model,
            target,
            final,
            UncertaintyConfig(rays=args.uncertainty_rays, tiles=args.uncertainty_tiles),
            seed=trial["seed"],
            solver=config,
            model_error=model_error,
        )
        row = {
            "view": trial["name"],
            "trial": trial["trial"],
            "rot_err": r,
            "trans_err": t,
            "ok": bool(SUCCESS.ok(r, t)),
        }
        for est in estimates:
            u = unc.with_estimator(est)
            row[est] = {
                "rot_sigma_deg": u.rotation_sigma_deg,
                "trans_sigma": u.translation_sigma,
                "inside95": u.inside(gt),
                "inside95_rotation": u.inside(gt, "rotation"),
                "inside95_centre": u.inside(gt, "centre"),
                "mahalanobis2": u.mahalanobis2(gt),
            }
        rows.append(row)
        print(
            f"calibration {row['view']} #{row['trial']}: error {r:.3f} deg / {t:.4f}, robust 1-sigma "
            f"{row['robust']['rot_sigma_deg']:.3f} deg / {row['robust']['trans_sigma']:.4f}, inside 95% "
            f"{row['robust']['inside95']}",
            flush=True,
        )
    _sync(device)
    unc_wall = time.perf_counter() - t1
    (out / "calibration").mkdir(parents=True, exist_ok=True)
    write_report(result, out / "calibration")
    ok = [r for r in rows if r["ok"]]
    summary = {
        "trials": len(rows),
        "successful": len(ok),
        "solve_seconds": solve_wall,
        "uncertainty_seconds": unc_wall,
        "steps": steps,
        "rays": config.n_rays,
        "rows": rows,
        "model_error": None
        if model_error is None
        else model_error.to_json() | {"source": model_error.source},
    }
    for est in estimates:
        if ok:
            summary[est] = {
                "inside95": float(np.mean([r[est]["inside95"] for r in ok])),
                "inside95_rotation": float(np.mean([r[est]["inside95_rotation"] for r in ok])),
                "inside95_centre": float(np.mean([r[est]["inside95_centre"] for r in ok])),
                "median_rot_sigma_deg": float(np.median([r[est]["rot_sigma_deg"] for r in ok])),
                "median_trans_sigma": float(np.median([r[est]["trans_sigma"] for r in ok])),
                "median_mahalanobis2": float(np.median([r[est]["mahalanobis2"] for r in ok])),
                # How many predicted sigmas the true error is: about 1 to 1.6 when calibrated.
                "median_rot_err_over_sigma": float(
                    np.median([r["rot_err"] / r[est]["rot_sigma_deg"] for r in ok])
                ),
                "median_trans_err_over_sigma": float(
                    np.median([r["trans_err"] / r[est]["trans_sigma"] for r in ok])
                ),
            }
    if ok:
        summary["median_rot_err"] = float(np.median([r["rot_err"] for r in ok]))
        summary["median_trans_err"] = float(np.median([r["trans_err"] for r in ok]))
    return summary


def figures(folder: Path, report: dict, out: Path) -> None:
    """The README's pictures, small: the global success curve, the tracked trajectory, uncertainty bars."""
    import shutil

    from inerf.viz.plots import plot_success_curves
    from inerf.viz.track_plots import plot_uncertainty_bars

    folder.mkdir(parents=True, exist_ok=True)
    if "global" in report:
        g = report["global"]
        plot_success_curves(
            folder / "global_success.png",
            {f"global ({g['candidates']} candidates, {g['refined']} refined)": np.array(g["curve"])},
            title=f"no initial pose: success (< {ROT_OK:g} deg, < {TRANS_OK:g}) against refinement step",
        )
    if "track" in report and (out / "track" / "trajectory.png").exists():
        shutil.copy(out / "track" / "trajectory.png", folder / "track_trajectory.png")
    if report.get("calibration", {}).get("rows"):
        rows = [r for r in report["calibration"]["rows"] if r["ok"]][:12]
        if rows:
            plot_uncertainty_bars(
                folder / "uncertainty_bars.png",
                [f"{r['view'].split('/')[-1]} #{r['trial']}" for r in rows],
                [r["robust"]["rot_sigma_deg"] for r in rows],
                [r["rot_err"] for r in rows],
                title="predicted 1-sigma rotation (robust) against the true error, per solve",
            )


def markdown(report: dict) -> str:
    lines = [f"# Beyond iNeRF: {report['model']} on {report['device']}", ""]
    if "global" in report:
        g = report["global"]
        lines += [
            "## Global localisation (no initial pose)",
            "",
            (
                f"{g['trials']} trials, {g['candidates']} candidates, {g['refined']} refined for {g['refine_steps']} steps "
                f"at {g['refine_rays']} rays: **{100 * g['success_rate']:.0f}% success** (< {ROT_OK:g} deg, < {TRANS_OK:g}); "
                f"**{g['seconds_per_image']:.2f} s per image** (scoring {g['score_seconds_per_image']:.2f} s, refinement "
                f"{g['refine_seconds_per_image']:.2f} s; the trials of a view are solved in one batch: "
                f"{g['wall_seconds_per_view']:.2f} s of wall time per view)."
            ),
            "",
            f"`{g['command']}`",
            "",
        ]
    if "track" in report:
        t = report["track"]
        lines += [
            "## Tracking",
            "",
            (
                f"{t['frames']} frames at {t['size']} px, {t['steps']} steps x {t['rays']} rays per frame: "
                f"**{t['fps']:.2f} frames/s**; rotation error median {t['rot_err_median']:.3f} / max {t['rot_err_max']:.3f} deg, "
                f"translation median {t['trans_err_median']:.4f} / max {t['trans_err_max']:.4f} (camera distance "
                f"{t['camera_distance']:.2f}); {100 * t['within_1deg_1pct']:.0f}% of frames within 1 deg and 1%; "
                f"{t['relocalized']} re-localised; per frame {t['frame_ms_median']:.1f} ms median, "
                f"{t['frame_ms_p90']:.1f} ms 90th percentile."
                + (
                    f" Within 1 deg and 1% of the scene radius {t['scene_radius']:g}: "
                    f"{100 * t['within_1deg_1pct_scene']:.0f}%."
                    if "scene_radius" in t
                    else ""
                )
                + (
                    f" ({t['frames_available']} frames available.)"
                    if t["frames_available"] != t["frames"]
                    else ""
                )
            ),
            "",
            f"`{t['command']}`",
            "",
        ]
    if "calibration" in report:
        c = report["calibration"]
        lines += [
            "## Uncertainty calibration",
            "",
            (
                f"{c['successful']} successful of {c['trials']} protocol trials ({c['steps']} steps x "
                f"{c['rays']} rays; solves {c['solve_seconds']:.1f} s, covariances {c['uncertainty_seconds']:.1f} s)."
            ),
        ]
        if c["successful"]:
            lines += [
                "",
                (
                    "| estimator | inside 95% (pose) | rotation only | centre only | median 1-sigma rot (deg) "
                    "| median 1-sigma trans | median error / sigma (rot, trans) |"
                ),
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for est in [e for e in (*ESTIMATES, "residual") if e in c]:
                s = c[est]
                lines.append(
                    f"| {est} | {100 * s['inside95']:.0f}% | {100 * s['inside95_rotation']:.0f}% | "
                    f"{100 * s['inside95_centre']:.0f}% | {s['median_rot_sigma_deg']:.3f} | {s['median_trans_sigma']:.4f} | "
                    f"{s['median_rot_err_over_sigma']:.2f}, {s['median_trans_err_over_sigma']:.2f} |"
                )
            lines += ["", f"Median true error: {c['median_rot_err']:.3f} deg, {c['median_trans_err']:.4f}."]
        lines.append("")
    if report.get("part_seconds"):
        times = ", ".join(f"{k} {v:.1f} s" for k, v in report["part_seconds"].items())
        lines += [f"Wall time: model loading {report['load_seconds']:.1f} s, {times}.", ""]
    return "\n".join(lines)


def _write_json(path: Path, report: dict) -> None:
    path.write_text(
        json.dumps(
            report,
            indent=2,
            default=lambda x: None if isinstance(x, float) and not math.isfinite(x) else str(x),
        )
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_grad_enabled(True)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    t_load = time.perf_counter()
    model, views, prior, label = load(args, device)
    report: dict = {
        "model": label,
        "device": str(device)
        + (
            f" ({torch.cuda.get_device_name(device)})"
            if device.type == "cuda"
            else f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        ),
        "views": len(views),
        "prior": prior.to_json(),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "load_seconds": time.perf_counter() - t_load,
        "part_seconds": {},
    }
    parts = {
        "global": lambda: bench_global(args, model, views, prior, device, out / "global"),
        "track": lambda: bench_track(args, model, device, out),
        "calibration": lambda: bench_calibration(args, model, views, device, out),
    }
    for name, run_part in parts.items():
        if name in skip or (name == "track" and not (args.sequence or args.make_sequence)):
            continue
        print(f"== {name}", flush=True)
        t_part = time.perf_counter()
        report[name] = run_part()
        _sync(device)
        report["part_seconds"][name] = time.perf_counter() - t_part
        print(f"== {name} done in {report['part_seconds'][name]:.1f} s", flush=True)
        _write_json(out / "beyond.json", report)  # after every part: a later part may be cut short
    if args.figures:
        figures(Path(args.figures), report, out)
    _write_json(out / "beyond.json", report)
    md = markdown(report)
    (out / "BEYOND.md").write_text(md)
    print(md)
    return report


if __name__ == "__main__":
    main()
