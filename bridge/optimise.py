r"""Multi-start minimisation of the projected least-squares cost: Adam, then Levenberg–Marquardt.

One start runs a single :func:`jax.lax.while_loop`. Every iteration evaluates the residuals
:math:`r` and their Jacobian :math:`J = ∂r/∂θ` (forward mode, one JVP per free parameter, through
the Diffrax solve) at a *candidate* θ, and keeps the best point seen so far:

* Adam phase (``adam_steps`` iterations, optax): candidate ← Adam step on the gradient
  :math:`g = J^\top r` of :math:`½|r|^2`, from the last candidate. It moves far from poor initial
  guesses without line searches.
* Levenberg–Marquardt phase: candidate ← best + δ with
  :math:`(J^\top J + λ\,\mathrm{diag}(J^\top J))\,δ = -J^\top r` at the best point, shortened to
  :math:`|δ|_\infty ≤ 1` (a factor e per log-parameter: keeps candidates where the solve is cheap);
  λ ÷ 3 after an improvement, × 4 otherwise (Marquardt's scaling; converges quadratically near a zero-residual
  minimum, which the noise-free recovery tests need).

Profiles (:mod:`bridge.identify`) and the polish (:func:`polish_best`) reuse the same compiled
program: every start carries an :class:`Anchor`, a residual row :math:`\sqrt{w}\,(v\cdot θ - t)`
appended to :math:`r` (weight :math:`w = 0` for an ordinary start) and its own numbers of Adam and
LM iterations (0 Adam iterations for a profile point started at the optimum; 0 of both for a padding
start), so a profile point is the same minimisation with one direction pinned and a polished start
the same minimisation with a larger LM budget.

A candidate whose solve fails (NaN) is simply rejected. The loop stops after
``adam_steps + lm_steps`` evaluations (the start's own, :class:`Anchor`), once LM has converged
(relative improvement of an accepted step < ``ftol``, cost < 1e-28, or λ > 1e12), or at once if the
initial guess's solve fails. The returned point is the best one evaluated, so the fit is never worse
than its initial guess (the first candidate). The starts are vmapped; a start that has finished
evaluates a trivially cheap candidate while the others continue (its state no longer changes).

Why not ``optimistix.least_squares(..., optx.LevenbergMarquardt(...))``: optimistix's LM damps with
:math:`λI` (Levenberg) rather than :math:`λ\,\mathrm{diag}(J^\top J)` (Marquardt: the parameters
here have very different curvatures), adapts a trust-region radius by the ratio of actual to
predicted reduction (× 3.5 / × 0.25) instead of λ ÷ 3 / × 4, has no :math:`|δ|_\infty` cap, no
Adam phase sharing the loop and the best point with LM, and no rejection of candidates whose solve
failed counted in one iteration budget; it cannot reproduce these fits (``fit.json``), which must
stay unchanged until the fit itself is reworked.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from .objective import cost_of, residuals
from .spec import FitSpec
from .toy import SolveSettings


@dataclasses.dataclass(frozen=True)
class OptimiserSettings:
    """Iteration budget of one start (static).

    Attributes:
        adam_steps: Adam iterations before LM (0: LM only).
        adam_lr: Adam learning rate in the unconstrained coordinates (log-parameters).
        lm_steps: maximum Levenberg–Marquardt iterations.
        lm_lambda0: initial damping λ.
        ftol: LM stops when an accepted step improves the cost by less than this fraction.
        gtol: LM stops when the largest cosine between the residual vector and a column of the
            Jacobian at the best point is below this (a stationary point; MINPACK's test).
        polish_starts, polish_lm_steps: when no start of the best basin converged, the
            ``polish_starts`` best starts that ran out of iterations continue with up to
            ``polish_lm_steps`` more LM iterations (:func:`polish_best`; 0 starts: never).
    """

    adam_steps: int = 40
    adam_lr: float = 0.05
    lm_steps: int = 120
    lm_lambda0: float = 1e-2
    ftol: float = 1e-10
    gtol: float = 1e-6
    polish_starts: int = 2
    polish_lm_steps: int = 480


class Anchor(eqx.Module):
    """Per-start extras (traced, so every start of one compiled call may differ).

    Attributes:
        direction: v, shape (p,); the pinned combination v·θ of the unconstrained parameters.
        target: t, the value v·θ is pinned to; weight: w ≥ 0 (0: no anchor).
        adam_steps: Adam iterations of this start (≤ the static budget ``OptimiserSettings.adam_steps``).
        lm_steps: the most LM iterations of this start (any number: the loop's bound is traced, so a
            larger budget does not compile another program).
    """

    direction: Float[Array, " p"]
    target: Float[Array, ""]
    weight: Float[Array, ""]
    adam_steps: Array
    lm_steps: Array

    @classmethod
    def free(cls, n_starts: int, p: int, opt: OptimiserSettings) -> Anchor:
        """No anchor for any of ``n_starts`` starts, each with the budget of ``opt``."""
        return cls(
            direction=jnp.zeros((n_starts, p)),
            target=jnp.zeros((n_starts,)),
            weight=jnp.zeros((n_starts,)),
            adam_steps=jnp.full((n_starts,), opt.adam_steps, dtype=jnp.int32),
            lm_steps=jnp.full((n_starts,), opt.lm_steps, dtype=jnp.int32),
        )


class StartResult(eqx.Module):
    """Outcome of one start (batched over starts after vmap)."""

    theta: Float[Array, " p"]
    cost: Float[Array, ""]
    initial_cost: Float[Array, ""]
    residuals: Float[Array, " m"]
    jacobian: Float[Array, "m p"]
    iterations: Array
    converged: Array


def _lm_step(J, r, lam, max_step=1.0):
    A = J.T @ J
    g = J.T @ r
    d = jnp.diag(A)
    d = jnp.where(d > 0, d, 1.0)
    delta = jnp.linalg.solve(A + lam * jnp.diag(d) + 1e-14 * jnp.eye(A.shape[0]), -g)
    # trust region in the log-parameters: at most a factor e per parameter and step
    delta = delta / jnp.maximum(1.0, jnp.max(jnp.abs(delta)) / max_step)
    return jnp.where(jnp.all(jnp.isfinite(delta)), delta, 0.0)


def anchored_residuals(spec: FitSpec, solve: SolveSettings, theta, u, Y, sigma, anchor: Anchor):
    """The projected residuals with the anchor row appended (length K·n + 1)."""
    r = residuals(spec, solve, theta, u, Y, sigma)
    row = jnp.sqrt(anchor.weight) * (jnp.dot(anchor.direction, theta) - anchor.target)
    return jnp.concatenate([r, row[None]])


def minimise_one(
    spec: FitSpec, solve: SolveSettings, opt: OptimiserSettings, theta0, u, Y, sigma, anchor: Anchor
) -> StartResult:
    """Minimise the projected cost from one initial θ (pure; vmap over ``theta0`` and ``anchor``)."""
    res_fn = functools.partial(anchored_residuals, spec, solve)

    def r_and_j(theta):
        J, r = jax.jacfwd(lambda t: (res_fn(t, u, Y, sigma, anchor),) * 2, has_aux=True)(theta)
        return r, J

    adam = optax.adam(opt.adam_lr)
    cheap = jnp.zeros_like(theta0)  # span = e^0 = 1: a near-instant solve
    m = Y.size + 1
    p = theta0.shape[0]
    n_adam = jnp.minimum(anchor.adam_steps, opt.adam_steps)
    total = n_adam + anchor.lm_steps
    init = dict(
        k=jnp.asarray(0),
        cand=theta0,
        adam_state=adam.init(theta0),
        best=theta0,
        cost_best=jnp.asarray(jnp.inf, theta0.dtype),
        r_best=jnp.full((m,), jnp.nan, theta0.dtype),
        J_best=jnp.zeros((m, p), theta0.dtype),
        cost0=jnp.asarray(jnp.inf, theta0.dtype),
        lam=jnp.asarray(opt.lm_lambda0, theta0.dtype),
        done=jnp.asarray(False),
    )

    def body(s):
        r, J = r_and_j(s["cand"])
        ok = jnp.all(jnp.isfinite(J))
        cost = jnp.where(ok, cost_of(r), jnp.inf)
        improved = cost < s["cost_best"]
        rel = (s["cost_best"] - cost) / jnp.maximum(s["cost_best"], 1e-300)
        in_adam = s["k"] < n_adam
        best = jnp.where(improved, s["cand"], s["best"])
        cost_best = jnp.where(improved, cost, s["cost_best"])
        r_best = jnp.where(improved, r, s["r_best"])
        J_best = jnp.where(improved, J, s["J_best"])
        lam = jnp.where(in_adam, s["lam"], jnp.where(improved, s["lam"] / 3.0, s["lam"] * 4.0))
        lam = jnp.clip(lam, 1e-12, 1e13)
        # MINPACK-style gradient test at the best point: the largest cosine between the residual and a
        # column of J (0 at a stationary point, whatever the residual's size)
        g = J_best.T @ r_best
        col = jnp.sqrt(jnp.sum(J_best * J_best, axis=0)) * jnp.sqrt(jnp.sum(r_best * r_best))
        cosine = jnp.max(jnp.abs(g) / jnp.maximum(col, 1e-300))
        stationary = jnp.isfinite(cosine) & (cosine < opt.gtol)
        converged = ~in_adam & (
            (improved & (rel < opt.ftol)) | (cost_best < 1e-28) | (lam >= 1e12) | stationary
        )
        # the initial guess itself failed: give up (done, but not converged)
        converged = converged | ~jnp.isfinite(cost_best)
        # Adam: a step from the candidate just evaluated (from the best point if it failed)
        g = jnp.where(jnp.isfinite(cost), J.T @ r, 0.0)  # Adam's gradient, at the candidate
        start = jnp.where(jnp.isfinite(cost), s["cand"], best)
        updates, adam_state = adam.update(g, s["adam_state"], start)
        adam_next = optax.apply_updates(start, updates)
        lm_next = best + _lm_step(J_best, r_best, lam)
        k = s["k"] + 1
        cand = jnp.where(k < n_adam, adam_next, lm_next)
        # under vmap a finished start still runs the loop body until every start is done: give it
        # a candidate whose solve is trivially cheap (toy-time span 1) instead of its last one
        cand = jnp.where(converged, cheap, cand)
        return dict(
            k=k,
            cand=cand,
            adam_state=adam_state,
            best=best,
            cost_best=cost_best,
            r_best=r_best,
            J_best=J_best,
            cost0=jnp.where(s["k"] == 0, cost, s["cost0"]),
            lam=lam,
            done=converged,
        )

    def cond(s):
        return (s["k"] < total) & ~s["done"]

    s = jax.lax.while_loop(cond, body, init)
    return StartResult(
        theta=s["best"],
        cost=s["cost_best"],
        initial_cost=s["cost0"],
        residuals=s["r_best"],
        jacobian=s["J_best"],
        iterations=s["k"],
        converged=s["done"] & jnp.isfinite(s["cost_best"]),
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _minimise_starts(spec, solve, opt, theta0, u, Y, sigma, anchor) -> StartResult:
    return jax.vmap(lambda t, a: minimise_one(spec, solve, opt, t, u, Y, sigma, a))(theta0, anchor)


def minimise_starts(
    spec: FitSpec, solve: SolveSettings, opt: OptimiserSettings, theta0, u, Y, sigma, anchor=None
) -> StartResult:
    """:func:`minimise_one` vmapped over starts ``theta0`` of shape (n_starts, p) (and ``anchor``,
    default: no anchor and ``opt``'s budget). One compiled program per spec, settings and shapes."""
    if anchor is None:
        anchor = Anchor.free(theta0.shape[0], theta0.shape[1], opt)
    dtype = jnp.asarray(theta0).dtype
    anchor = Anchor(
        direction=jnp.asarray(anchor.direction, dtype),
        target=jnp.asarray(anchor.target, dtype),
        weight=jnp.asarray(anchor.weight, dtype),
        adam_steps=jnp.asarray(anchor.adam_steps, jnp.int32),
        lm_steps=jnp.asarray(anchor.lm_steps, jnp.int32),
    )
    return _minimise_starts(spec, solve, opt, theta0, u, Y, sigma, anchor)


def best_basin(costs: np.ndarray, rtol: float) -> np.ndarray:
    """Mask of the starts whose cost (+inf for a failed start) is within ``rtol`` of the best."""
    return costs <= np.min(costs) * (1 + rtol) + 1e-300


def polish_best(
    spec: FitSpec, solve: SolveSettings, opt: OptimiserSettings, res: StartResult, u, Y, sigma,
    basin_rtol: float, batch: int | None = None, groups: int = 1,
) -> tuple[StartResult, list[int]]:
    """Continue the best starts of ``res`` (NumPy, from :func:`minimise_starts`) when none of the
    best basin (cost within ``basin_rtol`` of the best) converged: the ``opt.polish_starts`` best
    starts that ran out of iterations get up to ``opt.polish_lm_steps`` more LM iterations (no Adam),
    through the fit's own compiled program (the batch padded with starts of no budget, as the
    profiles pad theirs; ``batch`` lanes, default all of ``res``'s starts). With ``groups`` > 1 the
    starts are that many equal consecutive groups — the independent searches of a fit — and each
    group is judged and polished on its own (its best basin, its best starts), all in one padded
    batch: a group's outcome does not depend on the others (lanes of a vmapped batch are
    independent), so the first search of a fit is the one-search fit — to the last bit when every
    group's polished starts fit in ``batch`` lanes (the fit's defaults: 2 searches × 2 ≤ 8 starts),
    to rounding otherwise (a larger batch is another compiled program). Returns the
    merged result (their iterations summed, their initial cost kept) and the indices continued.

    Why: in the exact family the best basin is a long, curved, nearly flat valley (condition numbers
    10⁸–10¹³ on the symmetry's complement), where LM creeps — α = 0.3 s3 of the held-out cases went
    from a cost of 5.14·10⁻⁴ at 120 iterations to the truth's 4.95·10⁻⁴ at ≈ 560 —, and under vmap
    every start runs until the slowest stops, so raising ``lm_steps`` for all 8 starts costs 8× what
    continuing the 2 that matter does. Continuing in the fit's program rather than a 2-start one
    saves that program's compilation, but every inner solver step then computes all the batch's
    lanes, padding included (speed case: 16.3 s fresh and 15.6 s warm, against 25.8 s and 5.5 s
    for a 2-start program; kept for ``python -m bridge.fit``, one fit per process, docs/bridge.md
    "Speed"). A fit whose best start converged is not touched."""
    if opt.polish_starts == 0:
        return res, []
    costs = np.where(np.isfinite(np.asarray(res.cost)), np.asarray(res.cost), np.inf)
    conv = np.asarray(res.converged)
    size = costs.size // groups
    pick = []
    for g in range(groups):
        c, ok = costs[g * size : (g + 1) * size], conv[g * size : (g + 1) * size]
        if not np.isfinite(c.min()) or np.any(best_basin(c, basin_rtol) & ok):
            continue
        order = np.argsort(c, kind="stable")
        pick += [g * size + int(i) for i in order if np.isfinite(c[i]) and not ok[i]][: opt.polish_starts]
    if not pick:
        return res, []
    n, p = np.shape(res.theta)
    n = n if batch is None else max(int(batch), len(pick))
    theta0 = np.zeros((n, p))  # padding starts (θ = 0, span 1) with no iterations
    theta0[: len(pick)] = np.asarray(res.theta)[pick]
    anchor = Anchor(
        direction=jnp.zeros((n, p)),
        target=jnp.zeros((n,)),
        weight=jnp.zeros((n,)),
        adam_steps=jnp.zeros((n,), jnp.int32),
        lm_steps=jnp.asarray(np.where(np.arange(n) < len(pick), opt.polish_lm_steps, 0), jnp.int32),
    )
    more = jax.device_get(minimise_starts(spec, solve, opt, jnp.asarray(theta0), u, Y, sigma, anchor))
    fields = {}
    for name in ("theta", "cost", "residuals", "jacobian", "converged"):
        a = np.array(getattr(res, name))
        a[pick] = np.asarray(getattr(more, name))[: len(pick)]
        fields[name] = a
    iterations = np.array(res.iterations)
    iterations[pick] += np.asarray(more.iterations)[: len(pick)]
    return dataclasses.replace(res, **fields, iterations=iterations), pick


def minimise_starts_loop(
    spec: FitSpec, solve: SolveSettings, opt: OptimiserSettings, theta0, u, Y, sigma
) -> list[StartResult]:
    """The unvmapped baseline: one compiled start at a time (for the benchmark)."""
    one = _minimise_one_jit
    p = theta0.shape[1]
    free = Anchor.free(1, p, opt)
    a = jax.tree.map(lambda x: x[0], free)
    return [one(spec, solve, opt, t, u, Y, sigma, a) for t in theta0]


_minimise_one_jit = jax.jit(minimise_one, static_argnums=(0, 1, 2))


__all__ = [
    "Anchor",
    "OptimiserSettings",
    "StartResult",
    "anchored_residuals",
    "best_basin",
    "minimise_one",
    "minimise_starts",
    "minimise_starts_loop",
    "polish_best",
]
