"""(μ₁, α) phase diagram of the reduced coopetition fixed points (paper dims 20/20/20/160, μ₂ = 0),
checked against simulated reduced runs; plus the fixed-point tables at the paper parameters and the
N = 3 saddle report. Writes phase_diagram_coopetition.png, phase_diagram_checks.txt,
phase_diagram_fixed_points.txt and saddle_report_n3.txt here.

Run: python paper_figs/phase_diagram.py
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    from toymodels.analysis import (
        check_phase_diagram_with_runs,
        coopetition_fixed_points,
        format_table,
        phase_diagram,
        plot_phase_diagram,
        saddle_report,
    )

    dims = (20, 20, 20, 160)
    tables = []
    for mu1 in (0.1, 0.0):
        fps = coopetition_fixed_points((mu1, 0.0), 0.1, dims, n_starts=4096)
        tables.append(format_table(fps, (mu1, 0.0), 0.1, dims))
    with open(os.path.join(HERE, "phase_diagram_fixed_points.txt"), "w") as f:
        f.write("\n\n".join(tables) + "\n")
    pd = phase_diagram(dims, grid=13, n_starts=512)
    checks = check_phase_diagram_with_runs(
        pd, points=((0.1, 0.1), (0.2, 0.05), (0.05, 0.25), (0.0, 0.1), (0.0, 0.25)), n_runs=16
    )
    with open(os.path.join(HERE, "phase_diagram_checks.txt"), "w") as f:
        f.write("\n".join(checks.lines()) + "\n")
        f.write(
            "\nregime per grid point (rows mu1 = "
            + ", ".join(f"{m:.3g}" for m in pd.mu1)
            + "; columns alpha = "
            + ", ".join(f"{a:.3g}" for a in pd.alpha)
            + "):\n"
        )
        f.write("\n".join(" ".join(str(x) for x in row) for row in pd.regime) + "\n")
    plot_phase_diagram(pd, os.path.join(HERE, "phase_diagram_coopetition.png"), checks=checks)
    rep = saddle_report(3)
    with open(os.path.join(HERE, "saddle_report_n3.txt"), "w") as f:
        f.write(rep.text() + "\n\nLaTeX:\n" + rep.latex() + "\n")
    print("\n\n".join(tables))
    print("\n".join(checks.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
