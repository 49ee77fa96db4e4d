"""``--wandb PROJECT``: the scalar curves mirrored to Weights & Biases (offline, no network).

A ``tiny`` run with ``--wandb`` (``WANDB_MODE=offline``, every wandb directory in a temporary one)
writes an offline run whose history equals the log's evaluator means, probes and training losses at
the same sequences seen, exactly; its ``log.h5`` is byte for byte that of a run without ``--wandb``;
a callback injected into :func:`transformer.train` sees the values the log holds. Without the wandb
package, with a bad project name or when wandb cannot start, the command line prints one line and
exits with status 2, leaving nothing behind. The three runs share one compilation (in-process).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import types

import numpy as np
import pytest

from transformer import evaluator_means, preset_config, train
from transformer.cli import main
from transformer.tracking import INSTALL_HINT, scalars
from transformer.trainer import Evaluation

FLAGS = ["--preset", "tiny", "--n-sequences", "960", "--eval-every", "20", "--no-progress"]
"""A tiny run of 60 steps with evaluations at steps 0, 20, 40 and 60."""


def _wandb_env(mp: pytest.MonkeyPatch, root) -> None:
    """Offline wandb that writes only under ``root`` (runs, config, cache, artifacts)."""
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        os.makedirs(root / var, exist_ok=True)
        mp.setenv(var, str(root / var))


def _records(path):
    """The protobuf records of a wandb transaction log (``run-ID.wandb``): a 7-byte header, then the
    LevelDB log format — 32 KiB blocks of chunks (CRC32, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's zero-filled tail
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _offline_run(wandb_dir) -> tuple[list[dict], dict, str]:
    """History rows, config and display name of the one offline run under ``wandb_dir``."""
    runs = [d for d in os.listdir(wandb_dir / "wandb") if d.startswith("offline-run-")]
    assert len(runs) == 1, runs
    run_dir = wandb_dir / "wandb" / runs[0]
    (log,) = [f for f in os.listdir(run_dir) if f.endswith(".wandb")]
    history, config, name = [], {}, ""
    for r in _records(run_dir / log):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            items = r.history.item
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
        elif kind == "run":
            name = r.run.display_name
            config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
    return history, config, name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run three times: with ``--wandb`` (offline), without, and through ``train`` with a
    recording callback."""
    wandb = pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        _wandb_env(mp, root)
        try:
            assert main([*FLAGS, "--out", str(root / "tracked"), "--wandb", "icl-test"]) == 0
        finally:
            # A finished run leaves wandb's service process and two threads (its asyncio loop and
            # the service finaliser) alive for the rest of the test session; stop them here.
            wandb.teardown()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("wandb")]
    assert main([*FLAGS, "--out", str(root / "plain")]) == 0
    seen: list[Evaluation] = []
    cfg = preset_config("tiny", n_sequences=960, eval_every=20)
    train(cfg, str(root / "callback"), progress=False, on_eval=seen.append)
    return root, seen


def test_offline_history_equals_the_log(runs):
    root, _ = runs
    history, config, name = _offline_run(root / "WANDB_DIR")
    log = str(root / "tracked" / "log.h5")
    means = evaluator_means(log)
    assert [h["sequences"] for h in history] == means["eval_iter"].tolist() == [0, 320, 640, 960]
    compared = 0
    for key, values in means.items():
        if key == "eval_iter":
            continue
        for row, value in zip(history, values):
            if key.startswith("probes/"):
                for (layer, head), v in np.ndenumerate(value):
                    assert row[f"{key}/L{layer}H{head}"] == float(v), (key, layer, head)
                    compared += 1
            else:
                assert row[key] == float(value), key  # the float32 mean, exactly
                compared += 1
    assert compared == 4 * (5 * 4 + 4 * 2 * 2)
    import h5py

    with h5py.File(log, "r") as f:
        train_loss = f["train_loss"][:]
    assert "train_loss" not in history[0]
    for i, row in enumerate(history[1:]):
        assert row["train_loss"] == float(train_loss[20 * i:20 * (i + 1)].mean())
    assert name == "tracked"
    assert config["n_classes"] == 64 and config["run_dir"] == str(root / "tracked")
    assert config["resumed"] is False
    assert not os.path.exists(root / "tracked" / "wandb")  # the run directory holds the run only


def test_the_log_is_the_same_without_tracking(runs):
    root, _ = runs
    tracked = (root / "tracked" / "log.h5").read_bytes()
    assert tracked == (root / "plain" / "log.h5").read_bytes()
    assert tracked == (root / "callback" / "log.h5").read_bytes()
    assert sorted(os.listdir(root / "tracked")) == sorted(os.listdir(root / "plain"))


def test_the_callback_sees_what_the_log_holds(runs):
    import h5py

    root, seen = runs
    assert [e.evals for e in seen] == [1, 2, 3, 4] and [e.steps for e in seen] == [0, 20, 40, 60]
    with h5py.File(root / "callback" / "log.h5", "r") as f:
        assert [e.seen for e in seen] == f["eval_iter"][:].tolist()
        for i, e in enumerate(seen):
            for name, metrics in e.metrics.items():
                for metric, values in metrics.items():
                    np.testing.assert_array_equal(values, f[name][metric][i])
            for probe, values in e.probes.items():
                np.testing.assert_array_equal(values, f["probes"][probe][i])
        np.testing.assert_array_equal(np.concatenate([e.train_loss for e in seen]), f["train_loss"][:])
    assert seen[0].train_loss.shape == (0,) and all(e.train_penalty is None for e in seen)


def test_scalars_of_an_evaluation():
    ev = Evaluation(
        evals=2, steps=10, seen=160,
        metrics={"icl": {"acc": np.array([1, 0, 0, 1], np.float32)}},
        probes={"prev_token_attn": np.array([[0.5, 0.25]], np.float32)},
        train_loss=np.array([1.0, 2.0], np.float32), train_penalty=np.array([0.5, 0.25], np.float32),
    )
    assert scalars(ev) == {
        "sequences": 160, "icl/acc": 0.5, "train_loss": 1.5, "train_penalty": 0.375,
        "probes/prev_token_attn/L0H0": 0.5, "probes/prev_token_attn/L0H1": 0.25,
    }
    first = ev._replace(train_loss=np.zeros(0, np.float32), train_penalty=None)
    assert "train_loss" not in scalars(first) and "train_penalty" not in scalars(first)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_wandb_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    out = tmp_path / "run"
    assert main([*FLAGS, "--out", str(out), "--wandb", "p"]) == 2
    assert _one_line(capsys) == f"error: --wandb: needs the wandb package ({INSTALL_HINT})"
    assert INSTALL_HINT == "pip install 'icl-coopetition[tracking]'"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("project", ["", "a/b", "x:y", "p" * 129], ids=["empty", "slash", "colon", "long"])
def test_bad_project_names(tmp_path, capsys, project):
    pytest.importorskip("wandb")
    assert main([*FLAGS, "--out", str(tmp_path / "run"), "--wandb", project]) == 2
    assert _one_line(capsys).startswith(f"error: --wandb: {project!r} is not a W&B project name")
    assert os.listdir(tmp_path) == []


def test_a_run_wandb_cannot_start_is_removed(tmp_path, capsys, monkeypatch):
    def refuse(**kwargs):
        raise RuntimeError("api_key not configured (no-tty)\nmore detail")

    fake = types.SimpleNamespace(init=refuse, Settings=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    assert main([*FLAGS, "--out", str(tmp_path / "run"), "--wandb", "p"]) == 2
    assert _one_line(capsys) == "error: --wandb: cannot start a W&B run: api_key not configured (no-tty)"
    assert os.listdir(tmp_path) == []
