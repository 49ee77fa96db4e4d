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

from .opto.hooks import NO_HOOKS, Hooks, NoHooks

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

    def forward(
        self, x: Float[Array, "*batch T d"], hooks: Hooks | NoHooks = NO_HOOKS, prefix: str = ""
    ) -> Float[Array, "*batch T d"]:
        """``Σ_h O_h A_h V_h x``: what the layer adds to the residual stream.

        ``A_h[t, s] = softmax_s(causal(⟨Q_h x_t, K_h x_s⟩ / sqrt(d_h)))``. Hook points
        ``<prefix>attn.q|k|v|scores|pattern|z|head_out`` (see :mod:`transformer.opto.points`);
        without hooks on ``head_out`` all heads' outputs are one matrix product.
        """
        heads, dh, d = self.wq.shape
        w = jnp.concatenate([self.wq, self.wk, self.wv], axis=0).reshape(3 * heads * dh, d)
        qkv = (x @ w.T).reshape(*x.shape[:-1], 3, heads, dh)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        if self.rope:
            q, k = _rope(q), _rope(k)
        q = hooks(prefix + "attn.q", q)
        k = hooks(prefix + "attn.k", k)
        v = hooks(prefix + "attn.v", v)
        t = x.shape[-2]
        # scores[..., t, s, h] = <q[..., t, h, :], k[..., s, h, :]> / sqrt(dh)
        scores = (q[..., :, None, :, :] * k[..., None, :, :, :]).sum(-1) / math.sqrt(dh)
        scores = _head_major(hooks, prefix + "attn.scores", scores)
        causal: Bool[Array, "T T 1"] = jnp.tril(jnp.ones((t, t), bool))[:, :, None]
        pattern = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-2)
        pattern = _head_major(hooks, prefix + "attn.pattern", pattern)
        # z[..., t, h, e] = sum_s pattern[..., t, s, h] v[..., s, h, e]
        z = (pattern[..., :, :, :, None] * v[..., None, :, :, :]).sum(-3)
        z = hooks(prefix + "attn.z", z)
        if hooks.wants(prefix + "attn.head_out"):
            head_out = jnp.einsum("...the,hde->...thd", z, self.wo)
            return hooks(prefix + "attn.head_out", head_out).sum(-2)
        wo = jnp.transpose(self.wo, (1, 0, 2)).reshape(d, heads * dh)
        return z.reshape(*z.shape[:-2], heads * dh) @ wo.T


def _head_major(hooks, name: str, x: Float[Array, "*batch T T heads"]) -> Float[Array, "*batch T T heads"]:
    """Hook ``name`` on ``x`` seen in the (…, heads, T, T) layout of the hook points."""
    if not hooks.wants(name):
        return x
    return jnp.moveaxis(hooks(name, jnp.moveaxis(x, -1, -3)), -3, -1)


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


def forward(
    model: Transformer,
    features: Float[Array, "*batch k1 dim"],
    labels: Int[Array, "*batch k"],
    hooks: Hooks | NoHooks = NO_HOOKS,
) -> Float[Array, "*batch n_labels"]:
    """The forward pass: logits at the query of every sequence (any leading batch axes).

    The one implementation behind training, evaluation, probes, attribution and interventions:
    at every hook point of :mod:`transformer.opto.points` it calls ``hooks(name, x)`` and goes on
    with what that returns, so ``hooks`` may read (cache) or change (edit) any activation. With
    :data:`~transformer.opto.hooks.NO_HOOKS` nothing is copied or re-laid out: the blocks run on the
    whole ``(…, T, d)`` array, all heads' outputs are one matrix product and the unembedding is one
    GEMM over the batch (the label rows of the batch are gathered in one lookup, whose gradient is
    one scatter-add into the table).
    """
    lead = labels.shape[:-1]
    k = labels.shape[-1]
    n_tokens = 2 * k + 1
    # W_x x of each sequence's exemplars, vmapped per sequence (the layout the training path has
    # always used, so that its numbers are unchanged)
    flat = features.reshape(-1, *features.shape[-2:])
    exemplars = jax.vmap(jax.vmap(model.embed_x))(flat).reshape(*lead, k + 1, -1)  # (*batch, k+1, d)
    label_vectors = model.embed_label.weight[labels]  # (*batch, k, d)
    exemplars = hooks("embed.exemplar", exemplars)
    label_vectors = hooks("embed.label", label_vectors)
    d = exemplars.shape[-1]
    pairs = jnp.stack([exemplars[..., :k, :], label_vectors], axis=-2).reshape(*lead, 2 * k, d)
    h = jnp.concatenate([pairs, exemplars[..., k:, :]], axis=-2)
    if model.positional == "learned":
        h = h + hooks("embed.pos", model.pos[:n_tokens])
    elif model.positional == "sinusoidal":
        h = h + hooks("embed.pos", _sinusoidal(n_tokens, d))
    for layer, block in enumerate(model.blocks):
        name = f"blocks.{layer}."
        h = hooks(name + "resid_pre", h)
        h = h + hooks(name + "attn_out", block.attn.forward(_tokenwise(block.ln_attn, h), hooks, name))
        h = hooks(name + "resid_mid", h)
        if block.mlp is not None:
            m = _tokenwise(block.mlp.token, _tokenwise(block.ln_mlp, h))
            h = h + hooks(name + "mlp_out", m)
        h = hooks(name + "resid_post", h)
    z = _final_norm(model.ln_f, h[..., -1, :], hooks)
    u, c = model.unembedding()
    return hooks("logits", z @ u.T + c)


