r"""Fit the coopetition toy to transformer curves: initial guesses, multi-start fit, uncertainty, R²,
transience prediction.

Pipeline of :func:`fit_curves`:

1. Normalise time, :math:`u = s/s_\max`, and per-curve spreads σ_k (see :mod:`bridge.objective`).
2. Initial guesses (:func:`initial_guesses`): start 0 is the thesis setting (:data:`bridge.spec.DEFAULTS`),
   the others are drawn log-uniformly from :data:`bridge.spec.START_BOX`. For each, the span T is
   set so that the toy's reference curve (``total`` if fitted, else the first) completes 90% of its
   fall (from its first value to its minimum) at the same normalised time as the data's — found
   from one toy solve per start on a long probe horizon; starts after the first multiply that span by
   a random factor in [e^-1/2, e^1/2].
3. Minimise every start (:func:`bridge.optimise.minimise_starts`, vmapped) and keep the best.
4. Uncertainty (Gauss–Newton): :math:`\mathrm{Cov}(θ) = \hat s^2 (J^\top J)^{-1}` with the projected
   Jacobian at the optimum (for variable projection this is the covariance of the nonlinear
   parameters with the linear ones profiled out) and :math:`\hat s^2 = 2\,\mathrm{cost}/(m - p)`,
   :math:`p` counting scales and offsets; mapped to physical parameters by the delta method. The
   per-curve scale/offset errors are those of the linear regression *conditional* on θ.
5. R² per curve (transformer units) and the toy's transience prediction.
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

from .logs import Curves
from .objective import mapped_curves
from .optimise import OptimiserSettings, minimise_starts
from .spec import DEFAULTS, START_BOX, FitSpec
from .toy import SolveSettings, toy_curves

SEEN_UNIT = "sequences seen"


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Settings of a fit (everything but the data and the :class:`FitSpec`).

    Attributes:
        n_starts: number of initial guesses (vmapped).
        seed: seed of the random starts.
        optimiser: iteration budget per start.
        solve: Diffrax tolerances of the toy solve.
        probe_span: toy-time horizon of the span heuristic (the paper's dynamics end by t ≈ 1e4).
        probe_points: points of the probe/prediction grids.
        horizon: the transience prediction runs to ``horizon`` × the log's last evaluation.
    """

    n_starts: int = 8
    seed: int = 0
    optimiser: OptimiserSettings = OptimiserSettings()
    solve: SolveSettings = SolveSettings()
    probe_span: float = 1e5
    probe_points: int = 400
    horizon: float = 3.0

    def __post_init__(self) -> None:
        require(
            int(self.n_starts) == self.n_starts and self.n_starts >= 1,
            "starts",
            f"must be an integer >= 1 (got {self.n_starts})",
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
        stderr: free toy parameter (and ``time_scale``) → standard error (NaN if not estimable).
        scales, offsets, scale_stderr, offset_stderr, r2: per transformer curve.
        prediction: (K, n) fitted curves in transformer units; toy: (K, n) toy curves in toy units.
        cost, initial_cost: best cost and the cost of its own initial guess; start_costs,
            start_initial_costs: per start.
        transience: predicted vs observed ICL peak and fade (see :func:`transience`).
        toy_grid: the fitted toy on the prediction grid: ``t`` (toy time), ``seen`` and curves.
        seconds: wall-clock time of the fit (including compilation in a fresh process).
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
    converged: np.ndarray
    condition_number: float
    transience: dict[str, Any]
    toy_grid: dict[str, np.ndarray]
    seconds: float

    @property
    def dims(self) -> dict[str, float]:
        return {
            "a": self.params["dim_a"],
            "b": self.params["dim_bc"],
            "c": self.params["dim_bc"],
            "d": self.params["dim_d"],
        }


LANDMARK = 0.9


def landmark_time(x: np.ndarray, y: np.ndarray, fraction: float = LANDMARK) -> float:
    """First x where y has completed ``fraction`` of its fall from y[0] to min(y) (linear
    interpolation); NaN if it never falls."""
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)) or y[0] - np.min(y) <= 0:
        return np.nan
    level = y[0] - fraction * (y[0] - np.min(y))
    i = int(np.argmax(y <= level))
    if i == 0:
        return float(x[0])
    f = (y[i - 1] - level) / (y[i - 1] - y[i])
    return float(x[i - 1] + f * (x[i] - x[i - 1]))


