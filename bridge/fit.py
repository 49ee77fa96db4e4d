"""``python -m bridge.fit DIR/log.h5 --out FIT_DIR``: fit the coopetition toy to a transformer log.

Writes ``FIT_DIR/fit.json`` (see :mod:`bridge.report`) and ``FIT_DIR/fit.png`` (overlay, residuals and
the toy in its own units), both atomically; with ``--refine-integer`` also ``FIT_DIR/refine.json``.
A thin layer over :func:`bridge.logs.read_log`, :func:`bridge.fitting.fit_curves` and
:mod:`bridge.report`. Bad input (a bad flag, a missing, corrupt, truncated or wrongly shaped log,
non-finite values, an unwritable or file-occupied ``--out``) prints one line
``error: --flag: reason`` and exits with status 2, creating nothing. A fit that does not converge
(:func:`bridge.fitting.failure_reason`) prints one line ``error: fit did not converge: reason``,
writes ``fit.json`` with ``"converged": false`` (no figure, no table) and exits with status 3.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from toymodels._internal import OneLineParser, enable_persistent_cache, parse_int_list, prepare_output_dir
from toymodels._internal.cli_tools import check_output_dir
from toymodels.errors import ConfigError, require

from .evolve import EvolutionSettings
from .fitting import SEARCHES, FitResult, FitSettings, fit_curves, minimum_points
from .logs import METRICS, parse_curve_names, read_log
from .optimise import OptimiserSettings
from .refine import refine_integer
from .report import failure_line, fit_dict, overlay_figure, summary_lines, write_json_atomic
from .spec import DEFAULT_FAMILY, FAMILIES, TOY_PARAMETERS, FitSpec, spec_for

EXIT_BAD_INPUT = 2
EXIT_NOT_CONVERGED = 3


class BridgeParser(OneLineParser):
    """Usage errors as ``error: --flag: reason`` (one line, exit status 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        if message.startswith("argument "):
            flag_, _, reason = message[len("argument ") :].partition(": ")
            message = f"{flag_.split('/')[0]}: {reason}"
        elif message.startswith("the following arguments are required: "):
            message = f"{message.split(': ', 1)[1].split(',')[0]}: required"
        self.exit(EXIT_BAD_INPUT, f"error: {message}\n")


def parse_fixed(items: Sequence[str]) -> dict[str, float]:
    """``["mu2=0", "overlap=1"]`` → {"mu2": 0.0, "overlap": 1.0}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        require(bool(sep), "fix", f"expected NAME=VALUE (got {item!r})")
        require(
            name in TOY_PARAMETERS, "fix", f"unknown parameter {name!r} (known: {', '.join(TOY_PARAMETERS)})"
        )
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError("fix", f"{name}: not a number: {value!r}") from None
    return out


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """Fit flags (shared with ``python -m bridge.compare``)."""
    g = p.add_argument_group("fit")
    g.add_argument(
        "--curves",
        default="icl,ciwl,total",
        help="transformer curves to fit jointly (icl ↔ mechanism 1, ciwl ↔ mechanism 2, "
        "total/train_eval ↔ total loss)",
    )
    g.add_argument("--metric", choices=METRICS, default="loss", help="loss, or error = 1 − accuracy")
    g.add_argument(
        "--family",
        choices=tuple(FAMILIES),
        default=None,
        help="the free parameters: exact (14: every initial norm and c's own parameters free; contains the "
        f"toy's seeds, docs/bridge.md) or typical (8: q(0) = 1, c tied to b); default {DEFAULT_FAMILY}; "
        "or name them with --free",
    )
    g.add_argument(
        "--free",
        default=None,
        help=f"toy parameters to fit, from {', '.join(TOY_PARAMETERS)} (None: those of --family)",
    )
    g.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of a parameter that is not fitted (default mu2=0, overlap=1); repeatable",
    )
    g.add_argument(
        "--robust",
        type=float,
        default=None,
        metavar="DELTA",
        help="Huber loss with threshold DELTA (in units of each curve's spread) instead of least squares",
    )
    g.add_argument("--starts", type=int, default=8, help="number of starts minimised (vmapped)")
    g.add_argument(
        "--candidates",
        type=int,
        default=48,
        help="random parameter sets screened (× a span grid) for the starts",
    )
    g.add_argument(
        "--search",
        choices=SEARCHES,
        default=FitSettings().search,
        help="global search: the screen's best points are evolved by CMA-ES before the local minimisation "
        "(bridge.evolve; the default), or they are its starts (screen)",
    )
    g.add_argument(
        "--searches",
        type=int,
        default=FitSettings().searches,
        help="independent global searches (seeds SEED, SEED+1000, ...); the fit is the best point of all "
        "of them, and it warns when not every search reached that basin",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads that run the searches at once (default: one per search, up to the cores this "
        "process may use; the result does not depend on it)",
    )
    evo = EvolutionSettings()
    g.add_argument("--cma-instances", type=int, default=evo.instances, help="CMA-ES instances")
    g.add_argument("--cma-popsize", type=int, default=evo.popsize, help="CMA-ES population per generation")
    g.add_argument("--cma-generations", type=int, default=evo.generations, help="most CMA-ES generations")
    g.add_argument(
        "--cma-max-steps",
        type=int,
        default=evo.max_steps,
        help="solver step budget of a CMA-ES fit's search, minimisation and profiles (its final curves "
        "use the full budget)",
    )
    g.add_argument("--no-profile", action="store_true", help="skip the profile-likelihood intervals (faster)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random initial guesses")
    g.add_argument("--adam-steps", type=int, default=40)
    g.add_argument("--lm-steps", type=int, default=120)
    g.add_argument(
        "--horizon", type=float, default=3.0, help="transience prediction up to HORIZON × the log's length"
    )
    g.add_argument(
        "--min-points",
        type=int,
        default=4,
        help="refuse logs with fewer evaluations; the fit itself needs at least the free parameters "
        "+ 2 per curve + 2 (16 with the defaults)",
    )
    g.add_argument(
        "--max-seen",
        type=float,
        default=None,
        metavar="S",
        help="fit only the evaluations up to S sequences seen",
    )
    g.add_argument(
        "--skip-first",
        type=int,
        default=0,
        metavar="N",
        help="leave out the first N evaluations (e.g. the loss at initialisation, which the toy does not "
        "model)",
    )


def spec_and_settings(args: argparse.Namespace) -> tuple[FitSpec, FitSettings]:
    """The :class:`~bridge.spec.FitSpec` and :class:`~bridge.fitting.FitSettings` the flags describe
    (raises ConfigError on bad flags)."""
    curves_names = parse_curve_names(args.curves)
    require(
        args.free is None or args.family is None,
        "free",
        "give either --free or --family, not both",
    )
    if args.free is None:
        free = FAMILIES[args.family or DEFAULT_FAMILY]
    else:
        free = tuple(s.strip() for s in args.free.split(",") if s.strip())
    require(args.adam_steps >= 0, "adam-steps", f"must be >= 0 (got {args.adam_steps})")
    require(args.lm_steps >= 1, "lm-steps", f"must be >= 1 (got {args.lm_steps})")
    require(args.min_points >= 4, "min-points", f"must be >= 4 (got {args.min_points})")
    require(args.starts >= 1, "starts", f"must be >= 1 (got {args.starts})")
    require(args.candidates >= 1, "candidates", f"must be >= 1 (got {args.candidates})")
    require(args.seed >= 0, "seed", f"must be >= 0 (got {args.seed})")
    require(args.workers is None or args.workers >= 1, "workers", f"must be >= 1 (got {args.workers})")
    require(args.skip_first >= 0, "skip-first", f"must be >= 0 (got {args.skip_first})")
    require(
        math.isfinite(args.horizon) and args.horizon >= 1, "horizon", f"must be >= 1 (got {args.horizon})"
    )
    require(
        args.max_seen is None or (math.isfinite(args.max_seen) and args.max_seen > 0),
        "max-seen",
        f"must be a number > 0 (got {args.max_seen})",
    )
    spec = spec_for(curves_names, free=free, fixed=parse_fixed(args.fix), robust=args.robust)
    settings = FitSettings(
        n_starts=args.starts,
        n_candidates=args.candidates,
        profile=not args.no_profile,
        seed=args.seed,
        optimiser=OptimiserSettings(adam_steps=args.adam_steps, lm_steps=args.lm_steps),
        horizon=args.horizon,
        search=args.search,
        searches=args.searches,
        workers=args.workers,
        evolution=EvolutionSettings(
            instances=args.cma_instances,
            popsize=args.cma_popsize,
            generations=args.cma_generations,
            max_steps=args.cma_max_steps,
        ),
    )
    return spec, settings


def fit_from_args(args: argparse.Namespace, log_path: str) -> FitResult:
    """Read the log and fit it as the flags say (raises ConfigError on bad input)."""
    spec, settings = spec_and_settings(args)
    curves_names = spec.curve_names
    curves = read_log(
        log_path,
        curves_names,
        metric=args.metric,
        min_points=args.min_points,
        skip_first=args.skip_first,
        max_seen=args.max_seen,
    )
    return fit_curves(curves, spec, settings)


def write_outputs(result: FitResult, out: str, plot: bool = True) -> list[str]:
    """``fit.json`` and (optionally) ``fit.png`` in ``out``; returns the names written. A fit that did
    not converge gets ``fit.json`` only: no figure presents it as a result."""
    written = []
    if plot and result.converged:
        from toymodels.plotting import save_figure  # matplotlib only when plotting

        save_figure(overlay_figure(result), os.path.join(out, "fit.png"))
        written.append("fit.png")
    write_json_atomic(fit_dict(result), os.path.join(out, "fit.json"))
    written.insert(0, "fit.json")
    return written


def build_parser() -> argparse.ArgumentParser:
    p = BridgeParser(
        prog="python -m bridge.fit",
        description="Fit the strategy-coopetition toy (μ₁, α, effective dimensions, time and loss scales) "
        "to a transformer log and write FIT_DIR/fit.json and FIT_DIR/fit.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("log", help="transformer log (DIR/log.h5)")
    p.add_argument("--out", required=True, help="output directory")
    add_fit_arguments(p)
    p.add_argument(
        "--refine-integer",
        action="store_true",
        help="also re-fit with the full-vector model at the neighbouring integer dimensions and seeds "
        "(refine.json)",
    )
    p.add_argument("--refine-seeds", default="0-3", help="seeds for --refine-integer")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def flag(param: str) -> str:
    return param if param in ("log", "curves_data") else "--" + param.replace("_", "-")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec, _ = spec_and_settings(args)  # every flag and the log are checked before anything is written
        read_log(
            args.log,
            spec.curve_names,
            metric=args.metric,
            min_points=max(args.min_points, minimum_points(spec)),
            skip_first=args.skip_first,
            max_seen=args.max_seen,
        )
        if args.refine_integer:
            parse_int_list(args.refine_seeds, "refine-seeds")
        check_output_dir(args.out)
        result = fit_from_args(args, args.log)
        out = prepare_output_dir(args.out)
        if not result.converged:
            write_outputs(result, out)  # fit.json only
            print(f"error: {failure_line(result)} (fit.json records it)", file=sys.stderr)
            return EXIT_NOT_CONVERGED
        refine = None
        if args.refine_integer:
            refine = refine_integer(result, seeds=parse_int_list(args.refine_seeds, "refine-seeds"))
        written = write_outputs(result, out, plot=not args.no_plot)
        if refine is not None:
            write_json_atomic(refine.to_dict(), os.path.join(out, "refine.json"))
            written.append("refine.json")
    except ConfigError as e:
        print(f"error: {flag(e.param)}: {e.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.quiet:
        for line in summary_lines(result):
            print(line)
        if refine is not None:
            for line in refine.summary_lines():
                print(line)
        print(f"wrote {', '.join(written)} to {out}")
    return 0


if __name__ == "__main__":
    enable_persistent_cache()
    sys.exit(main())
