r"""Losses of the toy models, written once over per-vector inner products.

Every loss here is a polynomial in three scalars per learnable vector x with target x*:

.. math::  P_x = x\cdot x^*,\qquad Q_x = |x|^2,\qquad R_x = |x^*|^2 .

For a *mechanism* (an ordered set S of vector names) the learned tensor is :math:`\bigotimes_{x\in S} x`
and, because both tensors are rank one,

.. math::
    L_S = \tfrac12\,\mathrm{mean}\big(\textstyle\bigotimes x^* - \bigotimes x\big)^2
        = \frac{1}{2N_S}\Big(\prod_S R_x - 2\prod_S P_x + \prod_S Q_x\Big),
    \qquad N_S = \prod_S n_x ,

so no tensor is ever materialised. The competition term over a set C of vectors (a and d) is
:math:`\mathcal C = \tfrac12\,\mathrm{mean}(\bigotimes_C x)^2 = \prod_C Q_x / (2\prod_C n_x)`.

The model loss combines the mechanisms:

* ``multiplicative`` (strategy coopetition): :math:`\prod_k (L_k + \mu_k) + \alpha\,\mathcal C`;
* ``additive``: :math:`\sum_k (L_k + \mu_k) + \alpha\,\mathcal C`.

All functions of statistics use only ``+ - * /`` so they accept JAX arrays, NumPy arrays (any
broadcastable shapes) *and SymPy symbols*: the reduced (P, Q, R) dynamics in
:mod:`toymodels.reduced` are derived symbolically from exactly these definitions.

Numerics: the identity subtracts O(1) numbers to produce a loss that goes to zero, so it should be
evaluated in float64 near convergence (see :mod:`toymodels.precision`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .errors import ConfigError, require

COMBINE_RULES = ("multiplicative", "additive")


def _product(factors: Iterable[Any]) -> Any:
    return functools.reduce(operator.mul, factors)


class VectorStats(NamedTuple):
    """Inner products of one vector with its target: P = x·x*, Q = |x|², R = |x*|².

    Optionally also, computed *directly from the vectors*, E = x*·(x − x*) (= P − R) and
    W = |x − (P/R)·x*|² (= Q − P²/R, the squared norm of the part of x orthogonal to x*). With them
    the losses are evaluated as sums of non-negative terms (see :func:`mechanism_loss_accurate`),
    accurate to relative precision everywhere, including on the rescaled solution manifold
    (λa*, b*/λ, …) where P, Q, R stay O(1). Statistics without E, W (symbolic, or the reduced
    (P, Q) model) use the plain identity.
    """

    P: Any
    Q: Any
    R: Any
    E: Any = None
    W: Any = None

    @property
    def has_errors(self) -> bool:
        return self.E is not None and self.W is not None


def vector_stats(x: Float[Array, "*batch n"], target: Float[Array, "*batch n"]) -> VectorStats:
    """P, Q, R (and E, W) of a vector, contracting the last axis."""
    P = jnp.sum(x * target, axis=-1)
    R = jnp.sum(target * target, axis=-1)
    perpendicular = x - (P / R)[..., None] * target
    return VectorStats(
        P=P,
        Q=jnp.sum(x * x, axis=-1),
        R=R,
        E=jnp.sum(target * (x - target), axis=-1),
        W=jnp.sum(perpendicular * perpendicular, axis=-1),
    )


def stats_of(
    params: Mapping[str, Float[Array, "*batch n"]], targets: Mapping[str, Float[Array, "*batch n"]]
) -> dict[str, VectorStats]:
    """:func:`vector_stats` of every named vector."""
    return {name: vector_stats(params[name], targets[name]) for name in params}


@dataclasses.dataclass(frozen=True)
class ToyModel:
    """Static structure of a toy model: named vectors, their dimensions, mechanisms, competition.

    Attributes:
        vectors: vector names, in the order the paper-compatible PRNG draws them (a, b, c, d).
        dims: one dimension per vector. Integers for the full-vector model; the reduced model
            (:mod:`toymodels.reduced`) also accepts real "effective" dimensions.
        mechanisms: each mechanism is a tuple of vector names whose tensor product it learns,
            e.g. ``(("a", "b", "c"), ("d", "b", "c"))``. Shared names are shared sub-circuits.
        competition: names whose tensor product is penalised by ``alpha`` (``()`` for none).
        combine: ``"multiplicative"`` or ``"additive"`` (see module docstring).
    """

    vectors: tuple[str, ...]
    dims: tuple[float, ...]
    mechanisms: tuple[tuple[str, ...], ...]
    competition: tuple[str, ...] = ()
    combine: str = "multiplicative"

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", tuple(self.vectors))
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "mechanisms", tuple(tuple(m) for m in self.mechanisms))
        object.__setattr__(self, "competition", tuple(self.competition))
        require(len(self.vectors) >= 1, "vectors", "at least one vector is needed")
        require(len(set(self.vectors)) == len(self.vectors), "vectors", f"duplicate names in {self.vectors}")
        require(
            len(self.dims) == len(self.vectors),
            "dims",
            f"expected {len(self.vectors)} dimensions (one per vector {', '.join(self.vectors)}), "
            f"got {len(self.dims)}",
        )
        for name, dim in zip(self.vectors, self.dims):
            require(np.isfinite(dim) and dim >= 1, "dims", f"dimension of {name!r} must be >= 1 (got {dim})")
        require(len(self.mechanisms) >= 1, "mechanisms", "at least one mechanism is needed")
        for mech in self.mechanisms:
            require(len(mech) >= 1, "mechanisms", "a mechanism must name at least one vector")
            require(len(set(mech)) == len(mech), "mechanisms", f"mechanism {mech} repeats a vector")
            for name in mech:
                require(
                    name in self.vectors,
                    "mechanisms",
                    f"unknown vector {name!r} (vectors: {', '.join(self.vectors)})",
                )
        for name in self.competition:
            require(
                name in self.vectors,
                "competition",
                f"unknown vector {name!r} (vectors: {', '.join(self.vectors)})",
            )
        require(
            self.combine in COMBINE_RULES, "combine", f"must be one of {COMBINE_RULES} (got {self.combine!r})"
        )

    @property
    def dim(self) -> dict[str, float]:
        """Dimensions by vector name."""
        return dict(zip(self.vectors, self.dims))

    @property
    def n_mechanisms(self) -> int:
        return len(self.mechanisms)

    def integer_dims(self) -> dict[str, int]:
        """Dimensions as integers; the full-vector model needs whole numbers."""
        for name, dim in zip(self.vectors, self.dims):
            require(
                float(dim).is_integer(),
                "dims",
                f"dimension of {name!r} must be an integer for the full-vector model (got {dim})",
            )
        return {name: int(dim) for name, dim in zip(self.vectors, self.dims)}

    def replace(self, **changes: Any) -> ToyModel:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vectors": list(self.vectors),
            "dims": [float(d) if not float(d).is_integer() else int(d) for d in self.dims],
            "mechanisms": [list(m) for m in self.mechanisms],
            "competition": list(self.competition),
            "combine": self.combine,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ToyModel:
        return cls(
            vectors=tuple(d["vectors"]),
            dims=tuple(d["dims"]),
            mechanisms=tuple(tuple(m) for m in d["mechanisms"]),
            competition=tuple(d.get("competition", ())),
            combine=d.get("combine", "multiplicative"),
        )


def coopetition_model(dims: Sequence[float] = (20, 20, 20, 160), combine: str = "multiplicative") -> ToyModel:
    """The strategy-coopetition model: mechanism 1 = a⊗b⊗c (ICL), mechanism 2 = d⊗b⊗c (CIWL),
    competition between a and d. Paper dims: a = b = c = 20, d = 160."""
    return ToyModel(
        vectors=("a", "b", "c", "d"),
        dims=tuple(dims),
        mechanisms=(("a", "b", "c"), ("d", "b", "c")),
        competition=("a", "d"),
        combine=combine,
    )


def tensor_model(dims: Sequence[float] = (20, 20, 20)) -> ToyModel:
    """The N-vector tensor-product model (N = len(dims) >= 2), vectors named a, b, c, …."""
    require(len(dims) >= 2, "dims", f"the tensor-product model needs N >= 2 vectors (got {len(dims)})")
    require(len(dims) <= 26, "dims", "at most 26 vectors")
    names = tuple("abcdefghijklmnopqrstuvwxyz"[: len(dims)])
    return ToyModel(
        vectors=names, dims=tuple(dims), mechanisms=(names,), competition=(), combine="multiplicative"
    )


class LossParams(eqx.Module):
    """Numeric loss parameters (a pytree, so they can be traced and vmapped).

    Attributes:
        mu: offsets μ_k, one per mechanism, shape (n_mechanisms,) (leading batch axes allowed).
        alpha: competition strength α (scalar, or batch shape).
    """

    mu: Float[Array, "*batch n_mech"]
    alpha: Float[Array, "*batch"]


def loss_params(model: ToyModel, mu: Sequence[float] | float | None = None, alpha: float = 0.0) -> LossParams:
    """Validated :class:`LossParams`: μ_k ≥ 0 (missing ones are 0) and α ≥ 0."""
    if mu is None:
        mu = (0.0,) * model.n_mechanisms
    elif np.ndim(mu) == 0:
        mu = (float(mu),) + (0.0,) * (model.n_mechanisms - 1)
    mu = tuple(float(m) for m in mu)
    require(len(mu) <= model.n_mechanisms, "mu", f"{len(mu)} offsets for {model.n_mechanisms} mechanisms")
    mu = mu + (0.0,) * (model.n_mechanisms - len(mu))
    for k, m in enumerate(mu):
        require(np.isfinite(m) and m >= 0, f"mu{k + 1}", f"must be a finite number >= 0 (got {m})")
    require(np.isfinite(alpha) and alpha >= 0, "alpha", f"must be a finite number >= 0 (got {alpha})")
    require(
        alpha == 0 or len(model.competition) > 0, "alpha", "alpha > 0 needs a competition term in the model"
    )
    return LossParams(mu=np.asarray(mu, dtype=np.float64), alpha=np.asarray(float(alpha), dtype=np.float64))


# ---------------------------------------------------------------------------------------------
# Losses from statistics (JAX, NumPy or SymPy)
# ---------------------------------------------------------------------------------------------


def mechanism_loss(
    stats: Mapping[str, VectorStats], mechanism: Sequence[str], dims: Mapping[str, Any]
) -> Any:
    r"""Mechanism loss :math:`\frac{1}{2N}(\prod R - 2\prod P + \prod Q)`, N = product of dims.

    When every vector's statistics carry E and W, the same polynomial is evaluated
    as a sum of non-negative terms (:func:`mechanism_loss_accurate`).
    """
    n = _product(dims[v] for v in mechanism)
    if all(stats[v].has_errors for v in mechanism):
        return mechanism_loss_accurate([stats[v] for v in mechanism]) / (2 * n)
    prod_r = _product(stats[v].R for v in mechanism)
    prod_p = _product(stats[v].P for v in mechanism)
    prod_q = _product(stats[v].Q for v in mechanism)
    return (prod_r - 2 * prod_p + prod_q) / (2 * n)


def mechanism_loss_accurate(stats: Sequence[VectorStats]) -> Any:
    r""":math:`\prod R - 2\prod P + \prod Q` as a sum of non-negative terms, from E and W.

    Write each vector as :math:`x = s\,x^* + x_\perp` with :math:`s = P/R` and
    :math:`W = |x_\perp|^2`. Tensor products that differ in which factors are :math:`x_\perp` are
    mutually orthogonal, hence

    .. math::
        \Big|\bigotimes x^* - \bigotimes x\Big|^2 = \prod R\,\Big(1 - \prod s\Big)^2
        + \sum_k \Big(\prod_{i<k} \tfrac{P_i^2}{R_i}\Big)\, W_k \prod_{i>k} Q_i ,

    with :math:`1 - \prod s = -\sum_k (\prod_{i<k} s_i)\,E_k/R_k` (telescoped; E = P − R).
    Every term is non-negative and the only subtraction carries an absolute error ~ machine ε,
    which is then squared: the loss is accurate to relative precision near any minimum.
    ``tests/test_toy_losses.py`` checks the identity symbolically. Needs R > 0 (targets ≠ 0).
    """
    one = 1
    s = [st.P / st.R for st in stats]
    one_minus_prod_s = 0
    for k, st in enumerate(stats):
        one_minus_prod_s = one_minus_prod_s - _product([one] + s[:k]) * st.E / st.R
    total = _product(st.R for st in stats) * one_minus_prod_s * one_minus_prod_s
    for k, st in enumerate(stats):
        before = _product([one] + [x.P * x.P / x.R for x in stats[:k]])
        after = _product([one] + [x.Q for x in stats[k + 1 :]])
        total = total + before * st.W * after
    return total


def competition_term(stats: Mapping[str, VectorStats], names: Sequence[str], dims: Mapping[str, Any]) -> Any:
    r"""Competition term :math:`\tfrac12\,\mathrm{mean}(\bigotimes x)^2 = \prod Q / (2\prod n)`."""
    if not names:
        return 0
    return _product(stats[v].Q for v in names) / (2 * _product(dims[v] for v in names))


def combine_losses(
    combine: str, mechanism_losses: Sequence[Any], mu: Sequence[Any], alpha: Any, competition: Any
) -> Any:
    """Total loss from the mechanism losses: Π(L_k+μ_k) + αC (multiplicative) or Σ(L_k+μ_k) + αC."""
    shifted = [lk + mk for lk, mk in zip(mechanism_losses, mu)]
    if combine == "multiplicative":
        total = _product(shifted)
    elif combine == "additive":
        total = functools.reduce(operator.add, shifted)
    else:  # pragma: no cover - ToyModel validates combine
        raise ConfigError("combine", f"unknown rule {combine!r}")
    return total + alpha * competition


class LossTerms(NamedTuple):
    """The total loss and its parts."""

    total: Any
    mechanisms: tuple[Any, ...]
    competition: Any


def loss_terms(
    model: ToyModel,
    stats: Mapping[str, VectorStats],
    mu: Sequence[Any],
    alpha: Any,
    dims: Mapping[str, Any] | None = None,
) -> LossTerms:
    """All loss terms of ``model`` from per-vector statistics.

    ``dims`` defaults to the model's; pass traced or symbolic values to treat them as variables.
    """
    dims = model.dim if dims is None else dims
    mech = tuple(mechanism_loss(stats, m, dims) for m in model.mechanisms)
    comp = competition_term(stats, model.competition, dims)
    mu_k = [mu[k] for k in range(model.n_mechanisms)]
    return LossTerms(
        total=combine_losses(model.combine, mech, mu_k, alpha, comp), mechanisms=mech, competition=comp
    )


def total_loss_from_stats(
    model: ToyModel, stats: Mapping[str, VectorStats], params: LossParams, dims=None
) -> Any:
    """Total loss from statistics with :class:`LossParams`."""
    mu = [params.mu[..., k] for k in range(model.n_mechanisms)]
    return loss_terms(model, stats, mu, params.alpha, dims).total


def loss(
    model: ToyModel,
    params: Mapping[str, Float[Array, " n"]],
    targets: Mapping[str, Float[Array, " n"]],
    lp: LossParams,
) -> Float[Array, ""]:
    """Total loss of the learned vectors ``params`` (inner-product form; nothing materialised)."""
    return total_loss_from_stats(model, stats_of(params, targets), lp)


def loss_with_others_at_targets(
    model: ToyModel, stats: Mapping[str, VectorStats], lp: LossParams, name: str, dims=None
) -> Any:
    r"""Progress measure: the total loss with every vector except ``name`` set to ± its target.

    Minimised over the 2^(V-1) sign patterns (x → ±x* leaves P = ±R, Q = R), since sign flips of
    pairs of vectors give the same solution. A function of ``name``'s own (P, Q, R) only.
    """
    others = [v for v in model.vectors if v != name]
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(others))))  # (n_patterns, V-1)
    own = stats[name]
    pattern_stats = {name: VectorStats(*(None if s is None else jnp.asarray(s)[..., None] for s in own))}
    for j, v in enumerate(others):
        r = jnp.asarray(stats[v].R)[..., None]
        # x → ±x*: P = ±R, Q = R; E = P − R and W = 0 exactly
        pattern_stats[v] = VectorStats(P=signs[:, j] * r, Q=r, R=r, E=(signs[:, j] - 1) * r, W=0 * r)
        if not own.has_errors:
            pattern_stats[v] = pattern_stats[v]._replace(E=None, W=None)
    mu = [lp.mu[..., k, None] for k in range(model.n_mechanisms)]
    alpha = jnp.asarray(lp.alpha)[..., None]
    return jnp.min(loss_terms(model, pattern_stats, mu, alpha, dims).total, axis=-1)


# ---------------------------------------------------------------------------------------------
# Materialising oracle (tests only: memory grows as the product of the dimensions)
# ---------------------------------------------------------------------------------------------


def _outer(vectors: Sequence[Float[Array, " n"]]) -> Array:
    out = vectors[0]
    for v in vectors[1:]:
        out = jnp.multiply.outer(out, v)
    return out


def materialised_loss_terms(
    model: ToyModel, params: Mapping[str, Array], targets: Mapping[str, Array], lp: LossParams
) -> LossTerms:
    """Loss terms computed by building every tensor explicitly. A slow, independent test oracle."""
    mech = tuple(
        0.5 * jnp.mean((_outer([targets[v] for v in m]) - _outer([params[v] for v in m])) ** 2)
        for m in model.mechanisms
    )
    comp = 0.5 * jnp.mean(_outer([params[v] for v in model.competition]) ** 2) if model.competition else 0.0
    mu = [lp.mu[k] for k in range(model.n_mechanisms)]
    return LossTerms(combine_losses(model.combine, mech, mu, lp.alpha, comp), mech, comp)


def materialised_loss(model: ToyModel, params, targets, lp: LossParams) -> Array:
    """Total loss by materialising the tensors (test oracle)."""
    return materialised_loss_terms(model, params, targets, lp).total


__all__ = [
    "COMBINE_RULES",
    "LossParams",
    "LossTerms",
    "ToyModel",
    "VectorStats",
    "coopetition_model",
    "combine_losses",
    "competition_term",
    "loss",
    "loss_params",
    "loss_terms",
    "loss_with_others_at_targets",
    "materialised_loss",
    "materialised_loss_terms",
    "mechanism_loss",
    "mechanism_loss_accurate",
    "stats_of",
    "tensor_model",
    "total_loss_from_stats",
    "vector_stats",
]
