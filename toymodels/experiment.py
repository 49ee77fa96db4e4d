"""One toy-model experiment as a value: :class:`ToyConfig` → :func:`run` → :class:`ToyResult`.

This is what ``python -m toymodels`` runs and what notebooks and sweeps call directly.
Defaults reproduce thesis Fig. 5.9a: the coopetition model with dims 20 20 20 160, μ₁ = α = 0.1,
seed 7, gradient descent with η = 1 for up to 16000 steps, stopping when the loss < 1e-6.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ._internal import parse_int_list
from .clamps import Clamp, check_clamps
from .dynamics import simulate
from .errors import ConfigError, require
from .init import PRNG_MODES, draw_vectors
from .losses import ToyModel, coopetition_model, loss_params, tensor_model
from .measures import measure_names
from .methods import GradientDescent, Method
from .precision import check_precision, numerics
from .results import ToyResult

MODELS = ("coopetition", "tensor")
DEFAULT_DIMS = {"coopetition": (20, 20, 20, 160), "tensor": (20, 20, 20)}
MAX_SEEDS = 1_000_000
"""Most seeds one list may name (a longer list could never be run: see :class:`MemoryEstimate`)."""
MAX_STEPS = 2**31 - 2
"""Most gradient-descent steps: the step counter of the compiled loop is a 32-bit integer."""
MAX_DIM = 2**31 - 1
"""Largest dimension of a vector (array sizes are 32-bit in XLA)."""


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Everything that defines a batch of toy-model runs (one run per seed).

    Attributes:
        model: ``"coopetition"`` (a, b, c, d; mechanisms abc and dbc; competition a·d) or
            ``"tensor"`` (one mechanism over N = len(dims) vectors).
        dims: one dimension per vector (``None``: the model's default).
        mu: offsets (μ₁, μ₂, …) per mechanism; α: competition strength; combine: the rule.
        seeds: one run per seed (paper-compatible draws).
        init_scale: σ, initial vectors are σ·N(0, 1).
        prng: ``"legacy"`` (paper-compatible) or ``"partitionable"``.
        method: :class:`GradientDescent` or :class:`GradientFlow`.
        clamps: vectors (or first entries) held at their targets.
        precision: ``"float64"`` or ``"float32"``.
        reduced: solve the exact reduced (P, Q) dynamics instead of the full vectors.
    """

    model: str = "coopetition"
    dims: tuple[float, ...] | None = None
    mu: tuple[float, ...] = (0.1, 0.0)
    alpha: float = 0.1
    combine: str = "multiplicative"
    seeds: tuple[int, ...] = (7,)
    init_scale: float = 1.0
    prng: str = "legacy"
    method: Method = dataclasses.field(default_factory=GradientDescent)
    clamps: tuple[Clamp, ...] = ()
    precision: str = "float64"
    reduced: bool = False

    def build_model(self) -> ToyModel:
        require(self.model in MODELS, "model", f"must be one of {MODELS} (got {self.model!r})")
        dims = DEFAULT_DIMS[self.model] if self.dims is None else tuple(self.dims)
        if self.model == "coopetition":
            return coopetition_model(dims, combine=self.combine)
        return tensor_model(dims)

    def validate(self) -> ToyModel:
        """Check every parameter; returns the model. Raises ConfigError naming the parameter.

        Cheap (nothing is compiled or drawn): a command line calls it before it creates any file."""
        model = self.build_model()
        for name, dim in zip(model.vectors, model.dims):
            require(dim <= MAX_DIM, "dims", f"dimension of {name!r} must be <= {MAX_DIM} (got {dim:g})")
        loss_params(model, self.mu, self.alpha)
        check_clamps(model, self.clamps)
        check_precision(self.precision)
        check_seeds(self.seeds)
        require(self.prng in PRNG_MODES, "prng", f"must be one of {PRNG_MODES} (got {self.prng!r})")
        require(
            math.isfinite(self.init_scale) and self.init_scale >= 0,
            "init_scale",
            f"must be a finite number >= 0 (got {self.init_scale})",
        )
        check_method(self.method)
        for name, dim in zip(model.vectors, model.dims):  # run() draws vectors, for the reduced model too
            require(
                float(dim).is_integer(),
                "dims",
                f"dimension of {name!r} must be an integer for the full-vector model (got {dim:g})"
                if not self.reduced
                else f"dimension of {name!r} must be an integer (got {dim:g}): the reduced model's initial "
                "vectors are drawn too (real dimensions: toymodels.reduced.typical_initial_stats)",
            )
        return model

    def memory(self) -> MemoryEstimate:
        """Estimated peak memory of :func:`run` (see :class:`MemoryEstimate`)."""
        model = self.build_model()
        return MemoryEstimate(
            n_times=_n_records(self.method),
            n_measures=len(measure_names(model)),
            n_runs=len(self.seeds),
            vector_entries=int(sum(model.dims)),
            time_flag="steps" if self.method.name == "gd" else "n-save",
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method"] = {"name": self.method.name, **dataclasses.asdict(self.method)}
        d["clamps"] = [str(c) for c in self.clamps]
        return d


def check_method(method: Method) -> None:
    """Limits of a method beyond its own validation: GD steps fit the 32-bit step counter; the flow's
    tolerances are finite and its step budget fits a 32-bit integer."""
    if method.name == "gd":
        require(method.steps <= MAX_STEPS, "steps", f"must be <= {MAX_STEPS} (got {method.steps})")
        return
    for name in ("rtol", "atol"):
        value = getattr(method, name)
        require(math.isfinite(value), name, f"must be a finite number > 0 (got {value})")
    require(method.max_steps <= MAX_STEPS, "max_steps", f"must be <= {MAX_STEPS} (got {method.max_steps})")


def _n_records(method: Method) -> int:
    """Number of recorded times (without building them: ``--steps 10**11`` is refused, not allocated)."""
    if method.name == "gd":
        return method.steps // method.save_every + 1
    return method.n_save if method.save_times is None else len(method.save_times)


def check_seeds(seeds) -> None:
    """Seeds are integers in [0, 2^31), at least one, at most :data:`MAX_SEEDS`."""
    require(len(seeds) >= 1, "seeds", "at least one seed is needed")
    require(len(seeds) <= MAX_SEEDS, "seeds", f"at most {MAX_SEEDS} seeds (got {len(seeds)})")
    for s in seeds:
        require(int(s) == s and 0 <= s < 2**31, "seeds", f"seeds must be integers in [0, 2^31) (got {s})")


def parse_ints(text: str, param: str, max_count: int) -> tuple[int, ...]:
    """``7``, ``0-11``, ``0,3,5`` or ``0-3,8`` as integers >= 0, at most ``max_count`` of them. Ranges
    are checked before they are expanded: ``5-2`` is an empty range, ``0-10**12`` costs nothing."""
    count = 0
    for part in text.split(","):
        lo, sep, hi = (x.strip() for x in part.partition("-"))
        try:
            a, b = (int(lo), int(hi)) if sep and lo.isdecimal() and hi.isdecimal() else (0, 0)
        except ValueError:  # more digits than Python converts: parse_int_list reports it
            a = b = 0
        require(a <= b, param, f"empty range {part.strip()!r} ({lo} > {hi})")
        count += b - a + 1
        require(count <= max_count, param, f"at most {max_count} values (got {text!r})")
    return parse_int_list(text, param)


def parse_seeds(spec: Any, param: str = "seeds") -> tuple[int, ...]:
    """Seeds from ``7``, ``"0-11"``, ``"0,3,5"``, ``"0-3,8"`` or a list of these (spec files);
    checked with :func:`check_seeds`."""
    if isinstance(spec, bool):
        raise ConfigError(param, f"expected integers (got {spec!r})")
    if isinstance(spec, int):
        spec = str(spec)
    if isinstance(spec, (list, tuple)):
        require(len(spec) > 0, param, "empty list")
        seeds = tuple(s for item in spec for s in parse_seeds(item, param))
    else:
        require(isinstance(spec, str), param, f"expected integers like 7, 0-11 or 0,3,5 (got {spec!r})")
        seeds = parse_ints(spec, param, MAX_SEEDS)
    check_seeds(seeds)
    return seeds


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a batch of runs, estimated before anything is compiled.

    Two parts dominate: the recorded values (times × measures × runs, float64, held about twice:
    the compiled loop's output and the host copy) and the vectors (targets, initial, current and next
    state, gradient, mask and their host copies: about :attr:`VECTOR_COPIES` float64 arrays of all
    entries of every run; measured 9 with one 10⁸-entry vector).
    """

    n_times: int
    n_measures: int
    n_runs: int
    vector_entries: int
    time_flag: str = "steps"
    runs_flag: str = "seeds"

    VALUE_BYTES = 8
    RECORD_COPIES = 2
    VECTOR_COPIES = 10

    def __post_init__(self) -> None:
        for name in ("n_times", "n_measures", "n_runs", "vector_entries"):
            require(getattr(self, name) >= 0, name, f"must be >= 0 (got {getattr(self, name)})")

    @property
    def recorded_bytes(self) -> int:
        return self.RECORD_COPIES * self.n_times * self.n_measures * self.n_runs * self.VALUE_BYTES

    @property
    def vector_bytes(self) -> int:
        return self.VECTOR_COPIES * self.vector_entries * self.n_runs * self.VALUE_BYTES

    @property
    def total_bytes(self) -> int:
        return self.recorded_bytes + self.vector_bytes

    @property
    def flag(self) -> str:
        """The flag that drives the estimate (the one to change)."""
        if self.vector_bytes > self.recorded_bytes:
            return "dims" if self.vector_entries >= self.n_runs else self.runs_flag
        return self.time_flag if self.n_times >= self.n_runs else self.runs_flag

    def explain(self) -> str:
        """How the estimate comes about, and what to change."""
        if self.vector_bytes > self.recorded_bytes:
            what = f"{self.vector_entries} vector entries × {self.n_runs} runs × {self.VECTOR_COPIES}"
        else:
            what = f"{self.n_times} recorded times × {self.n_measures} measures × {self.n_runs} runs"
            what += f" × {self.RECORD_COPIES}"
        hint = {
            "steps": "record fewer times with --save-every",
            "n-save": "save fewer times",
            "seeds": "run fewer seeds at once",
            "chunk-size": "use smaller chunks",
            "dims": "use smaller dimensions",
        }[self.flag]
        return f"{what} copies × {self.VALUE_BYTES} bytes; {hint}"

    def check(self, available_bytes: int | None) -> None:
        """Raise :class:`ConfigError` (naming :attr:`flag`) if the estimate exceeds ``available_bytes``
        (a command line passes the machine's physical memory; ``None``, unknown: no check)."""
        if available_bytes is None:
            return
        require(
            self.total_bytes <= available_bytes,
            self.flag,
            f"needs ~{_gib(self.total_bytes)} GiB of memory, this machine has {_gib(available_bytes)} GiB "
            f"({self.explain()})",
        )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f}"


def run(config: ToyConfig) -> ToyResult:
    """Run all seeds of ``config`` in one compiled call and return the result."""
    model = config.validate()
    lp = loss_params(model, config.mu, config.alpha)
    seeds = list(config.seeds)
    with numerics(config.precision) as dtype:
        targets, init = draw_vectors(model, seeds, config.init_scale, config.prng, dtype)
    if config.reduced:
        from .reduced import initial_stats_from_vectors, simulate_reduced

        result = simulate_reduced(
            model,
            config.method,
            initial_stats_from_vectors(targets, init),
            lp,
            clamps=config.clamps,
            precision=config.precision,
            run_labels={"seed": np.asarray(seeds)},
        )
    else:
        result = simulate(
            model,
            config.method,
            targets,
            init,
            lp,
            config.clamps,
            config.precision,
            run_labels={"seed": np.asarray(seeds)},
        )
    result.config["experiment"] = config.to_dict()
    result.normalise_config()
    return result


def summary_lines(result: ToyResult) -> list[str]:
    """One line per run: stop, minimum of mechanism-1 loss and when, final mechanism losses."""
    lines = []
    t = result.t
    unit = "step" if result.method == "gd" else "t"
    for i in range(result.n_runs):
        label = f"seed {result.labels['seed'][i]}" if result.labels["seed"][i] >= 0 else f"run {i}"
        parts = [label]
        m1 = result["mechanism_1_loss"][i]
        if np.any(np.isfinite(m1)):
            j = int(np.nanargmin(m1))
            last = int(np.max(np.nonzero(np.isfinite(m1))[0]))
            parts.append(f"min L_M1 {m1[j]:.4g} at {unit} {t[j]:g}")
            parts.append(f"final L_M1 {m1[last]:.4g}")
            if "mechanism_2_loss" in result.measures:
                parts.append(f"final L_M2 {result['mechanism_2_loss'][i][last]:.4g}")
            parts.append(f"final loss {result['loss'][i][last]:.4g}")
        if result.method == "gd":
            parts.append(
                f"stopped at step {int(result.stop[i])}"
                if result.stop[i] >= 0
                else "did not reach the stop loss"
            )
        elif np.isfinite(result.stop[i]):
            parts.append(f"stopped at t = {result.stop[i]:.6g}")
        lines.append(" · ".join(parts))
    return lines


__all__ = [
    "DEFAULT_DIMS",
    "MAX_SEEDS",
    "MAX_STEPS",
    "MODELS",
    "MemoryEstimate",
    "ToyConfig",
    "check_method",
    "check_seeds",
    "parse_ints",
    "parse_seeds",
    "run",
    "summary_lines",
]
