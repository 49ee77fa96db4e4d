"""Outputs of a fit: ``fit.json`` (atomic), the overlay figure (thesis Fig. 5.9 style) and text tables.

``fit.json`` keys: ``converged`` (false: the fit failed, ``failure`` says why, and no number in
the file is a result), ``mu1``, ``mu2``, ``alpha``, ``dims`` {a, b, c, d} (``dims.a`` is the
convention :data:`bridge.spec.DIM_A_REFERENCE` unless fitted), ``eps`` {a, b, c, d}, ``identifiability``
(identifiable combinations, profile intervals, what is not determined), ``time_scale``
(sequences seen per unit of toy time), ``span`` (toy time at the last evaluation), ``stderr``
{parameter: standard error, free parameters only, ``dims`` as dim_a/dim_bc/dim_d},
``curves`` {name: {``scale``, ``offset``, ``scale_stderr``, ``offset_stderr``, ``r2``, ``source``,
``toy_curve``}}, ``transience`` (predicted vs observed ICL peak/fade, sequences seen), ``fit``
(cost, initial cost, per-start costs, iterations, per-start convergence, ``basin_starts``,
``searches_in_best_basin``, the global-search record, condition number, seconds, spec and
settings) and ``log`` (path, evaluation points, metric, the run's config).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from toymodels._internal import write_text_atomic

from .fitting import FitResult

TOY_LABELS = {"mechanism_1": "mechanism 1 (ICL)", "mechanism_2": "mechanism 2 (CIWL)", "total": "total"}
COLOURS = {
    "icl": "tab:blue",
    "ciwl": "tab:orange",
    "total": "black",
    "train_eval": "black",
    "flip": "tab:green",
    "iwl": "tab:red",
}


def jsonable(x: Any) -> Any:
    """JSON-safe values: NaN/inf → None, NumPy → Python."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def fit_dict(result: FitResult) -> dict[str, Any]:
    """Everything in ``fit.json`` (see module docstring)."""
    p = result.params
    curves = {}
    for name, toy_name in result.spec.curves:
        curves[name] = {
            "scale": result.scales[name],
            "offset": result.offsets[name],
            "scale_stderr": result.scale_stderr[name],
            "offset_stderr": result.offset_stderr[name],
            "r2": result.r2[name],
            "toy_curve": toy_name,
            "source": result.curves.sources.get(name, ""),
        }
    settings = dataclasses.asdict(result.settings)
    return jsonable(
        {
            "converged": result.converged,
            "failure": result.failure,
            "mu1": p["mu1"],
            "mu2": p["mu2"],
            "alpha": p["alpha"],
            "dims": result.dims,
            "eps": {"a": p["eps_a"], "b": p["eps_bc"], "c": p["eps_c"], "d": p["eps_d"]},
            "identifiability": result.identifiability,
            "time_scale": p["time_scale"],
            "span": p["span"],
            "stderr": result.stderr,
            "curves": curves,
            "transience": result.transience,
            "fit": {
                "cost": result.cost,
                "initial_cost": result.initial_cost,
                "start_costs": result.start_costs,
                "start_initial_costs": result.start_initial_costs,
                "iterations": result.iterations,
                "start_converged": result.start_converged,
                "basin_starts": result.basin_starts,
                "best_converged": result.best_converged,
                "searches_in_best_basin": result.searches_in_best_basin,
                "global_search": result.screen,
                "condition_number": result.condition_number,
                "seconds": result.seconds,
                "spec": result.spec.to_dict(),
                "settings": settings,
            },
            "log": {
                "path": result.curves.source,
                "n_points": result.curves.n_points,
                "first_seen": result.curves.seen[0],
                "last_seen": result.curves.seen[-1],
                "metric": result.curves.metric,
                "config": result.curves.config,
            },
        }
    )


def write_json_atomic(data: dict[str, Any], path: str) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"  # fails before anything is written
    write_text_atomic(path, text)