def _reference(spec: FitSpec) -> int:
    names = [b for _, b in spec.curves]
    return names.index("total") if "total" in names else 0


def random_starts(spec: FitSpec, n_starts: int, seed: int) -> list[dict[str, float]]:
    """Physical initial values: start 0 = :data:`DEFAULTS` (thesis), others log-uniform in
    :data:`START_BOX`."""
    rng = np.random.default_rng(seed)
    starts = []
    for i in range(n_starts):
        values = {k: spec.value(k) for k in DEFAULTS}
        for name in spec.free:
            if name == "span":
                continue
            if i == 0:
                values[name] = DEFAULTS[name] if DEFAULTS[name] > 0 else START_BOX[name][0]
            else:
                lo, hi = START_BOX[name]
                values[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        if "overlap" in spec.free:
            n_min = min(values["dim_a"], values["dim_bc"], values["dim_d"])
            values["overlap"] = min(values["overlap"], 0.5 * np.sqrt(n_min))
        starts.append(values)
    return starts


# forward-only solves (probe and prediction grids) may take many steps: large budget
PROBE_SOLVE = SolveSettings(rtol=1e-7, atol=1e-9, max_steps=200_000)
STIFF_SOLVE = SolveSettings(rtol=1e-7, atol=1e-9, max_steps=200_000, solver="kvaerno5")


@functools.partial(jax.jit, static_argnums=2)
def _probe(toy_params, u, settings: SolveSettings = PROBE_SOLVE):
    """One forward toy solve (compiled once per grid length and solver; the probe and prediction
    grids share it)."""
    return toy_curves(toy_params, u, settings)


def _probe_grid(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.geomspace(1e-4, 1.0, n - 1)])


def initial_guesses(spec: FitSpec, curves: Curves, settings: FitSettings) -> np.ndarray:
    """Unconstrained initial θ, shape (n_starts, n_free), with the span heuristic (module docstring)."""
    starts = random_starts(spec, settings.n_starts, settings.seed)
    ref = _reference(spec)
    u_data = curves.seen / curves.seen[-1]
    u_half = landmark_time(u_data, curves.values[spec.curves[ref][0]])
    u_probe = _probe_grid(settings.probe_points)
    with numerics("float64"):
        ref_toy = []
        for s in starts:
            probe = {k: jnp.asarray(s[k]) for k in DEFAULTS}
            probe["span"] = jnp.asarray(settings.probe_span)
            ref_toy.append(
                np.asarray(_probe(spec.toy_params(probe), jnp.asarray(u_probe))[spec.curves[ref][1]])
            )
    rng = np.random.default_rng(settings.seed + 1)
    for i, s in enumerate(starts):
        t_half = landmark_time(u_probe * settings.probe_span, ref_toy[i])
        if np.isfinite(t_half) and np.isfinite(u_half) and u_half > 0 and t_half > 0:
            s["span"] = float(t_half / u_half)
        else:
            s["span"] = settings.probe_span
        if i > 0:
            s["span"] *= float(np.exp(rng.uniform(-0.5, 0.5)))
    return np.stack([spec.unconstrained(s) for s in starts])


