"""Trainer: loss goes down, log layout, determinism/resume (incl. SIGKILL), grafting, CLI errors."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import equinox as eqx
import h5py
import jax
import numpy as np
import pytest

from transformer import (
    ConfigError,
    TrainConfig,
    init_model,
    load_data,
    preset_config,
    synthetic_exemplars,
    train,
    write_exemplar_file,
)
from transformer.cli import main

EVALUATORS = ("train_eval", "icl", "iwl_copy_avail", "flip_icl", "pure_iwl")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config()
    log = train(cfg, str(out), progress=False)
    return cfg, str(out), log


def test_training_reduces_loss(tiny_run):
    cfg, _, log = tiny_run
    with h5py.File(log, "r") as f:
        loss = f["train_loss"][:]
        train_eval = f["train_eval/loss"][:].mean(1)
        assert len(loss) == cfg.n_steps == 200
    # the initial loss is about log(n_labels); a few hundred steps must bring it well below
    assert abs(loss[:10].mean() - np.log(cfg.n_classes)) < 0.5
    assert loss[-20:].mean() < loss[:20].mean() - 1.0
    assert train_eval[-1] < train_eval[0] - 1.0


def test_log_layout_and_links(tiny_run):
    cfg, _, log = tiny_run
    n_evals = cfg.n_steps // cfg.eval_every + 1
    with h5py.File(log, "r") as f:
        np.testing.assert_array_equal(
            f["eval_iter"][:], np.arange(n_evals) * cfg.eval_every * cfg.batch_size
        )
        for name in EVALUATORS:
            for m in ("loss", "acc", "in_context_acc", "prob"):
                assert f[name][m].shape == (n_evals, cfg.n_eval), (name, m)
            np.testing.assert_allclose(f[name]["prob"][:], np.exp(-f[name]["loss"][:]), rtol=1e-5)
            assert set(np.unique(f[name]["acc"][:])) <= {0.0, 1.0}
        # IWL: the target label is never in context, so in-context accuracy is 0
        assert f["pure_iwl/in_context_acc"][:].max() == 0.0
        for alias, target in (("ciwl", "iwl_copy_avail"), ("flip", "flip_icl"), ("iwl", "pure_iwl")):
            link = f.get(alias, getlink=True)
            assert isinstance(link, h5py.SoftLink) and link.path == "/" + target
            np.testing.assert_array_equal(f[alias]["loss"][:], f[target]["loss"][:])
        np.testing.assert_array_equal(
            f["train_iter"][:], (np.arange(cfg.n_steps) + 1) * cfg.batch_size
        )
        assert f["probes/induction_strength"].shape == (n_evals, cfg.depth, cfg.n_heads)
        assert f["probes/prev_token_attn"].shape == (n_evals, cfg.depth, cfg.n_heads)
        assert TrainConfig.from_json(f.attrs["config"]) == cfg


def test_plot_cli(tiny_run, tmp_path):
    from transformer.plot import main as plot_main

    png = tmp_path / "c.png"
    assert plot_main([tiny_run[2], "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
    assert plot_main([str(tmp_path / "missing.h5")]) == 2


def test_resume_after_sigkill_equals_uninterrupted(tmp_path, tiny_config, single_thread_env, read_all):
    """Kill a CLI run with SIGKILL after a checkpoint, resume it, compare with a clean run."""
    cfg = tiny_config(n_sequences=16 * 4000, checkpoint_every=2)
    n_evals = cfg.n_steps // cfg.eval_every + 1
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "transformer.train", "--preset", "tiny", "--n-sequences",
            str(cfg.n_sequences), "--checkpoint-every", "2",
            "--no-progress", "--out", str(killed)]
    proc = subprocess.Popen(args, env=single_thread_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pointer = killed / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not pointer.exists() and proc.poll() is None:
        time.sleep(0.05)
    # wait for a checkpoint past the first one so the kill lands mid-training
    while time.time() < deadline and proc.poll() is None and pointer.exists() and (
        pointer.read_text().strip() in ("ckpt-000001", "ckpt-000002")
    ):
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(killed / pointer.read_text().strip() / "meta.json") as f:
        evals_at_kill = json.load(f)["evals"]
    assert 2 <= evals_at_kill < n_evals

    r = subprocess.run(args + ["--resume"], env=single_thread_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    clean = tmp_path / "clean"
    train(cfg, str(clean), progress=False)
    a, b = read_all(killed / "log.h5"), read_all(clean / "log.h5")
    assert a.keys() == b.keys()
    assert len(a["eval_iter"]) == n_evals
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stop_and_resume_in_process_and_seeds(tmp_path, tiny_config, read_all):
    cfg = tiny_config(n_sequences=16 * 100, checkpoint_every=1)
    train(cfg, str(tmp_path / "a"), progress=False, stop_after_evals=2)
    with h5py.File(tmp_path / "a" / "log.h5", "r") as f:
        assert len(f["eval_iter"]) == 2
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, str(tmp_path / "a"), progress=False)
    train(cfg, str(tmp_path / "a"), progress=False, resume=True)
    train(cfg, str(tmp_path / "b"), progress=False)
    a, b = read_all(tmp_path / "a" / "log.h5"), read_all(tmp_path / "b" / "log.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # a different training seed gives different numbers (with the same evaluation sets)
    train(dataclasses.replace(cfg, train_seed=7), str(tmp_path / "c"), progress=False)
    c = read_all(tmp_path / "c" / "log.h5")
    assert not np.array_equal(a["train_loss"], c["train_loss"])
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        train(dataclasses.replace(cfg, lr=1e-3), str(tmp_path / "a"), progress=False, resume=True)


def test_graft_and_freeze(tiny_run, tmp_path, tiny_config):
    donor_cfg, donor_dir, _ = tiny_run
    cfg = tiny_config(n_sequences=16 * 50, graft_from=donor_dir, graft_modules=("blocks.1", "unembed"),
               freeze_grafted=True, init_seed=5)
    train(cfg, str(tmp_path / "g"), progress=False)
    ckpt = lambda d: os.path.join(d, open(os.path.join(d, "latest")).read().strip(), "model.eqx")
    donor = eqx.tree_deserialise_leaves(ckpt(donor_dir), init_model(donor_cfg, donor_cfg.synth_dim))
    after = eqx.tree_deserialise_leaves(ckpt(str(tmp_path / "g")), init_model(cfg, cfg.synth_dim))
    fresh = init_model(cfg, cfg.synth_dim)
    for path in ("blocks", "unembed"):
        mine = after.blocks[1] if path == "blocks" else after.unembed
        theirs = donor.blocks[1] if path == "blocks" else donor.unembed
        for x, y in zip(jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs)):
            np.testing.assert_array_equal(x, y)  # grafted and frozen: exactly the donor's
    # not grafted: trained away from its own initialisation
    assert not np.allclose(after.blocks[0].attn.wq, fresh.blocks[0].attn.wq)
    assert not np.allclose(after.blocks[0].attn.wq, donor.blocks[0].attn.wq)


def test_config_json_roundtrip_and_bad_values(tiny_config):
    cfg = preset_config("cpu-quick")
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="preset"):
        preset_config("nope")
    with pytest.raises(ConfigError, match="evaluators"):
        tiny_config(evaluators=("icl", "bogus")).validate()
    with pytest.raises(ConfigError, match="context_pairs"):
        tiny_config(context_pairs=3, burstiness=2).validate()
    with pytest.raises(ConfigError, match="label_init_scale"):
        tiny_config(label_init_scale=0.0).validate()
    with pytest.raises(ConfigError, match="synth_offset"):
        tiny_config(synth_offset=float("inf")).validate()
    with pytest.raises(ConfigError, match="synth_variants"):
        tiny_config(synth_variants=0).validate()
    with pytest.raises(ConfigError, match="synth_variant_scale"):
        tiny_config(synth_variant_scale=-0.5).validate()
    with pytest.raises(ConfigError, match="synth_shared_scale"):
        tiny_config(synth_shared_scale=-1.0).validate()
    # rectified features with a shared component reach the run's data
    x = load_data(tiny_config(synth_rectify=True, synth_shared_scale=1.0))
    assert x.min() == 0.0 and (x == 0).any() and (x > 0).any()
    # the run's data follow the config's variant structure
    grouped = tiny_config(synth_variants=4, synth_variant_scale=0.0, synth_noise=0.0)
    x = load_data(grouped)
    np.testing.assert_array_equal(x[1], x[0])
    assert not np.array_equal(x[4], x[0])


def _cli(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--preset", "bogus"], "--preset: unknown preset 'bogus'"),
        (["--preset", "tiny", "--evaluators", "icl,zzz"], "--evaluators: unknown evaluator 'zzz'"),
        (["--preset", "tiny", "--context-pairs", "3", "--burstiness", "2"], "--context-pairs: 3 is shorter"),
        (["--preset", "tiny", "--data-path", "/nonexistent/x.h5"], "--data-path: no such file"),
        (["--preset", "tiny", "--lr", "fast"], "--lr: cannot parse 'fast'"),
        (["--preset", "tiny", "--lr-steps", "((100,1e-3),)"],
         "--lr-steps: cannot parse '((100,1e-3),)' as STEP:LR"),
        (["--preset", "tiny", "--n-classes", "2"], "--n-classes"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, extra, match):
    rc, err = _cli(extra + ["--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2
    assert match in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o" / "log.h5").exists()


def test_cli_bad_data_files(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x00" * 100)
    rc, err = _cli(["--preset", "tiny", "--data-path", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "not a readable HDF5" in err
    few = tmp_path / "few.h5"
    write_exemplar_file(few, synthetic_exemplars(10, 4, 8, 0.3, 0))
    rc, err = _cli(["--preset", "tiny", "--data-path", str(few), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "--n-classes: 64 requested but the file has 10" in err


def test_cli_subprocess_exit_code_no_traceback(tmp_path, single_thread_env):
    r = subprocess.run(
        [sys.executable, "-m", "transformer.train", "--preset", "tiny", "--burstiness", "2",
         "--out", str(tmp_path / "o")],
        env=single_thread_env, capture_output=True, text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --context-pairs: 2 is shorter than 2 x burstiness = 4"


@pytest.mark.parametrize("tie_labels", [False, True])
def test_scan_fused_chunk_equals_per_step_adam_loop(tie_labels, tiny_config):
    """The scan-fused trainer (sampling inside the scan, U carried transposed) takes the same
    Adam steps as a plain per-step loop: eqx gradient of the model, optax update, one batch
    drawn from ``fold_in(PRNGKey(train_seed), t)`` per step."""
    import jax.numpy as jnp

    from transformer import (
        batched_logits,
        gather_features,
        make_optimizer,
        make_train_chunk,
        query_loss,
        sample_sequences,
    )

    cfg = tiny_config(tie_labels=tie_labels, lr=1e-2)
    exemplars = jnp.asarray(synthetic_exemplars(cfg.n_classes, cfg.n_exemplars, cfg.synth_dim,
                                                cfg.synth_noise, 0, cfg.synth_offset))
    optimizer = make_optimizer(cfg)
    model0 = init_model(cfg, cfg.synth_dim)
    opt0 = optimizer.init(eqx.filter(model0, eqx.is_array))
    n = 12
    fused, _, losses = make_train_chunk(cfg)(
        model0, opt0, exemplars, jnp.asarray(3, jnp.int32), n)

    spec, key = cfg.sequence_spec(), jax.random.PRNGKey(cfg.train_seed)
    model, opt, ref_losses = model0, opt0, []
    for t in range(3, 3 + n):
        seqs = sample_sequences(jax.random.fold_in(key, t), spec, cfg.batch_size)
        feats = gather_features(exemplars, seqs)
        loss, grads = eqx.filter_value_and_grad(
            lambda m: query_loss(batched_logits(m, feats, seqs.labels), seqs.target).mean()
        )(model)
        updates, opt = optimizer.update(eqx.filter(grads, eqx.is_array), opt,
                                        eqx.filter(model, eqx.is_array))
        model = eqx.apply_updates(model, updates)
        ref_losses.append(loss)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(model)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert fused.unembedding()[0].shape == (cfg.n_classes, cfg.d_model)
