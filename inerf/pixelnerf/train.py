"""Train a pixelNeRF on a multi-object dataset: the published ``train/train.py``, on inerf's one renderer.

What one step does (as published, spec section 5):

* ``batch_size`` (``-B``) objects, in a new random order every epoch (the last batch of an epoch may be
  smaller, as a ``DataLoader`` without ``drop_last``);
* ``NS`` source views per object, ``NS`` drawn per batch from ``nviews`` (``-V '1 2'``), distinct random
  views of each object (or the fixed ``source_views`` indices);
* ``ray_batch_size`` (``-R``) rays per object from **all** its views (the source views included): a random
  view, then a random pixel inside that view's foreground box while ``step < no_bbox_step``, anywhere after;
* the source views are encoded, the rays rendered by :func:`inerf.render.renderer.render_rays` with the
  published sampler (:mod:`inerf.pixelnerf.rendering`, stochastic), and the loss is the coarse plus the fine
  mean squared colour error; Adam at ``lr`` (1e-4) over every trained parameter.

The network trains in train mode (BatchNorm on batch statistics), as published. ``freeze_enc`` really
freezes the encoder: no gradient, not in the optimiser, **and** its BatchNorm in eval mode (the published
flag left the running statistics drifting). Validation renders one view of a validation object every
``val_every`` steps (eval mode, PSNR and a picture); checkpoints go to ``<checkpoints>/<name>/`` in the
published layout every ``save_every`` steps and at the end.

Checkpoint folder (published names; written as one group, see :func:`inerf.train.checkpoint.commit_files`,
so a SIGKILL at any moment leaves every file whole and ``--resume`` consistent)::

    pixel_nerf_latest    the bare state_dict (278 entries for the published configs): load_pixelnerf reads it
    pixel_nerf_backup    the previous pixel_nerf_latest
    _optim               Adam's state_dict
    _iter                {"iter": next step, ...}; inerf adds what an exact resume needs: the random number
                         generators' states, the epoch's object order, the training settings
    _renderer            the published renderer's two counters (iter_idx, last_sched), for the layout
    pixelnerf.conf       the resolved config (self-contained), so other verbs need no -c for this run

``--resume`` continues exactly: the same batches, rays and random samples as an uninterrupted run (bit for
bit on the CPU; on CUDA up to the non-determinism of atomic adds in the backward passes).

Several processes (``torchrun --nproc_per_node N -m inerf.cli.main -- pixelnerf train ...``,
:mod:`inerf.distributed`) train the model one process trains with the same ``-B``: ``-B`` stays the global
batch of objects, and each step every rank draws the whole batch as one process does (the objects, their
source views, their rays, and, through :class:`inerf.tensors.RowSlice`, the renderer's random samples), then
keeps its contiguous share of the objects (:func:`inerf.distributed.shard_range`; a rank may get none when
a batch, such as an epoch's last, has fewer objects than there are ranks). Each rank's loss is its share of
the batch's mean, so DistributedDataParallel's average of the gradients is the one-process gradient. The
encoder's BatchNorm layers see the whole batch through :class:`inerf.sync_batchnorm.SyncBatchNorm2d`
(unless the encoder is frozen: in eval mode every image's features depend on that image alone, so the
shares' features are the one-process rows exactly). ResNet stages the feature stack never runs (``layer4``,
kept in the published configs' state_dict) get no gradient and are left out of the all-reduce; Adam still
lists them, as published, so ``_optim`` keeps its layout. Rank 0 alone validates, logs, shows the progress
bar and writes checkpoints, and nothing in a checkpoint depends on the number of processes (every rank's
generators are in the one-process state after every step), so ``--resume`` works on any number of them.

Not reproduced from the published trainer: DTU's colour jitter and ``num_epoch_repeats`` (an epoch here is one
pass over the objects), ``--gamma`` (learning-rate decay; published runs use 1.0), TensorBoard logs (a JSON
line per logged step in ``<logs_path>/<name>/train_log.jsonl`` instead), and the visual file names
(``<step:06d>_vis.png`` instead of ``<epoch>_<batch>_vis.png``). ``pixel_nerf_init`` initialises a new run,
as published.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inerf import distributed
from inerf.device import gpu_device
from inerf.errors import InerfError
from inerf.geometry.cameras import Cameras
from inerf.pixelnerf.config import PixelNeRFConfig, config_to_hocon, load_config, parse_ints
from inerf.pixelnerf.model import PixelNeRF, check_state_dict, read_checkpoint
from inerf.pixelnerf.rendering import pixelnerf_model, render_config
from inerf.rays.rays import Rays, rays_from_pixels
from inerf.tensors import RowSlice
from inerf.train.checkpoint import _write_torch, commit_files, recover_files

__all__ = [
    "BACKUP_NAME",
    "CONF_NAME",
    "ITER_NAME",
    "LATEST_NAME",
    "OPTIM_NAME",
    "PRECISIONS",
    "PixelNeRFTrainConfig",
    "PixelNeRFTrainer",
    "TrainingObjects",
    "checkpoint_dir",
    "choose_source_views",
    "load_objects",
    "open_dataset",
    "read_iter_state",
    "sample_rays",
]

LATEST_NAME = "pixel_nerf_latest"
BACKUP_NAME = "pixel_nerf_backup"
INIT_NAME = "pixel_nerf_init"
OPTIM_NAME = "_optim"
ITER_NAME = "_iter"
RENDERER_NAME = "_renderer"
CONF_NAME = "pixelnerf.conf"
JOURNAL_NAME = "pixel_nerf_saving"
"""Marks a checkpoint group being moved into place (see :func:`inerf.train.checkpoint.commit_files`)."""
GROUP = (BACKUP_NAME, LATEST_NAME, OPTIM_NAME, RENDERER_NAME, ITER_NAME)
"""The files of one checkpoint, in the order they are replaced."""
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
ITER_FORMAT = "inerf.pixelnerf.train/1"


@dataclass
class PixelNeRFTrainConfig:
    """Settings of ``inerf pixelnerf train`` (the published flags where they exist)."""

    datadir: str
    """``-D``: dataset root (SRN: ``<dir>/chairs`` reads ``chairs_train`` and ``chairs_val``)."""
    name: str = "example"
    """``-n``: experiment name; checkpoints go to ``<checkpoints_path>/<name>/``."""
    conf: str | None = None
    """``-c``: config name or ``.conf`` path (None: the run's saved ``pixelnerf.conf`` on resume, else the
    published config of ``name``, else ``default_mv``)."""
    dataset_format: str | None = None
    """``-F``: srn | dvr | dvr_gen | dvr_dtu (None: ``data.format`` of the config, else dvr)."""
    batch_size: int = 4
    """``-B``: objects per batch."""
    nviews: str = "1"
    """``-V``: source-view counts; several ('1 2') = one drawn per batch."""
    source_views: str | None = None
    """Fixed source-view indices for every object ('0 10'); overrides ``nviews``. Not published."""
    ray_batch_size: int = 128
    """``-R``: rays per object per step."""
    lr: float = 1e-4
    """Adam's learning rate (constant, as published with gamma = 1)."""
    no_bbox_step: int = 100000
    """Draw rays inside each view's foreground box until this step (0: never)."""
    freeze_enc: bool = False
    """Freeze the encoder: no gradient, not optimised, BatchNorm in eval mode."""
    sync_bn: bool = True
    """Under torchrun, the encoder's BatchNorm normalises with the statistics of the whole batch over all
    processes (what one process computes); False: each process's share alone (what the published
    ``DataParallel`` training did: BatchNorm statistics per GPU replica)."""
    fixed_test: bool = False
    """Validate on the first validation object's first views every time (else a random one per check)."""
    resume: bool = False
    """``-r``: continue the run in the checkpoint folder."""
    overwrite: bool = False
    """Start afresh even though the checkpoint folder holds a run (replacing it)."""
    exp_group_name: str | None = None
    """``-G``: a sub-folder of the checkpoint, visual and log folders."""
    checkpoints_path: str = "checkpoints"
    visual_path: str = "visuals"
    logs_path: str = "logs"
    gpu_id: str = "0"
    """GPU id(s); the first is used; the CPU when no GPU is present (or ``-1``). Under torchrun each process
    takes ``cuda:LOCAL_RANK`` (or the CPU with ``-1``)."""
    max_steps: int | None = None
    """Stop at this step (a total over resumes); None: no step limit."""
    max_minutes: float | None = None
    """Wall-clock budget of this invocation in minutes, loading included; the last checkpoint is written
    after it (allow a few seconds)."""
    save_every: int = 50
    """Checkpoint every this many steps (published: 50); always at the end."""
    val_every: int = 100
    """Validation render and PSNR every this many steps (published vis_interval: 100); 0 = never."""
    print_every: int = 20
    """Read the loss back from the device (one synchronisation) every this many steps: log and bar."""
    precision: str = "auto"
    """fp32; tf32 (TF32 matmuls/convolutions on CUDA); bf16 (encoder and MLP under bf16 autocast, plus
    TF32); auto = bf16 on CUDA, fp32 on the CPU."""
    seed: int = 0
    """Seeds the initial weights and every random draw of the run."""
    z_near: float | None = None
    """Near bound override (default: the dataset's)."""
    z_far: float | None = None
    """Far bound override (default: the dataset's)."""
    progress: bool = True
    """Show a progress bar."""


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------
def open_dataset(data_format: str, datadir: str, split: str, z_near=None, z_far=None):
    """The published dataset of ``data_format`` (``srn``, ``dvr``, ``dvr_gen``, ``dvr_dtu``) for ``split``."""
    if data_format == "srn":
        from inerf.data.srn import SRNDataset

        return SRNDataset(datadir, split, z_near=z_near, z_far=z_far)
    if data_format in ("dvr", "dvr_gen", "dvr_dtu"):
        from inerf.data.dvr import DVRDataset

        ds = DVRDataset(datadir, split, data_format)
        if z_near is not None:
            ds.z_near = z_near
        if z_far is not None:
            ds.z_far = z_far
        return ds
    raise InerfError(f"dataset format {data_format!r} is not supported here (srn, dvr, dvr_gen, dvr_dtu)")


