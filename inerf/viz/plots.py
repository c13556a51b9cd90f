"""Plots of pose solves: convergence against step, success rate against step.

Figures are drawn with Matplotlib's object API on an Agg canvas, so importing this module never changes
the global Matplotlib backend of the caller (a notebook keeps its own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_convergence", "plot_success_curves"]


def _figure(n_rows: int, width: float = 6.4, row_height: float = 2.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, row_height * n_rows), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(n_rows, 1, i + 1) for i in range(n_rows)]
    return fig, axes


def _np(x):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _positive(y: np.ndarray) -> np.ndarray:
    # Log axes: exact zeros (a perfect render) would vanish; show them at the smallest positive value.
    y = y.copy()
    pos = y[np.isfinite(y) & (y > 0)]
    if pos.size:
        y[np.isfinite(y) & (y <= 0)] = pos.min()
    return y


def _curves(ax, steps, y, selected, label):
    """``y`` ``[S]`` or ``[S, K]``: all hypotheses thin and grey, ``selected`` (column index) bold."""
    if y.ndim == 1:
        ax.plot(steps, _positive(y), color="C0", lw=1.6, label=label)
        return
    for k in range(y.shape[1]):
        if k != selected:
            ax.plot(steps, _positive(y[:, k]), color="0.6", lw=0.6, alpha=0.7)
    ax.plot(steps, _positive(y[:, selected]), color="C0", lw=1.6, label=f"{label} (returned hypothesis)")


def plot_convergence(
    path: str | Path,
    loss,
    rot_err=None,
    trans_err=None,
    *,
    selected: int = 0,
    rot_thresh: float | None = None,
    trans_thresh: float | None = None,
    title: str | None = None,
) -> Path:
    """Loss (and, with ground truth, rotation/translation error) against step, log scale.

    Args:
        loss: ``[S + 1]`` or ``[S + 1, K]`` (one column per hypothesis; NaN once pruned).
        rot_err: same shape, degrees, or None without ground truth.
        trans_err: same shape, scene units, or None.
        selected: the hypothesis drawn bold.
        rot_thresh, trans_thresh: success thresholds drawn as dashed lines.
    """
    loss = _np(loss)
    steps = np.arange(loss.shape[0])
    rows = 1 + (rot_err is not None) + (trans_err is not None)
    fig, axes = _figure(rows)
    _curves(axes[0], steps, loss, selected, "loss")
    axes[0].set_ylabel("photometric loss")
    i = 1
    for err, thresh, name in (
        (rot_err, rot_thresh, "rotation error (deg)"),
        (trans_err, trans_thresh, "translation error"),
    ):
        if err is None:
            continue
        _curves(axes[i], steps, _np(err), selected, name.split(" (")[0])
        if thresh is not None:
            axes[i].axhline(thresh, color="C3", ls="--", lw=1, label=f"success < {thresh:g}")
            axes[i].legend(loc="upper right", fontsize=7)
        axes[i].set_ylabel(name)
        i += 1
    for ax in axes:
        ys = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), dtype=float).ravel()]
        if any(
            y > 0 for y in ys
        ):  # a log axis needs a positive value (a solve started at the truth has none)
            ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlim(0, max(1, steps[-1]))
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)


def plot_success_curves(
    path: str | Path, curves: dict, *, title: str | None = None, checkpoints: list[int] | None = None
) -> Path:
    """Success rate (fraction of trials within both thresholds) against step, one line per strategy.

    Args:
        curves: name -> ``[S + 1]`` success rate in [0, 1].
        checkpoints: steps marked with dots (the table's columns).
    """
    fig, (ax,) = _figure(1, row_height=3.6)
    for i, (name, rate) in enumerate(curves.items()):
        rate = _np(rate)
        steps = np.arange(rate.shape[0])
        ax.plot(steps, 100 * rate, color=f"C{i}", lw=1.6, label=name)
        if checkpoints:
            cp = [c for c in checkpoints if c < rate.shape[0]]
            ax.plot(cp, 100 * rate[cp], "o", color=f"C{i}", ms=4)
    ax.set_xlabel("step")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)
