"""Checkpoint history, evaluation schedules, ``init_from`` and training distributions (issue 15).

Pure selection/schedule functions first (fast), then a few tiny runs that share compiled code.
"""

import dataclasses
import json
import math
import os

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer import (
    ConfigError,
    TrainConfig,
    batched_logits,
    gather_features,
    init_model,
    load_checkpoint,
    load_data,
    query_loss,
    structural,
    train,
)
from transformer.build import make_optimizer
from transformer.checkpoint import CheckpointInfo, checkpoint_at, list_checkpoints, transplant
from transformer.cli import main
from transformer.data import sample_sequences
from transformer.evaluators import evaluator_sets
from transformer.mixture import MixtureSpec, sample_mixture
from transformer.schedule import (
    eval_schedule,
    eval_steps,
    kept_evaluations,
    parse_eval_schedule,
    parse_keep,
    select_kept,
)
from transformer.trainer import chunk_lengths, make_train_chunk


def ckpt_dirs(run):
    return sorted(e for e in os.listdir(run) if e.startswith("ckpt-"))


# ----------------------------------------------------------------------------------------------
# Pure: schedules and checkpoint selection
# ----------------------------------------------------------------------------------------------


def test_eval_every_schedule_unchanged(tiny_config):
    cfg = tiny_config(n_sequences=16 * 130)
    assert eval_schedule(cfg) == [0, 50, 100, 130]
    assert eval_steps(200, 50) == [0, 50, 100, 150, 200]
    assert chunk_lengths(cfg, 37) == [37]


@pytest.mark.parametrize("n_steps, n", [(1, 5), (40, 6), (1000, 1), (1000, 2), (62_500, 100), (7, 50)])
def test_log_eval_schedule_properties(n_steps, n):
    steps = eval_steps(n_steps, 10**9, f"log:{n}")
    assert steps[0] == 0 and steps[-1] == n_steps
    assert all(b > a for a, b in zip(steps, steps[1:]))  # strictly increasing, no duplicates
    assert len(steps) <= n + 1
    if n >= 2:
        assert 1 in steps  # the geometric progression starts at step 1
    if n_steps >= 1000 and n >= 20:
        assert len(steps) >= n // 2  # about N
        gaps = np.diff(steps[1:])
        assert gaps[0] < gaps[-1] / 50  # dense early
        # log-spaced: successive ratios of the later points are about (n_steps)^(1/(n-1))
        ratios = np.array(steps[-10:][1:]) / np.array(steps[-10:][:-1])
        np.testing.assert_allclose(ratios, n_steps ** (1 / (n - 1)), rtol=0.02)


def test_chunk_lengths_powers_of_two(tiny_config):
    cfg = tiny_config(eval_schedule="log:10")
    for n in (1, 2, 37, 64, 1000):
        parts = chunk_lengths(cfg, n)
        assert sum(parts) == n and all(p & (p - 1) == 0 for p in parts)
        assert parts == sorted(parts, reverse=True)


def test_select_kept_modes():
    seen = [0, 100, 200, 400, 800, 1600, 3200, 6400]  # evaluations 1..8
    assert select_kept(seen, "all") == set(range(1, 9))
    assert select_kept(seen, "none") == set()
    assert select_kept(seen, "every:3") == {3, 6}
    assert select_kept(seen, "every:1") == set(range(1, 9))
    # sequences seen: the first evaluation at or after each value; 0 = the initial model
    assert select_kept(seen, "0,150,400,6400") == {1, 3, 4, 8}
    assert select_kept(seen, "1e2") == {2}
    # log:N: first evaluation after 0 and the last, log-spaced in between
    assert select_kept(seen, "log:1") == {8}
    assert select_kept(seen, "log:2") == {2, 8}
    assert select_kept(seen, "log:7") == set(range(2, 9))  # targets 100·2^j hit each exactly
    assert select_kept(seen, "log:30") == set(range(2, 9))  # more targets than evaluations
    linear = list(range(0, 10_001, 100))  # 101 evaluations every 100 sequences
    kept = select_kept(linear, "log:5")
    assert min(kept) == 2 and max(kept) == 101 and len(kept) == 5
    # targets 100 · 100^(j/4) = 100, 316.2, 1000, 3162.3, 10000 → the evaluations at or after them
    assert kept == {2, 5, 11, 33, 101}


