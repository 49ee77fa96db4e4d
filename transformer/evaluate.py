"""``python -m transformer.evaluate RUN_DIR --out FILE.h5``: re-evaluate every kept checkpoint of a run.

Options: ``--opto NAME:key=value,...`` / ``--opto-file FILE.json`` (interventions, as in training;
added to the run's own), ``--drop-run-opto`` (evaluate without the run's training interventions),
``--modules-from SRC:MODULES`` (replace modules such as ``blocks.1,unembed`` by those of another
checkpoint: ``RUN@last``, ``RUN@SEQUENCES`` or a checkpoint path), ``--evaluators icl,flip_icl``.
Writes a log in the training layout (:func:`transformer.reevaluate.evaluate_run`). Bad input (a
missing or corrupt run, a bad option, an unwritable ``--out``) prints one line ``error: --flag:
reason`` (``error: run: reason`` for the run), exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

from toymodels._internal.cli_tools import OneLineParser, error_line
from toymodels.errors import ConfigError

from .opto.cli import add_opto_arguments, interventions_from_args
from .reevaluate import evaluate_run, parse_source


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m transformer.evaluate",
        description="Evaluate every kept checkpoint of a run (with interventions or modules from "
        "another checkpoint) and write a log in the training layout.",
    )
    p.add_argument("run", help="run directory (its ckpt-* checkpoints)")
    p.add_argument("--out", required=True, help="output log (HDF5)")
    p.add_argument(
        "--modules-from",
        default=None,
        metavar="SRC:MODULES",
        help="e.g. runs/a@last:blocks.1,unembed or runs/a@2e6:embed_x,embed_label,pos,blocks.0",
    )
    p.add_argument("--evaluators", default=None, help="comma-separated subset of the run's evaluators")
    p.add_argument(
        "--drop-run-opto",
        action="store_true",
        help="evaluate without the interventions the run was trained with",
    )
    p.add_argument("--no-progress", action="store_true")
    add_opto_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        interventions = interventions_from_args(args)
        source = None if args.modules_from is None else parse_source(args.modules_from)
        evaluators = (
            None if args.evaluators is None else tuple(e for e in args.evaluators.split(",") if e.strip())
        )

        def progress(i: int, n: int) -> None:
            if not args.no_progress:
                print(f"\r{i}/{n} checkpoints", end="", file=sys.stderr, flush=True)

        out = evaluate_run(
            args.run,
            args.out,
            interventions,
            source,
            evaluators,
            keep_run_opto=not args.drop_run_opto,
            progress=progress,
        )
    except ConfigError as e:
        print(error_line(e, positional=("run",)), file=sys.stderr)
        return 2
    except MemoryError:
        print("error: run: out of memory evaluating its checkpoints", file=sys.stderr)
        return 2
    if not args.no_progress:
        print(file=sys.stderr)
    print(f"wrote {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
