r"""Symbolic (SymPy) derivation of the exact reduced dynamics of a toy model.

Every loss in :mod:`toymodels.losses` depends on a learnable vector :math:`x` (target :math:`x^*`)
only through :math:`P = x\cdot x^*` and :math:`Q = |x|^2` (:math:`R = |x^*|^2` is constant). By the
chain rule its gradient lies in :math:`\mathrm{span}\{x, x^*\}`:

.. math::  g = \nabla_x L = L_P\,x^* + 2L_Q\,x, \qquad
    L_P = \partial L/\partial P,\ L_Q = \partial L/\partial Q,

so the dynamics close exactly on :math:`(P, Q)` of every vector, whatever the dimensions:

* gradient flow :math:`\dot x = -g`:

  .. math::  \dot P = -g\cdot x^* = -(L_P R + 2L_Q P), \qquad \dot Q = -2g\cdot x = -2(L_P P + 2L_Q Q);

* gradient descent :math:`x' = x - \eta g`:

  .. math::  P' = P - \eta\,g\cdot x^*, \qquad Q' = Q - 2\eta\,g\cdot x + \eta^2|g|^2,
             \qquad |g|^2 = L_P^2R + 4L_PL_QP + 4L_Q^2Q .

For simulation the reduced state is instead :math:`(P, E, W)` with :math:`E = x^*\cdot(x - x^*) = P - R`
and :math:`W = |x_\perp|^2 = Q - P^2/R` (the part of x orthogonal to x*), and :math:`Q = W + P^2/R`.
These are the statistics with which :func:`toymodels.losses.mechanism_loss_accurate` evaluates the
losses as sums of non-negative terms. In coordinates (P, W) (E is P − R, carried separately so it
keeps relative precision when x → x*, while P keeps it when x → 0), with
:math:`\hat L(P, E, W) = L(P, W + P^2/R, E, W)`, :math:`\nabla_x P = x^*` and
:math:`\nabla_x W = 2x_\perp`, so :math:`g = (\hat L_P + \hat L_E)\,x^* + 2\hat L_W\,x_\perp` and

.. math::
    \dot P = \dot E = -R(\hat L_P + \hat L_E), \qquad \dot W = -4\hat L_W W, \qquad
    |g|^2 = R(\hat L_P + \hat L_E)^2 + 4\hat L_W^2 W,

    P' = P - \eta R(\hat L_P + \hat L_E),\quad E' = E - \eta R(\hat L_P + \hat L_E),\quad
    W' = (1 - 2\eta\hat L_W)^2\,W .

No O(1) numbers cancel in these formulas, so the reduced model keeps relative precision near any
minimum, like the full model. ``coordinates="PQ"`` (the plain form above) is used for analysis
(saddle, fixed points); ``coordinates="PEW"`` for simulation.

A vector clamped in full sits at its target (:math:`P = Q = R`, :math:`E = W = 0`) and does not move.
Clamping only the first k entries breaks the span argument (the gradient is masked entry-wise), so it
has no exact reduction.

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

__all__ = ["SymbolicDynamics", "derive"]


@dataclasses.dataclass(frozen=True, eq=False)
class SymbolicDynamics:
    r"""The symbolic loss and reduced dynamics of a model.

    Attributes:
        model: the model structure (its numeric dims are *not* used: dims are the symbols ``n``).
        free: names of vectors that learn, in model order.
        clamped: names of vectors clamped in full (P = Q = R, constant).
        coordinates: ``"PQ"`` or ``"PEW"``.
        P, Q, R, n: per-vector symbols (all vectors; ``P``/``Q`` of clamped vectors are unused).
        mu: symbols μ_1, …, μ_K; ``alpha``: α; ``lr``: the learning rate η.
        terms: the loss terms (total, mechanisms, competition) as SymPy expressions.
        dL_dP, dL_dQ: :math:`L_P`, :math:`L_Q` (``"PEW"``: :math:`\hat L_P + \hat L_E`, :math:`\hat L_W`).
        flow: free vector → time derivatives of its state coordinates.
        gd: free vector → its state coordinates after one gradient-descent step of size η.
        grad_norm_sq: :math:`\sum_{x\ \mathrm{free}} |g_x|^2`.
        grad_norm_sq_forms: per free vector, ((|g_x|², error scale),).
        E, W: symbols of the simulation coordinates (``"PEW"``).
    """

    model: ToyModel
    coordinates: str
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
    grad_norm_sq_forms: dict[str, tuple[tuple[sp.Expr, sp.Expr], ...]]
    E: dict[str, sp.Symbol]
    W: dict[str, sp.Symbol]

    @property
    def loss(self) -> sp.Expr:
        return self.terms.total

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the per-vector state coordinates: ("P", "Q") or ("P", "E", "W")."""
        return ("P", "Q") if self.coordinates == "PQ" else ("P", "E", "W")

    @property
    def per_vector(self) -> int:
        return len(self.state_names)

    @property
    def state_symbols(self) -> tuple[sp.Symbol, ...]:
        """The state coordinates of the free vectors, in model order."""
        syms = [getattr(self, name) for name in self.state_names]
        return tuple(d[v] for v in self.free for d in syms)

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


