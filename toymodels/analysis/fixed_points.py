r"""Fixed points of the reduced coopetition gradient flow and their stability.

The (μ₁, α) phase diagram built on them is in :mod:`toymodels.analysis.phases`.

Where the reduced flow stops. For each vector, :math:`\dot P = \dot Q = 0` is the linear system
:math:`\begin{pmatrix}R & 2P\\ P & 2Q\end{pmatrix}\begin{pmatrix}L_P\\ L_Q\end{pmatrix} = 0` with
determinant :math:`2(QR - P^2) ≥ 0` (Cauchy–Schwarz). So at a fixed point every vector is either
*aligned with its target* (:math:`x = s\,x^*`, i.e. :math:`P = sR`, :math:`Q = s^2R`) or has
:math:`L_P = L_Q = 0`. For the coopetition loss with α > 0, :math:`L_{Q_a} = (L_2+μ_2)Q_bQ_c/(2N_1)
+ αQ_d/(2n_an_d)` is a sum of non-negative terms, so :math:`L_Q = 0` forces other vectors to vanish
(degenerate configurations). This module therefore enumerates the fixed points on the aligned
manifold, where the flow is :math:`\dot s_v = -\frac{1}{R_v}\partial L/\partial s_v` with

.. math::
    L = \Big(\tfrac{\prod_1 R}{2N_1}(1-s_as_bs_c)^2 + μ_1\Big)\Big(\tfrac{\prod_2 R}{2N_2}(1-s_ds_bs_c)^2
        + μ_2\Big)
        + α\,\tfrac{R_aR_d}{2n_an_d}s_a^2s_d^2,

by Newton's method from many random starts (plus the exact origin), and classifies each by the
eigenvalues of the Jacobian of the **full 8-dimensional** reduced (P, Q) flow
(:class:`toymodels.reduced.ReducedDynamics`, derived by SymPy). In (P, Q) coordinates the
direction off the aligned manifold, :math:`w = Q - P^2/R = |x_\perp|^2`, has eigenvalue
:math:`-4L_Q`, twice that of the n − 1 perpendicular directions of x, so signs (and hence the
classification) agree with the full vector space; the count of unstable directions is that of the
reduced system.

Symmetries make some fixed points non-isolated: (a, b, d) → (−a, −b, −d) and (a, c, d) → (−a, −c, −d)
(only canonical representatives with s_b, s_c ≥ 0 are listed), and when μ₂ = 0 the "mechanism 2
only" state is a 2-parameter family :math:`s_a = 0`, :math:`s_ds_bs_c = 1` (rescalings of
d⊗b⊗c), so its Jacobian has 2 zero eigenvalues along the family; likewise for mechanism 1 when
μ₁ = 0. Zero eigenvalues are reported as neutral; "stable" means every other eigenvalue is negative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import require
from ..losses import coopetition_model
from ..precision import numerics
from ..reduced import ReducedParams, ReducedState, reduced_dynamics

__all__ = ["LABELS", "FixedPoint", "coopetition_fixed_points", "format_table"]

LABELS = ("nothing learned", "mechanism 1 only", "mechanism 2 only", "both")


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """A fixed point on the aligned manifold x_v = s_v x*_v.

    Attributes:
        s: (s_a, s_b, s_c, s_d).
        losses: (L_1, L_2, C) there.
        eigenvalues: of the 8×8 Jacobian of the (P, Q) flow (real parts sorted descending).
        n_unstable: eigenvalues with positive real part; n_zero: neutral ones.
        stability: ``"stable"``, ``"saddle"``, ``"unstable"`` or ``"degenerate"`` (all zero).
        label: one of :data:`LABELS` (mechanism k counts as learned when L_k < ½·L_k at the origin).
    """

    s: tuple[float, float, float, float]
    losses: tuple[float, float, float]
    eigenvalues: tuple[complex, ...]
    n_unstable: int
    n_zero: int
    stability: str
    label: str

    @property
    def description(self) -> str:
        if self.stability == "saddle":
            return f"saddle ({self.n_unstable} unstable)"
        return self.stability


def _setup(mu, alpha, dims):
    require(len(dims) == 4, "dims", f"the coopetition model has 4 vectors (got {len(dims)})")
    mu = tuple(float(m) for m in mu)
    require(len(mu) == 2 and all(m >= 0 for m in mu), "mu", f"need mu1, mu2 >= 0 (got {mu})")
    require(alpha >= 0, "alpha", f"must be >= 0 (got {alpha})")
    model = coopetition_model(tuple(dims))
    return model, reduced_dynamics(model, coordinates="PQ")


def _params(dims, mu, alpha) -> ReducedParams:
    d = jnp.asarray(dims, dtype=jnp.float64)
    return ReducedParams(
        R=d, dims=d, mu=jnp.asarray(mu, dtype=jnp.float64), alpha=jnp.asarray(alpha, dtype=jnp.float64)
    )


def _aligned_state(s, R) -> ReducedState:
    return ReducedState(P=s * R, Q=s * s * R)


def _newton_solve(dyn, params: ReducedParams, starts: jnp.ndarray, iters: int = 200):
    """Damped (Levenberg–Marquardt) Newton iterations for ṡ(s) = 0 from each start (vmapped).

    Why not optimistix (measured with optimistix 0.1.0, mu1 = 0.1 and 0, alpha = 0.1, dims
    20 20 20 160, 4096 + 6 starts, float64, ``throw=False``): ``optx.root_find`` with ``optx.Newton``
    has no damping or trust region, so starts far from a root diverge to non-finite values and the
    classification fails; ``optx.least_squares`` with ``optx.LevenbergMarquardt(rtol=1e-12,
    atol=1e-14)`` (200 steps) converges from more starts (1676 vs 1272 below 1e-11), but onto other
    members of the degenerate families near the origin, which the 1e-2 snapping turns into two extra
    "nothing learned" rows in each table of ``paper_figs/phase_diagram_fixed_points.txt``, and it is
    3.7x slower (103 s vs 27 s for those two tables on one CPU core). This fixed 200-step loop is
    cheap and reproduces them.
    """

    def F(s):
        return dyn.velocity(_aligned_state(s, params.R), params).P / params.R

    J = jax.jacfwd(F)

    def step(s, _):
        f, j = F(s), J(s)
        lam = 1e-12 * (1.0 + jnp.sum(j * j))
        delta = jnp.linalg.solve(j.T @ j + lam * jnp.eye(4), -j.T @ f)
        norm = jnp.linalg.norm(delta)
        delta = jnp.where(norm > 0.5, delta * 0.5 / norm, delta)  # trust region
        return s + delta, None

    def solve(s0):
        s, _ = jax.lax.scan(step, s0, None, length=iters)
        return s, jnp.max(jnp.abs(F(s)))

    return jax.vmap(solve)(starts)


def _canonical(s: np.ndarray) -> np.ndarray:
    s = s.copy()
    if s[1] < 0:  # (a, b, d) -> (-a, -b, -d)
        s[[0, 1, 3]] *= -1
    if s[2] < 0:  # (a, c, d) -> (-a, -c, -d)
        s[[0, 2, 3]] *= -1
    s[np.abs(s) < 1e-10] = 0.0
    return s


def _classify(eigs: np.ndarray, scale: float) -> tuple[int, int, str]:
    tol = 1e-7 * max(scale, 1e-300)
    re = eigs.real
    n_zero = int(np.sum(np.abs(eigs) <= tol))
    n_unstable = int(np.sum(re > tol))
    n_stable = len(eigs) - n_zero - n_unstable
    if n_zero == len(eigs):
        return n_unstable, n_zero, "degenerate"
    if n_unstable == 0:
        return n_unstable, n_zero, "stable"
    if n_stable == 0:
        return n_unstable, n_zero, "unstable"
    return n_unstable, n_zero, "saddle"


def _label(L1, L2, L1_0, L2_0) -> str:
    l1, l2 = L1 < 0.5 * L1_0, L2 < 0.5 * L2_0
    return LABELS[int(l1) + 2 * int(l2)]


def _analyse_fn(dyn):
    """Jitted, vmapped: (params, s) → (8×8 Jacobian of the (P, Q) flow, (L1, L2, C), |ṡ|)."""
    from ..losses import loss_terms

    def one(params, s):
        state = _aligned_state(s, params.R)
        jac = jax.jacfwd(lambda y: _flat(dyn.velocity(_unflat(y), params)))(_flat(state))
        mu = [params.mu[..., k] for k in range(2)]
        terms = loss_terms(dyn.model, dyn.stats(state, params), mu, params.alpha, dyn.dims(params))
        resid = jnp.max(jnp.abs(dyn.velocity(state, params).P / params.R))
        return jac, jnp.stack([terms.mechanisms[0], terms.mechanisms[1], terms.competition]), resid

    return jax.jit(jax.vmap(one))


_COMPILED: dict = {}


def _compiled(dyn):
    if id(dyn) not in _COMPILED:
        newton = jax.jit(
            jax.vmap(lambda params, starts: _newton_solve(dyn, params, starts), in_axes=(0, None))
        )
        _COMPILED[id(dyn)] = (newton, _analyse_fn(dyn))
    return _COMPILED[id(dyn)]


SPECIAL_STARTS = np.array(
    [[0, 0, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=float
)


def _candidates(sols: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Converged Newton solutions: snapped (|s| < 1e-2 → 0, then canonical signs), deduplicated."""
    ok = sols[res < 1e-11]
    out = [np.zeros(4)]  # the origin is an exact fixed point; Newton reaches it only slowly
    for s in ok:
        s = s.copy()
        s[np.abs(s) < 1e-2] = 0.0  # slow convergence near the degenerate origin families
        s = _canonical(s)
        if not any(np.max(np.abs(s - t)) < 1e-6 for t in out):
            out.append(s)
    return np.array(out)


