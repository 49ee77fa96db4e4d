"""Evaluators (fixed sequence sets), per-sequence metrics and attention probes.

Evaluators (science.md §3, Fig. 5.1a), named as in the original study's logs:

==================  ========================================================================
``train_eval``      the training distribution
``icl``             ICL: bursty, context labels re-assigned to {0, 1} at random per sequence
                    (holdout classes when ``n_holdout_classes > 0``)
``iwl_copy_avail``  CIWL: query class absent from context, its trained label present (on an
                    exemplar of another class)
``flip_icl``        Flip: the two context classes carry each other's trained labels; target =
                    the in-context label, so 1 = pure ICL and 0 = CIWL
``pure_iwl``        IWL: query class absent, all context classes distinct
==================  ========================================================================

Each set has ``n_eval`` sequences drawn once from ``eval_seed`` (folded with the evaluator's
index in :data:`EVALUATORS`, so a set does not depend on which others are enabled).

Per-sequence metrics, for logits :math:`z` over all labels and target :math:`y`:
``loss`` :math:`= -\\log \\mathrm{softmax}(z)_y`; ``acc`` :math:`= [\\arg\\max z = y]`;
``in_context_acc`` :math:`= [\\arg\\max_{l \\in \\text{context labels}} z_l = y]` (chance 1/2 with
two context labels; 0 when ``y`` is not in the context); ``prob`` :math:`= \\mathrm{softmax}(z)_y`.

Probes (on ``n_probe`` bursty training sequences): *induction strength* of a head — attention from
the query token to the label tokens whose exemplar has the query's class, minus attention to the
other label tokens (means over tokens; for 2 context pairs exactly "correct minus incorrect") —
and *previous-token attention* — attention from each label token to the exemplar just before it,
averaged over label tokens. Both are logged for every layer and head.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .config import EVALUATORS, TrainConfig, structural
from .data import Sequences, SequenceSpec, sample_sequences
from .model import Transformer, batched_logits, forward_with_activations, query_loss


def evaluator_spec(cfg: TrainConfig, name: str) -> SequenceSpec:
    """The sequence distribution of evaluator ``name`` (see :data:`~transformer.config.EVALUATORS`).

    ``icl`` re-assigns one label per context role, on the holdout classes when
    ``n_holdout_classes > 0``.
    """
    kind = EVALUATORS[name]
    if kind == "train":
        return cfg.sequence_spec()
    spec = cfg.sequence_spec(kind)
    if kind == "icl_only":
        spec = dataclasses.replace(spec, label_set=spec.n_roles)
        if cfg.n_holdout_classes > 0:
            spec = dataclasses.replace(
                spec, n_classes=cfg.n_holdout_classes, class_offset=cfg.n_classes
            )
    return spec


def evaluator_sets(cfg: TrainConfig) -> dict[str, Sequences]:
    """The fixed evaluation sets, ``{name: Sequences}``, for ``cfg.evaluators``."""
    return _sets_sampler(structural(cfg))(jax.random.PRNGKey(cfg.eval_seed))


@functools.lru_cache(maxsize=16)
def _sets_sampler(cfg: TrainConfig):
    specs = {}
    for i, name in enumerate(EVALUATORS):
        if name in cfg.evaluators:
            specs[name] = (i, evaluator_spec(cfg, name))
            specs[name][1].validate()

    @jax.jit
    def draw(key):  # one compilation for all sets
        return {
            name: sample_sequences(jax.random.fold_in(key, i), spec, cfg.n_eval)
            for name, (i, spec) in specs.items()
        }

    return draw


def probe_set(cfg: TrainConfig) -> Sequences:
    """Bursty training-class sequences for the attention probes."""
    spec = cfg.sequence_spec("bursty")
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.eval_seed), len(EVALUATORS))
    return jax.jit(sample_sequences, static_argnums=(1, 2))(key, spec, cfg.n_probe)


def sequence_metrics(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    seqs: Sequences,
    chunk: int = 500,
) -> dict[str, Float[Array, " n"]]:
    """``loss``, ``acc``, ``in_context_acc``, ``prob`` per sequence (see module docstring)."""

    def one(s: Sequences):
        feats = exemplars[s.classes, s.exemplars]
        # the training path's logits (blocks on the whole chunk once lax.map batches this)
        logits = batched_logits(model, feats[None], s.labels[None])[0]
        loss = query_loss(logits[None], s.target[None])[0]
        ctx_logits = logits[s.labels]
        ic_pred = s.labels[jnp.argmax(ctx_logits)]
        return {
            "loss": loss,
            "acc": (jnp.argmax(logits) == s.target).astype(jnp.float32),
            "in_context_acc": (ic_pred == s.target).astype(jnp.float32),
            "prob": jnp.exp(-loss),
        }

    return jax.lax.map(one, seqs, batch_size=chunk)


def attention_probes(
    model: Transformer, exemplars: Float[Array, "classes exemplars dim"], seqs: Sequences
) -> dict[str, Float[Array, "depth heads"]]:
    """``induction_strength`` and ``prev_token_attn`` per layer and head (module docstring)."""

    def one(s: Sequences):
        feats = exemplars[s.classes, s.exemplars]
        _, acts = forward_with_activations(model, feats, s.labels)
        attn = acts["attn"]  # (depth, heads, T, T)
        k = s.labels.shape[0]
        label_pos = 2 * jnp.arange(k) + 1
        correct = (s.classes[:k] == s.classes[k]).astype(jnp.float32)
        wrong = 1.0 - correct
        to_labels = attn[:, :, -1, label_pos]  # (depth, heads, k)
        ind = (to_labels * correct).sum(-1) / jnp.maximum(correct.sum(), 1.0) - (
            to_labels * wrong
        ).sum(-1) / jnp.maximum(wrong.sum(), 1.0)
        prev = attn[:, :, label_pos, label_pos - 1].mean(-1)
        return ind, prev

    ind, prev = jax.vmap(one)(seqs)
    return {"induction_strength": ind.mean(0), "prev_token_attn": prev.mean(0)}


@jax.jit
def evaluate_all(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    sets: dict[str, Sequences],
    probes: Sequences,
) -> tuple[dict[str, dict[str, Float[Array, " n"]]], dict[str, Float[Array, "depth heads"]]]:
    """Metrics of every evaluator set and the attention probes, in one compiled call."""
    return {name: sequence_metrics(model, exemplars, s) for name, s in sets.items()}, (
        attention_probes(model, exemplars, probes)
    )


def summary(metrics: dict[str, dict[str, Array]]) -> dict[str, float]:
    """Headline numbers: in-context accuracies of ICL / Flip / CIWL and IWL accuracy."""
    out = {}
    for name, short, metric in (
        ("icl", "icl", "in_context_acc"),
        ("flip_icl", "flip", "in_context_acc"),
        ("iwl_copy_avail", "ciwl", "in_context_acc"),
        ("pure_iwl", "iwl", "acc"),
        ("train_eval", "train", "acc"),
    ):
        if name in metrics:
            out[short] = float(jnp.mean(metrics[name][metric]))
    return out


__all__ = [
    "attention_probes",
    "evaluate_all",
    "evaluator_sets",
    "evaluator_spec",
    "probe_set",
    "sequence_metrics",
    "summary",
]
