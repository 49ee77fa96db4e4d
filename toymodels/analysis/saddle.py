r"""Saddle analysis of the N-vector tensor-product model at the origin (thesis appendix C.4), for any N.

Everything is derived with SymPy from the one loss definition (:func:`toymodels.losses.loss_terms`
via :func:`toymodels.symbolic.derive`). Scaling every vector, :math:`x_v = εy_v`, changes the
statistics to :math:`P_v = ε p_v` (:math:`p_v = y_v\cdot x_v^*`) and :math:`Q_v = ε^2 q_v`
(:math:`q_v = |y_v|^2`), so along *any* direction :math:`y` the loss is the exact polynomial

.. math::  L(εy) - L(0) = -\frac{ε^N}{\prod n_v}\prod_v p_v + \frac{ε^{2N}}{2\prod n_v}\prod_v q_v .

* ε¹ coefficient = 0 for every y: the origin is a critical point (N ≥ 2);
* ε² coefficient = ½ yᵀHy: zero for every y when N ≥ 3, so the Hessian vanishes identically and
  the second-derivative test is inconclusive; for N = 2 it is :math:`-p_ap_b/(n_an_b)`, an
  indefinite form with eigenvalues :math:`±\sqrt{R_aR_b}/(n_an_b)` (on span{a*, b*}; 0 elsewhere);
* along :math:`d_- = (x^*_{v,i_v} e_{i_v})_v` (one target entry per vector, :math:`t_v = x^*_{v,i_v}`):
  :math:`ΔL = -ε^N\prod t_v^2/\prod n_v + ε^{2N}\prod t_v^2/(2\prod n_v)` < 0 for small ε; along
  :math:`d_+` (first entry negated) the ε^N term changes sign: ΔL > 0. A saddle. For odd N,
  :math:`d_+` and :math:`-d_-` give the same ΔL (ε → −ε flips ε^N), so one line through the origin
  shows both signs; for even N the ε^N term is even in ε and the two directions are needed.
* Plateau escape (gradient flow, symmetric start :math:`P_v = P`, :math:`Q_v = Q`, :math:`R_v = n_v = n`,
  :math:`P_0 = zσ\sqrt n`, :math:`Q_0 = σ^2 n`): to leading order in σ, :math:`\dot P = P^{N-1}/n^{N-1}`,
  so for N ≥ 3 the solution blows up at :math:`t_* = n^{N/2}(zσ)^{-(N-2)}/(N-2)` (escape time
  ∝ σ^{−(N−2)}), and for N = 2 it grows like :math:`P_0e^{t/n}`, reaching O(n) after
  :math:`t ≈ n\log(1/σ)`. Verified numerically by :mod:`toymodels.analysis.escape`.

CLI (``python -m toymodels.analysis``, alias ``python -m toymodels.saddle``; :mod:`toymodels.analysis.cli`):
``--n N`` prints this report (plain text and LaTeX).
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from ..errors import require
from ..losses import tensor_model
from ..symbolic import derive

__all__ = ["SaddleReport", "escape_time_prediction", "explicit_hessian_at_origin", "saddle_report"]


@dataclasses.dataclass(frozen=True)
class SaddleReport:
    """Symbolic results for the N-vector model (all SymPy expressions).

    Attributes:
        N: number of vectors.
        loss_along_ray: :math:`L(εy) - L(0)` in terms of ε, p_v, q_v, n_v.
        gradient_coefficient: ε¹ coefficient (0: critical point).
        hessian_form: ε² coefficient ×2, i.e. :math:`y^\top H y`.
        hessian_zero: whether the Hessian vanishes identically.
        hessian_eigenvalues: nonzero eigenvalues of H (on span of the targets; N = 2), else ().
        delta_minus, delta_plus: ΔL along d₋ and d₊ in terms of ε, t_v, n_v (exact polynomials).
        leading_order: the ε^N coefficient along d₋ (negative) and d₊ (positive).
        escape_velocity: leading-order symmetric-start dP/dt (in P, n).
        escape_time: leading-order escape time in σ, z, n.
    """

    N: int
    eps: sp.Symbol
    loss_along_ray: sp.Expr
    gradient_coefficient: sp.Expr
    hessian_form: sp.Expr
    hessian_zero: bool
    hessian_eigenvalues: tuple[sp.Expr, ...]
    delta_minus: sp.Expr
    delta_plus: sp.Expr
    leading_order: tuple[sp.Expr, sp.Expr]
    escape_velocity: sp.Expr
    escape_time: sp.Expr

    def lines(self, latex: bool = False) -> list[str]:
        f = sp.latex if latex else sp.sstr
        N = self.N
        out = [
            f"N-vector tensor-product model, N = {N} (loss ½·mean of the squared tensor error)",
            f"L(eps*y) - L(0) = {f(self.loss_along_ray)}",
            "  with p_v = y_v·x*_v, q_v = |y_v|², n_v = dim(v)",
            (
                f"gradient at 0 (eps^1 coefficient): {f(self.gradient_coefficient)}  "
                "-> the origin is a critical point"
            ),
            f"y^T H y at 0 (2 x eps^2 coefficient): {f(self.hessian_form)}",
        ]
        if self.hessian_zero:
            out.append(
                "  -> the Hessian at the origin vanishes identically: second-derivative test inconclusive"
            )
        else:
            eig = ", ".join(f(e) for e in self.hessian_eigenvalues)
            out.append(
                f"  -> indefinite Hessian, nonzero eigenvalues {eig} (on span of the targets): "
                "a strict saddle"
            )
        out += [
            f"along d- (one target entry t_v per vector): dL = {f(self.delta_minus)}",
            f"along d+ (first entry negated):           dL = {f(self.delta_plus)}",
            f"leading order: dL(d-) = {f(self.leading_order[0] * self.eps**N)} + O(eps^{2 * N}) < 0, "
            f"dL(d+) = {f(self.leading_order[1] * self.eps**N)} + O(eps^{2 * N}) > 0  -> a saddle",
        ]
        if N % 2 == 1:
            out.append(
                f"  N odd: eps -> -eps flips eps^{N}, so one line through the origin (d- and -d-) "
                "shows both signs"
            )
        else:
            out.append(f"  N even: eps^{N} is even in eps, so both directions d- and d+ are needed")
        out += [
            "plateau escape (gradient flow, symmetric start P0 = z*sigma*sqrt(n), Q0 = sigma^2*n, R = n):",
            f"  leading order dP/dt = {f(self.escape_velocity)}",
            f"  escape time t* = {f(self.escape_time)}",
        ]
        return out

    def text(self) -> str:
        return "\n".join(self.lines(False))

    def latex(self) -> str:
        return "\n".join(self.lines(True))


def _structure(N: int):
    require(int(N) == N and 2 <= N <= 26, "n", f"N must be an integer in [2, 26] (got {N})")
    return tensor_model((1,) * int(N))


def saddle_report(N: int) -> SaddleReport:
    """Derive the saddle report for the N-vector tensor-product model."""
    model = _structure(N)
    sd = derive(model)
    vs = model.vectors
    eps = sp.Symbol("epsilon", positive=True)
    p = {v: sp.Symbol(f"p_{v}", real=True) for v in vs}
    q = {v: sp.Symbol(f"q_{v}", nonnegative=True) for v in vs}
    t = {v: sp.Symbol(f"t_{v}", real=True, nonzero=True) for v in vs}
    L = sd.loss
    L0 = L.subs({sd.P[v]: 0 for v in vs} | {sd.Q[v]: 0 for v in vs})
    ray = sp.expand(L.subs({sd.P[v]: eps * p[v] for v in vs} | {sd.Q[v]: eps**2 * q[v] for v in vs}) - L0)
    poly = sp.Poly(ray, eps)
    grad = poly.coeff_monomial(eps)
    hform = sp.factor(2 * poly.coeff_monomial(eps**2))
    eigen: tuple[sp.Expr, ...] = ()
    if hform != 0:
        # restrict to y_v = u_v x*_v/|x*_v| (p_v = u_v sqrt(R_v)); off this span the form is 0
        u = sp.symbols(f"u_0:{len(vs)}", real=True)
        form_u = hform.subs({p[v]: u[i] * sp.sqrt(sd.R[v]) for i, v in enumerate(vs)})
        H = sp.hessian(form_u / 2, u)
        eigen = tuple(sp.simplify(e) for e in H.eigenvals())
    dminus = sp.factor(ray.subs({p[v]: t[v] ** 2 for v in vs} | {q[v]: t[v] ** 2 for v in vs}))
    first = vs[0]
    dplus = sp.factor(
        ray.subs(
            {p[first]: -(t[first] ** 2)} | {p[v]: t[v] ** 2 for v in vs[1:]} | {q[v]: t[v] ** 2 for v in vs}
        )
    )
    lead_minus = sp.factor(sp.Poly(sp.expand(dminus), eps).coeff_monomial(eps**N))
    lead_plus = sp.factor(sp.Poly(sp.expand(dplus), eps).coeff_monomial(eps**N))
    vel, t_star = escape_time_prediction(N)
    return SaddleReport(
        N=int(N),
        eps=eps,
        loss_along_ray=sp.factor_terms(ray),
        gradient_coefficient=grad,
        hessian_form=hform,
        hessian_zero=hform == 0,
        hessian_eigenvalues=eigen,
        delta_minus=dminus,
        delta_plus=dplus,
        leading_order=(lead_minus, lead_plus),
        escape_velocity=vel,
        escape_time=t_star,
    )


def escape_time_prediction(N: int) -> tuple[sp.Expr, sp.Expr]:
    r"""Leading-order plateau escape from the reduced gradient flow with a symmetric start.

    Substitutes :math:`P_v = σp`, :math:`Q_v = σ^2 q`, :math:`R_v = n_v = n` into the derived
    dP/dt, keeps the lowest order in σ (:math:`\dot P = cP^{N-1}`), and integrates it from
    :math:`P_0 = zσ\sqrt n`: :math:`t_* = \int_{P_0}^\infty dP/(cP^{N-1})` for N ≥ 3; for N = 2,
    :math:`\dot P = cP` and the time to grow from P₀ to n is :math:`\log(n/P_0)/c`, whose leading
    order in σ is :math:`\log(1/σ)/c`.

    Returns:
        (leading-order dP/dt as a function of P and n, escape time as a function of σ, z, n).
    """
    model = _structure(N)
    sd = derive(model)
    vs = model.vectors
    n, P, sigma, z, pp, qq = sp.symbols("n P sigma z p q", positive=True)
    sym = {sd.R[v]: n for v in vs} | {sd.n[v]: n for v in vs}
    dP = sd.flow[vs[0]][0].subs(
        sym | {sd.P[v]: sigma * pp for v in vs} | {sd.Q[v]: sigma**2 * qq for v in vs}
    )
    dP = sp.expand(dP)
    lowest = min(sp.Poly(dP, sigma).monoms())[0]
    c_term = sp.Poly(dP, sigma).coeff_monomial(sigma**lowest) * sigma**lowest
    vel = sp.simplify(c_term.subs(pp, P / sigma))  # dP/dt = c P^(N-1)
    c = sp.simplify(vel / P ** (N - 1))
    P0 = z * sigma * sp.sqrt(n)
    if N >= 3:
        t_star = sp.simplify(sp.integrate(1 / (c * P ** (N - 1)), (P, P0, sp.oo)))
    else:
        t_star = sp.simplify(sp.log(1 / sigma) / c)
    return vel, t_star


def explicit_hessian_at_origin(N: int, dim: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    """Independent check: the Hessian at 0 of the loss written in explicit vector components
    (dimension ``dim`` per vector, symbolic targets), by materialising the rank-one tensors.

    Returns (Hessian, gradient) at the origin.
    """
    import itertools

    names = "abcdefghijklmnopqrstuvwxyz"[:N]
    x = {v: sp.symbols(f"{v}_0:{dim}", real=True) for v in names}
    s = {v: sp.symbols(f"{v}star_0:{dim}", real=True) for v in names}
    total = 0
    for idx in itertools.product(range(dim), repeat=N):
        total += (
            sp.prod([s[v][i] for v, i in zip(names, idx)]) - sp.prod([x[v][i] for v, i in zip(names, idx)])
        ) ** 2
    L = total / (2 * dim**N)
    variables = [xi for v in names for xi in x[v]]
    at0 = {xi: 0 for xi in variables}
    H = sp.hessian(L, variables).subs(at0)
    g = sp.Matrix([sp.diff(L, xi) for xi in variables]).subs(at0)
    return sp.simplify(H), g