def _delta_method(
    spec: FitSpec, theta: np.ndarray, cov: np.ndarray, phys: dict[str, float]
) -> dict[str, float]:
    """Standard errors of the free physical parameters (first-order, diagonal of the transform)."""
    out = {}
    for i, name in enumerate(spec.free):
        sd = float(np.sqrt(cov[i, i])) if cov[i, i] >= 0 else np.nan
        if name.startswith("dim_"):
            out[name] = (phys[name] - 1.0) * sd
        elif name == "overlap":
            sig = 1.0 / (1.0 + np.exp(-theta[i]))
            out[name] = phys[name] * (1.0 - sig) * sd
        else:
            out[name] = phys[name] * sd
    return out


def r_squared(y: np.ndarray, yhat: np.ndarray) -> float:
    """1 − Σ(y − ŷ)² / Σ(y − ȳ)²."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - yhat) ** 2)) / ss_tot if ss_tot > 0 else np.nan


def peak_and_fade(x: np.ndarray, loss: np.ndarray, fade_fraction: float = 0.5) -> dict[str, Any]:
    """Where a loss curve is lowest (the ICL peak) and whether, after it, the loss rises back by at
    least ``fade_fraction`` of its drop (the ICL fades); ``fade_at`` is the first such x (NaN if none).

    ``learned``: the drop from the first value to the minimum is at least 10% of the first value's
    distance above the curve's floor (its minimum); a curve that only rises has no peak.
    """
    loss = np.asarray(loss, dtype=np.float64)
    if not np.any(np.isfinite(loss)):
        return {
            "peak_at": np.nan,
            "peak_value": np.nan,
            "drop": np.nan,
            "learned": False,
            "fades": False,
            "fade_at": np.nan,
            "interior_peak": False,
            "solve_failed": True,
        }
    i = int(np.nanargmin(loss))
    drop = float(loss[0] - loss[i])
    after = loss[i:]
    rises = np.nonzero(after >= loss[i] + fade_fraction * drop)[0] if drop > 0 else np.array([], int)
    learned = bool(drop > 0 and i > 0)
    fades = bool(learned and rises.size > 0)
    return {
        "peak_at": float(x[i]) if learned else np.nan,
        "peak_value": float(loss[i]),
        "drop": drop,
        "learned": learned,
        "fades": fades,
        "fade_at": float(x[i + rises[0]]) if fades else np.nan,
        "interior_peak": bool(learned and i < loss.size - 1),
    }


def transience(
    result_params: dict[str, float], toy_grid: dict[str, np.ndarray], curves: Curves, spec: FitSpec
) -> dict[str, Any]:
    """Toy prediction of the ICL peak/fade (in sequences seen, up to ``horizon`` × the log) vs the
    transformer's own ICL curve (if fitted or present)."""
    pred = peak_and_fade(toy_grid["seen"], toy_grid["mechanism_1"])
    out: dict[str, Any] = {"predicted": pred, "horizon_seen": float(toy_grid["seen"][-1])}
    in_log = pred["learned"] and pred["peak_at"] <= curves.seen[-1]
    out["predicted"]["peak_within_log"] = bool(in_log)
    icl = next((a for a, b in spec.curves if b == "mechanism_1"), None)
    if icl is not None:
        obs = peak_and_fade(curves.seen, curves.values[icl])
        out["observed"] = obs
        if pred["learned"] and obs["learned"]:
            out["peak_ratio_predicted_over_observed"] = pred["peak_at"] / obs["peak_at"]
    out["predicts_transience"] = bool(pred["fades"])
    return out


def minimum_points(spec: FitSpec) -> int:
    """Fewest evaluations a fit accepts: the free toy parameters plus a scale and an offset per
    curve, plus two (so that the residual variance has degrees of freedom)."""
    return max(spec.n_free + 2 * len(spec.curves) + 2, 4)