@pytest.mark.parametrize(
    "text", ["log:0", "every:0", "log:", "log:x", "sometimes", "100,,200", "-5", "", "every:1.5", "lin:3"]
)
def test_parse_keep_rejects(text):
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        parse_keep(text)


def test_parse_eval_schedule():
    assert parse_eval_schedule(None) is None and parse_eval_schedule("log:30") == 30
    for bad in ("foo", "log:0", "every:3", "log"):
        with pytest.raises(ConfigError, match="eval_schedule"):
            parse_eval_schedule(bad)


def test_config_fields_validation_and_structural(tiny_config):
    cfg = tiny_config(mix=(("bursty", 0.9), ("icl_only", 0.1)), keep_checkpoints="all",
                      eval_schedule="log:20", init_from="/somewhere")
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    key = structural(cfg)
    assert key.mix == cfg.mix and key.train_kind == cfg.train_kind
    assert key == structural(dataclasses.replace(cfg, keep_checkpoints="every:3", eval_schedule=None,
                                                 init_from=None))
    assert structural(dataclasses.replace(cfg, mix=())) != key
    assert structural(tiny_config(train_kind="ciwl_only")) != structural(tiny_config())
    for bad, field in [
        (dict(train_kind="nope"), "train_kind"),
        (dict(mix=(("bursty", -1.0),)), "mix"),
        (dict(mix=(("bursty", float("nan")),)), "mix"),
        (dict(mix=(("flip", 1.0),)), "mix"),
        (dict(mix=(("bursty", 1.0), ("bursty", 2.0))), "mix"),
        (dict(keep_checkpoints="log:0"), "keep_checkpoints"),
        (dict(keep_checkpoints=str(16 * 200 + 1)), "keep_checkpoints"),  # past the last evaluation
        (dict(eval_schedule="foo"), "eval_schedule"),
    ]:
        with pytest.raises(ConfigError, match=field):
            tiny_config(**bad)
    assert kept_evaluations(tiny_config(keep_checkpoints="3200")) == {5}


def _fake_run(root, entries):
    """A run directory with checkpoints ``(evals, steps, seen or None)`` (empty model files)."""
    cfg = json.dumps({"batch_size": 10})
    for evals, steps, seen in entries:
        d = root / f"ckpt-{evals:06d}"
        d.mkdir(parents=True)
        (d / "model.eqx").write_bytes(b"")
        meta = {"config": cfg, "steps": steps, "evals": evals}
        if seen is not None:
            meta["seen"] = seen
        (d / "meta.json").write_text(json.dumps(meta))
    return str(root)


def test_list_and_pick_checkpoints(tmp_path):
    run = _fake_run(tmp_path / "run", [(3, 20, 200), (1, 0, 0), (6, 50, None), (9, 90, 900)])
    (tmp_path / "run" / "ckpt-000004").mkdir()  # no files: not a checkpoint
    (tmp_path / "run" / "latest").write_text("ckpt-000009")
    found = list_checkpoints(run)
    assert [c.evals for c in found] == [1, 3, 6, 9]
    assert found[2] == CheckpointInfo(6, 50, 500, os.path.join(run, "ckpt-000006"))  # seen = steps × batch
    assert checkpoint_at(run, "last").evals == 9
    assert checkpoint_at(run, 0).evals == 1
    assert checkpoint_at(run, "499").evals == 3  # at or before
    assert checkpoint_at(run, 500).evals == 6
    assert checkpoint_at(run, "1e6").evals == 9
    assert list_checkpoints(str(tmp_path / "nothing")) == []
    with pytest.raises(ConfigError, match="modules_from: must be 'last' or a number"):
        checkpoint_at(run, "soon", what="modules_from")
    late = _fake_run(tmp_path / "late", [(2, 10, 100), (4, 30, 300)])
    with pytest.raises(ConfigError, match=r"no checkpoint at or before 50 .*kept: 100, 300"):
        checkpoint_at(late, 50)
    with pytest.raises(ConfigError, match="no checkpoints"):
        checkpoint_at(str(tmp_path), "last")


# ----------------------------------------------------------------------------------------------
# Training distributions
# ----------------------------------------------------------------------------------------------


