"""Artificial optogenetics: specs, the single hooked forward pass, and the oracles of each edit.

Oracles: an identity intervention leaves training bitwise unchanged; ablating every head leaves the
direct path's logits; a pattern clamp of strength 1 records exactly the target; a fully replaced
pattern gives its head's Q and K zero gradient while V and O learn; ``preserve_patterns`` equals a
slow two-pass NumPy forward; ``perfect_copy`` and the target patterns follow their definitions.
"""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toymodels.errors import ConfigError
from transformer import (
    evaluate_all,
    evaluator_sets,
    gather_features,
    init_model,
    make_optimizer,
    make_train_chunk,
    preset_config,
    sample_sequences,
    synthetic_exemplars,
)
from transformer.evaluators import probe_sets
from transformer.model import forward
from transformer.opto import (
    CATALOGUE,
    Edit,
    Hooks,
    Intervention,
    TokenContext,
    interventions_from_json,
    interventions_to_json,
    parse_opto,
    run_with_edits,
    target_pattern,
)
from transformer.opto.catalogue import expand_all


def _tiny(**kw):
    return preset_config("tiny", **kw)


@pytest.fixture(scope="module")
def setup():
    cfg = _tiny()
    exemplars = jnp.asarray(
        synthetic_exemplars(
            cfg.n_classes, cfg.n_exemplars, cfg.synth_dim, cfg.synth_noise, 0, cfg.synth_offset
        )
    )
    model = init_model(cfg, cfg.synth_dim)
    seqs = sample_sequences(jax.random.PRNGKey(5), cfg.sequence_spec(), 12)
    feats = gather_features(exemplars, seqs)
    ctx = TokenContext(features=feats, labels=seqs.labels, classes=seqs.classes)
    return cfg, exemplars, model, seqs, feats, ctx


def _run(model, feats, ctx, interventions, cache=()):
    edits = expand_all(interventions, len(model.blocks), model.n_heads)
    return run_with_edits(model, feats, ctx, edits, cache=cache)


# ----------------------------------------------------------------------------------------------
# specs
# ----------------------------------------------------------------------------------------------


def test_cli_text_json_roundtrip_and_hashable():
    ivs = (
        parse_opto("prev_token_heads:layer=0,heads=0|1,strength=0.5,only_labels=true"),
        parse_opto("head_temperature:layer=1,heads=1,temperature=2"),
        Intervention("edits", edits=(Edit("attn.v", "mean", layers=(1,), heads=(0,), queries="labels"),)),
    )
    assert ivs[0] == Intervention("prev_token_heads", layer=0, heads=(0, 1), strength=0.5, only_labels=True)
    back = interventions_from_json(interventions_to_json(ivs))
    assert back == ivs and len({hash(iv) for iv in back}) == 3
    cfg = _tiny(opto=ivs)
    again = type(cfg).from_json(cfg.to_json())
    assert again == cfg and json.loads(cfg.to_json())["opto"][0]["name"] == "prev_token_heads"


@pytest.mark.parametrize(
    "text, match",
    [
        ("nope:layer=0", "unknown intervention 'nope'"),
        ("prev_token_heads:layer=5,heads=0", "layer 5 out of range"),
        ("prev_token_heads:layer=0,heads=9", "head 9 out of range"),
        ("prev_token_heads:layer=0,heads=0,strength=1.5", "strength must be in [0, 1]"),
        ("prev_token_heads:layer=0", "name the heads"),
        ("prev_token_heads:layer=0,heads=0,colour=red", "unknown key 'colour'"),
        ("perfect_copy:heads=0|1", "exactly one head"),
        ("head_temperature:layer=0,heads=0", "temperature > 0"),
    ],
)
def test_bad_interventions_are_config_errors(text, match):
    with pytest.raises(ConfigError, match=match.replace("[", r"\[").replace("]", r"\]")) as e:
        _tiny(opto=(parse_opto(text),))
    assert e.value.param == "opto"


def test_every_catalogue_entry_expands_to_edits():
    for name, entry in CATALOGUE.items():
        iv = Intervention(name, heads=(0,) if entry.needs_heads else (), temperature=1.0)
        edits = iv.expand(2, 2)
        assert edits and all(isinstance(e, Edit) for e in edits), name