def _fixed_points_from(cands, jacs, losses, resid, dims) -> list[FixedPoint]:
    R = np.asarray(dims, dtype=float)
    L1_0 = L2_0 = None
    found: list[FixedPoint] = []
    keys: list[tuple] = []
    for s, jac, (L1, L2, C), r in zip(cands, jacs, losses, resid):
        if r > 1e-10:  # snapping moved it off a fixed point: not a fixed point
            continue
        if L1_0 is None:
            L1_0, L2_0 = float(losses[0][0]), float(losses[0][1])  # the origin comes first
        eigs = np.linalg.eigvals(np.asarray(jac))
        eigs = eigs[np.argsort(-eigs.real)]
        scale = float(np.max(np.abs(eigs))) if np.any(eigs) else 0.0
        n_unstable, n_zero, stability = _classify(eigs, max(scale, 1e-3 / max(R)))
        L1, L2, C = float(L1), float(L2), float(C)
        label = _label(L1, L2, L1_0, L2_0)
        fp = FixedPoint(
            tuple(float(x) for x in s),
            (L1, L2, C),
            tuple(complex(e) for e in eigs),
            n_unstable,
            n_zero,
            stability,
            label,
        )
        # members of one continuous family (n_zero > 0) share label, stability and losses: keep one
        key = (
            label,
            stability,
            n_unstable,
            n_zero,
            round(L1, 7),
            round(L2, 7),
            round(C, 7),
            tuple(np.asarray(s) == 0),
        )
        dup = None
        if n_zero > 0 and stability != "degenerate":
            dup = next((i for i, k in enumerate(keys) if k == key), None)
        if dup is None:
            found.append(fp)
            keys.append(key)
        elif np.sum((np.abs(s) - 1) ** 2) < np.sum((np.abs(np.array(found[dup].s)) - 1) ** 2) - 1e-9:
            found[dup] = fp  # representative closest to |s| = 1
    order = {lab: i for i, lab in enumerate(LABELS)}
    found.sort(key=lambda f: (order[f.label], f.stability != "stable", f.s))
    return found