def _final_norm(ln: eqx.nn.LayerNorm, r: Float[Array, "*batch d"], hooks) -> Float[Array, "*batch d"]:
    """Final LayerNorm of the query's residual; its scale σ is the hook point ``ln_final.scale``."""
    if not hooks.wants("ln_final.scale"):
        return _tokenwise(ln, r)
    mean = r.mean(-1, keepdims=True)
    sigma = jnp.sqrt(((r - mean) ** 2).mean(-1) + ln.eps)
    sigma = hooks("ln_final.scale", sigma)
    return (r - mean) / sigma[..., None] * ln.weight + ln.bias


def batched_logits(
    model: Transformer, features: Float[Array, "*batch k1 dim"], labels: Int[Array, "*batch k"]
) -> Float[Array, "*batch n_labels"]:
    """Logits of a batch without hooks: :func:`forward` (the name the training code uses)."""
    return forward(model, features, labels)


def _tokenwise(fn: Callable, h: Float[Array, "*batch d"]) -> Float[Array, "*batch d_out"]:
    """``fn`` (one token vector → one vector) applied to every vector of ``h``."""
    flat = h.reshape(-1, h.shape[-1])
    out = jax.vmap(fn)(flat)
    return out.reshape(*h.shape[:-1], out.shape[-1])


class _LegacyHooks(Hooks):
    """``head_mask`` (scales each head's write) and ``attn_override`` (replaces patterns) of
    :func:`forward_with_activations`, recording every activation."""

    def __init__(self, depth: int, n_heads: int, head_mask, attn_override):
        super().__init__(depth=depth, n_heads=n_heads, cache="all")
        self.head_mask, self.attn_override = head_mask, attn_override

    def wants(self, name: str) -> bool:
        return True

    def __call__(self, name: str, x: Array) -> Array:
        if name.startswith("blocks."):
            layer, point = int(name.split(".")[1]), name.split(".", 2)[2]
            if point == "attn.head_out" and self.head_mask is not None:
                x = x * self.head_mask[layer][:, None]
            if point == "attn.pattern" and self.attn_override is not None:
                if self.attn_override[layer] is not None:
                    x = self.attn_override[layer]
        return super().__call__(name, x)


def forward_with_activations(
    model: Transformer,
    features: Float[Array, "k1 dim"],
    labels: Int[Array, " k"],
    head_mask: Float[Array, "depth heads"] | None = None,
    attn_override: tuple[Float[Array, "heads T T"] | None, ...] | None = None,
) -> tuple[Float[Array, " n_labels"], dict]:
    """One sequence: logits and its activations stacked by layer (a view of :func:`forward`'s cache).

    ``resid`` (depth+1, T, d) residual stream before each block and after the last; ``attn``
    (depth, heads, T, T) patterns; ``head_out`` (depth, heads, T, d) each head's write (times
    ``head_mask``); ``mlp_out`` (depth, T, d) with MLPs. ``attn_override[L]`` replaces layer L's
    patterns.
    """
    depth = len(model.blocks)
    hooks = _LegacyHooks(depth, model.n_heads, head_mask, attn_override)
    logits = forward(model, features, labels, hooks)
    c = hooks.cache
    resid = [c["blocks.0.resid_pre"]] + [c[f"blocks.{i}.resid_post"] for i in range(depth)]
    acts = {
        "resid": jnp.stack(resid),
        "attn": jnp.stack([c[f"blocks.{i}.attn.pattern"] for i in range(depth)]),
        "head_out": jnp.stack([jnp.moveaxis(c[f"blocks.{i}.attn.head_out"], -2, -3) for i in range(depth)]),
    }
    if model.blocks[0].mlp is not None:
        acts["mlp_out"] = jnp.stack([c[f"blocks.{i}.mlp_out"] for i in range(depth)])
    return logits, acts


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
