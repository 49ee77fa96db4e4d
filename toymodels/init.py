"""Targets and initial values of the learnable vectors.

Paper-compatible seeding (science.md §2): for each vector in declaration order (a, b, c, d) split the
running key into (key, sub), split sub into (k_target, k_init), then draw
``target = normal(k_target, (dim,))`` and ``init = σ · normal(k_init, (dim,))`` in float32 — under the
legacy threefry key derivation. The draws are then cast to the working precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from . import prng as legacy
from .errors import require
from .losses import ToyModel

PRNG_MODES = ("legacy", "partitionable")

Vectors = dict[str, Float[Array, "*batch n"]]


def _draw_one_seed(seed: Int[Array, ""], model: ToyModel, dims: Mapping[str, int]) -> tuple[Vectors, Vectors]:
    key = jax.random.PRNGKey(seed)
    targets, init = {}, {}
    for name in model.vectors:
        key, sub = jax.random.split(key)
        k_target, k_init = jax.random.split(sub)
        targets[name] = jax.random.normal(k_target, (dims[name],), dtype=jnp.float32)
        init[name] = jax.random.normal(k_init, (dims[name],), dtype=jnp.float32)
    return targets, init


def _draw_legacy(seeds: Sequence[int], model: ToyModel, dims: Mapping[str, int]) -> tuple[dict, dict]:
    """:func:`_draw_one_seed` under the legacy threefry mode, via :mod:`toymodels.prng` (no XLA
    threefry compilation; bit-identical to ``jax.random``)."""
    requests = []
    for seed in seeds:
        key = legacy.prng_key(int(seed))
        for name in model.vectors:
            key, sub = legacy.split(key)
            k_target, k_init = legacy.split(sub)
            requests += [(k_target, dims[name]), (k_init, dims[name])]
    draws = iter(legacy.normal_float32(requests))
    per_seed = [{name: (next(draws), next(draws)) for name in model.vectors} for _ in seeds]
    targets = {name: np.stack([d[name][0] for d in per_seed]) for name in model.vectors}
    init = {name: np.stack([d[name][1] for d in per_seed]) for name in model.vectors}
    return targets, init


def draw_vectors(
    model: ToyModel,
    seeds: Sequence[int],
    init_scale: float = 1.0,
    prng: str = "legacy",
    dtype=np.float64,
) -> tuple[Vectors, Vectors]:
    """Targets and initial vectors for each seed, stacked on a leading seed axis.

    Args:
        model: the model (its dimensions must be integers).
        seeds: non-negative integer seeds.
        init_scale: σ, the initial vectors are σ·N(0, 1).
        prng: ``"legacy"`` (paper-compatible, default) or ``"partitionable"`` (JAX's newer default).
        dtype: the working dtype the float32 draws are cast to.

    Returns:
        ``(targets, init)``, dicts of arrays of shape (n_seeds, dim).
    """
    dims = model.integer_dims()
    require(prng in PRNG_MODES, "prng", f"must be one of {PRNG_MODES} (got {prng!r})")
    require(
        np.isfinite(init_scale) and init_scale >= 0,
        "init_scale",
        f"must be a finite number >= 0 (got {init_scale})",
    )
    require(len(seeds) >= 1, "seeds", "at least one seed is needed")
    for s in seeds:
        require(int(s) == s and 0 <= s < 2**31, "seeds", f"seeds must be integers in [0, 2^31) (got {s})")
    if prng == "legacy":
        targets, init = _draw_legacy(seeds, model, dims)
    else:
        with jax.threefry_partitionable(True):
            targets, init = jax.jit(jax.vmap(lambda s: _draw_one_seed(s, model, dims)))(
                np.asarray(seeds, dtype=np.uint32)
            )
    # NumPy arrays: casting and clamping happen inside the compiled dynamics
    np_dtype = np.dtype(dtype)
    targets = {k: np.asarray(v).astype(np_dtype) for k, v in targets.items()}
    init = {k: np.asarray(v).astype(np_dtype) * np_dtype.type(init_scale) for k, v in init.items()}
    return targets, init


def vectors_from_arrays(
    model: ToyModel, vectors: Mapping[str, np.ndarray], what: str, dtype=jnp.float64
) -> Vectors:
    """Explicit vectors (one set, shape (dim,), or a batch, shape (n_runs, dim)) checked against ``model``."""
    dims = model.integer_dims()
    out = {}
    for name in model.vectors:
        require(name in vectors, what, f"missing vector {name!r}")
        v = np.asarray(vectors[name], dtype=np.float64)
        if v.ndim == 1:
            v = v[None]
        require(
            v.ndim == 2 and v.shape[-1] == dims[name],
            what,
            f"vector {name!r} must have length {dims[name]} (got shape {v.shape})",
        )
        require(bool(np.all(np.isfinite(v))), what, f"vector {name!r} has non-finite entries")
        out[name] = jnp.asarray(v, dtype=dtype)
    for name in vectors:
        require(name in model.vectors, what, f"unknown vector {name!r} (vectors: {', '.join(model.vectors)})")
    batch = {v.shape[0] for v in out.values()}
    require(len(batch) == 1, what, f"all vectors need the same number of runs (got {sorted(batch)})")
    return out
