"""Reduced (P, Q, R) dynamics against the full-vector model (the oracle)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels.clamps import Clamp
from toymodels.dynamics import GradientDescent, GradientFlow, simulate
from toymodels.errors import ConfigError
from toymodels.init import draw_vectors
from toymodels.losses import (
    LossParams,
    coopetition_model,
    loss_params,
    stats_of,
    tensor_model,
    total_loss_from_stats,
)
from toymodels.precision import numerics
from toymodels.reduced import (
    ReducedParams,
    ReducedState,
    initial_stats_from_vectors,
    reduced_dynamics,
    simulate_reduced,
    solve_reduced,
    typical_initial_stats,
)
from toymodels.results import ToyResult

PAPER_SEEDS = list(range(12))
# Relative error |reduced − full| / max(|full|, FLOOR). Both models evaluate losses as sums of O(1)
# terms (ΠR/2N ≈ ½) that cancel; on the rescaling-symmetric solution set (e.g. d = λd*, b = b*/λ)
# no cancellation-free form exists, and float64 trajectories of 10⁴ steps carry ~1e-14 absolute
# rounding. Values below FLOOR = 1e-6 (the paper's stop loss) are therefore compared absolutely at
# TOL·FLOOR = 1e-12; above it the comparison is relative at TOL = 1e-6.
FLOOR = 1e-6
TOL = 1e-6
# A run is compared up to the first save where the full model disagrees with *itself* under a
# 1e-15 relative perturbation of its initial vectors by more than SELF_TOL = TOL/10 (GD at lr = 1 turns
# chaotic for some μ₁ = 0 seeds: an edge-of-stability oscillation amplifies rounding to O(1)).
SELF_TOL = 1e-7


def tracked_losses(model):
    names = ["loss"] + [f"mechanism_{k + 1}_loss" for k in range(model.n_mechanisms)]
    if model.competition:
        names.append("competition")
    return names + [f"loss_others_at_targets_{v}" for v in model.vectors]


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), FLOOR)


def worst_relative_error(full: ToyResult, red: ToyResult, names, horizon=None) -> dict[str, float]:
    """Worst relative error per measure over saves before ``horizon`` (per run; default: all)."""
    out = {}
    n_runs, n_t = full[names[0]].shape
    horizon = np.full(n_runs, n_t) if horizon is None else horizon
    window = np.arange(n_t)[None, :] < horizon[:, None]
    for k in names:
        f, r = full[k], red[k]
        assert f.shape == r.shape, k
        np.testing.assert_array_equal(
            np.isfinite(f) & window, np.isfinite(r) & window, err_msg=f"{k}: stop patterns differ"
        )
        both = np.isfinite(f) & window
        out[k] = float(np.max(relative_error(r, f)[both]))
    return out


def deterministic_horizon(full: ToyResult, perturbed: ToyResult, names) -> np.ndarray:
    """Per run, the first save index where full and perturbed-full disagree by > SELF_TOL."""
    bad = np.zeros(full[names[0]].shape, dtype=bool)
    for k in names:
        e = relative_error(perturbed[k], full[k])
        bad |= np.isfinite(e) & (e > SELF_TOL)
        bad |= np.isfinite(full[k]) != np.isfinite(perturbed[k])
    n_t = bad.shape[1]
    return np.where(bad.any(axis=1), bad.argmax(axis=1), n_t)


def _paper_batch(model):
    """12 paper seeds × (μ₁ = 0.1, μ₁ = 0), α = 0.1, plus the μ₁ = 0 seeds with initial vectors
    perturbed by a relative 1e-15 (for the full model's own deterministic horizon): 36 runs."""
    with numerics("float64"):
        targets, init = draw_vectors(model, PAPER_SEEDS)
        targets = {k: jnp.concatenate([v, v, v]) for k, v in targets.items()}
        init = {k: jnp.concatenate([v, v, v * (1 + 1e-15)]) for k, v in init.items()}
    mu = np.array([[0.1, 0.0]] * 12 + [[0.0, 0.0]] * 24)
    lp = LossParams(mu=mu, alpha=np.full(36, 0.1))
    return targets, init, lp


def _first(tree, n):
    return {k: v[:n] for k, v in tree.items()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        GradientDescent(lr=1.0, steps=16000, stop_loss=1e-6),
        # tight tolerances: both solutions must be converged for a 1e-6 comparison
        GradientFlow(t_max=16000.0, n_save=401, stop_loss=1e-6, rtol=1e-11, atol=1e-14, max_steps=400_000),
    ],
    ids=["gd", "flow"],
)
def test_reduced_matches_full_model_on_paper_seeds(method):
    """The 12 paper seeds, μ₁ = 0.1 and μ₁ = 0 (α = 0.1, dims 20/20/20/160), float64: every tracked
    loss of the reduced model equals the full-vector model's to 1e-6 relative."""
    model = coopetition_model()
    targets, init, lp = _paper_batch(model)
    gd = method.name == "gd"
    # GD: one vmapped call with 36 runs (incl. the perturbed copies); the gradient flow has no
    # edge-of-stability instability (its deterministic horizon covers every run), so 24 runs.
    n_full = 36 if gd else 24
    full_all = simulate(
        model,
        method,
        _first(targets, n_full),
        _first(init, n_full),
        LossParams(lp.mu[:n_full], lp.alpha[:n_full]),
    )
    red = simulate_reduced(  # one vmapped call, 24 runs
        model,
        method,
        initial_stats_from_vectors(_first(targets, 24), _first(init, 24)),
        LossParams(lp.mu[:24], lp.alpha[:24]),
    )
    names = tracked_losses(model)
    full = ToyResult(
        full_all.t,
        {k: v[:24] for k, v in full_all.measures.items()},
        {},
        full_all.stop[:24],
        full_all.failure[:24],
        {},
        {},
    )
    assert set(red.measures) == set(full.measures)
    horizon = np.full(24, len(full.t))
    if gd:
        perturbed = ToyResult(
            full_all.t, {k: v[24:] for k, v in full_all.measures.items()}, {}, None, None, {}, {}
        )
        mu0 = ToyResult(full.t, {k: v[12:] for k, v in full.measures.items()}, {}, None, None, {}, {})
        horizon[12:] = deterministic_horizon(mu0, perturbed, names)
    errors = worst_relative_error(full, red, names, horizon)
    print(method.name, {k: f"{v:.2e}" for k, v in errors.items()}, "horizon (mu1=0):", horizon[12:].tolist())
    assert max(errors.values()) <= TOL, errors
    # The comparison is not vacuous: μ₁ = 0.1 runs are deterministic to the end (checked above by
    # construction: horizon = all saves), every μ₁ = 0 run for its first 1000 steps / flow time, and
    # at least half of the μ₁ = 0 runs to the end. (With GD at lr = 1, seeds 1, 3, 5, 6, 8, 10 at
    # μ₁ = 0 turn chaotic: a 1e-15 change of the initial vectors changes the losses by O(1).)
    assert np.all(full.t[np.minimum(horizon, len(full.t) - 1)] >= 1000), horizon
    assert np.sum(horizon[12:] == len(full.t)) >= 6, horizon
    if gd:
        same = horizon[:12] == len(full.t)
        np.testing.assert_array_equal(red.stop[:12][same], full.stop[:12][same])
    else:
        np.testing.assert_allclose(red.stop[:12], full.stop[:12], rtol=1e-6)
    # the runs are not trivial: seed 7 (μ₁ = 0.1) shows the transient ICL phase
    m1 = full["mechanism_1_loss"][7]
    assert np.nanmin(m1) < 0.01 and m1[np.isfinite(m1)][-1] > 0.1


