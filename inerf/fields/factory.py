"""Build a field from its kind and a JSON-able config (how run directories record their model)."""

from __future__ import annotations

import dataclasses

from torch import nn

FIELD_KINDS = ("nerf", "grid")


def build_field(kind: str, config: dict | None = None) -> nn.Module:
    """``kind`` in :data:`FIELD_KINDS`; ``config`` holds the fields of that kind's config dataclass."""
    config = dict(config or {})
    if kind == "nerf":
        from inerf.fields.nerf import NeRFConfig, NeRFField

        return NeRFField(NeRFConfig(**config))
    if kind == "grid":
        from inerf.fields.grid import GridConfig, GridField

        return GridField(GridConfig(**config))
    raise ValueError(f"unknown field kind {kind!r}; expected one of {FIELD_KINDS}")


def field_config_dict(field: nn.Module) -> dict:
    """The config dataclass of a field as a plain dict (for config.json)."""
    return dataclasses.asdict(field.config)
