"""Files every layer writes the same way: JSON (atomic, strict) and output folders that refuse to clobber.

Imports nothing of ours but :mod:`inerf.errors`, so ``train``, ``pose``, ``demo`` and the CLI can all use it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from inerf.errors import InerfError

__all__ = ["check_out_dir", "json_safe", "prepare_out_dir", "refuse_existing", "write_json"]


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, tuples by lists.

    Python's ``json`` writes NaN as the bare word ``NaN``, which is not JSON: other readers (``jq``, browsers,
    pandas in strict mode) reject the whole file. A failed solve's NaN loss becomes ``null`` instead.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | Path, obj, *, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON (non-finite floats as ``null``, see :func:`json_safe`) to ``path``.

    Atomic: the text goes to ``path.tmp``, is flushed to disk, then renamed over ``path``, so a reader (or a
    run stopped half-way) sees the old file or the new one, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(json_safe(obj), f, indent=indent, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def check_out_dir(path: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """Refuse an output folder that is a file, or a non-empty folder unless ``overwrite``; creates nothing.

    Cheap, so verbs call it before any heavy work (a refused run then costs milliseconds).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InerfError(f"{flag} {out}: exists and is not a directory")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise InerfError(f"{flag} {out}: directory is not empty (pass --overwrite to write into it)")
    return out


def prepare_out_dir(path: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """:func:`check_out_dir`, then create the folder (and its parents)."""
    out = check_out_dir(path, overwrite, flag)
    out.mkdir(parents=True, exist_ok=True)
    return out


def refuse_existing(paths: Iterable[str | Path], overwrite: bool) -> None:
    """Refuse to replace any of ``paths`` that exists, unless ``overwrite``: one line naming the first one."""
    if overwrite:
        return
    for p in paths:
        if Path(p).exists():
            raise InerfError(f"{p}: exists (pass --overwrite to replace it)")
