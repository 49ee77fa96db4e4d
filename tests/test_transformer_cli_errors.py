"""The transformer command lines on bad input (issue 20): one line ``error: --flag: reason``, exit
status 2 and nothing written; ``--resume`` refusals and the fields a resume would change; a diverged
run (exit status 1, log and checkpoints kept); memory refused up front; every numeric field of
``TrainConfig`` validated; a fresh run that fails after creating its directory removes it.

No test here trains: runs are checkpointed straight from an initialised model, and the divergence
tests use exemplars that overflow or a stand-in for the compiled training scan.
"""

from __future__ import annotations

import json
import math
import os

import equinox as eqx
import h5py
import numpy as np
import pytest

from toymodels.errors import ConfigError
from transformer import (
    TrainConfig,
    init_model,
    make_optimizer,
    preset_config,
    synthetic_exemplars,
    train,
    write_exemplar_file,
)
from transformer.attribution import main as attribution_main
from transformer.build import check_memory, memory_estimate
from transformer.checkpoint import save_checkpoint
from transformer.cli import data_main, main
from transformer.evaluate import main as evaluate_main
from transformer.log import create_log
from transformer.trainer import TrainingDiverged

TINY = dict(n_sequences=16 * 10, eval_every=5)
"""A tiny run of 10 steps, 3 evaluations (the compiled pieces are shared by every test here)."""


def _cfg(**overrides) -> TrainConfig:
    return preset_config("tiny", **{**TINY, **overrides})


def _argv(cfg_flags=(), *extra) -> list[str]:
    return ["--preset", "tiny", "--n-sequences", "160", "--eval-every", "5", "--no-progress",
            *cfg_flags, *extra]


def _one_line(capsys) -> str:
    """The single stderr line of a failed command (asserted: one line, ``error:``, no traceback)."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def _checkpointed_run(path, cfg: TrainConfig) -> str:
    """A run directory holding a log and a resumable checkpoint of ``cfg``'s initial model."""
    os.makedirs(path)
    model = init_model(cfg, cfg.synth_dim)
    opt_state = make_optimizer(cfg).init(eqx.filter(model, eqx.is_array))
    log = os.path.join(path, "log.h5")
    create_log(log, cfg, cfg.depth, cfg.n_heads)
    save_checkpoint(str(path), log, model, opt_state, cfg, 0, 1)
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    return _checkpointed_run(tmp_path_factory.mktemp("cli_errors") / "run", _cfg())


def _tree(path) -> set[str]:
    return {os.path.join(d, f) for d, dirs, files in os.walk(path) for f in dirs + files}


# ----------------------------------------------------------------------------------------------
# Every numeric field validated (item 2)
# ----------------------------------------------------------------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", INF), ("lr", NAN), ("lr", 0.0), ("lr", -1e-3),
        ("lr_steps", ((10, INF),)), ("lr_steps", ((10, -1.0),)), ("lr_steps", ((20, 1e-3), (10, 1e-3))),
        ("lr_steps", ((-1, 1e-3),)), ("lr_steps", ((2**31, 1e-3),)), ("lr_steps", ((1.5, 1e-3),)),
        ("beta1", 2.0), ("beta1", 1.0), ("beta1", -0.1), ("beta1", NAN), ("beta2", 1.0), ("beta2", INF),
        ("weight_decay", -1.0), ("weight_decay", INF), ("l2_penalty", INF), ("l2_penalty", NAN),
        ("warmup_steps", -1), ("label_init_scale", INF), ("label_init_scale", 0.0),
        ("zipf_alpha", NAN), ("zipf_alpha", INF), ("p_bursty", NAN), ("p_bursty", 1.5),
        ("synth_noise", NAN), ("synth_noise", INF), ("synth_noise", -0.1), ("synth_offset", NAN),
        ("synth_variant_scale", INF), ("synth_variants", 0), ("synth_shared_scale", -1.0),
        ("synth_shared_scale", NAN), ("synth_rectify", 1),
        ("init_seed", -1), ("train_seed", 2**32), ("eval_seed", -5), ("synth_seed", 2**40),
        ("n_classes", 0), ("n_classes", 64.0), ("n_classes", True), ("n_holdout_classes", -1),
        ("n_exemplars", 0), ("synth_dim", 0), ("context_pairs", 0), ("burstiness", 0), ("depth", 0),
        ("d_model", 0), ("n_heads", 0), ("batch_size", 0), ("n_sequences", 0),
        ("n_sequences", 16 * 2**31), ("eval_every", 0), ("n_eval", 0), ("n_probe", 0),
        ("checkpoint_every", 0), ("icl_label_set", 0), ("icl_label_set", 65),
        ("mlp", "yes"), ("unembed_init", "zeros"), ("positional", "none"),
        ("eval_schedule", "log:1e400"), ("eval_schedule", "log:nan"), ("eval_schedule", "log:10000001"),
        ("keep_checkpoints", "1e400"), ("keep_checkpoints", "log:10000001"), ("mix", (("bursty", NAN),)),
    ],
)
def test_every_field_is_validated(field, value):
    with pytest.raises(ConfigError) as e:
        _cfg(**{field: value})
    assert e.value.param == field, e.value