def _stats(coordinates, P, Q, E, W, R, clamped: bool) -> VectorStats:
    if coordinates == "PQ":
        return VectorStats(R, R, R) if clamped else VectorStats(P, Q, R)
    zero = sp.Integer(0)
    if clamped:
        return VectorStats(R, R, R, zero, zero)
    return VectorStats(P=P, Q=W + P**2 / R, R=R, E=E, W=W)


def _gd_and_flow(LP, LQ, P, Q, R, lr):
    """Flow velocity, GD update and |g|² (with its largest term, an error scale) for one vector in
    coordinates (P, Q) with partials (L_P, L_Q); identical algebra for (E, D) with (L_E, L_D)."""
    g_dot_target = LP * R + 2 * LQ * P  # g · x*
    g_dot_x = LP * P + 2 * LQ * Q  # g · x   (g · (x − x*) in E, D)
    terms = (LP**2 * R, 4 * LP * LQ * P, 4 * LQ**2 * Q)  # |g|² = sum
    g_sq = sum(terms)
    flow = (-g_dot_target, -2 * g_dot_x)
    gd = (P - lr * g_dot_target, Q - 2 * lr * g_dot_x + lr**2 * g_sq)
    scale = sum(sp.Abs(t) for t in terms)
    return flow, gd, g_sq, scale


@functools.lru_cache(maxsize=64)
def _derive_cached(model: ToyModel, clamped: frozenset[str], coordinates: str) -> SymbolicDynamics:
    vs = model.vectors
    P = {v: sp.Symbol(f"P_{v}", real=True) for v in vs}
    Q = {v: sp.Symbol(f"Q_{v}", nonnegative=True) for v in vs}
    E = {v: sp.Symbol(f"E_{v}", real=True) for v in vs}
    W = {v: sp.Symbol(f"W_{v}", nonnegative=True) for v in vs}
    R = {v: sp.Symbol(f"R_{v}", positive=True) for v in vs}
    n = {v: sp.Symbol(f"n_{v}", positive=True) for v in vs}
    mu = tuple(sp.Symbol(f"mu_{k + 1}", nonnegative=True) for k in range(model.n_mechanisms))
    alpha = sp.Symbol("alpha", nonnegative=True)
    lr = sp.Symbol("eta", positive=True)
    free = tuple(v for v in vs if v not in clamped)
    clamped_t = tuple(v for v in vs if v in clamped)
    stats = {v: _stats(coordinates, P[v], Q[v], E[v], W[v], R[v], v in clamped) for v in vs}
    # The one loss definition, evaluated on symbols:
    terms = loss_terms(model, stats, list(mu), alpha, n)
    terms = LossTerms(
        total=sp.sympify(terms.total),
        mechanisms=tuple(sp.sympify(m) for m in terms.mechanisms),
        competition=sp.sympify(terms.competition),
    )
    L = terms.total
    flow, gd, gsq_forms = {}, {}, {}
    dL_dP, dL_dQ = {}, {}
    gsq = sp.Integer(0)
    for v in free:
        if coordinates == "PQ":
            LP, LQ = sp.diff(L, P[v]), sp.diff(L, Q[v])
            dL_dP[v], dL_dQ[v] = LP, LQ
            f, g, g_sq, scale = _gd_and_flow(LP, LQ, P[v], Q[v], R[v], lr)
            flow[v], gd[v], gsq_forms[v] = f, g, ((g_sq, scale),)
        else:  # (P, E, W): g = (L_P + L_E) x* + 2 L_W x_perp, see the module docstring
            LPE, LW = sp.diff(L, P[v]) + sp.diff(L, E[v]), sp.diff(L, W[v])
            dL_dP[v], dL_dQ[v] = LPE, LW
            g_dot_target = R[v] * LPE
            g_sq = R[v] * LPE**2 + 4 * LW**2 * W[v]
            flow[v] = (-g_dot_target, -g_dot_target, -4 * LW * W[v])
            gd[v] = (P[v] - lr * g_dot_target, E[v] - lr * g_dot_target, (1 - 2 * lr * LW) ** 2 * W[v])
            gsq_forms[v] = ((g_sq, g_sq),)
        g_sq = gsq_forms[v][0][0]
        gsq = gsq + g_sq
    return SymbolicDynamics(
        model=model,
        coordinates=coordinates,
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
        grad_norm_sq_forms=gsq_forms,
        E=E,
        W=W,
    )


def derive(model: ToyModel, clamped: Iterable[str] = (), coordinates: str = "PQ") -> SymbolicDynamics:
    """Derive the symbolic reduced dynamics of ``model`` with the vectors ``clamped`` held in full,
    in (P, Q) coordinates or the simulation coordinates (P, E, W) (see the module docstring).

    The result is cached per (model structure, clamped set); dimensions, μ and α are symbols, so
    one derivation serves every parameter value.
    """
    clamped = frozenset(clamped)
    if coordinates not in ("PQ", "PEW"):
        raise ConfigError("coordinates", f"must be 'PQ' or 'PEW' (got {coordinates!r})")
    for v in clamped:
        if v not in model.vectors:
            raise ConfigError("clamp", f"unknown vector {v!r} (vectors: {', '.join(model.vectors)})")
    # The numeric dims never enter the derivation: normalise them so the cache is shared.
    structure = model.replace(dims=(1,) * len(model.vectors))
    return _derive_cached(structure, clamped, coordinates)