@dataclass
class TrainingObjects:
    """Every view of every training object, stacked (padded to the largest view count) on one device."""

    images: torch.Tensor
    """``[N, V, H, W, 3]`` uint8 RGB (views beyond ``num_views[i]`` are zero padding)."""
    c2w: torch.Tensor
    """``[N, V, 4, 4]`` float32 camera-to-world, OpenCV axes."""
    intrinsics: torch.Tensor
    """``[N, V, 4]`` float32 fx, fy, cx, cy in inerf pixels (centres at +0.5)."""
    bbox: torch.Tensor | None
    """``[N, V, 4]`` int64 foreground boxes (cmin, rmin, cmax, rmax), inclusive; None: no box sampling."""
    num_views: torch.Tensor
    """``[N]`` int64 views of each object."""
    names: list[str]
    near: float
    far: float

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    def __len__(self) -> int:
        return self.images.shape[0]

    def cameras(self, index: torch.Tensor, views: torch.Tensor) -> Cameras:
        """Cameras of ``views [SB, NS]`` of objects ``index [SB]``, object-major (``SB * NS``)."""
        sel = (index[:, None], views)
        K = self.intrinsics[sel].reshape(-1, 4)
        return Cameras(
            self.c2w[sel].reshape(-1, 4, 4), K[:, 0], K[:, 1], K[:, 2], K[:, 3], self.height, self.width
        )