def test_from_dict_rejects_malformed_plain_values():
    cases = (({"lr_steps": [[1]]}, "lr_steps"), ({"mix": 5}, "mix"), ({"lr_steps": [[1, "x"]]}, "lr_steps"))
    for d, field in cases:
        with pytest.raises(ConfigError) as e:
            TrainConfig.from_dict(d)
        assert e.value.param == field


@pytest.mark.parametrize(
    "flags, line",
    [
        (["--lr", "inf"], "error: --lr: must be finite and > 0, got inf"),
        (["--beta1", "2"], "error: --beta1: must be in [0, 1), got 2.0"),
        (["--weight-decay", "nan"], "error: --weight-decay: must be finite and >= 0, got nan"),
        (["--n-sequences", "1e400"], "error: --n-sequences: must be an integer, got '1e400'"),
        (["--n-sequences", "1.5"], "error: --n-sequences: must be an integer, got '1.5'"),
        (["--lr-steps", "1e400:1e-3"], "error: --lr-steps: cannot parse '1e400:1e-3' as STEP:LR"),
        (["--init-seed", "-1"], "error: --init-seed: must be in [0, 2^32), got -1"),
    ],
)
def test_flags_are_named_as_flags(tmp_path, capsys, flags, line):
    assert main(_argv(flags, "--out", str(tmp_path / "o"))) == 2
    assert _one_line(capsys).startswith(line)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# --resume (items 1 and 4)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "empty", "junk"])
def test_resume_without_a_run_is_refused(tmp_path, capsys, kind):
    out = tmp_path / "run"
    if kind != "missing":
        out.mkdir()
    if kind == "junk":
        (out / "notes.txt").write_text("x")
    before = _tree(tmp_path)
    assert main(["--out", str(out), "--resume", "--no-progress"]) == 2
    line = f"error: --resume: no run to resume in {str(out)!r} (no checkpoint, no log.h5)"
    assert _one_line(capsys) == line
    assert _tree(tmp_path) == before


def test_resume_of_a_run_without_checkpoint_uses_its_log(tmp_path, monkeypatch):
    cfg = _cfg(lr=1e-3, train_seed=9)
    out = tmp_path / "run"
    out.mkdir()
    create_log(str(out / "log.h5"), cfg, cfg.depth, cfg.n_heads)
    calls = []
    monkeypatch.setattr("transformer.cli.train", lambda c, o, **kw: calls.append((c, o, kw)) or o)
    assert main(["--out", str(out), "--resume", "--no-progress"]) == 0
    assert calls[0][0] == cfg and calls[0][2]["resume"] is True
    assert main(["--out", str(out), "--resume", "--no-progress", "--lr", "1e-3"]) == 0  # unchanged