# ----------------------------------------------------------------------------------------------
# oracles
# ----------------------------------------------------------------------------------------------


def test_no_edits_is_the_plain_forward_and_a_cache_changes_nothing(setup):
    cfg, _, model, seqs, feats, ctx = setup
    plain = forward(model, feats, seqs.labels)
    logits, cache = run_with_edits(model, feats, ctx, (), cache="all")
    np.testing.assert_allclose(logits, plain, rtol=0, atol=1e-6)
    assert cache["blocks.1.attn.pattern"].shape == (12, cfg.n_heads, cfg.seq_len, cfg.seq_len)
    assert cache["blocks.0.attn.q"].shape == (12, cfg.seq_len, cfg.n_heads, cfg.d_model // cfg.n_heads)
    np.testing.assert_allclose(cache["logits"], plain, atol=1e-6)
    # the heads' writes add up to the layer's output
    np.testing.assert_allclose(cache["blocks.1.attn.head_out"].sum(-2), cache["blocks.1.attn_out"], atol=1e-6)


def test_ablating_every_head_leaves_the_direct_path(setup):
    cfg, _, model, seqs, feats, ctx = setup
    ivs = tuple(
        Intervention("ablate_heads", layer=i, heads=tuple(range(cfg.n_heads))) for i in range(cfg.depth)
    )
    logits, _ = _run(model, feats, ctx, ivs)
    # independent: the query token's own embedding through the final LayerNorm and unembedding
    wx, bx = np.asarray(model.embed_x.weight, np.float64), np.asarray(model.embed_x.bias, np.float64)
    e = np.asarray(feats[:, -1], np.float64) @ wx.T + bx + np.asarray(model.pos[cfg.seq_len - 1], np.float64)
    u, c = (np.asarray(a, np.float64) for a in model.unembedding())
    direct = _layer_norm(e, model.ln_f) @ u.T + c
    np.testing.assert_allclose(logits, direct, rtol=1e-4, atol=1e-4)


def test_pattern_clamp_of_strength_1_records_exactly_the_target(setup):
    cfg, _, model, seqs, feats, ctx = setup
    iv = parse_opto("prev_token_heads:layer=0,heads=1,strength=1")
    _, cache = _run(model, feats, ctx, (iv,), cache=("blocks.0.attn.pattern",))
    _, free = _run(model, feats, ctx, (), cache=("blocks.0.attn.pattern",))
    p, p0 = np.asarray(cache["blocks.0.attn.pattern"]), np.asarray(free["blocks.0.attn.pattern"])
    target = np.asarray(target_pattern("prev_token", ctx))
    assert np.array_equal(p[:, 1], np.broadcast_to(target, p[:, 1].shape))
    assert np.array_equal(p[:, 0], p0[:, 0])  # the other head is untouched
    # strength 0.5 mixes the model's own pattern with the target
    half, _ = _run(
        model,
        feats,
        ctx,
        (parse_opto("prev_token_heads:layer=0,heads=1,strength=0.5"),),
        cache=("blocks.0.attn.pattern",),
    )
    _, half_cache = _run(
        model,
        feats,
        ctx,
        (parse_opto("prev_token_heads:layer=0,heads=1,strength=0.5"),),
        cache=("blocks.0.attn.pattern",),
    )
    np.testing.assert_allclose(
        half_cache["blocks.0.attn.pattern"][:, 1], 0.5 * p0[:, 1] + 0.5 * target, atol=1e-7
    )


def test_replaced_pattern_stops_q_and_k_gradients_but_v_and_o_learn(setup):
    _, _, model, seqs, feats, ctx = setup
    edits = expand_all((parse_opto("prev_token_heads:layer=0,heads=1,strength=1"),), 2, 2)

    def loss(m):
        logits, _ = run_with_edits(m, feats, ctx, edits)
        return (
            jax.nn.logsumexp(logits, -1).mean() - jnp.take_along_axis(logits, seqs.target[:, None], -1).mean()
        )

    g = jax.grad(loss)(model).blocks[0].attn
    assert np.all(np.asarray(g.wq[1]) == 0) and np.all(np.asarray(g.wk[1]) == 0)
    assert np.abs(np.asarray(g.wv[1])).max() > 0 and np.abs(np.asarray(g.wo[1])).max() > 0
    assert np.abs(np.asarray(g.wq[0])).max() > 0  # the free head still learns its pattern


def _layer_norm(x, ln):
    w, b = np.asarray(ln.weight, np.float64), np.asarray(ln.bias, np.float64)
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + ln.eps) * w + b