def _fixed_points_batch(dims, mus, alphas, n_starts, seed, box=1.6) -> list[list[FixedPoint]]:
    model, dyn = _setup(mus[0], alphas[0], dims)
    newton, analyse = _compiled(dyn)
    with numerics("float64"):
        B = len(mus)
        d = jnp.broadcast_to(jnp.asarray(dims, dtype=jnp.float64), (B, 4))
        params = ReducedParams(
            R=d, dims=d, mu=jnp.asarray(mus, dtype=jnp.float64), alpha=jnp.asarray(alphas, dtype=jnp.float64)
        )
        rng = np.random.default_rng(seed)
        starts = jnp.asarray(np.concatenate([SPECIAL_STARTS, rng.uniform(-box, box, size=(n_starts, 4))]))
        sols, res = newton(params, starts)
        sols, res = np.asarray(sols), np.asarray(res)
        cand = [_candidates(sols[b], res[b]) for b in range(B)]
        idx = np.concatenate([np.full(len(c), b) for b, c in enumerate(cand)])
        pts = np.concatenate(cand)
        p_rep = jax.tree.map(lambda x: x[idx], params)
        jacs, losses, resid = (np.asarray(x) for x in analyse(p_rep, jnp.asarray(pts)))
    out, k = [], 0
    for b, c in enumerate(cand):
        sl = slice(k, k + len(c))
        out.append(_fixed_points_from(c, jacs[sl], losses[sl], resid[sl], dims))
        k += len(c)
    return out


