"""Files every layer writes the same way: JSON (atomic, strict) and output folders that refuse to clobber.

Imports nothing of ours but :mod:`inerf.errors`, so ``train``, ``pose``, ``demo`` and the CLI can all use it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

from inerf.errors import InerfError

__all__ = [
    "check_out_dir",
    "check_replaceable",
    "json_safe",
    "made_by",
    "prepare_out_dir",
    "refuse_existing",
    "staged_dir",
    "write_json",
]


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


def made_by(folder: str | Path, meta_file: str, generator: str) -> bool:
    """Whether ``folder/meta_file`` is a JSON object whose ``generator.name`` is ``generator`` or
    ``generator`` and a word (``inerf synth scene``): a folder one of our generators wrote."""
    try:
        meta = json.loads((Path(folder) / meta_file).read_text())
    except (OSError, ValueError):
        return False
    gen = meta.get("generator") if isinstance(meta, dict) else None
    name = str(gen.get("name", "")) if isinstance(gen, dict) else ""
    return name == generator or name.startswith(generator + " ")


def check_replaceable(
    folder: str | Path, overwrite: bool, *, meta_file: str, generator: str, what: str
) -> None:
    """Raise :class:`InerfError` unless a generator's whole output may go to ``folder``: it does not exist,
    is an empty folder, or (with ``overwrite``) holds an earlier output of ``generator`` (see
    :func:`made_by`); ``what`` names that output in the error (``"a dataset made by inerf synth"``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InerfError(f"{folder} exists and is not a folder")
    if not folder.exists() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise InerfError(f"{folder} is not empty; choose another --out or pass --overwrite to replace {what}")
    if not made_by(folder, meta_file, generator):
        raise InerfError(
            f"{folder} is not empty and holds no {generator} {meta_file}; refusing to overwrite it"
        )


@contextmanager
def staged_dir(folder: str | Path, check: Callable[[], None]):
    """Yield a fresh staging folder beside ``folder``; on success it replaces ``folder``, on failure it is
    deleted, so ``folder`` never holds half an output.

    ``check`` (e.g. :func:`check_replaceable`) runs before and again after the work, because the
    destination may have changed meanwhile; what it lets through (an empty folder or an earlier output
    of ours) is replaced.
    """
    folder = Path(folder)
    check()
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    check()
    if folder.exists():
        shutil.rmtree(folder)
    stage.rename(folder)