def _fmt(value: float, err: float | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "nan"
    s = f"{value:.4g}"
    if err is not None and np.isfinite(err):
        s += f" ± {err:.2g}"
    return s


def failure_line(result: FitResult) -> str:
    """The one line that reports a failed fit."""
    return f"fit did not converge: {result.failure}"


def _interval(v: dict[str, Any]) -> str:
    lo = "not determined" if v["lower"] is None else f"{v['lower']:.3g}"
    hi = "not determined" if v["upper"] is None else f"{v['upper']:.3g}"
    return f"{v['value']:.4g} [95% profile: {lo} … {hi}]"


def summary_lines(result: FitResult) -> list[str]:
    """A short human-readable summary (one line if the fit failed)."""
    if not result.converged:
        return [failure_line(result)]
    p = result.params
    ident = result.identifiability
    prof = ident.get("profile", {}).get("parameters", {})
    comb = ident["combinations"]

    def val(key: str) -> str:
        return _interval(prof[key]) if key in prof else f"{comb[key]:.4g} (not profiled)"

    lines = [
        f"fit of {result.curves.source} ({result.curves.n_points} evaluations, "
        f"{len(result.spec.curves)} curves, {len(result.start_costs)} starts, "
        f"{result.basin_starts} reached the best basin, {result.seconds:.1f} s)",
        f"  mu1 = {val('mu1')}",
        f"  alpha = {val('alpha')}",
        *(
            [f"  alpha_eff = alpha q_a(0) q_d(0) = {val('alpha_eff')} (what the curves determine)"]
            if ident.get("symmetries")
            else []
        ),
        f"  tau*n_a*q_a(0) = {val('tau_na')} sequences per unit of a's normalised time",
        f"  n_bc q_bc(0)/(n_a q_a(0)) = {val('ratio_bc')}   n_d q_d(0)/(n_a q_a(0)) = {val('ratio_d')}",
        "  eps (P(0)/n) = " + ", ".join(f"{v} {p['eps_' + v]:+.3g}" for v in ("a", "bc", "d")),
    ]
    if ident.get("symmetries"):
        lines.append(
            f"  exact symmetries of the family: {ident['symmetries']} (target rescaling, docs/bridge.md); "
            "the parameters they move are not determined by any data"
        )
    if ident.get("not_determined"):
        lines.append(
            "  not determined: "
            + ", ".join(ident["not_determined"])
            + f" (dims shown with n_a = {ident['dim_a_reference']:g} by convention)"
        )
    for name in result.spec.curve_names:
        lines.append(
            f"  {name:10s} R² = {result.r2[name]:.4f}   "
            f"scale = {_fmt(result.scales[name], result.scale_stderr[name])}   "
            f"offset = {_fmt(result.offsets[name], result.offset_stderr[name])}"
        )
    t = result.transience
    pr = t["predicted"]
    if pr.get("solve_failed"):
        lines.append("  toy: the prediction solve failed (no transience prediction)")
    elif pr["learned"]:
        fade = f"fades by {pr['fade_at']:.3g}" if pr["fades"] else "does not fade within the log"
        lines.append(f"  toy: ICL peaks at {pr['peak_at']:.3g} sequences seen and {fade}")
    else:
        lines.append("  toy: mechanism 1 is not learned within the log")
    if "observed" in t:
        ob = t["observed"]
        if ob["learned"]:
            fade = f"fades by {ob['fade_at']:.3g}" if ob["fades"] else "has not faded by the end of the log"
            lines.append(
                f"  transformer: ICL loss is lowest at {ob['peak_at']:.3g} sequences seen and {fade}"
            )
        else:
            lines.append("  transformer: the ICL loss is not learned (no interior minimum)")
    lines.append(f"  cost {result.cost:.4g} (its initial guess: {result.initial_cost:.4g})")
    if not result.best_converged:
        lines.append(
            "  warning: no start in the best basin converged (they hit the iteration cap); "
            "other starts did — try --lm-steps"
        )
    pinned = result.identifiability.get("at_bound", [])
    if pinned:
        lines.append(
            f"  warning: {', '.join(pinned)} at the bound of its range (an initial cosine at ±1: the "
            "vector starts parallel to its target; a dimension at 1): a boundary optimum, not determined"
        )
    n_searches = result.settings.searches
    if result.searches_in_best_basin < n_searches:
        costs = ", ".join(f"{c:.4g}" for c in result.screen["search_best_costs"])
        lines.append(
            f"  warning: {result.searches_in_best_basin} of {n_searches} independent searches reached the "
            f"best basin (their best costs {costs}): another search may find a lower one — try --searches"
        )
    return lines


def overlay_figure(result: FitResult):
    """Three panels: transformer curves with the fitted toy curves in transformer units; residuals;
    the fitted toy in its own units (mechanism 1 + μ₁, mechanism 2, total) vs toy time, over the
    prediction horizon (thesis Fig. 5.9)."""
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    seen = result.curves.seen
    ax = axes[0]
    for k, name in enumerate(result.spec.curve_names):
        c = COLOURS.get(name, None)
        ax.plot(seen, result.curves.values[name], "o", ms=3, color=c, alpha=0.6, label=f"transformer {name}")
        ax.plot(seen, result.prediction[k], "-", color=c, lw=1.6, label=f"toy fit (R²={result.r2[name]:.3f})")
    ax.set_xlabel("sequences seen")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel(f"{result.curves.metric} (transformer units)")
    ax.set_title("transformer curves and fitted toy", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for k, name in enumerate(result.spec.curve_names):
        ax.plot(
            seen,
            result.curves.values[name] - result.prediction[k],
            ".-",
            ms=3,
            lw=0.8,
            color=COLOURS.get(name),
            label=name,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("sequences seen")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel("residual (transformer − toy)")
    ax.set_title("residuals", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[2]
    g = result.toy_grid
    mu1 = result.params["mu1"]
    # below the solve's tolerance the curves are the solver's noise floor, not the model: clip there
    floor = result.settings.solve.atol
    g = {
        k: (np.maximum(v, floor) if k in ("mechanism_1", "mechanism_2", "total") else v) for k, v in g.items()
    }
    ax.plot(
        g["t"],
        g["mechanism_1"] + mu1,
        color="tab:blue",
        lw=1.6,
        label=f"mechanism 1 loss + μ₁ (μ₁={mu1:.3g})",
    )
    ax.plot(g["t"], g["mechanism_2"], color="tab:orange", lw=1.6, label="mechanism 2 loss")
    ax.plot(g["t"], g["total"], color="black", ls="--", lw=1.2, label="total loss")
    ax.axvline(result.params["span"], color="grey", ls=":", lw=1, label="end of the log")
    ax.axhline(floor, color="grey", ls="-", lw=0.6, alpha=0.5, label=f"solve tolerance ({floor:g})")
    ax.set_yscale("log")
    ax.set_xlabel("toy time t (= sequences seen / time scale)")
    comb = result.identifiability["combinations"]  # the identifiable ones (= α, n_x/n_a when q(0) = 1)
    alpha = "α_eff" if result.identifiability.get("symmetries") else "α"
    ax.set_title(
        f"fitted toy: {alpha}={comb['alpha_eff']:.3g}, ratio_bc={comb['ratio_bc']:.3g}, "
        f"ratio_d={comb['ratio_d']:.3g}" + ("" if result.converged else "  — FIT DID NOT CONVERGE"),
        fontsize=9,
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both", lw=0.4)
    fig.suptitle(
        os.path.basename(os.path.dirname(os.path.abspath(result.curves.source))) or result.curves.source,
        fontsize=10,
    )
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.88, wspace=0.25)
    return fig


def table_markdown(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Side-by-side Markdown table of ``fit.json`` dictionaries (one column per run)."""

    def cell(d, key):
        """A value, with its profile interval where one was computed; no Gauss–Newton ± (dims and
        the time scale are those of the n_a convention: their level is not determined)."""
        if not d.get("converged", True):
            return "failed"
        if key in ("dim_a", "dim_bc", "dim_d"):
            v = d["dims"]["a" if key == "dim_a" else "b" if key == "dim_bc" else "d"]
            return _fmt(v) + (" (convention)" if key == "dim_a" else "")
        v = d.get(key, ((d.get("identifiability") or {}).get("combinations") or {}).get(key))
        prof = ((d.get("identifiability") or {}).get("profile") or {}).get("parameters", {})
        s = _fmt(v if v is not None else np.nan)
        if key in prof:
            lo, hi = prof[key]["lower"], prof[key]["upper"]
            s += f" [{'n.d.' if lo is None else f'{lo:.3g}'} … {'n.d.' if hi is None else f'{hi:.3g}'}]"
        return s

    keys = ["mu1", "mu2", "alpha", "alpha_eff", "tau_na", "ratio_bc", "ratio_d"]
    keys += ["dim_a", "dim_bc", "dim_d", "time_scale"]
    head = "| parameter | " + " | ".join(name for name, _ in rows) + " |"
    sep = "|---|" + "---|" * len(rows)
    lines = [head, sep]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(cell(d, key) for _, d in rows) + " |")
    curve_names = sorted({c for _, d in rows for c in d["curves"]})
    for c in curve_names:
        lines.append(
            f"| R² {c} | "
            + " | ".join(
                _fmt(d["curves"][c]["r2"]) if c in d["curves"] and d.get("converged", True) else "–"
                for _, d in rows
            )
            + " |"
        )
    for key, label in (("peak_at", "toy ICL peak (seen)"), ("fade_at", "toy ICL fade (seen)")):
        lines.append(
            f"| {label} | "
            + " | ".join(_fmt(d["transience"]["predicted"].get(key) or np.nan) for _, d in rows)
            + " |"
        )
    lines.append(
        "| transformer ICL-loss minimum (seen) | "
        + " | ".join(_fmt((d["transience"].get("observed") or {}).get("peak_at") or np.nan) for _, d in rows)
        + " |"
    )
    lines.append("| cost | " + " | ".join(_fmt(d["fit"]["cost"]) for _, d in rows) + " |")
    lines.append(
        "| converged | "
        + " | ".join("yes" if d["converged"] else f"NO: {d['failure']}" for _, d in rows)
        + " |"
    )
    return "\n".join(lines) + "\n"


__all__ = [
    "failure_line",
    "fit_dict",
    "jsonable",
    "overlay_figure",
    "summary_lines",
    "table_markdown",
    "write_json_atomic",
    "write_text_atomic",
]
