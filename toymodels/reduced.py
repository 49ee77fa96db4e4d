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

One concept, one module (hence its length): the state and parameter types, the two state
coordinates (PQ and PEW) with their lambdified fields and loss, the clamp handling, the initial
conditions and the solve are parts of the same reduced system and change together.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .clamps import Clamp, check_clamps
from .dynamics import Trajectory, flow_trajectory, gd_trajectory
from .errors import ConfigError, require
from .losses import LossParams, ToyModel, VectorStats, loss_terms
from .measures import measures_from_stats
from .methods import GradientDescent, GradientFlow, Method
from .precision import check_precision, numerics
from .symbolic import SymbolicDynamics, derive

__all__ = [
    "ReducedDynamics",
    "ReducedParams",
    "ReducedState",
    "initial_state",
    "initial_stats_from_vectors",
    "reduced_dynamics",
    "reduced_params",
    "simulate_reduced",
    "solve_reduced",
    "typical_initial_stats",
    "use_columns",
]


class ReducedState(eqx.Module):
    """Statistics of every vector in model order (arrays (..., V)).

    Simulation uses (P, E, W) with E = x*·(x − x*) = P − R and W = |x_⊥|² = Q − P²/R (``Q`` is then
    ``None`` and derived as W + P²/R); the analysis dynamics use (P, Q) (``E``, ``W`` are ``None``).
    Clamped vectors hold P = Q = R, E = W = 0 and never move.
    """

    P: Float[Array, "*batch V"]
    Q: Float[Array, "*batch V"] | None = None
    E: Float[Array, "*batch V"] | None = None
    W: Float[Array, "*batch V"] | None = None

    @classmethod
    def from_stats(cls, P, Q, R, E=None, W=None) -> ReducedState:
        """Simulation state from (P, Q, R); E, W default to P − R and Q − P²/R (exact ones, from
        the vectors, are better)."""
        E = P - R if E is None else E
        W = Q - P * P / R if W is None else W
        return cls(P=P, E=E, W=W)

    def fields(self, names: Sequence[str]) -> tuple:
        out = tuple(getattr(self, n) for n in names)
        if any(f is None for f in out):
            raise ConfigError("state", f"the dynamics need the statistics {names}")
        return out


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

    @property
    def coordinates(self) -> str:
        return self.symbolic.coordinates

    # ------------------------------------------------------------------ columns
    # The dynamics are computed on "columns" — one array per (coordinate, vector) — and can be
    # carried that way by the integrators (solve_reduced(columns=True), chosen by use_columns): in
    # large vmapped (P, E, W) batches, stacking the per-vector results back into (..., V) arrays at
    # every step makes XLA recompute the subexpressions the vectors' updates share (1.8× the cost).
    # ``Columns`` maps a coordinate name to a tuple of V arrays (model order).

    def to_columns(self, state: ReducedState) -> dict[str, tuple]:
        """The state as columns: coordinate name → one array (...,) per vector."""
        names = self.symbolic.state_names
        V = len(self.model.vectors)
        return {n: tuple(f[..., i] for i in range(V)) for n, f in zip(names, state.fields(names))}

    def from_columns(self, cols: Mapping[str, Sequence[Any]]) -> ReducedState:
        """Inverse of :meth:`to_columns`."""
        return ReducedState(**{n: jnp.stack(cols[n], axis=-1) for n in self.symbolic.state_names})

    def _args(self, cols: Mapping[str, Sequence[Any]], params: ReducedParams) -> list:
        names = self.symbolic.state_names
        state_args = [cols[n][i] for i in self._free_index() for n in names]
        V, K = len(self.model.vectors), self.model.n_mechanisms
        return (
            state_args
            + [params.R[..., i] for i in range(V)]
            + [params.dims[..., i] for i in range(V)]
            + [params.mu[..., k] for k in range(K)]
            + [params.alpha]
        )

    def _assemble(
        self, values: Sequence[Any], cols: Mapping[str, Sequence[Any]], fill: str
    ) -> dict[str, tuple]:
        """Columns from per-free-vector values; clamped vectors get zero (``fill="zero"``,
        velocities) or their current value (``fill="keep"``, GD updates)."""
        names = self.symbolic.state_names
        it = iter(values)
        per = {v: [next(it) for _ in names] for v in self.symbolic.free}
        out = {}
        for j, n in enumerate(names):
            column = []
            for i, v in enumerate(self.model.vectors):
                current = cols[n][i]
                if v in per:
                    column.append(jnp.broadcast_to(per[v][j], jnp.shape(current)))
                else:
                    column.append(jnp.zeros_like(current) if fill == "zero" else current)
            out[n] = tuple(column)
        return out

    def velocity_columns(self, cols: Mapping[str, Sequence[Any]], params: ReducedParams) -> dict[str, tuple]:
        """Gradient-flow velocity of the state coordinates, as columns."""
        return self._assemble(self._flow(*self._args(cols, params)), cols, "zero")

    def gd_step_columns(
        self, cols: Mapping[str, Sequence[Any]], params: ReducedParams, lr
    ) -> dict[str, tuple]:
        """One exact gradient-descent step of size ``lr``, as columns."""
        return self._assemble(self._gd(*self._args(cols, params), lr), cols, "keep")

    def grad_norm_sq_columns(self, cols: Mapping[str, Sequence[Any]], params: ReducedParams):
        """Squared norm of the applied (clamp-masked) gradient: per vector, of its algebraically
        equal forms the one with the smallest rounding scale (sum of term magnitudes)."""
        forms = self._grad_norm_sq(*self._args(cols, params))
        total = 0.0
        it = iter(forms)
        for v in self.symbolic.free:
            best, best_scale = None, None
            for _ in self.symbolic.grad_norm_sq_forms[v]:
                value, scale = next(it), next(it)
                if best is None:
                    best, best_scale = value, scale
                else:
                    take = scale < best_scale
                    best, best_scale = jnp.where(take, value, best), jnp.where(take, scale, best_scale)
            total = total + best
        return total

    def stats_columns(
        self, cols: Mapping[str, Sequence[Any]], params: ReducedParams
    ) -> dict[str, VectorStats]:
        out = {}
        for i, v in enumerate(self.model.vectors):
            P, R = cols["P"][i], params.R[..., i]
            if self.coordinates == "PQ":
                out[v] = VectorStats(P, cols["Q"][i], R)
            else:
                W = cols["W"][i]
                out[v] = VectorStats(P=P, Q=W + P * P / R, R=R, E=cols["E"][i], W=W)
        return out

    def loss_terms_columns(self, cols: Mapping[str, Sequence[Any]], params: ReducedParams):
        mu = [params.mu[..., k] for k in range(self.model.n_mechanisms)]
        return loss_terms(self.model, self.stats_columns(cols, params), mu, params.alpha, self.dims(params))

    def measures_columns(self, cols: Mapping[str, Sequence[Any]], params: ReducedParams) -> dict[str, Array]:
        lp = LossParams(mu=params.mu, alpha=params.alpha)
        return measures_from_stats(
            self.model,
            self.stats_columns(cols, params),
            lp,
            self.grad_norm_sq_columns(cols, params),
            self.dims(params),
        )

    # ------------------------------------------------------------------ the same on (..., V) states
    def velocity(self, state: ReducedState, params: ReducedParams) -> ReducedState:
        """Gradient-flow velocity of the state coordinates."""
        return self.from_columns(self.velocity_columns(self.to_columns(state), params))

    def gd_step(self, state: ReducedState, params: ReducedParams, lr) -> ReducedState:
        """One exact gradient-descent step of size ``lr``."""
        return self.from_columns(self.gd_step_columns(self.to_columns(state), params, lr))

    def grad_norm_sq(self, state: ReducedState, params: ReducedParams):
        return self.grad_norm_sq_columns(self.to_columns(state), params)

    def stats(self, state: ReducedState, params: ReducedParams) -> dict[str, VectorStats]:
        return self.stats_columns(self.to_columns(state), params)

    def dims(self, params: ReducedParams) -> dict[str, Any]:
        return {v: params.dims[..., i] for i, v in enumerate(self.model.vectors)}

    def loss(self, state: ReducedState, params: ReducedParams):
        return self.loss_terms_columns(self.to_columns(state), params).total

    def measures(self, state: ReducedState, params: ReducedParams) -> dict[str, Array]:
        return self.measures_columns(self.to_columns(state), params)


