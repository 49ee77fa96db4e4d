"""From a :class:`~transformer.config.TrainConfig` to the objects of a run: exemplars, model, optimiser.

* :func:`load_data` — exemplars of the training then holdout classes (a file, or synthetic);
* :func:`init_model` — the model, initialised from ``init_seed`` (one jitted build per structure);
* :func:`learning_rate_schedule`, :func:`make_optimizer` — Adam (AdamW with ``weight_decay``), the
  schedule from optax's pieces, and optionally frozen parameters through ``optax.multi_transform``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PyTree

from .config import TrainConfig, structural
from .data import load_exemplars, synthetic_exemplars
from .model import Transformer


def load_data(cfg: TrainConfig) -> Float[np.ndarray, "classes exemplars dim"]:
    """Exemplars for training classes then holdout classes (file or synthetic)."""
    n_total = cfg.n_classes + cfg.n_holdout_classes
    if cfg.data_path is None:
        return synthetic_exemplars(
            n_total, cfg.n_exemplars, cfg.synth_dim, cfg.synth_noise, cfg.synth_seed,
            cfg.synth_offset, cfg.synth_variants, cfg.synth_variant_scale,
        )
    return load_exemplars(cfg.data_path, cfg.data_dataset, n_total, cfg.n_exemplars)


def feature_dim_of(cfg: TrainConfig) -> int:
    """Dimension of the run's exemplar features (reads the data file when there is one)."""
    return cfg.synth_dim if cfg.data_path is None else load_data(cfg).shape[-1]


def init_model(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model of ``cfg`` initialised from ``init_seed`` (built under one jit: fast start-up)."""
    return _model_builder(structural(cfg), feature_dim)(jax.random.PRNGKey(cfg.init_seed))


@functools.lru_cache(maxsize=16)
def _model_builder(cfg: TrainConfig, feature_dim: int) -> Callable:
    return eqx.filter_jit(
        lambda key: Transformer(
            feature_dim,
            cfg.n_classes,
            cfg.seq_len,
            depth=cfg.depth,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            mlp=cfg.mlp,
            positional=cfg.positional,
            tie_labels=cfg.tie_labels,
            unembed_init=cfg.unembed_init,
            label_init_scale=cfg.label_init_scale,
            key=key,
        )
    )


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """``lr`` until the first ``lr_steps`` boundary, then each pair's value from its step on
    (``optax.join_schedules`` of constants), times a linear warm-up ``min(1, (t + 1) / W)`` over
    ``W = warmup_steps`` steps when requested.

    The warm-up multiplies whichever piece is active, so it is written here: optax has no product
    of schedules (``linear_schedule`` joined in front would restart the count and replace the first
    piece instead of scaling it).
    """
    if cfg.lr_schedule == "inverse_sqrt":
        return inverse_sqrt_schedule(cfg.lr, cfg.warmup_steps)
    schedule = optax.constant_schedule(cfg.lr)
    if cfg.lr_steps:
        schedule = optax.join_schedules(
            [schedule] + [optax.constant_schedule(v) for _, v in cfg.lr_steps],
            [s for s, _ in cfg.lr_steps],
        )
    if not cfg.warmup_steps:
        return schedule

    def warmed_up(step):
        return schedule(step) * jnp.minimum(1.0, (step + 1) / cfg.warmup_steps)

    return warmed_up


def inverse_sqrt_schedule(lr: float, warmup: int) -> optax.Schedule:
    """``η_t = lr · min((t + 1) / W, sqrt(W / (t + 1)))``: linear warm-up to ``lr`` at step ``W − 1``,
    then inverse-square-root decay (thesis ch. 3). Written here: optax has no ``1/sqrt(t)`` schedule
    (its ``polynomial_schedule`` decays to a fixed end value over a fixed number of steps)."""

    def schedule(step):
        t = (step + 1) / warmup
        return lr * jnp.minimum(t, jax.lax.rsqrt(jnp.maximum(t, 1.0)))

    return schedule


def l2_penalty(params: PyTree, groups: str) -> Float[Array, ""]:
    """The study's loss penalty before its factor λ: ``Σ_a ‖a‖`` (Frobenius norm, not squared, as the
    original code's ``compute_loss``) over the arrays ``a`` of ``groups``: ``all`` (every array, as
    the original code), ``no_norm`` (every array but the LayerNorm scales and offsets, as the thesis)
    or ``matrices`` (arrays of two or more dimensions). The norm of an all-zero array (a bias at
    initialisation) counts 0 with gradient 0 (the original's ``where`` guard; a plain norm's gradient
    is 0/0 there)."""

    def norm(path, a):
        name = jax.tree_util.keystr(path)
        if groups == "no_norm" and ".ln_" in name:
            return jnp.zeros((), a.dtype)
        if groups == "matrices" and a.ndim < 2:
            return jnp.zeros((), a.dtype)
        sq = jnp.sum(a * a)
        positive = sq > 0
        return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)

    norms = jax.tree_util.tree_map_with_path(norm, eqx.filter(params, eqx.is_array))
    return sum(jax.tree_util.tree_leaves(norms), jnp.zeros(()))


def make_optimizer(
    cfg: TrainConfig, frozen: PyTree[bool] | None = None
) -> optax.GradientTransformation:
    """Adam(β1, β2) (AdamW when ``weight_decay > 0``) with :func:`learning_rate_schedule`.

    ``frozen`` (a pytree of bools over the model's arrays, ``True`` = frozen, see
    :func:`transformer.checkpoint.frozen_mask`): frozen parameters get zero updates through
    ``optax.multi_transform`` with ``optax.set_to_zero``, which also keeps no Adam moments for them.
    """
    schedule = learning_rate_schedule(cfg)
    if cfg.weight_decay:
        adam = optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=cfg.weight_decay)
    else:
        adam = optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2)
    if frozen is None:
        return adam
    labels = jax.tree_util.tree_map(lambda f: "frozen" if f else "trained", frozen)
    return optax.multi_transform({"trained": adam, "frozen": optax.set_to_zero()}, labels)


__all__ = [
    "feature_dim_of",
    "inverse_sqrt_schedule",
    "l2_penalty",
    "init_model",
    "learning_rate_schedule",
    "load_data",
    "make_optimizer",
]
