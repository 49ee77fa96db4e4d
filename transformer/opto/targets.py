"""Target attention patterns for the ``mix`` edit, and what they are computed from.

Each target is a (T, T) pattern per sequence (query t, key s; rows sum to 1, causal), built from
the sequence's :class:`TokenContext`; a ``mix`` edit blends it into the chosen heads' patterns.

==============  ===================================================================================
``prev_token``  ``P[t, t−1] = 1``; token 0 attends to itself
``self``        ``P[t, t] = 1``
``induction``   query row: ``1/n`` on each of the ``n`` label tokens whose exemplar has the
                query's class (the in-context label of its own class); if no exemplar does,
                ``1/k`` on every label token. Other rows attend to themselves.
``match``       query row: label token ``i`` (after exemplar ``x_i``) gets
                ``softmax_i(cos(x_i, x_q) / τ)``; ``τ = 0`` is a hardmax (ties shared equally).
                Exemplar tokens get 0. Other rows attend to themselves.
==============  ===================================================================================
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

TARGETS: tuple[str, ...] = ("prev_token", "self", "induction", "match")


class TokenContext(NamedTuple):
    """What target patterns and position-dependent edits may use about a batch of sequences."""

    features: Float[Array, "*batch k1 dim"]
    labels: Int[Array, "*batch k"]
    classes: Int[Array, "*batch k1"]

    @classmethod
    def of(cls, features: Float[Array, "*batch k1 dim"], seqs) -> TokenContext:
        """The context of sequences ``seqs`` (:class:`~transformer.data.Sequences`) whose exemplar
        features are ``features``."""
        return cls(features=features, labels=seqs.labels, classes=seqs.classes)


def prev_token_pattern(n_tokens: int) -> Float[Array, "T T"]:
    """``P[t, t−1] = 1``, ``P[0, 0] = 1``."""
    p = jnp.eye(n_tokens, k=-1)
    return p.at[0, 0].set(1.0)


def _with_query_row(row: Float[Array, "*batch T"], n_tokens: int) -> Float[Array, "*batch T T"]:
    eye = jnp.broadcast_to(jnp.eye(n_tokens), (*row.shape[:-1], n_tokens, n_tokens))
    return eye.at[..., -1, :].set(row)


def induction_pattern(ctx: TokenContext) -> Float[Array, "*batch T T"]:
    """Query row on the label tokens of the query's class (module docstring)."""
    k = ctx.labels.shape[-1]
    n_tokens = 2 * k + 1
    same = (ctx.classes[..., :k] == ctx.classes[..., k:]).astype(jnp.float32)  # (*batch, k)
    n = same.sum(-1, keepdims=True)
    weights = jnp.where(n > 0, same / jnp.maximum(n, 1.0), 1.0 / k)
    row = jnp.zeros((*weights.shape[:-1], n_tokens)).at[..., 1 : 2 * k : 2].set(weights)
    return _with_query_row(row, n_tokens)


def match_pattern(ctx: TokenContext, temperature: float) -> Float[Array, "*batch T T"]:
    """Query row on label tokens by exemplar similarity (module docstring)."""
    k = ctx.labels.shape[-1]
    n_tokens = 2 * k + 1
    x = ctx.features / jnp.linalg.norm(ctx.features, axis=-1, keepdims=True)
    cos = (x[..., :k, :] * x[..., k:, :]).sum(-1)  # (*batch, k)
    if temperature == 0:
        best = (cos == cos.max(-1, keepdims=True)).astype(jnp.float32)
        weights = best / best.sum(-1, keepdims=True)
    else:
        weights = jax.nn.softmax(cos / temperature, axis=-1)
    row = jnp.zeros((*weights.shape[:-1], n_tokens)).at[..., 1 : 2 * k : 2].set(weights)
    return _with_query_row(row, n_tokens)


def target_pattern(name: str, ctx: TokenContext, temperature: float = 0.0) -> Float[Array, "*batch T T"]:
    """Target ``name`` of :data:`TARGETS` for the batch (broadcastable to (*batch, T, T))."""
    n_tokens = 2 * ctx.labels.shape[-1] + 1
    if name == "prev_token":
        return prev_token_pattern(n_tokens)
    if name == "self":
        return jnp.eye(n_tokens)
    if name == "induction":
        return induction_pattern(ctx)
    if name == "match":
        return match_pattern(ctx, temperature)
    raise ValueError(f"unknown target pattern {name!r}")


__all__ = [
    "TARGETS",
    "TokenContext",
    "induction_pattern",
    "match_pattern",
    "prev_token_pattern",
    "target_pattern",
]
