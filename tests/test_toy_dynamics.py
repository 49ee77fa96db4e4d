"""Dynamics against oracles: the paper's seed-7 run, an independent implementation of the original
algorithm, closed forms under clamping, GD → flow convergence, invariants."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels.clamps import Clamp
from toymodels.dynamics import GradientDescent, GradientFlow, simulate
from toymodels.experiment import ToyConfig, run
from toymodels.init import draw_vectors
from toymodels.losses import coopetition_model, loss_params, tensor_model
from toymodels.precision import numerics
from toymodels.results import ToyResult


@pytest.fixture(scope="module")
def paper_seed7():
    return run(ToyConfig())  # defaults = thesis Fig. 5.9a


def test_seed7_reproduces_the_published_run(paper_seed7):
    r = paper_seed7
    m1 = r["mechanism_1_loss"][0]
    assert int(r.stop[0]) == 9620
    assert np.sum(np.isfinite(m1)) == 9621 and np.all(np.isfinite(m1[:9621])) and np.all(np.isnan(m1[9621:]))
    np.testing.assert_allclose(m1[0], 0.7497, atol=5e-4)
    np.testing.assert_allclose(m1[1500:2500], 0.226, atol=2e-3)  # the plateau
    assert abs(int(np.nanargmin(m1)) - 5660) <= 5 and abs(np.nanmin(m1) - 0.003) < 5e-4
    assert 0.18 < m1[9000] < 0.22  # mechanism 1 fades again: transience
    assert r["loss"][0][9620] < 1e-6 <= r["loss"][0][9619]
    assert r.failure[0] == -1


def _original_algorithm(seeds, steps, mu1=0.1, alpha=0.1, dims=(20, 20, 20, 160)):
    """Independent re-implementation of the original study's loop: float32, materialised tensors,
    jax.random draws with the legacy key derivation, plain GD with η = 1."""

    def draw(seed):
        key = jax.random.PRNGKey(seed)
        t, p = {}, {}
        for n, d in zip("abcd", dims):
            key, sub = jax.random.split(key)
            kt, ki = jax.random.split(sub)
            t[n], p[n] = jax.random.normal(kt, (d,)), jax.random.normal(ki, (d,))
        return t, p

    def losses(p, t):
        t1 = jnp.einsum("i,j,k->ijk", t["a"], t["b"], t["c"]) - jnp.einsum(
            "i,j,k->ijk", p["a"], p["b"], p["c"]
        )
        t2 = jnp.einsum("i,j,k->ijk", t["d"], t["b"], t["c"]) - jnp.einsum(
            "i,j,k->ijk", p["d"], p["b"], p["c"]
        )
        l1, l2 = 0.5 * jnp.mean(t1**2), 0.5 * jnp.mean(t2**2)
        return (l1 + mu1) * l2 + alpha * 0.5 * jnp.mean(jnp.outer(p["a"], p["d"]) ** 2), l1

    def one(seed):
        t, p = draw(seed)

        def body(p, _):
            (l, l1), g = jax.value_and_grad(losses, has_aux=True)(p, t)
            return jax.tree.map(lambda x, y: x - y, p, g), (l, l1)

        return jax.lax.scan(body, p, None, length=steps)[1]

    with jax.threefry_partitionable(False), jax.enable_x64(False):
        loss, l1 = jax.jit(jax.vmap(one))(jnp.asarray(seeds, dtype=jnp.uint32))
    return np.asarray(loss), np.asarray(l1)


def test_matches_the_original_algorithm_step_by_step():
    seeds = [0, 5, 7, 8, 11]
    steps = 9700
    loss, l1 = _original_algorithm(seeds, steps)
    ours = run(ToyConfig(seeds=tuple(seeds), method=GradientDescent(steps=steps)))
    for i, seed in enumerate(seeds):
        below = np.nonzero(loss[i] < 1e-6)[0]
        assert below.size and int(ours.stop[i]) == int(below[0]), f"seed {seed}: stop step differs"
        n = int(below[0]) + 1
        np.testing.assert_allclose(
            ours["mechanism_1_loss"][i][:n], l1[i][:n], rtol=1e-3, err_msg=f"seed {seed}"
        )


def _clamped_tensor_setup(method, clamps=(Clamp("b"), Clamp("c"))):
    model = tensor_model((6, 5, 4))
    with numerics("float64"):
        targets, init = draw_vectors(model, [3])
    r = simulate(model, method, targets, init, loss_params(model), clamps)
    k = float(np.sum(targets["b"][0] ** 2) * np.sum(targets["c"][0] ** 2) / (6 * 5 * 4))
    l0 = 0.5 * k * float(np.sum((init["a"][0] - targets["a"][0]) ** 2))
    return r, k, l0


def test_flow_with_b_and_c_clamped_matches_the_closed_form():
    """With b = b*, c = c*: L = k/2·|a − a*|², k = R_b R_c / N, so a − a* decays as e^{−kt}
    and L(t) = L₀ e^{−2kt} (no plateau, no phase change)."""
    r, k, l0 = _clamped_tensor_setup(GradientFlow(t_max=300.0, n_save=61, rtol=1e-11, atol=1e-14))
    exact = l0 * np.exp(-2 * k * r.t)
    resolved = exact > 1e-9  # below, the solver's absolute state tolerance (atol) limits |a − a*|
    np.testing.assert_allclose(r["loss"][0][resolved], exact[resolved], rtol=1e-7)
    np.testing.assert_allclose(r["loss"][0], exact, rtol=1e-7, atol=1e-16)
    assert r["loss"][0][-1] < 1e-14


def test_gd_with_b_and_c_clamped_matches_the_closed_form():
    r, k, l0 = _clamped_tensor_setup(GradientDescent(lr=0.5, steps=400, stop_loss=None))
    exact = l0 * (1 - 0.5 * k) ** (2 * r.t)
    np.testing.assert_allclose(r["loss"][0][exact > 1e-9], exact[exact > 1e-9], rtol=1e-10)
    # deeper, the rounding of the vectors (~ε|a|) bounds the error: |ΔL| ≲ ε·√L
    tail = exact > 1e-28
    assert np.all(
        np.abs(r["loss"][0][tail] - exact[tail]) <= 1e-14 * np.sqrt(exact[tail]) + 1e-12 * exact[tail]
    )


def test_flow_stop_time_is_located_exactly():
    stop = 1e-3
    r, k, l0 = _clamped_tensor_setup(
        GradientFlow(t_max=500.0, n_save=101, rtol=1e-11, atol=1e-14, stop_loss=stop)
    )
    t_star = np.log(l0 / stop) / (2 * k)
    np.testing.assert_allclose(r.stop[0], t_star, rtol=1e-6)
    assert np.all(np.isnan(r["loss"][0][r.t > t_star])) and np.all(np.isfinite(r["loss"][0][r.t <= t_star]))


def test_gradient_descent_converges_to_the_flow_at_first_order():
    model = coopetition_model((5, 4, 3, 8))
    with numerics("float64"):
        targets, init = draw_vectors(model, [1, 2])
    lp = loss_params(model, (0.1,), 0.1)
    t_end = 40.0
    flow = simulate(model, GradientFlow(t_max=t_end, n_save=2, rtol=1e-11, atol=1e-13), targets, init, lp)
    errors = []
    for lr in (0.02, 0.01):
        gd = simulate(
            model, GradientDescent(lr=lr, steps=int(round(t_end / lr)), stop_loss=None), targets, init, lp
        )
        errors.append(np.max(np.abs(gd["loss"][:, -1] - flow["loss"][:, -1]) / flow["loss"][:, -1]))
    assert errors[1] < 0.02
    assert 1.6 < errors[0] / errors[1] < 2.4  # halving η halves the error: first-order convergence


def test_loss_never_increases_along_the_flow():
    r = run(ToyConfig(seeds=(0, 1, 2), method=GradientFlow(t_max=6000.0, n_save=601)))
    loss = r["loss"]
    assert np.all(np.isfinite(loss))
    assert np.all(np.diff(loss, axis=1) <= 1e-10 * loss[:, :-1])


@pytest.mark.parametrize(
    "method",
    [GradientDescent(steps=300, stop_loss=None), GradientFlow(t_max=300.0, n_save=11)],
    ids=["gd", "flow"],
)
def test_clamped_entries_never_move(method):
    model = coopetition_model((6, 5, 4, 9))
    with numerics("float64"):
        targets, init = draw_vectors(model, [0, 1])
    clamps = (Clamp("a", 3), Clamp("c"))
    r = simulate(model, method, targets, init, loss_params(model, (0.1,), 0.1), clamps)
    final = r.vectors["final"]
    np.testing.assert_array_equal(final["a"][:, :3], targets["a"][:, :3])
    np.testing.assert_array_equal(final["c"], targets["c"])
    assert np.all(np.abs(final["a"][:, 3:] - init["a"][:, 3:]) > 1e-6)  # the free entries learn
    assert np.all(np.abs(final["b"] - init["b"]) > 1e-6)


def test_vmap_over_seeds_equals_a_loop_over_seeds():
    cfg = ToyConfig(seeds=(2, 3, 4), method=GradientDescent(steps=3000))
    together = run(cfg)
    for i, seed in enumerate(cfg.seeds):
        alone = run(dataclasses.replace(cfg, seeds=(seed,)))
        for name, values in together.measures.items():
            np.testing.assert_allclose(values[i], alone[name][0], rtol=1e-12, atol=1e-300, err_msg=name)
        assert together.stop[i] == alone.stop[0]


def test_same_seed_gives_identical_numbers():
    cfg = ToyConfig(seeds=(5,), method=GradientDescent(steps=2000))
    a, b = run(cfg), run(cfg)
    for name in a.measures:
        np.testing.assert_array_equal(a[name], b[name])


def test_many_parameter_values_in_one_call():
    model = coopetition_model((5, 4, 3, 8))
    with numerics("float64"):
        targets, init = draw_vectors(model, [0, 0, 0])
    mu = np.array([[0.0, 0.0], [0.1, 0.0], [0.3, 0.0]])
    alpha = np.array([0.1, 0.1, 0.2])
    batched = simulate(
        model, GradientDescent(steps=500), targets, init, loss_params(model).__class__(mu=mu, alpha=alpha)
    )
    for i in range(3):
        single = simulate(
            model,
            GradientDescent(steps=500),
            {k: v[i : i + 1] for k, v in targets.items()},
            {k: v[i : i + 1] for k, v in init.items()},
            loss_params(model, mu[i], alpha[i]),
        )
        np.testing.assert_allclose(batched["loss"][i], single["loss"][0], rtol=1e-12)
    assert not np.allclose(batched["loss"][0], batched["loss"][2])


def test_divergence_is_detected_and_reported():
    r = run(ToyConfig(seeds=(0, 1), method=GradientDescent(lr=100.0, steps=200)))
    assert np.all(r.failure >= 0) and np.all(r.stop == -1)
    k = int(r.failure[0])
    assert not np.isfinite(r["loss"][0][k]) and np.all(np.isfinite(r["loss"][0][:k]))
    assert np.all(np.isnan(r["loss"][0][k + 1 :]))
    assert "diverged at step" in r.failures()[0]


def test_save_every_subsamples_without_changing_the_stop():
    full = run(ToyConfig(method=GradientDescent(steps=10000)))
    coarse = run(ToyConfig(method=GradientDescent(steps=10000, save_every=10)))
    assert coarse.stop[0] == full.stop[0] == 9620
    np.testing.assert_allclose(coarse["loss"][0][:963], full["loss"][0][:9621:10], rtol=1e-12)
    assert np.all(np.isnan(coarse["loss"][0][963:]))


def test_float32_precision_runs_and_agrees_early():
    r64 = run(ToyConfig(method=GradientDescent(steps=500)))
    r32 = run(ToyConfig(method=GradientDescent(steps=500), precision="float32"))
    np.testing.assert_allclose(r32["mechanism_1_loss"], r64["mechanism_1_loss"], rtol=1e-3)


def test_hdf5_round_trip_and_layout(tmp_path):
    import json

    import h5py

    r = run(ToyConfig(seeds=(0, 1), method=GradientDescent(steps=100)))
    path = tmp_path / "toymodel.h5"
    r.save(path)
    with h5py.File(path) as f:
        assert f["t"].shape == (101,)
        for name in (
            "loss",
            "mechanism_1_loss",
            "mechanism_2_loss",
            "competition",
            "grad_norm",
            "norm_a",
            "one_minus_cos2_d",
            "distance_b",
            "loss_others_at_targets_c",
        ):
            assert f[name].shape == (2, 101), name
        assert f["stop_step"].shape == (2,) and f["seed"][()].tolist() == [0, 1]
        assert f["targets/a"].shape == (2, 20) and f["final/d"].shape == (2, 160)
        config = json.loads(f.attrs["config"])
        assert config["model"]["dims"] == [20, 20, 20, 160] and "jax" in json.loads(f.attrs["versions"])
    back = ToyResult.load(path)
    np.testing.assert_array_equal(back.t, r.t)
    for name in r.measures:
        np.testing.assert_array_equal(back[name], r[name])
    np.testing.assert_array_equal(back.stop, r.stop)
    assert back.config == r.config and set(back.vectors) == {"targets", "init", "final"}


def test_implicit_stiff_solver_agrees_with_the_explicit_one():
    cfg = dict(model="tensor", dims=(3, 3), mu=(0.0,), alpha=0.0, seeds=(1,))
    implicit = run(
        ToyConfig(**cfg, method=GradientFlow(t_max=50.0, n_save=11, solver="kvaerno5", rtol=1e-8, atol=1e-10))
    )
    explicit = run(ToyConfig(**cfg, method=GradientFlow(t_max=50.0, n_save=11, rtol=1e-10, atol=1e-12)))
    assert np.all(np.isnan(implicit.failure))
    np.testing.assert_allclose(implicit["loss"], explicit["loss"], rtol=1e-6)
    assert explicit["loss"][0, -1] < 1e-3 * explicit["loss"][0, 0]  # the run really learns
