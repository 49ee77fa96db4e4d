r"""Global search: initial guesses that cover the degenerate directions, screened by their cost.

:func:`initial_guesses` draws ``n_candidates`` physical parameter sets — candidate 0 is the thesis
setting (:data:`bridge.spec.DEFAULTS`), the others log-uniform in :data:`bridge.spec.START_BOX`
(μ₁, α over three decades, dimensions over [1.5, 10⁴], the initial cosines |ε|/√q(0) over
[10⁻³, 0.5]) — in each of the four
**sign classes** of the overlaps, and pairs each with every span of a log grid (:data:`SPAN_GRID`,
10–10⁷ toy-time units over the log). Sign classes: the loss depends on the P_x only through the
mechanisms' products P_aP_bP_c and P_dP_bP_c, and flipping (b, c) or (a, b, d) together preserves
both, so every sign pattern is equivalent to one with P_b, P_c > 0 (ε_bc > 0) and (sign ε_a, sign ε_d) ∈
{±1}²; the minimiser moves magnitudes easily but rarely crosses a sign, so each class is screened.
The projected cost of every (candidate, span) pair is evaluated by one compiled,
vmapped forward solve (no derivatives; in batches of a CMA-ES generation's size when a CMA-ES search
follows, :func:`batched_costs`), and the ``n_starts`` best pairs, at most one per candidate,
become the starts of the Adam → Levenberg–Marquardt minimisation (:mod:`bridge.optimise`).
Why a screen and not a span heuristic: the time scale trades off against the dimensions, so a
span chosen for the thesis dimensions is far off for a candidate with n_d = 10⁴, and the
minimiser then spends its budget walking along the degenerate valley.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.precision import numerics

from .objective import cost_of, residuals
from .spec import DEFAULTS, OVERLAP_NAMES, START_BOX, FitSpec
from .toy import SolveSettings

SPAN_GRID = np.geomspace(10.0, 1e7, 25)


def random_starts(spec: FitSpec, n: int, seed: int) -> list[dict[str, float]]:
    """Physical values: start 0 = :data:`DEFAULTS` (thesis), the others log-uniform in
    :data:`START_BOX` (overlaps positive: see :func:`sign_classes`); the span is left at its default."""
    rng = np.random.default_rng(seed)
    starts = []
    for i in range(n):
        values = {k: spec.value(k) for k in DEFAULTS}
        for name in spec.free:
            if name == "span":
                continue
            if i == 0:
                values[name] = DEFAULTS[name] if DEFAULTS[name] > 0 else START_BOX[name][0]
                continue
            lo, hi = START_BOX[name]
            values[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        for name in OVERLAP_NAMES:  # drawn as the initial cosine κ: ε = κ √q(0)
            if name in spec.free and i > 0:
                values[name] *= float(np.sqrt(values[spec.q0_of(name)]))
        starts.append(values)
    return starts


def sign_classes(spec: FitSpec, values: dict[str, float]) -> list[dict[str, float]]:
    """``values`` in each sign class (sign ε_a, sign ε_d) ∈ {±1}² of the free overlaps (module
    docstring), with ε_bc as given."""
    out = []
    for sa in (1.0, -1.0):
        for sd in (1.0, -1.0):
            if (sa < 0 and "eps_a" not in spec.free) or (sd < 0 and "eps_d" not in spec.free):
                continue
            out.append(dict(values, eps_a=sa * abs(values["eps_a"]), eps_d=sd * abs(values["eps_d"])))
    return out


@functools.partial(jax.jit, static_argnums=(0, 1))
def screen_costs(spec: FitSpec, solve: SolveSettings, theta, u, Y, sigma):
    """Projected cost of every row of ``theta`` (n, p): one vmapped forward solve each (+inf where
    the solve fails)."""
    return jax.vmap(lambda t: cost_of(residuals(spec, solve, t, u, Y, sigma)))(theta)


def batched_costs(
    spec: FitSpec, solve: SolveSettings, theta, u, Y, sigma, batch: int | None = None
) -> np.ndarray:
    """:func:`screen_costs` of ``theta`` (n, p) in batches of ``batch`` rows (None: one batch), the
    last one padded with θ = 0 (span 1: a near-instant solve); NumPy costs (n,).

    Why batches: one compiled program serves every batch of the same size — the CMA-ES search
    (:mod:`bridge.evolve`) scores generations of a fixed size, and a screen in batches of that size
    runs that same program instead of compiling its own (≈ 5 s of a fresh fit) — and a vmapped solve
    steps until its slowest member is done, so a straggler holds up ``batch`` points, not all n.
    A point's cost does not depend on the other points of its batch, but each batch size is its own
    compiled program and may round differently: on the speed case's 4800 screen points (512-step
    budget) one batch of 4800 and batches of 128 differ in 748 of 2237 finite costs, by 2·10⁻¹⁶
    relative (median) and by 3 % for one point whose step sequence the rounding changed."""
    theta = np.asarray(theta)
    n = theta.shape[0]
    batch = n if batch is None else int(batch)
    pad = (-n) % batch
    rows = np.concatenate([theta, np.zeros((pad, theta.shape[1]))]) if pad else theta
    data = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))
    out = [
        np.asarray(screen_costs(spec, solve, jnp.asarray(rows[b : b + batch]), *data))
        for b in range(0, rows.shape[0], batch)
    ]
    return np.concatenate(out)[:n]


def initial_guesses(
    spec: FitSpec,
    u: np.ndarray,
    Y: np.ndarray,
    sigma: np.ndarray,
    n_starts: int,
    n_candidates: int,
    seed: int,
    solve: SolveSettings,
    batch: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Unconstrained starts (n_starts, p) and a record of the screen (module docstring), the costs
    computed in batches of ``batch`` points (:func:`batched_costs`; None: one batch)."""
    cands = [v for c in random_starts(spec, n_candidates, seed) for v in sign_classes(spec, c)]
    n_candidates = len(cands)
    spans = SPAN_GRID if "span" in spec.free else np.array([spec.value("span")])
    rows = []
    for c in cands:
        for T in spans:
            rows.append(spec.unconstrained(dict(c, span=float(T))))
    theta = np.stack(rows)
    with numerics("float64"):
        costs = batched_costs(spec, solve, theta, u, Y, sigma, batch)
    costs = np.where(np.isfinite(costs), costs, np.inf).reshape(n_candidates, spans.size)
    best_span = np.argmin(costs, axis=1)
    best_cost = costs[np.arange(n_candidates), best_span]
    order = np.argsort(best_cost, kind="stable")[:n_starts]
    order = np.resize(order, n_starts)  # fewer candidates than starts: repeat the best ones
    picked = np.stack([theta[i * spans.size + best_span[i]] for i in order])
    record = {
        "candidates": int(n_candidates),
        "spans_per_candidate": int(spans.size),
        "picked": [int(i) for i in order],
        "picked_costs": [float(best_cost[i]) for i in order],
    }
    return picked, record


__all__ = ["SPAN_GRID", "batched_costs", "initial_guesses", "random_starts", "screen_costs", "sign_classes"]
