"""Figures of toy-model results (thesis Fig. 5.9a / D.5 / D.6 style, and Fig. 4.6a for tensor models).

Every figure is sized for its number of panels and laid out by matplotlib's constrained layout, so no
label is cut and no title overlaps another at any size; saved at :data:`DPI` with no text smaller
than :data:`MIN_FONT` points it reads at 100 % zoom (``tests/test_figures.py`` checks both).
"""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from ._internal import atomic_write
from ._internal.cli_tools import check_output_path
from .errors import require
from .results import ToyResult

MECHANISM_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown")
DPI = 120
"""Resolution of the figures the command lines write (a 7-inch figure is 840 pixels wide)."""
MIN_FONT = 9.0
"""Smallest font size (points) of any text in a figure."""
PANEL_SIZE = (4.2, 3.2)
"""Inches per panel of a grid of runs (12 panels: 16.8 × 9.6 in)."""
SINGLE_SIZE = (7.0, 4.6)
"""Inches of a one-panel figure (one run, or many runs overlaid)."""
MAX_COLUMNS = 4


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend unless ``MPLBACKEND`` chooses another."""
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def grid_shape(n_panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n_panels`` panels, at most ``max_columns`` wide."""
    cols = max(1, min(n_panels, max_columns))
    return math.ceil(n_panels / cols), cols


def grid_size(rows: int, cols: int) -> tuple[float, float]:
    """Figure size (inches) of a rows × cols grid: :data:`SINGLE_SIZE` for one panel, else
    :data:`PANEL_SIZE` per panel."""
    if rows * cols == 1:
        return SINGLE_SIZE
    return PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows


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


def _time_label(result: ToyResult) -> str:
    return "step" if result.method == "gd" else "flow time t"


def _axes_style(ax) -> None:
    """Log y axis with major decades only (minor log ticks cost ~1 s of rendering on a 12-panel
    figure); at most 5 step ticks, so labels such as 10000 and 12000 never touch in a narrow panel."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))


def _subplot_is(ax, where: str) -> bool:
    """Whether ``ax`` is in the first column / last row of its grid (any lone axes is both)."""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    return spec is None or getattr(spec, where)()


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
            label = "mechanism 1 loss + μ₁"
        ax.plot(*decimate(t, y), color=MECHANISM_COLOURS[k % len(MECHANISM_COLOURS)], lw=1.6, label=label)
    if n_mech > 1 or "competition" in result.measures:
        ax.plot(*decimate(t, result["loss"][i]), color="black", lw=1.2, ls="--", label="total loss")
    if competition and "competition" in result.measures:
        ax.plot(
            *decimate(t, result["competition"][i]), color="tab:green", lw=1.0, ls=":", label="competition C"
        )
    _axes_style(ax)
    if _subplot_is(ax, "is_last_row"):
        ax.set_xlabel(_time_label(result))
    if _subplot_is(ax, "is_first_col"):
        ax.set_ylabel("loss")
    title = _run_label(result, i)
    if n_mech > 1:
        title += f" · μ₁ = {mu[0]:g}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, lw=0.4)
    if legend:
        ax.legend(fontsize=MIN_FONT, loc="best")


def figure_legend(fig, ax, ncols: int = 4) -> None:
    """One legend for the whole figure, below the panels, from the curves of ``ax``."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(ncols, len(handles)), fontsize=MIN_FONT
        )


def run_grid(result: ToyResult, n: int, title_of=None, sharey: bool = True):
    """A grid with one panel per run (shared step axis, one figure legend); ``title_of(ax, i)`` may
    retitle panel ``i``. Returns the Figure."""
    plt = pyplot()
    rows, cols = grid_shape(n)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=grid_size(rows, cols),
        squeeze=False,
        sharex=True,
        sharey=sharey,
        layout="constrained",
    )
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        draw_run(ax, result, k, legend=(n == 1))
        if k + cols >= n:  # nothing below this panel: it shows its own step axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(_time_label(result))
        if title_of is not None:
            title_of(ax, k)
    if n > 1:
        figure_legend(fig, axes.flat[0])
    return fig


def _overlay(result: ToyResult):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=SINGLE_SIZE, layout="constrained")
    mu1 = np.atleast_2d(result.labels["mu"])[:, 0]
    for i in range(result.n_runs):
        ax.plot(
            *decimate(result.t, result["mechanism_1_loss"][i] + mu1[i]), color="tab:blue", alpha=0.3, lw=0.8
        )
        if "mechanism_2_loss" in result.measures:
            ax.plot(*decimate(result.t, result["mechanism_2_loss"][i]), color="tab:orange", alpha=0.3, lw=0.8)
    _axes_style(ax)
    ax.set_xlabel(_time_label(result))
    ax.set_ylabel("loss")
    ax.set_title(f"{result.n_runs} runs overlaid", fontsize=10)
    ax.grid(alpha=0.3, lw=0.4)
    ax.plot([], [], color="tab:blue", label="mechanism 1 loss + μ₁")
    if "mechanism_2_loss" in result.measures:
        ax.plot([], [], color="tab:orange", label="mechanism 2 loss")
    ax.legend(fontsize=MIN_FONT)
    return fig


def result_title(result: ToyResult) -> str:
    """One line naming the configuration: model kind, method, dimensions, α, clamps."""
    cfg = result.config
    title = f"{'reduced ' if cfg.get('reduced') else ''}{cfg['method']} · dims {cfg['model']['dims']}"
    alpha = np.atleast_1d(result.labels["alpha"])
    if len(cfg["model"].get("competition", [])):
        title += f" · α = {alpha[0]:g}"
    if cfg.get("clamps"):
        title += f" · clamped {', '.join(cfg['clamps'])}"
    return title


def plot_result(result: ToyResult, max_panels: int = 12):
    """One panel per run (up to ``max_panels`` runs), else the runs overlaid. Returns the Figure."""
    n = result.n_runs
    fig = run_grid(result, n) if n <= max_panels else _overlay(result)
    fig.suptitle(result_title(result), fontsize=11)
    return fig


def figure_formats() -> tuple[str, ...]:
    """File extensions matplotlib can write (``png``, ``pdf``, ``svg``, …)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_figure_path(path: str | os.PathLike, param: str = "out") -> str:
    """Check, creating nothing, that a figure can be written to ``path``: a known image format (by
    its extension; none means PNG) in an existing, writable directory. Returns the path."""
    text = check_output_path(path, param)
    suffix = os.path.splitext(text)[1].lstrip(".").lower()
    require(
        suffix == "" or suffix in figure_formats(),
        param,
        f"unknown image format {suffix!r} (formats: {', '.join(figure_formats())})",
    )
    return text


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a figure atomically (temporary file, then rename) and close it. The figure keeps its
    size (no tight bounding box): ``figsize × dpi`` pixels, the same on every run."""
    plt = pyplot()
    suffix = os.path.splitext(os.fspath(path))[1].lower() or ".png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=suffix.lstrip(".")), suffix=suffix)
    finally:
        plt.close(fig)