def test_resume_names_the_fields_that_differ(run_dir, capsys):
    assert main(["--out", run_dir, "--resume", "--no-progress", "--lr", "1e-3"]) == 2
    assert _one_line(capsys) == (
        f"error: --resume: the configuration differs from the checkpoint's in {run_dir!r}: "
        "--lr 0.001 (saved: 0.003)"
    )
    assert main(["--out", run_dir, "--resume", "--preset", "tiny", "--no-progress"]) == 2
    err = _one_line(capsys)
    assert "--n-sequences 3200 (saved: 160)" in err and "--eval-every 50 (saved: 5)" in err
    with pytest.raises(ConfigError, match=r"resume: .*--batch-size 8 \(saved: 16\)"):
        train(_cfg(batch_size=8), run_dir, resume=True, progress=False)


def test_resume_refuses_corrupt_checkpoint_files(run_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    ckpt = bad / (bad / "latest").read_text().strip()
    (ckpt / "model.eqx").write_bytes(b"\x00" * 37)
    before = _tree(tmp_path)
    assert main(["--out", str(bad), "--resume", "--no-progress"]) == 2
    assert "does not hold this run's model" in _one_line(capsys)
    assert attribution_main([str(bad)]) == 2
    assert _one_line(capsys).startswith(f"error: run: cannot read {str(bad)!r}")
    (ckpt / "meta.json").write_text("{not json")
    for cli in (lambda: main(["--out", str(bad), "--resume"]), lambda: attribution_main([str(bad)]),
                lambda: evaluate_main([str(bad), "--out", str(tmp_path / "e.h5")])):
        assert cli() == 2
        assert "meta.json" in _one_line(capsys)
    assert _tree(tmp_path) == before


# ----------------------------------------------------------------------------------------------
# Output directories, data files, nothing created (items 5 and 7)
# ----------------------------------------------------------------------------------------------


def _data_file(path, kind: str) -> str:
    x = np.random.default_rng(0).standard_normal((80, 4, 8)).astype(np.float32)
    if kind == "corrupt":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)
    elif kind == "truncated":
        write_exemplar_file(path, x)
        path.write_bytes(path.read_bytes()[:1500])
    elif kind == "nan":
        x[3, 1, 0] = np.nan
        write_exemplar_file(path, x)
    elif kind == "2d":
        write_exemplar_file(path, x[:, 0])
    elif kind == "small":
        write_exemplar_file(path, x[:10])
    elif kind == "huge":
        write_exemplar_file(path, np.full_like(x, 3e38))
    elif kind == "empty-dim":
        write_exemplar_file(path, x[:, :, :0])
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated", "nan", "2d", "small", "empty-dim"])
def test_bad_data_files_create_nothing(tmp_path, capsys, kind):
    data = _data_file(tmp_path / "x.h5", kind)
    before = _tree(tmp_path)
    assert main(_argv(["--data-path", data], "--out", str(tmp_path / "o"))) == 2
    assert _one_line(capsys).startswith("error: --n-classes: " if kind == "small" else "error: --data-")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("flags", [["--synth-noise", "nan"], ["--label-init-scale", "nan"], ["--lr", "nan"]])
def test_bad_values_create_nothing(tmp_path, capsys, flags):
    assert main(_argv(flags, "--out", str(tmp_path / "o"))) == 2
    _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_output_paths(tmp_path, capsys):
    occupied = tmp_path / "file"
    occupied.write_text("x")
    cases = ((occupied, "exists and is not a directory"), (occupied / "sub", "is not a directory"),
             ("", "empty path"))
    for out, fragment in cases:
        assert main(_argv((), "--out", str(out))) == 2
        assert fragment in _one_line(capsys)
    if os.path.isdir("/proc"):  # not writable (as root: found when the directory is made)
        assert main(_argv((), "--out", "/proc/icl-nope")) == 2
        assert _one_line(capsys).startswith("error: --out: ")
        assert not os.path.exists("/proc/icl-nope")
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.parametrize("existing", [False, True])
def test_a_fresh_run_failing_after_creation_removes_what_it_made(tmp_path, monkeypatch, existing):
    out = tmp_path / "run"
    if existing:
        out.mkdir()
        (out / "mine.txt").write_text("keep me")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("transformer.trainer._run", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(_cfg(), str(out), progress=False)
    assert (sorted(os.listdir(out)) == ["mine.txt"]) if existing else not out.exists()


# ----------------------------------------------------------------------------------------------
# Memory (item 6)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--n-classes", "100000000"], "--n-classes"), (["--n-classes", "1e8"], "--n-classes"),
        (["--synth-dim", "1e9"], "--synth-dim"), (["--n-exemplars", "1e9"], "--n-exemplars"),
        (["--batch-size", "1e9"], "--batch-size"), (["--n-eval", "1e10"], "--n-eval"),
        (["--n-probe", "1e10"], "--n-probe"), (["--d-model", "1e6"], "--d-model"),
    ],
)
def test_memory_is_refused_up_front(tmp_path, capsys, flags, flag):
    assert main(_argv(flags, "--out", str(tmp_path / "o"))) == 2
    err = _one_line(capsys)
    assert err.startswith(f"error: {flag}: needs ~") and "GiB, this machine has" in err, err
    assert list(tmp_path.iterdir()) == []


