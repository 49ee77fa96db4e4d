"""Figures of a sweep: phase diagrams over two swept axes, and the curves of chosen points.

:func:`phase_diagram` draws three heatmaps over axes X and Y (every other axis, e.g. the seeds, is
pooled within a cell): the verdict (most frequent one; the cell's text is the fraction of its runs
that are transient), the ICL-peak depth (median ``m1_min``, log colour scale) and the time of the
peak (median ``m1_min_time``). :func:`plot_points_curves` draws stored curves like
:func:`toymodels.plotting.draw_run`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import require
from ..plotting import MIN_FONT, pyplot, run_grid
from ..results import ToyResult
from .store import SweepStore
from .verdicts import VERDICTS

AXES = ("mu1", "mu2", "alpha", "init_scale", "seed", "dim_a", "dim_b", "dim_c", "dim_d", "dim_e", "dim_f")
VERDICT_COLOURS = ("#bdbdbd", "#2b8cbe", "#e6550d")  # none, persistent, transient
MAX_TEXT_CELLS = (16, 10)
"""Largest (rows, columns) of a verdict map whose cells are labelled with their fraction transient."""
LABELS = {"mu1": "μ₁", "mu2": "μ₂", "alpha": "α", "init_scale": "init scale σ", "seed": "seed"}


def cell_grid(table: dict[str, np.ndarray], x: str, y: str, done: np.ndarray):
    """Unique values of X and Y and, per finished point, its cell (ix, iy)."""
    for a in (x, y):
        require(
            a in table,
            "plot-axes",
            f"axis {a!r} is not in this sweep (axes: {', '.join(k for k in AXES if k in table)})",
        )
    xs, ix = np.unique(table[x][done], return_inverse=True)
    ys, iy = np.unique(table[y][done], return_inverse=True)
    return xs, ys, ix, iy


def aggregate(
    values: np.ndarray, ix: np.ndarray, iy: np.ndarray, shape: tuple[int, int], how: str
) -> np.ndarray:
    """Per-cell median (``how="median"``), mode of integer codes (``"mode"``) or mean (``"mean"``);
    NaN if empty."""
    out = np.full(shape, np.nan)
    cell = iy * shape[1] + ix
    order = np.argsort(cell, kind="stable")
    cells, starts = np.unique(cell[order], return_index=True)
    for c, group in zip(cells, np.split(values[order], starts[1:])):
        if how == "mode":
            out.flat[c] = np.bincount(group.astype(np.int64), minlength=len(VERDICTS)).argmax()
        elif how == "mean":
            out.flat[c] = np.mean(group)
        else:
            finite = group[np.isfinite(group)]
            out.flat[c] = np.median(finite) if finite.size else np.nan
    return out


def _ticks(ax, xs, ys, x, y):
    def fmt(v):
        return f"{v:.3g}"

    for values, set_ticks, set_labels, n_max in (
        (xs, ax.set_xticks, ax.set_xticklabels, 8),
        (ys, ax.set_yticks, ax.set_yticklabels, 10),
    ):
        step = max(1, math.ceil(len(values) / n_max))
        pos = np.arange(0, len(values), step)
        set_ticks(pos)
        set_labels([fmt(values[p]) for p in pos], fontsize=MIN_FONT)
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))


def phase_diagram(store: SweepStore, x: str = "mu1", y: str = "alpha", where: dict[str, float] | None = None):
    """Verdict / ICL-peak depth / peak-time heatmaps over axes ``x`` and ``y``; returns the Figure.

    ``where`` restricts to points with given values of other axes (e.g. ``{"seed": 7}``).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm

    plt = pyplot()
    table = store.table()
    done = table["done"].copy()
    for k, v in (where or {}).items():
        require(k in table, "where", f"unknown axis {k!r}")
        done &= np.isclose(table[k], v)
    require(bool(done.any()), "plot-axes", "no finished points to plot")
    xs, ys, ix, iy = cell_grid(table, x, y, done)
    shape = (len(ys), len(xs))
    verdict = aggregate(table["verdict"][done], ix, iy, shape, "mode")
    frac = aggregate(
        (table["verdict"][done] == VERDICTS.index("transient")).astype(float), ix, iy, shape, "mean"
    )
    depth = aggregate(table["m1_min"][done], ix, iy, shape, "median")
    when = aggregate(table["m1_min_time"][done], ix, iy, shape, "median")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    cmap = ListedColormap(VERDICT_COLOURS)
    im = axes[0].imshow(
        verdict,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5], 3),
        interpolation="nearest",
    )
    cb = fig.colorbar(im, ax=axes[0], ticks=[0, 1, 2])
    cb.ax.set_yticklabels(VERDICTS, fontsize=MIN_FONT)
    text = shape[0] <= MAX_TEXT_CELLS[0] and shape[1] <= MAX_TEXT_CELLS[1]
    if text:
        for (j, i), f in np.ndenumerate(frac):
            if np.isfinite(f):
                axes[0].text(i, j, f"{f:.2g}", ha="center", va="center", fontsize=MIN_FONT, color="black")
    axes[0].set_title("verdict" + (" (text: fraction transient)" if text else ""), fontsize=10)
    positive = depth[np.isfinite(depth) & (depth > 0)]
    norm = (
        LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.0001))
        if positive.size
        else None
    )
    im = axes[1].imshow(
        np.where(depth > 0, depth, np.nan),
        origin="lower",
        aspect="auto",
        cmap="viridis",
        norm=norm,
        interpolation="nearest",
    )
    fig.colorbar(im, ax=axes[1])
    axes[1].set_title("ICL-peak depth: min mechanism-1 loss", fontsize=10)
    im = axes[2].imshow(when, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=axes[2])
    unit = "step" if store.spec.methods[0].name == "gd" else "time"
    axes[2].set_title(f"{unit} of the ICL peak", fontsize=10)
    for ax in axes:
        _ticks(ax, xs, ys, x, y)
    n_per_cell = int(done.sum()) / max(1, np.isfinite(verdict).sum())
    fig.suptitle(
        f"sweep {store.record['sweep_id']} · {int(done.sum())} runs · ~{n_per_cell:.3g} per cell", fontsize=11
    )
    return fig


