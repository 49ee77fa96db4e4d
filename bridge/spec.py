r"""What a fit fits: the correspondence of curves, the free toy parameters and their bound transforms.

Toy parameters (physical values, with their bounds and the transform from an unconstrained
coordinate θ used by the optimiser):

============  =====================================================  ======================
name          meaning                                                transform
============  =====================================================  ======================
``span``      T = s_max/τ, toy time covered by the log               T = e^θ (> 0)
``mu1``       μ₁ ≥ 0                                                 μ₁ = e^θ
``mu2``       μ₂ ≥ 0 (fixed at 0 by default, as in the thesis)       μ₂ = e^θ
``alpha``     α ≥ 0                                                  α = e^θ
``dim_a``     effective dimension of a (ICL-only, Layer 1) ≥ 1        n = 1 + e^θ
``dim_bc``    effective dimension of the shared b and c ≥ 1           n = 1 + e^θ
``dim_d``     effective dimension of d (CIWL-only, Layer 1) ≥ 1       n = 1 + e^θ
``overlap``   initial overlap z (all vectors), 0 < z < √min n         z = √min n · sigmoid(θ)
============  =====================================================  ======================

A parameter that is not free keeps its value in ``fixed`` (defaults :data:`DEFAULTS`; σ = 1).
Per curve k the transformer value is :math:`y_k ≈ s_k\,m_k(t) + o_k` with the toy curve
:math:`m_k` (toy units), scale :math:`s_k > 0` and offset :math:`o_k ≥ 0`; those enter linearly
and are eliminated in closed form (variable projection, see :mod:`bridge.fit`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from toymodels.errors import require

from .logs import CURVE_NAMES
from .toy import TOY_CURVES, ToyParams

TOY_PARAMETERS = ("span", "mu1", "mu2", "alpha", "dim_a", "dim_bc", "dim_d", "overlap")
DEFAULTS: dict[str, float] = {
    "span": 16000.0,
    "mu1": 0.1,
    "mu2": 0.0,
    "alpha": 0.1,
    "dim_a": 20.0,
    "dim_bc": 20.0,
    "dim_d": 160.0,
    "overlap": 1.0,
}
DEFAULT_FREE = ("span", "mu1", "alpha", "dim_a", "dim_bc", "dim_d")
# toy curve matched to each transformer curve by default (science.md §2–3)
DEFAULT_MATCH = {"icl": "mechanism_1", "ciwl": "mechanism_2", "total": "total", "train_eval": "total"}
# multi-start box (physical values, log-uniform) for parameters other than the span
START_BOX: dict[str, tuple[float, float]] = {
    "mu1": (1e-3, 0.5),
    "mu2": (0.01, 0.3),
    "alpha": (0.02, 0.5),
    "dim_a": (5.0, 60.0),
    "dim_bc": (5.0, 60.0),
    "dim_d": (20.0, 500.0),
    "overlap": (0.3, 2.0),
}


@dataclasses.dataclass(frozen=True)
class FitSpec:
    """Static description of a fit (hashable: a static argument of the compiled fit).

    Attributes:
        curves: pairs (transformer curve name, toy curve name), e.g. ``("icl", "mechanism_1")``.
        free: toy parameters to fit (subset of :data:`TOY_PARAMETERS`).
        fixed: values of the others (missing ones take :data:`DEFAULTS`), as (name, value) pairs.
        robust: ``None`` for least squares, or the Huber threshold δ on curve-normalised residuals.
    """

    curves: tuple[tuple[str, str], ...] = (
        ("icl", "mechanism_1"),
        ("ciwl", "mechanism_2"),
        ("total", "total"),
    )
    free: tuple[str, ...] = DEFAULT_FREE
    fixed: tuple[tuple[str, float], ...] = ()
    robust: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "curves", tuple((str(a), str(b)) for a, b in self.curves))
        object.__setattr__(self, "free", tuple(self.free))
        fixed = dict(self.fixed) if not isinstance(self.fixed, Mapping) else dict(self.fixed)
        object.__setattr__(self, "fixed", tuple(sorted((k, float(v)) for k, v in fixed.items())))
        require(len(self.curves) >= 1, "curves", "fit at least one curve")
        names = [a for a, _ in self.curves]
        require(len(set(names)) == len(names), "curves", f"repeated curve names {names}")
        for a, b in self.curves:
            require(
                a in CURVE_NAMES,
                "curves",
                f"unknown transformer curve {a!r} (known: {', '.join(CURVE_NAMES)})",
            )
            require(b in TOY_CURVES, "curves", f"unknown toy curve {b!r} (known: {', '.join(TOY_CURVES)})")
        require(len(set(self.free)) == len(self.free), "free", f"repeated names in {self.free}")
        for name in self.free:
            require(
                name in TOY_PARAMETERS,
                "free",
                f"unknown parameter {name!r} (known: {', '.join(TOY_PARAMETERS)})",
            )
        require("span" in self.free, "free", "the time scale (span) must be fitted")
        for name, value in self.fixed:
            require(name in TOY_PARAMETERS, "fixed", f"unknown parameter {name!r}")
            require(name not in self.free, "fixed", f"{name!r} is both free and fixed")
            lower = 1.0 if name.startswith("dim_") else 0.0
            require(
                np.isfinite(value) and value >= lower,
                "fix",
                f"{name} must be a finite number >= {lower:g} (got {value})",
            )
            if name == "overlap":
                require(
                    value > 0, "fix", "overlap must be > 0 (P = 0 is invariant: the toy would never learn)"
                )
        require(
            self.robust is None or (np.isfinite(self.robust) and self.robust > 0),
            "robust",
            f"must be > 0 (got {self.robust})",
        )

    @property
    def curve_names(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.curves)

    @property
    def n_free(self) -> int:
        return len(self.free)

    def value(self, name: str) -> float:
        return dict(self.fixed).get(name, DEFAULTS[name])

    # ------------------------------------------------------------------ transforms
    def physical(self, theta) -> dict[str, Any]:
        """Physical toy parameters (traceable) from the unconstrained vector θ (shape (n_free,))."""
        out: dict[str, Any] = {name: jnp.asarray(self.value(name)) for name in TOY_PARAMETERS}
        for i, name in enumerate(self.free):
            u = theta[..., i]
            if name.startswith("dim_"):
                out[name] = 1.0 + jnp.exp(u)
            elif name != "overlap":
                out[name] = jnp.exp(u)
        if "overlap" in self.free:
            u = theta[..., self.free.index("overlap")]
            n_min = jnp.minimum(jnp.minimum(out["dim_a"], out["dim_bc"]), out["dim_d"])
            out["overlap"] = jnp.sqrt(n_min) * jax_sigmoid(u)
        return out

    def unconstrained(self, values: Mapping[str, float]) -> np.ndarray:
        """Inverse of :meth:`physical` (NumPy) for the free parameters given by ``values``."""
        theta = []
        for name in self.free:
            v = float(values[name])
            if name.startswith("dim_"):
                require(v > 1, name, f"must be > 1 (got {v})")
                theta.append(np.log(v - 1.0))
            elif name == "overlap":
                n_min = min(float(values.get(k, self.value(k))) for k in ("dim_a", "dim_bc", "dim_d"))
                x = v / np.sqrt(n_min)
                require(0 < x < 1, "overlap", f"must be in (0, sqrt(min dim)) (got {v})")
                theta.append(np.log(x / (1 - x)))
            else:
                require(v > 0, name, f"must be > 0 to be fitted (got {v})")
                theta.append(np.log(v))
        return np.asarray(theta, dtype=np.float64)

    def toy_params(self, phys: Mapping[str, Any]) -> ToyParams:
        """:class:`bridge.toy.ToyParams` of physical values (b and c share ``dim_bc``)."""
        dims = jnp.stack([phys["dim_a"], phys["dim_bc"], phys["dim_bc"], phys["dim_d"]], axis=-1)
        return ToyParams(
            span=phys["span"],
            mu1=phys["mu1"],
            mu2=phys["mu2"],
            alpha=phys["alpha"],
            dims=dims,
            overlap=jnp.stack([phys["overlap"]] * 4, axis=-1),
            init_scale=jnp.ones_like(phys["span"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "curves": {a: b for a, b in self.curves},
            "free": list(self.free),
            "fixed": {k: self.value(k) for k in TOY_PARAMETERS if k not in self.free},
            "robust": self.robust,
        }


def jax_sigmoid(u):
    return 1.0 / (1.0 + jnp.exp(-u))


def spec_for(
    curves: Sequence[str],
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    robust: float | None = None,
    match: Mapping[str, str] | None = None,
) -> FitSpec:
    """A :class:`FitSpec` pairing each transformer curve with its default toy curve."""
    match = {**DEFAULT_MATCH, **(match or {})}
    for c in curves:
        require(
            c in match, "curves", f"no toy curve corresponds to {c!r}; fit icl, ciwl, total or train_eval"
        )
    return FitSpec(
        curves=tuple((c, match[c]) for c in curves),
        free=tuple(DEFAULT_FREE if free is None else free),
        fixed=tuple((fixed or {}).items()),
        robust=robust,
    )


__all__ = ["DEFAULTS", "DEFAULT_FREE", "DEFAULT_MATCH", "FitSpec", "START_BOX", "TOY_PARAMETERS", "spec_for"]
