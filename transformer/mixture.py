"""Mixtures of sequence distributions: the original study's mixed samplers (``TrainConfig.mix``).

A :class:`MixtureSpec` draws each sequence of a batch, independently, from component ``i`` with
probability ``w_i / Σ w``. It is sampled on the device like a single distribution (jit-able, inside
the training scan): :func:`transformer.data.sample_sequences` accepts it and calls
:meth:`MixtureSpec.sample`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from .data import DataError, Sequences, SequenceSpec, sample_sequences


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """A mixture of sequence distributions: each sequence of a batch is drawn from component ``i``
    with probability ``weights[i] / sum(weights)``, independently of the other sequences.

    The components must share the sequence shape (``context_pairs``); they may differ in anything
    else (kind, label set, class distribution).
    """

    components: tuple[SequenceSpec, ...]
    weights: tuple[float, ...]

    @property
    def probabilities(self) -> tuple[float, ...]:
        total = math.fsum(self.weights)
        return tuple(w / total for w in self.weights)

    @property
    def context_pairs(self) -> int:
        return self.components[0].context_pairs

    def validate(self) -> None:
        """Raise :class:`~transformer.data.DataError` (``"field: reason"``) if this is not a mixture
        of valid components of one sequence shape with positive finite weights."""
        if not self.components or len(self.components) != len(self.weights):
            raise DataError("mix: needs one weight per component and at least one component")
        for w in self.weights:
            if not (math.isfinite(w) and w > 0):
                raise DataError(f"mix: weights must be finite and > 0, got {w}")
        for c in self.components:
            c.validate()
            if c.context_pairs != self.context_pairs:
                raise DataError("mix: components differ in context_pairs")

    def sample(self, key: PRNGKeyArray, batch: int) -> Sequences:
        """``batch`` i.i.d. sequences of the mixture (:func:`sample_mixture` without the components)."""
        return sample_mixture(key, self, batch)[0]


def sample_mixture(
    key: PRNGKeyArray, spec: MixtureSpec, batch: int
) -> tuple[Sequences, Int[Array, " batch"]]:
    """``batch`` i.i.d. sequences of the mixture ``spec`` and the component each was drawn from.

    Component ``i`` draws a whole batch from ``fold_in(key, i)``
    (:func:`~transformer.data.sample_sequences`); sequence ``b`` takes row ``b`` of the batch of
    component ``c_b = #{i : u_b >= F_i}``, with ``u_b`` uniform on [0, 1) from
    ``fold_in(key, n_components)`` and ``F_i`` the cumulative probabilities of components ``0..i``
    (so ``P(c_b = i) = w_i / Σ w``). Jit-able; ``spec`` and ``batch`` static.
    """
    n = len(spec.components)
    parts = [sample_sequences(jax.random.fold_in(key, i), c, batch) for i, c in enumerate(spec.components)]
    cdf = np.cumsum(np.asarray(spec.probabilities, np.float64))[:-1]
    u = jax.random.uniform(jax.random.fold_in(key, n), (batch,), jnp.float32)
    which = jnp.searchsorted(jnp.asarray(cdf, jnp.float32), u, side="right").astype(jnp.int32)
    rows = jnp.arange(batch)
    seqs = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[which, rows], *parts)
    return seqs, which


__all__ = ["MixtureSpec", "sample_mixture"]
