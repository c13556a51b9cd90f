"""Plots of tracking, global localisation and pose uncertainty.

Drawn with Matplotlib's object API on an Agg canvas (as :mod:`inerf.viz.plots`), so the caller's backend is
never changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inerf.viz.plots import _figure, _np

__all__ = ["plot_track_errors", "plot_trajectory", "plot_uncertainty_bars"]


def plot_track_errors(
    path: str | Path, rot_err, trans_err, loss, *, relocalized=(), title: str | None = None
) -> Path:
    """Per-frame rotation error (degrees), translation error and loss; re-localised frames marked."""
    rot, trans, loss = _np(rot_err), _np(trans_err), _np(loss)
    frames = np.arange(len(rot))
    fig, axes = _figure(3, row_height=1.9)
    for ax, y, name in zip(axes, (rot, trans, loss), ("rotation error (deg)", "translation error", "loss")):
        ax.plot(frames, y, color="C0", lw=1.4, marker="o" if len(frames) <= 60 else None, ms=3)
        for k in relocalized:
            ax.axvline(k, color="C3", lw=0.8, ls=":")
        ax.set_ylabel(name, fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, max(1, frames[-1]))
    axes[2].set_yscale("log")
    axes[-1].set_xlabel("frame" + (" (dotted: re-localised)" if len(relocalized) else ""))
    axes[0].set_title(
        title or f"tracking errors: median {np.median(rot):.2f} deg / {np.median(trans):.4f}", fontsize=9
    )
    fig.savefig(path)
    return Path(path)


def plot_trajectory(path: str | Path, c2w, gt_c2w=None, *, relocalized=(), title: str | None = None) -> Path:
    """Camera centres seen from above (x-y) and from the side (x-z), estimate against ground truth, with the
    viewing direction of every few frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    est = _np(c2w)
    fig = Figure(figsize=(7.0, 3.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    every = max(1, len(est) // 12)
    for ax, (a, b), name in zip(axes, ((0, 1), (0, 2)), ("top view (x, y)", "side view (x, z)")):
        if gt_c2w is not None:
            gt = _np(gt_c2w)
            ax.plot(gt[:, a, 3], gt[:, b, 3], color="0.55", lw=2.5, label="ground truth")
        ax.plot(est[:, a, 3], est[:, b, 3], color="C0", lw=1.2, marker=".", ms=3, label="estimate")
        ax.quiver(
            est[::every, a, 3], est[::every, b, 3], est[::every, a, 2], est[::every, b, 2],
            color="C0", angles="xy", scale_units="xy", scale=3.0, width=0.004,
        )  # fmt: skip
        if len(relocalized):
            k = np.asarray(relocalized)
            ax.plot(est[k, a, 3], est[k, b, 3], "x", color="C3", ms=6, label="re-localised")
        ax.plot(0, 0, "+", color="k", ms=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(name, fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path)
    return Path(path)


def plot_uncertainty_bars(
    path: str | Path, labels, sigma, error, *, unit: str = "deg", title: str | None = None
) -> Path:
    """Predicted 1-sigma (bars, with the 2-sigma whisker) against the true error (dots), one pair per item."""
    sigma, error = _np(sigma), _np(error)
    fig, (ax,) = _figure(1, width=6.4, row_height=3.0)
    x = np.arange(len(sigma))
    ax.bar(x, sigma, color="C0", alpha=0.6, label="predicted 1 sigma")
    ax.errorbar(
        x, sigma, yerr=[np.zeros_like(sigma), sigma], fmt="none", ecolor="C0", capsize=3, label="2 sigma"
    )
    ax.plot(x, error, "o", color="C3", ms=5, label="true error")
    ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel(f"rotation ({unit})" if unit == "deg" else unit)
    ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)
