"""Loss identities against the materialising oracle, gradients, critical points, precision, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels.errors import ConfigError
from toymodels.losses import (
    ToyModel,
    coopetition_model,
    loss,
    loss_params,
    loss_terms,
    loss_with_others_at_targets,
    materialised_loss,
    materialised_loss_terms,
    stats_of,
    tensor_model,
)
from toymodels.precision import numerics

THREE_MECHANISMS = ToyModel(
    vectors=("a", "b", "c", "d", "e"),
    dims=(3, 4, 5, 2, 6),
    mechanisms=(("a", "b", "c"), ("d", "b", "c"), ("e", "c")),
    competition=("a", "d", "e"),
)


def random_vectors(model, rng, scale=1.0):
    return {v: jnp.asarray(rng.normal(size=int(n)) * scale) for v, n in model.dim.items()}


MODELS = [
    tensor_model((4, 5)),
    tensor_model((3, 4, 5)),
    tensor_model((2, 3, 4, 3, 2)),
    coopetition_model((4, 5, 6, 9)),
    coopetition_model((4, 5, 6, 9), combine="additive"),
    THREE_MECHANISMS,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{len(m.vectors)}v-{len(m.mechanisms)}m-{m.combine}")
def test_inner_product_identity_matches_materialised_tensors(model):
    rng = np.random.default_rng(0)
    lp = loss_params(model, [0.3, 0.05, 0.2][: model.n_mechanisms], 0.7 if model.competition else 0.0)
    with numerics("float64"):
        for _ in range(3):
            params, targets = random_vectors(model, rng), random_vectors(model, rng)
            ours = loss_terms(
                model, stats_of(params, targets), [lp.mu[k] for k in range(model.n_mechanisms)], lp.alpha
            )
            oracle = materialised_loss_terms(model, params, targets, lp)
            np.testing.assert_allclose(ours.total, oracle.total, rtol=1e-12)
            np.testing.assert_allclose(ours.mechanisms, oracle.mechanisms, rtol=1e-12)
            np.testing.assert_allclose(ours.competition, oracle.competition, rtol=1e-12)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{len(m.vectors)}v-{len(m.mechanisms)}m-{m.combine}")
def test_gradient_matches_grad_of_materialised_loss(model):
    rng = np.random.default_rng(1)
    lp = loss_params(model, [0.1, 0.2, 0.3][: model.n_mechanisms], 0.4 if model.competition else 0.0)
    with numerics("float64"):
        params, targets = random_vectors(model, rng), random_vectors(model, rng)
        g = jax.grad(lambda p: loss(model, p, targets, lp))(params)
        g_oracle = jax.grad(lambda p: materialised_loss(model, p, targets, lp))(params)
        for v in model.vectors:
            np.testing.assert_allclose(g[v], g_oracle[v], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_cancellation_free_form_is_the_same_polynomial(n):
    """Symbolic proof that the non-negative form equals ΠR − 2ΠP + ΠQ when E = P − R, W = Q − P²/R."""
    import sympy as sp

    from toymodels.losses import VectorStats, mechanism_loss_accurate

    P, Q, R = (sp.symbols(f"{c}0:{n}", positive=True) for c in "PQR")
    stats = [VectorStats(P=P[i], Q=Q[i], R=R[i], E=P[i] - R[i], W=Q[i] - P[i] ** 2 / R[i]) for i in range(n)]
    plain = sp.Mul(*R) - 2 * sp.Mul(*P) + sp.Mul(*Q)
    assert sp.simplify(sp.together(mechanism_loss_accurate(stats) - plain)) == 0


@pytest.mark.parametrize("rescaled", [False, True], ids=["near-targets", "rescaled-solution"])
@pytest.mark.parametrize("eps", [1e-2, 1e-4, 1e-6, 1e-8])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_losses_are_accurate_at_tiny_values(eps, precision, rescaled):
    """Near convergence the identity subtracts O(1) numbers; the non-negative evaluation must still
    match the materialised loss (float64 oracle) at losses down to ~1e-17 — near the targets and
    near a rescaled solution (−2a*, −b*/2, c*, −2d*) where P, Q, R stay O(1)."""
    model = coopetition_model((20, 20, 20, 160))
    rng = np.random.default_rng(2)
    # float32 vectors resolve a perturbation eps only to ~ε₃₂/eps relative; float64 is far below
    rtol = 1e-8 if precision == "float64" else 20 * float(np.finfo(np.float32).eps) / eps
    with numerics(precision) as dtype:
        targets = {v: jnp.asarray(rng.normal(size=int(n)), dtype=dtype) for v, n in model.dim.items()}
        scale = {"a": -2.0, "b": -0.5, "d": -2.0} if rescaled else {}  # abc and dbc keep their products (= 1)
        params = {
            v: scale.get(v, 1.0) * targets[v]
            + jnp.asarray(eps * rng.normal(size=targets[v].shape), dtype=dtype)
            for v in model.vectors
        }
        if precision == "float32" and eps < 1e-4:
            pytest.skip("the perturbation is below float32 resolution of the vectors")
        ours = loss_terms(model, stats_of(params, targets), [0.0, 0.0], 0.0).mechanisms
    with numerics("float64"):
        up = {k: jnp.asarray(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
        ut = {k: jnp.asarray(np.asarray(v, dtype=np.float64)) for k, v in targets.items()}
        oracle = materialised_loss_terms(model, up, ut, loss_params(model)).mechanisms
        np.testing.assert_allclose(np.asarray(ours, dtype=np.float64), oracle, rtol=rtol)
    assert float(oracle[0]) < 10 * eps**2  # the test really reaches tiny losses (~1e-16 for eps = 1e-8)


@pytest.mark.parametrize(
    "model", MODELS[:4] + [THREE_MECHANISMS], ids=lambda m: f"{len(m.vectors)}v-{len(m.mechanisms)}m"
)
def test_origin_is_a_critical_point(model):
    rng = np.random.default_rng(3)
    lp = loss_params(model, [0.1, 0.2, 0.3][: model.n_mechanisms], 0.5 if model.competition else 0.0)
    with numerics("float64"):
        targets = random_vectors(model, rng)
        zero = {v: jnp.zeros_like(t) for v, t in targets.items()}
        g = jax.grad(lambda p: loss(model, p, targets, lp))(zero)
        assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in g.values())
        # ...but not a minimum: along d- = eps·(a*, b*, c*) the loss falls
        d_minus = {v: 1e-2 * t for v, t in targets.items()}
        assert float(loss(model, d_minus, targets, lp)) < float(loss(model, zero, targets, lp))


def test_loss_with_others_at_targets_matches_brute_force():
    model = coopetition_model((3, 4, 5, 6))
    rng = np.random.default_rng(4)
    lp = loss_params(model, (0.1, 0.05), 0.3)
    with numerics("float64"):
        params, targets = random_vectors(model, rng), random_vectors(model, rng)
        stats = stats_of(params, targets)
        for v in model.vectors:
            others = [u for u in model.vectors if u != v]
            brute = min(
                float(
                    materialised_loss(
                        model,
                        {v: params[v], **{u: s * targets[u] for u, s in zip(others, signs)}},
                        targets,
                        lp,
                    )
                )
                for signs in itertools.product((1.0, -1.0), repeat=len(others))
            )
            np.testing.assert_allclose(loss_with_others_at_targets(model, stats, lp, v), brute, rtol=1e-12)


@pytest.mark.parametrize(
    "build, param",
    [
        (lambda: coopetition_model((20, 0, 20, 160)), "dims"),
        (lambda: coopetition_model((20, 20, 20)), "dims"),
        (lambda: ToyModel(("a", "b"), (2, 2), (("a", "z"),)), "mechanisms"),
        (lambda: ToyModel(("a", "b"), (2, 2), (("a", "b"),), competition=("q",)), "competition"),
        (lambda: loss_params(coopetition_model(), (-0.1,), 0.1), "mu1"),
        (lambda: loss_params(coopetition_model(), (0.1, -1), 0.1), "mu2"),
        (lambda: loss_params(coopetition_model(), (0.1,), -0.1), "alpha"),
        (lambda: loss_params(tensor_model(), (0.0,), 0.1), "alpha"),
        (lambda: tensor_model((5,)), "dims"),
    ],
)
def test_bad_model_input_names_the_parameter(build, param):
    with pytest.raises(ConfigError) as e:
        build()
    assert e.value.param == param
