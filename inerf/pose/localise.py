"""Localising images against a trained field: one image or many, through one code path.

``inerf estimate --image`` / ``--view`` solve one :class:`Target` with :func:`localise_one`;
``inerf estimate --images 'DIR/*.jpg'`` runs the same function over a list of files with
:func:`localise_images` (one output folder per image, exactly what a single-image call with the same flags
would write) and writes the batch's tables with :func:`write_batch_summary`::

    OUT/IMAGE_STEM/...   each image's outputs (pose.json, trajectory.csv, trace.json, target.png, ...)
    OUT/summary.csv      one row per image: status, loss, steps, seconds, errors (with ground truth), the
                         pose (camera centre and quaternion) in the frame of --pose-frame
    OUT/summary.md       the same as a Markdown table
    OUT/poses/           with --pose-format: every image's pose in those formats

:func:`localise_images` returns plain, JSON-able rows **in the order of its input**, and every image is
solved with the same seed, independently of the others: a caller may split the list over processes (or
``torch.distributed`` ranks), localise each part and concatenate the rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.pose.config import PoseConfig
from inerf.pose.perturb import Perturbation
from inerf.pose.pose_files import PoseOutput, pinhole_of, pose_frames_record, write_pose_files
from inerf.pose.report import OutputOptions
from inerf.pose.solver import PoseResult, PoseTarget
from inerf.render.model import Model

__all__ = [
    "Localised",
    "Localiser",
    "Target",
    "folder_names",
    "ground_truth_lookup",
    "image_paths",
    "localise_images",
    "localise_one",
    "read_image_target",
    "write_batch_summary",
]


@dataclass
class Localiser:
    """What every image of one call shares: the field, the solver and what to write.

    Attributes:
        model: the frozen fields and their render settings.
        config: the solver (with ``global_config``: the refinement's solver).
        device: where the solves run.
        options: frames, video and plot settings of each image's folder.
        pose_output: ``--pose-format`` / ``--pose-frame`` and the run's recorded scene transform.
        global_config: set for global localisation (no initial pose); then ``prior`` is needed.
        prior: where the scene's cameras are (:class:`~inerf.pose.global_search.CameraPrior`).
        uncertainty: the covariance settings, or None for none.
        model_error: the run's model-error term (:class:`~inerf.pose.calibration.ModelError`, from
            ``RUN/calibration.json``) added to every covariance, or None.
        hypotheses: starts per image (the initial pose and random poses around it).
        spread_rot, spread_trans: range of the extra hypotheses (degrees, scene units).
        perturbation: how a start is drawn from the ground truth (:class:`~inerf.pose.perturb.Perturbation`;
            the same start as ``inerf demo`` and ``inerf benchmark pose`` draw for that view index).
        seed: seeds the pixel sampling and the random starts, the same for every image.
        meta: entries added to every ``pose.json`` (run, tf32, ...).
        references: the retrieval reference views of global localisation, rendered for the first image and
            reused for the others (a :class:`~inerf.pose.global_search.ReferenceCache`, made on first use).
    """

    model: Model
    config: PoseConfig
    device: torch.device
    options: OutputOptions = field(default_factory=OutputOptions)
    pose_output: PoseOutput = field(default_factory=PoseOutput)
    global_config: object | None = None
    prior: object | None = None
    uncertainty: object | None = None
    model_error: object | None = None
    hypotheses: int = 1
    spread_rot: float = 30.0
    spread_trans: float = 0.1
    perturbation: Perturbation = field(default_factory=lambda: Perturbation(0.0, 0.0))
    seed: int = 0
    meta: dict = field(default_factory=dict)
    references: object | None = None


@dataclass
class Target:
    """One image to localise.

    Attributes:
        image: ``[H, W, 3]`` float32 in [0, 1], composited on the field's background (undistorted).
        alpha: ``[H, W]`` coverage for ``mask`` sampling, or None.
        camera: its pinhole camera (the c2w is ignored: it is what is sought).
        name: what reports call it (the file name, or ``split[i] name``).
        gt: ``[4, 4]`` ground-truth OpenCV c2w in the training frame, or None.
        init: ``[4, 4]`` initial c2w; None with ``init_from_gt`` (the ground truth moved by the localiser's
            perturbation) or global localisation.
        init_from_gt: start from ``gt`` moved by the localiser's ``perturbation``.
        index: the target's index for the start drawn from the ground truth (``--view``, or the image's
            position in a batch).
        source: extra facts for ``pose.json`` (e.g. the undistortion applied).
        file_name: the image's name in the pose files (COLMAP, nerfstudio; default ``name``).
    """

    image: torch.Tensor
    alpha: torch.Tensor | None
    camera: Cameras
    name: str
    gt: torch.Tensor | None = None
    init: torch.Tensor | None = None
    init_from_gt: bool = False
    source: dict = field(default_factory=dict)
    file_name: str = ""
    index: int = 0


@dataclass
class Localised:
    """The outcome of :func:`localise_one`."""

    result: PoseResult
    """The solve (one problem)."""
    config: PoseConfig
    """The solver settings actually used (global localisation adds its pruning)."""
    found: object | None
    """The :class:`~inerf.pose.global_search.GlobalResult` of a global localisation, else None."""
    uncertainty: object | None
    """The :class:`~inerf.pose.uncertainty.PoseUncertainty` of the estimate, or None."""
    paths: dict
    """The files written, by name."""
    row: dict
    """The estimate's summary row (see :func:`summary_row`)."""


