"""One toy-model experiment as a value: :class:`ToyConfig` → :func:`run` → :class:`ToyResult`.

This is what ``python -m toymodels`` runs and what notebooks and sweeps call directly.
Defaults reproduce thesis Fig. 5.9a: the coopetition model with dims 20 20 20 160, μ₁ = α = 0.1,
seed 7, gradient descent with η = 1 for up to 16000 steps, stopping when the loss < 1e-6.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .clamps import Clamp, check_clamps
from .dynamics import simulate
from .errors import require
from .init import draw_vectors
from .losses import ToyModel, coopetition_model, loss_params, tensor_model
from .methods import GradientDescent, Method
from .precision import check_precision, numerics
from .results import ToyResult

MODELS = ("coopetition", "tensor")
DEFAULT_DIMS = {"coopetition": (20, 20, 20, 160), "tensor": (20, 20, 20)}


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
        """Check every parameter; returns the model. Raises ConfigError naming the parameter."""
        model = self.build_model()
        loss_params(model, self.mu, self.alpha)
        check_clamps(model, self.clamps)
        check_precision(self.precision)
        require(len(self.seeds) >= 1, "seeds", "at least one seed is needed")
        if not self.reduced:
            model.integer_dims()
        return model

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["method"] = {"name": self.method.name, **dataclasses.asdict(self.method)}
        d["clamps"] = [str(c) for c in self.clamps]
        return d


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


__all__ = ["DEFAULT_DIMS", "MODELS", "ToyConfig", "run", "summary_lines"]