def _kind_invariants(kind, s, label_set=2):
    """Per-sequence booleans: does each sequence have ``kind``'s defining property?"""
    ctx, q = s.classes[:, :-1], s.classes[:, -1]
    q_in_ctx = (ctx == q[:, None]).any(1)
    target_in_labels = (s.labels == s.target[:, None]).any(1)
    labels_are_classes = (s.labels == ctx).all(1)
    if kind == "bursty":
        return q_in_ctx & labels_are_classes & (s.target == q)
    if kind == "icl_only":
        q_labels = np.where(ctx == q[:, None], s.labels, s.target[:, None])
        return q_in_ctx & (q_labels == s.target[:, None]).all(1) & (s.target < label_set)
    if kind == "ciwl_only":  # query class absent, its label on another class's exemplars
        return ~q_in_ctx & target_in_labels & (s.target == q) & ~labels_are_classes
    if kind == "iwl_only":  # query class absent, all context classes distinct
        distinct = np.array([len(set(r)) == len(r) for r in ctx])
        return ~q_in_ctx & ~target_in_labels & labels_are_classes & distinct & (s.target == q)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["bursty", "icl_only", "ciwl_only", "iwl_only"])
def test_train_kind_invariants(tiny_config, kind):
    cfg = tiny_config(train_kind=kind, context_pairs=4, icl_label_set=4)
    s = jax.device_get(sample_sequences(jax.random.PRNGKey(0), cfg.sequence_spec(), 400))
    assert _kind_invariants(kind, s, cfg.icl_label_set).all()
    others = [k for k in ("bursty", "ciwl_only", "iwl_only") if k != kind]
    for other in others:  # the invariants tell the kinds apart
        assert not _kind_invariants(other, s).all()


def test_mix_frequencies_and_invariants(tiny_config):
    mix = (("bursty", 0.5), ("icl_only", 0.1), ("ciwl_only", 0.25), ("iwl_only", 0.15))
    cfg = tiny_config(mix=mix, context_pairs=4, icl_label_set=4)
    spec = cfg.sequence_spec()
    assert isinstance(spec, MixtureSpec)
    n = 20_000
    key = jax.random.PRNGKey(3)
    seqs, which = jax.device_get(jax.jit(sample_mixture, static_argnums=(1, 2))(key, spec, n))
    for i, (kind, w) in enumerate(mix):
        count = int((which == i).sum())
        assert abs(count - n * w) < 4.5 * math.sqrt(n * w * (1 - w)), (kind, count)
        part = jax.tree_util.tree_map(lambda a, m=(which == i): a[m], seqs)
        assert _kind_invariants(kind, part, cfg.icl_label_set).all(), kind
    # sample_sequences draws the same batch from a mixture spec
    plain = sample_sequences(key, spec, n)
    for a, b in zip(plain, seqs):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------------------------
# Runs: kept checkpoints, resume, init_from
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_run(tmp_path_factory, tiny_config):
    """4 steps, log-spaced evaluations at steps [0, 1, 2, 4] (sequences seen [0, 16, 32, 64]), the
    latest checkpoint refreshed every 3 evaluations, the evaluations at 0 and 16 sequences kept
    (evaluations 1 and 2). Scans of 1 and 2 steps: two compilations, shared by the later runs."""
    cfg = tiny_config(n_sequences=16 * 4, eval_schedule="log:3", keep_checkpoints="0,16",
                      checkpoint_every=3, n_eval=32, n_probe=8)
    out = str(tmp_path_factory.mktemp("history") / "run")
    train(cfg, out, progress=False)
    return cfg, out


def test_run_keeps_expected_checkpoints(history_run):
    cfg, out = history_run
    assert eval_schedule(cfg) == [0, 1, 2, 4]
    assert kept_evaluations(cfg) == {1, 2}
    # 1 and 2 written as history; 3 was the latest until 4 replaced it
    assert ckpt_dirs(out) == ["ckpt-000001", "ckpt-000002", "ckpt-000004"]
    assert open(os.path.join(out, "latest")).read().strip() == "ckpt-000004"
    for name in ("ckpt-000001", "ckpt-000002"):  # history: model and meta only
        assert sorted(os.listdir(os.path.join(out, name))) == ["meta.json", "model.eqx"]
    assert sorted(os.listdir(os.path.join(out, "ckpt-000004"))) == [
        "log.h5", "meta.json", "model.eqx", "opt.eqx"]
    with h5py.File(os.path.join(out, "log.h5"), "r") as f:
        np.testing.assert_array_equal(f["eval_iter"][:], [0, 16, 32, 64])
        np.testing.assert_array_equal(f["train_iter"][:], 16 * np.arange(1, 5))
    found = list_checkpoints(out)
    assert [(c.evals, c.steps, c.seen) for c in found] == [(1, 0, 0), (2, 1, 16), (4, 4, 64)]
    assert checkpoint_at(out, "last").evals == 4
    assert checkpoint_at(out, 63).evals == 2 and checkpoint_at(out, 64).evals == 4
    with pytest.raises(ConfigError, match=r"kept: 0, 16, 64\)"):
        checkpoint_at(out, -1)
    # a history checkpoint loads like any other: the initial model is init_seed's
    hist_cfg, initial = load_checkpoint(found[0].path)
    assert hist_cfg == cfg
    for x, y in zip(jax.tree_util.tree_leaves(initial), jax.tree_util.tree_leaves(init_model(cfg, 8))):
        np.testing.assert_array_equal(x, y)


