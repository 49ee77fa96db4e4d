r"""Integer-dimension refinement: the full-vector toy at the integer dimensions around a continuous fit.

The continuous fit uses the reduced model with *typical* statistics (:math:`R = n`,
:math:`P(0) = z\sqrt n`). A real toy has integer dimensions and seed-dependent targets and
initial vectors. :func:`refine_integer` takes the fitted μ₁, μ₂, α and time scale, and for every
combination of ⌊n⌋/⌈n⌉ of the fitted dimensions (b = c shared) and every seed simulates the
full-vector model (:func:`toymodels.dynamics.simulate`, gradient flow, paper PRNG) at the log's
evaluation times; the per-curve scales and offsets are then re-fitted in closed form (the same
bounded linear least squares as the continuous fit, :func:`bridge.objective.project_linear`) and
the candidates are ranked by the same normalised cost :math:`½\sum_k(1-R^2_k)`. The toy parameters
themselves are not re-optimised (the full model's seed dependence is not smooth).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from toymodels.dynamics import simulate
from toymodels.errors import require
from toymodels.init import draw_vectors
from toymodels.losses import coopetition_model, loss_params
from toymodels.methods import GradientFlow
from toymodels.precision import numerics

from .fitting import FitResult, r_squared
from .objective import project_linear
from .report import jsonable

TOY_MEASURE = {"mechanism_1": "mechanism_1_loss", "mechanism_2": "mechanism_2_loss", "total": "loss"}


@dataclasses.dataclass
class Refinement:
    """Candidates (dims, seed) with their cost and R² per curve, best first."""

    candidates: list[dict[str, Any]]
    continuous_cost: float

    @property
    def best(self) -> dict[str, Any]:
        return self.candidates[0]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {"continuous_cost": self.continuous_cost, "best": self.best, "candidates": self.candidates}
        )

    def summary_lines(self) -> list[str]:
        b = self.best
        d = b["dims"]
        return [
            f"integer refinement ({len(self.candidates)} candidates): best dims a={d['a']}, b=c={d['b']}, "
            f"d={d['d']}, seed {b['seed']}: "
            f"cost {b['cost']:.4g} (continuous fit {self.continuous_cost:.4g}); R² "
            + ", ".join(f"{k} {v:.4f}" for k, v in b["r2"].items())
        ]


def integer_neighbours(value: float) -> list[int]:
    lo = max(int(np.floor(value)), 1)
    return sorted({lo, max(int(np.ceil(value)), 1)})


def refine_integer(result: FitResult, seeds: Sequence[int] = (0, 1, 2, 3), max_dim: int = 4096) -> Refinement:
    """Rank integer dimensions × seeds with the full-vector model (see module docstring)."""
    p = result.params
    require(
        not result.spec.mentions("dim_c"),
        "refine-integer",
        "works with b and c of one dimension (dim_c is fitted or fixed separately here)",
    )
    for name in ("dim_a", "dim_bc", "dim_d"):
        require(
            p[name] <= max_dim,
            "refine-integer",
            f"fitted {name} = {p[name]:.4g} is too large for the full-vector model (> {max_dim})",
        )
    curves = result.curves
    names = result.spec.curve_names
    Y = np.stack([curves.values[n] for n in names])
    sigma = Y.std(axis=1)
    t = curves.seen / curves.seen[-1] * p["span"]
    method = GradientFlow(
        t_max=float(t[-1]), save_times=tuple(float(x) for x in t), rtol=1e-7, atol=1e-9, max_steps=200_000
    )
    lp = loss_params(coopetition_model(), (p["mu1"], p["mu2"]), p["alpha"])
    candidates = []
    for na, nbc, nd in itertools.product(
        integer_neighbours(p["dim_a"]), integer_neighbours(p["dim_bc"]), integer_neighbours(p["dim_d"])
    ):
        model = coopetition_model((na, nbc, nbc, nd))
        with numerics("float64"):
            targets, init = draw_vectors(model, list(seeds))
        res = simulate(model, method, targets, init, lp)
        for i, seed in enumerate(seeds):
            preds, r2, scales, offsets = [], {}, {}, {}
            for k, (cname, toy_name) in enumerate(result.spec.curves):
                m = np.asarray(res[TOY_MEASURE[toy_name]][i], dtype=np.float64)
                if not np.all(np.isfinite(m)):
                    preds = None
                    break
                with numerics("float64"):
                    s, o = (
                        float(x)
                        for x in project_linear(
                            jnp.asarray(m), jnp.asarray(Y[k]), jnp.ones_like(jnp.asarray(m))
                        )
                    )
                pred = s * m + o
                preds.append(pred)
                r2[cname], scales[cname], offsets[cname] = r_squared(Y[k], pred), s, o
            if preds is None:
                continue
            e = (np.stack(preds) - Y) / sigma[:, None]
            cost = 0.5 * float(np.sum(e * e)) / Y.shape[1]
            candidates.append(
                {
                    "dims": {"a": na, "b": nbc, "c": nbc, "d": nd},
                    "seed": int(seed),
                    "cost": cost,
                    "r2": r2,
                    "scales": scales,
                    "offsets": offsets,
                }
            )
    require(len(candidates) > 0, "refine-integer", "every full-vector run failed")
    candidates.sort(key=lambda c: c["cost"])
    return Refinement(candidates=candidates, continuous_cost=result.cost)


__all__ = ["Refinement", "integer_neighbours", "refine_integer"]