def _f64(a):
    return np.asarray(a, np.float64)


def _numpy_embed(model, x, labels, zero_embeddings=False):
    """The embedded tokens e of one sequence (learned positions included), float64."""
    k = len(labels)
    ex = _f64(x) @ _f64(model.embed_x.weight).T + _f64(model.embed_x.bias)
    lab = _f64(model.embed_label.weight)[labels]
    if zero_embeddings:
        ex, lab = 0 * ex, 0 * lab
    tokens = [ex[i // 2] if i % 2 == 0 else lab[i // 2] for i in range(2 * k)] + [ex[k]]
    return np.stack(tokens) + _f64(model.pos[: 2 * k + 1])


def _numpy_attention(block, h, h_qk=None, patterns=None):
    """What one attention layer adds to ``h`` and its patterns, with loops; queries and keys are
    read from ``h_qk`` when given (values always from ``h``), ``patterns`` replace the layer's."""
    a = block.attn
    y = _layer_norm(h, block.ln_attn)
    y_qk = y if h_qk is None else _layer_norm(h_qk, block.ln_attn)
    wq, wk, wv, wo = _f64(a.wq), _f64(a.wk), _f64(a.wv), _f64(a.wo)
    heads, dh, _ = wq.shape
    out = np.zeros_like(h)
    pats = np.zeros((heads, len(h), len(h)))
    for hd in range(heads):
        q, kk, v = y_qk @ wq[hd].T, y_qk @ wk[hd].T, y @ wv[hd].T
        for t in range(len(h)):
            s = np.array([q[t] @ kk[j] for j in range(t + 1)]) / np.sqrt(dh)
            p = np.exp(s - s.max())
            pats[hd, t, : t + 1] = p / p.sum()
        if patterns is not None:
            pats[hd] = patterns[hd]
        out += (pats[hd] @ v) @ wo[hd].T
    return out, pats


def _numpy_logits(model, h):
    u, c = (_f64(a) for a in model.unembedding())
    return _layer_norm(h[-1], model.ln_f) @ u.T + c


def _numpy_forward(model, x, labels, patterns=None, zero_embeddings=False):
    """One sequence in float64 with loops; ``patterns[L]`` (heads, T, T) replaces layer L's."""
    h = _numpy_embed(model, x, labels, zero_embeddings)
    seen = []
    for layer, block in enumerate(model.blocks):
        out, pats = _numpy_attention(block, h, patterns=None if patterns is None else patterns[layer])
        seen.append(pats)
        h = h + out
    return _numpy_logits(model, h), seen


def test_preserve_patterns_equals_a_two_pass_numpy_reference(setup):
    _, _, model, seqs, feats, ctx = setup
    ivs = (Intervention("preserve_patterns"), Intervention("ablate_embedding"))
    logits, _ = _run(model, feats, ctx, ivs)
    for i in range(4):
        x, labels = np.asarray(feats[i]), np.asarray(seqs.labels[i])
        _, first = _numpy_forward(model, x, labels)  # pass 1: the model's own patterns
        ref, _ = _numpy_forward(model, x, labels, patterns=first, zero_embeddings=True)  # pass 2
        np.testing.assert_allclose(np.asarray(logits[i]), ref, rtol=1e-4, atol=1e-4)
    # without the preservation, zeroed embeddings change the patterns and the logits
    ablated, _ = _run(model, feats, ctx, (Intervention("ablate_embedding"),))
    assert not np.allclose(ablated, logits, atol=1e-3)


def test_perfect_prev_token_input_equals_the_layer1_clamp_by_hand(setup):
    """The original's "Layer 1 clamp": Layer 2 reads the embeddings e (Layer 1 bypassed), with
    patterns computed from e_{t-1} at the context tokens (e_0 at token 0, the query its own)."""
    _, _, model, seqs, feats, ctx = setup
    logits, cache = _run(model, feats, ctx, (parse_opto("perfect_prev_token_input"),), cache="all")
    for i in range(4):
        x, labels = np.asarray(feats[i]), np.asarray(seqs.labels[i])
        e = _numpy_embed(model, x, labels)
        shifted = e.copy()
        shifted[1:-1] = e[:-2]
        out, pats = _numpy_attention(model.blocks[1], e, h_qk=shifted)
        np.testing.assert_allclose(np.asarray(logits[i]), _numpy_logits(model, e + out), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(cache["blocks.1.attn.pattern"][i]), pats, atol=1e-5)
    # Layer 1 still runs but nothing it writes reaches Layer 2: zeroing its heads changes nothing
    both = (parse_opto("perfect_prev_token_input"), parse_opto("ablate_heads:layer=0,heads=0|1"))
    np.testing.assert_allclose(np.asarray(_run(model, feats, ctx, both)[0]), np.asarray(logits), atol=2e-6)
    # the unclamped model differs, and with a shift of 0 in the reference pass it is the plain
    # bypass (scores computed from e itself)
    assert not np.allclose(np.asarray(forward(model, feats, seqs.labels)), np.asarray(logits), atol=1e-3)
    bypass = (Intervention("edits", edits=(Edit("resid_pre", "embedding", (1,), value=0.0),)),)
    plain_bypass = np.asarray(_run(model, feats, ctx, bypass)[0])
    for i in range(2):
        e = _numpy_embed(model, np.asarray(feats[i]), np.asarray(seqs.labels[i]))
        out, _ = _numpy_attention(model.blocks[1], e)
        np.testing.assert_allclose(plain_bypass[i], _numpy_logits(model, e + out), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "edit, match",
    [
        (dict(point="attn.q", op="embedding"), "embedding edits the residual stream"),
        (dict(point="resid_pre", op="embedding", value=0.5), "whole number"),
        (dict(point="resid_pre", op="embedding", value=-1.0), "whole number"),
        (dict(point="attn.pattern", op="reference", in_reference=True), "cannot be applied in it"),
    ],
)
def test_bad_embedding_and_reference_pass_edits(edit, match):
    with pytest.raises(ConfigError, match=match):
        Edit(**edit)


def test_reference_pass_edits_need_a_reader_and_layer_1_clamp_needs_a_layer_above_0():
    lone = Edit("resid_pre", "embedding", (1,), value=1.0, in_reference=True)
    with pytest.raises(ConfigError, match="need an edit that reads it"):
        expand_all((Intervention("edits", edits=(lone,)),), 2, 2)
    with pytest.raises(ConfigError, match="layer must be >= 1"):
        _tiny(opto=(parse_opto("perfect_prev_token_input:layer=0"),))


def test_perfect_copy_logits_are_the_heads_scores(setup):
    _, _, model, seqs, feats, ctx = setup
    logits, _ = _run(model, feats, ctx, (parse_opto("perfect_copy:layer=1,heads=0"),))
    _, ref = _run(model, feats, ctx, (), cache=("blocks.1.attn.scores",))
    scores = np.asarray(ref["blocks.1.attn.scores"])[:, 0, -1]
    logits = np.asarray(logits)
    for i in range(len(logits)):
        labels = np.asarray(seqs.labels[i])
        for j, lab in enumerate(labels):
            if lab not in labels[j + 1 :]:
                assert logits[i, lab] == scores[i, 2 * j + 1]
        assert np.all(logits[i, np.setdiff1d(np.arange(logits.shape[1]), labels)] == -1e9)


def test_target_patterns_follow_their_definitions(setup):
    _, _, _, seqs, feats, ctx = setup
    ind = np.asarray(target_pattern("induction", ctx))
    classes = np.asarray(seqs.classes)
    for i in range(len(classes)):
        row = ind[i, -1]
        same = np.flatnonzero(classes[i, :-1] == classes[i, -1])
        assert np.isclose(row.sum(), 1) and np.allclose(row[2 * same + 1], 1 / len(same))
        np.testing.assert_array_equal(ind[i, :-1], np.eye(5)[:-1])
    match = np.asarray(target_pattern("match", ctx, 0.0))
    x = np.asarray(feats, np.float64)
    for i in range(len(x)):
        cos = [x[i, j] @ x[i, -1] / np.linalg.norm(x[i, j]) / np.linalg.norm(x[i, -1]) for j in range(2)]
        assert match[i, -1, 2 * int(np.argmax(cos)) + 1] == 1.0 and match[i, -1, 0::2].sum() == 0


def test_head_temperature_and_disallowed_previous_token(setup):
    _, _, model, seqs, feats, ctx = setup
    names = ("blocks.0.attn.scores", "blocks.0.attn.pattern")
    _, free = _run(model, feats, ctx, (), cache=names)
    _, hot = _run(
        model, feats, ctx, (parse_opto("head_temperature:layer=0,heads=0,temperature=2"),), cache=names
    )
    np.testing.assert_allclose(
        hot["blocks.0.attn.scores"][:, 0], free["blocks.0.attn.scores"][:, 0] / 2, rtol=1e-6
    )
    _, blocked = _run(
        model, feats, ctx, (parse_opto("disallow_prev_token_heads:layer=0,heads=1"),), cache=names
    )
    p = np.asarray(blocked["blocks.0.attn.pattern"])[:, 1]
    t = np.arange(1, 5)
    assert np.all(p[:, t, t - 1] == 0) and np.allclose(p.sum(-1), 1)


# ----------------------------------------------------------------------------------------------
# training and evaluation
# ----------------------------------------------------------------------------------------------


def _train(cfg, exemplars, steps=6):
    model0 = init_model(cfg, cfg.synth_dim)
    opt0 = make_optimizer(cfg).init(eqx.filter(model0, eqx.is_array))
    return make_train_chunk(cfg)(model0, opt0, exemplars, jnp.asarray(0, jnp.int32), steps)


@pytest.mark.parametrize(
    "text",
    [
        "prev_token_heads:layer=0,heads=0,strength=0",
        "head_temperature:layer=1,heads=0|1,temperature=1",
    ],
)
def test_identity_interventions_leave_training_bitwise_unchanged(setup, text):
    cfg, exemplars, *_ = setup
    cfg = _tiny(lr=1e-2)
    plain = _train(cfg, exemplars)
    clamped = _train(_tiny(lr=1e-2, opto=(parse_opto(text),)), exemplars)
    assert np.array_equal(plain[2], clamped[2])
    for a, b in zip(jax.tree_util.tree_leaves(plain[0]), jax.tree_util.tree_leaves(clamped[0])):
        assert np.array_equal(a, b)


def test_embedding_shift_0_at_the_first_block_is_the_identity(setup):
    """The embedded tokens put back where they are: the forward pass is bitwise the plain one;
    training agrees to float rounding (the gather's gradient is summed in another order)."""
    cfg, exemplars, model, seqs, feats, ctx = setup
    text = '[{"name": "edits", "edits": [{"point": "resid_pre", "op": "embedding", "layers": [0]}]}]'
    opto = interventions_from_json(text)
    logits, _ = _run(model, feats, ctx, opto)
    assert np.array_equal(np.asarray(logits), np.asarray(forward(model, feats, seqs.labels)))
    plain = _train(_tiny(lr=1e-2), exemplars)
    edited = _train(_tiny(lr=1e-2, opto=opto), exemplars)
    np.testing.assert_allclose(np.asarray(edited[2]), np.asarray(plain[2]), rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(plain[0]), jax.tree_util.tree_leaves(edited[0])):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_every_named_intervention_trains_and_evaluates(setup, name):
    _, exemplars, *_ = setup
    entry = CATALOGUE[name]
    iv = Intervention(
        name,
        heads=(1,) if entry.needs_heads else (),
        temperature=0.5 if name in ("head_temperature", "match_heads") else None,
    )
    cfg = _tiny(opto=(iv,), n_eval=32, n_probe=16, evaluators=("icl",))
    model, _, losses = _train(cfg, exemplars, steps=4)
    assert np.all(np.isfinite(np.asarray(losses)))
    metrics, probes = evaluate_all(model, exemplars, evaluator_sets(cfg), probe_sets(cfg), cfg.edits())
    assert np.all(np.isfinite(np.asarray(metrics["icl"]["loss"])))
    assert probes["induction_strength_flip"].shape == (cfg.depth, cfg.n_heads)


def test_cli_trains_with_an_intervention_and_rejects_bad_ones(tmp_path, capsys):
    from transformer.cli import main

    out = tmp_path / "run"
    rc = main(
        [
            "--preset",
            "tiny",
            "--n-sequences",
            "320",
            "--eval-every",
            "10",
            "--no-progress",
            "--out",
            str(out),
            "--opto",
            "prev_token_heads:layer=0,heads=0,strength=1",
        ]
    )
    assert rc == 0
    import h5py

    with h5py.File(out / "log.h5") as f:
        cfg = json.loads(f.attrs["config"])
        prev = f["probes/prev_token_attn"][-1]
    assert cfg["opto"][0]["name"] == "prev_token_heads"
    assert prev[0, 0] == pytest.approx(1.0)  # the clamped head attends to the previous token
    capsys.readouterr()
    rc = main(["--preset", "tiny", "--out", str(tmp_path / "bad"), "--opto", "ablate_heads:layer=7,heads=0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --opto: ablate_heads: layer 7 out of range") and "\n" not in err
    assert not (tmp_path / "bad" / "log.h5").exists()
    bad_json = tmp_path / "x.json"
    bad_json.write_text('[{"name": "induction_heads", "heads": [0], "strength": 2}]')
    rc = main(["--preset", "tiny", "--out", str(tmp_path / "bad2"), "--opto-file", str(bad_json)])
    assert rc == 2 and "strength must be in [0, 1]" in capsys.readouterr().err


def test_hooks_without_context_say_what_is_missing(setup):
    _, _, model, seqs, feats, _ = setup
    edits = expand_all((parse_opto("induction_heads:heads=0"),), 2, 2)
    with pytest.raises(ValueError, match="context"):
        forward(model, feats, seqs.labels, Hooks(edits, 2, 2))


def test_set_to_a_given_array_and_mean_ablation(setup):
    cfg, _, model, seqs, feats, ctx = setup
    dh = cfg.d_model // cfg.n_heads
    value = np.arange(dh, dtype=np.float32) / dh
    set_v = Edit("attn.v", "set", layers=(1,), heads=(0,), queries="labels", array=tuple(value.tolist()))
    _, cache = run_with_edits(model, feats, ctx, (set_v,), cache=("blocks.1.attn.v",))
    _, free = run_with_edits(model, feats, ctx, (), cache=("blocks.1.attn.v",))
    v, v0 = np.asarray(cache["blocks.1.attn.v"]), np.asarray(free["blocks.1.attn.v"])
    assert np.array_equal(v[:, 1::2, 0], np.broadcast_to(value, v[:, 1::2, 0].shape))
    assert np.array_equal(v[:, 0::2, 0], v0[:, 0::2, 0]) and np.array_equal(v[:, :, 1], v0[:, :, 1])
    mean = Edit("resid_post", "mean", layers=(0,), queries="query")
    _, cache = run_with_edits(model, feats, ctx, (mean,), cache=("blocks.0.resid_post",))
    r = np.asarray(cache["blocks.0.resid_post"])
    _, free = run_with_edits(model, feats, ctx, (), cache=("blocks.0.resid_post",))
    r0 = np.asarray(free["blocks.0.resid_post"])
    np.testing.assert_allclose(r[:, -1], np.broadcast_to(r0[:, -1].mean(0), r[:, -1].shape), atol=1e-6)
    assert np.array_equal(r[:, :-1], r0[:, :-1])
