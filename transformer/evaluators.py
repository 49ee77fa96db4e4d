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
``heldout_pairs``   induction-head study (``relabel`` sequences, thesis ch. 4): the training
                    classes and exemplars labelled with the held-out label pairs
``heldout_exemplars``  the same with the training label pairs, on the held-out exemplars
                    ``[n_exemplars, n_exemplars + n_holdout_exemplars)`` of the training classes
``heldout_classes``  the same on the ``n_holdout_classes`` held-out classes
==================  ========================================================================

Each set has ``n_eval`` sequences drawn once from ``eval_seed`` folded with the evaluator's key
index (:func:`set_key_index`), so a set does not depend on which others are enabled.

Per-sequence metrics, for logits :math:`z` over all labels and target :math:`y`:
``loss`` :math:`= -\\log \\mathrm{softmax}(z)_y`; ``acc`` :math:`= [\\arg\\max z = y]`;
``in_context_acc`` :math:`= [\\arg\\max_{l \\in \\text{context labels}} z_l = y]` (chance 1/2 with
two context labels; 0 when ``y`` is not in the context); ``prob`` :math:`= \\mathrm{softmax}(z)_y`.

Probes (on ``n_probe`` sequences of training classes, for every layer and head; for a relabelled
run — labels re-assigned per sequence — both probe sets are relabel sequences with training pairs,
because its model has no label per class; the "Flip" set is then an independent second sample):
``induction_strength`` — attention from the query token to the label tokens whose exemplar has the
query's class, minus attention to the other label tokens (means over tokens; with 2 context pairs
exactly "correct minus incorrect"), on bursty sequences; ``induction_strength_flip`` — the same on
Flip sequences, where the label of the query's own class sits after the *other* exemplar, so ICL
heads score positive and heads that fetch the query's trained label (CIWL) negative (paper
Fig. 3a/5.6a); ``prev_token_attn`` — attention from each label token to the exemplar just before
it; ``self_attn`` — attention from each label token to itself (Fig. 5.7: Layer 1 switches from
previous-token to self attention), both averaged over label tokens of bursty sequences.

A run trained with interventions (``TrainConfig.opto``) is evaluated and probed with them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .config import EVALUATORS, TrainConfig, structural
from .data import Sequences, SequenceSpec, sample_sequences
from .model import Transformer, query_loss
from .opto.run import run_with_edits
from .opto.spec import Edit
from .opto.targets import TokenContext


def evaluator_spec(cfg: TrainConfig, name: str) -> SequenceSpec:
    """The sequence distribution of evaluator ``name`` (see :data:`~transformer.config.EVALUATORS`).

    ``icl`` re-assigns one label per context role, on the holdout classes when
    ``n_holdout_classes > 0``. The ``heldout_*`` sets are ``relabel`` sequences with the held-out
    label pairs, the held-out exemplars (offset ``n_exemplars``) or the held-out classes (offset
    ``n_classes``), everything else as in training.
    """
    kind = EVALUATORS[name]
    if kind == "train":
        return cfg.sequence_spec()
    spec = cfg.sequence_spec(kind)
    if name == "heldout_pairs":
        return dataclasses.replace(spec, label_pairs=cfg.label_pairs("heldout"))
    if name == "heldout_exemplars":
        return dataclasses.replace(spec, n_exemplars=cfg.n_holdout_exemplars, exemplar_offset=cfg.n_exemplars)
    if name == "heldout_classes":
        return dataclasses.replace(spec, n_classes=cfg.n_holdout_classes, class_offset=cfg.n_classes)
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
    for name in EVALUATORS:
        if name in cfg.evaluators:
            specs[name] = (set_key_index(name), evaluator_spec(cfg, name))
            specs[name][1].validate()

    @jax.jit
    def draw(key):  # one compilation for all sets
        return {
            name: sample_sequences(jax.random.fold_in(key, i), spec, cfg.n_eval)
            for name, (i, spec) in specs.items()
        }

    return draw


PROBE_SETS: dict[str, str] = {"bursty": "bursty", "flip": "flip"}
"""Probe set name → sequence kind (training classes, ``n_probe`` sequences each; ``relabel`` for
both in a relabelled run)."""
_FIRST_EVALUATORS = 5
"""The evaluators that existed before the probe sets' keys were fixed: evaluator ``i`` < 5 of
:data:`EVALUATORS` draws from ``fold_in(key, i)``, probe set ``j`` from ``fold_in(key, 5 + j)``
and later evaluators from ``fold_in(key, i + len(PROBE_SETS))``, so adding an evaluator changes
no earlier set."""


def set_key_index(name: str) -> int:
    """The number folded into the ``eval_seed`` key to draw evaluator ``name``'s set."""
    i = tuple(EVALUATORS).index(name)
    return i if i < _FIRST_EVALUATORS else i + len(PROBE_SETS)


def probe_sets(cfg: TrainConfig) -> dict[str, Sequences]:
    """The fixed probe sets: bursty training sequences and Flip sequences (module docstring)."""
    sample = jax.jit(sample_sequences, static_argnums=(1, 2))
    out = {}
    for i, (name, kind) in enumerate(PROBE_SETS.items()):
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.eval_seed), _FIRST_EVALUATORS + i)
        out[name] = sample(key, cfg.sequence_spec("relabel" if cfg.relabelled else kind), cfg.n_probe)
    return out


