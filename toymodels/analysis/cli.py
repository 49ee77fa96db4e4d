"""``python -m toymodels.analysis`` (alias ``python -m toymodels.saddle``): symbolic and fixed-point analysis.

``--n N`` prints the saddle report of the N-vector tensor-product model (:mod:`.saddle`; plain text and
LaTeX, or ``--latex`` only); ``--coopetition --mu1 … --alpha … --dims …`` prints the fixed-point table
of the reduced coopetition model (:mod:`.fixed_points`); ``--phase-diagram OUT.png`` draws the
(μ₁, α) diagram (:mod:`.phases`), checked against simulated runs with ``--check-runs``. Bad input
prints one line ``error: --flag: reason`` and exits with status 2, before anything is computed or
written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..cli import ToyParser, finite_float, integer
from ..errors import ConfigError, require
from ..experiment import MAX_DIM
from .saddle import saddle_report

PROG = "python -m toymodels.analysis"
MAX_GRID = 101
"""Most grid points per axis of the phase diagram (each point is a batch of Newton solves)."""
MAX_STARTS = 1_000_000
"""Most random starts of the fixed-point search."""


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    ap = ToyParser(
        prog=prog,
        description="Symbolic saddle analysis of the N-vector model; "
        "fixed points and phase diagram of the coopetition model.",
    )
    ap.add_argument("--n", type=integer, help="report for the N-vector tensor-product model")
    ap.add_argument("--latex", action="store_true", help="print the report in LaTeX only")
    ap.add_argument(
        "--coopetition", action="store_true", help="fixed-point table of the reduced coopetition model"
    )
    ap.add_argument("--mu1", type=finite_float, default=0.1)
    ap.add_argument("--mu2", type=finite_float, default=0.0)
    ap.add_argument("--alpha", type=finite_float, default=0.1)
    ap.add_argument(
        "--dims", type=finite_float, nargs=4, default=(20, 20, 20, 160), metavar=("A", "B", "C", "D")
    )
    ap.add_argument("--starts", type=integer, default=4096, help="random starts for numerical root finding")
    ap.add_argument("--seed", type=integer, default=0, help="seed of the random starts")
    ap.add_argument("--phase-diagram", metavar="OUT.png", help="draw the (mu1, alpha) phase diagram")
    ap.add_argument("--grid", type=integer, default=13, help="grid points per axis of the phase diagram")
    ap.add_argument(
        "--check-runs", action="store_true", help="check the phase diagram against simulated runs"
    )
    return ap


def check_args(args: argparse.Namespace) -> None:
    """Every value, before anything is derived, solved or written."""
    if args.n is not None:
        require(2 <= args.n <= 26, "n", f"N must be an integer in [2, 26] (got {args.n})")
    for flag in ("mu1", "mu2", "alpha"):
        value = getattr(args, flag)
        require(value >= 0, flag, f"must be >= 0 (got {value:g})")
    for name, dim in zip("abcd", args.dims):
        require(1 <= dim <= MAX_DIM, "dims", f"dimension of {name!r} must be in [1, {MAX_DIM}] (got {dim:g})")
    require(1 <= args.starts <= MAX_STARTS, "starts", f"must be in [1, {MAX_STARTS}] (got {args.starts})")
    require(0 <= args.seed < 2**32, "seed", f"must be in [0, 2^32) (got {args.seed})")
    require(1 <= args.grid <= MAX_GRID, "grid", f"must be in [1, {MAX_GRID}] (got {args.grid})")
    if args.phase_diagram is not None:
        from ..plotting import check_figure_path

        check_figure_path(args.phase_diagram, "phase-diagram")
    require(
        args.n is not None or args.coopetition or args.phase_diagram is not None,
        "n",
        "give --n N, --coopetition or --phase-diagram OUT.png",
    )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); ``prog`` is the command shown in usage lines."""
    args = _parser(prog).parse_args(argv)
    try:
        check_args(args)
        if args.n is not None:
            rep = saddle_report(args.n)
            if args.latex:
                print(rep.latex())
            else:
                print(rep.text())
                print()
                print("LaTeX:")
                print(rep.latex())
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
        if args.phase_diagram is not None:
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
    except ConfigError as err:
        print(err.cli_line(), file=sys.stderr)
        return 2
    return 0


__all__ = ["PROG", "main"]
