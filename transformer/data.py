"""Sequence samplers (jit-able) over exemplar data; the exemplar files and the synthetic generator are
:mod:`transformer.exemplars` (re-exported here).

A *sequence* is ``k`` context (exemplar, label) pairs followed by a query exemplar. It is stored
as indices, not features, so sampling costs :math:`O(B\\,k)` regardless of the class count:

- ``classes`` (B, k+1): class of each context exemplar, then of the query;
- ``exemplars`` (B, k+1): exemplar index within its class;
- ``labels`` (B, k): the label attached to each context exemplar;
- ``target`` (B,): the label the query should be given.

Context *roles*: role 0 is the query's class (``burstiness`` copies), role 1 a distractor class
(``burstiness`` copies), roles 2.. are filler classes (one copy each), so a context of ``k`` pairs
has ``R = 2 + k - 2 b`` roles. The roles' positions are shuffled per sequence.

Sequence kinds (``SequenceKind``), matching science.md §3:

- ``bursty``: training sequences, labels fixed per class (label of class ``c`` is ``c``);
- ``nonbursty``: ``k`` classes drawn i.i.d. from the class distribution (query may or may not
  appear);
- ``icl_only``: bursty, but the ``R`` roles get distinct labels drawn per sequence from
  ``{0..label_set-1}``; with ``label_set = 2`` this is the ICL evaluator;
- ``iwl``: query class absent, all ``k`` context classes distinct;
- ``ciwl``: query class absent (role 0 is another class) but role 0 carries the query's trained
  label;
- ``flip``: roles 0 and 1 carry each other's trained labels; the target is the *in-context*
  label (role 1's class label), so accuracy 1 = pure ICL and 0 = CIWL;
- ``relabel``: the induction-head study's sequences (thesis ch. 4; the original code's
  ``fs_relabel``): the two roles (``k = 2b``: the query's class and one distractor, no fillers)
  get an *ordered label pair* ``(a, b)`` drawn uniformly from ``label_pairs`` — role 0 (the
  query's class) is labelled ``a``, role 1 ``b`` — and the target is ``a``. Labels say nothing
  about classes, so only the in-context match can lower the loss below log 2.
  :func:`label_pair_split` splits the pairs of ``L`` labels into training and held-out ones.

Exemplars of a class are drawn from ``[exemplar_offset, exemplar_offset + n_exemplars)`` (the
held-out exemplars of a file lie after the training ones).

Mixtures of these distributions (the original study's mixed samplers) are
:class:`transformer.mixture.MixtureSpec`; :func:`sample_sequences` accepts them too.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .exemplars import (  # noqa: F401 - re-exported: the data API predates the split
    DEFAULT_DATASET,
    DataError,
    check_synthetic,
    exemplar_file_shape,
    load_exemplars,
    synthetic_bytes,
    synthetic_exemplars,
    write_exemplar_file,
)

SequenceKind = Literal["bursty", "nonbursty", "icl_only", "iwl", "ciwl", "flip", "relabel"]
SEQUENCE_KINDS: tuple[str, ...] = ("bursty", "nonbursty", "icl_only", "iwl", "ciwl", "flip", "relabel")


class Sequences(NamedTuple):
    """A batch of sequences as indices (see module docstring)."""

    classes: Int[Array, "batch k1"]
    exemplars: Int[Array, "batch k1"]
    labels: Int[Array, "batch k"]
    target: Int[Array, " batch"]


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    """Static description of a sequence distribution.

    ``n_classes`` classes ``[class_offset, class_offset + n_classes)`` are sampled with
    probabilities :math:`p_c \\propto (c+1)^{-\\alpha}` (``zipf_alpha``; 0 = uniform), exemplars
    uniformly from ``[exemplar_offset, exemplar_offset + n_exemplars)``. ``label_pairs``: the
    ordered label pairs of ``relabel`` sequences (labels in ``[0, label_set)``).
    """

    kind: str = "bursty"
    n_classes: int = 1600
    class_offset: int = 0
    n_exemplars: int = 20
    context_pairs: int = 2
    burstiness: int = 1
    p_bursty: float = 1.0
    zipf_alpha: float = 0.0
    label_set: int = 2
    matched: bool = False
    exemplar_offset: int = 0
    label_pairs: tuple[tuple[int, int], ...] = ()  # ordered (role 0, role 1) labels of ``relabel``

    @property
    def n_roles(self) -> int:
        return 2 + self.context_pairs - 2 * self.burstiness

    def validate(self) -> None:
        if self.kind not in SEQUENCE_KINDS:
            raise DataError(f"kind: unknown sequence kind {self.kind!r} (one of {SEQUENCE_KINDS})")
        if self.burstiness < 1:
            raise DataError(f"burstiness: must be >= 1, got {self.burstiness}")
        if self.context_pairs < 2 * self.burstiness:
            raise DataError(
                f"context_pairs: {self.context_pairs} is shorter than 2 x burstiness "
                f"= {2 * self.burstiness}"
            )
        need = self.context_pairs + 1 if self.kind == "iwl" else self.n_roles + 1
        if self.n_classes < need:
            raise DataError(
                f"n_classes: {self.kind!r} sequences with {self.context_pairs} context pairs "
                f"need >= {need} classes, got {self.n_classes}"
            )
        if self.kind == "icl_only" and self.label_set < self.n_roles:
            raise DataError(
                f"label_set: {self.label_set} labels cannot label {self.n_roles} context roles"
            )
        if self.kind == "relabel":
            if self.n_roles != 2:
                raise DataError(
                    f"context_pairs: relabel sequences hold the query's class and one distractor, so "
                    f"context_pairs must be 2 x burstiness = {2 * self.burstiness}, got {self.context_pairs}"
                )
            if not self.label_pairs:
                raise DataError("label_pairs: relabel sequences need at least one label pair")
            for pair in self.label_pairs:
                if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= a < self.label_set for a in pair):
                    raise DataError(
                        f"label_pairs: {pair} is not two distinct labels in [0, {self.label_set})"
                    )
        if self.exemplar_offset < 0:
            raise DataError(f"exemplar_offset: must be >= 0, got {self.exemplar_offset}")
        if not 0.0 <= self.p_bursty <= 1.0:
            raise DataError(f"p_bursty: must be in [0, 1], got {self.p_bursty}")
        if not self.zipf_alpha >= 0.0:
            raise DataError(f"zipf_alpha: must be >= 0, got {self.zipf_alpha}")
        if self.n_exemplars < 1:
            raise DataError(f"n_exemplars: must be >= 1, got {self.n_exemplars}")


class _Words:
    """Consumes a per-sequence vector of random uint32 words in a fixed order.

    All randomness of a batch comes from a single ``jax.random.bits`` call (one threefry kernel,
    which keeps compile time low); each draw below takes the next unused words.
    """

    def __init__(self, words: Int[Array, " w"]):
        self.words, self.pos = words, 0

    def take(self, n: int) -> Int[Array, " n"]:
        out = self.words[self.pos : self.pos + n]
        self.pos += n
        return out

    def randint(self, n: int, high) -> Int[Array, " n"]:
        """Integers in ``[0, high)`` as ``word mod high`` (bias ≤ high / 2^32)."""
        return (self.take(n) % jnp.asarray(high, jnp.uint32)).astype(jnp.int32)

    def uniform(self, n: int) -> Float[Array, " n"]:
        return (self.take(n) >> 8).astype(jnp.float32) * (1.0 / (1 << 24))

    def permutation(self, n: int) -> Int[Array, " n"]:
        return jnp.argsort(self.take(n)).astype(jnp.int32)


def _words_needed(spec: SequenceSpec) -> int:
    k = spec.context_pairs
    return (k + 1) + k + spec.label_set + (k + 1) + 1 + k + (spec.kind == "relabel")


def _class_draw(spec: SequenceSpec):
    """``draw(words, n) -> n classes in [0, n_classes)`` from the (Zipfian) distribution.

    Uniform uses ``word mod n``; Zipfian inverts a precomputed CDF with ``searchsorted`` — either
    way no ``batch × classes`` array is built per step.
    """
    if spec.zipf_alpha == 0.0:
        return lambda w, n: w.randint(n, spec.n_classes)
    p = np.arange(1, spec.n_classes + 1, dtype=np.float64) ** (-spec.zipf_alpha)
    cdf = np.cumsum(p) / p.sum()

    def draw(w, n):
        c = jnp.searchsorted(jnp.asarray(cdf, jnp.float32), w.uniform(n), side="right")
        return jnp.minimum(c, spec.n_classes - 1).astype(jnp.int32)

    return draw


def _draw_distinct(w: _Words, spec: SequenceSpec, draw, m: int) -> Int[Array, " m"]:
    """``m`` distinct classes, each drawn given the previous ones (``m`` is small and static).

    Uniform: draw ``r ~ U{0..n-1-i}`` and step over the ``i`` classes already taken in ascending
    order (``r += [r >= t]``), which is uniform over the classes not yet taken.
    Zipfian: draw from the class distribution and shift ``+1 (mod n)`` past taken classes (a
    slight bias towards successors of frequent classes, negligible when ``m ≪ n``).
    """
    n = spec.n_classes
    if spec.zipf_alpha == 0.0:
        raw = w.take(m)
    else:
        raw = draw(w, m)
    out = []
    for i in range(m):
        if spec.zipf_alpha == 0.0:
            c = (raw[i] % jnp.uint32(n - i)).astype(jnp.int32)
            if i:
                for t in jnp.sort(jnp.stack(out)):
                    c = c + (c >= t)
        else:
            c = raw[i]
            for _ in range(i):
                c = jnp.where(jnp.any(c == jnp.stack(out)), (c + 1) % n, c)
        out.append(c)
    return jnp.stack(out)


def _sample_one(words: Int[Array, " w"], spec: SequenceSpec, draw) -> Sequences:
    """One sequence (unbatched) of ``spec.kind`` from its random words."""
    k, b = spec.context_pairs, spec.burstiness
    r = spec.n_roles
    w = _Words(words)

    # Distinct classes: the query class q first, then role classes (role 0 = q itself except for
    # iwl/ciwl, role 1 = distractor, roles 2.. = fillers).
    n_distinct = k + 1 if spec.kind == "iwl" else r + 1
    distinct = _draw_distinct(w, spec, draw, n_distinct)
    q = distinct[0]
    slot_perm = w.permutation(k)
    label_perm = w.permutation(spec.label_set)

    if spec.kind == "iwl":
        ctx_classes = distinct[1:]  # k distinct classes, none equal to q
        ctx_labels = ctx_classes
        target = q
    else:
        if spec.kind == "ciwl":
            roles = distinct[1:]  # role 0 is some other class
        else:
            roles = jnp.concatenate([distinct[:1], distinct[2:]])  # role 0 = q
        role_of_slot = np.concatenate(
            [np.zeros(b, np.int32), np.ones(b, np.int32), 2 + np.arange(k - 2 * b, dtype=np.int32)]
        )
        role_of_slot = jnp.asarray(role_of_slot)[slot_perm]
        ctx_classes = roles[role_of_slot]
        role_labels = roles
        target = q
        if spec.kind == "icl_only":
            role_labels = label_perm[:r]
            target = role_labels[0]
        elif spec.kind == "ciwl":
            role_labels = role_labels.at[0].set(q)
        elif spec.kind == "flip":
            role_labels = role_labels.at[0].set(roles[1]).at[1].set(roles[0])
            target = roles[1]
        elif spec.kind == "relabel":
            pairs = jnp.asarray(spec.label_pairs, jnp.int32)  # (P, 2), a constant of the compiled code
            role_labels = pairs[w.randint(1, len(spec.label_pairs))[0]]
            target = role_labels[0]
        ctx_labels = role_labels[role_of_slot]

    exemplars = w.randint(k + 1, spec.n_exemplars) + spec.exemplar_offset
    classes = jnp.concatenate([ctx_classes, q[None]]).astype(jnp.int32)
    labels = ctx_labels.astype(jnp.int32)
    target = target.astype(jnp.int32)

    if spec.matched and spec.kind != "iwl":
        exemplars = jnp.where(classes == q, exemplars[-1], exemplars)

    u_bursty = w.uniform(1)[0]
    nb_classes = draw(w, k)
    if spec.kind == "bursty" and spec.p_bursty < 1.0:
        use_bursty = u_bursty < spec.p_bursty
        classes = jnp.where(use_bursty, classes, classes.at[:k].set(nb_classes))
        labels = jnp.where(use_bursty, labels, nb_classes)
    elif spec.kind == "nonbursty":
        classes = classes.at[:k].set(nb_classes)
        labels = nb_classes

    offset = spec.class_offset
    label_offset = 0 if spec.kind in ("icl_only", "relabel") else offset
    return Sequences(classes + offset, exemplars, labels + label_offset, target + label_offset)


def label_pair_split(
    n_labels: int, n_holdout: int, seed: int
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """The ordered label pairs of ``n_labels`` labels, split into training and held-out pairs.

    The ``L(L−1)/2`` unordered pairs ``{a, b}`` (``a < b``) are put in a random order (numpy PCG64
    from ``seed``); the first ``n_holdout`` are held out, the rest are for training, and each
    unordered pair contributes both orders ``(a, b)`` and ``(b, a)``: ``L(L−1) − 2 n_holdout``
    training and ``2 n_holdout`` held-out ordered pairs, each list sorted. Splitting unordered
    pairs is the original code's ``fs_relabel_split``: a held-out pair is never seen in training in
    either order. (L = 5, 2 held out: 16 training pairs, 4 held out.)
    """
    unordered = [(a, b) for a in range(n_labels) for b in range(a + 1, n_labels)]
    if not 0 <= n_holdout <= len(unordered):
        raise DataError(
            f"n_holdout: {n_labels} labels have {len(unordered)} pairs, cannot hold out {n_holdout}"
        )
    order = np.random.default_rng(seed).permutation(len(unordered))

    def both_orders(idx) -> tuple[tuple[int, int], ...]:
        return tuple(sorted(p for i in idx for p in (unordered[i], unordered[i][::-1])))

    return both_orders(order[n_holdout:]), both_orders(order[:n_holdout])


def sample_sequences(key: PRNGKeyArray, spec: SequenceSpec, batch: int) -> Sequences:
    """Draw ``batch`` i.i.d. sequences of ``spec`` (jit-able; ``spec`` and ``batch`` static).

    A spec that is not a :class:`SequenceSpec` (a :class:`transformer.mixture.MixtureSpec`)
    samples itself: ``spec.sample(key, batch)``.
    """
    if not isinstance(spec, SequenceSpec):
        return spec.sample(key, batch)
    draw = _class_draw(spec)
    words = jax.random.bits(key, (batch, _words_needed(spec)), jnp.uint32)
    return jax.vmap(lambda ww: _sample_one(ww, spec, draw))(words)


def gather_features(
    exemplars: Float[Array, "classes exemplars dim"], seqs: Sequences
) -> Float[Array, "batch k1 dim"]:
    """Features of every context and query exemplar of a batch."""
    return exemplars[seqs.classes, seqs.exemplars]


if __name__ == "__main__":  # python -m transformer.data: the command line is transformer.cli's
    from .cli import data_main

    raise SystemExit(data_main())
