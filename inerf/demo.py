"""The embedded demo: recover the camera pose of a held-out image with the radiance field shipped in the package.

``inerf demo`` (and ``make demo``) must work on a fresh machine with no GPU and no download, so everything
it needs lives in :data:`DEMO_ROOT` (``inerf/assets/demo/``), built by ``benchmarks/build_demo_assets.py``::

    run/config.json        an ``inerf train`` run config (grid field, render settings, training metrics)
    run/model.safetensors  its weights; the planes and lines are stored as float16 (loaded into float32)
    targets.json           the held-out targets: image file, intrinsics, ground-truth c2w (OpenCV axes)
    targets/NN.png         the target images (RGBA, straight alpha, as rendered by ``inerf synth``)
    scene.json             how the scene was made (asset, licence, camera, ``inerf synth`` command)
    ATTRIBUTION.txt        the credit line the asset's licence asks for

One demo run, per target ``i``: the ground truth ``T*`` is moved by :data:`DEMO_PERTURBATION` with
:func:`inerf.pose.perturb.perturb`, the one definition ``inerf estimate --init-from-gt`` and ``inerf
benchmark pose`` use too (turned by exactly 8 degrees about a random axis through the camera centre and
shifted by exactly 0.1 in a random direction, so the start is exactly 8 degrees / 0.1 off), drawn from
:func:`~inerf.pose.perturb.start_generator` ``(seed, i)`` so a target's start does not depend on which other
targets run; :func:`inerf.pose.estimate_pose` solves from ``T0`` with :data:`DEMO_POSE`; the outputs of
``inerf estimate`` are written (:func:`inerf.pose.report.write_estimate_outputs`) plus a one-page HTML
report (:mod:`inerf.viz.report`).

Output layout: with one target everything is written into ``out/``; with several, each target gets
``out/target_NN/`` and ``out/report.html`` covers them all. ``out/demo.json`` summarises the run (errors,
times, settings) and lists the files it wrote, so ``--overwrite`` can remove exactly those.

Example::

    from inerf.demo import run_demo
    run = run_demo("outputs/demo", targets=[0], device="cpu")
    run.outcomes[0].rot_err, run.outcomes[0].trans_err        # degrees, scene units
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from inerf import io_utils
from inerf.errors import InerfError
from inerf.pose.config import AdamConfig, PoseConfig, SamplingConfig
from inerf.pose.perturb import SUCCESS, Perturbation

if TYPE_CHECKING:
    from inerf.geometry.cameras import Cameras
    from inerf.pose.solver import PoseResult, PoseTarget
    from inerf.train.checkpoint import LoadedRun

__all__ = [
    "DEMO_FRAMES",
    "DEMO_PERTURBATION",
    "DEMO_POSE",
    "DEMO_ROOT",
    "DemoAssets",
    "DemoRun",
    "DemoTarget",
    "TargetOutcome",
    "check_out_dir",
    "demo_start_pose",
    "load_demo",
    "parse_targets",
    "run_demo",
    "solve_target",
]

DEMO_ROOT = Path(__file__).resolve().parent / "assets" / "demo"
"""The bundled demo assets (package data)."""

TARGETS_FORMAT = "inerf.demo_targets"
TARGETS_VERSION = 1

DEMO_PERTURBATION = Perturbation(rot_deg=8.0, trans=0.1)
"""The demo's starts: the shared definition's defaults (:mod:`inerf.pose.perturb`: exact amounts, turned
about the camera centre), each target's start exactly 8 degrees and 0.1 off its ground truth. The object
spans 2 units, the camera is 4 away with a 40-degree field of view, and an 8-degree turn moves the duck by
about 40 of the image's 200 pixels. Larger turns about the camera centre push it towards the edge of the
picture: with 10 degrees 2 of the 10 solves of seeds 0 and 1 fail (the worst ends 3.6 degrees off), with 15
degrees 3 of the 5 of seed 0, with 30 degrees all 5 (benchmarks/RESULTS_demo.md). Turned about the world origin
instead (``--perturb-pivot origin``, the iNeRF paper's way) the duck stays centred and 30 degrees are
recovered, but the camera centre then moves by up to 2 units."""

DEMO_POSE = PoseConfig(
    steps=300,
    n_rays=1024,
    adam=AdamConfig(lr=0.02, lr_decay=0.1, lr_decay_steps=150),
    sampling=SamplingConfig("random"),
)
"""Solver settings of the demo, tuned on the bundled targets (benchmarks/RESULTS_demo.md).

Why not the paper's (lr 0.01 x 0.8 per 100 steps, 2048 rays): the demo aims far inside the success
thresholds (:data:`inerf.pose.perturb.SUCCESS`, 5 degrees and 0.05), at < 1 degree and < 0.01, i.e. a
fraction of a pixel (at 200x200, 1 pixel ~ 0.2 degrees, and a 0.01 orbit about the object is
~0.15 degrees). Adam moves each coordinate by about ``lr`` per step whatever the gradient, so the paper's
final rate (0.005 rad ~ 0.3 degrees per step) leaves the pose jittering by more than that. Here the rate
falls a hundredfold over the 300 steps (0.02 -> 0.0002): the first ~100 steps close a 30-degree gap, the
last ones settle to the field's optimum. 1024 rays per step are 2.6 % of a 200x200 image (the paper's 2048
are 1.3 % of 400x400); random sampling keeps the silhouette in play, which the back view of the duck needs
(mask sampling, i.e. foreground pixels only, fails there)."""

DEMO_FRAMES = 16
"""Overlay frames in the convergence GIF (each is a full render: the main cost after the solve on a CPU)."""

# ----------------------------------------------------------------------------------------- assets


@dataclass
class DemoTarget:
    """One held-out image with its camera.

    Attributes:
        index: position in ``targets.json``.
        name: where the image came from in the generated scene (e.g. ``test/r_4``).
        image: ``[H, W, 3]`` float32 in [0, 1], composited on the field's background.
        alpha: ``[H, W]`` foreground coverage (the PNG's alpha), or None for an opaque image.
        camera: one :class:`Cameras` holding the pinhole intrinsics in pixels (centres at +0.5).
        gt_c2w: ``[4, 4]`` float64 ground-truth camera-to-world, OpenCV axes.
        path: the image file.
    """

    index: int
    name: str
    image: torch.Tensor
    alpha: torch.Tensor | None
    camera: Cameras
    gt_c2w: torch.Tensor
    path: Path


@dataclass
class DemoAssets:
    """Everything the demo loads: the trained run, its targets and the scene's provenance."""

    root: Path
    run: LoadedRun
    """The trained run in ``root/run`` (fields frozen, on the requested device)."""
    targets: list[DemoTarget]
    scene: dict
    """``scene.json``: asset title, source, licence, camera, the ``inerf synth`` command."""
    attribution: str
    """``ATTRIBUTION.txt`` (the credit line(s) of the asset)."""


def _read_targets(root: Path, background) -> list[DemoTarget]:
    from inerf.geometry.conventions import check_rigid
    from inerf.pose.io import intrinsics_camera, read_target_image

    path = root / "targets.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InerfError(f"{path}: cannot read the demo targets ({exc})") from None
    if spec.get("format") != TARGETS_FORMAT or spec.get("convention") != "opencv":
        raise InerfError(f"{path}: not an inerf demo targets file (format {TARGETS_FORMAT!r}, OpenCV poses)")
    targets = []
    for i, t in enumerate(spec.get("targets", [])):
        try:
            img_path = root / t["image"]
            image, alpha = read_target_image(img_path, background)
            h, w = image.shape[:2]
            intr = intrinsics_camera(
                float(t["fx"]),
                float(t["fy"]),
                float(t["cx"]),
                float(t["cy"]),
                w,
                h,
                source=f"{path} target {i}",
                size=(int(t["width"]), int(t["height"])),
            )
            gt = check_rigid(torch.tensor(t["c2w"], dtype=torch.float64), f"{path} target {i} c2w").double()
        except (KeyError, TypeError, ValueError) as exc:
            raise InerfError(f"{path}: malformed target {i} ({exc})") from None
        targets.append(DemoTarget(i, str(t.get("name", f"target {i}")), image, alpha, intr, gt, img_path))
    if not targets:
        raise InerfError(f"{path}: no targets")
    return targets


def load_demo(device: str | torch.device = "cpu", root: str | Path | None = None) -> DemoAssets:
    """Load the demo's run, targets and provenance from ``root`` (default :data:`DEMO_ROOT`).

    Raises:
        InerfError: the assets are missing (e.g. a source checkout without them) or malformed.
    """
    from inerf.train.checkpoint import load_run

    root = Path(root) if root is not None else DEMO_ROOT
    if not (root / "run").is_dir() or not (root / "targets.json").is_file():
        raise InerfError(
            f"the demo assets are missing from {root}; rebuild them with "
            "`python benchmarks/build_demo_assets.py` or reinstall inerf"
        )
    run = load_run(root / "run", device)
    targets = _read_targets(root, run.model.config.background)
    scene = {}
    if (root / "scene.json").is_file():
        scene = json.loads((root / "scene.json").read_text(encoding="utf-8"))
    attribution = ""
    if (root / "ATTRIBUTION.txt").is_file():
        attribution = (root / "ATTRIBUTION.txt").read_text(encoding="utf-8").strip()
    return DemoAssets(root=root, run=run, targets=targets, scene=scene, attribution=attribution)


def parse_targets(text: str | int | Sequence[int] | None, n_targets: int) -> list[int]:
    """``None`` -> ``[0]``; ``"all"`` -> every index; ``"2"``, ``2``, ``"0,3"`` or ``[0, 3]`` -> those indices
    (checked against ``n_targets``; one-line :class:`InerfError` otherwise)."""
    if text is None:
        return [0]
    if isinstance(text, str):
        if text.strip().lower() == "all":
            return list(range(n_targets))
        try:
            picks = [int(x) for x in text.replace(",", " ").split()]
        except ValueError:
            raise InerfError(
                f"--target {text!r}: expected a target index (0..{n_targets - 1}) or 'all'"
            ) from None
    elif isinstance(text, int):
        picks = [text]
    else:
        picks = [int(x) for x in text]
    bad = [i for i in picks if not 0 <= i < n_targets]
    if bad or not picks:
        raise InerfError(f"--target {text}: the demo has {n_targets} targets (0..{n_targets - 1}) or 'all'")
    return list(dict.fromkeys(picks))  # keep order, drop repeats


def demo_start_pose(
    gt_c2w: torch.Tensor, seed: int, index: int, perturbation: Perturbation = DEMO_PERTURBATION
) -> torch.Tensor:
    """The start pose ``[4, 4]`` (float64) of target ``index``: ``gt_c2w`` moved by ``perturbation`` with
    the generator of ``(seed, index)``, exactly as ``inerf benchmark pose`` draws view ``index``'s first
    trial and ``inerf estimate --view index --init-from-gt`` its start (:mod:`inerf.pose.perturb`)."""
    from inerf.pose.perturb import start_pose

    return start_pose(gt_c2w, perturbation, seed, index)


# ----------------------------------------------------------------------------------------- outputs


def _owned_outputs(out: Path) -> list[Path]:
    """The files and folders a previous demo run recorded in ``out/demo.json`` (only those inside ``out``)."""
    record = out / "demo.json"
    if not record.is_file():
        return []
    try:
        names = json.loads(record.read_text(encoding="utf-8")).get("outputs", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    root = out.resolve()
    owned = []
    for name in names:
        p = (out / str(name)).resolve()
        if p != root and root in p.parents:  # never follow a recorded path out of the folder
            owned.append(p)
    return owned + [record]


def check_out_dir(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing non-empty ``out`` unless ``overwrite`` (cheap: call it before any heavy work)."""
    return io_utils.check_out_dir(out, overwrite)


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite``, first delete what the previous demo run there wrote (per its
    ``demo.json``), so no stale frame or target folder survives into the new run. Other files are kept."""
    check_out_dir(out, overwrite)
    for p in _owned_outputs(out) if out.is_dir() else []:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)


@dataclass
class TargetOutcome:
    """One target's solve and what was written for it.

    Attributes:
        target: the :class:`DemoTarget`.
        init_c2w: ``[4, 4]`` the start pose (float64).
        result: the :class:`inerf.pose.PoseResult` (one problem, one hypothesis).
        rot_err0, trans_err0: start errors (degrees, scene units) against the ground truth.
        rot_err, trans_err: final errors.
        folder: where its files are; ``files``: name -> path of each.
    """

    target: DemoTarget
    init_c2w: torch.Tensor
    result: PoseResult
    rot_err0: float
    trans_err0: float
    rot_err: float
    trans_err: float
    folder: Path
    files: dict = field(default_factory=dict)

    @property
    def recovered(self) -> bool:
        """Both errors within the shared success thresholds (:data:`inerf.pose.perturb.SUCCESS`)."""
        return bool(SUCCESS.ok(self.rot_err, self.trans_err))


@dataclass
class DemoRun:
    """A whole demo run: per-target outcomes, the report, timings."""

    out: Path
    outcomes: list[TargetOutcome]
    report: Path
    summary: Path
    config: PoseConfig
    device: str
    seed: int
    seconds: float
    """Wall time of :func:`run_demo` (loading, solves, outputs)."""


def _fmt_pose_rows(outcomes: list[TargetOutcome]) -> tuple[list[list[str]], list[str]]:
    rows, marks = [], []
    for o in outcomes:
        rows.append(
            [
                f"{o.target.index}",
                o.target.name,
                f"{o.rot_err0:.2f}",
                f"{o.trans_err0:.4f}",
                f"{o.rot_err:.3f}",
                f"{o.trans_err:.4f}",
                f"{o.result.steps}",
                f"{o.result.seconds:.1f}",
                "yes" if o.recovered else "no",
            ]
        )
        marks.append("ok" if o.recovered else "bad")
    return rows, marks


_ERROR_HEADER = [
    "target",
    "image",
    "start rot (deg)",
    "start trans",
    "final rot (deg)",
    "final trans",
    "steps",
    "solve (s)",
    f"success ({SUCCESS.describe()})",
]


def _settings_table(
    config: PoseConfig, render_config, device: str, seed: int, n_frames: int, perturbation: Perturbation
):
    from inerf.viz.report import Table

    perturb = f"the ground truth {perturbation.describe()}"
    optimiser = (
        f"Adam, lr {config.adam.lr:g} x {config.adam.lr_decay:g} every {config.adam.lr_decay_steps} steps "
        f"(translation x {config.adam.trans_lr_scale:g})"
    )
    samples = (
        f"{render_config.n_coarse} (+{render_config.n_fine} fine), depth {render_config.near:g} to "
        f"{render_config.far:g}"
    )
    rows = [
        ["start", perturb],
        ["success", SUCCESS.describe()],
        ["steps", str(config.steps)],
        ["rays per step", f"{config.n_rays} ({config.sampling.strategy} sampling)"],
        ["optimiser", optimiser],
        ["loss", config.loss],
        ["samples per ray", samples],
        ["device", device],
        ["seed", str(seed)],
        ["GIF frames", str(n_frames)],
    ]
    return Table(["setting", "value"], rows, caption="Settings")


def _write_report(
    out: Path,
    outcomes: list[TargetOutcome],
    assets: DemoAssets,
    config: PoseConfig,
    device: str,
    seed: int,
    n_frames: int,
    perturbation: Perturbation,
) -> Path:
    """``out/report.html``: summary, per-target figures and errors, settings, credits (one self-contained page)."""
    from inerf.viz.report import Figure, Section, Table, write_html_report

    scene = assets.scene or {}
    asset = scene.get("asset", {})
    title_obj = asset.get("title", "bundled object")
    metrics = assets.run.config.get("metrics", {})
    psnr = metrics.get("test_psnr")
    train = assets.run.config.get("train", {})
    trained = f"{scene.get('n_train', '?')} rendered views of the {title_obj}"
    if psnr:
        minutes = train.get("max_minutes")
        trained += f" (test PSNR {psnr:.2f} dB" + (f", {minutes:g} minutes on a CPU)" if minutes else ")")
    intro = [
        (
            "iNeRF estimates the camera pose of an image by gradient descent through a trained radiance field "
            f"(Yen-Chen et al., IROS 2021). The field bundled with inerf is a {assets.run.kind} field trained on "
            f"{trained}."
        ),
        (
            "Each target is a held-out view (never seen in training). Its start is the ground-truth camera "
            f"{perturbation.describe()}. "
            + _start_offset_note(outcomes, perturbation)
            + " The solver started there and moved the camera until the rendered pixels matched the target's. "
            "The overlays blend the render at the current pose 50/50 with the target: ghosting means misalignment. "
            f"A target counts as recovered when it ends {SUCCESS.describe()} (the iNeRF paper's thresholds)."
        ),
    ]
    rows, marks = _fmt_pose_rows(outcomes)
    sections = [
        Section(
            "Summary",
            tables=[
                Table(
                    _ERROR_HEADER,
                    rows,
                    caption="Pose errors against the ground "
                    "truth (rotation: geodesic angle; translation: camera-centre "
                    "distance, scene units)",
                    highlight=marks,
                )
            ],
        )
    ]
    for o in outcomes:
        f = o.files
        steps = o.result.steps
        figs = [
            Figure(
                f["target"], f"target: {o.target.name} ({o.target.image.shape[1]}x{o.target.image.shape[0]})"
            )
        ]
        frames = f.get("frames")
        if frames is not None:
            first, last = Path(frames) / "0000.png", Path(frames) / f"{steps:04d}.png"
            if first.is_file():
                figs.append(Figure(first, f"start: {o.rot_err0:.2f} deg, {o.trans_err0:.3f} off"))
            if last.is_file():
                figs.append(Figure(last, f"after {steps} steps: {o.rot_err:.3f} deg, {o.trans_err:.4f} off"))
        if "gif" in f:
            figs.append(Figure(f["gif"], "convergence (render at the current pose blended with the target)"))
        if "plot" in f:
            figs.append(Figure(f["plot"], "loss and errors against step", width=560))
        table = Table(
            ["quantity", "start", "final"],
            [
                ["rotation error (deg)", f"{o.rot_err0:.3f}", f"{o.rot_err:.3f}"],
                ["translation error", f"{o.trans_err0:.4f}", f"{o.trans_err:.4f}"],
                [
                    "photometric loss",
                    f"{float(o.result.trajectory.loss[0, 0, 0]):.3e}",
                    f"{float(o.result.loss[0]):.3e}",
                ],
            ],
            highlight=[None, None, None],
        )
        folder = "" if o.folder == out else f" (files in {o.folder.name}/)"
        sections.append(
            Section(
                f"Target {o.target.index}: {o.target.name}{folder}",
                figures=figs,
                tables=[table],
                notes=[
                    f"{steps} steps in {o.result.seconds:.1f} s on {o.result.device}; "
                    + ("recovered." if o.recovered else "NOT recovered to the thresholds.")
                ],
            )
        )
    sections.append(
        Section(
            "Settings",
            tables=[_settings_table(config, assets.run.model.config, device, seed, n_frames, perturbation)],
        )
    )
    footer = ["Asset credits: " + line for line in _credit_lines(assets)]
    footer.append(f"Generated by inerf {_version()} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    title = f"iNeRF demo: the camera pose of a held-out view of the {title_obj}"
    return write_html_report(out / "report.html", title, sections, intro=intro, footer=footer)


def _start_offset_note(outcomes: list[TargetOutcome], perturbation: Perturbation) -> str:
    """What start errors the table shows, and why: the move itself when the camera turns about its centre;
    with the world origin as the pivot, the arc the camera centre swings along as well."""
    if perturbation.pivot == "camera":
        exact = perturbation.sampling == "exact"
        return "The camera turned about its own centre, so the start errors below are the move itself: " + (
            f"{perturbation.rot_deg:g} degrees and {perturbation.trans:g}."
            if exact
            else f"up to {perturbation.rot_deg:g} degrees and {math.sqrt(3) * perturbation.trans:.3g}."
        )
    radius = max(float(o.target.gt_c2w[:3, 3].norm()) for o in outcomes)
    # A rotation by theta about an axis through the origin moves a point at distance r by at most
    # 2 r sin(theta / 2) (the chord); the shift adds at most its length (sqrt(3) x the per-axis bound).
    shift = perturbation.trans * (1.0 if perturbation.sampling == "exact" else math.sqrt(3))
    largest = 2 * radius * math.sin(math.radians(perturbation.rot_deg) / 2) + shift
    return (
        f"The camera is {radius:.3g} units from the origin, so the rotation alone moves its centre by about "
        f"{radius * math.pi / 180:.2f} per degree: the start translation errors below (camera-centre "
        f"distances, up to {largest:.2f}) are mostly that arc, not the shift."
    )


def _credit_lines(assets: DemoAssets) -> list[str]:
    asset = (assets.scene or {}).get("asset", {})
    if asset.get("attribution"):
        return [asset["attribution"]]
    return [ln.lstrip("- ") for ln in assets.attribution.splitlines() if ln.startswith("- ")]


def _version() -> str:
    from inerf import __version__

    return __version__


# ----------------------------------------------------------------------------------------- the run


def solve_target(
    assets: DemoAssets,
    target: DemoTarget,
    config: PoseConfig,
    seed: int,
    device: torch.device,
    progress: bool = False,
    perturbation: Perturbation = DEMO_PERTURBATION,
) -> tuple[torch.Tensor, PoseTarget, PoseResult]:
    """Move ``target``'s ground truth by ``perturbation`` (:func:`demo_start_pose`) and estimate its pose.

    Returns ``(init_c2w [4, 4] float64, the PoseTarget on device, PoseResult)``. The pixel-sampling seed is
    ``seed`` as well, so a demo run is a pure function of ``(seed, target)``.
    """
    from inerf.pose.solver import PoseTarget, estimate_pose

    run = assets.run
    init = demo_start_pose(target.gt_c2w, seed, target.index, perturbation)
    pt = PoseTarget(
        image=target.image.to(device),
        camera=target.camera.to(device),
        alpha=target.alpha.to(device) if target.alpha is not None else None,
    )
    result = estimate_pose(
        run.model,
        pt,
        init,
        config,
        seeds=seed,
        progress=progress,
        desc=f"iNeRF target {target.index}",
    )
    return init, pt, result


def run_demo(
    out: str | Path = "outputs/demo",
    targets: str | int | Sequence[int] | None = None,
    *,
    device: str | torch.device = "cpu",
    steps: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    config: PoseConfig | None = None,
    n_frames: int = DEMO_FRAMES,
    progress: bool = False,
    assets: DemoAssets | None = None,
    on_target: Callable[[TargetOutcome], None] | None = None,
    perturbation: Perturbation = DEMO_PERTURBATION,
) -> DemoRun:
    """Run the demo: for each chosen target, perturb, solve, write the outputs; then the report.

    Args:
        out: output folder; must be absent or empty unless ``overwrite`` (then the previous demo's own files
            are replaced, anything else in the folder is left alone).
        targets: ``None`` (target 0), an index, indices, or ``"all"`` (see :func:`parse_targets`).
        device: torch device of the solve.
        steps: override ``config.steps``.
        seed: seeds the start perturbations and the pixel sampling.
        config: solver settings (default :data:`DEMO_POSE`).
        n_frames: overlay frames of the convergence GIF/MP4 (0: none).
        progress: show the solver's progress bar.
        assets: preloaded :func:`load_demo` (else loaded from :data:`DEMO_ROOT` onto ``device``).
        on_target: called with each :class:`TargetOutcome` as soon as its files are written.
        perturbation: how each start is drawn from its target's ground truth (:data:`DEMO_PERTURBATION`).
    Returns:
        :class:`DemoRun`.
    Raises:
        InerfError: ``out`` holds an earlier run, a bad target index or step count, missing assets.
    """
    from inerf.geometry import se3
    from inerf.pose.io import camera_to_json, write_json
    from inerf.pose.report import OutputOptions, write_estimate_outputs
    from inerf.pose.sampling import PixelSampler

    t_start = time.perf_counter()
    out = check_out_dir(out, overwrite)  # before loading anything: a refused run costs nothing
    config = config or DEMO_POSE
    if steps is not None:
        if steps < 1:
            raise InerfError(f"--steps must be >= 1, got {steps}")
        config = dataclasses.replace(config, steps=int(steps))
    device = torch.device(device)
    assets = assets or load_demo(device)
    picks = parse_targets(targets, len(assets.targets))
    _prepare_out_dir(out, overwrite)

    outcomes = []
    for i in picks:
        target = assets.targets[i]
        init, pt, result = solve_target(assets, target, config, seed, device, progress, perturbation)
        folder = out if len(picks) == 1 else out / f"target_{i:02d}"
        folder.mkdir(exist_ok=True)
        gt = target.gt_c2w
        sampler = PixelSampler.for_target(pt, config, device="cpu")
        meta = {
            "demo": {
                "target": i,
                "name": target.name,
                "seed": seed,
                "perturbation": dataclasses.asdict(perturbation),
            },
            "intrinsics": camera_to_json(target.camera),
            "config": dataclasses.asdict(config),
        }
        files = write_estimate_outputs(
            folder,
            result,
            pt,
            assets.run.model,
            gt_c2w=gt,
            meta=meta,
            sampler=sampler,
            options=OutputOptions(
                frames=n_frames,
                max_side=max(pt.height, pt.width),
                success=SUCCESS,
            ),
        )
        c2w = result.c2w[0]
        outcome = TargetOutcome(
            target=target,
            init_c2w=init,
            result=result,
            rot_err0=float(se3.rotation_error_deg(init, gt)),
            trans_err0=float(se3.translation_error(init, gt)),
            rot_err=float(se3.rotation_error_deg(c2w, gt)),
            trans_err=float(se3.translation_error(c2w, gt)),
            folder=folder,
            files=files,
        )
        outcomes.append(outcome)
        if on_target is not None:
            on_target(outcome)

    report = _write_report(out, outcomes, assets, config, str(device), seed, n_frames, perturbation)
    written = sorted(
        {p.relative_to(out).parts[0] for o in outcomes for p in o.files.values()} | {"report.html"}
    )
    seconds = time.perf_counter() - t_start
    summary = out / "demo.json"
    write_json(
        summary,
        {
            "targets": [
                {
                    "index": o.target.index,
                    "name": o.target.name,
                    "folder": o.folder.relative_to(out).as_posix() or ".",
                    "init_rotation_error_deg": o.rot_err0,
                    "init_translation_error": o.trans_err0,
                    "rotation_error_deg": o.rot_err,
                    "translation_error": o.trans_err,
                    "recovered": o.recovered,
                    "steps": o.result.steps,
                    "solve_seconds": o.result.seconds,
                }
                for o in outcomes
            ],
            "all_recovered": all(o.recovered for o in outcomes),
            "thresholds": {"rotation_deg": SUCCESS.rot_deg, "translation": SUCCESS.trans},
            "perturbation": dataclasses.asdict(perturbation),
            "seed": seed,
            "device": str(device),
            "config": dataclasses.asdict(config),
            "seconds": seconds,
            "outputs": written,
        },
    )
    return DemoRun(
        out=out,
        outcomes=outcomes,
        report=report,
        summary=summary,
        config=config,
        device=str(device),
        seed=seed,
        seconds=seconds,
    )
