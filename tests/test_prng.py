"""The NumPy legacy threefry must be bit-identical to jax.random under the legacy key derivation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels import prng
from toymodels.init import _draw_one_seed, draw_vectors
from toymodels.losses import coopetition_model, tensor_model


@pytest.mark.parametrize("seed", [0, 1, 7, 11, 4242, 2**31 - 1])
def test_keys_splits_and_normals_are_bit_identical(seed):
    with jax.threefry_partitionable(False):
        key = jax.random.PRNGKey(seed)
        np.testing.assert_array_equal(np.asarray(key), prng.prng_key(seed))
        a, b = jax.random.split(key)
        a_np, b_np = prng.split(prng.prng_key(seed))
        np.testing.assert_array_equal(np.asarray(a), a_np)
        np.testing.assert_array_equal(np.asarray(b), b_np)
        for n in (1, 2, 19, 20, 160, 513):
            expected = np.asarray(jax.random.normal(b, (n,), dtype=jnp.float32))
            np.testing.assert_array_equal(prng.normal_float32([(b_np, n)])[0], expected)


@pytest.mark.parametrize("model", [coopetition_model(), tensor_model((7, 3, 5))])
def test_draw_vectors_equals_the_original_key_splitting(model):
    seeds = [0, 7, 11]
    with jax.enable_x64(True):
        targets, init = draw_vectors(model, seeds, init_scale=1.0, prng="legacy")
    with jax.threefry_partitionable(False):
        for i, s in enumerate(seeds):
            t_ref, i_ref = _draw_one_seed(np.uint32(s), model, model.integer_dims())
            for v in model.vectors:
                np.testing.assert_array_equal(
                    np.asarray(targets[v][i], dtype=np.float32), np.asarray(t_ref[v])
                )
                np.testing.assert_array_equal(np.asarray(init[v][i], dtype=np.float32), np.asarray(i_ref[v]))


def test_global_jax_configuration_is_untouched():
    before = (jax.config.jax_enable_x64, jax.config.jax_threefry_partitionable)
    with jax.enable_x64(True):
        draw_vectors(coopetition_model(), [7])
    draw_vectors(coopetition_model(), [7], prng="partitionable")
    assert (jax.config.jax_enable_x64, jax.config.jax_threefry_partitionable) == before


def test_partitionable_mode_draws_other_numbers():
    with jax.enable_x64(True):
        legacy, _ = draw_vectors(coopetition_model(), [7], prng="legacy")
        modern, _ = draw_vectors(coopetition_model(), [7], prng="partitionable")
    assert not np.allclose(legacy["a"], modern["a"])
