"""Named hook points of the forward pass (TransformerLens vocabulary) and token-position selectors.

Every activation the forward pass computes has a name; an intervention edits it and a cache reads it.
Shapes are per sequence (any leading batch axes come first); ``T = 2k + 1`` tokens
``[x_1, l_1, …, x_k, l_k, x_q]``, so exemplars sit at even positions, labels at odd ones and the
query last.

=================================  =====================  ===========================================
name                               shape                  what
=================================  =====================  ===========================================
``embed.exemplar``                 (k+1, d)               ``W_x x`` of the context exemplars and query
``embed.label``                    (k, d)                 label-table rows ``E[l_i]``
``embed.pos``                      (T, d)                 positional code added to the tokens
``blocks.L.resid_pre``             (T, d)                 residual stream entering block ``L``
``blocks.L.attn.q|k|v``            (T, heads, d_head)     queries (after RoPE), keys, values
``blocks.L.attn.scores``           (heads, T, T)          ``⟨q_t, k_s⟩ / √d_head`` before the causal
                                                          mask and the softmax (query t, key s)
``blocks.L.attn.pattern``          (heads, T, T)          attention pattern (softmax of the scores)
``blocks.L.attn.z``                (T, heads, d_head)     ``Σ_s pattern[t, s] v_s`` of each head
``blocks.L.attn.head_out``         (T, heads, d)          what each head writes, ``O_h z_h``
``blocks.L.attn_out``              (T, d)                 sum of the heads' writes
``blocks.L.resid_mid``             (T, d)                 residual stream after attention
``blocks.L.mlp_out``               (T, d)                 MLP output (models with MLPs)
``blocks.L.resid_post``            (T, d)                 residual stream leaving block ``L``
``ln_final.scale``                 ()                     σ of the final LayerNorm at the query
``logits``                         (n_labels,)            logits at the query
=================================  =====================  ===========================================

Position selectors (``queries`` = the token axis, or the query axis of ``scores``/``pattern``;
``keys`` = their key axis): ``all``, ``labels``, ``exemplars`` (the query included), ``query``,
``context`` (all but the query) or explicit positions ``"0,2"``; ``keys`` also takes ``previous``
(the key just before the query token: ``s = t − 1``) and ``self`` (``s = t``).
"""

from __future__ import annotations

import numpy as np

from toymodels.errors import ConfigError, require

LAYER_POINTS: tuple[str, ...] = (
    "resid_pre",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.scores",
    "attn.pattern",
    "attn.z",
    "attn.head_out",
    "attn_out",
    "resid_mid",
    "mlp_out",
    "resid_post",
)
"""Points of every block, named ``blocks.L.<point>``."""
GLOBAL_POINTS: tuple[str, ...] = (
    "embed.exemplar",
    "embed.label",
    "embed.pos",
    "ln_final.scale",
    "logits",
)
"""Points outside the blocks."""
HEAD_POINTS = frozenset(
    {"attn.q", "attn.k", "attn.v", "attn.z", "attn.head_out", "attn.scores", "attn.pattern"}
)
"""Points with a head axis."""
PATTERN_POINTS = frozenset({"attn.scores", "attn.pattern"})
"""Points laid out (heads, T, T): query and key axes."""
POSITION_WORDS = ("all", "labels", "exemplars", "query", "context")
KEY_WORDS = POSITION_WORDS + ("previous", "self")


def full_name(point: str, layer: int | None) -> str:
    """``blocks.L.<point>`` for a block point, the point itself for a global one."""
    return point if layer is None else f"blocks.{layer}.{point}"


def point_names(depth: int, mlp: bool) -> tuple[str, ...]:
    """Every hook point of a model with ``depth`` blocks (``mlp``: with MLPs)."""
    names = ["embed.exemplar", "embed.label", "embed.pos"]
    for layer in range(depth):
        names += [full_name(p, layer) for p in LAYER_POINTS if mlp or p != "mlp_out"]
    return tuple(names + ["ln_final.scale", "logits"])


def check_positions(text: str, param: str, words: tuple[str, ...] = POSITION_WORDS) -> str:
    """``text`` if it is a position selector (see the module docstring), else :class:`ConfigError`."""
    if text in words:
        return text
    try:
        positions = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(
            param, f"positions must be one of {', '.join(words)} or integers like 0,2 (got {text!r})"
        ) from None
    require(
        len(positions) > 0 and min(positions) >= 0, param, f"positions must be integers >= 0 (got {text!r})"
    )
    return text


def token_mask(selector: str, n_tokens: int) -> np.ndarray:
    """Boolean (T,) mask of the tokens ``selector`` names in a sequence of ``T`` tokens."""
    t = np.arange(n_tokens)
    if selector == "all":
        return np.ones(n_tokens, bool)
    if selector == "labels":
        return t % 2 == 1
    if selector == "exemplars":
        return t % 2 == 0
    if selector == "query":
        return t == n_tokens - 1
    if selector == "context":
        return t < n_tokens - 1
    positions = [int(p) for p in selector.split(",") if p.strip()]
    if max(positions) >= n_tokens:
        raise ConfigError("opto", f"position {max(positions)} is outside a sequence of {n_tokens} tokens")
    return np.isin(t, positions)


def pattern_mask(queries: str, keys: str, n_tokens: int) -> np.ndarray:
    """Boolean (T, T) mask (query t, key s) of ``queries`` × ``keys``; ``keys`` may be relative."""
    rows = token_mask(queries, n_tokens)[:, None]
    t = np.arange(n_tokens)
    if keys == "previous":
        cols = t[None, :] == t[:, None] - 1
    elif keys == "self":
        cols = t[None, :] == t[:, None]
    else:
        cols = token_mask(keys, n_tokens)[None, :]
    return rows & cols


__all__ = [
    "GLOBAL_POINTS",
    "HEAD_POINTS",
    "KEY_WORDS",
    "LAYER_POINTS",
    "PATTERN_POINTS",
    "POSITION_WORDS",
    "check_positions",
    "full_name",
    "pattern_mask",
    "point_names",
    "token_mask",
]
