"""Run directories: how a trained field is saved, and how everything else loads it.

A run directory holds::

    config.json        what was trained and how (below); written last, so it marks a complete checkpoint
    model.safetensors  field weights, keys prefixed ``coarse.`` and (when there is one) ``fine.``
    optimizer.pt       Adam state for ``--resume`` (a plain tensor dict: loads with weights_only=True)
    train_log.jsonl    one JSON line per logged step / validation
    metrics.json       the latest metrics (validation PSNR and its step, training PSNR), rewritten at every
                       validation and at every checkpoint, so a run in progress can be watched

``config.json`` keys: ``format`` / ``version``; ``model`` (field kind for
:func:`inerf.fields.factory.build_field`); ``field`` (its config dict); ``fine_field`` (whether a separate
fine field exists: NeRF's two MLPs; grid models share one field between both passes); ``render``
(:class:`RenderConfig` fields for evaluation); ``dataset`` (root, format, scale, background, near, far and
``transform``: how the loader moved the user's world into the training frame); ``train`` (the training
options); ``step``; ``elapsed_s``; ``metrics``; ``convention``. ``metrics`` holds
``val_psnr`` (dB, the validation view rendered with the evaluation settings), ``val_step`` (the step it was
measured at: the last step for a run that finished), ``val_split``, ``val_view`` and ``train_psnr``; the
validation PSNR of the saved weights is read with :func:`validation_psnr`.

Every file is written to ``NAME.tmp`` and moved into place with ``os.replace`` (atomic on POSIX), so a
crash leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inerf.data.image_io import one_line
from inerf.errors import InerfError
from inerf.io_utils import write_json as write_json_atomic  # atomic, NaN as null
from inerf.render.model import Model
from inerf.render.renderer import RenderConfig

__all__ = [
    "CONFIG_NAME",
    "LOG_NAME",
    "LOW_VAL_PSNR_DB",
    "METRICS_NAME",
    "OPTIMIZER_NAME",
    "RUN_FORMAT",
    "RUN_VERSION",
    "WEIGHTS_NAME",
    "DatasetInfo",
    "LoadedRun",
    "commit_files",
    "has_checkpoint",
    "load_run",
    "load_weights",
    "read_run_config",
    "recover_files",
    "render_config_from_dict",
    "save_checkpoint",
    "save_torch_atomic",
    "undertrained_warning",
    "validation_psnr",
    "write_json_atomic",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OPTIMIZER_NAME = "optimizer.pt"
LOG_NAME = "train_log.jsonl"
METRICS_NAME = "metrics.json"
RUN_FORMAT = "inerf.run"
RUN_VERSION = 1


@dataclass
class DatasetInfo:
    """The data a run was trained on (enough to reload the same views for evaluation or pose estimation)."""

    root: str
    """Dataset folder as an absolute path on the machine that trained."""
    format: str
    """``blender`` or ``llff``."""
    scale: float
    """Image scale used for training (intrinsics of other views must be scaled alike)."""
    background: str
    """Background the training images were composited on (``white`` / ``black``)."""
    near: float
    """Ray start used in training (scene units, z-depth)."""
    far: float
    """Ray end used in training."""
    root_relative: str | None = None
    """The dataset folder relative to the run directory, for runs copied together with their data."""
    transform: dict | None = None
    """How the loader moved the user's world into the training frame (:meth:`SceneTransform.to_dict`), so
    poses can be written in the user's original frame; None for runs trained before inerf recorded it."""

    def scene_transform(self):
        """The recorded :class:`~inerf.data.views.SceneTransform`, or None when the run recorded none."""
        from inerf.data.views import SceneTransform

        return None if self.transform is None else SceneTransform.from_dict(self.transform)

    def resolve_root(self, run_dir: str | Path | None = None) -> str:
        """``root`` if it exists, else the run-relative path if that exists, else ``root`` unchanged."""
        if Path(self.root).is_dir() or run_dir is None or not self.root_relative:
            return self.root
        rel = Path(run_dir) / self.root_relative
        return str(rel) if rel.is_dir() else self.root

    def load(self, split: str, run_dir: str | Path | None = None, root: str | Path | None = None, **kwargs):
        """Load ``split`` with this run's scale, background and bounds (``root`` overrides the folder)."""
        from inerf.data import load_dataset

        kw = {"scale": self.scale, "background": self.background, "near": self.near, "far": self.far}
        kw.update(kwargs)
        root = root if root is not None else self.resolve_root(run_dir)
        return load_dataset(root, split, format=self.format, **kw)


