"""pixelNeRF configuration: typed dataclasses, read from the published HOCON ``.conf`` files.

The shipped files in ``inerf/pixelnerf/configs/`` mirror the published layout: ``default.conf`` (base) <-
``default_mv.conf`` (several source views) <- one file per experiment (``srn``, ``sn64``, ``sn64_unseen``,
``dtu``, ``multi_obj``). A user's own pixelNeRF ``.conf`` (with its ``include required(...)`` chain) is read
the same way. Every option the published code reads is a field here, with the published default; options
that no published model uses and inerf does not implement are rejected with a clear error rather than
silently ignored.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from inerf.errors import InerfError

__all__ = [
    "CONFIG_DIR",
    "EXPERIMENTS",
    "CodeConfig",
    "EncoderConfig",
    "MLPConfig",
    "ModelConfig",
    "PixelNeRFConfig",
    "RendererConfig",
    "config_names",
    "config_to_hocon",
    "load_config",
    "parse_ints",
]

CONFIG_DIR = Path(__file__).parent / "configs"
"""Folder of the shipped ``.conf`` files."""

EXPERIMENTS = {
    "sn64": "sn64",
    "sn64_unseen": "sn64_unseen",
    "srn_car": "srn",
    "srn_chair": "srn",
    "dtu": "dtu",
    "multi_obj": "multi_obj",
}
"""Published experiment (checkpoint folder) name -> shipped config name."""


@dataclass(frozen=True)
class EncoderConfig:
    """Pixel-aligned ResNet encoder (``model.encoder``)."""

    backbone: str = "resnet34"
    """torchvision ResNet with basic blocks: ``resnet34`` (all published models) or ``resnet18``."""
    num_layers: int = 4
    """Feature maps stacked: conv1, layer1, layer2, layer3 (4) -> 64 + 64 + 128 + 256 = 512 channels."""
    use_first_pool: bool = True
    """Run the 3x3/2 max-pool after conv1. False for the 64 x 64 ShapeNet models (sn64, sn64_unseen)."""
    pretrained: bool = True
    """ImageNet initialisation for training from scratch; ignored when loading (never downloads)."""
    index_interp: str = "bilinear"
    """Interpolation of the feature lookup (``grid_sample`` mode)."""
    index_padding: str = "border"
    """Padding of the feature lookup outside the image (``grid_sample`` padding_mode)."""
    upsample_interp: str = "bilinear"
    """Interpolation used to bring every feature map to conv1's resolution."""
    feature_scale: float = 1.0
    """Resize of the input before the encoder; only 1.0 (published value) is supported."""
    keep_unused_layers: bool = True
    """Keep the ResNet stages the feature stack never runs (``layer4``, and stages beyond ``num_layers``),
    as published: their weights are in every published checkpoint. False drops them from the module and
    the checkpoint (inerf's small shipped model: ResNet-18's ``layer4`` alone would be 8.4 M unused
    parameters). Not a published option."""

    @property
    def latent_size(self) -> int:
        """Channels of the stacked feature map."""
        return (0, 64, 128, 256, 512, 1024)[self.num_layers]


@dataclass(frozen=True)
class CodeConfig:
    """Positional encoding (``model.code``)."""

    num_freqs: int = 6
    """Number of frequencies; frequency k is ``freq_factor * 2**k``."""
    freq_factor: float = 1.5
    """Base frequency (the published configs set 1.5; pixelNeRF's code default would be pi)."""
    include_input: bool = True
    """Prepend the raw input to the sin/cos features."""


