"""A pixelNeRF model folder ("bundle"): weights, config, camera statistics and a few held-out examples.

inerf ships one, trained here on Sweet Home 3D chairs (``inerf/assets/pixelnerf/chairs``), so that
``inerf pixelnerf video`` and ``inerf pixelnerf pose`` work without the published Google-Drive archive;
``inerf pixelnerf export`` writes one from a training run. Layout::

    model.safetensors        the state_dict (float16 by default), as pixel_nerf_latest holds it in float32
    pixelnerf.conf           the resolved config, self-contained (no include)
    model.json               format, camera statistics of the training data (focal at the image size,
                             camera radius, near / far, background), training summary, attribution
    examples_test/           a few held-out objects in the SRN layout (rgb/, pose/, intrinsics.txt; the
                             split's meta.json records near / far), read by inerf.data.srn.SRNDataset
                             with root ``<bundle>/examples`` and split ``test``

The weights load through the same path as a published checkpoint:
``load_pixelnerf(bundle / "model.safetensors", bundle / "pixelnerf.conf")`` (strict, same key check).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from inerf.errors import InerfError

__all__ = [
    "BUNDLE_FORMAT",
    "DEFAULT_BUNDLE",
    "ModelBundle",
    "default_bundle",
    "export_bundle",
    "read_bundle",
]

BUNDLE_FORMAT = "inerf.pixelnerf.model"
WEIGHTS_NAME = "model.safetensors"
CONF_NAME = "pixelnerf.conf"
META_NAME = "model.json"
EXAMPLES_ROOT = "examples"
"""SRN-style root of the examples: the split folder is ``examples_test``."""
GENERATOR = "inerf pixelnerf export"
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "assets" / "pixelnerf" / "chairs"
"""The model shipped with inerf (its weights are added once trained; see its README)."""


@dataclass
class ModelBundle:
    """A model folder, read by :func:`read_bundle`."""

    path: Path
    meta: dict
    """``model.json``."""

    @property
    def weights(self) -> Path:
        return self.path / self.meta.get("weights", WEIGHTS_NAME)

    @property
    def conf(self) -> Path:
        return self.path / self.meta.get("config", CONF_NAME)

    @property
    def camera(self) -> dict:
        """``focal`` (px at ``image_size``), ``image_size`` [H, W], ``radius``, ``near``, ``far``,
        ``white_background`` of the training data."""
        return self.meta["camera"]

    def load(self, device="cpu"):
        """The model, in eval mode with frozen weights (see :func:`inerf.pixelnerf.model.load_pixelnerf`)."""
        from inerf.pixelnerf.model import load_pixelnerf

        return load_pixelnerf(self.weights, self.conf, device=device)

    @property
    def examples_root(self) -> Path | None:
        """``<bundle>/examples`` (SRN root of the ``test`` split), or None when the bundle has none."""
        root = self.path / EXAMPLES_ROOT
        return root if (self.path / f"{EXAMPLES_ROOT}_test").is_dir() else None


def read_bundle(path: str | Path) -> ModelBundle:
    """Read and check a model folder (one-line :class:`InerfError` naming what is missing)."""
    path = Path(path)
    meta_path = path / META_NAME
    if not path.is_dir():
        raise InerfError(f"pixelNeRF model folder not found: {path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InerfError(f"{path}: not a pixelNeRF model folder (no {META_NAME})") from None
    except (OSError, ValueError) as exc:
        raise InerfError(f"{meta_path}: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT or "camera" not in meta:
        raise InerfError(f"{meta_path}: not a pixelNeRF model description (format {BUNDLE_FORMAT!r})")
    bundle = ModelBundle(path, meta)
    for f, what in ((bundle.weights, "weights"), (bundle.conf, "config")):
        if not f.is_file():
            raise InerfError(f"{path}: the model's {what} file {f.name} is missing")
    return bundle


def default_bundle() -> ModelBundle | None:
    """The shipped model, or None when this install has no weights for it."""
    if not (DEFAULT_BUNDLE / WEIGHTS_NAME).is_file():
        return None
    return read_bundle(DEFAULT_BUNDLE)


def _copy_examples(source_split: Path, dest: Path, n_objects: int, views: list[int]) -> list[str]:
    """Copy ``views`` of the first ``n_objects`` objects of an SRN split folder; returns their attributions
    (from the split's ``meta.json`` when ``inerf synth category`` wrote it)."""
    objects = sorted(p.parent for p in source_split.glob("*/intrinsics.txt"))[:n_objects]
    if not objects:
        raise InerfError(f"--examples-from {source_split}: no <object>/intrinsics.txt there")
    dest.mkdir(parents=True)
    try:
        meta = json.loads((source_split / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    credits = []
    for obj in objects:
        rgb = sorted((obj / "rgb").iterdir())
        pose = sorted((obj / "pose").iterdir())
        bad = [v for v in views if not 0 <= v < len(rgb)]
        if bad or len(rgb) != len(pose):
            raise InerfError(
                f"{obj}: views {bad or views} out of range ({len(rgb)} images, {len(pose)} poses)"
            )
        out = dest / obj.name
        (out / "rgb").mkdir(parents=True)
        (out / "pose").mkdir()
        shutil.copyfile(obj / "intrinsics.txt", out / "intrinsics.txt")
        for v in views:
            shutil.copyfile(rgb[v], out / "rgb" / rgb[v].name)
            shutil.copyfile(pose[v], out / "pose" / pose[v].name)
        asset = (meta.get("instances", {}).get(obj.name) or {}).get("asset") or {}
        if asset.get("attribution"):
            credits.append(asset["attribution"])
    small = {
        k: meta[k] for k in ("format", "near", "far", "world", "camera", "images", "renderer") if k in meta
    }
    small.update(
        generator={"name": GENERATOR},
        split="test",
        note=f"views {views} of {len(objects)} held-out objects of {source_split.name}",
    )
    (dest / "meta.json").write_text(json.dumps(small, indent=2) + "\n")
    if credits:
        (dest / "ATTRIBUTION.txt").write_text("\n".join(credits) + "\n")
    return credits


def export_bundle(
    checkpoint_folder: str | Path,
    out: str | Path,
    *,
    name: str,
    dtype: torch.dtype = torch.float16,
    examples_from: str | Path | None = None,
    n_examples: int = 3,
    example_views: tuple[int, ...] = (0, 6, 12, 18),
    radius: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model folder from a training run's checkpoint folder.

    Args:
        checkpoint_folder: ``checkpoints/<name>`` of ``inerf pixelnerf train`` (``pixel_nerf_latest``,
            ``pixelnerf.conf``, ``_iter``).
        out: the model folder to write (absent, empty, or with ``overwrite`` an earlier export).
        dtype: weights' dtype in the file (float16 halves float32; BatchNorm's counters stay int64).
        examples_from: an SRN split folder (e.g. ``chairs_test``) to copy ``example_views`` of
            ``n_examples`` objects from; None: no examples.
        radius: camera distance of the training data (default: the split's ``meta.json``, else the mean
            of near and far).
    """
    from safetensors.torch import save_file

    from inerf.io_utils import check_replaceable, staged_dir
    from inerf.pixelnerf.config import config_to_hocon, load_config
    from inerf.pixelnerf.model import PixelNeRF, check_state_dict, read_checkpoint
    from inerf.pixelnerf.train import CONF_NAME as RUN_CONF
    from inerf.pixelnerf.train import LATEST_NAME, read_iter_state

    folder = Path(checkpoint_folder)
    if not (folder / LATEST_NAME).is_file():
        raise InerfError(f"{folder}: no {LATEST_NAME} (a folder written by inerf pixelnerf train)")
    if not (folder / RUN_CONF).is_file():
        raise InerfError(f"{folder}: no {RUN_CONF} (written by inerf pixelnerf train with the checkpoint)")
    config = load_config(folder / RUN_CONF)
    state = read_checkpoint(folder / LATEST_NAME)
    net = PixelNeRF(config)
    check_state_dict(net, state, f"checkpoint {folder / LATEST_NAME}")
    it = read_iter_state(folder)
    near, far = it.get("near"), it.get("far")
    if near is None or far is None or "focal" not in it:
        raise InerfError(f"{folder / '_iter'}: no camera statistics (written by an older trainer?)")
    source = Path(examples_from) if examples_from is not None else None
    if source is not None and not source.is_dir():
        raise InerfError(f"--examples-from {source}: not a folder")
    if radius is None and source is not None:
        try:
            radius = float(json.loads((source / "meta.json").read_text())["config"]["radius"])
        except (OSError, ValueError, KeyError, TypeError):
            radius = None
    radius = float(radius) if radius is not None else 0.5 * (near + far)
    settings = json.loads(it.get("settings", "{}"))

    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    meta = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "generator": {"name": GENERATOR},
        "name": name,
        "weights": WEIGHTS_NAME,
        "config": CONF_NAME,
        "dtype": str(dtype).replace("torch.", ""),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "camera": {
            "focal": float(it["focal"]),
            "image_size": [int(v) for v in it.get("image_size", [128, 128])],
            "radius": radius,
            "near": float(near),
            "far": float(far),
            "white_background": bool(config.renderer.white_bkgd),
            "convention": "focal in pixels at image_size; principal point at the image centre (W / 2, H / 2 "
            "in pixelNeRF's integer-centred pixels); cameras at `radius` from the object's centre",
        },
        "training": {
            "steps": int(it["iter"]),
            "seconds": float(it.get("elapsed_s", 0.0)),
            "val_psnr": it.get("val_psnr"),
            "config": it.get("config_name", config.name),
            "data": settings.get("datadir"),
            "settings": settings,
            "encoder": "trained from scratch (no ImageNet weights)",
        },
        "examples": EXAMPLES_ROOT if source is not None else None,
    }
    out = Path(out)

    def check() -> None:
        check_replaceable(out, overwrite, meta_file=META_NAME, generator=GENERATOR, what="an exported model")

    with staged_dir(out, check) as stage:
        save_file(tensors, str(stage / WEIGHTS_NAME), metadata={"format": BUNDLE_FORMAT, "name": name})
        (stage / CONF_NAME).write_text(
            config_to_hocon(config, f"pixelNeRF config of the model {name!r} (written by {GENERATOR})")
        )
        if source is not None:
            meta["attribution"] = _copy_examples(
                source, stage / f"{EXAMPLES_ROOT}_test", n_examples, list(example_views)
            )
        (stage / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return out
