r"""Exact dimension-free reduced dynamics: every toy model as an ODE (or map) on (P, Q) per vector.

The derivation is symbolic (:mod:`toymodels.symbolic`, from the one loss definition in
:mod:`toymodels.losses`): with :math:`P_x = x\cdot x^*`, :math:`Q_x = |x|^2`, :math:`R_x = |x^*|^2`,

.. math::
    \dot P = -(L_P R + 2L_Q P), \quad \dot Q = -2(L_P P + 2L_Q Q)              \quad\text{(flow)}

    P' = P - \eta(L_P R + 2L_Q P), \quad Q' = Q - 2\eta(L_P P + 2L_Q Q) + \eta^2 |g|^2 \quad\text{(GD)}

with :math:`|g|^2 = L_P^2R + 4L_PL_QP + 4L_Q^2Q`. The expressions are lambdified to JAX and stepped
with the same integrators as the full-vector model (:func:`toymodels.dynamics.gd_trajectory`,
:func:`toymodels.dynamics.flow_trajectory`); the measures are the same function
(:func:`toymodels.measures.measures_from_stats`), so a reduced run records exactly the quantities and
HDF5 layout of a full run. The coopetition model becomes an 8-dimensional system whatever its
dimensions; dimensions, μ and α are ordinary (traceable, vmappable, differentiable) inputs
(:class:`ReducedParams`), and the dimensions may be real numbers.

Entry points: :func:`simulate_reduced` (batch → :class:`toymodels.results.ToyResult`),
:func:`solve_reduced` (one pure, jittable run for sweeps and fits), and the initial conditions
:func:`initial_stats_from_vectors` (exact) and :func:`typical_initial_stats`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .clamps import Clamp, check_clamps
from .dynamics import GradientDescent, GradientFlow, Method, Trajectory, flow_trajectory, gd_trajectory
from .errors import ConfigError, require
from .losses import LossParams, ToyModel, VectorStats, loss_terms
from .measures import measures_from_stats
from .precision import check_precision, numerics
from .symbolic import SymbolicDynamics, derive

__all__ = [
    "ReducedDynamics",
    "ReducedParams",
    "ReducedState",
    "initial_stats_from_vectors",
    "reduced_dynamics",
    "reduced_params",
    "simulate_reduced",
    "solve_reduced",
    "typical_initial_stats",
]


class ReducedState(eqx.Module):
    """(P, Q) of every vector in model order; clamped vectors hold P = Q = R and never move."""

    P: Float[Array, "*batch V"]
    Q: Float[Array, "*batch V"]


class ReducedParams(eqx.Module):
    """Everything the reduced vector field depends on besides the state (a pytree: trace/vmap/grad it).

    Attributes:
        R: |x*|² per vector, model order.
        dims: dimension n_x per vector (real values allowed), model order.
        mu: offsets μ_k, one per mechanism.
        alpha: competition strength α.
    """

    R: Float[Array, "*batch V"]
    dims: Float[Array, "*batch V"]
    mu: Float[Array, "*batch K"]
    alpha: Float[Array, "*batch"]


def _lambdify(symbols: Sequence[sp.Symbol], exprs: Sequence[sp.Expr]):
    return sp.lambdify(list(symbols), list(exprs), modules="jax", cse=True)


@dataclasses.dataclass(frozen=True, eq=False)
class ReducedDynamics:
    """The lambdified reduced dynamics of one model structure with a set of fully clamped vectors.

    Hashable (by identity; obtain it from the cached :func:`reduced_dynamics`) so it can be a static
    argument of :func:`jax.jit`.
    """

    model: ToyModel
    symbolic: SymbolicDynamics
    _flow: Any
    _gd: Any
    _grad_norm_sq: Any

    @property
    def vectors(self) -> tuple[str, ...]:
        return self.model.vectors

    def _free_index(self) -> list[int]:
        return [self.model.vectors.index(v) for v in self.symbolic.free]

    def _args(self, state: ReducedState, params: ReducedParams) -> list:
        state_args = [x for i in self._free_index() for x in (state.P[..., i], state.Q[..., i])]
        V, K = len(self.model.vectors), self.model.n_mechanisms
        return (
            state_args
            + [params.R[..., i] for i in range(V)]
            + [params.dims[..., i] for i in range(V)]
            + [params.mu[..., k] for k in range(K)]
            + [params.alpha]
        )

    def _assemble(self, values: Sequence[Any], state: ReducedState, fill: str) -> ReducedState:
        """Put per-free-vector (P, Q) values back into full-length arrays; clamped entries get
        zero (``fill="zero"``) or their current value (``fill="keep"``)."""
        P, Q = [], []
        it = iter(values)
        pairs = {v: (next(it), next(it)) for v in self.symbolic.free}
        for i, v in enumerate(self.model.vectors):
            if v in pairs:
                P.append(jnp.broadcast_to(pairs[v][0], state.P[..., i].shape))
                Q.append(jnp.broadcast_to(pairs[v][1], state.Q[..., i].shape))
            elif fill == "zero":
                P.append(jnp.zeros_like(state.P[..., i]))
                Q.append(jnp.zeros_like(state.Q[..., i]))
            else:
                P.append(state.P[..., i])
                Q.append(state.Q[..., i])
        return ReducedState(P=jnp.stack(P, axis=-1), Q=jnp.stack(Q, axis=-1))

    # ------------------------------------------------------------------ dynamics
    def velocity(self, state: ReducedState, params: ReducedParams) -> ReducedState:
        """Gradient-flow velocity (dP/dt, dQ/dt)."""
        return self._assemble(self._flow(*self._args(state, params)), state, "zero")

    def gd_step(self, state: ReducedState, params: ReducedParams, lr) -> ReducedState:
        """One exact gradient-descent step of size ``lr``."""
        return self._assemble(self._gd(*self._args(state, params), lr), state, "keep")

    def grad_norm_sq(self, state: ReducedState, params: ReducedParams):
        """Squared norm of the applied (clamp-masked) gradient."""
        return self._grad_norm_sq(*self._args(state, params))

    # ------------------------------------------------------------------ measures
    def stats(self, state: ReducedState, params: ReducedParams) -> dict[str, VectorStats]:
        return {
            v: VectorStats(state.P[..., i], state.Q[..., i], params.R[..., i]) for i, v in enumerate(self.model.vectors)
        }

    def dims(self, params: ReducedParams) -> dict[str, Any]:
        return {v: params.dims[..., i] for i, v in enumerate(self.model.vectors)}

    def loss(self, state: ReducedState, params: ReducedParams):
        mu = [params.mu[..., k] for k in range(self.model.n_mechanisms)]
        return loss_terms(self.model, self.stats(state, params), mu, params.alpha, self.dims(params)).total

    def measures(self, state: ReducedState, params: ReducedParams) -> dict[str, Array]:
        lp = LossParams(mu=params.mu, alpha=params.alpha)
        return measures_from_stats(
            self.model, self.stats(state, params), lp, self.grad_norm_sq(state, params), self.dims(params)
        )


@functools.lru_cache(maxsize=64)
def _reduced_dynamics_cached(structure: ToyModel, clamped: frozenset[str]) -> ReducedDynamics:
    sd = derive(structure, clamped)
    args = list(sd.state_symbols) + list(sd.parameter_symbols)
    flow = _lambdify(args, sd.vector_field)
    gd = _lambdify(args + [sd.lr], [e for v in sd.free for e in sd.gd[v]])
    gsq_fn = _lambdify(args, [sd.grad_norm_sq])
    return ReducedDynamics(model=structure, symbolic=sd, _flow=flow, _gd=gd, _grad_norm_sq=lambda *a: gsq_fn(*a)[0])


def reduced_clamped_set(model: ToyModel, clamps: Sequence[Clamp]) -> frozenset[str]:
    """Names of the clamped vectors; partial clamps have no exact reduction and are refused."""
    clamps = check_clamps(model, clamps)
    dims = model.dim
    for c in clamps:
        if c.first is not None and c.first != dims[c.name]:
            raise ConfigError(
                "clamp",
                f"{c}: partial clamps (first K entries) do not reduce exactly to (P, Q, R); "
                "use the full-vector model (without --reduced)",
            )
    return frozenset(c.name for c in clamps)


def reduced_dynamics(model: ToyModel, clamps: Sequence[Clamp] = ()) -> ReducedDynamics:
    """The (cached) lambdified reduced dynamics of ``model`` with full-vector ``clamps``.

    The numeric dimensions of ``model`` are not baked in (they travel in :class:`ReducedParams`).
    """
    clamped = reduced_clamped_set(model, clamps)
    structure = model.replace(dims=(1,) * len(model.vectors))
    return _reduced_dynamics_cached(structure, clamped)


# ---------------------------------------------------------------------------------------------
# One run (pure, jittable, vmappable over state and params)
# ---------------------------------------------------------------------------------------------


def solve_reduced(dyn: ReducedDynamics, method: Method, state0: ReducedState, params: ReducedParams) -> Trajectory:
    """One reduced run with the shared integrators; pure in ``state0`` and ``params``.

    Jit with ``dyn`` and ``method`` static; vmap over ``state0``/``params`` to sweep dimensions, μ,
    α or initial conditions; differentiate through it (flow) to fit continuous dimensions.
    Call it inside :func:`toymodels.precision.numerics` for float64.
    """
    if isinstance(method, GradientDescent):

        def step(state):
            return dyn.measures(state, params), dyn.gd_step(state, params, method.lr)

        return gd_trajectory(step, state0, method)
    if isinstance(method, GradientFlow):
        return flow_trajectory(
            lambda y: dyn.velocity(y, params),
            lambda y: dyn.measures(y, params),
            lambda y: dyn.loss(y, params),
            state0,
            method,
        )
    raise ConfigError("method", f"unknown method {method!r}")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _solve_batch(dyn: ReducedDynamics, method: Method, state0: ReducedState, params: ReducedParams) -> Trajectory:
    return jax.vmap(functools.partial(solve_reduced, dyn, method))(state0, params)


# ---------------------------------------------------------------------------------------------
# Initial conditions
# ---------------------------------------------------------------------------------------------


def initial_stats_from_vectors(
    targets: Mapping[str, Float[Array, "*runs n"]], init: Mapping[str, Float[Array, "*runs n"]]
) -> dict[str, VectorStats]:
    """Exact (P, Q, R) of explicit initial vectors and targets (computed in float64 NumPy)."""
    require(set(targets) == set(init), "init", f"targets {sorted(targets)} and init {sorted(init)} name different vectors")
    out = {}
    for v in targets:
        t = np.asarray(targets[v], dtype=np.float64)
        x = np.asarray(init[v], dtype=np.float64)
        require(t.shape == x.shape, "init", f"vector {v!r}: target shape {t.shape} != init shape {x.shape}")
        out[v] = VectorStats(P=np.sum(x * t, axis=-1), Q=np.sum(x * x, axis=-1), R=np.sum(t * t, axis=-1))
    return out


def typical_initial_stats(
    dims: Mapping[str, float] | ToyModel,
    init_scale: float | Sequence[float] | np.ndarray = 1.0,
    overlap: float | Mapping[str, Any] | np.ndarray = 0.0,
) -> dict[str, VectorStats]:
    r"""Typical statistics for dimension n and init scale σ: :math:`R = n`, :math:`Q_0 = σ^2 n`,
    :math:`P_0 = zσ\sqrt n`.

    For x ~ σ·N(0, I_n) and x* ~ N(0, I_n), :math:`|x^*|^2 ≈ n`, :math:`|x|^2 ≈ σ^2 n` and
    :math:`x\cdot x^* ≈ zσ\sqrt n` with z ~ N(0, 1), so ``overlap`` z plays the role of the seed.
    Dimensions may be real numbers.

    Args:
        dims: dimension per vector (or a model, whose dims are used).
        init_scale: σ ≥ 0, a scalar or one value per run.
        overlap: z, a scalar (all vectors), an array (runs,) (all vectors), or a mapping vector name →
            scalar or (runs,) array. Needs z² ≤ n (Cauchy–Schwarz: P² ≤ QR).

    Returns:
        vector name → :class:`VectorStats` of arrays with a leading run axis.
    """
    if isinstance(dims, ToyModel):
        dims = dims.dim
    sigma = np.atleast_1d(np.asarray(init_scale, dtype=np.float64))
    require(sigma.ndim == 1 and bool(np.all(np.isfinite(sigma) & (sigma >= 0))), "init_scale", f"must be finite numbers >= 0 (got {init_scale})")
    if not isinstance(overlap, Mapping):
        overlap = {v: overlap for v in dims}
    require(set(overlap) <= set(dims), "overlap", f"unknown vectors {sorted(set(overlap) - set(dims))}")
    out = {}
    for v, n in dims.items():
        n = float(n)
        require(np.isfinite(n) and n >= 1, "dims", f"dimension of {v!r} must be >= 1 (got {n})")
        z = np.atleast_1d(np.asarray(overlap.get(v, 0.0), dtype=np.float64))
        require(z.ndim == 1 and bool(np.all(np.isfinite(z))), "overlap", f"overlap of {v!r} must be finite (got {z})")
        require(bool(np.all(z * z <= n)), "overlap", f"|z| must be <= sqrt(n) = {np.sqrt(n):.4g} for {v!r} (Cauchy-Schwarz); got {z}")
        s, zz = np.broadcast_arrays(sigma, z)
        out[v] = VectorStats(P=zz * s * np.sqrt(n), Q=s * s * n + 0 * zz, R=np.full(s.shape, n))
    return out


def _check_stats(model: ToyModel, stats: Mapping[str, VectorStats]) -> int:
    missing = [v for v in model.vectors if v not in stats]
    require(not missing, "initial_stats", f"missing vectors {missing}")
    extra = [v for v in stats if v not in model.vectors]
    require(not extra, "initial_stats", f"unknown vectors {extra} (vectors: {', '.join(model.vectors)})")
    shapes = set()
    for v in model.vectors:
        P, Q, R = (np.atleast_1d(np.asarray(s, dtype=np.float64)) for s in stats[v])
        for name, arr in (("P", P), ("Q", Q), ("R", R)):
            require(arr.ndim == 1, "initial_stats", f"{name}_{v} must be a scalar or a 1-d array over runs")
            require(bool(np.all(np.isfinite(arr))), "initial_stats", f"{name}_{v} has non-finite values")
            shapes.add(arr.shape[0])
        require(bool(np.all(R > 0)), "initial_stats", f"R_{v} = |{v}*|² must be > 0")
        require(bool(np.all(Q >= 0)), "initial_stats", f"Q_{v} = |{v}|² must be >= 0")
        require(
            bool(np.all(P * P <= Q * R * (1 + 1e-9) + 1e-300)),
            "initial_stats",
            f"P_{v}² <= Q_{v} R_{v} is violated (Cauchy-Schwarz); not the statistics of real vectors",
        )
    sizes = shapes - {1}
    require(len(sizes) <= 1, "initial_stats", f"inconsistent numbers of runs {sorted(shapes)}")
    return sizes.pop() if sizes else 1


def reduced_params(model: ToyModel, lp: LossParams, R, dims=None, dtype=jnp.float64) -> ReducedParams:
    """Batch :class:`ReducedParams` from loss parameters and R of shape (runs, V)."""
    R = jnp.asarray(R, dtype=dtype)
    n_runs = R.shape[0]
    dims = model.dims if dims is None else dims
    return ReducedParams(
        R=R,
        dims=jnp.broadcast_to(jnp.asarray(dims, dtype=dtype), R.shape),
        mu=jnp.broadcast_to(jnp.asarray(lp.mu, dtype=dtype), (n_runs, model.n_mechanisms)),
        alpha=jnp.broadcast_to(jnp.asarray(lp.alpha, dtype=dtype), (n_runs,)),
    )


def simulate_reduced(
    model: ToyModel,
    method: Method,
    initial_stats: Mapping[str, VectorStats],
    lp: LossParams,
    clamps: Sequence[Clamp] = (),
    precision: str = "float64",
    run_labels: Mapping[str, Any] | None = None,
):
    """Simulate a batch of reduced runs in one compiled, vmapped call.

    Args:
        model: the model (dims may be real numbers).
        method: :class:`~toymodels.dynamics.GradientDescent` or :class:`~toymodels.dynamics.GradientFlow`.
        initial_stats: vector name → :class:`VectorStats` (scalars or arrays over runs), from
            :func:`initial_stats_from_vectors` or :func:`typical_initial_stats`.
        lp: loss parameters; μ of shape (K,) or (runs, K), α scalar or (runs,).
        clamps: vectors clamped in full (their P and Q are set to R). Partial clamps raise
            :class:`~toymodels.errors.ConfigError`.
        precision: ``"float64"`` (default) or ``"float32"`` (scoped).
        run_labels: per-run labels stored with the result (e.g. ``{"seed": [...]}``).

    Returns:
        A :class:`toymodels.results.ToyResult` with the same measures as the full-vector model; its
        vector groups ``init``/``final`` hold ``P_x``, ``Q_x``, ``R_x``.
    """
    from .results import ToyResult

    check_precision(precision)
    dyn = reduced_dynamics(model, clamps)
    clamped = dyn.symbolic.clamped
    n_runs = _check_stats(model, initial_stats)
    n_lp = {np.shape(lp.mu)[0] if np.ndim(lp.mu) == 2 else 1, np.shape(lp.alpha)[0] if np.ndim(lp.alpha) == 1 else 1}
    sizes = (n_lp | {n_runs}) - {1}
    require(len(sizes) <= 1, "mu", f"loss parameters and initial statistics disagree on the number of runs {sorted(n_lp | {n_runs})}")
    n_runs = sizes.pop() if sizes else 1
    V = len(model.vectors)
    with numerics(precision) as dtype:
        cols = {
            k: np.stack([np.broadcast_to(np.asarray(initial_stats[v][j], dtype=np.float64), (n_runs,)) for v in model.vectors], -1)
            for j, k in enumerate("PQR")
        }
        for i, v in enumerate(model.vectors):
            if v in clamped:  # a vector clamped in full sits at its target
                cols["P"][:, i] = cols["R"][:, i]
                cols["Q"][:, i] = cols["R"][:, i]
        state0 = ReducedState(P=jnp.asarray(cols["P"], dtype=dtype), Q=jnp.asarray(cols["Q"], dtype=dtype))
        params = reduced_params(model, lp, cols["R"], dtype=dtype)
        traj = jax.device_get(_solve_batch(dyn, method, state0, params))
    assert traj.final.P.shape == (n_runs, V)

    def group(P, Q):
        out = {}
        for i, v in enumerate(model.vectors):
            out[f"P_{v}"], out[f"Q_{v}"], out[f"R_{v}"] = P[:, i], Q[:, i], cols["R"][:, i]
        return out

    lp_b = LossParams(mu=np.asarray(params.mu), alpha=np.asarray(params.alpha))
    return ToyResult.from_trajectory(
        traj,
        model=model,
        method=method,
        lp=lp_b,
        clamps=check_clamps(model, clamps),
        precision=precision,
        run_labels=run_labels,
        vectors={"init": group(cols["P"], cols["Q"]), "final": group(np.asarray(traj.final.P), np.asarray(traj.final.Q))},
        reduced=True,
    )