def points_result(store: SweepStore, points: Sequence[int]) -> ToyResult:
    """The stored curves of ``points`` as a :class:`ToyResult` (same time axis required)."""
    ts, measures = None, {}
    for p in points:
        t, curves = store.curves(int(p))
        require(
            ts is None or (t.shape == ts.shape and np.allclose(t, ts)),
            "plot-points",
            "points with different time axes (methods)",
        )
        ts = t
        for k, v in curves.items():
            measures.setdefault(k, []).append(v)
    pts = store.points
    idx = np.asarray(points, dtype=np.int64)
    method = store.method_names[int(pts["method"][idx[0]])]
    return ToyResult(
        t=ts,
        measures={k: np.stack(v) for k, v in measures.items()},
        labels={
            "seed": pts["seed"][idx],
            "mu": np.stack([pts["mu1"][idx], pts["mu2"][idx]], -1),
            "alpha": pts["alpha"][idx],
        },
        stop=store.summary["stop"][idx],
        failure=np.zeros(idx.size),
        vectors={},
        config={"method": method},
    )


def plot_points_curves(store: SweepStore, points: Sequence[int]):
    """One panel per point: mechanism-1 loss + μ₁, mechanism-2 loss, total loss, competition."""
    result = points_result(store, points)
    pts = store.points

    def title(ax, k: int) -> None:
        p = int(points[k])
        verdict = VERDICTS[int(store.summary["verdict"][p])]
        where = f"seed {pts['seed'][p]} · μ₁ = {pts['mu1'][p]:.3g} · α = {pts['alpha'][p]:.3g}"
        ax.set_title(f"point {p}: {verdict}\n{where}", fontsize=10)

    return run_grid(result, len(points), title_of=title, sharey=False)


__all__ = ["AXES", "aggregate", "cell_grid", "phase_diagram", "plot_points_curves", "points_result"]
