"""``python -m toymodels``: run one toy-model configuration, write ``OUT/toymodel.h5`` and
``OUT/toymodel.png``.

A thin layer over :class:`toymodels.experiment.ToyConfig` and :func:`toymodels.experiment.run`.
Bad input prints one line ``error: --flag: reason`` and exits with status 2; nothing is written, not
even the output directory. Every value is checked before anything is compiled, including whether the
run fits this machine's memory (:class:`toymodels.experiment.MemoryEstimate`).

The parser and argument types here are shared with ``python -m toymodels.sweep`` and
``python -m toymodels.analysis``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Sequence

from ._internal import OneLineParser, prepare_output_dir
from ._internal.cli_tools import check_output_path, parse_int, physical_memory
from .clamps import Clamp
from .errors import ConfigError, require
from .experiment import MODELS, ToyConfig, parse_seeds
from .methods import SOLVERS, GradientDescent, GradientFlow
from .precision import PRECISIONS

_NO_STOP = "none"  # --stop-loss none (not a number: any number is a stop loss, -1 included)
OUTPUTS = ("toymodel.h5", "toymodel.png")


class ToyParser(OneLineParser):
    """One-line usage errors that name the flag first (``error: --lr: expected a number …``), and
    values that look like negative numbers are values: ``--alpha -0.1,0.1``, ``--mu1 -inf``,
    ``--dims -5 20 20 160`` reach the checks instead of being taken for unknown options."""

    NUMBER_LIKE = re.compile(r"^-(\.?\d|inf|nan)", re.IGNORECASE)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = self.NUMBER_LIKE  # argparse's hook for negative numbers

    def error(self, message: str):  # noqa: D401 - argparse API
        super().error(message.removeprefix("argument "))


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def integer(text: str) -> int:
    """argparse type: an integer (``16000``, or ``1.6e4`` when integral; :func:`parse_int`)."""
    try:
        return parse_int(text, "value")
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected an integer (got {text!r})") from None


def _stop_loss(text: str) -> float | str:
    if text.lower() in ("none", "off"):
        return _NO_STOP
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or none (got {text!r})") from None


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Model, loss and initialisation flags (shared with ``python -m toymodels.sweep``)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", choices=MODELS, default="coopetition", help="coopetition (a,b,c,d) or tensor (N vectors)"
    )
    g.add_argument(
        "--dims",
        type=finite_float,
        nargs="+",
        default=None,
        help="one dimension per vector (default: coopetition 20 20 20 160, tensor 20 20 20)",
    )
    g.add_argument(
        "--mu1", type=finite_float, default=None, help="offset μ₁ of mechanism 1 (coopetition default 0.1)"
    )
    g.add_argument("--mu2", type=finite_float, default=0.0, help="offset μ₂ of mechanism 2 (default 0)")
    g.add_argument(
        "--alpha", type=finite_float, default=None, help="competition strength α (coopetition default 0.1)"
    )
    g.add_argument("--combine", choices=("multiplicative", "additive"), default="multiplicative")
    g.add_argument("--init-scale", type=finite_float, default=1.0, help="σ: initial vectors are σ·N(0,1)")
    g.add_argument(
        "--prng",
        choices=("legacy", "partitionable"),
        default="legacy",
        help="legacy = the paper's threefry key derivation",
    )
    g.add_argument(
        "--clamp",
        action="append",
        default=[],
        metavar="NAME[:K]",
        help="hold vector NAME (or its first K entries) at its target; repeatable",
    )
    g.add_argument("--precision", choices=PRECISIONS, default="float64")
    g.add_argument(
        "--reduced", action="store_true", help="solve the exact reduced (P, Q) dynamics (dimension-free)"
    )


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """Dynamics flags (shared with the sweep)."""
    g = p.add_argument_group("dynamics")
    g.add_argument(
        "--method",
        choices=("gd", "flow"),
        default="gd",
        help="gradient descent (lax.scan) or gradient flow (Diffrax)",
    )
    g.add_argument(
        "--lr", type=finite_float, default=1.0, help="GD learning rate η (flow: default t-max = lr × steps)"
    )
    g.add_argument("--steps", type=integer, default=16000, help="GD steps")
    g.add_argument("--save-every", type=integer, default=1, help="GD: record every K-th step")
    g.add_argument("--t-max", type=finite_float, default=None, help="flow end time (default lr × steps)")
    g.add_argument("--n-save", type=integer, default=1601, help="flow: number of save times in [0, t-max]")
    g.add_argument(
        "--solver",
        choices=tuple(SOLVERS),
        default="tsit5",
        help="flow solver (kvaerno5/kvaerno3 are implicit)",
    )
    g.add_argument("--rtol", type=finite_float, default=1e-8)
    g.add_argument("--atol", type=finite_float, default=1e-10)
    g.add_argument("--max-steps", type=integer, default=200_000, help="flow solver step budget")
    g.add_argument(
        "--stop-loss",
        type=_stop_loss,
        default=None,
        help="stop when the loss < this; 'none' disables (default: 1e-6 for gd, none for flow)",
    )


def method_from_args(args: argparse.Namespace) -> GradientDescent | GradientFlow:
    stop = None if args.stop_loss == _NO_STOP else args.stop_loss
    if args.method == "gd":
        stop = 1e-6 if args.stop_loss is None else stop
        return GradientDescent(lr=args.lr, steps=args.steps, stop_loss=stop, save_every=args.save_every)
    require(args.lr > 0, "lr", f"must be > 0 (got {args.lr})")
    t_max = args.lr * args.steps if args.t_max is None else args.t_max
    return GradientFlow(
        t_max=t_max,
        n_save=args.n_save,
        solver=args.solver,
        rtol=args.rtol,
        atol=args.atol,
        max_steps=args.max_steps,
        stop_loss=stop,
    )


def config_from_args(args: argparse.Namespace, seeds: Sequence[int] = (7,)) -> ToyConfig:
    coop = args.model == "coopetition"
    mu1 = (0.1 if coop else 0.0) if args.mu1 is None else args.mu1
    alpha = (0.1 if coop else 0.0) if args.alpha is None else args.alpha
    require(args.dims is None or len(args.dims) >= 1, "dims", "give one dimension per vector")
    mu = (mu1, args.mu2) if coop else (mu1,)
    require(coop or args.mu2 == 0, "mu2", "the tensor model has one mechanism")
    return ToyConfig(
        model=args.model,
        dims=None if args.dims is None else tuple(args.dims),
        mu=mu,
        alpha=alpha,
        combine=args.combine,
        seeds=tuple(seeds),
        init_scale=args.init_scale,
        prng=args.prng,
        method=method_from_args(args),
        clamps=tuple(Clamp.parse(c) for c in args.clamp),
        precision=args.precision,
        reduced=args.reduced,
    )


def build_parser() -> argparse.ArgumentParser:
    p = ToyParser(
        prog="python -m toymodels",
        description="Run a toy model of strategy coopetition (or the N-vector tensor-product model) and "
        "write OUT/toymodel.h5 and OUT/toymodel.png. Defaults reproduce thesis Fig. 5.9a.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(p)
    p.add_argument("--seeds", default="7", help="seeds: 7, 0-11, 0,3,5")
    add_method_arguments(p)
    p.add_argument("--out", default="results", help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    try:
        config = config_from_args(args, parse_seeds(args.seeds))
        config.memory().check(physical_memory())  # first: `--steps 10**11` is a memory problem first
        config.validate()
        out = check_output_path(args.out, directory=True, files=OUTPUTS)
        from .experiment import run, summary_lines

        result = run(config)
        t_run = time.perf_counter()
        prepare_output_dir(out)
        result.save(os.path.join(out, "toymodel.h5"))
        if not args.no_plot:
            from .plotting import DPI, plot_result, save_figure

            save_figure(plot_result(result), os.path.join(out, "toymodel.png"), dpi=DPI)
    except ConfigError as e:
        print(e.cli_line(), file=sys.stderr)
        return 2
    if not args.quiet:
        for line in summary_lines(result):
            print(line)
        for line in result.failures():
            print(f"warning: {line}", file=sys.stderr)
        written = "toymodel.h5" + ("" if args.no_plot else " and toymodel.png")
        print(f"wrote {written} to {out} (simulation {t_run - t_start:.2f} s incl. compilation)")
    return 0
