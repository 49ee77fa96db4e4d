"""``python -m toymodels.analysis`` (alias ``python -m toymodels.saddle``): symbolic and fixed-point analysis.

``--n N`` prints the saddle report of the N-vector tensor-product model (:mod:`.saddle`; plain text and
LaTeX, or ``--latex`` only); ``--coopetition --mu1 … --alpha … --dims …`` prints the fixed-point table
of the reduced coopetition model (:mod:`.fixed_points`); ``--phase-diagram OUT.png`` draws the
(μ₁, α) diagram (:mod:`.phases`), checked against simulated runs with ``--check-runs``. Bad input
prints one line ``error: PARAM: reason`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigError
from .saddle import saddle_report

PROG = "python -m toymodels.analysis"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Symbolic saddle analysis of the N-vector model; "
        "fixed points and phase diagram of the coopetition model.",
    )
    ap.add_argument("--n", type=int, help="report for the N-vector tensor-product model")
    ap.add_argument("--latex", action="store_true", help="print the report in LaTeX only")
    ap.add_argument(
        "--coopetition", action="store_true", help="fixed-point table of the reduced coopetition model"
    )
    ap.add_argument("--mu1", type=float, default=0.1)
    ap.add_argument("--mu2", type=float, default=0.0)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--dims", type=float, nargs=4, default=(20, 20, 20, 160), metavar=("A", "B", "C", "D"))
    ap.add_argument("--starts", type=int, default=4096, help="random starts for numerical root finding")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    ap.add_argument("--phase-diagram", metavar="OUT.png", help="draw the (mu1, alpha) phase diagram")
    ap.add_argument("--grid", type=int, default=13, help="grid points per axis of the phase diagram")
    ap.add_argument(
        "--check-runs", action="store_true", help="check the phase diagram against simulated runs"
    )
    return ap


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); ``prog`` is the command shown in usage lines."""
    args = _parser(prog).parse_args(argv)
    try:
        did = False
        if args.n is not None:
            rep = saddle_report(args.n)
            if args.latex:
                print(rep.latex())
            else:
                print(rep.text())
                print()
                print("LaTeX:")
                print(rep.latex())
            did = True
        if args.coopetition:
            from .fixed_points import coopetition_fixed_points, format_table

            fps = coopetition_fixed_points(
                mu=(args.mu1, args.mu2),
                alpha=args.alpha,
                dims=tuple(args.dims),
                n_starts=args.starts,
                seed=args.seed,
            )
            print(format_table(fps, mu=(args.mu1, args.mu2), alpha=args.alpha, dims=tuple(args.dims)))
            did = True
        if args.phase_diagram:
            from .phases import phase_diagram, plot_phase_diagram

            pd = phase_diagram(
                dims=tuple(args.dims),
                mu2=args.mu2,
                grid=args.grid,
                n_starts=min(args.starts, 1024),
                seed=args.seed,
            )
            checks = None
            if args.check_runs:
                from .phases import check_phase_diagram_with_runs

                checks = check_phase_diagram_with_runs(pd)
                for line in checks.lines():
                    print(line)
            plot_phase_diagram(pd, args.phase_diagram, checks=checks)
            print(f"wrote {args.phase_diagram}")
            did = True
        if not did:
            raise ConfigError("--n", "give --n N, --coopetition or --phase-diagram OUT.png")
    except ConfigError as err:
        print(f"error: {err.param}: {err.message}", file=sys.stderr)
        return 2
    return 0


__all__ = ["PROG", "main"]
