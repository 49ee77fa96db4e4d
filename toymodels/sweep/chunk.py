r"""Computing one chunk of a sweep: many runs in one compiled, vmapped (and device-sharded) call.

A chunk is a list of point indices that share the static structure of a compiled call:
(method, model kind, clamp set) and, for the full-vector model, the dimensions (they fix array
shapes). The reduced model takes dimensions, μ, α and initial statistics as traced per-run inputs,
so one compiled call covers any mix of them.

Inputs are drawn exactly as :func:`toymodels.experiment.run` draws them (paper-compatible seeds,
initial vectors σ·N(0, 1), cast to the working precision), and the dynamics are the library's own
(:func:`toymodels.dynamics.gd_trajectory` / :func:`~toymodels.dynamics.flow_trajectory` over the
full-vector loss of :mod:`toymodels.dynamics` or the reduced field of :mod:`toymodels.reduced`).
Only the curves a sweep keeps are recorded — total loss, each mechanism's loss and the competition
term, from :func:`toymodels.losses.loss_terms` — which makes a batch several times cheaper than
recording every progress measure. A sweep point therefore has exactly the curves of the same
configuration run alone.

The run axis is sharded over ``devices`` (all local JAX devices by default) with a
:class:`jax.sharding.NamedSharding`; the batch is padded to a multiple of the device count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..clamps import Clamp, apply_clamps, free_masks
from ..dynamics import Trajectory, flow_trajectory, gd_trajectory, solve_in_passes
from ..init import draw_vectors
from ..losses import LossParams, ToyModel, loss_terms, stats_of
from ..methods import GradientDescent, Method
from ..precision import numerics
from .spec import SweepSpec
from .verdicts import VerdictThresholds, saddle_levels, summarise


def curve_names(model: ToyModel) -> tuple[str, ...]:
    """The curves a sweep records: ``loss``, ``mechanism_k_loss``, ``competition`` (if any)."""
    names = ["loss"] + [f"mechanism_{k + 1}_loss" for k in range(model.n_mechanisms)]
    if model.competition:
        names.append("competition")
    return tuple(names)


def sweep_measures(model: ToyModel, stats, mu, alpha, dims=None) -> dict[str, jax.Array]:
    """The recorded curves from per-vector statistics (the same :func:`loss_terms` as every run)."""
    terms = loss_terms(model, stats, [mu[..., k] for k in range(model.n_mechanisms)], alpha, dims)
    out = {"loss": jnp.asarray(terms.total)}
    for k, lk in enumerate(terms.mechanisms):
        out[f"mechanism_{k + 1}_loss"] = jnp.asarray(lk)
    if model.competition:
        out["competition"] = jnp.asarray(terms.competition)
    return out


# ---------------------------------------------------------------------------------------------
# One run of each kind (pure; vmapped below)
# ---------------------------------------------------------------------------------------------


def _full_run(model: ToyModel, method: Method, masks, targets, init, lp: LossParams) -> Trajectory:
    # the full-vector dynamics of toymodels.dynamics.simulate: the clamp-masked gradient of the total loss
    from ..dynamics import _full_model_functions

    loss_fn, masked_grad, _ = _full_model_functions(model, targets, masks, lp)

    def measures(params):
        return sweep_measures(model, stats_of(params, targets), lp.mu, lp.alpha)

    if isinstance(method, GradientDescent):

        def step(params):
            grads = masked_grad(params)
            return measures(params), {k: params[k] - method.lr * grads[k] for k in params}

        return gd_trajectory(step, init, method)
    velocity = jax.jit(lambda p: jax.tree.map(jnp.negative, masked_grad(p)))
    return flow_trajectory(velocity, jax.jit(measures), jax.jit(loss_fn), init, method)


def _reduced_run(dyn, method: Method, state0, params, columns: bool) -> Trajectory:
    from ..reduced import solve_reduced

    def measures(stats):
        return sweep_measures(dyn.model, stats, params.mu, params.alpha, dyn.dims(params))

    return solve_reduced(dyn, method, state0, params, columns=columns, measures=measures)


def _strip(traj: Trajectory) -> tuple[dict, jax.Array, jax.Array]:
    return traj.measures, traj.stop, traj.failure


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def full_batch(model: ToyModel, method: Method, clamps: tuple[Clamp, ...], dtype, targets, init, mu, alpha):
    """Full-vector runs, vmapped: returns (curves, stop, failure)."""
    masks = free_masks(model, clamps, dtype)
    targets = {k: jnp.asarray(v, dtype=dtype) for k, v in targets.items()}
    init = apply_clamps({k: jnp.asarray(v, dtype=dtype) for k, v in init.items()}, targets, masks)
    lp = LossParams(mu=jnp.asarray(mu, dtype=dtype), alpha=jnp.asarray(alpha, dtype=dtype))
    return jax.vmap(lambda t, i, l: _strip(_full_run(model, method, masks, t, i, l)))(targets, init, lp)


@functools.partial(jax.jit, static_argnums=(0, 1))
def reduced_batch(dyn, method: Method, state0, params):
    """Reduced runs, vmapped: returns (curves, stop, failure)."""
    from ..reduced import use_columns

    columns = use_columns(dyn, state0.P.shape[0])  # static: the batch size
    return jax.vmap(lambda s, p: _strip(_reduced_run(dyn, method, s, p, columns)))(state0, params)


# ---------------------------------------------------------------------------------------------
# Inputs of a chunk
# ---------------------------------------------------------------------------------------------


def draw_inputs(spec: SweepSpec, dims: tuple[int, ...], seeds: np.ndarray, init_scale: np.ndarray, dtype):
    """Targets and σ-scaled initial vectors per run, identical to :func:`draw_vectors` per seed.

    Each distinct seed is drawn once (σ = 1) and then scaled like :func:`draw_vectors` does.
    """
    model = spec.build_model(dims)
    unique, inverse = np.unique(seeds, return_inverse=True)
    targets, init = draw_vectors(model, [int(s) for s in unique], 1.0, spec.prng, dtype)
    np_dtype = np.dtype(dtype)
    sigma = np.asarray(init_scale, dtype=np.float64).astype(np_dtype)[:, None]
    targets = {k: v[inverse] for k, v in targets.items()}
    init = {k: v[inverse] * sigma for k, v in init.items()}
    return targets, init


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] == n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)], axis=0)


def shard_runs(tree: Any, devices: Sequence[jax.Device] | None):
    """Pad every leaf's leading (run) axis to a multiple of the device count and shard it."""
    devices = list(jax.local_devices() if devices is None else devices)
    n = next(iter(jax.tree.leaves(tree))).shape[0]
    n_pad = -(-n // len(devices)) * len(devices)
    tree = jax.tree.map(lambda x: _pad(np.asarray(x), n_pad), tree)
    if len(devices) == 1:
        return jax.device_put(tree, devices[0]), n
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh(np.asarray(devices), ("runs",)), PartitionSpec("runs"))
    return jax.device_put(tree, sharding), n


