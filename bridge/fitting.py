r"""Fit the coopetition toy to transformer curves: global search, multi-start fit, identifiability,
R², transience prediction, and a loud verdict on convergence.

Pipeline of :func:`fit_curves`:

1. Normalise time, :math:`u = s/s_\max`, and per-curve spreads σ_k (see :mod:`bridge.objective`).
2. Global search (:func:`bridge.starts.initial_guesses`): ``n_candidates`` random parameter sets ×
   a log grid of spans, screened by their cost in one vmapped forward solve; the best
   ``n_starts`` become starts. With ``search = "cmaes"`` the best of them are then evolved by
   CMA-ES (:func:`bridge.evolve.evolve`) and its best points become the starts instead. The search
   runs ``searches`` times (2 by default) with independent seeds, each contributing ``n_starts``
   starts: which basin one search reaches is close to a coin toss on some held-out cases, and the
   wrong basins cost clearly more than the right one (docs/bridge.md, "Search or data?").
3. Minimise every start (:func:`bridge.optimise.minimise_starts`, vmapped, one search's starts at a
   time) and keep the best; in a search whose best basin has no converged start, its best two
   continue alone with more iterations (:func:`bridge.optimise.polish_best`); ``basin_starts``
   counts the starts that reached the best cost (within 1%), ``searches_in_best_basin`` the
   searches that did.
4. Convergence verdict: the fit has *failed* (``converged = False`` and ``failure`` says why) when
   no start converged, J is numerically rank-deficient (the condition number of JᵀJ is +inf:
   :func:`condition_number`), or the best cost is no better
   than that start's initial guess. Nothing downstream presents a failed fit as a result.
5. Uncertainty: profile-likelihood intervals of μ₁, α and the identifiable combinations
   (:mod:`bridge.identify`); the Gauss–Newton covariance :math:`\hat s^2 (J^\top J)^{-1}` is kept as
   ``stderr`` for the ε_x (local, a lower bound), with :math:`\hat s^2 = 2\,\mathrm{cost}/(m - p)`.
   Where the family has exact symmetries (:mod:`bridge.symmetry`: free initial norms), J is
   singular along them at every point; the condition number and the covariance are computed on
   their orthogonal complement, and the parameters they move are listed as not determined.
6. R² per curve (transformer units) and the transience verdicts (:mod:`bridge.verdict`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.errors import require
from toymodels.precision import numerics

from .evolve import EvolutionSettings
from .identify import combinations, profile
from .logs import Curves
from .objective import mapped_curves
from .optimise import OptimiserSettings, best_basin
from .searches import run_searches, search_agreement
from .spec import DEFAULTS, FitSpec
from .symmetry import generators, moved
from .toy import SolveSettings, toy_curves
from .verdict import transience

SEEN_UNIT = "sequences seen"
SEARCHES = ("screen", "cmaes")


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Settings of a fit (everything but the data and the :class:`FitSpec`).

    Attributes:
        n_starts: number of starts minimised (vmapped).
        n_candidates: random parameter sets screened for the starts (each × the span grid).
        search: ``"cmaes"`` (the screen's best points are evolved by CMA-ES before the local
            minimisation, :mod:`bridge.evolve`; the default) or ``"screen"`` (they are its starts).
        evolution: the CMA-ES budget (``search = "cmaes"`` only).
        searches: independent global searches (screen, and CMA-ES if chosen), search i with seed
            ``seed + SEARCH_SEED_STRIDE·i`` (:mod:`bridge.searches`); each search's ``n_starts``
            starts are minimised, and the best point of all of them is the fit (:func:`fit_curves`,
            step 2).
        workers: threads that run the searches at once (:func:`bridge.searches.search_workers`);
            None (the default): one per search, up to the cores this process may use. The result
            does not depend on it.
        seed: seed of the random candidates (of the first search).
        profile: compute the profile-likelihood intervals (:mod:`bridge.identify`).
        optimiser: iteration budget per start.
        solve: Diffrax tolerances of the toy solve.
        probe_span: unused (kept for old settings files).
        probe_points: points of the prediction grid.
        horizon: the transience prediction runs to ``horizon`` × the log's last evaluation.
    """

    n_starts: int = 8
    n_candidates: int = 48
    search: str = "cmaes"
    evolution: EvolutionSettings = EvolutionSettings()
    searches: int = 2
    workers: int | None = None
    seed: int = 0
    profile: bool = True
    optimiser: OptimiserSettings = OptimiserSettings()
    solve: SolveSettings = SolveSettings()
    probe_span: float = 1e5
    probe_points: int = 601
    horizon: float = 3.0

    def __post_init__(self) -> None:
        require(
            int(self.n_starts) == self.n_starts and self.n_starts >= 1,
            "starts",
            f"must be an integer >= 1 (got {self.n_starts})",
        )
        require(
            int(self.n_candidates) == self.n_candidates and self.n_candidates >= 1,
            "candidates",
            f"must be an integer >= 1 (got {self.n_candidates})",
        )
        require(
            int(self.searches) == self.searches and self.searches >= 1,
            "searches",
            f"must be an integer >= 1 (got {self.searches})",
        )
        require(
            self.workers is None or (int(self.workers) == self.workers and self.workers >= 1),
            "workers",
            f"must be an integer >= 1 (got {self.workers})",
        )
        require(
            self.search in SEARCHES, "search", f"must be one of {', '.join(SEARCHES)} (got {self.search!r})"
        )
        require(
            self.probe_span > 0 and self.probe_points >= 10, "probe_span", "must be > 0 with >= 10 points"
        )
        require(self.horizon >= 1, "horizon", f"must be >= 1 (got {self.horizon})")