def test_memory_estimate_and_check():
    cfg = _cfg()
    parts = memory_estimate(cfg)
    assert set(parts) == {"exemplars", "parameters", "training step", "evaluation", "schedule"}
    assert all(b > 0 for b, _ in parts.values())
    check_memory(cfg, available=10**12)
    with pytest.raises(ConfigError, match=r"needs ~0\.0 GiB, this machine has 0\.0 GiB"):
        check_memory(cfg, available=1)
    with pytest.raises(ConfigError) as e:
        check_memory(_cfg(n_classes=10**6), available=2**30)
    assert e.value.param == "n_classes"


# ----------------------------------------------------------------------------------------------
# Divergence (item 3)
# ----------------------------------------------------------------------------------------------


def test_a_diverging_training_loss_stops_at_the_next_evaluation(tmp_path, capsys, monkeypatch):
    """The chunk is a stand-in whose loss is NaN from step 7 on: the run stops at the evaluation after
    it (step 10), exit status 1, the log and the checkpoint of step 5 kept."""

    def make_chunk(cfg, optimizer=None):
        def chunk(model, opt_state, exemplars, step0, n):
            steps = int(step0) + np.arange(n)
            return model, opt_state, np.where(steps >= 7, np.nan, 1.0).astype(np.float32)

        return chunk

    monkeypatch.setattr("transformer.trainer.make_train_chunk", make_chunk)
    out = tmp_path / "run"
    assert main(_argv((), "--out", str(out))) == 1
    assert _one_line(capsys) == (
        f"error: training diverged: non-finite loss at step 7 (sequences 112); "
        f"the log and checkpoints so far are kept in {str(out)!r}"
    )
    with h5py.File(out / "log.h5") as f:
        assert len(f["train_loss"]) == 10 and list(f["eval_iter"]) == [0, 80, 160]
    assert (out / "latest").read_text() == "ckpt-000002"  # the evaluation at step 5; none after
    with pytest.raises(TrainingDiverged) as e:
        train(_cfg(), str(tmp_path / "lib"), progress=False)
    assert (e.value.step, e.value.seen) == (7, 112)


def test_overflowing_exemplars_diverge_at_the_first_evaluation(tmp_path, capsys):
    data = _data_file(tmp_path / "x.h5", "huge")
    out = tmp_path / "run"
    assert main(_argv(["--data-path", data], "--out", str(out))) == 1
    assert "non-finite loss at step 0 (sequences 0)" in _one_line(capsys)
    with h5py.File(out / "log.h5") as f:
        assert len(f["eval_iter"]) == 1 and not np.isfinite(f["train_eval/loss"][0]).all()
    assert not (out / "latest").exists()


