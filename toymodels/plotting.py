"""Figures of toy-model results (thesis Fig. 5.9a / D.5 / D.6 style, and Fig. 4.6a for tensor models)."""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.ticker import LogLocator, NullLocator

from ._internal import atomic_write
from .results import ToyResult

MECHANISM_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown")


def decimate(t: np.ndarray, y: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th point (plus the last finite one) so a curve has at most ~max_points points.
    For drawing only: stored results keep every value."""
    finite = np.nonzero(np.isfinite(y))[0]
    if t.size <= max_points or finite.size == 0:
        return t, y
    k = int(np.ceil(t.size / max_points))
    idx = np.union1d(np.arange(0, t.size, k), finite[-1:])
    return t[idx], y[idx]


def _run_label(result: ToyResult, i: int) -> str:
    seed = int(result.labels["seed"][i])
    return f"seed {seed}" if seed >= 0 else f"run {i}"


def draw_run(ax, result: ToyResult, i: int, legend: bool = True, competition: bool = True) -> None:
    """Draw one run: mechanism-1 loss + μ₁ (offset, as in the thesis), the other mechanisms, total loss."""
    t = result.t
    n_mech = sum(1 for k in result.measures if k.startswith("mechanism_") and k.endswith("_loss"))
    mu = np.atleast_2d(result.labels["mu"])[i]
    for k in range(n_mech):
        y = result[f"mechanism_{k + 1}_loss"][i]
        label = f"mechanism {k + 1} loss"
        if k == 0 and n_mech > 1:
            y = y + mu[0]
            label = f"mechanism 1 loss + μ₁ (μ₁={mu[0]:g})"
        ax.plot(*decimate(t, y), color=MECHANISM_COLOURS[k % len(MECHANISM_COLOURS)], lw=1.6, label=label)
    if n_mech > 1 or "competition" in result.measures:
        ax.plot(*decimate(t, result["loss"][i]), color="black", lw=1.2, ls="--", label="total loss")
    if competition and "competition" in result.measures:
        ax.plot(
            *decimate(t, result["competition"][i]), color="tab:green", lw=1.0, ls=":", label="competition C"
        )
    ax.set_yscale("log")
    # major decades only: minor log ticks cost ~1 s of rendering on a 12-panel figure
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("step" if result.method == "gd" else "flow time t")
    ax.set_title(_run_label(result, i), fontsize=9)
    ax.grid(alpha=0.3, lw=0.4)
    if legend:
        ax.legend(fontsize=7, loc="best")


def plot_result(result: ToyResult, max_panels: int = 12):
    """One panel per run (up to ``max_panels`` runs), else the runs overlaid. Returns the Figure."""
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = result.n_runs
    cfg = result.config
    title = f"{'reduced ' if cfg.get('reduced') else ''}{cfg['method']} · dims {cfg['model']['dims']}"
    alpha = np.atleast_1d(result.labels["alpha"])
    if len(cfg["model"].get("competition", [])):
        title += f" · α={alpha[0]:g}"
    if cfg.get("clamps"):
        title += f" · clamped {', '.join(cfg['clamps'])}"
    if n <= max_panels:
        cols = min(n, 4)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(
            rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharex=True, sharey=True
        )
        for i in range(rows * cols):
            ax = axes.flat[i]
            if i < n:
                draw_run(ax, result, i, legend=(i == 0))
            else:
                ax.axis("off")
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i in range(n):
            y = result["mechanism_1_loss"][i] + np.atleast_2d(result.labels["mu"])[i][0]
            ax.plot(*decimate(result.t, y), color="tab:blue", alpha=0.3, lw=0.8)
            if "mechanism_2_loss" in result.measures:
                ax.plot(
                    *decimate(result.t, result["mechanism_2_loss"][i]), color="tab:orange", alpha=0.3, lw=0.8
                )
        ax.set_yscale("log")
        ax.set_xlabel("step" if result.method == "gd" else "flow time t")
        ax.plot([], [], color="tab:blue", label="mechanism 1 loss + μ₁")
        ax.plot([], [], color="tab:orange", label="mechanism 2 loss")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout measures every tick label and costs seconds on large grids
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.9, wspace=0.12, hspace=0.3)
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a figure atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=suffix.lstrip(".")), suffix=suffix)
    finally:
        plt.close(fig)