def coopetition_fixed_points(
    mu: Sequence[float] = (0.1, 0.0),
    alpha: float = 0.1,
    dims: Sequence[float] = (20, 20, 20, 160),
    n_starts: int = 4096,
    seed: int = 0,
) -> list[FixedPoint]:
    """Fixed points of the reduced coopetition flow with R_v = n_v (typical targets).

    Args:
        mu: (μ₁, μ₂); alpha: α; dims: (n_a, n_b, n_c, n_d), real values allowed.
        n_starts: random Newton starts, uniform in [−1.6, 1.6]^4 (plus a few special ones).

    Returns:
        Distinct fixed points (canonical signs), sorted by label, stable first. Members of a
        continuous family are merged into one representative (the one closest to |s| = 1).
        Newton solutions with components below 1e-2 are snapped to 0 (near the degenerate origin
        the residual is tiny, O(|s|³), and convergence is slow); fixed points with a nonzero
        component below 1e-2 would be missed.
    """
    _setup(mu, alpha, dims)
    return _fixed_points_batch(dims, [tuple(mu)], [float(alpha)], n_starts, seed)[0]


def _flat(state: ReducedState) -> jnp.ndarray:
    return jnp.concatenate(
        [jnp.stack([state.P[..., i], state.Q[..., i]], -1) for i in range(state.P.shape[-1])], -1
    )


def _unflat(y: jnp.ndarray) -> ReducedState:
    return ReducedState(P=y[0::2], Q=y[1::2])


def format_table(fps: Sequence[FixedPoint], mu, alpha, dims) -> str:
    """Plain-text fixed-point table."""
    head = (
        f"Fixed points of the reduced coopetition flow (aligned manifold x = s x*, R = n): "
        f"mu1 = {mu[0]}, mu2 = {mu[1]}, alpha = {alpha}, dims = {tuple(dims)}\n"
        f"{'label':<18} {'s_a':>8} {'s_b':>8} {'s_c':>8} {'s_d':>8} {'L1':>10} {'L2':>10} {'C':>10}  "
        f"{'classification':<22} {'zero eig':>8}  max Re(eig)"
    )
    rows = [head, "-" * len(head.splitlines()[-1])]
    for f in fps:
        rows.append(
            f"{f.label:<18} {f.s[0]:8.4f} {f.s[1]:8.4f} {f.s[2]:8.4f} {f.s[3]:8.4f} "
            f"{f.losses[0]:10.3e} {f.losses[1]:10.3e} {f.losses[2]:10.3e}  {f.description:<22} "
            f"{f.n_zero:>8}  {f.eigenvalues[0].real:+.3e}"
        )
    return "\n".join(rows)