def load_objects(dataset, device, use_bbox: bool = True, progress: bool = False) -> TrainingObjects:
    """Read every object of ``dataset`` (an :class:`~inerf.data.srn.SRNDataset` or
    :class:`~inerf.data.dvr.DVRDataset`) into a :class:`TrainingObjects` on ``device``.

    Images are kept as uint8 (a quarter of float32: SRN chairs' 4.6k objects x 50 views are 11 GB). Files
    are decoded by a few threads (the decoders release the GIL).
    """
    n = len(dataset)
    with ThreadPoolExecutor(max_workers=8) as pool:
        it = pool.map(dataset.__getitem__, range(n))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=n, desc="load objects", unit="obj", leave=False)
        objects = list(it)
    sizes = {tuple(o.images.shape[1:3]) for o in objects}
    if len(sizes) != 1:
        raise InerfError(f"training images must share one size, found {sorted(sizes)}")
    H, W = sizes.pop()
    V = max(len(o) for o in objects)
    images = torch.zeros((n, V, H, W, 3), dtype=torch.uint8)
    c2w = torch.eye(4).repeat(n, V, 1, 1)
    intr = torch.ones((n, V, 4))
    have_bbox = use_bbox and all(o.bbox is not None for o in objects)
    bbox = torch.zeros((n, V, 4), dtype=torch.long)
    for i, o in enumerate(objects):
        k = len(o)
        images[i, :k] = (o.images.clamp(0, 1) * 255).round().to(torch.uint8)
        c2w[i, :k] = o.cameras.c2w.float()
        cam = o.cameras
        intr[i, :k] = torch.stack([cam.fx, cam.fy, cam.cx, cam.cy], -1).float()
        if have_bbox:
            b = o.bbox.float()
            # Inclusive integer bounds inside the image (resized boxes can be fractional).
            lo = b[:, :2].floor().long()
            hi = b[:, 2:].ceil().long()
            bbox[i, :k] = torch.cat([lo, hi], -1)
    if have_bbox:
        bbox[..., 0::2] = bbox[..., 0::2].clamp(0, W - 1)
        bbox[..., 1::2] = bbox[..., 1::2].clamp(0, H - 1)
    return TrainingObjects(
        images=images.to(device),
        c2w=c2w.to(device),
        intrinsics=intr.to(device),
        bbox=bbox.to(device) if have_bbox else None,
        num_views=torch.tensor([len(o) for o in objects], dtype=torch.long, device=device),
        names=[o.name for o in objects],
        near=float(dataset.z_near),
        far=float(dataset.z_far),
    )


def choose_source_views(
    num_views: torch.Tensor, ns: int, max_views: int, generator: torch.Generator | None
) -> torch.Tensor:
    """``ns`` distinct random views of each object: ``num_views [SB]`` -> ``[SB, ns]`` int64.

    The first ``ns`` of a random permutation (argsort of uniform keys; padding views get key 2 and are never
    chosen). ``ns`` must not exceed any object's view count; ``max_views`` is the padded view count (given,
    so that reading ``num_views`` back does not synchronise with the device).
    """
    SB, V = num_views.shape[0], max_views
    keys = torch.rand((SB, V), device=num_views.device, generator=generator)
    pad = torch.arange(V, device=num_views.device)[None] >= num_views[:, None]
    return keys.masked_fill(pad, 2.0).argsort(dim=1)[:, :ns]


