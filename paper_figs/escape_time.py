"""Plateau escape time of the N-vector model vs init scale σ: numerics (exact reduced flow) vs the
SymPy leading-order prediction. Writes escape_time.csv, escape_time.md and escape_time.png here.

Run: python paper_figs/escape_time.py
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def escape_figure(rows, exps):
    """Escape time against σ: N ≥ 3 (log-log) and N = 2 (against log 1/σ); 10 × 4 in, 1500 × 600
    pixels at 150 dpi."""
    from matplotlib.legend_handler import HandlerTuple

    from toymodels.plotting import MIN_FONT, pyplot

    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4), layout="constrained")
    ax = axes[0]
    handles, labels = [], []
    for N in (3, 4, 5):
        rs = [r for r in rows if r.N == N]
        s = np.array([r.sigma for r in rs])
        (points,) = ax.loglog(s, [r.t_numeric for r in rs], "o")
        (line,) = ax.loglog(s, [r.t_predicted for r in rs], "-", color=points.get_color(), alpha=0.6)
        handles.append((points, line))
        labels.append(f"N = {N} (fitted slope {exps[N][0]:.3f})")
    ax.set_xlabel(r"init scale $\sigma$")
    ax.set_ylabel("escape time")
    ax.legend(
        handles,
        labels,
        handler_map={tuple: HandlerTuple(ndivide=None)},
        fontsize=MIN_FONT,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
    )
    ax.set_title(
        "N $\\geq$ 3: $t \\propto \\sigma^{-(N-2)}$\n"
        "points: numeric, lines: $n^{N/2}(z\\sigma)^{-(N-2)}/(N-2)$",
        fontsize=10,
    )
    ax = axes[1]
    rs = [r for r in rows if r.N == 2]
    s = np.array([r.sigma for r in rs])
    ax.semilogx(1 / s, [r.t_numeric for r in rs], "o", label=f"N = 2 numeric (slope {exps[2][0]:.3f})")
    ax.semilogx(1 / s, [r.t_predicted for r in rs], "-", label=r"$n\log(1/\sigma)$")
    ax.set_xlabel(r"$1/\sigma$")
    ax.set_ylabel("escape time")
    ax.legend(fontsize=MIN_FONT)
    ax.set_title(r"N = 2: $t \approx n\log(1/\sigma)$ + const", fontsize=10)
    return fig


def main() -> int:
    from toymodels.analysis import escape_table
    from toymodels.plotting import save_figure

    n, z = 20.0, 1.0
    rows, exps = escape_table((2, 3, 4, 5), n=n, z=z)
    csv = ["N,sigma,t_numeric,t_predicted,ratio"] + [
        f"{r.N},{r.sigma:.6e},{r.t_numeric:.10e},{r.t_predicted:.10e},{r.ratio:.8f}" for r in rows
    ]
    md = [
        (
            f"# Plateau escape time (n = {n:g}, z = {z:g}, symmetric start, gradient flow; "
            "escape = loss ≤ ½·L(0))"
        ),
        "",
        "| N | σ | t numeric | t predicted | ratio |",
        "|---|---|---|---|---|",
    ] + [f"| {r.N} | {r.sigma:.3g} | {r.t_numeric:.6g} | {r.t_predicted:.6g} | {r.ratio:.5f} |" for r in rows]
    md += ["", "| N | measured | predicted | quantity |", "|---|---|---|---|"]
    for N, (fit, pred) in exps.items():
        what = "slope of t vs log(1/σ) (= n)" if N == 2 else "exponent of σ"
        md.append(f"| {N} | {fit:.5f} | {pred:g} | {what} |")
    with open(os.path.join(HERE, "escape_time.csv"), "w") as f:
        f.write("\n".join(csv) + "\n")
    with open(os.path.join(HERE, "escape_time.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    save_figure(escape_figure(rows, exps), os.path.join(HERE, "escape_time.png"), dpi=150)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