@dataclasses.dataclass
class FitResult:
    """A finished fit. Physical values are plain floats; arrays are NumPy.

    Attributes:
        spec, settings: what was fitted and how.
        curves: the transformer curves that were fitted.
        params: toy parameter → fitted value (free and fixed); ``time_scale`` = s_max/span.
        stderr: free toy parameter (and ``time_scale``) → Gauss–Newton standard error (local; NaN
            if not estimable); the intervals to report are in ``identifiability``.
        scales, offsets, scale_stderr, offset_stderr, r2: per transformer curve.
        prediction: (K, n) fitted curves in transformer units; toy: (K, n) toy curves in toy units.
        cost, initial_cost: best cost and the cost of its own initial guess; start_costs,
            start_initial_costs: per start.
        transience: predicted vs observed ICL peak and fade (see :func:`transience`).
        toy_grid: the fitted toy on the prediction grid: ``t`` (toy time), ``seen`` and curves.
        seconds: wall-clock time of the fit (including compilation in a fresh process).
        start_converged: per start, whether its minimisation converged.
        converged, failure: the verdict on the whole fit (module docstring, step 4).
        basin_starts: starts whose cost is within 1% of the best; best_converged: whether one of
            them converged (if not, the reported point hit the iteration cap: a warning, not a failure).
        searches_in_best_basin: how many of the independent searches (``settings.searches``) have a
            start in the best basin (fewer than all: a warning — the others ended in worse basins).
        screen: record of the global searches (``searches``: one record each, with their seeds),
            their best costs and the polished starts; identifiability: profile intervals and
            combinations.
    """

    spec: FitSpec
    settings: FitSettings
    curves: Curves
    params: dict[str, float]
    stderr: dict[str, float]
    scales: dict[str, float]
    offsets: dict[str, float]
    scale_stderr: dict[str, float]
    offset_stderr: dict[str, float]
    r2: dict[str, float]
    prediction: np.ndarray
    toy: np.ndarray
    theta: np.ndarray
    cost: float
    initial_cost: float
    start_costs: np.ndarray
    start_initial_costs: np.ndarray
    iterations: np.ndarray
    start_converged: np.ndarray
    condition_number: float
    transience: dict[str, Any]
    toy_grid: dict[str, np.ndarray]
    seconds: float
    converged: bool = True
    failure: str | None = None
    basin_starts: int = 0
    best_converged: bool = True
    searches_in_best_basin: int = 1
    screen: dict[str, Any] = dataclasses.field(default_factory=dict)
    identifiability: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def dims(self) -> dict[str, float]:
        return {
            "a": self.params["dim_a"],
            "b": self.params["dim_bc"],
            "c": self.params["dim_c"],  # tied to dim_bc by FitSpec.physical unless fitted or fixed
            "d": self.params["dim_d"],
        }


