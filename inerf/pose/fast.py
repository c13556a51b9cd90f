"""The GPU fast path of the pose solve: each step's device work replayed from CUDA graphs.

A pose step through a small field launches several hundred small kernels (ray generation, sampling, the
field, compositing, their backward passes). Issued one by one from Python, their launch cost exceeds their
run time: on an H200 the grid field's step took 14-20 ms of wall time for 1.6 ms of GPU work. Capturing the
step once and replaying it issues the same kernels in one launch. What makes capture possible:

* :meth:`inerf.pose.problem.Problem.loss_and_grad` takes only tensors (the blur ring's offsets and the target
  colours are computed beforehand) and has fixed shapes for a given ``(G, K, n, k)``;
* nothing in it reads a value back to the host (fields skip empty space with static shapes,
  :mod:`inerf.rays.occupied`);
* inputs are copied into static buffers before each replay, and outputs read from static buffers after.

The same holds for the Levenberg-Marquardt step (issue 16): :meth:`~inerf.pose.problem.Problem.gauss_newton`
(the residuals' loss and the Gauss-Newton system ``J^T W J``, ``J^T W r``) and
:meth:`~inerf.pose.problem.Problem.lm_update` (the damped step, the candidate's loss on the same pixels, the
accept test and the new damping, all decided on the device) are captured like the Adam step, and so is the
loss alone (the final score of a solve). :class:`GraphedFn` captures any such function.

The graph replays exactly the kernels the eager call runs, so results equal the reference path's (tested on
the GPU by ``benchmarks/bench_pose_speed.py``). One graph is kept per input shape (the blur phase renders
``k`` rays per pixel, pruning halves ``K``), captured on first use after a warm-up call on a side stream.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["GraphedFn", "GraphedLossAndGrad"]

CAPTURE_ERROR_MODE = "global"
"""``capture_error_mode`` of the captures (``torch.cuda.graph``): ``global`` refuses unsafe CUDA calls from any
thread during a capture; ``relaxed`` (diagnosis only) lets them through."""


class _Sources:
    """The tensors last copied into a graph's static inputs, to skip the copy (a kernel launch) of an input
    that is the same tensor, unmodified (its version counter unchanged), as last time: a solve's start poses,
    cached blur rings and scalars. Holding them keeps a reused ``id`` from fooling the test."""

    def __init__(self, inputs):
        self.last = [(t, None if t is None else t._version) for t in inputs]

    def update(self, inputs) -> list[bool]:
        """Per input, whether it must be copied; remembers ``inputs`` as the last ones."""
        fresh = [
            not (t is last and (t is None or t._version == v)) for t, (last, v) in zip(inputs, self.last)
        ]
        self.last = [(t, None if t is None else t._version) for t in inputs]
        return fresh


class _Capture:
    """One captured graph with its static inputs and outputs."""

    def __init__(self, fn, inputs: list[torch.Tensor | None]):
        self.inputs = [None if t is None else t.clone() for t in inputs]
        self.sources = _Sources(inputs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up: autograd and the allocator settle outside the capture
            for _ in range(2):
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        # Captured on the warm-up's stream: per-stream library state (cuBLAS / cuBLASLt handles and their
        # workspaces, created lazily on a stream's first matrix product) then exists before capture begins;
        # creating it inside a capture invalidates the capture.
        with torch.cuda.graph(self.graph, stream=stream, capture_error_mode=CAPTURE_ERROR_MODE):
            self.outputs = fn(*self.inputs)

    def __call__(self, inputs: list[torch.Tensor | None]):
        for static, value, fresh in zip(self.inputs, inputs, self.sources.update(inputs)):
            if static is not None and fresh:
                static.copy_(value)
        self.graph.replay()
        return tuple(None if o is None else o.clone() for o in self.outputs)


def _key(inputs) -> tuple:
    """The shapes and dtypes of ``inputs`` (None stays None): one graph per key."""
    return tuple(None if t is None else (tuple(t.shape), t.dtype) for t in inputs)


class GraphedFn:
    """A tensor-only function replayed from CUDA graphs, one per input shape, captured on first use.

    ``fn(*inputs)`` must take tensors (or None) of fixed shapes, never read a value back to the host and
    return a tuple of tensors. If a capture fails (something in ``fn`` synchronises), a warning is given and
    every later call runs ``fn`` eagerly: the results are the same, only slower.

    Args:
        fn: the function.
        name: what it computes, for the warning.
    """

    MAX_CAPTURES = 8
    """Graphs kept at once: a solve needs few shapes; this bounds their memory pools anyway."""

    def __init__(self, fn, name: str):
        self.fn, self.name = fn, name
        self.captures: dict[tuple, _Capture] = {}
        self.failed = False
        self.capture_failures = 0
        """Captures that failed (each retried once before running eagerly)."""

    def __call__(self, *inputs):
        if self.failed:
            return self.fn(*inputs)
        key = _key(inputs)
        if key not in self.captures:
            if len(self.captures) >= self.MAX_CAPTURES:
                self.captures.clear()
            for attempt in range(2):
                try:
                    self.captures[key] = _Capture(self.fn, list(inputs))
                    break
                except RuntimeError as exc:  # a field that synchronises cannot be captured: run it eagerly
                    torch.cuda.synchronize()
                    self.capture_failures += 1
                    # One retry: a library call can fail once inside a capture (cuBLASLt, choosing an
                    # algorithm for a new shape) and succeed the next time.
                    if attempt == 1:
                        self.failed = True
                        warnings.warn(
                            f"pose fast path: CUDA-graph capture of {self.name} failed, running eagerly ({exc})",
                            stacklevel=2,
                        )
                        return self.fn(*inputs)
        return self.captures[key](list(inputs))


class GraphedLossAndGrad(GraphedFn):
    """``(loss [G, K], grad [G, K, 6])`` of :meth:`Problem.loss_and_grad`, replayed from CUDA graphs.

    Args:
        problem: the solve's fixed parts (model, target, config) on a CUDA device.
    """

    def __init__(self, problem):
        super().__init__(self._fn, "the loss and its gradient")
        self.problem = problem

    def _fn(self, xi, c2w0, pix, ring, tgt):
        return self.problem.loss_and_grad(xi, c2w0, pix, ring, tgt, need_grad=True)
