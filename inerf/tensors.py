"""Tensor helpers below every layer.

:func:`constant` makes a small tensor from Python numbers on a device without a host-to-device copy:
``torch.as_tensor(0.5, device="cuda")`` copies from host memory, which a CUDA graph cannot capture, whereas a
fill kernel takes the number as a launch argument. The pose solve's fast path captures rendering in a graph,
so the renderer, samplers and fields build their constants this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["constant"]


def constant(value, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """``value`` (a number, a sequence of numbers or a tensor) as a tensor of ``dtype`` on ``device``.

    Numbers become 0-d tensors and sequences 1-d tensors, written by fill kernels (no host-to-device copy);
    tensors are converted with ``torch.as_tensor``.
    """
    if isinstance(value, torch.Tensor):
        return torch.as_tensor(value, dtype=dtype, device=device)
    if isinstance(value, Sequence):
        if not value:
            return torch.empty(0, dtype=dtype, device=device)
        return torch.stack([torch.full((), v, dtype=dtype, device=device) for v in value])
    return torch.full((), value, dtype=dtype, device=device)
