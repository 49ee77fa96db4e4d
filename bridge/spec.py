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
``eps_x``     signed normalised initial overlap ε_x = P_x(0)/n_x,    ε = κ √q_x(0),
              x ∈ {a, bc, d} (b and c share one); |ε| < √q_x(0)      κ = tanh(10⁻³ sinh θ)
``q0_x``      initial squared norm q_x(0) = Q_x(0)/n_x > 0,          q = e^θ
              x ∈ {a, bc, d}; 1 (typical) and fixed by default
``dim_c``,    c's own dimension, overlap and initial norm; each is    as its b counterpart
``eps_c``,    *tied* to b's (``dim_bc``, ``eps_bc``, ``q0_bc``, which
``q0_c``      are then b's alone) unless it is free or fixed
============  =====================================================  ======================

A parameter that is not free keeps its value in ``fixed`` (defaults :data:`DEFAULTS`).

Identifiability (docs/bridge.md). With p = P/n, q = Q/n, r = R/n the reduced flow of vector x is
that of a dimension-free system slowed by 1/n_x, started at p_x(0) = ε_x, q_x(0) = σ² (r = 1 for the
typical statistics): the curves depend on the dimensions only through the time constants τ·n_x
and the overlaps ε_x. With every ε_x free the dimension *level* is exactly degenerate, so by
default ``dim_a`` is fixed (:data:`DIM_A_REFERENCE`, a convention, not a measurement) and the
identifiable combinations are n_bc/n_a, n_d/n_a, τ·n_a and the ε_x. b and c share one ε as they
share one dimension: with equal rates, their overlaps enter the curves almost symmetrically and a
fit with both free left ε_b − ε_c undetermined (35% and 61% off on noise-free curves). The ε
transform is odd (signed overlaps), linear through 0 and logarithmic for |ε| ≫ 10⁻³ (the plateau
length ∝ log 1/|ε|).

**The overlap's coordinate is the initial cosine.** θ of ``eps_x`` parametrises
κ_x = ε_x/√q_x(0) = P_x(0)/√(Q_x(0) R_x), the cosine between the initial vector and its target, in
(−1, 1); ε_x = κ_x √q_x(0). Cauchy–Schwarz (|P| ≤ √(QR)) holds for every θ, so every point of the
family is a pair of real vectors. (Until this was so, θ parametrised ε itself in (−1, 1) whatever
q_x(0): in the exact family a fit could, and did, end at cosines above 1 — held-out paper s3's best
point had κ_c = 2.57, curves that no vectors produce, and whose solve failed once its times were
computed in float64; docs/bridge.md, "The initial cosine".) κ is also the coordinate the family's
symmetries leave unchanged (:mod:`bridge.symmetry`). With q_x(0) = 1 (the typical family) κ = ε.

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