def _delta_method(spec: FitSpec, theta: np.ndarray, cov: np.ndarray) -> dict[str, float]:
    """Standard errors of the free physical parameters, first order: with g = ∂value/∂θ (the
    transforms of :mod:`bridge.spec`, by forward-mode differentiation, which follows an overlap
    through its initial norm, ε = κ √q(0)), var = gᵀ Σ g."""
    with numerics("float64"):
        g = np.asarray(
            jax.jacfwd(lambda t: jnp.stack([spec.physical(t)[n] for n in spec.free]))(jnp.asarray(theta))
        )
    var = np.einsum("ip,pq,iq->i", g, cov, g)
    return {name: float(np.sqrt(v)) if v >= 0 else np.nan for name, v in zip(spec.free, var)}


def r_squared(y: np.ndarray, yhat: np.ndarray) -> float:
    """1 − Σ(y − ŷ)² / Σ(y − ȳ)²."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - yhat) ** 2)) / ss_tot if ss_tot > 0 else np.nan


def minimum_points(spec: FitSpec) -> int:
    """Fewest evaluations a fit accepts: the free toy parameters plus a scale and an offset per
    curve, plus two (so that the residual variance has degrees of freedom). With the default free
    parameters (8) and three curves: 16."""
    return max(spec.n_free + 2 * len(spec.curves) + 2, 4)


# forward-only solves (prediction grid) may take many steps: large budget; the late phase can be stiff
PROBE_SOLVE = SolveSettings(rtol=1e-7, atol=1e-9, max_steps=200_000)
STIFF_SOLVE = SolveSettings(rtol=1e-7, atol=1e-9, max_steps=200_000, solver="kvaerno5")
BASIN_RTOL = 0.01


@functools.partial(jax.jit, static_argnums=2)
def _probe(toy_params, u, settings: SolveSettings = PROBE_SOLVE):
    """One forward toy solve (compiled once per grid length and solver)."""
    return toy_curves(toy_params, u, settings)


def _prediction_grid(spec, phys, horizon, n):
    """The fitted toy up to ``horizon`` × the log (explicit solver, then implicit, then within the
    log only); returns (grid, horizon used)."""
    u_grid = np.linspace(0.0, 1.0, n)
    grid = {}
    for h, solve in ((horizon, PROBE_SOLVE), (horizon, STIFF_SOLVE), (1.0, STIFF_SOLVE)):
        long = dict(phys, span=phys["span"] * h)
        tp = spec.toy_params({k: jnp.asarray(v) for k, v in long.items() if k in DEFAULTS})
        grid = {k: np.asarray(v) for k, v in jax.device_get(_probe(tp, jnp.asarray(u_grid), solve)).items()}
        if all(np.all(np.isfinite(v)) for v in grid.values()):
            return u_grid, grid, h
    return u_grid, grid, h


def condition_number(J: np.ndarray) -> float:
    """The condition number of JᵀJ, (s_max/s_min)² from the singular values of J; +inf where J is
    numerically rank-deficient — s_min ≤ s_max·max(m, p)·ε, NumPy's ``matrix_rank`` rule: a
    direction the curves do not see to working precision.

    From the singular values of J rather than the eigenvalues of JᵀJ: squaring J loses half the
    digits, so an eigenvalue below ε·λ_max comes out with either sign, and the verdict on a fit
    whose JᵀJ has a condition number near 1/ε (a real run: 3·10¹⁸, J's own 1.7·10⁹) flipped between
    runs on the same optimum."""
    J = np.asarray(J, float)
    if J.size == 0 or not np.all(np.isfinite(J)):
        return np.inf
    s = np.linalg.svd(J, compute_uv=False)
    if s[-1] <= s[0] * max(J.shape) * np.finfo(float).eps:
        return np.inf
    return float((s[0] / s[-1]) ** 2)


def failure_reason(costs, initial_costs, converged, best: int, cond: float) -> str | None:
    """Why a fit failed (module docstring, step 4), or None."""
    if not np.isfinite(costs[best]):
        return "every start failed (the toy solve returned NaN)"
    if not np.any(converged & np.isfinite(costs)):
        return "no start converged within the iteration budget (try --lm-steps or --starts)"
    if not np.isfinite(cond):
        return (
            "the condition number of JᵀJ is not finite "
            "(some direction of the parameters leaves the curves unchanged)"
        )
    if not costs[best] < initial_costs[best]:
        return (
            f"the best cost {costs[best]:.4g} is no better than its initial guess {initial_costs[best]:.4g}"
        )
    return None


def fit_curves(curves: Curves, spec: FitSpec, settings: FitSettings = FitSettings()) -> FitResult:
    """Fit the toy to ``curves`` (all of ``spec.curve_names`` must be present); see the module
    docstring. A failed fit is returned with ``converged = False`` and its ``failure``."""
    t0 = time.perf_counter()
    for name in spec.curve_names:
        require(
            name in curves.values,
            "curves",
            f"curve {name!r} is not in the data (have {', '.join(curves.names)})",
        )
    curves = curves.select(spec.curve_names).validate(min_points=minimum_points(spec))
    s_max = float(curves.seen[-1])
    u = curves.seen / s_max
    Y = np.stack([curves.values[n] for n in spec.curve_names])
    sigma = Y.std(axis=1)
    # a CMA-ES fit searches, minimises and profiles with a capped step budget (EvolutionSettings)
    solve = settings.evolution.search_solve(settings.solve) if settings.search == "cmaes" else settings.solve
    res, screen = run_searches(spec, solve, settings, u, Y, sigma, BASIN_RTOL)
    with numerics("float64"):
        # float64 data: the toy solve's time follows u's precision (float32 would round the times)
        args = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))
        costs = np.where(np.isfinite(np.asarray(res.cost)), np.asarray(res.cost), np.inf)
        best = int(np.argmin(costs))
        theta = np.asarray(res.theta[best])
        M, scales, offsets, pred = (
            np.asarray(x)
            for x in jax.device_get(_mapped_jit(spec, jnp.asarray(theta), *args, settings.solve))
        )
        phys = {k: float(v) for k, v in spec.physical(jnp.asarray(theta)).items()}
        u_grid, grid, horizon = _prediction_grid(spec, phys, settings.horizon, settings.probe_points)
    K, n = Y.shape
    J = np.asarray(res.jacobian[best])[: K * n]
    p = J.shape[1]
    dof = K * n - p - 2 * K
    s2 = 2.0 * costs[best] / dof if dof > 0 and np.isfinite(costs[best]) else np.nan
    # the family's exact symmetries (bridge.symmetry) are null directions of J at every point: the
    # condition number and the covariance are those of the complement, where the data can decide
    G = generators(spec, theta)
    # a parameter pinned at a bound of its transform (an initial cosine at ±1, spec.at_bound) is a
    # boundary optimum: its coordinate is left out with the symmetry directions
    at_bound = spec.at_bound(theta)
    pinned = np.eye(p)[:, [spec.free.index(n) for n in at_bound]]
    fixed_dirs = np.concatenate([G, pinned], axis=1)
    basis = np.linalg.svd(fixed_dirs)[0][:, fixed_dirs.shape[1] :] if fixed_dirs.shape[1] else np.eye(p)
    Jc = J @ basis
    try:
        cov = s2 * basis @ np.linalg.pinv(Jc.T @ Jc) @ basis.T
        cond = condition_number(Jc)
    except np.linalg.LinAlgError:
        cov, cond = np.full((p, p), np.nan), np.inf
    norm = max(np.linalg.norm(J) * np.linalg.norm(G), 1e-300)
    symmetry_residual = float(np.linalg.norm(J @ G) / norm) if G.shape[1] else 0.0
    failure = failure_reason(costs, np.asarray(res.initial_cost), np.asarray(res.converged), best, cond)
    stderr = _delta_method(spec, theta, cov)
    moved_names = moved(spec)
    for name in (*moved_names, *at_bound):  # along a symmetry or at a bound: no local error means anything
        stderr[name] = np.nan
    phys["time_scale"] = s_max / phys["span"]
    if "span" in stderr:
        stderr["time_scale"] = phys["time_scale"] * stderr["span"] / phys["span"]
    names = spec.curve_names
    r2 = {nm: r_squared(Y[k], pred[k]) for k, nm in enumerate(names)}
    sc_err, of_err = {}, {}
    for k, nm in enumerate(names):
        var = float(np.sum((Y[k] - pred[k]) ** 2) / max(n - 2, 1))
        X = np.stack([M[k], np.ones(n)], axis=1)
        try:
            c = var * np.linalg.inv(X.T @ X)
            sc_err[nm], of_err[nm] = float(np.sqrt(max(c[0, 0], 0))), float(np.sqrt(max(c[1, 1], 0)))
        except np.linalg.LinAlgError:
            sc_err[nm] = of_err[nm] = np.nan
        if offsets[k] == 0.0:
            of_err[nm] = np.nan  # at its bound
    toy_grid = {"t": u_grid * phys["span"] * horizon, "seen": u_grid * s_max * horizon, **grid}
    icl = next((a for a, b in spec.curves if b == "mechanism_1"), None)
    trans = transience(toy_grid, curves.seen, None if icl is None else curves.values[icl])
    ident: dict[str, Any] = {
        "combinations": combinations(phys, s_max),
        "not_determined": ["dim_level"] if "dim_a" not in spec.free else [],
        "dim_a_reference": phys["dim_a"],
        "symmetries": int(G.shape[1]),
        "symmetry_residual": symmetry_residual,
        "moved_by_symmetries": moved_names,
        "at_bound": at_bound,
    }
    if settings.profile and failure is None:
        with numerics("float64"):
            ident["profile"] = profile(
                spec, solve, settings.optimiser, theta, costs[best], s2, *args,
                phys, s_max, settings.n_starts,
            )  # fmt: skip
        for key, v in ident["profile"]["parameters"].items():
            if not v["determined"]:
                ident["not_determined"].append(key)
    for key in (*ident["moved_by_symmetries"], *at_bound):  # exact symmetry, or pinned at a bound
        if key not in ident["not_determined"]:
            ident["not_determined"].append(key)
    in_basin = best_basin(costs, BASIN_RTOL)
    basin = int(np.sum(in_basin))
    best_converged = bool(np.any(in_basin & np.asarray(res.converged)))
    screen["search_best_costs"], searches_in_best = search_agreement(costs, in_basin, settings.searches)
    return FitResult(
        spec=spec,
        settings=settings,
        curves=curves,
        params=phys,
        stderr=stderr,
        scales=dict(zip(names, map(float, scales))),
        offsets=dict(zip(names, map(float, offsets))),
        scale_stderr=sc_err,
        offset_stderr=of_err,
        r2=r2,
        prediction=pred,
        toy=M,
        theta=theta,
        cost=float(costs[best]),
        initial_cost=float(res.initial_cost[best]),
        start_costs=costs,
        start_initial_costs=np.asarray(res.initial_cost),
        iterations=np.asarray(res.iterations),
        start_converged=np.asarray(res.converged),
        condition_number=cond,
        transience=trans,
        toy_grid=toy_grid,
        seconds=time.perf_counter() - t0,
        converged=failure is None,
        failure=failure,
        basin_starts=basin,
        best_converged=best_converged,
        searches_in_best_basin=searches_in_best,
        screen=screen,
        identifiability=ident,
    )


_mapped_jit = jax.jit(mapped_curves, static_argnums=(0, 5))


__all__ = [
    "SEARCHES",
    "FitResult",
    "condition_number",
    "FitSettings",
    "failure_reason",
    "fit_curves",
    "minimum_points",
    "r_squared",
]
