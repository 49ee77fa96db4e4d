"""``python -m bridge.compare RUN1 RUN2 … [--out DIR]``: fit each run, tabulate the parameters side by side.

A RUN is a transformer log (``DIR/log.h5``) or a run directory containing ``log.h5``. Each run is
fitted with the same flags as ``python -m bridge.fit``; the table (Markdown) is printed and, with
``--out``, written to ``DIR/compare.md`` together with ``DIR/compare.json`` ({run: fit.json
contents}) and one ``DIR/NAME/fit.json`` + ``fit.png`` per run. The study predicts a smaller fitted
μ₁ for matched-exemplar runs, where ICL persists: the table shows μ₁ with its standard error.
Bad input (any run) prints one line ``error: PARAM: reason`` and exits with status 2 before
anything is written; if some fit does not converge the table marks it ``failed`` and the command
ends with one line ``error: fit did not converge: …`` and status 3.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from toymodels._internal import enable_persistent_cache, prepare_output_dir, write_text_atomic
from toymodels._internal.cli_tools import check_output_dir
from toymodels.errors import ConfigError, require

from .fit import (
    EXIT_BAD_INPUT,
    EXIT_NOT_CONVERGED,
    BridgeParser,
    add_fit_arguments,
    fit_from_args,
    flag,
    spec_and_settings,
    write_outputs,
)
from .fitting import minimum_points
from .logs import read_log
from .report import fit_dict, table_markdown, write_json_atomic


def log_path(run: str) -> str:
    path = os.path.join(run, "log.h5") if os.path.isdir(run) else run
    require(os.path.isfile(path), "log", f"no such log: {path}")
    return path


def run_names(paths: Sequence[str]) -> list[str]:
    """Short unique names: the run directory's name (parent of log.h5), made unique by suffixes."""
    names = []
    for p in paths:
        base = os.path.basename(os.path.dirname(os.path.abspath(p))) or "run"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def build_parser() -> argparse.ArgumentParser:
    p = BridgeParser(
        prog="python -m bridge.compare",
        description="Fit the coopetition toy to several transformer runs and tabulate the fitted parameters "
        "side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", help="transformer logs or run directories")
    p.add_argument("--out", default=None, help="directory for compare.md, compare.json and per-run fits")
    add_fit_arguments(p)
    p.add_argument("--no-plot", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec, _ = spec_and_settings(args)
        paths = [log_path(r) for r in args.runs]
        for path in paths:  # validate every log before fitting any
            read_log(
                path,
                spec.curve_names,
                metric=args.metric,
                min_points=max(args.min_points, minimum_points(spec)),
                skip_first=args.skip_first,
                max_seen=args.max_seen,
            )
        names = run_names(paths)
        if args.out is not None:
            check_output_dir(args.out)
        results = [fit_from_args(args, path) for path in paths]
        out = prepare_output_dir(args.out) if args.out is not None else None
    except ConfigError as e:
        print(f"error: {flag(e.param)}: {e.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rows = [(name, fit_dict(r)) for name, r in zip(names, results)]
    table = table_markdown(rows)
    print(table, end="")
    if out is not None:
        for name, r in zip(names, results):
            os.makedirs(os.path.join(out, name), exist_ok=True)
            write_outputs(r, os.path.join(out, name), plot=not args.no_plot)
        write_json_atomic({name: d for name, d in rows}, os.path.join(out, "compare.json"))
        write_text_atomic(os.path.join(out, "compare.md"), table)
        print(f"wrote compare.md, compare.json and {len(rows)} fits to {out}")
    failed = [(name, r.failure) for name, r in zip(names, results) if not r.converged]
    if failed:
        print(
            "error: fit did not converge: " + "; ".join(f"{name}: {why}" for name, why in failed),
            file=sys.stderr,
        )
        return EXIT_NOT_CONVERGED
    return 0


if __name__ == "__main__":
    enable_persistent_cache()
    sys.exit(main())
