"""Fit a radiance field to posed images (NeRF, Mildenhall et al. 2020, §5.3).

Each step renders ``rays_per_batch`` rays drawn uniformly from every pixel of every training image and
minimises the squared colour error of the coarse and the fine pass (NeRF's loss), with Adam and an
exponentially decaying learning rate. The rays of all training pixels are precomputed once on the
device; a batch is an index draw and a gather.

The learning-rate schedule runs over the *budget* of the run: ``lr(p) = lr0 (lr_final / lr0)^p`` with
progress ``p = max(step / max_steps, elapsed / max_minutes)``, so a run limited by time (benchmarks)
anneals fully just as one limited by steps does. Budgets are totals over the run, ``--resume`` included.

Fields with training hooks (the grid field) get them called here, found by duck typing so the trainer
needs no per-field code: ``param_groups(lr)`` (per-group learning-rate ratios, kept through the decay),
``on_train_step(step)`` before each step (occupancy updates, upsampling; True means the parameters were
replaced and the optimiser is rebuilt), ``regularization()`` added to the loss, and
``samples_per_ray(near, far)`` for the sample count when none is given.

Several processes (``torchrun --nproc_per_node N -m inerf.cli.main -- train ...``, :mod:`inerf.distributed`)
train one model as one process would with the same global batch: every rank draws the whole batch of
``rays_per_batch`` pixel indices from the same seeded generator and renders its contiguous slice of it,
with the random sample offsets one process would give those rays (:class:`inerf.tensors.RowSlice`); each
rank's loss is its slice's share of the batch mean, so DistributedDataParallel's average of the gradients
is the one-process gradient, and every rank takes the same Adam step. State changed outside the step (the
grid field's occupancy grid and re-gridded planes, at steps fixed by its schedule) is copied from rank 0.
Rank 0 alone validates, logs, shows the progress bar and writes checkpoints; a checkpoint holds nothing
that depends on the number of processes (the batch is the global batch, the generator is re-seeded from
the step), so a run resumes on any number of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from inerf import __version__, distributed
from inerf.data import ViewSet, detect_format, load_dataset
from inerf.device import resolve_device
from inerf.errors import InerfError
from inerf.fields.factory import FIELD_KINDS, build_field, field_config_dict
from inerf.geometry.conventions import CONVENTION
from inerf.rays.rays import Rays, rays_for_image
from inerf.render.renderer import RenderConfig, render_image, render_rays
from inerf.tensors import RowSlice
from inerf.train.checkpoint import (
    CONFIG_NAME,
    LOG_NAME,
    METRICS_NAME,
    OPTIMIZER_NAME,
    RUN_FORMAT,
    RUN_VERSION,
    WEIGHTS_NAME,
    DatasetInfo,
    has_checkpoint,
    load_weights,
    read_run_config,
    render_config_from_dict,
    save_checkpoint,
    write_json_atomic,
)

__all__ = [
    "MODEL_PRESETS",
    "PRECISIONS",
    "ModelPreset",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingRays",
    "base_field_config",
    "learning_rate",
    "precision_context",
    "progress_bar",
    "resolve_device",
    "train",
]

PRECISIONS = ("auto", "fp32", "tf32", "bf16")


@dataclass(frozen=True)
class ModelPreset:
    """Per-model defaults that differ between an MLP and a grid."""

    lr: float
    """Initial learning rate (of the grids, for a grid field; its network keeps its configured ratio)."""
    lr_final: float
    """Learning rate at the end of the budget."""
    fine_field: bool
    """Train a separate field for the fine pass (NeRF's two MLPs); else one field serves both passes."""
    adam_eps: float
    """Adam's epsilon."""
    n_coarse: int | None
    """Stratified samples per ray; None asks the field (``samples_per_ray``), updated as the grid grows."""
    n_fine: int
    """Importance samples per ray for the fine pass."""


MODEL_PRESETS = {
    # NeRF's published schedule (5e-4 decaying tenfold over the run) and sampling (64 + 128).
    "nerf": ModelPreset(lr=5e-4, lr_final=5e-5, fine_field=True, adam_eps=1e-8, n_coarse=64, n_fine=128),
    # TensoRF's: grids at 2e-2 decaying tenfold; one dense pass at half-voxel spacing, empty space skipped.
    "grid": ModelPreset(lr=2e-2, lr_final=2e-3, fine_field=False, adam_eps=1e-8, n_coarse=None, n_fine=0),
}


def base_field_config(kind: str, device: torch.device) -> dict:
    """Field config before ``--field`` overrides: the dataclass defaults, except grids on the CPU, which
    start from :meth:`GridConfig.cpu` (coarser grids and an earlier schedule sized for a few cores)."""
    if kind == "grid" and device.type == "cpu":
        from inerf.fields.grid import GridConfig

        return dataclasses.asdict(GridConfig.cpu())
    return {}


@dataclass
class TrainConfig:
    """Options of a training run (``inerf train``); their docstrings are the CLI's help texts."""

    data: str | None = None
    """Dataset folder (Blender transforms_*.json or LLFF poses_bounds.npy). With --resume, defaults to the
    run's own dataset."""
    out: str = "runs/nerf"
    """Run directory to write (config.json, model.safetensors, optimizer.pt, train_log.jsonl)."""
    model: str = "nerf"
    """Field kind: nerf (the NeRF MLP, separate coarse and fine networks) or grid (TensoRF-style grid
    field with empty-space skipping, one field for both passes)."""
    field: dict = field(default_factory=dict)
    """Overrides of the field's config dataclass (e.g. {"width": 64} for a smaller NeRF). Grids on the
    CPU start from GridConfig.cpu()."""
    max_steps: int = 200_000
    """Stop after this many optimiser steps (total for the run)."""
    max_minutes: float | None = None
    """Stop after this many minutes of training (wall clock of the training steps, not counting
    validation and checkpoints; total for the run, --resume included); the learning-rate schedule then
    anneals over this budget."""
    lr: float | None = None
    """Initial learning rate (default: 5e-4 for nerf, 2e-2 for the grids of a grid field)."""
    lr_final: float | None = None
    """Final learning rate, reached by exponential decay at the end of the budget (default: lr / 10)."""
    rays_per_batch: int | None = None
    """Rays per step (default: 4096 on CUDA, 1024 on the CPU); under torchrun, the global batch, split over
    the processes."""
    n_coarse: int | None = None
    """Stratified samples per ray, coarse pass (default: 64 for nerf; for grid, half-voxel spacing,
    updated as the grid is upsampled)."""
    n_fine: int | None = None
    """Importance samples per ray added for the fine pass (default: 128 for nerf, 0 for grid; 0 = coarse
    pass only)."""
    image_scale: float = 1.0
    """Scale of the training images (0.5 = 200x200 for 400x400 Blender scenes); intrinsics scale alike."""
    background: str = "white"
    """Background RGBA images are composited on and the renderer fills empty space with: white or black."""
    near: float | None = None
    """Override the dataset's near bound (scene units)."""
    far: float | None = None
    """Override the dataset's far bound (scene units)."""
    val_every: int = 1000
    """Render the validation view and log its PSNR every this many steps (0: only at the end)."""
    val_view: int = 0
    """Index of the validation view in the val split (test split if there is no val split)."""
    save_every: int = 5000
    """Write a checkpoint every this many steps (and always at the end)."""
    log_every: int = 100
    """Update the progress bar's loss/PSNR and append to train_log.jsonl every this many steps."""
    precrop_steps: int = 0
    """Draw rays only from the central part of the images for this many first steps (NeRF uses 500 on
    Blender scenes to avoid collapsing to the white background)."""
    precrop_frac: float = 0.5
    """Side of that central part, as a fraction of the image side."""
    chunk: int = 8192
    """Rays per forward pass when rendering the validation view."""
    seed: int = 0
    """Random seed (weights initialisation and ray sampling)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto (CUDA when available)."""
    precision: str = "auto"
    """fp32; tf32 (TF32 matmuls on CUDA); bf16 (autocast the fields to bfloat16); auto = tf32 on CUDA,
    fp32 on the CPU."""
    resume: bool = False
    """Continue the run in --out from its checkpoint (model, field, sampling and dataset settings come from
    its config.json)."""
    overwrite: bool = False
    """Start afresh even if --out already holds a checkpoint (its checkpoint files are replaced)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class TrainResult:
    """What :func:`train` did."""

    run_dir: Path
    step: int
    """Optimiser steps done in total."""
    elapsed_s: float
    """Wall-clock time of the training steps in total (all sessions; validation and saving excluded)."""
    val_psnr: float | None
    """PSNR of the validation view at the end (dB)."""
    val_psnr_start: float | None
    """PSNR of the validation view before this session's first step (dB)."""
    train_psnr: float | None
    """PSNR of the fine pass on the last logged training batches (dB)."""
    history: list = field(default_factory=list)
    """``{"step", "val_psnr"}`` entries of this session."""


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """Numerics of the field evaluations: TF32 matmuls, bf16 autocast, or plain float32.

    bf16 autocast only lowers matmul-type ops; the volume-rendering ops (exp, cumsum, sums) run in
    float32 under autocast, which keeps transmittance accurate.
    """
    if precision == "auto":
        precision = "tf32" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise InerfError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision in ("tf32", "bf16")
    try:
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def learning_rate(lr0: float, lr_final: float, progress: float) -> float:
    """Exponential decay lr0 -> lr_final as ``progress`` goes 0 -> 1 (clamped)."""
    p = min(max(progress, 0.0), 1.0)
    return lr0 * (lr_final / lr0) ** p


class TrainingRays:
    """Every pixel of a :class:`ViewSet` as a ray, resident on the device.

    Stores ``directions [P, 3]`` and target ``rgb [P, 3]`` for the ``P = N H W`` pixels in (image, row,
    column) order; a ray's origin is its camera centre, looked up from ``P // (H W)`` so it is not stored
    ``H W`` times.
    """

    def __init__(self, views: ViewSet, device: torch.device):
        cams = views.cameras.to(device)
        self.height, self.width = views.height, views.width
        self.per_image = views.height * views.width
        self.centers = cams.c2w[:, :3, 3].contiguous()  # [N, 3]
        self.directions = torch.cat([rays_for_image(cams, i).directions for i in range(len(cams))])
        self.rgb = views.images.to(device=device, dtype=torch.float32).reshape(-1, 3)

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[Rays, torch.Tensor]:
        """Rays ``[B]`` and their target colours ``[B, 3]`` for flat pixel indices ``idx`` ``[B]``."""
        d = self.directions[idx]
        return Rays(self.centers[idx // self.per_image], d, d / d.norm(dim=-1, keepdim=True)), self.rgb[idx]

    def center_indices(self, frac: float) -> torch.Tensor:
        """Flat indices of the pixels in the central ``frac x frac`` part of every image."""
        dh, dw = int(self.height * (1 - frac) / 2), int(self.width * (1 - frac) / 2)
        rows = torch.arange(dh, self.height - dh, device=self.rgb.device)
        cols = torch.arange(dw, self.width - dw, device=self.rgb.device)
        in_image = (rows[:, None] * self.width + cols[None, :]).reshape(-1)
        n_images = len(self) // self.per_image
        starts = torch.arange(n_images, device=self.rgb.device) * self.per_image
        return (starts[:, None] + in_image[None, :]).reshape(-1)


def _prepare_run_dir(cfg: TrainConfig) -> dict | None:
    """Check that writing into ``cfg.out`` is allowed; return the saved config when resuming."""
    out = Path(cfg.out)
    if cfg.resume and cfg.overwrite:
        raise InerfError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise InerfError(f"{out}: exists and is not a directory")
    if cfg.resume:
        return read_run_config(out)
    if has_checkpoint(out):
        if not cfg.overwrite:
            step = ""
            with contextlib.suppress(Exception):
                step = f" (step {json.loads((out / CONFIG_NAME).read_text())['step']})"
            raise InerfError(
                f"{out}: already holds a checkpoint{step}; pass --resume to continue it or "
                "--overwrite to start again"
            )
        for name in (CONFIG_NAME, WEIGHTS_NAME, OPTIMIZER_NAME, LOG_NAME, METRICS_NAME):
            (out / name).unlink(missing_ok=True)
    return None


RESUMED_SETTINGS = (
    "max_steps",
    "max_minutes",
    "lr",
    "lr_final",
    "rays_per_batch",
    "precrop_steps",
    "precrop_frac",
    "val_every",
    "val_view",
    "save_every",
    "log_every",
    "chunk",
    "seed",
    "precision",
)
"""Training settings that a resumed run keeps from its own config unless given again: the budgets, because
the learning-rate schedule anneals over them (a default budget on resume would jump the rate back up)."""


def _inherit_schedule(cfg: TrainConfig, saved_train: dict) -> TrainConfig:
    """``cfg`` with every :data:`RESUMED_SETTINGS` entry still at its default taken from the saved run."""
    defaults = TrainConfig()
    updates = {
        k: saved_train[k]
        for k in RESUMED_SETTINGS
        if k in saved_train and getattr(cfg, k) == getattr(defaults, k)
    }
    out = replace(cfg, **updates)
    _validate_config(out)
    return out


def _load_validation_view(root: str, fmt: str, view: int, **kw) -> ViewSet | None:
    """View ``view`` of the val split (the test split when there is no val split); None if neither exists."""
    if fmt == "blender":
        split = next((s for s in ("val", "test") if (Path(root) / f"transforms_{s}.json").is_file()), None)
        if split is None:
            return None
    else:
        split = "test"  # LLFF's held-out views double as validation views, as in NeRF
    views = load_dataset(root, split, format=fmt, max_views=view + 1, **kw)
    if view >= len(views):
        raise InerfError(f"--val-view {view}: the {split} split has only {len(views)} views")
    alphas = None if views.alphas is None else views.alphas[view : view + 1]
    return ViewSet(
        views.images[view : view + 1],
        alphas,
        views.cameras[view],
        views.near,
        views.far,
        views.background,
        views.names[view : view + 1],
        views.root,
        split,
    )


def _validate_config(cfg: TrainConfig) -> None:
    if cfg.model not in FIELD_KINDS:
        raise InerfError(f"unknown model {cfg.model!r}; expected one of {', '.join(FIELD_KINDS)}")
    if cfg.background not in ("white", "black"):
        raise InerfError(f"--background must be white or black, got {cfg.background!r}")
    checks = [
        ("--max-steps", cfg.max_steps, cfg.max_steps >= 1),
        ("--max-minutes", cfg.max_minutes, cfg.max_minutes is None or cfg.max_minutes > 0),
        ("--lr", cfg.lr, cfg.lr is None or cfg.lr > 0),
        ("--lr-final", cfg.lr_final, cfg.lr_final is None or cfg.lr_final > 0),
        ("--rays-per-batch", cfg.rays_per_batch, cfg.rays_per_batch is None or cfg.rays_per_batch >= 1),
        ("--n-coarse", cfg.n_coarse, cfg.n_coarse is None or cfg.n_coarse >= 2),
        ("--n-fine", cfg.n_fine, cfg.n_fine is None or cfg.n_fine >= 0),
        ("--image-scale", cfg.image_scale, cfg.image_scale > 0),
        ("--val-every", cfg.val_every, cfg.val_every >= 0),
        ("--save-every", cfg.save_every, cfg.save_every >= 0),
        ("--log-every", cfg.log_every, cfg.log_every >= 1),
        ("--precrop-frac", cfg.precrop_frac, 0 < cfg.precrop_frac <= 1),
        ("--chunk", cfg.chunk, cfg.chunk >= 1),
    ]
    for name, value, ok in checks:
        if not ok:
            raise InerfError(f"{name}: invalid value {value!r}")
    if cfg.precision not in PRECISIONS:
        raise InerfError(f"unknown precision {cfg.precision!r}; expected one of {', '.join(PRECISIONS)}")


@dataclass
class _RunPlan:
    """What a session trains: from the command line for a new run, from config.json when resuming."""

    kind: str
    field_config: dict
    fine_field: bool
    root: str
    format: str | None
    scale: float
    background: str
    near: float | None
    far: float | None
    n_coarse: int | None
    """None: ask the field (``samples_per_ray``) now and whenever it is re-gridded."""
    n_fine: int
    eval_render: RenderConfig | None
    step: int
    elapsed_s: float
    metrics: dict


def _plan(cfg: TrainConfig, saved: dict | None, run_dir: Path, device: torch.device) -> _RunPlan:
    if saved is None:
        if cfg.data is None:
            raise InerfError("--data is required (the dataset folder to train on)")
        preset = MODEL_PRESETS[cfg.model]
        n_fine = preset.n_fine if cfg.n_fine is None else cfg.n_fine
        return _RunPlan(
            kind=cfg.model,
            field_config={**base_field_config(cfg.model, device), **cfg.field},
            fine_field=preset.fine_field and n_fine > 0,
            root=cfg.data,
            format=None,
            scale=cfg.image_scale,
            background=cfg.background,
            near=cfg.near,
            far=cfg.far,
            n_coarse=preset.n_coarse if cfg.n_coarse is None else cfg.n_coarse,
            n_fine=n_fine,
            eval_render=None,
            step=0,
            elapsed_s=0.0,
            metrics={},
        )
    try:
        ds = saved["dataset"]
        info = DatasetInfo(
            **{
                k: ds.get(k)
                for k in ("root", "format", "scale", "background", "near", "far", "root_relative")
            }
        )
        if saved["model"] not in MODEL_PRESETS:
            raise ValueError(f"unknown model {saved['model']!r}")
        render = render_config_from_dict(saved["render"])
        auto_samples = saved.get("train", {}).get("auto_samples", False)
        return _RunPlan(
            kind=saved["model"],
            field_config=dict(saved["field"]),
            fine_field=bool(saved.get("fine_field")),
            root=cfg.data if cfg.data is not None else info.resolve_root(run_dir),
            format=info.format,
            scale=float(info.scale),
            background=info.background,
            near=info.near,
            far=info.far,
            n_coarse=None if auto_samples else render.n_coarse,
            n_fine=render.n_fine,
            eval_render=render,
            step=int(saved["step"]),
            elapsed_s=float(saved.get("elapsed_s", 0.0)),
            metrics=dict(saved.get("metrics", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InerfError(f"{run_dir / CONFIG_NAME}: cannot resume from it ({exc})") from None


class Trainer:
    """One training session of a run directory: set up by the constructor, driven by :meth:`run`.

    The pieces are methods so tests and other drivers can use them alone: :meth:`train_step` (one
    optimiser step), :meth:`validate` (PSNR of the validation view), :meth:`save` (a checkpoint).
    """

    def __init__(self, cfg: TrainConfig):
        _validate_config(cfg)
        self.cfg = cfg
        # Under torchrun, the session (see `train`) has put this process on its own device.
        self.device = device = distributed.device() or resolve_device(cfg.device)
        self.run_dir = run_dir = Path(cfg.out)
        # Rank 0 checks the run directory and clears it for --overwrite; the others wait for its verdict.
        saved = distributed.run_on_main(lambda: _prepare_run_dir(cfg))
        if saved is not None:
            self.cfg = cfg = _inherit_schedule(cfg, saved.get("train", {}))
        plan = _plan(cfg, saved, run_dir, device)
        self.kind, self.step, self.elapsed_s = plan.kind, plan.step, plan.elapsed_s
        self.metrics = plan.metrics
        self.preset = MODEL_PRESETS[plan.kind]

        fmt = plan.format or detect_format(plan.root)
        self.train_views = load_dataset(
            plan.root,
            "train",
            format=fmt,
            scale=plan.scale,
            background=plan.background,
            near=plan.near,
            far=plan.far,
        )
        near, far = self.train_views.near, self.train_views.far
        self.val_views = _load_validation_view(
            plan.root, fmt, cfg.val_view, scale=plan.scale, background=plan.background, near=near, far=far
        )
        self.dataset = DatasetInfo(
            root=str(Path(plan.root).absolute()),
            format=fmt,
            scale=float(plan.scale),
            background=plan.background,
            near=float(near),
            far=float(far),
            root_relative=_relpath(Path(plan.root), run_dir),
            transform=self.train_views.transform.to_dict(),
        )

        torch.manual_seed(cfg.seed)
        try:
            self.coarse = build_field(plan.kind, plan.field_config)
            self.fine = build_field(plan.kind, plan.field_config) if plan.fine_field else None
        except (TypeError, ValueError) as exc:
            raise InerfError(f"cannot build a {plan.kind!r} field with {plan.field_config}: {exc}") from None
        if saved is not None:
            load_weights(run_dir, self.coarse, self.fine)
        self.fields = [m for m in (self.coarse, self.fine) if m is not None]
        for m in self.fields:
            m.to(device).train()

        self.auto_samples = plan.n_coarse is None
        if self.auto_samples and not hasattr(self.coarse, "samples_per_ray"):
            raise InerfError(f"the {plan.kind!r} field does not suggest a sample count; pass --n-coarse")
        self.eval_render = plan.eval_render or RenderConfig(
            n_coarse=plan.n_coarse or 2,
            n_fine=plan.n_fine,
            near=near,
            far=far,
            background=tuple(self.train_views.background),
            jitter=False,
            deterministic_fine=True,
            chunk=cfg.chunk,
        )
        self._update_sampling()

        self.lr0 = cfg.lr if cfg.lr is not None else self.preset.lr
        # An explicit --lr without --lr-final keeps the tenfold decay.
        self.lr_final = (
            cfg.lr_final
            if cfg.lr_final is not None
            else (self.preset.lr_final if cfg.lr is None else self.lr0 / 10)
        )
        self.optimizer = self._make_optimizer()
        if saved is not None and (run_dir / OPTIMIZER_NAME).is_file():
            try:
                state = torch.load(run_dir / OPTIMIZER_NAME, map_location=device, weights_only=True)
                self.optimizer.load_state_dict(state)
            except (RuntimeError, ValueError, KeyError, OSError) as exc:
                raise InerfError(
                    f"{run_dir / OPTIMIZER_NAME}: cannot load it for this model ({exc})"
                ) from None

        self.rays = TrainingRays(self.train_views, device)
        self.batch_size = cfg.rays_per_batch or (4096 if device.type == "cuda" else 1024)
        self.world_size = distributed.world_size()
        if self.batch_size < self.world_size:
            raise InerfError(
                f"--rays-per-batch {self.batch_size}: fewer rays than processes ({self.world_size})"
            )
        self.rows = distributed.shard_range(self.batch_size)
        """This rank's rays ``[start, stop)`` of every global batch."""
        self.loss_module = _BatchLoss(self.coarse, self.fine)
        distributed.broadcast_state(self.fields)  # buffers too (occupancy), which DDP leaves alone
        self.step_module = distributed.wrap_ddp(self.loss_module)
        """What a step calls: the loss module, in DistributedDataParallel under torchrun."""
        self.crop_pool = self.rays.center_indices(cfg.precrop_frac) if cfg.precrop_steps > 0 else None
        self.generator = torch.Generator(device=device)
        # Seeded with the step, so a resumed run does not replay the batches it has already seen.
        self.generator.manual_seed(cfg.seed * 1_000_003 + self.step)
        self.budget_s = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        self.history: list = []

    # -- pieces ----------------------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over every field's parameters; each group remembers its ratio to the base learning rate."""
        groups = []
        for name, m in (("coarse", self.coarse), ("fine", self.fine)):
            if m is None:
                continue
            if hasattr(m, "param_groups"):  # the field sets its own ratios (grids vs. colour network)
                field_groups = m.param_groups(self.lr0)
            else:
                field_groups = [{"params": [p for p in m.parameters() if p.requires_grad], "lr": self.lr0}]
            for g in field_groups:
                groups.append({**g, "name": f"{name}.{g.get('name', 'all')}", "lr_scale": g["lr"] / self.lr0})
        return torch.optim.Adam(groups, lr=self.lr0, eps=self.preset.adam_eps)

    def _update_sampling(self) -> None:
        """Set the sample count from the field when it chooses it, and derive the training settings."""
        if self.auto_samples:
            n = self.coarse.samples_per_ray(self.eval_render.near, self.eval_render.far)
            self.eval_render = dataclasses.replace(self.eval_render, n_coarse=n)
        # Training jitters the coarse samples and draws random importance samples (NeRF's perturb=1), which
        # anti-aliases the field along the ray; evaluation keeps the deterministic layout.
        self.train_render = dataclasses.replace(self.eval_render, jitter=True, deterministic_fine=False)

    @property
    def progress(self) -> float:
        """Fraction of the budget used: the larger of the step and the time fractions."""
        return max(self.step / self.cfg.max_steps, self.elapsed_s / self.budget_s)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns (loss, fine-pass MSE) as device scalars (no host sync).

        Under torchrun they are this rank's share: their mean over the ranks is the batch's loss and MSE.
        """
        before = _state_signature(self.fields) if self.world_size > 1 else None
        replaced = False
        for m in self.fields:
            if hasattr(m, "on_train_step"):
                replaced |= bool(m.on_train_step(self.step))
        if before is not None and _state_changed(before, _state_signature(self.fields)):
            # The hooks run at the same steps on every rank, from the same weights; rank 0's result is
            # copied so that no rounding difference can make the ranks' fields drift apart.
            distributed.broadcast_state(self.fields)
        if replaced:  # re-gridded: new parameter tensors (Adam's moments restart, as in TensoRF)
            self.optimizer = self._make_optimizer()
            self._update_sampling()
            self.step_module = None  # DDP hooks the gradients of the tensors it was given: wrap the new ones
            self.step_module = distributed.wrap_ddp(self.loss_module)
        lr = learning_rate(self.lr0, self.lr_final, self.progress)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        gen, dev = self.generator, self.device
        # Every rank draws the whole batch (the generator stays in step with one process) and takes its rows.
        if self.crop_pool is not None and self.step < self.cfg.precrop_steps:
            pick = torch.randint(len(self.crop_pool), (self.batch_size,), device=dev, generator=gen)
            idx = self.crop_pool[pick]
        else:
            idx = torch.randint(len(self.rays), (self.batch_size,), device=dev, generator=gen)
        if self.world_size > 1:
            start, stop = self.rows
            idx = idx[start:stop]
            gen = RowSlice(self.generator, start, stop, self.batch_size)
        rays, target = self.rays.batch(idx)
        near = far = None
        if hasattr(self.coarse, "ray_bounds"):
            # Bounded fields (the grid): sample only inside their box, with the open last interval just
            # outside it. Otherwise a far plane inside the box makes the last sample opaque from the start,
            # and a saturated alpha gets no gradient (a white shell is learnt; see GridField.ray_bounds).
            near, far = self.coarse.ray_bounds(
                rays.origins, rays.directions, self.train_render.near, self.train_render.n_coarse
            )
        # A rank's squared errors are divided by its share of the batch's 3 B colour values (3 B / W), so the
        # mean over ranks that DDP takes of the gradients is the gradient of the whole batch's mean.
        share = 3.0 * self.batch_size / self.world_size
        with precision_context(self.cfg.precision, dev):
            loss, fine_mse = self.step_module(rays, target, self.train_render, near, far, gen, share)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach(), fine_mse.detach()

    @torch.no_grad()
    def validate(self) -> float | None:
        """PSNR (dB) of the validation view rendered with the evaluation settings; None without one."""
        if self.val_views is None:
            return None
        cam = self.val_views.cameras.to(self.device)
        with precision_context(self.cfg.precision, self.device):
            out = render_image(self.coarse, cam[0], self.eval_render, fine=self.fine)
        err = ((out.rgb.float() - self.val_views.images[0].to(self.device)) ** 2).mean()
        return _psnr(err.item())

    def run_config(self) -> dict:
        """The ``config.json`` of the current state (see :mod:`inerf.train.checkpoint`)."""
        return {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "model": self.kind,
            "field": field_config_dict(self.coarse),
            "fine_field": self.fine is not None,
            "render": dataclasses.asdict(self.eval_render),
            "dataset": dataclasses.asdict(self.dataset),
            "train": {
                **dataclasses.asdict(self.cfg),
                "lr": self.lr0,
                "lr_final": self.lr_final,
                "rays_per_batch": self.batch_size,
                "data": self.dataset.root,
                "auto_samples": self.auto_samples,
            },
            "step": self.step,
            "elapsed_s": round(self.elapsed_s, 3),
            "metrics": self.metrics,
            "convention": CONVENTION,
            "inerf_version": __version__,
            "torch_version": torch.__version__,
            "device": str(self.device),
            "world_size": self.world_size,
        }

    def save(self) -> None:
        """Write a checkpoint of the current state into the run directory (on rank 0 only: every rank holds
        the same state)."""
        if not distributed.is_main():
            return
        save_checkpoint(self.run_dir, self.run_config(), self.coarse, self.fine, self.optimizer)
        self.write_metrics()

    def write_metrics(self) -> None:
        """Rewrite ``metrics.json``: the latest metrics and the step and training time they were taken at."""
        if not distributed.is_main():
            return
        write_json_atomic(
            self.run_dir / METRICS_NAME,
            {"step": self.step, "elapsed_s": round(self.elapsed_s, 3), **self.metrics},
        )

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until ``max_steps`` or ``max_minutes`` (totals for the run), validating, logging and
        checkpointing on the way; always validates and saves at the end."""
        cfg, dev = self.cfg, self.device
        main = distributed.is_main()  # validates, logs, shows the bar and saves; the other ranks only train
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        with (
            open(self.run_dir / LOG_NAME, "a", encoding="utf-8") if main else contextlib.nullcontext() as log,
            progress_bar(
                self.step, cfg.max_steps, self.elapsed_s, self.budget_s, disable=not (cfg.progress and main)
            ) as pbar,
        ):

            def record(entry: dict) -> None:
                if log is None:
                    return
                entry = {"step": self.step, **entry, "elapsed_s": round(self.elapsed_s, 3)}
                log.write(json.dumps(entry) + "\n")
                log.flush()

            def validate() -> float | None:
                if not main:
                    return None
                value = self.validate()
                split = None if self.val_views is None else self.val_views.split
                self.metrics.update(
                    val_psnr=value, val_step=self.step, val_split=split, val_view=cfg.val_view
                )
                self.write_metrics()
                self.history.append({"step": self.step, "val_psnr": value})
                record({"val_psnr": value})
                return value

            val_start = validate() if self.val_views is not None else None
            t_last = time.perf_counter()
            try:
                self._loop(cfg, pbar, record, validate, t_last, dev)
            except KeyboardInterrupt:
                # Ctrl-C (or SIGINT from a job scheduler) keeps the work done so far: the checkpoint is
                # written atomically, and --resume continues from it with the same schedule.
                self.save()
                raise
            if main and (not self.history or self.history[-1]["step"] != self.step):
                validate()
            self.save()
        distributed.barrier()  # every rank returns once the final checkpoint is on disk
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            elapsed_s=self.elapsed_s,
            val_psnr=self.metrics.get("val_psnr"),
            val_psnr_start=val_start,
            train_psnr=self.metrics.get("train_psnr"),
            history=self.history,
        )

    def _loop(self, cfg, pbar, record, validate, t_last: float, dev) -> None:
        """The optimisation steps of :meth:`run`, until a step or time budget is spent."""
        # Accumulate on the device: reading a value every step would stall the GPU's queue.
        loss_sum, mse_sum, n_sum = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
        while self.step < cfg.max_steps and self.elapsed_s < self.budget_s:
            loss, fine_mse = self.train_step()
            loss_sum += loss
            mse_sum += fine_mse
            n_sum += 1
            now = time.perf_counter()
            self.elapsed_s += now - t_last
            t_last = now
            if self.world_size > 1 and math.isfinite(self.budget_s):
                # One clock for all ranks (rank 0's, which pauses for its validation and saving): the time
                # budget stops them at the same step and the learning rate, which follows it, agrees.
                self.elapsed_s = distributed.main_value(self.elapsed_s)
            pbar.advance(self.step, self.elapsed_s)
            if self.step % cfg.log_every == 0:
                # The ranks' shares average to the batch's values (one small all-reduce per log line).
                mean_loss, mean_mse = (
                    distributed.mean_over_ranks(torch.stack([loss_sum, mse_sum])) / n_sum
                ).tolist()
                if not math.isfinite(mean_loss):
                    raise InerfError(
                        f"training diverged at step {self.step} (loss {mean_loss}); try a lower --lr"
                    )
                self.metrics["train_psnr"] = _psnr(mean_mse)
                loss_sum.zero_()
                mse_sum.zero_()
                n_sum = 0
                lr = self.optimizer.param_groups[0]["lr"]
                val = self.metrics.get("val_psnr") or float("nan")
                pbar.set_postfix(
                    loss=f"{mean_loss:.4f}",
                    psnr=f"{self.metrics['train_psnr']:.2f}",
                    val=f"{val:.2f}",
                    lr=f"{lr:.1e}",
                )
                record({"loss": mean_loss, "train_psnr": self.metrics["train_psnr"], "lr": lr})
            side_work = False
            if cfg.val_every and self.step % cfg.val_every == 0:
                validate()
                side_work = True
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save()
                side_work = True
            if side_work:
                t_last = time.perf_counter()  # the budget counts training steps, not validation or saving
        if n_sum:
            self.metrics["train_psnr"] = _psnr(distributed.mean_over_ranks(mse_sum).item() / n_sum)


def progress_bar(step: int, max_steps: int, elapsed_s: float, budget_s: float, **tqdm_kwargs):
    """The training progress bar: over the step budget, or over the time budget when there is one.

    With ``--max-minutes`` the run ends when its training time is spent, long before the default
    ``max_steps`` (200 000): a bar over steps would show an ETA for all of them (78 hours for a 3-minute
    run). So with a finite ``budget_s`` the bar counts training seconds and reads ``used / budget``
    (``01:12 / 03:00``), the same clock the stopping rule uses (validation and checkpoints pause it), and
    the step count. Without one it is a plain bar over ``max_steps``.

    Call ``bar.advance(step, elapsed_s)`` after each step (the totals of the run so far).
    """
    from tqdm import tqdm

    timed = math.isfinite(budget_s)

    class _Bar(tqdm):
        step_now = step

        def advance(self, step: int, elapsed_s: float) -> None:
            self.step_now = step
            self.update(min(elapsed_s, budget_s) - self.n if timed else step - self.n)

        @property
        def format_dict(self):
            d = super().format_dict
            if timed:  # shown by bar_format below: the clock of the budget, not a rate-based ETA
                used, total = self.format_interval(d["n"]), self.format_interval(d["total"])
                d = {**d, "used": used, "budget": total, "step": self.step_now}
            return d

    kw = {"desc": "train", "dynamic_ncols": True, **tqdm_kwargs}
    if timed:
        return _Bar(
            total=budget_s,
            initial=min(elapsed_s, budget_s),
            unit="s",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {used} / {budget} of training, step {step}{postfix}",
            **kw,
        )
    return _Bar(total=max_steps, initial=step, unit="step", **kw)


def _psnr(mse: float) -> float:
    """PSNR in dB of colours in [0, 1] (inline: ``train`` sits above ``eval`` in the layering)."""
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) the run described by ``cfg``.

    Under torchrun (``WORLD_SIZE`` etc. set) the process joins the group for the run (unless it already
    belongs to one) and leaves it afterwards; see :mod:`inerf.distributed`.

    Raises :class:`InerfError` for bad input: missing or malformed data, a run directory that already
    holds a checkpoint (without ``resume`` / ``overwrite``), an unavailable device, a run that diverges.
    """
    with distributed.session(cfg.device):
        return Trainer(cfg).run()


class _BatchLoss(torch.nn.Module):
    """The loss of a batch of rays as one module call: what DistributedDataParallel wraps.

    DDP synchronises the gradients of one forward per backward, so rendering, the colour losses and the
    fields' regularisers all happen in :meth:`forward`.
    """

    def __init__(self, coarse: torch.nn.Module, fine: torch.nn.Module | None):
        super().__init__()
        self.coarse, self.fine = coarse, fine

    def forward(self, rays: Rays, target, render: RenderConfig, near, far, generator, share: float):
        """``(loss, fine-pass squared error)`` of ``rays [R]`` against ``target [R, 3]``, their squared errors
        summed and divided by ``share`` (the batch's 3 B colour values over the processes)."""
        out = render_rays(self.coarse, rays, render, fine=self.fine, near=near, far=far, generator=generator)
        fine_err = ((out.rgb.float() - target) ** 2).sum() / share
        loss = fine_err
        if out.rgb_coarse is not None:  # NeRF supervises both passes: the coarse one must learn where to look
            loss = loss + ((out.rgb_coarse.float() - target) ** 2).sum() / share
        for m in (self.coarse, self.fine):
            if m is not None and hasattr(m, "regularization"):
                loss = loss + m.regularization()
        return loss, fine_err


def _state_signature(modules) -> list:
    """Every parameter and buffer with its version counter (the tensors themselves, not their ids: a freed
    tensor's id can come back)."""
    return [(t, t._version) for m in modules for t in [*m.parameters(), *m.buffers()]]


def _state_changed(before: list, after: list) -> bool:
    """Whether a training hook replaced a tensor (re-gridding, a new occupancy grid) or wrote into one."""
    return len(before) != len(after) or any(a is not b or va != vb for (a, va), (b, vb) in zip(before, after))


def _relpath(target: Path, start: Path) -> str | None:
    try:
        return Path(os.path.relpath(target.absolute(), start.absolute())).as_posix()
    except ValueError:  # different drives on Windows
        return None