@functools.lru_cache(maxsize=64)
def _reduced_dynamics_cached(
    structure: ToyModel, clamped: frozenset[str], coordinates: str
) -> ReducedDynamics:
    sd = derive(structure, clamped, coordinates)
    args = list(sd.state_symbols) + list(sd.parameter_symbols)
    flow = _lambdify(args, sd.vector_field)
    gd = _lambdify(args + [sd.lr], [e for v in sd.free for e in sd.gd[v]])
    forms = [e for v in sd.free for pair in sd.grad_norm_sq_forms[v] for e in pair]
    gsq_fn = _lambdify(args, forms) if forms else (lambda *a: [])
    return ReducedDynamics(model=structure, symbolic=sd, _flow=flow, _gd=gd, _grad_norm_sq=gsq_fn)


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


def reduced_dynamics(
    model: ToyModel, clamps: Sequence[Clamp] = (), coordinates: str = "PEW"
) -> ReducedDynamics:
    """The (cached) lambdified reduced dynamics of ``model`` with full-vector ``clamps``.

    ``coordinates="PEW"`` (simulation, accurate near any minimum) or ``"PQ"`` (the plain 2-per-vector
    system, for analysis). The numeric dimensions of ``model`` are not baked in (they travel in
    :class:`ReducedParams`).
    """
    clamped = reduced_clamped_set(model, clamps)
    structure = model.replace(dims=(1,) * len(model.vectors))
    derive(structure, clamped, coordinates)  # validates coordinates
    return _reduced_dynamics_cached(structure, clamped, coordinates)