def _starts(loc: Localiser, target: Target) -> torch.Tensor:
    """``[K, 4, 4]`` start poses: the initial pose, then random poses around it."""
    from inerf.geometry.conventions import check_rigid
    from inerf.pose.perturb import perturb, spread, start_pose

    if target.init_from_gt:
        if target.gt is None:
            raise InerfError(f"{target.name}: a start from the ground truth needs a ground truth")
        init = start_pose(target.gt.double(), loc.perturbation, loc.seed, target.index)
    elif target.init is not None:
        init = check_rigid(target.init, "initial pose").double()
    else:
        raise InerfError(f"{target.name}: no initial pose (give one, or localise globally)")
    starts = init[None]
    if loc.hypotheses > 1:
        gen = torch.Generator().manual_seed(loc.seed)
        around = spread(loc.spread_rot, loc.spread_trans)
        starts = torch.cat([starts, perturb(init, around, gen, (loc.hypotheses - 1,))])
    return starts


def _solve(loc: Localiser, pt: PoseTarget, target: Target, progress: bool):
    """``(result, config, found)``: the solve of one target, global or from its starts."""
    from inerf.pose.solver import estimate_pose

    if loc.global_config is not None:
        from inerf.pose.global_search import ReferenceCache, localize

        if loc.global_config.retrieval and loc.references is None:
            loc.references = ReferenceCache()
        found = localize(
            loc.model,
            pt,
            loc.prior,
            loc.global_config,
            loc.config,
            seed=loc.seed,
            progress=progress,
            references=loc.references,
        )
        return found.result, found.pose_config, found
    result = estimate_pose(
        loc.model, pt, _starts(loc, target), loc.config, seeds=loc.seed, progress=progress, desc="iNeRF"
    )
    return result, loc.config, None