def chunk_static(spec: SweepSpec, points: dict[str, np.ndarray], idx: np.ndarray) -> tuple:
    """The static structure shared by the points ``idx`` (raises if they do not share one)."""
    keys = {
        (int(points["method"][i]), bool(points["reduced"][i]), int(points["clamps"][i]),
         -1 if points["reduced"][i] else int(points["dims_index"][i]))
        for i in idx
    }  # fmt: skip
    assert len(keys) == 1, f"a chunk mixes static structures {keys}"
    return keys.pop()


def compute_chunk(
    spec: SweepSpec,
    points: dict[str, np.ndarray],
    idx: np.ndarray,
    thresholds: VerdictThresholds,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run the points ``idx`` (one static group) in one compiled call.

    Returns:
        ``(t, curves, summary)``: recorded times (n_times,), curves name → (runs, n_times) at every
        recorded time, and the summary measures of :func:`toymodels.sweep.verdicts.summarise`.
    """
    idx = np.asarray(idx, dtype=np.int64)
    m, reduced, c, _ = chunk_static(spec, points, idx)
    method, clamps = spec.methods[m], spec.clamps[c]
    mu = np.stack([points["mu1"][idx], points["mu2"][idx]], axis=-1)[:, : spec.n_mechanisms]
    alpha = points["alpha"][idx]
    dims_all = points["dims"][idx]
    with numerics(spec.precision) as dtype:
        targets = {v: [] for v in spec.vectors}
        init = {v: [] for v in spec.vectors}
        order = []
        # draws are per dimension tuple (a chunk of the reduced model may mix several)
        for d in np.unique(dims_all, axis=0):
            rows = np.nonzero((dims_all == d).all(axis=1))[0]
            t_d, i_d = draw_inputs(
                spec,
                tuple(int(x) for x in d),
                points["seed"][idx[rows]],
                points["init_scale"][idx[rows]],
                dtype,
            )
            order.append(rows)
            for v in spec.vectors:
                targets[v].append(t_d[v])
                init[v].append(i_d[v])
        order = np.concatenate(order)
        inverse = np.argsort(order)  # back to the order of idx
        tgt = {v: np.concatenate(targets[v])[inverse] for v in spec.vectors}
        ini = {v: np.concatenate(init[v])[inverse] for v in spec.vectors}
        R = np.stack([np.sum(tgt[v].astype(np.float64) ** 2, axis=-1) for v in spec.vectors], -1)
        model = spec.build_model(tuple(int(x) for x in dims_all[0]))
        if reduced:
            from ..reduced import ReducedParams, initial_state, initial_stats_from_vectors, reduced_dynamics

            dyn = reduced_dynamics(model, clamps, coordinates=spec.coordinates)
            state0 = initial_state(dyn, initial_stats_from_vectors(tgt, ini), dtype)
            params = ReducedParams(
                R=R.astype(dtype), dims=dims_all.astype(dtype), mu=mu.astype(dtype), alpha=alpha.astype(dtype)
            )
            inputs = (state0, params)
            batch = functools.partial(reduced_batch, dyn)
        else:
            inputs = (tgt, ini, mu.astype(dtype), alpha.astype(dtype))
            batch = lambda m, *args: full_batch(model, m, tuple(clamps), dtype, *args)  # noqa: E731

        def solve(m, inputs):
            args, n = shard_runs(inputs, devices)
            return jax.tree.map(lambda x: x[:n], batch(m, *args))

        is_gd = isinstance(method, GradientDescent)

        def failed_runs(result):
            failure = np.asarray(result[2])
            return failure >= 0 if is_gd else np.isfinite(failure)

        # large flow chunks: two passes, so a few stiff runs do not set every run's step count
        curves, stop, failure = solve_in_passes(solve, method, inputs, failed_runs)
    curves = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}
    stop, failure = np.asarray(stop), np.asarray(failure)
    failed = failed_runs((curves, stop, failure))
    ref = saddle_levels(model.mechanisms, model.vectors, R, dims_all)
    t = np.asarray(method.times, dtype=np.float64)
    summary = summarise(t, curves, ref, stop, failed, thresholds)
    return t, curves, summary


__all__ = [
    "compute_chunk",
    "curve_names",
    "draw_inputs",
    "full_batch",
    "reduced_batch",
    "shard_runs",
    "sweep_measures",
]
