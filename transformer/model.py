"""Causal pre-LayerNorm transformer over (exemplar, label) sequences, in Equinox.

Tokens of a sequence with ``k`` context pairs: ``[x_1, l_1, …, x_k, l_k, x_q]`` (``T = 2k+1``).
Exemplar tokens are embedded linearly, ``W_x x``; label tokens by a table, ``E[l]``; a positional
code is added (learned absolute by default, sinusoidal, or RoPE applied inside attention). Each
block is

.. math:: h \\leftarrow h + \\sum_{i} m_i\\, O_i\\, A_i V_i\\, \\mathrm{LN}(h),\\qquad
          A_i = \\mathrm{softmax}\\big(\\mathrm{causal}(Q_i \\mathrm{LN}(h) (K_i \\mathrm{LN}(h))^\\top
          / \\sqrt{d_h})\\big),

optionally followed by ``h ← h + MLP(LN(h))`` (ratio 4, GeLU). Logits over all labels are
``U LN(h_T) + c`` at the query token; the loss is cross-entropy on the query's target label.
``U`` is its own matrix by default; ``tie_labels=True`` makes it the label-embedding table ``E``
itself (so a head that copies a label token's embedding raises that label's logit for every
label at once), and ``unembed_init="labels"`` keeps ``U`` separate but starts it at ``E``.

Initialisation follows the original study's code (``models.py`` of aadityasingh/icl-dynamics):
every weight matrix (exemplar embedding, Q/K/V/O, MLP, unembedding) is LeCun-normal — a normal
truncated at ±2σ, rescaled to standard deviation ``1/sqrt(fan_in)`` — with zero biases; the
label table is ``label_init_scale`` × a standard normal truncated at ±2 (0.02, as in Chan et al.
and the study), so label tokens start small next to the exemplar tokens; learned positions are
uniform in ``±1/sqrt(32)`` (the study's 32-slot position table, an Equinox ``Linear`` with its
default initialisation). (An earlier version used Equinox defaults: a unit-normal label table
and uniform weights with random biases; on its own, matching the study's initialisation did not
change which strategy forms first — docs/cpu_quick_preset.md.)

``m_i`` is a per-head mask (``head_mask``, default 1) and ``A_i`` may be replaced by a given
pattern (``attn_override``) — both for analysis/interventions. :func:`forward_with_activations`
returns every intermediate as a pytree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

PositionalEncoding = Literal["learned", "sinusoidal", "rope"]

# the original study's learned position table has 32 slots, initialised U(±1/sqrt(32))
_POSITION_SLOTS = 32


def lecun_normal(
    key: PRNGKeyArray, shape: tuple[int, ...], in_axis=-1, out_axis=-2
) -> Float[Array, ...]:
    """LeCun-normal weights: truncated normal (±2σ) with std ``1/sqrt(fan_in)``."""
    return jax.nn.initializers.lecun_normal(in_axis=in_axis, out_axis=out_axis)(key, shape)


def _linear(d_in: int, d_out: int, *, key: PRNGKeyArray) -> eqx.nn.Linear:
    """``eqx.nn.Linear`` with LeCun-normal weight and zero bias (the study's ``CustomLinear``)."""
    lin = eqx.nn.Linear(d_in, d_out, key=key)
    return eqx.tree_at(
        lambda m: (m.weight, m.bias), lin, (lecun_normal(key, (d_out, d_in)), jnp.zeros(d_out))
    )


def _sinusoidal(n: int, d: int) -> Float[Array, "n d"]:
    pos = jnp.arange(n)[:, None]
    i = jnp.arange(d // 2)[None, :]
    angle = pos / (10000.0 ** (2 * i / d))
    out = jnp.zeros((n, d))
    out = out.at[:, 0 : 2 * (d // 2) : 2].set(jnp.sin(angle))
    return out.at[:, 1 : 2 * (d // 2) : 2].set(jnp.cos(angle))


def _rope(x: Float[Array, "*batch T heads dh"]) -> Float[Array, "*batch T heads dh"]:
    """Rotary position embedding: rotate coordinate pairs of token ``t`` by angle ``t θ_j``."""
    t, dh = x.shape[-3], x.shape[-1]
    half = dh // 2
    theta = 10000.0 ** (-jnp.arange(half) / half)
    ang = (jnp.arange(t)[:, None] * theta[None, :])[:, None, :]  # (T, 1, half)
    cos, sin = jnp.cos(ang), jnp.sin(ang)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rot = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return jnp.concatenate([rot, x[..., 2 * half :]], axis=-1)


class Attention(eqx.Module):
    """Causal multi-head self-attention with per-head outputs exposed.

    Computed in a token-major layout ``(…, T, heads, d_head)`` over any leading batch axes: the
    three projections are one matrix product, and the tiny ``T × T`` contractions are written
    as broadcast products and sums (fused loops rather than hundreds of batched 5 × 8 matrix
    products; a training step at 12800 labels is 4–9 % faster on CPU). :meth:`__call__` (one
    sequence) returns per-head patterns and outputs for analysis; :meth:`residual` (a batch)
    returns only their sum, with the output projection of all heads as one matrix product —
    the training path.
    """

    wq: Float[Array, "heads dh d"]
    wk: Float[Array, "heads dh d"]
    wv: Float[Array, "heads dh d"]
    wo: Float[Array, "heads d dh"]
    rope: bool = eqx.field(static=True)

    def __init__(self, d_model: int, n_heads: int, rope: bool, *, key: PRNGKeyArray):
        dh = d_model // n_heads
        kq, kk, kv, ko = jax.random.split(key, 4)
        # fan-in d_model for Q/K/V; for O the fan-in is heads x d_head = d_model (one matrix)
        qkv = functools.partial(lecun_normal, shape=(n_heads, dh, d_model), out_axis=(0, 1))
        self.wq, self.wk, self.wv = qkv(kq), qkv(kk), qkv(kv)
        self.wo = lecun_normal(ko, (n_heads, d_model, dh), in_axis=(0, 2), out_axis=1)
        self.rope = rope

    def mixed_values(
        self,
        x: Float[Array, "*batch T d"],
        attn_override: Float[Array, "*batch T T heads"] | None = None,
    ) -> tuple[Float[Array, "*batch T heads dh"], Float[Array, "*batch T T heads"]]:
        """``A_i V_i x`` of every head and the patterns ``A_i`` (token-major layout).

        ``A_i[t, s] = softmax_s(causal(⟨Q_i x_t, K_i x_s⟩ / sqrt(d_h)))``.
        """
        heads, dh, d = self.wq.shape
        w = jnp.concatenate([self.wq, self.wk, self.wv], axis=0).reshape(3 * heads * dh, d)
        qkv = (x @ w.T).reshape(*x.shape[:-1], 3, heads, dh)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        if self.rope:
            q, k = _rope(q), _rope(k)
        t = x.shape[-2]
        # scores[..., t, s, h] = <q[..., t, h, :], k[..., s, h, :]> / sqrt(dh)
        scores = (q[..., :, None, :, :] * k[..., None, :, :, :]).sum(-1) / math.sqrt(dh)
        causal: Bool[Array, "T T 1"] = jnp.tril(jnp.ones((t, t), bool))[:, :, None]
        pattern = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-2)
        if attn_override is not None:
            pattern = attn_override
        # mixed[..., t, h, e] = sum_s pattern[..., t, s, h] v[..., s, h, e]
        mixed = (pattern[..., :, :, :, None] * v[..., None, :, :, :]).sum(-3)
        return mixed, pattern

    def residual(self, x: Float[Array, "*batch T d"]) -> Float[Array, "*batch T d"]:
        """``Σ_i O_i A_i V_i x`` — what the layer adds to the residual stream (all heads on)."""
        mixed, _ = self.mixed_values(x)
        heads, d, dh = self.wo.shape
        wo = jnp.transpose(self.wo, (1, 0, 2)).reshape(d, heads * dh)
        return mixed.reshape(*mixed.shape[:-2], heads * dh) @ wo.T

    def __call__(
        self,
        x: Float[Array, "T d"],
        head_mask: Float[Array, " heads"],
        attn_override: Float[Array, "heads T T"] | None,
    ) -> tuple[Float[Array, "T d"], Float[Array, "heads T T"], Float[Array, "heads T d"]]:
        """One sequence: ``(Σ_i m_i O_i A_i V_i x, patterns (heads, T, T), head outputs)``."""
        override = None if attn_override is None else jnp.moveaxis(attn_override, 0, -1)
        mixed, pattern = self.mixed_values(x, override)
        head_out = jnp.einsum("hde,the->htd", self.wo, mixed)
        head_out = head_out * head_mask[:, None, None]
        return head_out.sum(0), jnp.moveaxis(pattern, -1, 0), head_out


class MLP(eqx.Module):
    up: eqx.nn.Linear
    down: eqx.nn.Linear

    def __init__(self, d_model: int, ratio: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.up = _linear(d_model, ratio * d_model, key=k1)
        self.down = _linear(ratio * d_model, d_model, key=k2)

    def token(self, r: Float[Array, " d"]) -> Float[Array, " d"]:
        """``down(GeLU(up(r)))`` of one token."""
        return self.down(jax.nn.gelu(self.up(r)))

    def __call__(self, x: Float[Array, "T d"]) -> Float[Array, "T d"]:
        return jax.vmap(self.token)(x)


class Block(eqx.Module):
    ln_attn: eqx.nn.LayerNorm
    attn: Attention
    ln_mlp: eqx.nn.LayerNorm | None
    mlp: MLP | None

    def __init__(self, d_model: int, n_heads: int, mlp: bool, rope: bool, *, key: PRNGKeyArray):
        ka, km = jax.random.split(key)
        self.ln_attn = eqx.nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, rope, key=ka)
        self.ln_mlp = eqx.nn.LayerNorm(d_model) if mlp else None
        self.mlp = MLP(d_model, 4, key=km) if mlp else None


class Transformer(eqx.Module):
    """The whole model; see the module docstring for the maths."""

    embed_x: eqx.nn.Linear
    embed_label: eqx.nn.Embedding
    pos: Float[Array, "T d"] | None
    blocks: tuple[Block, ...]
    ln_f: eqx.nn.LayerNorm
    unembed: eqx.nn.Linear | None
    unembed_bias: Float[Array, " n_labels"] | None
    positional: str = eqx.field(static=True)
    n_heads: int = eqx.field(static=True)

    def __init__(
        self,
        feature_dim: int,
        n_labels: int,
        seq_len: int,
        *,
        depth: int = 2,
        d_model: int = 64,
        n_heads: int = 8,
        mlp: bool = False,
        positional: PositionalEncoding = "learned",
        tie_labels: bool = False,
        unembed_init: str = "independent",
        label_init_scale: float = 0.02,
        key: PRNGKeyArray,
    ):
        if d_model % n_heads:
            raise ValueError(f"d_model: {d_model} is not divisible by n_heads={n_heads}")
        if positional not in ("learned", "sinusoidal", "rope"):
            raise ValueError(f"positional: unknown encoding {positional!r}")
        if unembed_init not in ("independent", "labels"):
            raise ValueError(f"unembed_init: must be 'independent' or 'labels', got {unembed_init!r}")
        kx, kl, kp, ku, *kb = jax.random.split(key, 4 + depth)
        if not label_init_scale > 0:
            raise ValueError(f"label_init_scale: must be > 0, got {label_init_scale}")
        self.embed_x = _linear(feature_dim, d_model, key=kx)
        table = label_init_scale * jax.random.truncated_normal(kl, -2.0, 2.0, (n_labels, d_model))
        self.embed_label = eqx.nn.Embedding(weight=table)
        lim = 1.0 / math.sqrt(_POSITION_SLOTS)
        self.pos = (
            jax.random.uniform(kp, (seq_len, d_model), minval=-lim, maxval=lim)
            if positional == "learned"
            else None
        )
        self.blocks = tuple(
            Block(d_model, n_heads, mlp, positional == "rope", key=k) for k in kb
        )
        self.ln_f = eqx.nn.LayerNorm(d_model)
        # tie_labels: the unembedding matrix *is* the label-embedding table (plus a bias)
        self.unembed = None if tie_labels else _linear(d_model, n_labels, key=ku)
        if unembed_init == "labels" and self.unembed is not None:
            # untied, but U starts as a copy of the label table (a copy circuit exists at init)
            self.unembed = eqx.tree_at(
                lambda lin: (lin.weight, lin.bias),
                self.unembed,
                (self.embed_label.weight, jnp.zeros(n_labels)),
            )
        self.unembed_bias = jnp.zeros(n_labels) if tie_labels else None
        self.positional = positional
        self.n_heads = n_heads

    def unembedding(self) -> tuple[Float[Array, "n_labels d"], Float[Array, " n_labels"]]:
        """``(U, c)`` of the logits ``U z + c`` (``U`` = label table when tied)."""
        if self.unembed is None:
            return self.embed_label.weight, self.unembed_bias
        return self.unembed.weight, self.unembed.bias

    def embed(
        self, features: Float[Array, "k1 dim"], labels: Int[Array, " k"]
    ) -> Float[Array, "T d"]:
        """Interleave ``[x_1, l_1, …, x_k, l_k, x_q]`` and add positions."""
        return self.embed_tokens(features, self.embed_label.weight[labels])

    def embed_tokens(
        self, features: Float[Array, "k1 dim"], label_vectors: Float[Array, "k d"]
    ) -> Float[Array, "T d"]:
        """:meth:`embed` given the label tokens' table rows ``E[l_i]`` (looked up by the caller)."""
        ex = jax.vmap(self.embed_x)(features)  # (k+1, d)
        k = label_vectors.shape[0]
        pairs = jnp.stack([ex[:k], label_vectors], axis=1).reshape(2 * k, -1)
        h = jnp.concatenate([pairs, ex[k:]], axis=0)
        if self.positional == "learned":
            h = h + self.pos[: h.shape[0]]
        elif self.positional == "sinusoidal":
            h = h + _sinusoidal(h.shape[0], h.shape[1])
        return h


def forward_with_activations(
    model: Transformer,
    features: Float[Array, "k1 dim"],
    labels: Int[Array, " k"],
    head_mask: Float[Array, "depth heads"] | None = None,
    attn_override: tuple[Float[Array, "heads T T"] | None, ...] | None = None,
) -> tuple[Float[Array, " n_labels"], dict]:
    """Logits at the query token and a pytree of every intermediate activation.

    Activations: ``resid`` (depth+1, T, d) residual stream before each block and after the last;
    ``attn`` (depth, heads, T, T) attention patterns; ``head_out`` (depth, heads, T, d) each head's
    write into the residual stream (after ``head_mask``); ``mlp_out`` (depth, T, d) or absent.
    """
    depth = len(model.blocks)
    if head_mask is None:
        head_mask = jnp.ones((depth, model.n_heads))
    if attn_override is None:
        attn_override = (None,) * depth
    h = model.embed(features, labels)
    resid, attn, heads, mlps = [h], [], [], []
    for i, block in enumerate(model.blocks):
        a, pattern, head_out = block.attn(
            jax.vmap(block.ln_attn)(h), head_mask[i], attn_override[i]
        )
        h = h + a
        attn.append(pattern)
        heads.append(head_out)
        if block.mlp is not None:
            m = block.mlp(jax.vmap(block.ln_mlp)(h))
            h = h + m
            mlps.append(m)
        resid.append(h)
    u, c = model.unembedding()
    logits = u @ model.ln_f(h[-1]) + c
    acts = {"resid": jnp.stack(resid), "attn": jnp.stack(attn), "head_out": jnp.stack(heads)}
    if mlps:
        acts["mlp_out"] = jnp.stack(mlps)
    return logits, acts


def forward(
    model: Transformer, features: Float[Array, "k1 dim"], labels: Int[Array, " k"]
) -> Float[Array, " n_labels"]:
    """Logits over all labels at the query token (unbatched)."""
    return forward_with_activations(model, features, labels)[0]


def query_state(
    model: Transformer, features: Float[Array, "k1 dim"], labels: Int[Array, " k"]
) -> Float[Array, " d"]:
    """Final LayerNorm of the residual stream at the query token (unbatched)."""
    return _query_state_of_tokens(model, model.embed(features, labels))


def _query_state_of_tokens(model: Transformer, h: Float[Array, "*batch T d"]) -> Float[Array, "*batch d"]:
    """Final LayerNorm of the residual stream at the query token (any leading batch axes)."""
    for block in model.blocks:
        h = h + block.attn.residual(_tokenwise(block.ln_attn, h))
        if block.mlp is not None:
            h = h + _tokenwise(block.mlp.token, _tokenwise(block.ln_mlp, h))
    return _tokenwise(model.ln_f, h[..., -1, :])


def _tokenwise(fn: Callable, h: Float[Array, "*batch d"]) -> Float[Array, "*batch d_out"]:
    """``fn`` (one token vector → one vector) applied to every vector of ``h``."""
    flat = h.reshape(-1, h.shape[-1])
    out = jax.vmap(fn)(flat)
    return out.reshape(*h.shape[:-1], out.shape[-1])


def batched_logits(
    model: Transformer, features: Float[Array, "batch k1 dim"], labels: Int[Array, "batch k"]
) -> Float[Array, "batch n_labels"]:
    """Logits of a batch, ``U z + c`` applied as one matrix product over the batch.

    Same numbers as ``vmap(forward)`` up to rounding, arranged for speed on CPU: the label rows
    of the whole batch are gathered in one lookup (its gradient is then one scatter-add into the
    table; a lookup per sequence cost ≈ 2.3 ms of a 9.3 ms step at 12800 labels), the blocks
    run on the whole ``(batch, T, d)`` array (:meth:`Attention.residual`), and the unembedding
    and its gradient are single GEMMs (≈ 1.4× faster per step).
    """
    label_vectors = model.embed_label.weight[labels]  # (batch, k, d)
    h = jax.vmap(model.embed_tokens)(features, label_vectors)
    z = _query_state_of_tokens(model, h)
    u, c = model.unembedding()
    return z @ u.T + c


def query_loss(
    logits: Float[Array, "batch n_labels"], target: Int[Array, " batch"]
) -> Float[Array, " batch"]:
    """Per-sequence cross-entropy ``-log softmax(logits)[target] = logsumexp(logits) - logits[target]``.

    The target's logit is picked with a one-hot mask rather than an indexed gather, so the
    gradient ``softmax(logits) - onehot(target)`` is one fused elementwise pass (the gather's
    gradient would zero-fill a ``batch × n_labels`` array and scatter into it every step).
    """
    onehot = target[:, None] == jnp.arange(logits.shape[-1])
    return jax.nn.logsumexp(logits, axis=-1) - jnp.where(onehot, logits, 0.0).sum(-1)