def localise_one(loc: Localiser, target: Target, out: str | Path, *, progress: bool = False) -> Localised:
    """Solve the pose of one target and write its outputs into ``out`` (an existing, empty folder).

    Writes what :func:`inerf.pose.report.write_estimate_outputs` writes, with ``pose.json`` stating the
    frame, both camera conventions and the original-frame pose (:func:`pose_frames_record`), and, with
    ``loc.pose_output.formats``, the pose files under ``out/poses/``.
    """
    from inerf.pose.io import camera_to_json
    from inerf.pose.report import convergence_verdict, write_estimate_outputs
    from inerf.pose.sampling import PixelSampler

    out = Path(out)
    pt = PoseTarget(
        image=target.image.to(loc.device),
        camera=target.camera.to(loc.device),
        alpha=target.alpha.to(loc.device) if target.alpha is not None else None,
    )
    result, config, found = _solve(loc, pt, target, progress)
    uncertainty = None
    if loc.uncertainty is not None and result.status[0] == "ok":
        from inerf.pose.uncertainty import pose_uncertainty

        uncertainty = pose_uncertainty(
            loc.model,
            pt,
            result.c2w[0],
            loc.uncertainty,
            seed=loc.seed,
            solver=config,
            model_error=loc.model_error,
        )
    sampler = PixelSampler(
        pt.height, pt.width, config.n_rays, config.sampling, image=pt.image, alpha=pt.alpha, device="cpu"
    )
    meta = {
        "target": target.name,
        **pose_frames_record(result.c2w[0], loc.pose_output),
        **loc.meta,
        "intrinsics": camera_to_json(target.camera),
        **target.source,
        "config": asdict(config),
    }
    if found is not None:
        meta["global"] = found.record()
    gt = target.gt.double() if target.gt is not None else None
    options = replace(loc.options, loss=config.loss)
    paths = write_estimate_outputs(
        out,
        result,
        pt,
        loc.model,
        gt_c2w=gt,
        meta=meta,
        sampler=sampler,
        uncertainty=uncertainty,
        options=options,
    )
    intr = pinhole_of(target.camera)
    name = target.file_name or target.name
    paths.update(write_pose_files(out, result.c2w[0], loc.pose_output, names=[name], intrinsics=intr))
    row = summary_row(result, gt, loc.pose_output, name, uncertainty=uncertainty)
    row["intrinsics"] = camera_to_json(target.camera)
    row["verdict"] = convergence_verdict(float(result.loss[0]), config.loss, options.field_mse)["verdict"]
    return Localised(result, config, found, uncertainty, paths, row)


def summary_row(result: PoseResult, gt, output: PoseOutput, name: str, *, uncertainty=None) -> dict:
    """One row of the batch table (JSON-able): image, status, loss, steps, seconds, the pose in the frame
    of ``output`` (centre ``tx, ty, tz`` and quaternion ``qw, qx, qy, qz`` of the OpenCV c2w), errors with a
    ground truth, 1-sigma values with an uncertainty; ``c2w_training`` keeps the training-frame c2w."""
    from inerf.geometry import se3
    from inerf.geometry.formats import matrix_to_quaternion

    c2w = result.c2w[0].double()
    shown = output.to_written_frame(c2w)
    q = matrix_to_quaternion(shown[:3, :3].numpy())
    row = {
        "image": name,
        "status": result.status[0],
        "loss": float(result.loss[0]),
        "steps": int(result.steps),
        "seconds": float(result.seconds),
        "frame": output.written_frame,
        **{k: float(v) for k, v in zip(("tx", "ty", "tz"), shown[:3, 3].tolist())},
        **{k: float(v) for k, v in zip(("qw", "qx", "qy", "qz"), q.tolist())},
    }
    if gt is not None:
        hyp = int(result.hypothesis[0])
        start = result.init_c2w[0, hyp]
        row.update(
            {
                "rot_err_deg": float(se3.rotation_error_deg(c2w, gt)),
                "trans_err": float(se3.translation_error(c2w, gt)),
                "init_rot_err_deg": float(se3.rotation_error_deg(start, gt)),
                "init_trans_err": float(se3.translation_error(start, gt)),
            }
        )
    if uncertainty is not None:
        row.update(
            {"rot_sigma_deg": uncertainty.rotation_sigma_deg, "trans_sigma": uncertainty.translation_sigma}
        )
    row["c2w_training"] = [[float(x) for x in r] for r in c2w.tolist()]
    return row


# ---- many images ------------------------------------------------------------------------------------------


