"""``python -m transformer.sweep SPEC.toml --out DIR [--executor inline|local|slurm] ...``

Reads and checks the whole spec (:class:`~transformer.sweep.spec.SweepSpec`) before anything is
created or submitted: a bad spec prints one line ``error: …`` and exits with status 2. Then runs (or
resumes) the sweep (:func:`~transformer.sweep.run.run_sweep`), printing one line per run as its
status changes, and writes ``DIR/summary.csv``. Exit status 0 when every run is done, 1 when a run
failed or was skipped (the summary says which and why).
"""

from __future__ import annotations

import sys

from toymodels._internal import OneLineParser
from toymodels._internal.cli_tools import check_output_dir, error_line, parse_int
from toymodels.errors import ConfigError, require

from .run import EXECUTORS, print_event, run_sweep
from .spec import SweepSpec


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m transformer.sweep",
        description="Run a family of transformer trainings from a TOML spec (see transformer.sweep.spec).",
    )
    p.add_argument("spec", help="TOML file: [defaults] and one [runs.NAME] table per run or family")
    p.add_argument("--out", required=True, help="sweep directory: OUT/NAME/ per run, OUT/summary.csv")
    p.add_argument("--executor", default="inline", help=f"one of {', '.join(EXECUTORS)} (default inline)")
    p.add_argument("--max-parallel", default="0", help="jobs at a time (0: 1 local, unlimited slurm)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", default="240", help="minutes per job (default 240)")
    p.add_argument("--slurm-gpus", default="0", help="GPUs per job")
    p.add_argument("--slurm-cpus", default="0", help="CPUs per job")
    p.add_argument("--list", action="store_true", help="print the expanded runs and their state; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar for inline runs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        require(args.executor in EXECUTORS, "executor", f"must be one of {EXECUTORS} (got {args.executor!r})")
        max_parallel = parse_int(args.max_parallel, "max_parallel")
        require(max_parallel >= 0, "max_parallel", f"must be >= 0, got {max_parallel}")
        slurm = {"partition": args.slurm_partition}
        for key in ("time", "gpus", "cpus"):
            slurm[key] = parse_int(getattr(args, f"slurm_{key}"), f"slurm_{key}")
            require(slurm[key] >= 0, f"slurm_{key}", f"must be >= 0, got {slurm[key]}")
        spec = SweepSpec.from_toml(args.spec)
        check_output_dir(args.out)
        if args.list:
            from .run import run_state

            for r in spec.runs:
                deps = ", ".join(f"{k} {d.describe()}" for k, d in r.depends.items())
                print(f"{r.name}\t{run_state(args.out, r)}\t{r.config.n_sequences:.3g} sequences"
                      + (f"\t{deps}" if deps else ""))
            return 0
        rows = run_sweep(spec, args.out, executor=args.executor, slurm=slurm, max_parallel=max_parallel,
                         progress=not args.no_progress, on_event=print_event)
    except ConfigError as e:
        if e.param.startswith("runs."):  # a key of the spec file
            e = ConfigError("spec", f"{e.param}: {e.message}")
        print(error_line(e, positional=("spec",)), file=sys.stderr)
        return 2
    failed = [r["run"] for r in rows if r["status"] != "done"]
    print(f"summary: {args.out}/summary.csv ({len(rows) - len(failed)}/{len(rows)} runs done)")
    return 1 if failed else 0


__all__ = ["build_parser", "main"]