EPS_NAMES = ("eps_a", "eps_bc", "eps_d")
Q0_NAMES = ("q0_a", "q0_bc", "q0_d")
C_PARAMETERS = {"dim_c": "dim_bc", "eps_c": "eps_bc", "q0_c": "q0_bc"}
"""c's own parameters and the b parameter each is tied to unless it is free or fixed."""
OVERLAP_NAMES = (*EPS_NAMES, "eps_c")
"""Every signed overlap parameter (its θ is the initial cosine, module docstring)."""
Q0_OF = {"eps_a": "q0_a", "eps_bc": "q0_bc", "eps_d": "q0_d", "eps_c": "q0_c"}
"""The initial norm q_x(0) each overlap ε_x is bounded by (|ε_x| < √q_x(0))."""
TOY_PARAMETERS = (
    "span", "mu1", "mu2", "alpha", "dim_a", "dim_bc", "dim_d", *EPS_NAMES, *Q0_NAMES, *C_PARAMETERS
)  # fmt: skip
DIM_A_REFERENCE = 20.0
EPS_UNIT = 1e-3  # κ = tanh(EPS_UNIT · sinh θ): linear below |κ| ~ 1e-3, logarithmic above
AT_BOUND = 1e-6
"""A free parameter is at its bound where a unit step of its θ moves it by less than this
(:meth:`FitSpec.at_bound`)."""
DEFAULTS: dict[str, float] = {
    "span": 16000.0,
    "mu1": 0.1,
    "mu2": 0.0,
    "alpha": 0.1,
    "dim_a": DIM_A_REFERENCE,
    "dim_bc": 20.0,
    "dim_d": 160.0,
    # the typical overlap z = 1 at n = 20: ε = z/√n
    **{name: 1.0 / np.sqrt(20.0) for name in EPS_NAMES},
    **dict.fromkeys(Q0_NAMES, 1.0),
}
DEFAULTS.update({c: DEFAULTS[b] for c, b in C_PARAMETERS.items()})
TYPICAL_FREE = ("span", "mu1", "alpha", "dim_bc", "dim_d", *EPS_NAMES)
"""The typical family (8 parameters): every initial norm at its typical value q(0) = 1, c tied to b.
It has no exact symmetry, but it does not contain a real seed (docs/bridge.md, "Why the fit misses")."""
EXACT_FREE = (*TYPICAL_FREE, *Q0_NAMES, *C_PARAMETERS)
"""The exact family (14 parameters), the default: every vector's initial norm and c's own parameters
free as well; it contains every seed of the full-vector toy up to gradient descent's departure from
the flow (docs/bridge.md, "Why the fit misses"). It has two exact symmetries (:mod:`bridge.symmetry`):
α alone is not determined by any curves, α_eff = α·q_a(0)·q_d(0) is."""
FAMILIES = {"exact": EXACT_FREE, "typical": TYPICAL_FREE}
DEFAULT_FAMILY = "exact"
# toy curve matched to each transformer curve by default (science.md §2–3)
DEFAULT_MATCH = {"icl": "mechanism_1", "ciwl": "mechanism_2", "total": "total", "train_eval": "total"}
# multi-start box (physical values, log-uniform) for parameters other than the span
START_BOX: dict[str, tuple[float, float]] = {
    "mu1": (1e-3, 1.0),
    "mu2": (1e-3, 1.0),
    "alpha": (1e-3, 1.0),
    "dim_a": (1.5, 1e4),
    "dim_bc": (1.5, 1e4),
    "dim_d": (1.5, 1e4),
    # |κ| = |ε|/√q(0), the initial cosine, log-uniform (the sign: bridge.starts.sign_classes)
    **{name: (1e-3, 0.5) for name in EPS_NAMES},
    # Q(0)/R of a random init against a random target: a ratio of two χ²_n/n (n ≳ 10)
    **dict.fromkeys(Q0_NAMES, (0.3, 3.0)),
}
START_BOX.update({c: START_BOX[b] for c, b in C_PARAMETERS.items()})


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
    free: tuple[str, ...] = FAMILIES[DEFAULT_FAMILY]
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
            require(name in TOY_PARAMETERS, "fix", f"unknown parameter {name!r}")
            require(name not in self.free, "fix", f"{name!r} is both free and fixed")
            if name in OVERLAP_NAMES:
                require(
                    np.isfinite(value) and abs(value) < 1,
                    "fix",
                    f"{name} must be a number in (-1, 1) (got {value})",
                )
                continue
            lower = 1.0 if name.startswith("dim_") else 0.0
            require(
                np.isfinite(value) and value >= lower and (value > 0 or not name.startswith("q0_")),
                "fix",
                f"{name} must be a finite number >= {lower:g} (got {value})",
            )
        for name in OVERLAP_NAMES:  # a held ε (fixed, or its default) needs its q(0) held too
            if name in self.free or (name == "eps_c" and not self.mentions(name)):
                continue
            q0, value = self.q0_of(name), self.value(name)
            require(
                q0 not in self.free,
                "fix" if name in dict(self.fixed) else "free",
                f"{name} is held at {value:.4g} while {q0} is free (|ε| < √q(0) must hold): free {name} "
                f"as well, or fix {q0}",
            )
            require(
                abs(value) < np.sqrt(self.value(q0)),
                "fix",
                f"{name} = {value} must be below √{q0} = {np.sqrt(self.value(q0)):.4g} in size "
                "(Cauchy–Schwarz)",
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
        """Physical toy parameters (traceable) from the unconstrained vector θ (shape (n_free,)); a
        free overlap's θ is its initial cosine κ (module docstring), ε = κ √q(0)."""
        out: dict[str, Any] = {name: jnp.asarray(self.value(name)) for name in TOY_PARAMETERS}
        for i, name in enumerate(self.free):
            u = theta[..., i]
            if name.startswith("dim_"):
                out[name] = 1.0 + jnp.exp(u)
            elif name in OVERLAP_NAMES:
                out[name] = jnp.tanh(EPS_UNIT * jnp.sinh(u))  # κ, scaled below once q(0) is known
            else:
                out[name] = jnp.exp(u)
        for name in OVERLAP_NAMES:
            if name in self.free:
                out[name] = out[name] * jnp.sqrt(out[self.q0_of(name)])
        for c, b in C_PARAMETERS.items():
            if not self.mentions(c):
                out[c] = out[b]
        return out

    def at_bound(self, theta) -> list[str]:
        """The free parameters that θ has pushed onto a bound of their transform: an initial cosine
        at ±1 (the vector parallel to its target) or a dimension at 1 — where one unit of θ moves
        the parameter by less than :data:`AT_BOUND` (relative, for a dimension). The curves cannot
        see θ move there, so J's column vanishes: the fit treats the point as a boundary optimum
        (:func:`bridge.fitting.fit_curves`), not as a direction the data miss."""
        theta = np.asarray(theta, dtype=np.float64)
        out = []
        for i, name in enumerate(self.free):
            t = theta[i]
            if name in OVERLAP_NAMES:
                with np.errstate(over="ignore"):
                    kappa = np.tanh(EPS_UNIT * np.sinh(t))
                    slope = EPS_UNIT * np.cosh(t) * (1.0 - kappa**2)  # dκ/dθ
            elif name.startswith("dim_"):
                slope = np.exp(t) / (1.0 + np.exp(t))  # d log n/dθ
            else:
                continue  # e^θ: d log value/dθ = 1
            if not slope >= AT_BOUND:
                out.append(name)
        return out

    def q0_of(self, overlap: str) -> str:
        """The initial norm that bounds ``overlap`` (c's own where this spec names it, else b's)."""
        q0 = Q0_OF[overlap]
        return q0 if q0 != "q0_c" or self.mentions(q0) else "q0_bc"

    def mentions(self, name: str) -> bool:
        """Whether ``name`` is free or fixed (c's parameters exist only then)."""
        return name in self.free or name in dict(self.fixed)

    def unconstrained(self, values: Mapping[str, float]) -> np.ndarray:
        """Inverse of :meth:`physical` (NumPy) for the free parameters given by ``values`` (an
        overlap's initial norm from ``values``, else this spec's value)."""
        theta = []
        for name in self.free:
            v = float(values[name])
            if name.startswith("dim_"):
                require(v > 1, name, f"must be > 1 (got {v})")
                theta.append(np.log(v - 1.0))
            elif name in OVERLAP_NAMES:
                q0 = self.q0_of(name)
                q = float(values.get(q0, self.value(q0)))
                require(
                    q > 0 and abs(v) < np.sqrt(q),
                    name,
                    f"must be in (-√{q0}, √{q0}) = ±{np.sqrt(max(q, 0)):.4g} (Cauchy–Schwarz; got {v})",
                )
                theta.append(np.arcsinh(np.arctanh(v / np.sqrt(q)) / EPS_UNIT))
            else:
                require(v > 0, name, f"must be > 0 to be fitted (got {v})")
                theta.append(np.log(v))
        return np.asarray(theta, dtype=np.float64)

    def toy_params(self, phys: Mapping[str, Any]) -> ToyParams:
        """:class:`bridge.toy.ToyParams` of physical values (c takes ``dim_c``, ``eps_c``, ``q0_c`` where
        this spec names them, b's values otherwise; per-vector init scale σ_x = √q_x(0) and overlap
        z_x = ε_x √n_x / σ_x, so that P_x(0) = ε_x n_x and Q_x(0) = q_x(0) n_x)."""

        def per_vector(prefix: str):
            a, b, d = (phys[prefix + x] for x in ("a", "bc", "d"))
            c = phys[prefix + "c"] if self.mentions(prefix + "c") else b
            return jnp.stack(jnp.broadcast_arrays(a, b, c, d), axis=-1)

        dims, eps, sigma = per_vector("dim_"), per_vector("eps_"), jnp.sqrt(per_vector("q0_"))
        return ToyParams(
            span=phys["span"],
            mu1=phys["mu1"],
            mu2=phys["mu2"],
            alpha=phys["alpha"],
            dims=dims,
            overlap=eps * jnp.sqrt(dims) / sigma,
            init_scale=sigma,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "curves": {a: b for a, b in self.curves},
            "free": list(self.free),
            "fixed": {
                k: self.value(k)
                for k in TOY_PARAMETERS
                if k not in self.free and (k not in C_PARAMETERS or self.mentions(k))
            },
            "robust": self.robust,
        }


def spec_for(
    curves: Sequence[str],
    free: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    robust: float | None = None,
    match: Mapping[str, str] | None = None,
) -> FitSpec:
    """A :class:`FitSpec` pairing each transformer curve with its default toy curve; ``free`` defaults to
    the :data:`DEFAULT_FAMILY` (the exact family)."""
    match = {**DEFAULT_MATCH, **(match or {})}
    for c in curves:
        require(
            c in match, "curves", f"no toy curve corresponds to {c!r}; fit icl, ciwl, total or train_eval"
        )
    return FitSpec(
        curves=tuple((c, match[c]) for c in curves),
        free=tuple(FAMILIES[DEFAULT_FAMILY] if free is None else free),
        fixed=tuple((fixed or {}).items()),
        robust=robust,
    )


__all__ = [
    "AT_BOUND",
    "DEFAULTS",
    "DEFAULT_FAMILY",
    "EXACT_FREE",
    "FAMILIES",
    "DEFAULT_MATCH",
    "DIM_A_REFERENCE",
    "C_PARAMETERS",
    "EPS_NAMES",
    "FitSpec",
    "OVERLAP_NAMES",
    "Q0_OF",
    "Q0_NAMES",
    "START_BOX",
    "TOY_PARAMETERS",
    "TYPICAL_FREE",
    "spec_for",
]