def folder_names(paths: list[Path]) -> list[str]:
    """One output folder name per image: its stem, ``stem-2``, ``stem-3``, ... when stems repeat (in list
    order, so the names of a list do not depend on how it is later split)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def image_paths(pattern: str, flag: str = "--images") -> list[Path]:
    """The images of a glob pattern (``'photos/*.jpg'``; ``**`` recurses) or of a folder, in natural order
    of their paths (``img2`` before ``img10``, folder by folder); one-line :class:`InerfError` when none
    match."""
    import glob

    from inerf.data.image_io import IMAGE_EXTENSIONS
    from inerf.pose.track_io import image_files, natural_key

    if Path(pattern).is_dir():
        return image_files(pattern, flag)
    found = [Path(p) for p in glob.glob(pattern, recursive=True)]
    files = sorted(
        (p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: [natural_key(Path(part)) for part in p.parts],
    )
    if not files:
        what = f"{len(found)} matches, none a PNG or JPG image" if found else "no file matches"
        raise InerfError(f"{flag} {pattern}: {what} (quote the pattern so the shell does not expand it)")
    return files


def ground_truth_lookup(path: str | Path, images: list[Path], flag: str = "--gt-poses") -> Callable:
    """``gt_for(image) -> [4, 4] c2w`` from a file of ground-truth poses (OpenCV c2w, in the file's frame).

    Files that name their images (Blender / nerfstudio ``transforms*.json``, COLMAP ``images.txt``,
    inerf's ``trajectory.json`` and pose JSONs) are matched by file stem (``test/r_3`` and ``r_3.png`` are
    one image); TUM and KITTI files give one pose per image, in the order of ``images``. Every image must
    find its pose (one-line :class:`InerfError` naming the file and the image otherwise).
    """
    from inerf.pose.track_io import read_named_poses

    path = Path(path)
    c2w, names = read_named_poses(path, flag)
    if names is None or not any(names):
        if len(c2w) != len(images):
            raise InerfError(
                f"{flag} {path}: {len(c2w)} poses without image names for {len(images)} images (a TUM or "
                "KITTI file needs one pose per image, in the images' order)"
            )
        table = {Path(p): c2w[i] for i, p in enumerate(images)}
        return lambda image: table[Path(image)]
    by_stem: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_stem.setdefault(Path(n).stem, []).append(i)
    table = {}
    for p in images:
        hits = by_stem.get(Path(p).stem, [])
        if len(hits) != 1:
            why = "no pose for" if not hits else f"{len(hits)} poses named like"
            raise InerfError(f"{flag} {path}: {why} the image {Path(p).name}")
        table[Path(p)] = c2w[hits[0]]
    return lambda image: table[Path(image)]


def read_image_target(path: str | Path, camera_for: Callable, background, name: str | None = None) -> Target:
    """An image file as a :class:`Target`: read, undistorted when its camera has a lens, composited on the
    field's ``background``.

    Args:
        camera_for: ``camera_for(width, height) -> (Cameras, Undistorter or None)`` (the intrinsics flags).
    """
    from inerf.data.image_io import read_image
    from inerf.pose.io import composite_target

    path = Path(path)
    raw = read_image(path)
    camera, undistorter = camera_for(raw.shape[1], raw.shape[0])
    source = {}
    if undistorter is not None:
        raw = undistorter.image(raw)
        source["undistorted"] = undistorter.record()
    image, alpha = composite_target(raw, background)
    return Target(image, alpha, camera, name or str(path), source=source, file_name=path.name)


def localise_images(
    loc: Localiser,
    paths: list[str | Path],
    out_root: str | Path,
    *,
    camera_for: Callable,
    init: torch.Tensor | None = None,
    gt_for: Callable | None = None,
    init_from_gt: bool = False,
    folders: list[str] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Localise every image of ``paths``; each gets its folder ``out_root/FOLDER`` (created here).

    Args:
        camera_for: ``camera_for(width, height) -> (Cameras, Undistorter or None)``.
        init: the initial c2w of every image (None: ``init_from_gt`` or global localisation).
        gt_for: ``gt_for(path) -> [4, 4] c2w or None``, the ground truth in the training frame.
        folders: output folder names, one per path (default :func:`folder_names` of ``paths``; pass the
            names of the whole list when localising a part of it).
        progress: one progress bar over the images.
    Returns:
        One row per image, in the order of ``paths`` (see :func:`summary_row`; plus ``folder``).
    """
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    folders = folders if folders is not None else folder_names(paths)
    if len(folders) != len(paths):
        raise ValueError(f"{len(paths)} images but {len(folders)} folder names")
    rows = []
    bar = tqdm(total=len(paths), desc="localise", unit="image", disable=not progress, dynamic_ncols=True)
    try:
        for path, folder in zip(paths, folders, strict=True):
            # index 0 for every image: each is solved exactly as `inerf estimate --image` solves it alone
            target = read_image_target(path, camera_for, loc.model.config.background, name=path.name)
            target.gt = gt_for(path) if gt_for is not None else None
            target.init, target.init_from_gt = init, init_from_gt
            out = Path(out_root) / folder
            out.mkdir(parents=True, exist_ok=False)
            row = localise_one(loc, target, out).row
            row["folder"] = folder
            rows.append(row)
            bar.set_postfix_str(f"{path.name}: loss {row['loss']:.2e}", refresh=False)
            bar.update()
    finally:
        bar.close()
    return rows


_CSV_COLUMNS = (
    "image",
    "folder",
    "status",
    "verdict",
    "loss",
    "steps",
    "seconds",
    "rot_err_deg",
    "trans_err",
    "init_rot_err_deg",
    "init_trans_err",
    "rot_sigma_deg",
    "trans_sigma",
    "frame",
    "tx",
    "ty",
    "tz",
    "qw",
    "qx",
    "qy",
    "qz",
)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def _markdown(rows: list[dict], frame: str) -> str:
    has_gt = any("rot_err_deg" in r for r in rows)
    head = ["image", "status", "loss", "time (s)"]
    head += ["rot. error (deg)", "trans. error"] if has_gt else []
    head += ["position (tx, ty, tz)"]
    lines = [f"Pose estimates ({len(rows)} images); positions in the {frame}.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["image"], r["status"], f"{r['loss']:.3e}", f"{r['seconds']:.1f}"]
        if has_gt:
            cells += [f"{r['rot_err_deg']:.3f}", f"{r['trans_err']:.4f}"] if "rot_err_deg" in r else ["", ""]
        cells.append(f"{r['tx']:.4f}, {r['ty']:.4f}, {r['tz']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    if has_gt:
        import numpy as np

        rot = np.array([r["rot_err_deg"] for r in rows if "rot_err_deg" in r])
        trans = np.array([r["trans_err"] for r in rows if "trans_err" in r])
        median = f"{np.median(rot):.3f} deg, {np.median(trans):.4f}"
        lines += ["", f"Error: median {median}; max {rot.max():.3f} deg, {trans.max():.4f}."]
    total = sum(r["seconds"] for r in rows)
    lines += ["", f"Solve time: {total:.1f} s in all, {total / max(len(rows), 1):.1f} s per image."]
    return "\n".join(lines) + "\n"


def write_batch_summary(out: str | Path, rows: list[dict], pose_output: PoseOutput) -> dict[str, Path]:
    """``summary.csv``, ``summary.md`` and (with ``pose_output.formats``) every pose under ``out/poses/``."""
    from inerf.geometry.formats import PinholeIntrinsics

    out = Path(out)
    paths = {"csv": out / "summary.csv", "markdown": out / "summary.md"}
    columns = [c for c in _CSV_COLUMNS if any(c in r for r in rows)]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r.get(c)) for c in columns])
    paths["markdown"].write_text(_markdown(rows, pose_output.describe()), encoding="utf-8")
    if pose_output.formats and rows:
        c2w = torch.tensor([r["c2w_training"] for r in rows], dtype=torch.float64)
        intr = [
            PinholeIntrinsics(k["fx"], k["fy"], k["cx"], k["cy"], int(k["width"]), int(k["height"]))
            for k in (r["intrinsics"] for r in rows)
        ]
        names = [r["image"] for r in rows]
        paths.update(write_pose_files(out, c2w, pose_output, names=names, intrinsics=intr))
    return paths
