"""The torch device from a user's string: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).

One definition for every verb and for :func:`inerf.train.train` (whose config holds the string). Other torch
device types (``mps``, ``xla``, ...) are not offered: nothing here is tested on them.
"""

from __future__ import annotations

import re

import torch

from inerf.errors import InerfError

__all__ = ["DEVICE_CHOICES", "check_device_name", "resolve_device"]

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"
"""How messages and help texts spell the accepted values."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str, flag: str = "--device") -> str:
    """``name`` if it is spelled as one of :data:`DEVICE_CHOICES`, else a one-line error. Needs no GPU."""
    if not _DEVICE.match(name.strip()):
        raise InerfError(f"{flag} {name}: unknown device; expected {DEVICE_CHOICES}")
    return name.strip()


def resolve_device(name: str | None = "auto", flag: str = "--device") -> torch.device:
    """The device ``name`` asks for (``None`` or ``auto``: CUDA if available, else the CPU); refuses a CUDA
    device this machine does not have."""
    name = check_device_name("auto" if name is None else name, flag)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InerfError(f"{flag} {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InerfError(
                f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 ..)"
            )
    return device
