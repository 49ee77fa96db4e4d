"""``python -m toymodels.sweep``: run a grid of toy-model runs into one resumable store.

A thin argparse layer over :func:`toymodels.sweep.run_sweep` whose flags are those of
``python -m toymodels`` (shared through :mod:`toymodels.cli`) plus the sweep's own. Axes come from
flags (``--mu1 0:0.2:21``, ``--alpha log:0.01:1:11``, ``--seeds 0-3``, ``--dims a=20 bc=10,20 d=160``,
``--method gd,flow``, ``--clamp-sets none,c,b+c``) or from a TOML/JSON ``--spec`` file (see
:mod:`toymodels.sweep.spec`). Runs are batched into compiled, vmapped chunks sharded over all local
JAX devices (:mod:`toymodels.sweep.chunk`); chunks run in this process (``--executor inline``) or as
submitit jobs (``local`` or ``slurm``, :mod:`toymodels.sweep.run`). Results go to ``OUT/sweep.h5`` +
``OUT/summary.csv`` (:mod:`toymodels.sweep.store`); summaries and verdicts are defined in
:mod:`toymodels.sweep.verdicts`. Re-running the same command resumes: finished chunks are skipped.

Bad input prints one line ``error: --flag: reason`` and exits with status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._internal.cli_tools import check_output_path, physical_memory
from ..cli import (
    ToyParser,
    add_method_arguments,
    add_model_arguments,
    finite_float,
    integer,
    method_from_args,
)
from ..errors import ConfigError, require
from ..experiment import DEFAULT_DIMS, MemoryEstimate, parse_ints
from ..losses import coopetition_model, tensor_model
from ..plotting import DPI
from .chunk import curve_names
from .run import EXECUTORS, run_sweep
from .spec import MAX_POINTS, SweepSpec, load_spec_file, parse_axis, parse_clamp_sets, parse_dims, parse_seeds
from .verdicts import VerdictThresholds

OUTPUTS = ("sweep.json", "sweep.h5", "summary.csv", "phase_diagram.png", "curves.png")
MAX_PLOT_POINTS = 16
"""Most points ``--plot-points`` may draw (a 4 × 4 grid)."""


def build_parser() -> argparse.ArgumentParser:
    p = ToyParser(
        prog="python -m toymodels.sweep",
        description="Sweep the toy models over grids of μ₁, μ₂, α, dimensions, seeds, init scale, "
        "clamps, method "
        "and model kind; write OUT/sweep.h5 (curves + summaries), OUT/summary.csv and phase diagrams. "
        "Resumable: re-run the same command to continue a killed sweep.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        conflict_handler="resolve",
    )
    add_model_arguments(p)
    p.add_argument("--seeds", default=None, help="seed axis: 7, 0-11, 0,3,5 (default 7)")
    add_method_arguments(p)
    p.add_argument("--out", default="results", help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (no progress bar)")
    # the axes replace the single-value flags of python -m toymodels (same names, axis syntax)
    a = p.add_argument_group("sweep axes (VALUE, A,B,C, START:STOP:NUM or log:START:STOP:NUM)")
    a.add_argument("--mu1", default=None, help="μ₁ axis (coopetition default 0.1)")
    a.add_argument("--mu2", default=None, help="μ₂ axis (default 0)")
    a.add_argument("--alpha", default=None, help="α axis (coopetition default 0.1)")
    a.add_argument("--init-scale", default=None, help="σ axis (default 1)")
    a.add_argument(
        "--dims",
        nargs="+",
        default=None,
        help="one axis per vector, or NAME=AXIS groups: a=20 bc=10:40:4 d=160",
    )
    a.add_argument("--method", default=None, help="method axis: gd, flow or gd,flow (default gd)")
    a.add_argument("--clamp-sets", default=None, help="clamp-set axis: none,c,b+c (alternative to --clamp)")
    a.add_argument(
        "--spec",
        default=None,
        help="TOML/JSON file of axes (keys: mu1 mu2 alpha dims seeds init_scale clamps method reduced)",
    )
    s = p.add_argument_group("sweep execution")
    s.add_argument(
        "--chunk-size",
        type=integer,
        default=0,
        help="runs per compiled call (0: automatic, ~256 MiB of curves)",
    )
    s.add_argument(
        "--curve-points", type=integer, default=401, help="stored points per curve (0: every recorded time)"
    )
    s.add_argument(
        "--coordinates",
        choices=("PEW", "PQ"),
        default=None,
        help="reduced model's state coordinates: PQ (default in float64; 2.5-6x faster) or "
        "PEW (default in float32; "
        "accurate near any minimum, equals a reduced run alone)",
    )
    s.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="inline",
        help="inline: this process; local/slurm: submitit jobs, one per chunk",
    )
    s.add_argument("--partition", default=None, help="SLURM partition")
    s.add_argument("--time", type=integer, default=60, help="SLURM/local job time limit in minutes")
    s.add_argument("--gpus", type=integer, default=0, help="GPUs per SLURM job")
    s.add_argument("--cpus", type=integer, default=0, help="CPUs per SLURM job (0: cluster default)")
    s.add_argument("--array-parallelism", type=integer, default=64, help="SLURM array jobs running at once")
    v = p.add_argument_group("summary measures and verdicts")
    th = VerdictThresholds()
    v.add_argument(
        "--emerge-ratio",
        type=finite_float,
        default=th.emerge_ratio,
        help="mechanism 1 emerged if min L₁ ≤ this × L₁ at the saddle",
    )
    v.add_argument(
        "--fade-ratio",
        type=finite_float,
        default=th.fade_ratio,
        help="transient if the final L₁ ≥ this × L₁ at the saddle",
    )
    v.add_argument(
        "--loss-threshold",
        type=finite_float,
        default=th.loss_threshold,
        help="loss level of loss_threshold_time",
    )
    v.add_argument(
        "--escape-ratio",
        type=finite_float,
        default=th.escape_ratio,
        help="plateau escape when some L_k < this × its saddle level",
    )
    g = p.add_argument_group("figures")
    g.add_argument(
        "--plot-axes", default=None, help="X,Y axes of the phase diagram (default: the first two swept axes)"
    )
    g.add_argument("--plot-points", default=None, help="points whose curves to plot: 0,5,9 or 0-3")
    return p


def _dims_vectors(model: str, dims_spec: Any) -> tuple[str, ...]:
    """Vector names the dims axis refers to (the tensor model's N follows from the axis itself)."""
    if model == "coopetition":
        return ("a", "b", "c", "d")
    if isinstance(dims_spec, dict):
        n = len("".join(dims_spec))
    elif isinstance(dims_spec, (list, tuple)) and any("=" in str(x) for x in dims_spec):
        n = len("".join(str(x).split("=", 1)[0] for x in dims_spec))
    else:
        n = len(dims_spec) if isinstance(dims_spec, (list, tuple)) else 1
    require(2 <= n <= 26, "dims", f"the tensor-product model needs 2 to 26 vectors (got {n})")
    return tuple("abcdefghijklmnopqrstuvwxyz"[:n])


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The sweep described by parsed arguments (flags and ``--spec`` file)."""
    from_file = load_spec_file(args.spec) if args.spec is not None else {}
    cli = {
        "mu1": args.mu1, "mu2": args.mu2, "alpha": args.alpha, "seeds": args.seeds,
        "init_scale": args.init_scale, "dims": args.dims, "method": args.method,
        "clamps": args.clamp_sets, "reduced": True if args.reduced else None,
    }  # fmt: skip
    if args.clamp:
        require(args.clamp_sets is None, "clamp", "give --clamp or --clamp-sets, not both")
        cli["clamps"] = [list(args.clamp)]  # one set; each NAME[:K] as python -m toymodels reads it
    elif args.clamp_sets is not None:
        cli["clamps"] = args.clamp_sets.split(",")
    for k, value in cli.items():
        if value is not None and k in from_file:
            raise ConfigError(k.replace("_", "-"), f"given both as a flag and in the spec file {args.spec!r}")
    axes = {**{k: v for k, v in cli.items() if v is not None}, **from_file}
    coop = args.model == "coopetition"
    if "dims" in axes:
        dims = parse_dims(axes["dims"], _dims_vectors(args.model, axes["dims"]))
    else:
        dims = (tuple(int(d) for d in DEFAULT_DIMS[args.model]),)
    methods = []
    method_axis = axes.get("method", "gd")
    names = method_axis.split(",") if isinstance(method_axis, str) else list(method_axis)
    for name in names:
        name = str(name).strip()
        require(name in ("gd", "flow"), "method", f"must be gd, flow or a list of them (got {name!r})")
        methods.append(method_from_args(argparse.Namespace(**{**vars(args), "method": name})))
    reduced = axes.get("reduced", False)
    reduced = list(reduced) if isinstance(reduced, (list, tuple)) else [reduced]
    require(
        len(reduced) > 0 and all(isinstance(r, bool) for r in reduced),
        "reduced",
        "expected true/false or a list of them",
    )
    structure = coopetition_model(dims[0], args.combine) if coop else tensor_model(dims[0])
    clamps = parse_clamp_sets(axes["clamps"], structure) if "clamps" in axes else ((),)
    return SweepSpec(
        model=args.model,
        combine=args.combine,
        prng=args.prng,
        precision=args.precision,
        methods=tuple(dict.fromkeys(methods)),
        reduced=tuple(dict.fromkeys(reduced)),
        clamps=clamps,
        dims=dims,
        init_scale=parse_axis(axes.get("init_scale", 1.0), "init-scale"),
        mu1=parse_axis(axes.get("mu1", 0.1 if coop else 0.0), "mu1"),
        mu2=parse_axis(axes.get("mu2", 0.0), "mu2"),
        alpha=parse_axis(axes.get("alpha", 0.1 if coop else 0.0), "alpha"),
        seeds=parse_seeds(axes.get("seeds", "7")),
        coordinates=args.coordinates,
    )


def thresholds_from_args(args: argparse.Namespace) -> VerdictThresholds:
    return VerdictThresholds(
        emerge_ratio=args.emerge_ratio,
        fade_ratio=args.fade_ratio,
        loss_threshold=args.loss_threshold,
        escape_ratio=args.escape_ratio,
    )


def _plot_axes(spec: SweepSpec, text: str | None) -> tuple[str, str] | None:
    from .plots import AXES

    if text is None:
        swept = [a for a in spec.swept_axes() if a in AXES and a != "seed"]
        return (swept[0], swept[1]) if len(swept) >= 2 else None
    parts = [s.strip() for s in text.split(",")]
    require(len(parts) == 2, "plot-axes", f"expected X,Y (got {text!r})")
    for a in parts:
        require(a in AXES, "plot-axes", f"unknown axis {a!r} (axes: {', '.join(AXES)})")
    return parts[0], parts[1]


def check_execution(args: argparse.Namespace) -> None:
    """The execution flags: sizes and SLURM resources."""
    require(
        0 <= args.chunk_size <= MAX_POINTS,
        "chunk-size",
        f"must be in [0, {MAX_POINTS}] (got {args.chunk_size})",
    )
    require(
        args.curve_points == 0 or args.curve_points >= 2,
        "curve-points",
        f"must be 0 (every recorded time) or >= 2 (got {args.curve_points})",
    )
    for flag, value, low in (("time", args.time, 1), ("gpus", args.gpus, 0), ("cpus", args.cpus, 0),
                             ("array-parallelism", args.array_parallelism, 1)):  # fmt: skip
        require(low <= value <= 10**6, flag, f"must be in [{low}, 10^6] (got {value})")


def chunk_memory(spec: SweepSpec, chunk_size: int) -> MemoryEstimate:
    """Peak memory of the largest chunk (an automatic chunk holds one run at the least)."""
    model = spec.build_model(spec.dims[0])
    return MemoryEstimate(
        n_times=max(m.steps // m.save_every + 1 if m.name == "gd" else m.n_save for m in spec.methods),
        n_measures=len(curve_names(model)),
        n_runs=min(max(chunk_size, 1), spec.n_points),
        vector_entries=max(sum(d) for d in spec.dims),  # drawn for the reduced model too
        time_flag="steps" if spec.methods[0].name == "gd" else "n-save",
        runs_flag="chunk-size",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    try:
        spec = spec_from_args(args)
        thresholds = thresholds_from_args(args)
        check_execution(args)
        chunk_memory(spec, args.chunk_size).check(physical_memory())
        plot_axes = _plot_axes(spec, args.plot_axes)
        plot_points = None
        if args.plot_points is not None:
            plot_points = parse_ints(args.plot_points, "plot-points", MAX_PLOT_POINTS)
            require(max(plot_points) < spec.n_points, "plot-points", f"points are 0..{spec.n_points - 1}")
        check_output_path(args.out, directory=True, files=OUTPUTS)
        slurm = {
            "partition": args.partition,
            "time": args.time,
            "gpus": args.gpus,
            "cpus": args.cpus,
            "array_parallelism": args.array_parallelism,
        }
        state = run_sweep(
            spec, args.out, thresholds, chunk_size=args.chunk_size, curve_points=args.curve_points,
            executor=args.executor, slurm=slurm, progress=not args.quiet,
        )  # fmt: skip
        t_run = time.perf_counter()
        written = ["sweep.h5", "summary.csv"]
        if not args.no_plot:
            from ..plotting import save_figure
            from .plots import phase_diagram, plot_points_curves
            from .store import SweepStore

            store = SweepStore(args.out)
            if plot_axes is not None:
                save_figure(
                    phase_diagram(store, *plot_axes), os.path.join(args.out, "phase_diagram.png"), dpi=DPI
                )
                written.append("phase_diagram.png")
            if plot_points:
                save_figure(
                    plot_points_curves(store, plot_points), os.path.join(args.out, "curves.png"), dpi=DPI
                )
                written.append("curves.png")
    except ConfigError as e:
        print(e.cli_line(), file=sys.stderr)
        return 2
    if not args.quiet:
        from .verdicts import VERDICTS

        counts = {name: int(np.sum(state.summary["verdict"] == k)) for k, name in enumerate(VERDICTS)}
        n_failed = int(np.sum(state.summary["failed"] & state.done))
        print(
            f"{int(state.done.sum())}/{spec.n_points} runs done · "
            + " · ".join(f"{k} {v}" for k, v in counts.items())
            + (f" · {n_failed} failed (diverged or solver gave up)" if n_failed else "")
        )
        print(f"wrote {', '.join(written)} to {args.out} ({t_run - t_start:.1f} s incl. compilation)")
    return 0