def _context(exemplars, s: Sequences) -> tuple[Float[Array, "*batch k1 dim"], TokenContext]:
    feats = exemplars[s.classes, s.exemplars]
    return feats, TokenContext.of(feats, s)


def _chunk_size(n: int, chunk: int) -> int:
    """The largest divisor of ``n`` that is at most ``chunk`` (sets are split into equal chunks,
    so a mean-ablation averages over whole chunks of real sequences)."""
    return max(d for d in range(1, min(n, chunk) + 1) if n % d == 0)


def sequence_metrics(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    seqs: Sequences,
    edits: tuple[Edit, ...] = (),
    chunk: int = 500,
) -> dict[str, Float[Array, " n"]]:
    """``loss``, ``acc``, ``in_context_acc``, ``prob`` per sequence (see module docstring), with
    ``edits`` applied (the batch of a ``mean`` edit is a chunk of at most ``chunk`` sequences)."""
    n = seqs.target.shape[0]
    size = _chunk_size(n, chunk)

    def one_chunk(s: Sequences):
        feats, ctx = _context(exemplars, s)
        logits, _ = run_with_edits(model, feats, ctx, edits)
        loss = query_loss(logits, s.target)
        ctx_logits = jnp.take_along_axis(logits, s.labels, axis=-1)
        ic_pred = jnp.take_along_axis(s.labels, jnp.argmax(ctx_logits, -1)[:, None], axis=-1)[:, 0]
        return {
            "loss": loss,
            "acc": (jnp.argmax(logits, -1) == s.target).astype(jnp.float32),
            "in_context_acc": (ic_pred == s.target).astype(jnp.float32),
            "prob": jnp.exp(-loss),
        }

    chunks = jax.tree_util.tree_map(lambda a: a.reshape(n // size, size, *a.shape[1:]), seqs)
    out = jax.lax.map(one_chunk, chunks)
    return jax.tree_util.tree_map(lambda a: a.reshape(n), out)


def attention_probes(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    probes: dict[str, Sequences],
    edits: tuple[Edit, ...] = (),
) -> dict[str, Float[Array, "depth heads"]]:
    """The attention probes of every layer and head (module docstring), with ``edits`` applied."""
    depth = len(model.blocks)
    names = [f"blocks.{i}.attn.pattern" for i in range(depth)]

    def patterns(s: Sequences) -> Float[Array, "batch depth heads T T"]:
        feats, ctx = _context(exemplars, s)
        _, cache = run_with_edits(model, feats, ctx, edits, cache=names)
        return jnp.stack([cache[n] for n in names], axis=1)

    def induction(s: Sequences, attn) -> Float[Array, "depth heads"]:
        k = s.labels.shape[-1]
        label_pos = 2 * jnp.arange(k) + 1
        correct = (s.classes[:, :k] == s.classes[:, k:]).astype(jnp.float32)[:, None, None, :]
        wrong = 1.0 - correct
        to_labels = attn[..., -1, label_pos]  # (batch, depth, heads, k)
        ind = (to_labels * correct).sum(-1) / jnp.maximum(correct.sum(-1), 1.0) - (
            to_labels * wrong
        ).sum(-1) / jnp.maximum(wrong.sum(-1), 1.0)
        return ind.mean(0)

    bursty = probes["bursty"]
    attn = patterns(bursty)
    label_pos = 2 * jnp.arange(bursty.labels.shape[-1]) + 1
    out = {
        "induction_strength": induction(bursty, attn),
        "prev_token_attn": attn[..., label_pos, label_pos - 1].mean(-1).mean(0),
        "self_attn": attn[..., label_pos, label_pos].mean(-1).mean(0),
    }
    if "flip" in probes:
        out["induction_strength_flip"] = induction(probes["flip"], patterns(probes["flip"]))
    return out


@functools.partial(jax.jit, static_argnames="edits")
def evaluate_all(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    sets: dict[str, Sequences],
    probes: dict[str, Sequences],
    edits: tuple[Edit, ...] = (),
) -> tuple[dict[str, dict[str, Float[Array, " n"]]], dict[str, Float[Array, "depth heads"]]]:
    """Metrics of every evaluator set and the attention probes, in one compiled call."""
    return {name: sequence_metrics(model, exemplars, s, edits) for name, s in sets.items()}, (
        attention_probes(model, exemplars, probes, edits)
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
        ("heldout_pairs", "pairs", "acc"),
        ("heldout_exemplars", "exemplars", "acc"),
        ("heldout_classes", "classes", "acc"),
    ):
        if name in metrics:
            out[short] = float(jnp.mean(metrics[name][metric]))
    return out


__all__ = [
    "attention_probes",
    "evaluate_all",
    "evaluator_sets",
    "evaluator_spec",
    "PROBE_SETS",
    "probe_sets",
    "sequence_metrics",
    "set_key_index",
    "summary",
]