# ---------------------------------------------------------------------------------------------
# One run (pure, jittable, vmappable over state and params)
# ---------------------------------------------------------------------------------------------


def solve_reduced(
    dyn: ReducedDynamics,
    method: Method,
    state0: ReducedState,
    params: ReducedParams,
    columns: bool = False,
    measures: Callable[[Mapping[str, VectorStats]], dict[str, Array]] | None = None,
) -> Trajectory:
    """One reduced run with the shared integrators; pure in ``state0`` and ``params``.

    Jit with ``dyn`` and ``method`` static; vmap over ``state0``/``params`` to sweep dimensions, μ,
    α or initial conditions; differentiate through it (flow) to fit continuous dimensions.
    Call it inside :func:`toymodels.precision.numerics` for float64.

    Args:
        columns: how the integrator carries the state: as per-vector columns
            (:meth:`ReducedDynamics.to_columns`) or as (V,) arrays. The numbers are the same up to
            rounding; :func:`use_columns` picks the faster one.
        measures: what to record, from the per-vector statistics (default: every progress measure,
            :meth:`ReducedDynamics.measures`); must include ``"loss"``.

    Returns:
        The :class:`~toymodels.dynamics.Trajectory`; ``final`` is a :class:`ReducedState`.
    """
    if columns:
        to, back = dyn.to_columns, dyn.from_columns
        velocity, gd_step, stats = dyn.velocity_columns, dyn.gd_step_columns, dyn.stats_columns
        all_measures, loss = dyn.measures_columns, lambda y, p: dyn.loss_terms_columns(y, p).total
    else:
        to = back = lambda y: y  # noqa: E731
        velocity, gd_step, stats, all_measures, loss = (
            dyn.velocity,
            dyn.gd_step,
            dyn.stats,
            dyn.measures,
            dyn.loss,
        )
    if measures is None:
        record = lambda y: all_measures(y, params)  # noqa: E731
    else:
        record = lambda y: measures(stats(y, params))  # noqa: E731
    y0 = to(state0)
    if isinstance(method, GradientDescent):

        def step(y):
            return record(y), gd_step(y, params, method.lr)

        traj = gd_trajectory(step, y0, method)
    elif isinstance(method, GradientFlow):
        # 3 numbers per vector: cheaper to save the states than the measures
        traj = flow_trajectory(
            lambda y: velocity(y, params), record, lambda y: loss(y, params), y0, method, save_states=True
        )
    else:
        raise ConfigError("method", f"unknown method {method!r}")
    return dataclasses.replace(traj, final=back(traj.final))


def use_columns(dyn: ReducedDynamics, n_runs: int) -> bool:
    """Whether a vmapped batch of ``n_runs`` is faster with the state carried as columns (measured on
    CPU, GD to step 16000, paper dims): (P, E, W) from 16 runs on — stacking its three coordinates
    back into (..., V) arrays every step makes XLA recompute the subexpressions the vectors share,
    1.8× the cost at 64–10⁴ runs — while (P, Q), and single runs, are faster with (V,) arrays."""
    return dyn.coordinates == "PEW" and n_runs >= 16


