"""What every verb shares: help formatting, ``--device``, ``--quiet``, input files, output folders, JSON.

Conventions of the command line (stated once here, followed by every verb):

* ``--device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available; the default).
  ``inerf pixelnerf`` keeps the published scripts' ``--gpu_id`` instead.
* ``--quiet``: no progress bar (``--no-progress``, the older spelling of ``train``/``render``, still works).
* ``--out``: required where the verb's files have no natural home (``train``, ``estimate``, ``benchmark pose``,
  ``synth``); optional where they do (``demo``: ``outputs/demo``; ``render``: ``RUN_DIR/renders/SPLIT``;
  ``pixelnerf pose``: without it the pose is only printed). ``pixelnerf video``/``metrics`` keep the published
  ``--visual_path``/``-O``.
* Nothing a user wrote is replaced without ``--overwrite``: a non-empty ``--out`` folder, or (``render``,
  ``pixelnerf video``) any file the verb would write, is refused with one line naming it.
* Bad input is one line ``inerf VERB: error: ...`` naming the flag and the value (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inerf.cli.config_args import show_default
from inerf.device import DEVICE_CHOICES, check_device_name
from inerf.errors import InerfError
from inerf.io_utils import check_out_dir, prepare_out_dir, refuse_existing, write_json

__all__ = [
    "HelpFormatter",
    "add_device",
    "add_out",
    "add_quiet",
    "add_run",
    "check_out_dir",
    "device_arg",
    "input_file",
    "prepare_out_dir",
    "refuse_existing",
    "resolve_device",
    "warn_if_undertrained",
    "write_json",
]


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` where a default says something: not for required flags, switches, ``None``
    or a help text that already states its default; lists are written ``a,b,c``, not as Python lists."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or not action.option_strings or "(default" in text.lower():
            return text
        if isinstance(action.default, bool) or action.default == argparse.SUPPRESS or action.nargs == 0:
            return text
        shown = show_default(action.default)
        if shown is None or action.default in ([], ()):
            return text
        return f"{text} (default: {shown.replace('%', '%%')})"


def device_arg(text: str) -> str:
    """argparse type of ``--device`` (the spelling only; :func:`resolve_device` checks the machine)."""
    try:
        return check_device_name(text)
    except InerfError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; expected {DEVICE_CHOICES}") from None


def add_device(parser, default: str = "auto") -> None:
    """``--device`` on ``parser`` (or an argument group)."""
    parser.add_argument(
        "--device",
        type=device_arg,
        default=default,
        help=f"torch device: {DEVICE_CHOICES} (CUDA when available)",
    )


def resolve_device(name: str | None, tf32: bool | None = None):
    """The ``torch.device`` of ``--device`` (see :func:`inerf.device.resolve_device`); on CUDA, ``tf32``
    (when not None) switches TensorFloat-32 matrix products on or off."""
    import torch

    from inerf.device import resolve_device as resolve

    device = resolve(name, "--device")
    if device.type == "cuda" and tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
    return device


def add_quiet(parser, *, no_progress_alias: bool = False) -> None:
    """``--quiet`` (``args.quiet``); with ``no_progress_alias`` also the hidden older spelling ``--no-progress``."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if no_progress_alias:
        parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)


def add_run(parser) -> None:
    """``--run RUN_DIR`` (required): the run a pose verb inverts."""
    parser.add_argument(
        "--run", metavar="RUN_DIR", required=True, help="run directory written by `inerf train`"
    )


def add_out(parser: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    """The ``outputs`` group with a required ``--out DIR`` (``what`` it receives) and ``--overwrite``; returns
    the group for the verb's own output options."""
    o = parser.add_argument_group("outputs")
    o.add_argument("--out", metavar="DIR", required=True, help=f"output folder ({what})")
    o.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    return o


def input_file(path: str | Path, flag: str, what: str = "a file") -> Path:
    """``path`` if it is an existing file; else one line naming ``flag`` and saying what is wrong."""
    p = Path(path)
    if p.is_dir():
        raise InerfError(f"{flag} {p}: is a directory, expected {what}")
    if not p.exists():
        raise InerfError(f"{flag} {p}: not found")
    return p


def warn_if_undertrained(run, verb: str) -> None:
    """Print one line on stderr when the run's recorded validation PSNR is below
    :data:`inerf.train.checkpoint.LOW_VAL_PSNR_DB` (``run``: a run directory or a loaded run)."""
    from inerf.train.checkpoint import undertrained_warning

    line = undertrained_warning(run)
    if line:
        print(f"inerf {verb}: {line}", file=sys.stderr)