def sample_rays(
    objects: TrainingObjects,
    index: torch.Tensor,
    n_rays: int,
    use_bbox: bool,
    generator: torch.Generator | None,
) -> tuple[Rays, torch.Tensor]:
    """Draw ``n_rays`` training rays per object, as published: a random view of the object (any of its
    views, source views included), then a random pixel of it (inside its foreground box if ``use_bbox``).

    Args:
        index: ``[SB]`` object indices (on ``objects``' device).
    Returns:
        :class:`Rays` ``[SB, n_rays]`` through the pixel centres (unit ``viewdirs``; distances along them
        are what pixelNeRF's near/far bound) and their colours ``[SB, n_rays, 3]`` in [0, 1].
    """
    dev = objects.images.device
    SB = index.shape[0]
    nv = objects.num_views[index][:, None]  # [SB, 1]
    u = torch.rand((3, SB, n_rays), device=dev, generator=generator)
    # float32 u * n can round up to n: clamp to the last index.
    view = torch.minimum((u[0] * nv).long(), nv - 1)
    if use_bbox and objects.bbox is not None:
        box = objects.bbox[index[:, None], view]  # [SB, R, 4]
        x = torch.minimum(box[..., 0] + (u[1] * (box[..., 2] - box[..., 0] + 1)).long(), box[..., 2])
        y = torch.minimum(box[..., 1] + (u[2] * (box[..., 3] - box[..., 1] + 1)).long(), box[..., 3])
    else:
        x = (u[1] * objects.width).long().clamp_max(objects.width - 1)
        y = (u[2] * objects.height).long().clamp_max(objects.height - 1)
    rgb = objects.images[index[:, None], view, y, x].float() / 255.0
    c2w = objects.c2w[index[:, None], view].reshape(-1, 4, 4)
    K = objects.intrinsics[index[:, None], view].reshape(-1, 4)
    uv = torch.stack([x, y], -1).reshape(-1, 1, 2)
    rays = rays_from_pixels(uv, c2w, K[:, 0], K[:, 1], K[:, 2], K[:, 3]).reshape(SB, n_rays)
    return rays, rgb


# ----------------------------------------------------------------------------------------------------------
# Checkpoint folder
# ----------------------------------------------------------------------------------------------------------
def checkpoint_dir(checkpoints_path: str, name: str, group: str | None = None) -> Path:
    """``<checkpoints_path>/[<group>/]<name>``."""
    return Path(checkpoints_path) / (group or "") / name