@functools.partial(jax.jit, static_argnums=(0, 1))
def _solve_batch(
    dyn: ReducedDynamics, method: Method, state0: ReducedState, params: ReducedParams
) -> Trajectory:
    columns = use_columns(dyn, state0.P.shape[0])  # static: the batch size
    return jax.vmap(functools.partial(solve_reduced, dyn, method, columns=columns))(state0, params)


# ---------------------------------------------------------------------------------------------
# Initial conditions
# ---------------------------------------------------------------------------------------------


def initial_stats_from_vectors(
    targets: Mapping[str, Float[Array, "*runs n"]], init: Mapping[str, Float[Array, "*runs n"]]
) -> dict[str, VectorStats]:
    """Exact (P, Q, R) and E = x*·(x − x*), W = |x − (P/R)x*|² of explicit initial vectors and targets
    (computed directly from the vectors in float64 NumPy)."""
    require(
        set(targets) == set(init),
        "init",
        f"targets {sorted(targets)} and init {sorted(init)} name different vectors",
    )
    out = {}
    for v in targets:
        t = np.asarray(targets[v], dtype=np.float64)
        x = np.asarray(init[v], dtype=np.float64)
        require(t.shape == x.shape, "init", f"vector {v!r}: target shape {t.shape} != init shape {x.shape}")
        P, R = np.sum(x * t, axis=-1), np.sum(t * t, axis=-1)
        perp = x - (P / R)[..., None] * t
        out[v] = VectorStats(
            P=P, Q=np.sum(x * x, axis=-1), R=R, E=np.sum(t * (x - t), axis=-1), W=np.sum(perp * perp, axis=-1)
        )
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
    require(
        sigma.ndim == 1 and bool(np.all(np.isfinite(sigma) & (sigma >= 0))),
        "init_scale",
        f"must be finite numbers >= 0 (got {init_scale})",
    )
    if not isinstance(overlap, Mapping):
        overlap = {v: overlap for v in dims}
    require(set(overlap) <= set(dims), "overlap", f"unknown vectors {sorted(set(overlap) - set(dims))}")
    out = {}
    for v, n in dims.items():
        n = float(n)
        require(np.isfinite(n) and n >= 1, "dims", f"dimension of {v!r} must be >= 1 (got {n})")
        z = np.atleast_1d(np.asarray(overlap.get(v, 0.0), dtype=np.float64))
        require(
            z.ndim == 1 and bool(np.all(np.isfinite(z))),
            "overlap",
            f"overlap of {v!r} must be finite (got {z})",
        )
        require(
            bool(np.all(z * z <= n)),
            "overlap",
            f"|z| must be <= sqrt(n) = {np.sqrt(n):.4g} for {v!r} (Cauchy-Schwarz); got {z}",
        )
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
        P, Q, R = (np.atleast_1d(np.asarray(s, dtype=np.float64)) for s in stats[v][:3])
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


def reduced_params(model: ToyModel, lp: LossParams, R, dims=None, dtype=np.float64) -> ReducedParams:
    """Batch :class:`ReducedParams` (NumPy arrays: host-side inputs of a compiled solve) from loss
    parameters and R of shape (runs, V)."""
    R = np.asarray(R, dtype=dtype)
    n_runs = R.shape[0]
    dims = model.dims if dims is None else dims
    return ReducedParams(
        R=R,
        dims=np.broadcast_to(np.asarray(dims, dtype=dtype), R.shape),
        mu=np.broadcast_to(np.asarray(lp.mu, dtype=dtype), (n_runs, model.n_mechanisms)),
        alpha=np.broadcast_to(np.asarray(lp.alpha, dtype=dtype), (n_runs,)),
    )


def initial_state(dyn: ReducedDynamics, stats: Mapping[str, VectorStats], dtype) -> ReducedState:
    """Initial :class:`ReducedState` (runs, V) from per-vector statistics, in the dynamics' state
    coordinates (``dyn.coordinates``): the exact error terms E, W when the statistics carry them (from
    the vectors), else derived from P, Q, R; vectors clamped in full sit at their targets
    (P = Q = R, E = W = 0)."""
    vectors = dyn.model.vectors

    def column(get):
        return np.stack([np.asarray(get(stats[v]), dtype=np.float64) for v in vectors], -1)

    def given(name, default):
        return column(lambda st: default(st) if getattr(st, name, None) is None else getattr(st, name))

    cols = {
        "P": column(lambda st: st.P),
        "Q": column(lambda st: st.Q),
        "R": column(lambda st: st.R),
        "E": given("E", lambda st: st.P - st.R),
        "W": given("W", lambda st: np.maximum(st.Q - st.P * st.P / st.R, 0.0)),
    }
    for i, v in enumerate(vectors):
        if v in dyn.symbolic.clamped:
            cols["P"][:, i] = cols["Q"][:, i] = cols["R"][:, i]
            cols["E"][:, i] = cols["W"][:, i] = 0.0
    return ReducedState(**{k: np.asarray(cols[k]).astype(dtype) for k in dyn.symbolic.state_names})