def fit_curves(curves: Curves, spec: FitSpec, settings: FitSettings = FitSettings()) -> FitResult:
    """Fit the toy to ``curves`` (all of ``spec.curve_names`` must be present)."""
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
    theta0 = initial_guesses(spec, curves, settings)
    with numerics("float64"):
        res = jax.device_get(
            minimise_starts(
                spec,
                settings.solve,
                settings.optimiser,
                jnp.asarray(theta0),
                jnp.asarray(u),
                jnp.asarray(Y),
                jnp.asarray(sigma),
            )
        )
        costs = np.asarray(res.cost)
        best = int(np.argmin(np.where(np.isfinite(costs), costs, np.inf)))
        require(
            np.isfinite(costs[best]),
            "log",
            "every start failed (the toy solve returned NaN); try other --starts/--seed",
        )
        theta = np.asarray(res.theta[best])
        M, scales, offsets, pred = jax.device_get(
            _mapped_jit(
                spec, jnp.asarray(theta), jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma), settings.solve
            )
        )
        phys = {k: float(v) for k, v in spec.physical(jnp.asarray(theta)).items()}
        # prediction grid: the toy in its own time up to horizon × the log
        u_grid = np.linspace(0.0, 1.0, settings.probe_points)
        # the late phase can be stiff: explicit solver first, then implicit, then within the log only
        for horizon, solve in (
            (settings.horizon, PROBE_SOLVE),
            (settings.horizon, STIFF_SOLVE),
            (1.0, STIFF_SOLVE),
        ):
            long = dict(phys, span=phys["span"] * horizon)
            tp = spec.toy_params({k: jnp.asarray(v) for k, v in long.items()})
            grid = jax.device_get(_probe(tp, jnp.asarray(u_grid), solve))
            if all(np.all(np.isfinite(v)) for v in grid.values()):
                break
    M, scales, offsets, pred = (np.asarray(x) for x in (M, scales, offsets, pred))
    K, n = Y.shape
    J = np.asarray(res.jacobian[best])
    m, p = J.shape
    dof = m - p - 2 * K
    s2 = 2.0 * costs[best] / dof if dof > 0 else np.nan
    JtJ = J.T @ J
    try:
        cov = s2 * np.linalg.pinv(JtJ)
        ev = np.linalg.eigvalsh(JtJ)
        cond = float(ev[-1] / ev[0]) if ev[0] > 0 else np.inf
    except np.linalg.LinAlgError:
        cov, cond = np.full((p, p), np.nan), np.inf
    stderr = _delta_method(spec, theta, cov, phys)
    phys["time_scale"] = s_max / phys["span"]
    if "span" in stderr:
        stderr["time_scale"] = phys["time_scale"] * stderr["span"] / phys["span"]
    names = spec.curve_names
    r2 = {nm: r_squared(Y[k], pred[k]) for k, nm in enumerate(names)}
    sc_err, of_err = {}, {}
    for k, nm in enumerate(names):
        resid = Y[k] - pred[k]
        var = float(np.sum(resid**2) / max(n - 2, 1))
        X = np.stack([M[k], np.ones(n)], axis=1)
        try:
            c = var * np.linalg.inv(X.T @ X)
            sc_err[nm], of_err[nm] = float(np.sqrt(max(c[0, 0], 0))), float(np.sqrt(max(c[1, 1], 0)))
        except np.linalg.LinAlgError:
            sc_err[nm] = of_err[nm] = np.nan
        if offsets[k] == 0.0:
            of_err[nm] = np.nan  # at its bound
    toy_grid = {
        "t": u_grid * long["span"],
        "seen": u_grid * s_max * horizon,
        **{k: np.asarray(v) for k, v in grid.items()},
    }
    trans = transience(phys, toy_grid, curves, spec)
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
        converged=np.asarray(res.converged),
        condition_number=cond,
        transience=trans,
        toy_grid=toy_grid,
        seconds=time.perf_counter() - t0,
    )


_mapped_jit = jax.jit(mapped_curves, static_argnums=(0, 5))


__all__ = [
    "FitResult",
    "FitSettings",
    "fit_curves",
    "minimum_points",
    "initial_guesses",
    "peak_and_fade",
    "r_squared",
    "random_starts",
    "transience",
]