def test_interrupted_equals_uninterrupted(history_run, tmp_path, read_all):
    cfg, clean = history_run
    run = str(tmp_path / "run")
    train(cfg, run, progress=False, stop_after_evals=2)
    # evaluation 2 is kept and the stop point: resumable for now
    assert ckpt_dirs(run) == ["ckpt-000001", "ckpt-000002"]
    assert "opt.eqx" in os.listdir(os.path.join(run, "ckpt-000002"))
    train(cfg, run, progress=False, resume=True, stop_after_evals=3)
    assert ckpt_dirs(run) == ["ckpt-000001", "ckpt-000002", "ckpt-000003"]
    assert sorted(os.listdir(os.path.join(run, "ckpt-000002"))) == ["meta.json", "model.eqx"]
    train(cfg, run, progress=False, resume=True)
    assert ckpt_dirs(run) == ckpt_dirs(clean)
    for name in ckpt_dirs(clean):
        files = sorted(os.listdir(os.path.join(clean, name)))
        assert sorted(os.listdir(os.path.join(run, name))) == files
        for file in files:
            if file != "log.h5":  # an HDF5 file's bytes depend on how it was appended to
                with open(os.path.join(run, name, file), "rb") as a:
                    with open(os.path.join(clean, name, file), "rb") as b:
                        assert a.read() == b.read(), (name, file)
    a, b = read_all(os.path.join(run, "log.h5")), read_all(os.path.join(clean, "log.h5"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_init_from_donor_weights_fresh_optimiser(history_run, tmp_path, tiny_config, read_all):
    _, donor = history_run
    cfg = tiny_config(n_sequences=16 * 2, init_from=donor, init_seed=5, train_seed=9,
                      keep_checkpoints="none", n_eval=32, n_probe=8)
    out = str(tmp_path / "from")
    train(cfg, out, progress=False)
    # the step-0 evaluation sees the donor's final model (same evaluation sets: same eval_seed)
    mine, theirs = read_all(os.path.join(out, "log.h5")), read_all(os.path.join(donor, "log.h5"))
    for name in ("train_eval/loss", "icl/acc", "probes/induction_strength"):
        np.testing.assert_array_equal(mine[name][0], theirs[name][-1], err_msg=name)
    # then 2 Adam steps from a fresh optimiser state on this run's data (train_seed 9)
    start = load_checkpoint(donor)[1]
    optimizer = make_optimizer(cfg)
    exemplars = jnp.asarray(load_data(cfg))
    expected, _, losses = make_train_chunk(cfg)(
        start, optimizer.init(eqx.filter(start, eqx.is_array)), exemplars, jnp.asarray(0, jnp.int32), 2
    )
    np.testing.assert_array_equal(mine["train_loss"], np.asarray(losses))
    final = load_checkpoint(out)[1]
    for x, y in zip(jax.tree_util.tree_leaves(final), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_array_equal(x, y)
    assert ckpt_dirs(out) == ["ckpt-000002"]  # keep_checkpoints none: the latest only


def test_init_from_bad_shapes(history_run, tmp_path, tiny_config):
    _, donor = history_run
    shapes = r"init_from: the checkpoint's .* is float32\[.*16.*\], this run's float32"
    with pytest.raises(ConfigError, match=shapes) as e:
        train(tiny_config(init_from=donor, d_model=8), str(tmp_path / "o"), progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o").exists()  # nothing written
    with pytest.raises(ConfigError, match="init_from: no checkpoint"):
        train(tiny_config(init_from=str(tmp_path / "none"), n_eval=32, n_probe=8), str(tmp_path / "o"),
              progress=False)
    # transplant itself, on small pytrees
    ones = {"a": jnp.ones(2), "b": jnp.ones((2, 3))}
    assert transplant({"a": jnp.zeros(2), "b": jnp.zeros((2, 3))}, ones)["b"].sum() == 6
    with pytest.raises(ConfigError, match=r"init_from: .*differs in structure .*\['[bc]'\]"):
        transplant({"a": jnp.zeros(2), "c": jnp.zeros((2, 3))}, ones)
    with pytest.raises(ConfigError, match=r"graft_from: the checkpoint's \['b'\] is float32\[2, 3\]"):
        transplant({"a": jnp.zeros(2), "b": jnp.zeros((3, 2))}, ones, what="graft_from")


def test_mix_in_training_and_train_eval(tiny_config):
    """The training scan and the ``train_eval`` set sample the mixture."""
    cfg = tiny_config(mix=(("bursty", 0.5), ("iwl_only", 0.5)), evaluators=("train_eval",), n_eval=200)
    train_eval = jax.device_get(evaluator_sets(cfg)["train_eval"])
    fraction_iwl = _kind_invariants("iwl_only", train_eval).mean()
    assert 0.3 < fraction_iwl < 0.7 and _kind_invariants("bursty", train_eval).mean() == 1 - fraction_iwl
    # step 0's loss is the initial model's loss on the mixture batch drawn from fold_in(key, 0)
    model = init_model(tiny_config(n_eval=32, n_probe=8), cfg.synth_dim)  # same model, compiled once
    exemplars = jnp.asarray(load_data(cfg))
    opt = make_optimizer(cfg).init(eqx.filter(model, eqx.is_array))
    _, _, losses = make_train_chunk(cfg)(model, opt, exemplars, jnp.asarray(0, jnp.int32), 4)
    seqs = jax.jit(sample_sequences, static_argnums=(1, 2))(
        jax.random.fold_in(jax.random.PRNGKey(cfg.train_seed), 0), cfg.sequence_spec(), cfg.batch_size
    )
    assert 0 < _kind_invariants("iwl_only", jax.device_get(seqs)).sum() < cfg.batch_size
    loss = jax.jit(lambda m, s: query_loss(batched_logits(m, gather_features(exemplars, s), s.labels),
                                           s.target).mean())
    np.testing.assert_allclose(losses[0], loss(model, seqs), rtol=1e-5)
    assert np.isfinite(np.asarray(losses)).all()


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--keep-checkpoints", "log:0"], "--keep-checkpoints: N of log:N must be an integer >= 1"),
        (["--keep-checkpoints", "sometimes"], "--keep-checkpoints: must be all, none"),
        (["--mix", "bursty:-1"], "--mix: the weight of 'bursty' must be finite and > 0, got -1.0"),
        (["--mix", "bursty"], "--mix: cannot parse 'bursty' as KIND:WEIGHT pairs"),
        (["--mix", "nope:1"], "--mix: unknown kind 'nope'"),
        (["--train-kind", "nope"], "--train-kind: must be one of bursty, icl_only, ciwl_only"),
        (["--eval-schedule", "foo"], "--eval-schedule: must be 'log:N'"),
        # (n_eval/n_probe of the runs above: the model's compiled initialiser is shared)
        (["--init-from", "/nonexistent/run", "--n-eval", "32", "--n-probe", "8"],
         "--init-from: no checkpoint"),
    ],
)
def test_cli_bad_values(tmp_path, capsys, extra, match):
    rc = main(["--preset", "tiny", "--out", str(tmp_path / "o"), "--no-progress"] + extra)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o").exists()


def test_cli_parses_the_new_fields(tmp_path):
    from transformer.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        ["--preset", "tiny", "--out", str(tmp_path), "--mix", "bursty:0.9,icl_only:0.1",
         "--keep-checkpoints", "1600,3200", "--eval-schedule", "log:12", "--init-from", "RUN"]
    )
    cfg = config_from_args(args)
    assert cfg.mix == (("bursty", 0.9), ("icl_only", 0.1))
    assert (cfg.keep_checkpoints, cfg.eval_schedule, cfg.init_from) == ("1600,3200", "log:12", "RUN")
    args = build_parser().parse_args(["--preset", "tiny", "--out", str(tmp_path), "--eval-schedule", "none"])
    assert config_from_args(args).eval_schedule is None
