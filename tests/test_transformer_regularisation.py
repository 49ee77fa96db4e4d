"""The study's regularisation (thesis ch. 3): a loss penalty λ Σ_a ‖a‖ over chosen parameter groups,
and the inverse-square-root learning-rate schedule with warm-up."""

from __future__ import annotations

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels.errors import ConfigError
from transformer import init_model, preset_config, train
from transformer.build import inverse_sqrt_schedule, l2_penalty, learning_rate_schedule


def _arrays(model):
    leaves = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]
    return [(jax.tree_util.keystr(p), np.asarray(a, np.float64)) for p, a in leaves]


@pytest.mark.parametrize("groups", ["all", "no_norm", "matrices"])
def test_penalty_is_the_sum_of_frobenius_norms_of_its_group(groups):
    cfg = preset_config("tiny")
    model = init_model(cfg, cfg.synth_dim)
    keep = {
        "all": lambda name, a: True,
        "no_norm": lambda name, a: ".ln_" not in name,
        "matrices": lambda name, a: a.ndim >= 2,
    }[groups]
    expected = sum(np.linalg.norm(a) for name, a in _arrays(model) if keep(name, a))
    assert float(l2_penalty(model, groups)) == pytest.approx(expected, rel=1e-5)
    if groups != "all":
        assert float(l2_penalty(model, groups)) < float(l2_penalty(model, "all"))


def test_penalty_gradient_is_finite_at_zero_biases():
    cfg = preset_config("tiny")
    model = init_model(cfg, cfg.synth_dim)
    assert np.all(np.asarray(model.embed_x.bias) == 0)  # biases start at zero
    g = jax.grad(lambda m: l2_penalty(m, "all"))(model)
    leaves = jax.tree_util.tree_leaves(eqx.filter(g, eqx.is_array))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert np.all(np.asarray(g.embed_x.bias) == 0)
    w = np.asarray(model.embed_x.weight, np.float64)
    np.testing.assert_allclose(g.embed_x.weight, w / np.linalg.norm(w), rtol=1e-5)


def test_inverse_sqrt_schedule_closed_form():
    lr, warmup = 1e-3, 100
    s = jax.jit(inverse_sqrt_schedule(lr, warmup))
    for t in (0, 49, 99, 100, 399, 9999):
        expected = lr * min((t + 1) / warmup, np.sqrt(warmup / (t + 1)))
        assert float(s(jnp.int32(t))) == pytest.approx(expected, rel=1e-6)
    cfg = preset_config("tiny", lr=1e-3, warmup_steps=100, lr_schedule="inverse_sqrt")
    assert float(learning_rate_schedule(cfg)(jnp.int32(399))) == pytest.approx(5e-4, rel=1e-6)


def test_training_logs_the_penalty_of_the_parameters_before_each_step(tmp_path):
    cfg = preset_config("tiny", n_sequences=16 * 20, eval_every=10, l2_penalty=1e-3, l2_groups="no_norm")
    train(cfg, str(tmp_path / "run"), progress=False)
    with h5py.File(tmp_path / "run" / "log.h5") as f:
        penalty, loss = f["train_penalty"][:], f["train_loss"][:]
    assert penalty.shape == loss.shape == (20,)
    initial = 1e-3 * float(l2_penalty(init_model(cfg, cfg.synth_dim), "no_norm"))
    assert penalty[0] == pytest.approx(initial, rel=1e-5)
    assert not np.allclose(penalty, penalty[0])  # the parameters move


@pytest.mark.parametrize(
    "kw, param",
    [
        (dict(l2_penalty=-1.0), "l2_penalty"),
        (dict(l2_penalty=float("nan")), "l2_penalty"),
        (dict(l2_groups="biases"), "l2_groups"),
        (dict(lr_schedule="cosine"), "lr_schedule"),
        (dict(lr_schedule="inverse_sqrt"), "lr_schedule"),  # needs warmup_steps >= 1
    ],
)
def test_bad_regularisation_values(kw, param):
    with pytest.raises(ConfigError) as e:
        preset_config("tiny", **kw)
    assert e.value.param == param