@dataclass
class LoadedRun:
    """A trained run ready to render: what :func:`load_run` returns.

    Render with ``run.model.render_rays(rays)`` or ``run.model.render_image(camera)``. The fields are in eval
    mode with ``requires_grad=False`` on their parameters: gradients still flow through them to the rays (a
    camera pose), but the weights stay fixed.
    """

    run_dir: Path
    kind: str
    """Field kind (``nerf`` or ``grid``)."""
    model: Model
    """The coarse field, the fine field (or None when the coarse field serves both passes) and the
    :class:`RenderConfig` used for evaluation (no jitter, deterministic importance samples)."""
    dataset: DatasetInfo
    step: int
    """Optimiser steps the weights have seen."""
    config: dict
    """The whole ``config.json``."""


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds any checkpoint file."""
    d = Path(run_dir)
    return any((d / n).exists() for n in (CONFIG_NAME, WEIGHTS_NAME, OPTIMIZER_NAME))


def read_run_config(run_dir: str | Path) -> dict:
    """Read and check ``config.json`` of a run (one-line :class:`InerfError` on any problem)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise InerfError(f"run directory not found: {d}")
    path = d / CONFIG_NAME
    if not path.is_file() or not (d / WEIGHTS_NAME).is_file():
        raise InerfError(
            f"{d}: no checkpoint here (expected {CONFIG_NAME} and {WEIGHTS_NAME}; train with `inerf train`)"
        )
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InerfError(f"{path}: malformed JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != RUN_FORMAT:
        raise InerfError(f'{path}: not an inerf run config (missing "format": "{RUN_FORMAT}")')
    if cfg.get("version", 0) > RUN_VERSION:
        raise InerfError(
            f"{path}: written by a newer inerf (run format {cfg.get('version')}; this reads {RUN_VERSION})"
        )
    for key in ("model", "field", "render", "dataset", "step"):
        if key not in cfg:
            raise InerfError(f"{path}: missing key {key!r}")
    return cfg


def render_config_from_dict(d: dict) -> RenderConfig:
    """Rebuild a :class:`RenderConfig`, ignoring keys this version does not know (JSON lists -> tuples)."""
    known = {f.name for f in dataclasses.fields(RenderConfig)}
    kw = {k: v for k, v in d.items() if k in known}
    if "background" in kw:
        kw["background"] = tuple(float(v) for v in kw["background"])
    return RenderConfig(**kw)


def _state_dict(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone to plain CPU tensors.
    return {
        f"{prefix}.{k}": v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()
    }


def save_checkpoint(
    run_dir: str | Path,
    config: dict,
    coarse: nn.Module,
    fine: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Write weights, optimizer state and ``config.json`` atomically (config last: it marks completion)."""
    from safetensors.torch import save_file

    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    tensors = _state_dict("coarse", coarse)
    if fine is not None:
        tensors.update(_state_dict("fine", fine))
    tmp = d / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": RUN_FORMAT, "step": str(config.get("step", 0))})
    os.replace(tmp, d / WEIGHTS_NAME)
    if optimizer is not None:
        save_torch_atomic(optimizer.state_dict(), d / OPTIMIZER_NAME)
    write_json_atomic(d / CONFIG_NAME, config)


def _write_torch(obj, path: Path) -> None:
    """``torch.save`` to ``path``, flushed to the disk before returning (so a rename after it is durable)."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_torch_atomic(obj, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` via ``path.tmp`` and ``os.replace``: the old file or the new one,
    never a torn one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    _write_torch(obj, tmp)
    os.replace(tmp, path)
    return path


def commit_files(folder: str | Path, writers: dict, journal: str) -> None:
    """Replace several files of ``folder`` as one group: at any moment, even after a SIGKILL, every file is
    whole, and :func:`recover_files` completes the group or leaves the old one.

    ``writers`` maps each file name to a function writing the new content to the path it is given
    (``NAME.tmp``). Steps:

    1. every ``NAME.tmp`` is written and flushed (the old files are untouched);
    2. ``journal`` (a file listing the names) is written atomically: the commit point;
    3. each ``NAME.tmp`` is renamed onto ``NAME`` in order (``os.replace``, atomic);
    4. the journal is deleted.

    Interrupted before 2, the group is the old one (the stray ``.tmp`` files are deleted by
    :func:`recover_files`); after 2, :func:`recover_files` finishes the renames.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(writers)
    for name in names:
        writers[name](folder / (name + ".tmp"))
    write_json_atomic(folder / journal, {"files": names})
    _roll_forward(folder, names)
    (folder / journal).unlink()


def _roll_forward(folder: Path, names: list[str]) -> None:
    for name in names:
        tmp = folder / (name + ".tmp")
        if tmp.exists():
            os.replace(tmp, folder / name)


def recover_files(folder: str | Path, names: list[str], journal: str) -> bool:
    """Finish or undo a :func:`commit_files` that was interrupted; returns True when one was finished.

    With the journal present, the group was committed: the remaining ``NAME.tmp`` renames are done. Without
    it, ``NAME.tmp`` files of ``names`` are leftovers of an uncommitted write and are deleted.
    """
    folder = Path(folder)
    path = folder / journal
    if path.is_file():
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            listed = None  # torn journal: it was being written, so the group was not committed yet
        if isinstance(listed, list):
            _roll_forward(folder, [str(n) for n in listed])
            path.unlink()
            return True
        path.unlink()
    for name in names:
        (folder / (name + ".tmp")).unlink(missing_ok=True)
    (folder / (journal + ".tmp")).unlink(missing_ok=True)
    return False


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


# PyTorch's wording for a tensor a module refused (the fallback prints the whole error on one line).
_SIZE_MISMATCH = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape "
    r"torch\.Size\((\[[^\]]*\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)


def load_weights(run_dir: str | Path, coarse: nn.Module, fine: nn.Module | None, device="cpu") -> None:
    """Load ``model.safetensors`` into the fields; any missing or unexpected key, or a tensor whose shape
    the field cannot take, is a one-line :class:`InerfError`.

    Shapes are checked by ``load_state_dict`` itself rather than against a fresh field: fields that grow
    during training (grids) adopt the checkpoint's shapes there, and only a shape they refuse is an error.
    """
    from safetensors.torch import load_file

    path = Path(run_dir) / WEIGHTS_NAME
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError for corrupt headers
        raise InerfError(f"{path}: unreadable weights ({one_line(exc)})") from None
    modules = {"coarse": coarse, "fine": fine}
    expected = {f"{name}.{k}" for name, m in modules.items() if m is not None for k in m.state_dict()}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        parts = ([f"missing {_few(missing)}"] if missing else []) + (
            [f"unexpected {_few(unexpected)}"] if unexpected else []
        )
        raise InerfError(f"{path}: checkpoint does not match its config.json: " + "; ".join(parts))
    for name, m in modules.items():
        if m is None:
            continue
        sub = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        try:
            m.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            found = _SIZE_MISMATCH.findall(str(exc))
            if not found:
                raise InerfError(
                    f"{path}: checkpoint does not match its config.json ({one_line(exc)})"
                ) from None
            key, got, want = found[0]
            more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
            raise InerfError(
                f"{path}: checkpoint does not match its config.json: {name}.{key} has "
                f"shape {got} but the model in config.json expects {want}{more}"
            ) from None


def build_fields(cfg: dict, path: Path) -> tuple[nn.Module, nn.Module | None]:
    """Instantiate the (untrained) coarse and fine fields described by a run config."""
    from inerf.fields.factory import build_field

    try:
        coarse = build_field(cfg["model"], cfg["field"])
        fine = build_field(cfg["model"], cfg["field"]) if cfg.get("fine_field", False) else None
    except (TypeError, ValueError, ModuleNotFoundError) as exc:
        raise InerfError(f"{path}: cannot build the {cfg['model']!r} field from its config ({exc})") from None
    return coarse, fine


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a trained run for rendering or pose estimation.

    Args:
        run_dir: a directory written by ``inerf train``.
        device: where to put the fields.
    Returns:
        :class:`LoadedRun` with the coarse field, the fine field (or None), the evaluation
        :class:`RenderConfig`, the model kind, the dataset info and the step.
    Raises:
        InerfError: no checkpoint in ``run_dir``, a malformed config, or weights that do not match it
            (missing or unexpected keys, wrong shapes).
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    path = run_dir / CONFIG_NAME
    coarse, fine = build_fields(cfg, path)
    load_weights(run_dir, coarse, fine, device="cpu")
    for f in (coarse, fine):
        if f is not None:
            f.to(device).eval().requires_grad_(False)
    try:
        render = render_config_from_dict(cfg["render"])
        ds = cfg["dataset"]
        dataset = DatasetInfo(
            root=ds["root"],
            format=ds["format"],
            scale=float(ds["scale"]),
            background=ds["background"],
            near=float(ds["near"]),
            far=float(ds["far"]),
            root_relative=ds.get("root_relative"),
            transform=ds.get("transform"),
        )
        dataset.scene_transform()  # a malformed record fails here, with the file named
    except (KeyError, TypeError, ValueError) as exc:
        raise InerfError(f"{path}: malformed 'render' or 'dataset' entry ({exc})") from None
    return LoadedRun(
        run_dir=run_dir,
        kind=cfg["model"],
        model=Model(coarse, fine, render),
        dataset=dataset,
        step=int(cfg["step"]),
        config=cfg,
    )


LOW_VAL_PSNR_DB = 20.0
"""Validation PSNR (dB) below which ``inerf render`` and ``inerf estimate`` warn that the field is undertrained.

20 dB is an RMS colour error of 0.1, a tenth of the colour range, over the whole validation image: the
object is visibly blurred or misshapen, and the photometric minimum the pose solver descends into no longer
sits at the true pose. Measured ends: a 3-minute field at 13.9 dB turned a 30-degree start into 6.6 degrees
(issue 11), while the fields in BENCHMARKS.md (37-41 dB) recover such starts to a fraction of a degree.
The threshold sits well below the fields that work, so a warning always means a field that is far from
trained, not one that is merely a little less sharp."""


def validation_psnr(run: str | Path | LoadedRun) -> float | None:
    """The validation PSNR (dB) recorded with a run's saved weights, or None when the run recorded none.

    Read from ``metrics.val_psnr`` of ``config.json`` (written with the weights, so it describes them; the
    trainer validates at its last step before the final save). None for runs written before inerf
    recorded it, runs without a validation view (no val or test split) and a non-finite record.

    Args:
        run: a run directory, or a :class:`LoadedRun` (its config is used; nothing is read again).
    Raises:
        InerfError: ``run`` is a path that holds no readable run (see :func:`read_run_config`).
    """
    cfg = read_run_config(run) if isinstance(run, (str, Path)) else run.config  # a loaded run: its config
    metrics = cfg.get("metrics")
    value = metrics.get("val_psnr") if isinstance(metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def undertrained_warning(run: str | Path | LoadedRun, threshold: float = LOW_VAL_PSNR_DB) -> str | None:
    """One line warning that ``run``'s field is undertrained (validation PSNR below ``threshold`` dB), else
    None (also for runs with no recorded validation PSNR: nothing is known, so nothing is said)."""
    psnr = validation_psnr(run)
    if psnr is None or psnr >= threshold:
        return None
    loaded = not isinstance(run, (str, Path))
    run_dir = run.run_dir if loaded else Path(run)
    cfg = run.config if loaded else read_run_config(run)
    step = (cfg.get("metrics") or {}).get("val_step", cfg.get("step"))
    at = f" at step {step}" if step is not None else ""
    return (
        f"warning: {run_dir} scores {psnr:.1f} dB validation PSNR{at}, below {threshold:g} dB: the field is "
        "undertrained, so renders are blurred and pose estimates unreliable (train longer: inerf train --out "
        f"{run_dir} --resume --max-minutes M)"
    )