@dataclass(frozen=True)
class MLPConfig:
    """ResnetFC (``model.mlp_coarse`` / ``model.mlp_fine``)."""

    type: str = "resnet"
    """``resnet``; ``empty`` (fine pass reuses the coarse network) is accepted for ``mlp_fine``."""
    n_blocks: int = 5
    """Residual blocks."""
    d_hidden: int = 512
    """Hidden width."""
    combine_layer: int = 1000
    """Index of the block before which the hidden state is reduced over source views (1000 = never)."""
    combine_type: str = "average"
    """Reduction over source views: ``average`` (published) or ``max``."""
    beta: float = 0.0
    """Softplus sharpness of the activations; 0 means ReLU (published)."""


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` block."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    code: CodeConfig = field(default_factory=CodeConfig)
    mlp_coarse: MLPConfig = field(default_factory=MLPConfig)
    mlp_fine: MLPConfig | None = field(default_factory=MLPConfig)
    """None: the fine pass uses the coarse network."""
    use_encoder: bool = True
    """Condition on pixel-aligned source-view features (required)."""
    use_xyz: bool = True
    """Feed the point in source-camera axes (False: only its depth -z)."""
    normalize_z: bool = True
    """Feed the point rotated into the camera but **not translated** (never set in the published files)."""
    use_code: bool = True
    """Positionally encode the point."""
    use_viewdirs: bool = True
    """Append the view direction rotated into the source camera."""
    use_code_viewdirs: bool = False
    """Encode the view direction together with the point instead of appending it raw."""
    stop_encoder_grad: bool = False
    """Detach the features (training with a frozen encoder)."""
    d_out: int = 4
    """(r, g, b, sigma)."""


@dataclass(frozen=True)
class RendererConfig:
    """The ``renderer`` block."""

    n_coarse: int = 64
    """Stratified samples per ray evaluated by the coarse network."""
    n_fine: int = 32
    """Extra samples for the fine pass: ``n_fine - n_fine_depth`` by importance, the rest around the depth."""
    n_fine_depth: int = 16
    """Extra samples drawn from N(coarse depth, depth_std^2)."""
    depth_std: float = 0.01
    """Standard deviation of the depth-guided samples (scene units)."""
    noise_std: float = 0.0
    """Gaussian noise on sigma while training."""
    lindisp: bool = False
    """Sample linearly in disparity (False for every dataset)."""
    white_bkgd: bool = True
    """Composite onto white (SRN, NMR) or black (DTU)."""
    eval_batch_size: int = 100000
    """Points per network call."""


@dataclass(frozen=True)
class PixelNeRFConfig:
    """A resolved pixelNeRF configuration."""

    name: str
    """Config name (or file stem)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    data_format: str | None = None
    """``srn``, ``dvr``, ``dvr_gen``, ``dvr_dtu`` or ``multi_obj`` (``data.format``)."""


def config_names() -> list[str]:
    """Names accepted by :func:`load_config`: shipped configs and published experiment names."""
    shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.conf"))
    return shipped + sorted(n for n in EXPERIMENTS if n not in shipped)


def _resolve_path(config: str | os.PathLike) -> tuple[str, Path]:
    text = os.fspath(config)
    if text.endswith(".conf") or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise InerfError(f"pixelNeRF config file not found: {path}")
        return path.stem, path
    name = EXPERIMENTS.get(text, text)
    path = CONFIG_DIR / f"{name}.conf"
    if not path.is_file():
        raise InerfError(
            f"unknown pixelNeRF config {text!r}; choose one of {', '.join(config_names())} "
            "or give a path to a .conf file"
        )
    return text, path


def _get(tree, key, default, kind):
    """Typed read of ``tree[key]`` with a published default; a wrong type is a user error."""
    value = tree.get(key, None) if tree is not None else None
    if value is None:
        return default
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("true", "yes", "on")
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        raise InerfError(f"pixelNeRF config: {key} = {value!r} is not a {kind.__name__}") from None


def _read(cls, tree, **given):
    """``cls`` with each field not ``given`` read from the HOCON block ``tree`` under its own name and type
    (:func:`_get`), the dataclass default when absent: the dataclasses hold the published defaults."""
    base, kinds = cls(), typing.get_type_hints(cls)
    read = {
        f.name: _get(tree, f.name, getattr(base, f.name), kinds[f.name])
        for f in fields(cls)
        if f.name not in given
    }
    return cls(**read, **given)


def _mlp(tree, default: MLPConfig | None) -> MLPConfig | None:
    if tree is None:
        return default
    mlp = _read(MLPConfig, tree)
    if mlp.type == "empty":
        return None
    if mlp.type != "resnet":
        raise InerfError(f"pixelNeRF config: mlp type {mlp.type!r} is not supported (use resnet or empty)")
    if mlp.combine_type not in ("average", "max"):
        raise InerfError(f"pixelNeRF config: combine_type {mlp.combine_type!r} is not average or max")
    return mlp


def _from_tree(name: str, tree) -> PixelNeRFConfig:
    m = tree.get("model", None)
    if m is None:
        raise InerfError(f"pixelNeRF config {name!r} has no model block")
    if _get(m, "use_global_encoder", False, bool):
        raise InerfError("pixelNeRF config: use_global_encoder is not supported (no published model uses it)")
    if not _get(m, "use_encoder", True, bool):
        raise InerfError("pixelNeRF config: use_encoder = False is not supported")
    e = m.get("encoder", None)
    encoder = _read(EncoderConfig, e)
    if encoder.backbone not in ("resnet18", "resnet34"):
        raise InerfError(
            f"pixelNeRF config: encoder backbone {encoder.backbone!r} is not supported (resnet34 or resnet18)"
        )
    if not 1 <= encoder.num_layers <= 4:
        raise InerfError(f"pixelNeRF config: encoder num_layers must be 1..4, got {encoder.num_layers}")
    if encoder.feature_scale != 1.0:
        raise InerfError("pixelNeRF config: encoder feature_scale other than 1.0 is not supported")
    if e is not None and _get(e, "norm_type", "batch", str) != "batch":
        raise InerfError("pixelNeRF config: encoder norm_type other than batch is not supported")
    mlp_coarse = _mlp(m.get("mlp_coarse", None), MLPConfig())
    if mlp_coarse is None:
        raise InerfError("pixelNeRF config: mlp_coarse cannot be empty")
    model = _read(
        ModelConfig,
        m,
        encoder=encoder,
        code=_read(CodeConfig, m.get("code", None)),
        mlp_coarse=mlp_coarse,
        mlp_fine=_mlp(m.get("mlp_fine", None), None),
    )
    r = tree.get("renderer", None)
    renderer = _read(RendererConfig, r)
    if renderer.n_fine_depth > renderer.n_fine:
        raise InerfError("pixelNeRF config: renderer n_fine_depth exceeds n_fine")
    if r is not None and list(r.get("sched", []) or []):
        raise InerfError("pixelNeRF config: renderer sched (sample-count schedule) is not supported")
    d = tree.get("data", None)
    return PixelNeRFConfig(
        name=name,
        model=model,
        renderer=renderer,
        data_format=_get(d, "format", None, str) if d is not None else None,
    )


def load_config(config: str | os.PathLike | PixelNeRFConfig) -> PixelNeRFConfig:
    """Read a pixelNeRF configuration.

    Args:
        config: a shipped config name (``srn``, ``sn64``, ``sn64_unseen``, ``dtu``, ``multi_obj``,
            ``default_mv``), a published experiment name (``srn_car``, ``srn_chair``, ...), a path to a
            pixelNeRF ``.conf`` file (HOCON, ``include required("...")`` resolved relative to the file), or
            an already resolved :class:`PixelNeRFConfig` (returned as is).
    Raises:
        InerfError: unknown name, unreadable file, or an option inerf does not implement.
    """
    if isinstance(config, PixelNeRFConfig):
        return config
    from pyhocon import ConfigFactory  # imported lazily: only needed when reading files

    name, path = _resolve_path(config)
    try:
        tree = ConfigFactory.parse_file(str(path))
    except Exception as exc:  # noqa: BLE001 - pyhocon, pyparsing and OS errors all mean a bad file
        raise InerfError(f"cannot read pixelNeRF config {path}: {str(exc).splitlines()[0]}") from None
    return _from_tree(name, tree)


def _hocon_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return repr(value)


def _hocon_block(name: str, obj, indent: str) -> list[str]:
    lines = [f"{indent}{name} {{"]
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            lines += _hocon_block(f.name, value, indent + "    ")
        elif value is not None:
            lines.append(f"{indent}    {f.name} = {_hocon_value(value)}")
    return lines + [f"{indent}}}"]


def config_to_hocon(config: PixelNeRFConfig, comment: str | None = None) -> str:
    """A self-contained ``.conf`` (no ``include``) that :func:`load_config` reads back to ``config``.

    Every option is written, published defaults included, so the file does not depend on the shipped base
    files (a trained model's folder carries it). ``mlp_fine = None`` is written as ``type = empty``.
    """
    m = config.model
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines.append("model {")
    for f in fields(m):
        value = getattr(m, f.name)
        if f.name == "mlp_fine" and value is None:
            lines += ["    mlp_fine {", "        type = empty", "    }"]
        elif is_dataclass(value):
            lines += _hocon_block(f.name, value, "    ")
        else:
            lines.append(f"    {f.name} = {_hocon_value(value)}")
    lines.append("}")
    lines += _hocon_block("renderer", config.renderer, "")
    if config.data_format is not None:
        lines += ["data {", f"    format = {config.data_format}", "}"]
    return "\n".join(lines) + "\n"


def parse_ints(text, flag: str, *, nonempty: bool = False) -> list[int]:
    """The published scripts' lists of integers (``-P "0 6"``, ``-V 1,2``): space- or comma-separated;
    one-line :class:`InerfError` naming ``flag`` otherwise (and, with ``nonempty``, for an empty list)."""
    try:
        values = [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise InerfError(f"{flag}: expected space-separated integers, got {text!r}") from None
    if nonempty and not values:
        raise InerfError(f"{flag}: give at least one value")
    return values
