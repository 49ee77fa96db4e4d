"""From a :class:`~transformer.config.TrainConfig` to the objects of a run: exemplars, model, optimiser.

* :func:`load_data` — exemplars of the training then holdout classes (a file, or synthetic);
* :func:`memory_estimate`, :func:`check_memory` — what a run needs, refused up front if too much;
* :func:`init_model` — the model, initialised from ``init_seed`` (one jitted build per structure);
* :func:`learning_rate_schedule`, :func:`make_optimizer` — Adam (AdamW with ``weight_decay``), the
  schedule from optax's pieces, and optionally frozen parameters through ``optax.multi_transform``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PyTree

from toymodels._internal.cli_tools import require_memory

from .config import TrainConfig, structural
from .data import exemplar_file_shape, load_exemplars, synthetic_bytes, synthetic_exemplars
from .model import Transformer
from .schedule import parse_eval_schedule


def load_data(cfg: TrainConfig) -> Float[np.ndarray, "classes exemplars dim"]:
    """Exemplars for training classes then holdout classes (file or synthetic), each class's
    ``n_exemplars`` training exemplars then its ``n_holdout_exemplars`` held-out ones; refused up
    front (:class:`ConfigError`) if they would not fit in this machine's memory."""
    n_total = cfg.n_classes + cfg.n_holdout_classes
    n_ex = cfg.n_exemplars + cfg.n_holdout_exemplars
    if cfg.data_path is None:
        need = synthetic_bytes(n_total, n_ex, cfg.synth_dim)
        require_memory(_blame(cfg, ("n_classes", "n_holdout_classes", "n_exemplars", "synth_dim")), need)
        return synthetic_exemplars(
            n_total, n_ex, cfg.synth_dim, cfg.synth_noise, cfg.synth_seed,
            cfg.synth_offset, cfg.synth_variants, cfg.synth_variant_scale,
            cfg.synth_shared_scale, cfg.synth_rectify,
        )
    return load_exemplars(cfg.data_path, cfg.data_dataset, n_total, n_ex)


def feature_dim_of(cfg: TrainConfig) -> int:
    """Dimension of the run's exemplar features (from the data file's header when there is one)."""
    if cfg.data_path is None:
        return cfg.synth_dim
    return exemplar_file_shape(cfg.data_path, cfg.data_dataset)[-1]


def memory_estimate(
    cfg: TrainConfig, feature_dim: int | None = None
) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Rough peak bytes of a run of ``cfg``, by part: ``{part: (bytes, fields that size it)}``.

    ``exemplars`` (their generation and the device copy), ``parameters`` (model, gradient, Adam's
    two moments, update), ``training step`` (a batch's activations, attention patterns and logits,
    with gradients), ``evaluation`` (the evaluator and probe sets, their metrics and a chunk's forward
    pass) and ``schedule`` (the evaluation steps). An order of magnitude, enough to refuse a run that
    cannot fit before anything is allocated (:func:`check_memory`); not a prediction of the peak.
    """
    dim = feature_dim_of(cfg) if feature_dim is None else feature_dim
    t, d, depth, heads, labels = cfg.seq_len, cfg.d_model, cfg.depth, cfg.n_heads, cfg.n_labels
    words = 4 * cfg.context_pairs + 3 + cfg.icl_label_set  # random words drawn per sequence
    block = 4 * d * d + (8 * d * d if cfg.mlp else 0) + 10 * d
    activations = t * (dim + 16 * d * depth) + 3 * depth * heads * t * t + 3 * labels + words
    n_sets = len(cfg.evaluators) * cfg.n_eval + 2 * cfg.n_probe
    n_log = parse_eval_schedule(cfg.eval_schedule)
    n_evals = (cfg.n_steps // cfg.eval_every if n_log is None else min(n_log, cfg.n_steps)) + 2
    data = ("n_classes", "n_holdout_classes", "n_exemplars", "synth_dim")[: 4 if cfg.data_path is None else 3]
    model = ("n_classes", "d_model", "depth", "n_heads", "context_pairs", "icl_label_set") + data[3:]
    return {
        "exemplars": (synthetic_bytes(cfg.n_classes + cfg.n_holdout_classes,
                                      cfg.n_exemplars + cfg.n_holdout_exemplars, dim) * 4 // 3,
                      data),
        "parameters": (4 * 5 * (dim * d + 2 * labels * d + t * d + depth * block), model),
        "training step": (4 * 2 * cfg.batch_size * activations, ("batch_size",) + model),
        "evaluation": (4 * (2 * n_sets * (3 * t + words + 8) + min(cfg.n_eval, 500) * activations
                            + 2 * cfg.n_probe * depth * heads * t * t), ("n_eval", "n_probe") + model),
        "schedule": (100 * n_evals, ("eval_every" if n_log is None else "eval_schedule",)),
    }


def check_memory(cfg: TrainConfig, feature_dim: int | None = None, available: int | None = None) -> None:
    """:class:`ConfigError` (``needs ~X GiB, this machine has Y GiB``) if :func:`memory_estimate`'s
    total exceeds ``available`` bytes (default: this machine's physical memory), naming the field most
    out of the ordinary (largest value relative to its default) of the largest part."""
    parts = memory_estimate(cfg, feature_dim)
    _, fields = max(parts.values())
    require_memory(_blame(cfg, fields), sum(b for b, _ in parts.values()), available)


def _blame(cfg: TrainConfig, fields: tuple[str, ...]) -> str:
    """The field of ``fields`` furthest from its default (``eval_every``: below; others: above)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    def ratio(name: str) -> float:
        value, default = getattr(cfg, name), defaults[name]
        if not isinstance(value, int):
            return 0.0
        return max(default, 1) / max(value, 1) if name == "eval_every" else value / max(default, 1)

    return max(fields, key=ratio)


def init_model(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model of ``cfg`` initialised from ``init_seed`` (built under one jit: fast start-up)."""
    return _model_builder(structural(cfg), feature_dim)(jax.random.PRNGKey(cfg.init_seed))


@functools.lru_cache(maxsize=16)
def _model_builder(cfg: TrainConfig, feature_dim: int) -> Callable:
    return eqx.filter_jit(
        lambda key: Transformer(
            feature_dim,
            cfg.n_labels,
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
    "check_memory",
    "feature_dim_of",
    "inverse_sqrt_schedule",
    "l2_penalty",
    "init_model",
    "learning_rate_schedule",
    "load_data",
    "make_optimizer",
    "memory_estimate",
]