def simulate_reduced(
    model: ToyModel,
    method: Method,
    initial_stats: Mapping[str, VectorStats],
    lp: LossParams,
    clamps: Sequence[Clamp] = (),
    precision: str = "float64",
    run_labels: Mapping[str, Any] | None = None,
    coordinates: str = "PEW",
):
    """Simulate a batch of reduced runs in one compiled, vmapped call.

    Args:
        model: the model (dims may be real numbers).
        method: :class:`~toymodels.dynamics.GradientDescent` or :class:`~toymodels.dynamics.GradientFlow`.
            Large flow batches are solved in two passes (:func:`toymodels.dynamics.solve_in_passes`).
        initial_stats: vector name → :class:`VectorStats` (scalars or arrays over runs), from
            :func:`initial_stats_from_vectors` or :func:`typical_initial_stats`.
        lp: loss parameters; μ of shape (K,) or (runs, K), α scalar or (runs,).
        clamps: vectors clamped in full (their P and Q are set to R). Partial clamps raise
            :class:`~toymodels.errors.ConfigError`.
        precision: ``"float64"`` (default) or ``"float32"`` (scoped).
        run_labels: per-run labels stored with the result (e.g. ``{"seed": [...]}``).
        coordinates: ``"PEW"`` (default: keeps relative precision near any minimum, also in float32)
            or ``"PQ"`` (several times faster; in float64 its losses carry an absolute error of
            ~1e-16 × their O(1) parts, so losses far below ~1e-12 are not resolved).

    Returns:
        A :class:`toymodels.results.ToyResult` with the same measures as the full-vector model; its
        vector groups ``init``/``final`` hold ``P_x``, ``Q_x``, ``R_x``, ``E_x``, ``W_x``.
    """
    from .dynamics import solve_in_passes
    from .results import ToyResult

    check_precision(precision)
    dyn = reduced_dynamics(model, clamps, coordinates)
    n_runs = _check_stats(model, initial_stats)
    n_lp = {
        np.shape(lp.mu)[0] if np.ndim(lp.mu) == 2 else 1,
        np.shape(lp.alpha)[0] if np.ndim(lp.alpha) == 1 else 1,
    }
    sizes = (n_lp | {n_runs}) - {1}
    require(
        len(sizes) <= 1,
        "mu",
        f"loss parameters and initial statistics disagree on the number of runs {sorted(n_lp | {n_runs})}",
    )
    n_runs = sizes.pop() if sizes else 1
    stats = {
        v: VectorStats(
            *(None if x is None else np.broadcast_to(np.asarray(x, dtype=np.float64), (n_runs,)) for x in st)
        )
        for v, st in ((v, initial_stats[v]) for v in model.vectors)
    }
    with numerics(precision) as dtype:
        state0 = initial_state(dyn, stats, dtype)
        R = np.stack([stats[v].R for v in model.vectors], -1)
        params = reduced_params(model, lp, R, dtype=dtype)
        traj = solve_in_passes(
            lambda m, args: _solve_batch(dyn, m, *args),
            method,
            (state0, params),
            lambda tr: np.isfinite(tr.failure),
        )

    def group(state):
        fields = dict(zip(dyn.symbolic.state_names, state.fields(dyn.symbolic.state_names)))
        out = {}
        for i, v in enumerate(model.vectors):
            R_v = R[:, i]
            P = np.asarray(fields["P"][:, i], dtype=np.float64)
            if coordinates == "PQ":
                Q = np.asarray(fields["Q"][:, i], dtype=np.float64)
                E, W = P - R_v, np.maximum(Q - P * P / R_v, 0.0)
            else:
                E, W = (np.asarray(fields[k][:, i], dtype=np.float64) for k in "EW")
                Q = W + P * P / R_v
            out.update({f"P_{v}": P, f"Q_{v}": Q, f"R_{v}": R_v, f"E_{v}": E, f"W_{v}": W})
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
        vectors={"init": group(state0), "final": group(traj.final)},
        reduced=True,
    )
