"""The Equinox transformer: causality, activation pytree under interventions, batched logits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer import model as M
from transformer.model import Transformer
from transformer.opto import Hooks

# compiled once per model config (eager dispatch of many small ops is far slower)
forward_with_activations = jax.jit(M.forward_with_activations)
forward = jax.jit(M.forward)
batched_logits = jax.jit(M.batched_logits)

K, DIM, LABELS = 3, 5, 11
T = 2 * K + 1


@functools.cache
def make(positional="learned", mlp=False, depth=2, seed=0, tie_labels=False,
         unembed_init="independent"):
    """Built once per configuration (eager: op compilations are shared across configs)."""
    return Transformer(DIM, LABELS, T, depth=depth, d_model=16, n_heads=4, mlp=mlp,
                       positional=positional, tie_labels=tie_labels, unembed_init=unembed_init,
                       key=jax.random.PRNGKey(seed))


def inputs(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((K + 1, DIM)).astype(np.float32), rng.integers(0, LABELS, K)


@pytest.mark.parametrize("positional, mlp", [("learned", False), ("rope", False),
                                             ("sinusoidal", True)])
def test_attention_is_causal(positional, mlp):
    """Changing token t never changes the residual stream at positions < t."""
    model = make(positional, mlp)
    feats, labels = inputs()
    _, base = forward_with_activations(model, feats, labels)
    # token positions: exemplar i at 2i, label i at 2i+1, query at 2K
    for pos in range(T):
        f2, l2 = np.array(feats), np.array(labels)
        if pos % 2 == 0:
            f2[pos // 2] += 3.0
        else:
            l2[pos // 2] = (l2[pos // 2] + 1) % LABELS
        _, acts = forward_with_activations(model, f2, l2)
        np.testing.assert_array_equal(acts["resid"][:, :pos], base["resid"][:, :pos])
        assert not np.allclose(acts["resid"][-1, pos:], base["resid"][-1, pos:])
    attn = base["attn"]
    assert attn.shape == (2, 4, T, T)
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(np.asarray(attn), k=1) == 0)


def test_activation_pytree_shapes_and_residual_sum():
    model = make(mlp=True)
    feats, labels = inputs()
    logits, acts = forward_with_activations(model, feats, labels)
    assert logits.shape == (LABELS,)
    assert acts["resid"].shape == (3, T, 16)
    assert acts["head_out"].shape == (2, 4, T, 16)
    assert acts["mlp_out"].shape == (2, T, 16)
    # resid_{l+1} = resid_l + Σ_heads head_out + mlp_out
    for layer in range(2):
        np.testing.assert_allclose(
            acts["resid"][layer + 1],
            acts["resid"][layer] + acts["head_out"][layer].sum(0) + acts["mlp_out"][layer],
            atol=1e-5,
        )
    np.testing.assert_allclose(logits, forward(model, feats, labels), atol=1e-6)


def test_zeroed_heads_are_reflected():
    model = make()
    feats, labels = inputs()
    mask = np.ones((2, 4), np.float32)
    mask[1, 2] = mask[0, 0] = 0.0
    logits, acts = forward_with_activations(model, feats, labels, head_mask=mask)
    np.testing.assert_array_equal(acts["head_out"][1, 2], 0.0)
    np.testing.assert_array_equal(acts["head_out"][0, 0], 0.0)
    assert np.abs(np.asarray(acts["head_out"][1, 1])).max() > 0
    assert not np.allclose(logits, forward(model, feats, labels))
    # every head zeroed in an attention-only model: the residual stream never changes
    _, acts = forward_with_activations(model, feats, labels, head_mask=np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(acts["resid"][2], acts["resid"][0])


def test_clamped_attention_is_reflected():
    model = make()
    feats, labels = inputs()
    # Layer 2: every head attends from every position to position 0 only
    clamp = np.zeros((4, T, T), np.float32)
    clamp[:, :, 0] = 1.0
    logits, acts = forward_with_activations(model, feats, labels, attn_override=(None, clamp))
    np.testing.assert_array_equal(acts["attn"][1], clamp)
    _, free = forward_with_activations(model, feats, labels)
    np.testing.assert_array_equal(acts["attn"][0], free["attn"][0])  # layer 1 untouched
    # with a one-hot pattern, each head writes the same vector at every position
    ho = np.asarray(acts["head_out"][1])
    np.testing.assert_allclose(ho, np.broadcast_to(ho[:, :1], ho.shape), atol=1e-6)
    assert not np.allclose(logits, forward(model, feats, labels))


def _reference_attention(attn, x):
    """Independent slow attention: per head, per query position, with NumPy loops."""
    wq, wk, wv, wo = (np.asarray(w, np.float64) for w in (attn.wq, attn.wk, attn.wv, attn.wo))
    x = np.asarray(x, np.float64)
    heads, dh, _ = wq.shape
    t_len = x.shape[0]
    out, patterns = np.zeros_like(x), np.zeros((heads, t_len, t_len))

    def rope(m):  # rotate (first half, second half) coordinate pairs of token t by t * theta_j
        half = dh // 2
        r = m.copy()
        for t in range(t_len):
            for j in range(half):
                a = t * 10000.0 ** (-j / half)
                r[t, j] = m[t, j] * np.cos(a) - m[t, j + half] * np.sin(a)
                r[t, j + half] = m[t, j] * np.sin(a) + m[t, j + half] * np.cos(a)
        return r

    for h in range(heads):
        q, k, v = x @ wq[h].T, x @ wk[h].T, x @ wv[h].T
        if attn.rope:
            q, k = rope(q), rope(k)
        for t in range(t_len):
            s = np.array([q[t] @ k[j] for j in range(t + 1)]) / np.sqrt(dh)
            p = np.exp(s - s.max())
            p /= p.sum()
            patterns[h, t, : t + 1] = p
            out[t] += wo[h] @ (p @ v[: t + 1])
    return out, patterns


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_attention_matches_slow_reference(positional):
    """Both attention paths (one sequence with patterns; a batch, summed) equal NumPy loops."""
    attn = make(positional).blocks[1].attn
    x = np.random.default_rng(4).standard_normal((3, T, 16)).astype(np.float32)
    ref = [_reference_attention(attn, xi) for xi in x]
    def one_sequence_fn(a, xi):  # per-head outputs and patterns recorded through hooks
        hooks = Hooks(n_heads=4, cache=("attn.pattern", "attn.head_out"))
        out = a.forward(xi, hooks)
        return out, hooks.cache["attn.pattern"], jnp.moveaxis(hooks.cache["attn.head_out"], -2, 0)

    one_sequence = jax.jit(one_sequence_fn)
    for xi, (out, patterns) in zip(x, ref):
        got, got_patterns, head_out = one_sequence(attn, xi)
        np.testing.assert_allclose(got, out, atol=1e-5)
        np.testing.assert_allclose(got_patterns, patterns, atol=1e-6)
        np.testing.assert_allclose(np.asarray(head_out).sum(0), out, atol=1e-5)
    batch = jax.jit(lambda a, xs: a.forward(xs))(attn, x)
    np.testing.assert_allclose(batch, np.stack([o for o, _ in ref]), atol=1e-5)


@pytest.mark.parametrize("positional, mlp", [("learned", True), ("rope", False),
                                             ("sinusoidal", False)])
def test_batched_logits_match_per_sequence_forward(positional, mlp):
    model = make(positional, mlp)
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((6, K + 1, DIM)).astype(np.float32)
    labels = rng.integers(0, LABELS, (6, K))
    per_seq = jax.vmap(forward, in_axes=(None, 0, 0))(model, feats, labels)
    np.testing.assert_allclose(batched_logits(model, feats, labels), per_seq, atol=1e-5)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="d_model"):
        Transformer(DIM, LABELS, T, d_model=10, n_heads=4, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="positional"):
        Transformer(DIM, LABELS, T, positional="alibi", key=jax.random.PRNGKey(0))


def test_initialisation_matches_the_original_study():
    """LeCun-normal weights (std 1/sqrt(fan_in), truncated normal) with zero biases; label
    table 0.02 x truncated N(0,1); learned positions U(+-1/sqrt(32))."""
    d, n_labels, dim = 64, 4096, 48
    m = Transformer(dim, n_labels, T, d_model=d, n_heads=8, mlp=True, key=jax.random.PRNGKey(0))
    attn = m.blocks[0].attn
    for w, fan_in in [(m.embed_x.weight, dim), (attn.wq, d), (attn.wk, d), (attn.wv, d),
                      (attn.wo, d), (m.blocks[0].mlp.up.weight, d),
                      (m.blocks[0].mlp.down.weight, 4 * d), (m.unembed.weight, d)]:
        w = np.asarray(w)
        assert np.std(w) == pytest.approx(1 / np.sqrt(fan_in), rel=0.06)
        # a unit normal cut at +-2 (std 0.8796), rescaled to std 1/sqrt(fan_in)
        assert np.abs(w).max() <= 2 / 0.87962566 / np.sqrt(fan_in) * 1.0001
    for b in (m.embed_x.bias, m.unembed.bias, m.blocks[0].mlp.up.bias):
        np.testing.assert_array_equal(b, 0.0)
    table = np.asarray(m.embed_label.weight)
    assert table.shape == (n_labels, d)
    assert np.abs(table).max() <= 0.04 * 1.0001
    assert np.std(table) == pytest.approx(0.02 * 0.8796, rel=0.02)  # std of N(0,1) cut at +-2
    assert np.abs(np.asarray(m.pos)).max() <= 1 / np.sqrt(32)
    assert np.std(np.asarray(m.pos)) == pytest.approx(1 / np.sqrt(3 * 32), rel=0.15)
    big = Transformer(dim, 64, T, d_model=d, n_heads=8, label_init_scale=1.0,
                      key=jax.random.PRNGKey(0))
    assert np.std(np.asarray(big.embed_label.weight)) == pytest.approx(0.8796, rel=0.05)
    with pytest.raises(ValueError, match="label_init_scale"):
        Transformer(dim, 64, T, label_init_scale=0.0, key=jax.random.PRNGKey(0))


def test_tied_label_unembedding():
    """With ``tie_labels`` the logits are ``E z + c`` with E the label-embedding table."""
    model = make(tie_labels=True)
    assert model.unembed is None
    feats, labels = inputs()
    logits, acts = forward_with_activations(model, feats, labels)
    z = model.ln_f(acts["resid"][-1, -1])
    np.testing.assert_allclose(logits, model.embed_label.weight @ z + model.unembed_bias, atol=1e-5)
    # the gradient of a logit reaches the label table through both roles
    g = jax.jit(jax.grad(lambda m: M.forward(m, feats, labels)[0]))(model)
    assert np.abs(np.asarray(g.embed_label.weight[0])).max() > 0


def test_unembed_initialised_from_label_table():
    """``unembed_init="labels"``: untied, but U starts equal to the label table (bias 0)."""
    model = make(unembed_init="labels")
    np.testing.assert_array_equal(model.unembed.weight, model.embed_label.weight)
    np.testing.assert_array_equal(model.unembed.bias, 0.0)
    g = jax.jit(jax.grad(lambda m: M.forward(m, *inputs())[0]))(model)
    assert not np.allclose(g.unembed.weight, g.embed_label.weight)  # separate parameters
    with pytest.raises(ValueError, match="unembed_init"):
        Transformer(DIM, LABELS, T, d_model=16, n_heads=4, unembed_init="zeros",
                    key=jax.random.PRNGKey(0))


def test_query_loss_is_cross_entropy_with_softmax_gradient():
    """Loss = -log softmax(z)[t] (NumPy, float64) and its gradient is softmax(z) - onehot(t)."""
    rng = np.random.default_rng(3)
    logits = (8 * rng.standard_normal((6, 50))).astype(np.float32)
    target = rng.integers(0, 50, 6)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -np.log(p[np.arange(6), target])
    np.testing.assert_allclose(M.query_loss(logits, target), expected, rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda z: M.query_loss(z, target).sum())(logits)
    np.testing.assert_allclose(grad, p - np.eye(50)[target], atol=1e-6)