def read_iter_state(folder: Path) -> dict:
    """The ``_iter`` dict of a checkpoint folder (``{"iter": next_step, ...}``); one-line error if unreadable."""
    path = folder / ITER_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InerfError(
            f"{path}: not found (is {folder} a checkpoint folder written by training?)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise InerfError(f"{path}: unreadable ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "iter" not in state:
        raise InerfError(f"{path}: not a pixelNeRF training state (no 'iter' entry)")
    return state


def _rng_state(gen: torch.Generator) -> torch.Tensor:
    return gen.get_state().clone()


def _check_settings(cfg: PixelNeRFTrainConfig) -> None:
    checks = [
        ("-B/--batch_size", cfg.batch_size, cfg.batch_size >= 1),
        ("-R/--ray_batch_size", cfg.ray_batch_size, cfg.ray_batch_size >= 1),
        ("--lr", cfg.lr, cfg.lr > 0),
        ("--max-steps", cfg.max_steps, cfg.max_steps is None or cfg.max_steps >= 0),
        ("--max-minutes", cfg.max_minutes, cfg.max_minutes is None or cfg.max_minutes > 0),
        ("--save-every", cfg.save_every, cfg.save_every >= 1),
        ("--val-every", cfg.val_every, cfg.val_every >= 0),
        ("--print-every", cfg.print_every, cfg.print_every >= 1),
    ]
    for flag, value, ok in checks:
        if not ok:
            raise InerfError(f"{flag} {value} is out of range")
    if cfg.precision not in PRECISIONS:
        raise InerfError(f"--precision {cfg.precision!r}: choose one of {', '.join(PRECISIONS)}")
    if cfg.resume and cfg.overwrite:
        raise InerfError("--resume and --overwrite exclude each other")


# ----------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------
@dataclass
class TrainSummary:
    """What :meth:`PixelNeRFTrainer.run` returns."""

    folder: Path
    step: int
    """Next step (= steps done in all)."""
    steps_this_run: int
    seconds: float
    """Wall-clock seconds of this invocation's training loop (validation and checkpoints included)."""
    last_loss: float | None
    val_psnr: float | None
    history: list = field(default_factory=list)
    """Log entries of this invocation (``{"step", "loss", ...}`` / ``{"step", "val_psnr"}``)."""


class _StepLoss(torch.nn.Module):
    """The loss of a share of a batch as one module call (what DistributedDataParallel wraps: it synchronises
    the gradients of one forward per backward, so encoding and rendering both happen in :meth:`forward`)."""

    def __init__(self, net: PixelNeRF, scene, frozen: bool):
        super().__init__()
        self.net, self.frozen = net, frozen
        self.scene = scene  # a plain attribute: the renderer's view of `net`, no parameters of its own

    def forward(self, images, cams: Cameras, rays: Rays, target, generator, share: float):
        """``(loss, fine-pass squared error)`` of ``rays [SB, R]`` against ``target [SB, R, 3]`` with source
        ``images [SB, NS, H, W, 3]`` seen by ``cams`` (``SB * NS``): the coarse and the fine pass's squared
        errors, each summed and divided by ``share`` (the batch's 3 n R colour values over the processes;
        with one process the means, published lambda_coarse = lambda_fine = 1). ``SB`` may be 0."""
        if self.frozen:
            with torch.no_grad():
                self.net.encode_views(images, cams)
        else:
            self.net.encode_views(images, cams)
        out = self.scene.render_rays(rays, generator=generator)
        fine = ((out.rgb - target) ** 2).sum() / share  # the fine pass (or the only pass)
        loss = fine
        if out.rgb_coarse is not None:
            loss = loss + ((out.rgb_coarse - target) ** 2).sum() / share
        return loss, fine


class PixelNeRFTrainer:
    """One training run (see the module docstring). Pieces for tests and other drivers: :meth:`train_step`,
    :meth:`validate`, :meth:`save`; :meth:`run` is the loop."""

    def __init__(self, cfg: PixelNeRFTrainConfig):
        self.t0 = time.monotonic()
        _check_settings(cfg)
        self.cfg = cfg
        self.folder = checkpoint_dir(cfg.checkpoints_path, cfg.name, cfg.exp_group_name)
        self.visual_dir = Path(cfg.visual_path) / (cfg.exp_group_name or "") / cfg.name
        self.log_dir = Path(cfg.logs_path) / (cfg.exp_group_name or "") / cfg.name
        # Rank 0 checks (and repairs) the checkpoint folder; the others wait for its verdict.
        state = distributed.run_on_main(self._prepare_folder)
        self.main = distributed.is_main()
        self.config = self._resolve_config(state)
        # Under torchrun the session (see the CLI) has put this process on its own device.
        self.device = device = distributed.device() or gpu_device(cfg.gpu_id)
        self.world_size = distributed.world_size()
        self.precision = (
            cfg.precision if cfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        )
        if self.precision != "fp32" and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True  # fixed image sizes: pick the fastest convolutions once

        fmt = cfg.dataset_format or self.config.data_format or "dvr"
        self.data_format = fmt
        train_set = open_dataset(fmt, cfg.datadir, "train", cfg.z_near, cfg.z_far)
        self.val_set = self._open_val(fmt)
        self.objects = load_objects(
            train_set, device, use_bbox=fmt != "dvr_dtu", progress=cfg.progress and self.main
        )
        self.max_views = self.objects.images.shape[1]
        self.nviews = parse_ints(cfg.nviews, "-V/--nviews", nonempty=True)
        self.fixed_sources = (
            parse_ints(cfg.source_views, "--source_views", nonempty=True)
            if cfg.source_views is not None
            else None
        )
        self._check_views()
        if self.fixed_sources is not None:
            self.fixed_sources_t = torch.tensor(self.fixed_sources, device=self.device)

        torch.manual_seed(cfg.seed)  # the initial weights
        self.net = PixelNeRF(self.config).to(device)
        self.frozen = cfg.freeze_enc or self.config.model.stop_encoder_grad
        if self.frozen:
            self.net.encoder.requires_grad_(False)
        if self.precision == "bf16":
            self.net.encoder_dtype = self.net.mlp_dtype = torch.bfloat16
        self.render = render_config(
            self.config.renderer, self.objects.near, self.objects.far, deterministic=False, field_chunk=0
        )
        self.scene = pixelnerf_model(self.net, self.render)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        # Stages the feature stack never runs (layer4 of the published configs) never get a gradient; Adam
        # keeps them in its list (published layout of _optim), and DDP must not wait for their gradients.
        for p in self.net.encoder.unused_parameters():
            p.requires_grad_(False)
        if self.world_size > 1 and not self.frozen and cfg.sync_bn:
            from inerf.sync_batchnorm import convert_sync_batchnorm

            convert_sync_batchnorm(self.net.encoder)  # batch statistics of the whole batch, all ranks
        # Gradients written straight into the all-reduce buckets: no copy per parameter and step (the
        # encoder's channels-last weight gradients otherwise mismatch the buckets' layout and are copied).
        self.step_module = distributed.wrap_ddp(
            _StepLoss(self.net, self.scene, self.frozen), gradient_as_bucket_view=True
        )
        """What a step calls: the loss of a share of the batch, in DistributedDataParallel under torchrun."""

        self.step = 0
        self.epoch = 0
        self.perm = torch.zeros(0, dtype=torch.long, device=device)
        self.pos = 0
        self.cpu_gen = torch.Generator().manual_seed(cfg.seed)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.elapsed_total = 0.0
        self.val_psnr: float | None = None
        if state is not None:
            self._load_state(state)
        elif (self.folder / INIT_NAME).is_file():
            self._load_weights(self.folder / INIT_NAME)  # published: the initialisation of a new run
        self._train_mode()

    # -- setup -----------------------------------------------------------------------------------------
    def _prepare_folder(self) -> dict | None:
        """Check the checkpoint folder against resume / overwrite; returns the ``_iter`` state to resume."""
        cfg, folder = self.cfg, self.folder
        if folder.exists() and not folder.is_dir():
            raise InerfError(f"{folder}: exists and is not a folder")
        if folder.is_dir():
            recover_files(folder, list(GROUP), JOURNAL_NAME)  # finish or undo an interrupted save
        exists = (folder / LATEST_NAME).is_file()
        if cfg.resume:
            if not exists:
                raise InerfError(f"--resume: no checkpoint in {folder} (expected {LATEST_NAME}; check -n)")
            return read_iter_state(folder)
        if exists and not cfg.overwrite:
            raise InerfError(
                f"{folder} already holds a run ({LATEST_NAME}); pass --resume to continue it or --overwrite "
                "to start afresh"
            )
        return None

    def _resolve_config(self, state: dict | None) -> PixelNeRFConfig:
        from inerf.pixelnerf.config import EXPERIMENTS

        cfg = self.cfg
        saved = self.folder / CONF_NAME
        if cfg.conf is not None:
            return load_config(cfg.conf)
        if state is not None and saved.is_file():
            return load_config(saved)
        return load_config(cfg.name if cfg.name in EXPERIMENTS else "default_mv")

    def _open_val(self, fmt: str):
        for split in ("val", "test"):
            try:
                return open_dataset(fmt, self.cfg.datadir, split, self.cfg.z_near, self.cfg.z_far)
            except InerfError:
                continue
        return None

    def _check_views(self) -> None:
        fewest = int(self.objects.num_views.min())
        if self.fixed_sources is not None:
            bad = [v for v in self.fixed_sources if not 0 <= v < fewest]
            if bad:
                raise InerfError(f"--source_views {bad}: out of range (an object has only {fewest} views)")
            return
        bad = [n for n in self.nviews if not 1 <= n <= fewest]
        if bad:
            raise InerfError(
                f"-V/--nviews {self.cfg.nviews!r}: each count must be 1..{fewest} (the fewest views of an object)"
            )

    def _load_weights(self, path: Path) -> None:
        state = read_checkpoint(path, map_location="cpu")
        check_state_dict(self.net, state, f"checkpoint {path} (config {self.config.name!r})")
        self.net.load_state_dict(state, strict=True)

    def _load_state(self, state: dict) -> None:
        folder = self.folder
        self._load_weights(folder / LATEST_NAME)
        try:
            optim = torch.load(folder / OPTIM_NAME, map_location=self.device, weights_only=True)
            self.optimizer.load_state_dict(optim)
        except FileNotFoundError:
            if self.main:
                print(f"note: {folder / OPTIM_NAME} is missing; Adam restarts from zero moments")
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise InerfError(
                f"{folder / OPTIM_NAME}: does not fit this model's trained parameters (--freeze_enc or -c "
                f"changed?): {str(exc).splitlines()[0][:120]}"
            ) from None
        self.step = int(state["iter"])
        ours = state.get("format") == ITER_FORMAT
        if not ours and self.main:
            print(f"note: {folder / ITER_NAME} holds no random-number state: the resumed batches differ")
            return
        self.epoch = int(state["epoch"])
        self.perm = state["perm"].long().to(self.device)
        self.pos = int(state["pos"])
        self.cpu_gen.set_state(state["rng_cpu"])
        if state.get("rng_device_type") == self.device.type:
            self.gen.set_state(state["rng_device"])
        else:
            if self.main:
                print("note: the run moved between CPU and GPU: its random numbers continue from a new seed")
            self.gen.manual_seed(self.cfg.seed + 1 + self.step)
        self.elapsed_total = float(state.get("elapsed_s", 0.0))
        v = state.get("val_psnr")
        self.val_psnr = float(v) if v is not None else None

    def _train_mode(self) -> None:
        self.net.train()
        if self.frozen:
            self.net.encoder.eval()  # frozen means frozen: BatchNorm keeps its running statistics too

    # -- one step ----------------------------------------------------------------------------------------
    def _next_objects(self) -> torch.Tensor:
        """The next batch of object indices (a new random order every epoch, as a shuffling DataLoader).

        The order is drawn on the device: a host-to-device copy of indices would synchronise every step."""
        if self.pos >= len(self.perm):
            self.perm = torch.randperm(len(self.objects), generator=self.gen, device=self.device)
            self.pos = 0
            self.epoch += 1
        batch = self.perm[self.pos : self.pos + self.cfg.batch_size]
        self.pos += len(batch)
        return batch

    def _source_views(self, index: torch.Tensor) -> torch.Tensor:
        if self.fixed_sources is not None:
            return self.fixed_sources_t.expand(len(index), -1)
        # The count decides shapes, so it comes from the CPU generator: no device synchronisation.
        ns = self.nviews[int(torch.randint(len(self.nviews), (1,), generator=self.cpu_gen))]
        return choose_source_views(self.objects.num_views[index], ns, self.max_views, self.gen)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the loss and the fine pass's MSE as device scalars (no host
        synchronisation). Under torchrun they are this rank's share: their mean over the ranks is the
        batch's loss and MSE."""
        obj = self.objects
        # Every rank draws the whole batch (its generators stay in the one-process state) and keeps its rows.
        index = self._next_objects()
        src = self._source_views(index)
        use_bbox = self.cfg.no_bbox_step > 0 and self.step < self.cfg.no_bbox_step
        rays, target = sample_rays(obj, index, self.cfg.ray_batch_size, use_bbox, self.gen)
        n = index.shape[0]
        gen: torch.Generator | RowSlice = self.gen
        if self.world_size > 1:
            start, stop = distributed.shard_range(n)
            index, src, rays, target = (
                index[start:stop],
                src[start:stop],
                rays[start:stop],
                target[start:stop],
            )
            gen = RowSlice(self.gen, start, stop, n)
        images = obj.images[index[:, None], src].float() / 255.0  # [SB, NS, H, W, 3]
        cams = obj.cameras(index, src)
        # A rank's squared errors over its share of the batch's 3 n R colour values (3 n R / W), so the mean
        # over ranks that DDP takes of the gradients is the gradient of the whole batch's mean.
        share = 3.0 * n * self.cfg.ray_batch_size / self.world_size
        loss, fine_mse = self.step_module(images, cams, rays, target, gen, share)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach(), fine_mse.detach()

    # -- validation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, write_image: bool = True) -> float | None:
        """Render one held-out view of a validation object from source views of it (eval mode); returns the
        PSNR (dB) and writes ``<visual_path>/<name>/<step:06d>_vis.png`` (source views | ground truth |
        render | depth | opacity). None without a validation split."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        # Its own generator, seeded by the step: validation never moves the training random numbers.
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        fixed = self.cfg.fixed_test
        views = self.val_set[0 if fixed else int(torch.randint(len(self.val_set), (1,), generator=g))]
        n = len(views)
        if self.fixed_sources is not None:
            src = [v for v in self.fixed_sources if v < n] or [0]
        else:
            ns = min(self.nviews[0], max(n - 1, 1))
            src = list(range(ns)) if fixed else torch.randperm(n, generator=g)[:ns].tolist()
        rest = [v for v in range(n) if v not in src] or src
        target = rest[len(rest) // 2] if fixed else rest[int(torch.randint(len(rest), (1,), generator=g))]
        dev = self.device
        self.net.eval()
        try:
            self.net.encode_views(views.images[src].to(dev), views.cameras[src].to(dev))
            scene = pixelnerf_model(
                self.net,
                render_config(self.config.renderer, views.z_near, views.z_far, ray_batch_size=4096),
            )
            gen = torch.Generator(device=dev).manual_seed(self.cfg.seed + self.step)
            out = scene.render_image(views.cameras[target].to(dev), generator=gen)
        finally:
            self._train_mode()
        gt = views.images[target].to(dev)
        mse = float(((out.rgb.float().clamp(0, 1) - gt) ** 2).mean())
        psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
        self.val_psnr = psnr
        if write_image:
            self._write_visual(views, src, target, out)
        return psnr

    def _write_visual(self, views, src: list[int], target: int, out) -> Path:
        import imageio.v3 as iio

        def u8(x: torch.Tensor) -> np.ndarray:
            x = x.float().clamp(0, 1).cpu().numpy()
            if x.ndim == 2:
                x = np.repeat(x[..., None], 3, -1)
            return (x * 255).round().astype(np.uint8)

        near, far = views.z_near, views.z_far
        # pixelNeRF's depth is not normalised by the opacity: show (d - near) / (far - near) where opaque.
        depth = ((out.depth.float() - near * out.acc.float()) / (far - near)).clamp(0, 1)
        row = [u8(views.images[s]) for s in src] + [
            u8(views.images[target]),
            u8(out.rgb),
            u8(depth),
            u8(out.acc),
        ]
        self.visual_dir.mkdir(parents=True, exist_ok=True)
        path = self.visual_dir / f"{self.step:06d}_vis.png"
        iio.imwrite(path, np.concatenate(row, axis=1))
        return path

    # -- checkpoints -------------------------------------------------------------------------------------
    def iter_state(self) -> dict:
        """The ``_iter`` dict: the published ``iter`` (next step) and what an exact resume needs."""
        cfg = self.cfg
        return {
            "iter": self.step,
            "format": ITER_FORMAT,
            "epoch": self.epoch,
            "perm": self.perm.cpu(),
            "pos": self.pos,
            "rng_cpu": _rng_state(self.cpu_gen),
            "rng_device": _rng_state(self.gen),
            "rng_device_type": self.device.type,
            "elapsed_s": float(self.elapsed_total),
            "val_psnr": self.val_psnr,
            "config_name": self.config.name,
            "settings": json.dumps(
                {
                    k: v
                    for k, v in dataclasses.asdict(cfg).items()
                    if k not in ("resume", "overwrite", "progress")
                }
            ),
            "data_format": self.data_format,
            "near": self.objects.near,
            "far": self.objects.far,
            "image_size": [self.objects.height, self.objects.width],
            "focal": float(self.objects.intrinsics[0, 0, 0]),
        }

    def save(self) -> None:
        """Write a checkpoint (all files of :data:`GROUP` as one group; ``pixelnerf.conf`` beside them); on
        rank 0 only, as every rank holds the same state."""
        if not self.main:
            return
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").clone() for k, v in self.net.state_dict().items()}
        writers = {}
        if (folder / LATEST_NAME).is_file():
            writers[BACKUP_NAME] = lambda p: shutil.copyfile(folder / LATEST_NAME, p)
        writers[LATEST_NAME] = lambda p: _write_torch(state, p)
        writers[OPTIM_NAME] = lambda p: _write_torch(self.optimizer.state_dict(), p)
        step = torch.tensor(self.step)
        writers[RENDERER_NAME] = lambda p: _write_torch({"iter_idx": step, "last_sched": torch.tensor(0)}, p)
        writers[ITER_NAME] = lambda p: _write_torch(self.iter_state(), p)
        commit_files(folder, writers, JOURNAL_NAME)
        conf = folder / CONF_NAME
        text = config_to_hocon(
            self.config, f"pixelNeRF config of the run {self.cfg.name!r} (written by inerf)"
        )
        if not conf.is_file() or conf.read_text() != text:
            tmp = conf.with_name(conf.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(conf)

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self) -> TrainSummary:
        """Train until ``max_steps`` or the ``max_minutes`` budget; validate, log and checkpoint on the way;
        always checkpoint at the end (also on Ctrl-C)."""
        from inerf.train.trainer import progress_bar

        cfg = self.cfg
        main = self.main  # validates, logs, shows the bar and saves; the other ranks only train
        budget = cfg.max_minutes * 60.0 if cfg.max_minutes else math.inf
        if main:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        history: list = []
        start_step = self.step
        t_loop = t_start = time.monotonic()
        last_loss = None
        total = cfg.max_steps if cfg.max_steps is not None else 10**9
        with (
            open(self.log_dir / "train_log.jsonl", "a", encoding="utf-8")
            if main
            else contextlib.nullcontext() as log,
            progress_bar(
                self.step,
                total,
                time.monotonic() - self.t0,
                budget,
                disable=not (cfg.progress and main),
                desc=f"train {cfg.name}",
            ) as bar,
        ):

            def record(entry: dict) -> None:
                # elapsed_s: training seconds of the run so far (validation and checkpoints included).
                entry = {"step": self.step, **entry, "elapsed_s": round(self.elapsed_total + since(), 3)}
                history.append(entry)
                if log is None:
                    return
                log.write(json.dumps(entry) + "\n")
                log.flush()

            def since() -> float:
                return time.monotonic() - t_loop

            def clock() -> float:
                """Seconds since the command started, rank 0's on every rank (one stopping decision)."""
                now = time.monotonic() - self.t0
                return distributed.main_value(now) if math.isfinite(budget) else now

            sums = torch.zeros(2, device=self.device)  # loss, fine MSE: summed on the device
            n_sum = 0
            try:
                while (cfg.max_steps is None or self.step < cfg.max_steps) and clock() < budget:
                    loss, fine_mse = self.train_step()
                    sums[0] += loss
                    sums[1] += fine_mse
                    n_sum += 1
                    now = time.monotonic()
                    bar.advance(self.step, now - self.t0)
                    if self.step % cfg.print_every == 0:
                        # The one synchronisation of the window; the ranks' shares average to the batch's.
                        last_loss, mse = (distributed.mean_over_ranks(sums) / n_sum).tolist()
                        if not math.isfinite(last_loss):
                            raise InerfError(
                                f"training diverged at step {self.step} (loss {last_loss}); try a lower --lr"
                            )
                        sums.zero_()
                        n_sum = 0
                        psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
                        val = self.val_psnr if self.val_psnr is not None else float("nan")
                        bar.set_postfix(loss=f"{last_loss:.5f}", psnr=f"{psnr:.2f}", val=f"{val:.2f}")
                        record({"loss": last_loss, "psnr": psnr if math.isfinite(psnr) else None})
                    if main and cfg.val_every and self.step % cfg.val_every == 0:
                        v = self.validate()
                        if v is not None:
                            record({"val_psnr": v})
                        if not cfg.progress:  # no bar (e.g. a log file): one line per validation
                            t = time.monotonic() - t_start
                            loss_text = f"{last_loss:.5f}" if last_loss is not None else "n/a"
                            val_text = f"{v:.2f} dB" if v is not None else "n/a"
                            print(
                                f"step {self.step}: loss {loss_text}, validation PSNR {val_text}, "
                                f"{(self.step - start_step) / t:.2f} steps/s, {t / 60:.1f} min",
                                flush=True,
                            )
                    if self.step % cfg.save_every == 0:
                        self._add_elapsed(t_loop)
                        t_loop = time.monotonic()
                        self.save()
            except KeyboardInterrupt:
                self._add_elapsed(t_loop)
                self.save()  # keep the steps done: --resume continues from here
                raise
            self._add_elapsed(t_loop)
            self.save()
        distributed.barrier()  # every rank returns once the final checkpoint is on disk
        seconds = time.monotonic() - self.t0
        return TrainSummary(
            folder=self.folder,
            step=self.step,
            steps_this_run=self.step - start_step,
            seconds=seconds,
            last_loss=last_loss,
            val_psnr=self.val_psnr,
            history=history,
        )

    def _add_elapsed(self, since: float) -> None:
        self.elapsed_total += time.monotonic() - since
