r"""Symbolic (SymPy) derivation of the exact reduced dynamics of a toy model.

Every loss in :mod:`toymodels.losses` depends on a learnable vector :math:`x` (target :math:`x^*`)
only through :math:`P = x\cdot x^*` and :math:`Q = |x|^2` (:math:`R = |x^*|^2` is constant). By the
chain rule its gradient lies in :math:`\mathrm{span}\{x, x^*\}`:

.. math::  g = \nabla_x L = L_P\,x^* + 2L_Q\,x, \qquad L_P = \partial L/\partial P,\ L_Q = \partial L/\partial Q,

so the dynamics close exactly on :math:`(P, Q)` of every vector, whatever the dimensions:

* gradient flow :math:`\dot x = -g`:

  .. math::  \dot P = -g\cdot x^* = -(L_P R + 2L_Q P), \qquad \dot Q = -2g\cdot x = -2(L_P P + 2L_Q Q);

* gradient descent :math:`x' = x - \eta g`:

  .. math::  P' = P - \eta\,g\cdot x^*, \qquad Q' = Q - 2\eta\,g\cdot x + \eta^2|g|^2,
             \qquad |g|^2 = L_P^2R + 4L_PL_QP + 4L_Q^2Q .

A vector clamped in full sits at its target (:math:`P = Q = R`) and does not move. Clamping only
the first k entries breaks the span argument (the gradient is masked entry-wise), so it has no exact
reduction.

The loss itself is **not** retyped here: :func:`derive` calls :func:`toymodels.losses.loss_terms`
with SymPy symbols (including symbolic dimensions :math:`n_x`, offsets :math:`\mu_k` and competition
strength :math:`\alpha`) and differentiates the result.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import sympy as sp

from .errors import ConfigError
from .losses import LossTerms, ToyModel, VectorStats, loss_terms

__all__ = ["SymbolicDynamics", "derive", "symbolic_stats"]


@dataclasses.dataclass(frozen=True, eq=False)
class SymbolicDynamics:
    r"""The symbolic loss and reduced dynamics of a model.

    Attributes:
        model: the model structure (its numeric dims are *not* used: dims are the symbols ``n``).
        free: names of vectors that learn, in model order.
        clamped: names of vectors clamped in full (P = Q = R, constant).
        P, Q, R, n: per-vector symbols (all vectors; ``P``/``Q`` of clamped vectors are unused).
        mu: symbols μ_1, …, μ_K; ``alpha``: α; ``lr``: the learning rate η.
        terms: the loss terms (total, mechanisms, competition) as SymPy expressions.
        dL_dP, dL_dQ: :math:`L_P`, :math:`L_Q` of every free vector.
        flow: free vector → (dP/dt, dQ/dt).
        gd: free vector → (P', Q') after one gradient-descent step of size η.
        grad_norm_sq: :math:`\sum_{x\ \mathrm{free}} |g_x|^2`.
    """

    model: ToyModel
    free: tuple[str, ...]
    clamped: tuple[str, ...]
    P: dict[str, sp.Symbol]
    Q: dict[str, sp.Symbol]
    R: dict[str, sp.Symbol]
    n: dict[str, sp.Symbol]
    mu: tuple[sp.Symbol, ...]
    alpha: sp.Symbol
    lr: sp.Symbol
    terms: LossTerms
    dL_dP: dict[str, sp.Expr]
    dL_dQ: dict[str, sp.Expr]
    flow: dict[str, tuple[sp.Expr, sp.Expr]]
    gd: dict[str, tuple[sp.Expr, sp.Expr]]
    grad_norm_sq: sp.Expr

    @property
    def loss(self) -> sp.Expr:
        return self.terms.total

    @property
    def state_symbols(self) -> tuple[sp.Symbol, ...]:
        """(P_x, Q_x) of the free vectors, in model order: the coordinates of the reduced state."""
        return tuple(s for v in self.free for s in (self.P[v], self.Q[v]))

    @property
    def parameter_symbols(self) -> tuple[sp.Symbol, ...]:
        """(R_x …, n_x …, μ_k …, α) — everything the vector field depends on besides the state."""
        vs = self.model.vectors
        return tuple(self.R[v] for v in vs) + tuple(self.n[v] for v in vs) + self.mu + (self.alpha,)

    @property
    def vector_field(self) -> tuple[sp.Expr, ...]:
        """Gradient-flow velocity in the order of :attr:`state_symbols`."""
        return tuple(e for v in self.free for e in self.flow[v])

    def jacobian(self) -> sp.Matrix:
        """Jacobian of the gradient-flow vector field with respect to the reduced state."""
        return sp.Matrix(self.vector_field).jacobian(sp.Matrix(self.state_symbols))

    def substitute(self, expr: sp.Expr, **values) -> sp.Expr:
        """``expr`` with numbers substituted: ``R=``, ``dims=`` (per-vector sequences in model order),
        ``mu=`` (sequence), ``alpha=``."""
        subs = {}
        if "R" in values:
            subs.update({self.R[v]: values["R"][i] for i, v in enumerate(self.model.vectors)})
        if "dims" in values:
            subs.update({self.n[v]: values["dims"][i] for i, v in enumerate(self.model.vectors)})
        if "mu" in values:
            subs.update({m: values["mu"][k] for k, m in enumerate(self.mu)})
        if "alpha" in values:
            subs[self.alpha] = values["alpha"]
        return expr.subs(subs)


def symbolic_stats(sd: SymbolicDynamics) -> dict[str, VectorStats]:
    """Per-vector symbolic statistics (clamped vectors at their targets: P = Q = R)."""
    return {
        v: VectorStats(sd.R[v], sd.R[v], sd.R[v]) if v in sd.clamped else VectorStats(sd.P[v], sd.Q[v], sd.R[v])
        for v in sd.model.vectors
    }


@functools.lru_cache(maxsize=64)
def _derive_cached(model: ToyModel, clamped: frozenset[str]) -> SymbolicDynamics:
    vs = model.vectors
    P = {v: sp.Symbol(f"P_{v}", real=True) for v in vs}
    Q = {v: sp.Symbol(f"Q_{v}", nonnegative=True) for v in vs}
    R = {v: sp.Symbol(f"R_{v}", positive=True) for v in vs}
    n = {v: sp.Symbol(f"n_{v}", positive=True) for v in vs}
    mu = tuple(sp.Symbol(f"mu_{k + 1}", nonnegative=True) for k in range(model.n_mechanisms))
    alpha = sp.Symbol("alpha", nonnegative=True)
    lr = sp.Symbol("eta", positive=True)
    free = tuple(v for v in vs if v not in clamped)
    clamped_t = tuple(v for v in vs if v in clamped)
    stats = {
        v: VectorStats(R[v], R[v], R[v]) if v in clamped else VectorStats(P[v], Q[v], R[v]) for v in vs
    }
    # The one loss definition, evaluated on symbols:
    terms = loss_terms(model, stats, list(mu), alpha, n)
    terms = LossTerms(
        total=sp.sympify(terms.total),
        mechanisms=tuple(sp.sympify(m) for m in terms.mechanisms),
        competition=sp.sympify(terms.competition),
    )
    L = terms.total
    dL_dP = {v: sp.diff(L, P[v]) for v in free}
    dL_dQ = {v: sp.diff(L, Q[v]) for v in free}
    flow, gd = {}, {}
    gsq = sp.Integer(0)
    for v in free:
        LP, LQ = dL_dP[v], dL_dQ[v]
        g_dot_target = LP * R[v] + 2 * LQ * P[v]  # g · x*
        g_dot_x = LP * P[v] + 2 * LQ * Q[v]  # g · x
        g_sq = LP**2 * R[v] + 4 * LP * LQ * P[v] + 4 * LQ**2 * Q[v]  # |g|²
        flow[v] = (-g_dot_target, -2 * g_dot_x)
        gd[v] = (P[v] - lr * g_dot_target, Q[v] - 2 * lr * g_dot_x + lr**2 * g_sq)
        gsq = gsq + g_sq
    return SymbolicDynamics(
        model=model,
        free=free,
        clamped=clamped_t,
        P=P,
        Q=Q,
        R=R,
        n=n,
        mu=mu,
        alpha=alpha,
        lr=lr,
        terms=terms,
        dL_dP=dL_dP,
        dL_dQ=dL_dQ,
        flow=flow,
        gd=gd,
        grad_norm_sq=gsq,
    )


def derive(model: ToyModel, clamped: Iterable[str] = ()) -> SymbolicDynamics:
    """Derive the symbolic reduced dynamics of ``model`` with the vectors ``clamped`` held in full.

    The result is cached per (model structure, clamped set); dimensions, μ and α are symbols, so
    one derivation serves every parameter value.
    """
    clamped = frozenset(clamped)
    for v in clamped:
        if v not in model.vectors:
            raise ConfigError("clamp", f"unknown vector {v!r} (vectors: {', '.join(model.vectors)})")
    # The numeric dims never enter the derivation: normalise them so the cache is shared.
    structure = model.replace(dims=(1,) * len(model.vectors))
    return _derive_cached(structure, clamped)
