"""Tensor helpers below every layer.

:func:`constant` makes a small tensor from Python numbers on a device without a host-to-device copy:
``torch.as_tensor(0.5, device="cuda")`` copies from host memory, which a CUDA graph cannot capture, whereas a
fill kernel takes the number as a launch argument. The pose solve's fast path captures rendering in a graph,
so the renderer, samplers and fields build their constants this way.

:func:`rand` and :func:`randn` are ``torch.rand`` / ``torch.randn`` that also accept a :class:`RowSlice`: the
draws of a slice of a batch, equal to the rows of the whole batch's draws. Data-parallel training renders its
share of a batch in each process with the random numbers one process would give those rays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["RowSlice", "constant", "rand", "randn"]


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
        if all(v == value[0] for v in value):  # e.g. a white background: one fill instead of n and a stack
            return torch.full((len(value),), value[0], dtype=dtype, device=device)
        return torch.stack([torch.full((), v, dtype=dtype, device=device) for v in value])
    return torch.full((), value, dtype=dtype, device=device)


@dataclass(frozen=True)
class RowSlice:
    """A generator for rows ``[start, stop)`` of a batch of ``total`` rows (the leading dimension): each draw
    is the whole batch's draw, cut to these rows.

    A process that renders only its share of a batch (data-parallel training, :mod:`inerf.distributed`) passes
    one wherever a ``torch.Generator`` goes: its rows then get exactly the random numbers that one process
    drawing for the whole batch gives them, and ``generator`` advances exactly as there, so every later draw
    agrees too. The price is drawing ``total`` rows instead of ``stop - start``, which is small next to
    evaluating a field at those samples.
    """

    generator: torch.Generator
    start: int
    stop: int
    total: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.stop <= self.total:
            raise ValueError(f"rows [{self.start}, {self.stop}) are not inside a batch of {self.total}")

    def draw(self, fn, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
        """``fn`` (``torch.rand`` or ``torch.randn``) for the whole batch, rows ``[start, stop)`` of it."""
        shape = tuple(shape)
        if not shape or shape[0] != self.stop - self.start:
            raise ValueError(f"draw of shape {shape} for rows [{self.start}, {self.stop}): the rows lead")
        full = fn((self.total, *shape[1:]), dtype=dtype, device=device, generator=self.generator)
        return full[self.start : self.stop]


def rand(
    shape, *, dtype=None, device=None, generator: torch.Generator | RowSlice | None = None
) -> torch.Tensor:
    """``torch.rand(shape)`` that also takes a :class:`RowSlice` as ``generator``."""
    if isinstance(generator, RowSlice):
        return generator.draw(torch.rand, shape, dtype, device)
    return torch.rand(shape, dtype=dtype, device=device, generator=generator)


def randn(
    shape, *, dtype=None, device=None, generator: torch.Generator | RowSlice | None = None
) -> torch.Tensor:
    """``torch.randn(shape)`` that also takes a :class:`RowSlice` as ``generator``."""
    if isinstance(generator, RowSlice):
        return generator.draw(torch.randn, shape, dtype, device)
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)
