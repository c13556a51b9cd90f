"""The GPU fast path of the pose solve: each Adam step's render-and-backward replayed from a CUDA graph.

A pose step through a small field launches several hundred small kernels (ray generation, sampling, the
field, compositing, their backward passes). Issued one by one from Python, their launch cost exceeds their
run time: on an H200 the grid field's step took 14-20 ms of wall time for 1.6 ms of GPU work. Capturing the
step once and replaying it issues the same kernels in one launch. What makes capture possible:

* :meth:`inerf.pose.problem.Problem.loss_and_grad` takes only tensors (the blur ring's offsets and the target
  colours are computed beforehand) and has fixed shapes for a given ``(G, K, n, k)``;
* nothing in it reads a value back to the host (fields skip empty space with static shapes,
  :mod:`inerf.rays.occupied`);
* inputs are copied into static buffers before each replay, and outputs read from static buffers after.

The graph replays exactly the kernels the eager call runs, so results equal the reference path's (tested on
the GPU by ``benchmarks/bench_pose_speed.py``). One graph is kept per input shape (the blur phase renders
``k`` rays per pixel, pruning halves ``K``), captured on first use after a warm-up call on a side stream.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["GraphedLossAndGrad"]

CAPTURE_ERROR_MODE = "global"
"""``capture_error_mode`` of the captures (``torch.cuda.graph``): ``global`` refuses unsafe CUDA calls from any
thread during a capture; ``relaxed`` (diagnosis only) lets them through."""


class _Capture:
    """One captured graph with its static inputs and outputs."""

    def __init__(self, fn, inputs: list[torch.Tensor | None]):
        self.inputs = [None if t is None else t.clone() for t in inputs]
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
        for static, value in zip(self.inputs, inputs):
            if static is not None:
                static.copy_(value)
        self.graph.replay()
        return tuple(o.clone() for o in self.outputs)


class GraphedLossAndGrad:
    """``(loss [G, K], grad [G, K, 6])`` of :meth:`Problem.loss_and_grad`, replayed from CUDA graphs.

    Args:
        problem: the solve's fixed parts (model, target, config) on a CUDA device.
    """

    def __init__(self, problem):
        self.problem = problem
        self.captures: dict[tuple, _Capture] = {}
        self.failed = False

    def __call__(self, xi, c2w0, pix, ring, tgt):
        key = (tuple(xi.shape), tuple(pix.shape), None if ring is None else tuple(ring.shape))
        inputs = [xi, c2w0, pix, ring, tgt]
        if self.failed:
            return self._fn(*inputs)
        if key not in self.captures:
            if len(self.captures) >= 8:  # a solve needs few shapes; bound the graphs' memory pools anyway
                self.captures.clear()
            try:
                self.captures[key] = _Capture(self._fn, inputs)
            except RuntimeError as exc:  # a field that synchronises cannot be captured: run it eagerly
                self.failed = True
                warnings.warn(
                    f"pose fast path: CUDA-graph capture failed, running eagerly ({exc})", stacklevel=2
                )
                torch.cuda.synchronize()
                return self._fn(*inputs)
        return self.captures[key](inputs)

    def _fn(self, xi, c2w0, pix, ring, tgt):
        return self.problem.loss_and_grad(xi, c2w0, pix, ring, tgt, need_grad=True)