def _random_vectors(model, key, scale=0.7):
    dims = model.integer_dims()
    keys = jax.random.split(key, 2 * len(dims))
    targets = {v: jax.random.normal(keys[2 * i], (n,)) for i, (v, n) in enumerate(dims.items())}
    params = {v: scale * jax.random.normal(keys[2 * i + 1], (n,)) for i, (v, n) in enumerate(dims.items())}
    return targets, params


def _state_params(model, targets, x, lp):
    V = model.vectors
    st = initial_stats_from_vectors(targets, x)
    state = ReducedState(**{f: jnp.array([getattr(st[v], f) for v in V]) for f in "PEW"})
    params = ReducedParams(
        R=jnp.array([st[v].R for v in V]),
        dims=jnp.array(model.dims, dtype=float),
        mu=jnp.asarray(lp.mu),
        alpha=jnp.asarray(lp.alpha),
    )
    return state, params


@pytest.mark.parametrize(
    "model,clamps,mu,alpha",
    [
        (coopetition_model((3, 4, 5, 7)), (), (0.1, 0.05), 0.3),
        (coopetition_model((3, 4, 5, 7), combine="additive"), (Clamp("c"),), (0.2, 0.0), 0.1),
        (tensor_model((2, 3, 4, 5)), (Clamp("b"),), (0.0,), 0.0),
        (tensor_model((4, 6)), (), (0.3,), 0.0),
    ],
)
def test_vector_field_and_gd_map_equal_autodiff(model, clamps, mu, alpha):
    """dP/dt, dQ/dt, one GD step and |g|² from SymPy equal the same quantities computed with
    jax.grad of the full-vector loss (an independent oracle)."""
    with numerics("float64"):
        lp = loss_params(model, mu, alpha)
        targets, x = _random_vectors(model, jax.random.PRNGKey(3))
        clamped = {c.name for c in clamps}
        x = {v: targets[v] if v in clamped else x[v] for v in x}
        dyn = reduced_dynamics(model, clamps)
        state, params = _state_params(model, targets, x, lp)
        g = jax.grad(lambda p: total_loss_from_stats(model, stats_of(p, targets), lp))(x)
        g = {v: jnp.zeros_like(g[v]) if v in clamped else g[v] for v in g}
        vel = dyn.velocity(state, params)
        lr = 0.37
        new = dyn.gd_step(state, params, lr)
        x_new = {v: x[v] - lr * g[v] for v in x}
        for i, v in enumerate(model.vectors):
            t = targets[v]
            perp = x[v] - jnp.dot(x[v], t) / jnp.dot(t, t) * t
            perp_new = x_new[v] - jnp.dot(x_new[v], t) / jnp.dot(t, t) * t
            np.testing.assert_allclose(vel.P[i], -jnp.dot(g[v], t), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(vel.E[i], -jnp.dot(g[v], t), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(vel.W[i], -2 * jnp.dot(g[v], perp), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(new.P[i], jnp.dot(x_new[v], t), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(new.E[i], jnp.dot(t, x_new[v] - t), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(new.W[i], jnp.dot(perp_new, perp_new), rtol=1e-10, atol=1e-13)
        # the plain (P, Q) field of the analysis agrees too
        pq = reduced_dynamics(model, clamps, coordinates="PQ")
        st_pq = ReducedState(P=state.P, Q=state.W + state.P**2 / params.R)
        vel_pq = pq.velocity(st_pq, params)
        new_pq = pq.gd_step(st_pq, params, lr)
        for i, v in enumerate(model.vectors):
            np.testing.assert_allclose(vel_pq.P[i], -jnp.dot(g[v], targets[v]), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(vel_pq.Q[i], -2 * jnp.dot(g[v], x[v]), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(new_pq.Q[i], jnp.dot(x_new[v], x_new[v]), rtol=1e-10, atol=1e-13)
        gsq = sum(jnp.sum(gv * gv) for gv in g.values())
        np.testing.assert_allclose(dyn.grad_norm_sq(state, params), gsq, rtol=1e-10)
        np.testing.assert_allclose(
            dyn.loss(state, params), total_loss_from_stats(model, stats_of(x, targets), lp), rtol=1e-12
        )


@pytest.mark.parametrize("clamps", [(Clamp("c"),), (Clamp("b"), Clamp("c"))], ids=["c", "bc"])
def test_clamped_reduced_matches_full(clamps):
    """Fig. 4.6a setting (dims 20, GD lr 1, 1000 steps) with full clamps, 3 seeds."""
    model = tensor_model((20, 20, 20))
    with numerics("float64"):
        targets, init = draw_vectors(model, [0, 1, 2])
    lp = loss_params(model)
    method = GradientDescent(lr=1.0, steps=1000, stop_loss=None, save_every=10)
    full = simulate(model, method, targets, init, lp, clamps=clamps)
    red = simulate_reduced(model, method, initial_stats_from_vectors(targets, init), lp, clamps=clamps)
    errors = worst_relative_error(full, red, tracked_losses(model))
    assert max(errors.values()) <= TOL, errors
    # Square roots of cancelling quantities (|g|, |x − x*|) are resolved by (P, Q, R) only to
    # ~sqrt(eps·R) ≈ 1e-7 absolute; above that they agree to 1e-6 relative.
    for k in ("grad_norm", "distance_a", "norm_a"):
        np.testing.assert_allclose(red[k], full[k], rtol=1e-6, atol=1e-6, err_msg=k)
    assert np.all(red.vectors["final"]["P_c"] == red.vectors["final"]["R_c"])
    assert np.all(red.vectors["final"]["Q_c"] == red.vectors["final"]["R_c"])
    assert np.all(red.vectors["final"]["W_c"] == 0) and np.all(red.vectors["final"]["E_c"] == 0)


def test_partial_clamp_is_refused():
    model = tensor_model((20, 20, 20))
    stats = typical_initial_stats(model, 0.1, 0.5)
    with pytest.raises(ConfigError) as err:
        simulate_reduced(model, GradientDescent(steps=10), stats, loss_params(model), clamps=(Clamp("c", 5),))
    assert err.value.param == "clamp" and "full-vector model" in err.value.message
    # clamping all entries with NAME:K is a full clamp and is accepted
    simulate_reduced(
        model, GradientDescent(steps=10, stop_loss=None), stats, loss_params(model), clamps=(Clamp("c", 20),)
    )


def test_typical_initial_stats():
    st = typical_initial_stats({"a": 20, "b": 12.5}, init_scale=[0.1, 1.0], overlap={"a": 2.0})
    np.testing.assert_allclose(st["a"].R, [20, 20])
    np.testing.assert_allclose(st["a"].Q, [0.2, 20])
    np.testing.assert_allclose(st["a"].P, [2 * 0.1 * np.sqrt(20), 2 * np.sqrt(20)])
    np.testing.assert_allclose(st["b"].P, [0, 0])
    np.testing.assert_allclose(st["b"].R, [12.5, 12.5])
    with pytest.raises(ConfigError) as err:
        typical_initial_stats({"a": 4}, 1.0, 2.5)
    assert err.value.param == "overlap"
    with pytest.raises(ConfigError):
        typical_initial_stats({"a": 4}, -1.0, 0.0)


def test_typical_stats_describe_random_vectors():
    """The typical statistics are those of random vectors: the reduced run from typical values
    tracks full runs averaged over seeds (law of large numbers, dims 400)."""
    model = tensor_model((400, 400))
    with numerics("float64"):
        targets, init = draw_vectors(model, list(range(4)), init_scale=0.3)
    exact = initial_stats_from_vectors(targets, init)
    z = {v: exact[v].P / (0.3 * np.sqrt(400)) for v in model.vectors}
    typ = typical_initial_stats(model, 0.3, z)
    for v in model.vectors:
        np.testing.assert_allclose(typ[v].Q, exact[v].Q, rtol=0.15)
        np.testing.assert_allclose(typ[v].R, exact[v].R, rtol=0.15)
        np.testing.assert_allclose(typ[v].P, exact[v].P, rtol=1e-12)


def test_bad_initial_stats():
    model = tensor_model((4, 4))
    stats = typical_initial_stats(model, 1.0, 1.0)
    bad = dict(stats, a=stats["a"]._replace(P=np.array([5.0])))  # P² > QR
    with pytest.raises(ConfigError) as err:
        simulate_reduced(model, GradientDescent(steps=5), bad, loss_params(model))
    assert err.value.param == "initial_stats"
    with pytest.raises(ConfigError):
        simulate_reduced(model, GradientDescent(steps=5), {"a": stats["a"]}, loss_params(model))


def test_real_dims_vmap_and_gradient():
    """Dimensions are traced inputs: vmap over real dims, and d(loss after T steps)/d(n_d) through
    the solve equals a central finite difference."""
    model = tensor_model((20, 20, 20))
    dyn = reduced_dynamics(model)
    method = GradientDescent(lr=1.0, steps=300, stop_loss=None, save_every=100)

    def final_loss(n_c):
        dims = jnp.array([20.0, 20.0, 0.0]) + jnp.array([0.0, 0.0, 1.0]) * n_c
        z = jnp.array([0.8, 1.0, 1.2])
        state = ReducedState.from_stats(
            P=z * 0.5 * jnp.sqrt(dims), Q=0.25 * dims, R=dims
        )  # typical stats, σ = 0.5
        params = ReducedParams(R=dims, dims=dims, mu=jnp.array([0.0]), alpha=jnp.asarray(0.0))
        return solve_reduced(dyn, method, state, params).measures["loss"][-1]

    with numerics("float64"):
        f = jax.jit(final_loss)
        losses = jax.jit(jax.vmap(final_loss))(jnp.array([20.0, 30.5, 40.0]))
        assert np.all(np.isfinite(losses)) and len(set(np.round(np.asarray(losses), 12))) == 3
        np.testing.assert_allclose(losses[0], f(20.0), rtol=1e-12)
        g = jax.jit(jax.grad(final_loss))(30.5)
        h = 1e-3
        fd = (f(30.5 + h) - f(30.5 - h)) / (2 * h)
        assert abs(g) > 1e-6
        np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_reduced_result_layout_roundtrip(tmp_path):
    model = coopetition_model((20, 20, 20, 160.5))
    stats = typical_initial_stats(
        model, 1.0, {"a": [0.3, -1.0], "b": [1.0, 0.2], "c": [0.5, 0.5], "d": [2.0, 1.0]}
    )
    lp = loss_params(model, 0.1, 0.1)
    method = GradientDescent(lr=1.0, steps=200, stop_loss=None, save_every=10)
    res = simulate_reduced(model, method, stats, lp, run_labels={"seed": [-1, -1]})
    assert res.config["reduced"] is True and res.config["model"]["dims"][-1] == 160.5
    assert res["loss"].shape == (2, 21) and res.t[-1] == 200
    path = tmp_path / "r.h5"
    res.save(path)
    back = ToyResult.load(path)
    np.testing.assert_array_equal(back["loss"], res["loss"])
    assert set(back.vectors["final"]) == {f"{s}_{v}" for s in "PQREW" for v in "abcd"}


def test_simulation_coordinates_are_the_same_dynamics():
    """The (P, E, W) field equals the (P, Q) field under E = P − R, W = Q − P²/R (a symbolic
    identity: dE/dt = dP/dt, dW/dt = dQ/dt − 2(P/R) dP/dt), so the two differ only in rounding."""
    import sympy as sp

    from toymodels.symbolic import derive

    model = coopetition_model()
    pq, pew = derive(model), derive(model, coordinates="PEW")
    sub = {pew.E[v]: pew.P[v] - pew.R[v] for v in model.vectors} | {
        pew.W[v]: pq.Q[v] - pew.P[v] ** 2 / pew.R[v] for v in model.vectors
    }
    for v in ("a", "b", "d"):
        dP, dE, dW = (e.subs(sub) for e in pew.flow[v])
        fP, fQ = pq.flow[v]
        assert sp.simplify(dP - fP) == 0
        assert sp.simplify(dE - fP) == 0
        assert sp.simplify(dW - (fQ - 2 * pq.P[v] / pq.R[v] * fP)) == 0


def test_two_pass_flow_batch_equals_one_pass():
    """solve_in_passes: runs that exhaust the small first-pass budget (here μ₁ = 0 with competition,
    ≈ 8× the typical step count) are solved again with the full budget; the merged batch equals one
    full-budget solve up to rounding, and the stiff runs are the only ones solved twice."""
    from toymodels.dynamics import solve_in_passes
    from toymodels.reduced import _solve_batch, initial_state, reduced_params

    model = coopetition_model()
    n = 6
    mu1 = np.array([0.0, 0.1, 0.2, 0.0, 0.15, 0.3])
    stats = typical_initial_stats(
        model,
        1.0,
        {"a": np.linspace(-1, 1, n), "b": np.full(n, 0.5), "c": np.full(n, 0.3), "d": np.linspace(1, -1, n)},
    )
    method = GradientFlow(t_max=4000.0, n_save=41, rtol=1e-8, atol=1e-10)
    dyn = reduced_dynamics(model)
    with numerics("float64") as dtype:
        state0 = initial_state(dyn, stats, dtype)
        R = np.stack([stats[v].R for v in model.vectors], -1)
        params = jax.device_get(
            reduced_params(model, LossParams(mu=np.stack([mu1, 0 * mu1], -1), alpha=np.full(n, 0.1)), R)
        )
        calls = []

        def solve(m, inputs):
            calls.append((m.max_steps, len(inputs[0].P)))
            return _solve_batch(dyn, m, *inputs)

        one = jax.device_get(solve(method, (state0, params)))
        budget = 300  # the μ₁ > 0 runs need fewer steps to t = 4000, the μ₁ = 0 runs more
        two = solve_in_passes(
            solve,
            method,
            (state0, params),
            lambda tr: np.isfinite(tr.failure),
            first_pass_steps=budget,
            min_runs=1,
        )
    assert (
        calls[1] == (budget, n) and calls[2][0] == method.max_steps and 1 <= calls[2][1] < n
    )  # a real second pass
    assert not np.isfinite(two.failure).any()
    for name in one.measures:
        # each pass is its own compiled program (and re-solved runs sit in a batch of another shape):
        # the same steps, rounded differently (~1e-11 relative, ~1e-17 absolute on tiny losses)
        np.testing.assert_allclose(
            two.measures[name], one.measures[name], rtol=1e-9, atol=1e-15, err_msg=name
        )
    np.testing.assert_allclose(two.final.P, one.final.P, rtol=1e-9)


def test_pq_coordinates_agree_with_pew_in_float64():
    model = coopetition_model()
    with numerics("float64"):
        targets, init = draw_vectors(model, [0, 7])
    stats = initial_stats_from_vectors(targets, init)
    method = GradientDescent(lr=1.0, steps=10000, stop_loss=1e-6, save_every=10)
    lp = loss_params(model, 0.1, 0.1)
    pew = simulate_reduced(model, method, stats, lp)
    pq = simulate_reduced(model, method, stats, lp, coordinates="PQ")
    np.testing.assert_array_equal(pq.stop, pew.stop)
    for name in ("loss", "mechanism_1_loss", "mechanism_2_loss"):
        np.testing.assert_allclose(pq[name], pew[name], rtol=1e-8, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(pq.vectors["final"]["W_a"], pew.vectors["final"]["W_a"], rtol=1e-6, atol=1e-10)
