r"""Gradient dynamics of the toy models: discrete gradient descent and the continuous gradient flow.

* Gradient descent with learning rate η: :math:`\theta_{k+1} = \theta_k - \eta\,m\odot\nabla L(\theta_k)`
  (``m`` = the clamp mask), fused with :func:`jax.lax.scan`. At every step k the measures of
  :math:`\theta_k` are recorded; the run stops at the first k with :math:`L(\theta_k)` < ``stop_loss``
  (``stop_step`` = k) and values after the stop are NaN, so outputs keep a fixed length.
* Gradient flow :math:`\dot\theta = -m\odot\nabla L(\theta)`, solved with Diffrax (adaptive
  Runge–Kutta with a PID step-size controller; an implicit stiff solver is available). Flow time
  t corresponds to η × steps of gradient descent. The measures are evaluated at the requested save
  times inside the solve (``SaveAt(fn=...)``), so trajectories of the vectors are never stored.

The integrators :func:`gd_trajectory` and :func:`flow_trajectory` are generic over the state pytree:
the full-vector model (here) and the reduced (P, Q) model (:mod:`toymodels.reduced`) share them.
:func:`simulate` runs many runs (seeds, parameter values) in one compiled, vmapped call.
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
from jaxtyping import Array, Float, PyTree

from .clamps import Clamp, apply_clamps, check_clamps, free_masks
from .errors import require
from .losses import LossParams, ToyModel, stats_of, total_loss_from_stats
from .measures import measures_from_stats

# the method configurations (toymodels.methods) stay importable from here
from .methods import IMPLICIT_SOLVERS as IMPLICIT_SOLVERS
from .methods import SOLVERS as SOLVERS
from .methods import GradientDescent as GradientDescent
from .methods import GradientFlow as GradientFlow
from .methods import Method as Method
from .precision import check_precision, numerics

# ---------------------------------------------------------------------------------------------
# Generic single-run integrators
# ---------------------------------------------------------------------------------------------


class Trajectory(eqx.Module):
    """What one run produces: measures at the recorded times plus stop/divergence markers.

    ``stop`` is the stop step (GD, −1 if never) or stop time (flow, NaN if never); ``failure`` is the
    step at which the loss became non-finite (GD, −1 if never) or the time at which the solver gave up
    (flow, NaN if it did not).
    """

    measures: dict[str, Float[Array, " n_times"]]
    stop: Array
    failure: Array
    final: PyTree


def gd_trajectory(
    step_fn: Callable[[PyTree], tuple[dict[str, Array], PyTree]],
    state0: PyTree,
    method: GradientDescent,
) -> Trajectory:
    """Gradient descent on any state pytree.

    Args:
        step_fn: ``state -> (measures, next_state)``; ``measures["loss"]`` is the loss of ``state``.
        state0: initial state.
        method: the GD configuration.
    """
    stop_loss = -jnp.inf if method.stop_loss is None else method.stop_loss

    def one_step(carry, _):
        state, done, k, stop_k, fail_k = carry
        m, new_state = step_fn(state)
        loss = m["loss"]
        live = ~done & (k <= method.steps)
        bad = ~jnp.isfinite(loss)
        stops = live & ~bad & (loss < stop_loss)
        fails = live & bad
        recorded = jax.tree.map(lambda x: jnp.where(done, jnp.nan, x), m)
        stop_k = jnp.where(stops, k, stop_k)
        fail_k = jnp.where(fails, k, fail_k)
        done = done | stops | fails
        update = ~done & (k < method.steps)
        state = jax.tree.map(lambda new, old: jnp.where(update, new, old), new_state, state)
        return (state, done, k + 1, stop_k, fail_k), recorded

    def save_block(carry, _):
        # Record the first step of each block of K steps; the others only update and check stopping.
        carry, recorded = one_step(carry, None)
        if method.save_every > 1:
            carry, _ = jax.lax.scan(one_step, carry, None, length=method.save_every - 1)
        return carry, recorded

    minus_one = jnp.asarray(-1, dtype=jnp.int32)
    carry0 = (state0, jnp.asarray(False), jnp.asarray(0, dtype=jnp.int32), minus_one, minus_one)
    # blocks start at steps 0, K, …, steps: the state after the last update is recorded too
    n_blocks = method.steps // method.save_every + 1
    (state, _, _, stop_k, fail_k), measures = jax.lax.scan(save_block, carry0, None, length=n_blocks)
    return Trajectory(measures=measures, stop=stop_k, failure=fail_k, final=state)


def flow_trajectory(
    velocity_fn: Callable[[PyTree], PyTree],
    measure_fn: Callable[[PyTree], dict[str, Array]],
    loss_fn: Callable[[PyTree], Array],
    state0: PyTree,
    method: GradientFlow,
    save_states: bool = False,
) -> Trajectory:
    """Gradient flow ``d state/dt = velocity_fn(state)`` solved with Diffrax; measures at the save times.

    Save times after a stop (``stop_loss`` reached) or a solver failure hold NaN.

    With ``save_states`` the solver stores the (interpolated) state at the save times and the measures
    are evaluated afterwards, all save times at once; otherwise they are evaluated inside the solve.
    Use it for small states: under ``vmap`` the solver's save loop runs whenever *any* run of the
    batch passes a save time, i.e. at almost every step, and evaluates the measures of every run each
    time (≈ 6× the work for 161 saves in ≈ 1000 steps).
    """
    import diffrax
    import optimistix as optx

    ts = jnp.asarray(method.times)
    term = diffrax.ODETerm(lambda t, y, args: velocity_fn(y))
    solver = getattr(diffrax, SOLVERS[method.solver])()
    controller = diffrax.PIDController(rtol=method.rtol, atol=method.atol)
    saveat = diffrax.SaveAt(
        subs=[
            diffrax.SubSaveAt(ts=ts)
            if save_states
            else diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: measure_fn(y)),
            diffrax.SubSaveAt(t1=True),
        ]
    )
    event = None
    if method.stop_loss is not None:
        stop_loss = method.stop_loss
        event = diffrax.Event(
            cond_fn=lambda t, y, args, **kw: loss_fn(y) - stop_loss,
            # Newton on the dense solution. (Bisection fails when Diffrax's bracket misses the root;
            # Newton can stall on very steep drops at large t — toymodels.analysis.escape handles those.)
            root_finder=optx.Newton(rtol=1e-10, atol=1e-12),
        )
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=0.0,
        t1=method.t_max,
        dt0=method.dt0,
        y0=state0,
        saveat=saveat,
        stepsize_controller=controller,
        event=event,
        max_steps=method.max_steps,
        throw=False,
    )
    saved = jax.vmap(measure_fn)(sol.ys[0]) if save_states else sol.ys[0]
    measures = jax.tree.map(lambda x: jnp.where(jnp.isfinite(x), x, jnp.nan), saved)
    t_end = sol.ts[1][0]
    stopped = sol.result == diffrax.RESULTS.event_occurred
    failed = ~stopped & (sol.result != diffrax.RESULTS.successful)
    # a save time at exactly the event time is still valid; later ones are not
    measures = jax.tree.map(lambda x: jnp.where(ts <= t_end, x, jnp.nan), measures)
    final = jax.tree.map(lambda y: y[0], sol.ys[1])
    return Trajectory(
        measures=measures,
        stop=jnp.where(stopped, t_end, jnp.nan),
        failure=jnp.where(failed, t_end, jnp.nan),
        final=final,
    )


#: step budget of the first pass of :func:`solve_in_passes` (a few times the typical number of
#: steps of a toy run to t = 16000 at rtol 1e-8, which is ≈ 400)
FIRST_PASS_STEPS = 1024


def solve_in_passes(
    solve: Callable[[Method, PyTree], PyTree],
    method: Method,
    inputs: PyTree,
    failed: Callable[[PyTree], np.ndarray],
    first_pass_steps: int = FIRST_PASS_STEPS,
    min_runs: int = 256,
) -> PyTree:
    """A vmapped batch of adaptive solves in two passes, so that a few stiff runs do not set the cost
    of every run.

    A vmapped Diffrax solve steps every run of the batch until the slowest has finished (runs that are
    done are masked, not skipped), so one run that needs 10× the typical number of steps makes the
    whole batch 10× dearer. Pass 1 solves the batch with the step budget ``min(first_pass_steps,
    method.max_steps)``; the runs that did not finish (``failed``) are solved again from the start
    with ``method`` itself, as a (power-of-two padded) sub-batch, and their results replace the first
    ones. A run that finished in pass 1 took the same steps it takes with the full budget, so the
    merged result is that of one solve with ``method`` (up to rounding: a re-solved run sits in a
    batch of another shape, compiled separately; ~1e-11 relative, tested). GD batches and batches of
    fewer than ``min_runs`` runs (where a second compilation would cost more than it saves) take one pass.

    Args:
        solve: ``(method, inputs) -> result``, a compiled batch solve; every leaf of ``inputs`` and of
            the result has the run axis first. The result is moved to the host (NumPy).
        method: the method (its ``max_steps`` is the budget of pass 2).
        inputs: pytree of per-run inputs (arrays with the run axis first).
        failed: ``result -> bool array (runs,)``, the runs whose solve gave up.
        first_pass_steps: step budget of pass 1.
        min_runs: smallest batch solved in two passes.
    """
    n_runs = len(jax.tree.leaves(inputs)[0])
    if not isinstance(method, GradientFlow) or n_runs < min_runs or method.max_steps <= first_pass_steps:
        return jax.device_get(solve(method, inputs))
    result = jax.device_get(solve(dataclasses.replace(method, max_steps=first_pass_steps), inputs))
    redo = np.nonzero(np.asarray(failed(result)))[0]
    if redo.size == 0:
        return result
    size = min(1 << int(np.ceil(np.log2(redo.size))), n_runs)  # few distinct shapes, few compilations
    rows = np.concatenate([redo, np.repeat(redo[-1:], size - redo.size)])
    again = jax.device_get(solve(method, jax.tree.map(lambda x: np.asarray(x)[rows], inputs)))

    def merge(first, second):
        out = np.array(first, copy=True)
        out[redo] = np.asarray(second)[: redo.size]
        return out

    return jax.tree.map(merge, result, again)


# ---------------------------------------------------------------------------------------------
# Full-vector model
# ---------------------------------------------------------------------------------------------


def _full_model_functions(model: ToyModel, targets, masks, lp: LossParams):
    """Loss, masked gradient and measures of the full-vector model for one run."""

    def loss_fn(params):
        return total_loss_from_stats(model, stats_of(params, targets), lp)

    def masked_grad(params):
        grads = jax.grad(loss_fn)(params)
        return {k: masks[k] * g for k, g in grads.items()}

    def measures(params, grads):
        gsq = sum(jnp.sum(g * g) for g in grads.values())
        return measures_from_stats(model, stats_of(params, targets), lp, gsq)

    return loss_fn, masked_grad, measures


def _full_single_run(model: ToyModel, method: Method, masks, targets, init, lp: LossParams) -> Trajectory:
    loss_fn, masked_grad, measures = _full_model_functions(model, targets, masks, lp)
    if isinstance(method, GradientDescent):

        def step(params):
            grads = masked_grad(params)
            new = {k: params[k] - method.lr * grads[k] for k in params}
            return measures(params, grads), new

        return gd_trajectory(step, init, method)

    # Diffrax calls these many times per step (Runge–Kutta stages, save points, events): an inner
    # jit makes JAX trace each of them once, which cuts tracing and compilation time severalfold.
    @jax.jit
    def velocity(params):
        return jax.tree.map(jnp.negative, masked_grad(params))

    @jax.jit
    def measure_state(params):
        return measures(params, masked_grad(params))

    return flow_trajectory(velocity, measure_state, jax.jit(loss_fn), init, method)


def broadcast_loss_params(lp: LossParams, n_runs: int, n_mechanisms: int, dtype) -> LossParams:
    """Give μ shape (n_runs, n_mechanisms) and α shape (n_runs,)."""
    mu = jnp.broadcast_to(jnp.asarray(lp.mu, dtype=dtype), (n_runs, n_mechanisms))
    alpha = jnp.broadcast_to(jnp.asarray(lp.alpha, dtype=dtype), (n_runs,))
    return LossParams(mu=mu, alpha=alpha)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _simulate_batch(
    model: ToyModel, method: Method, clamps: tuple[Clamp, ...], dtype, targets, init, mu, alpha
):
    """Cast, clamp and broadcast inside the compiled call (eager ops would each compile separately)."""
    n_runs = next(iter(targets.values())).shape[0]
    masks = free_masks(model, clamps, dtype)
    targets = {k: jnp.asarray(v, dtype=dtype) for k, v in targets.items()}
    init = apply_clamps({k: jnp.asarray(v, dtype=dtype) for k, v in init.items()}, targets, masks)
    lp = broadcast_loss_params(LossParams(mu=mu, alpha=alpha), n_runs, model.n_mechanisms, dtype)
    run = functools.partial(_full_single_run, model, method, masks)
    return jax.vmap(run)(targets, init, lp), init, lp


def simulate(
    model: ToyModel,
    method: Method,
    targets: Mapping[str, Float[Array, "runs n"]],
    init: Mapping[str, Float[Array, "runs n"]],
    lp: LossParams,
    clamps: Sequence[Clamp] = (),
    precision: str = "float64",
    run_labels: Mapping[str, Any] | None = None,
):
    """Simulate a batch of full-vector runs in one compiled, vmapped call.

    Args:
        model: the model structure.
        method: :class:`GradientDescent` or :class:`GradientFlow`.
        targets, init: vectors by name, shape (n_runs, dim) — e.g. from :func:`toymodels.init.draw_vectors`.
        lp: loss parameters; μ of shape (n_mech,) or (n_runs, n_mech), α scalar or (n_runs,).
        clamps: vectors (or leading entries) held at their targets.
        precision: ``"float64"`` (default) or ``"float32"``; scoped, the global JAX setting is untouched.
        run_labels: per-run labels stored with the result (e.g. ``{"seed": [...]}``).

    Returns:
        A :class:`toymodels.results.ToyResult`.
    """
    from .results import ToyResult

    check_precision(precision)
    clamps = check_clamps(model, clamps)
    model.integer_dims()
    n_runs = {np.shape(v)[0] for v in targets.values()} | {np.shape(v)[0] for v in init.values()}
    require(len(n_runs) == 1, "init", "targets and initial vectors need the same number of runs")
    (n,) = n_runs
    with numerics(precision) as dtype:
        traj, init, lp_b = _simulate_batch(
            model, method, clamps, dtype, dict(targets), dict(init), lp.mu, lp.alpha
        )
        traj, init, lp_b = jax.device_get((traj, init, lp_b))
    return ToyResult.from_trajectory(
        traj,
        model=model,
        method=method,
        lp=lp_b,
        clamps=clamps,
        precision=precision,
        run_labels=run_labels,
        vectors={"targets": targets, "init": init, "final": traj.final},
        reduced=False,
    )