# ----------------------------------------------------------------------------------------------
# The other command lines (items 5 and 6)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, start",
    [
        (["--n-classes", "100000000"], "error: --n-classes: needs ~"),
        (["--n-classes", "1e8"], "error: --n-classes: needs ~"),
        (["--dim", "1e10"], "error: --dim: needs ~"),
        (["--n-classes", "x"], "error: --n-classes: cannot parse 'x'"),
        (["--noise", "nan"], "error: --noise: must be finite"),
        (["--seed", "-1"], "error: --seed: must be >= 0"),
        (["--variants", "0"], "error: --variants: must be >= 1"),
        (["--shared-scale", "-0.5"], "error: --shared-scale: must be finite and >= 0"),
        (["--dataset", ""], "error: --dataset: '' is not an HDF5 dataset name"),
    ],
)
def test_data_command_line(tmp_path, capsys, flags, start):
    assert data_main(["--out", str(tmp_path / "sub" / "x.h5"), "--n-classes", "4", "--dim", "2", *flags]) == 2
    assert _one_line(capsys).startswith(start)
    with pytest.raises(SystemExit) as e:
        data_main(["--out", str(tmp_path / "x.h5"), "--bogus"])
    assert e.value.code == 2 and _one_line(capsys).startswith("error: unrecognized arguments: --bogus")
    assert list(tmp_path.iterdir()) == []


def test_data_command_line_output_paths(tmp_path, capsys):
    occupied = tmp_path / "file"
    occupied.write_text("x")
    for out in (tmp_path, occupied / "x.h5"):
        assert data_main(["--out", str(out), "--n-classes", "4", "--dim", "2"]) == 2
        assert _one_line(capsys).startswith("error: --out: ")
    assert data_main(["--out", str(tmp_path / "d" / "x.h5"), "--n-classes", "4", "--n-exemplars", "2",
                      "--dim", "2"]) == 0
    with h5py.File(tmp_path / "d" / "x.h5") as f:
        assert f["resnet18/224/feat"].shape == (4, 2, 2)
    assert data_main(["--out", str(tmp_path / "r.h5"), "--n-classes", "4", "--n-exemplars", "2",
                      "--dim", "2", "--shared-scale", "1", "--rectify"]) == 0
    with h5py.File(tmp_path / "r.h5") as f:
        d = f["resnet18/224/feat"]
        assert d[:].min() >= 0 and d.attrs["rectify"] and d.attrs["shared_scale"] == 1.0
        expected = synthetic_exemplars(4, 2, 2, 0.75, 0, shared_scale=1.0, rectify=True)
        np.testing.assert_array_equal(d[:], expected)


def test_evaluate_and_attribution_bad_input(run_dir, tmp_path, capsys):
    out = str(tmp_path / "e.h5")
    bad_model = tmp_path / "badmodel"
    bad_model.mkdir()
    (bad_model / "model.eqx").write_bytes(b"x")
    (bad_model / "meta.json").write_text(json.dumps({"config": _cfg().to_json(), "steps": 0, "evals": 1}))
    cases = [
        ([str(tmp_path / "missing"), "--out", out], "error: run: no checkpoints"),
        ([run_dir, "--out", out, "--modules-from", "nowhere@last:blocks.1"], "error: --modules-from: "),
        ([run_dir, "--out", out, "--modules-from", f"{bad_model}:blocks.1"],
         "error: --modules-from: cannot read"),
        ([run_dir, "--out", out, "--modules-from", "x"], "error: --modules-from: expected SRC:MODULES"),
        ([run_dir, "--out", out, "--opto", "nope"], "error: --opto: "),
        ([run_dir, "--out", out, "--opto-file", str(tmp_path)], "error: --opto-file: cannot read"),
        ([run_dir, "--out", str(tmp_path)], "error: --out: "),
        ([run_dir, "--out", str(tmp_path / "no" / "e.h5")], "error: --out: directory of"),
        ([run_dir, "--out", out, "--evaluators", ","], "error: --evaluators: "),
    ]
    for argv, start in cases:
        assert evaluate_main([*argv, "--no-progress"]) == 2, argv
        assert _one_line(capsys).startswith(start)
    for argv, start in (([str(tmp_path / "missing")], "error: run: no checkpoint"),
                        ([str(bad_model)], "error: run: cannot read"),
                        ([run_dir, "--evaluators", ","], "error: --evaluators: no evaluator named")):
        assert attribution_main(argv) == 2
        assert _one_line(capsys).startswith(start)
    with pytest.raises(SystemExit) as e:
        evaluate_main([run_dir])  # --out missing: argparse's error, one line too
    assert e.value.code == 2 and _one_line(capsys).startswith("error: the following arguments are required")
    assert sorted(os.listdir(tmp_path)) == ["badmodel"]
