"""Exemplar data: HDF5 loading/validation, a synthetic generator, and jit-able sequence samplers.

Layout of an exemplar file (the original study's Omniglot feature files): one float dataset,
by default at ``resnet18/224/feat``, shaped ``(classes, exemplars, feature_dim)``.

Synthetic exemplars: class prototypes :math:`\\mu_c \\sim N(0, I_D)` and exemplars

.. math:: x_{c,e} = (\\mu_c + \\varepsilon\\,\\xi_{c,e}) / \\sqrt{1 + \\varepsilon^2},
   \\qquad \\xi_{c,e} \\sim N(0, I_D),

so every exemplar has unit expected per-coordinate variance and ``ε`` sets the within-class
spread. An optional ``offset`` :math:`m` is added to every coordinate, :math:`x_{c,e} + m\\,\\mathbf 1`:
a component shared by all exemplars, like the large positive mean of the study's ResNet-18
features (post-ReLU, so non-negative). It decides which strategy the transformer learns first
(docs/cpu_quick_preset.md): with centred features (``m = 0``) in-weights learning (CIWL) forms
first and ICL never does; with ``m = 1`` ICL forms first and then gives way to CIWL.

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
  label (role 1's class label), so accuracy 1 = pure ICL and 0 = CIWL.

Mixtures of these distributions (the original study's mixed samplers) are
:class:`transformer.mixture.MixtureSpec`; :func:`sample_sequences` accepts them too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
from typing import Literal, NamedTuple

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from toymodels._internal import atomic_write
from toymodels._internal.cli_tools import require_memory
from toymodels.errors import ConfigError

DEFAULT_DATASET = "resnet18/224/feat"

SequenceKind = Literal["bursty", "nonbursty", "icl_only", "iwl", "ciwl", "flip"]
SEQUENCE_KINDS: tuple[str, ...] = ("bursty", "nonbursty", "icl_only", "iwl", "ciwl", "flip")


class DataError(ConfigError):
    """Bad data file or data/sequence specification, raised with one string ``"param: reason"``: a
    :class:`~toymodels.errors.ConfigError` for ``param`` (command lines print ``error: --param: reason``)."""

    def __init__(self, text: str):
        param, sep, message = text.partition(": ")
        super().__init__(param if sep else "data", message if sep else text)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def synthetic_exemplars(
    n_classes: int,
    n_exemplars: int,
    dim: int,
    noise: float,
    seed: int,
    offset: float = 0.0,
    variants: int = 1,
    variant_scale: float = 1.0,
) -> Float[np.ndarray, "classes exemplars dim"]:
    """Synthetic exemplars ``x_{c,e} = (μ_c + ε ξ_{c,e}) / sqrt(1 + ε²) + offset``, float32, seeded.

    ``ξ`` are i.i.d. standard normal. With ``variants`` = 1 the class prototypes ``μ_c = δ_c`` are
    i.i.d. standard normal. With ``variants`` = V > 1 the classes come in groups of V consecutive
    classes that share a base prototype, like the study's 12800 Omniglot classes (1600 characters
    × 8 rotations and flips): ``μ_c = (β_{⌊c/V⌋} + ρ δ_c) / sqrt(1 + ρ²)`` with base prototypes
    ``β`` i.i.d. standard normal and ``ρ`` = ``variant_scale``, so every prototype is still
    standard normal and two classes of one group have prototype correlation ``1 / (1 + ρ²)``.
    The draws are ``δ`` (classes × 1 × dim), then ``ξ``, then ``β`` (numpy PCG64 from ``seed``),
    so ``ξ`` and ``δ`` do not depend on ``variants``.
    """
    check_synthetic(n_classes, n_exemplars, dim, noise, seed, offset, variants, variant_scale)
    rng = np.random.default_rng(seed)
    proto = rng.standard_normal((n_classes, 1, dim), dtype=np.float32)
    xi = rng.standard_normal((n_classes, n_exemplars, dim), dtype=np.float32)
    if variants > 1:
        base = rng.standard_normal((-(-n_classes // variants), 1, dim), dtype=np.float32)
        group = np.arange(n_classes) // variants
        rho = np.float32(variant_scale)
        proto = (base[group] + rho * proto) / np.float32(math.sqrt(1.0 + variant_scale**2))
    x = (proto + np.float32(noise) * xi) / np.float32(math.sqrt(1.0 + noise**2))
    return (x + np.float32(offset)).astype(np.float32)


def write_exemplar_file(
    path: str | os.PathLike,
    features: Float[np.ndarray, "classes exemplars dim"],
    dataset: str = DEFAULT_DATASET,
    attrs: dict | None = None,
) -> None:
    """Write ``features`` to ``path`` at ``dataset`` atomically (temp file then rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset(dataset, data=features)
            for k, v in (attrs or {}).items():
                d.attrs[k] = v

    atomic_write(path, write, suffix=".h5")


def check_synthetic(
    n_classes: int, n_exemplars: int, dim: int, noise: float, seed: int, offset: float = 0.0,
    variants: int = 1, variant_scale: float = 1.0,
) -> None:
    """:class:`DataError` naming the first bad argument of :func:`synthetic_exemplars` (which calls it)."""
    sizes = {"n_classes": n_classes, "n_exemplars": n_exemplars, "dim": dim, "variants": variants}
    for name, value in sizes.items():
        if int(value) < 1:
            raise DataError(f"{name}: must be >= 1, got {value}")
    if seed < 0:
        raise DataError(f"seed: must be >= 0, got {seed}")
    if not (math.isfinite(noise) and noise >= 0):
        raise DataError(f"noise: must be finite and >= 0, got {noise}")
    if not math.isfinite(offset):
        raise DataError(f"offset: must be finite, got {offset}")
    if not (math.isfinite(variant_scale) and variant_scale >= 0):
        raise DataError(f"variant_scale: must be finite and >= 0, got {variant_scale}")


def synthetic_bytes(n_classes: int, n_exemplars: int, dim: int) -> int:
    """Peak bytes of :func:`synthetic_exemplars` (three float32 arrays of the output's size)."""
    return 3 * 4 * n_classes * n_exemplars * dim


@contextlib.contextmanager
def _exemplar_dataset(path: str | os.PathLike, dataset: str) -> Iterator[h5py.Dataset]:
    """The checked exemplar dataset of a file (3-d, floating point, nothing empty), left unread."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"data_path: no such file {path!r}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"data_path: {path!r} is not a readable HDF5 file ({e})") from None
    with f:
        try:
            d = f[dataset] if dataset in f else None
        except (KeyError, ValueError, TypeError, OSError):
            d = None
        if not isinstance(d, h5py.Dataset):
            raise DataError(f"data_dataset: {path!r} has no dataset {dataset!r}")
        if d.ndim != 3 or 0 in d.shape:
            raise DataError(
                f"data_dataset: {dataset!r} must be classes x exemplars x dim, got shape {d.shape}"
            )
        if not np.issubdtype(d.dtype, np.floating):
            raise DataError(f"data_dataset: {dataset!r} must be floating point, got {d.dtype}")
        yield d


def exemplar_file_shape(path: str | os.PathLike, dataset: str = DEFAULT_DATASET) -> tuple[int, int, int]:
    """``(classes, exemplars, dim)`` of a file's exemplar dataset, checked (as it is loaded) but unread."""
    with _exemplar_dataset(path, dataset) as d:
        return tuple(int(n) for n in d.shape)


def load_exemplars(
    path: str | os.PathLike,
    dataset: str = DEFAULT_DATASET,
    n_classes: int | None = None,
    n_exemplars: int | None = None,
) -> Float[np.ndarray, "classes exemplars dim"]:
    """Load and validate the first ``n_classes`` × ``n_exemplars`` exemplars of a file (refused up
    front if they would not fit in this machine's memory)."""
    with _exemplar_dataset(path, dataset) as d:
        c, e, dim = d.shape
        n_classes = c if n_classes is None else n_classes
        n_exemplars = e if n_exemplars is None else n_exemplars
        if not 1 <= n_classes <= c:
            raise DataError(f"n_classes: {n_classes} requested but the file has {c} classes")
        if not 1 <= n_exemplars <= e:
            raise DataError(f"n_exemplars: {n_exemplars} requested but the file has {e} exemplars")
        require_memory("n_classes", 2 * 4 * n_classes * n_exemplars * dim)
        try:
            x = np.asarray(d[:n_classes, :n_exemplars], dtype=np.float32)
        except OSError as err:
            raise DataError(f"data_path: cannot read {dataset!r} of {os.fspath(path)!r} ({err})") from None
    if not np.all(np.isfinite(x)):
        raise DataError(f"data_dataset: {dataset!r} contains non-finite values")
    return x


# ----------------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------------


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
    probabilities :math:`p_c \\propto (c+1)^{-\\alpha}` (``zipf_alpha``; 0 = uniform).
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
    return (k + 1) + k + spec.label_set + (k + 1) + 1 + k


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
        ctx_labels = role_labels[role_of_slot]

    exemplars = w.randint(k + 1, spec.n_exemplars)
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
    label_offset = 0 if spec.kind == "icl_only" else offset
    return Sequences(classes + offset, exemplars, labels + label_offset, target + label_offset)


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
