"""Transformer sweeps: spec expansion and checks, dependencies, resuming, executors, the CLI."""

from __future__ import annotations

import csv
import glob
import json
import os
import textwrap

import numpy as np
import pytest

from transformer.sweep import SweepSpec, run_sweep
from transformer.sweep.cli import main

TINY = "n_sequences = 640\neval_every = 10\nn_eval = 32\nkeep_checkpoints = \"all\"\n"


def _spec(tmp_path, text: str) -> str:
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_expansion_names_seeds_grid_and_family_references(tmp_path):
    spec = SweepSpec.from_toml(_spec(tmp_path, """
        [defaults]
        preset = "tiny"
        n_sequences = 1.6e3

        [runs.base]
        seeds = [0, 2]
        grid = { lr = [1e-3, 3e-3] }

        [runs.graft]
        seeds = [0, 2]
        grid = { lr = [1e-3, 3e-3] }
        train_kind = "icl_only"
        graft_from = { run = "base", at = "last" }
        graft_modules = ["blocks.1", "unembed"]

        [runs.cont]
        init_from = { run = "base-lr=0.003-seed=2", at = 800 }
        """))
    names = [r.name for r in spec.runs]
    assert names[:4] == ["base-lr=0.001-seed=0", "base-lr=0.001-seed=2", "base-lr=0.003-seed=0",
                         "base-lr=0.003-seed=2"]
    assert set(names[4:]) == {"graft-lr=0.001-seed=0", "graft-lr=0.001-seed=2", "graft-lr=0.003-seed=0",
                              "graft-lr=0.003-seed=2", "cont"}
    b = spec.run("base-lr=0.003-seed=2").config
    assert (b.lr, b.init_seed, b.train_seed, b.n_sequences, b.n_classes) == (3e-3, 2, 21, 1600, 64)
    g = spec.run("graft-lr=0.001-seed=2")
    assert g.depends["graft_from"].run == "base-lr=0.001-seed=2"  # the member with the same grid and seed
    assert g.config.graft_from == "sweep:base-lr=0.001-seed=2@last"
    assert spec.run("cont").depends["init_from"].at == "800"
    # every run comes after the runs it depends on
    order = {n: i for i, n in enumerate(names)}
    assert all(order[d.run] < order[r.name] for r in spec.runs for d in r.depends.values())


@pytest.mark.parametrize(
    "body, param",
    [
        ('[runs.a]\npreset = "nope"', "runs.a.preset"),
        ('[runs.a]\npreset = "tiny"\nlearning_rate = 1', "runs.a.learning_rate"),
        ('[runs.a]\npreset = "tiny"\nlr = -1', "runs.a.lr"),
        ('[runs.a]\npreset = "tiny"\nseeds = [-1]', "runs.a.seeds"),
        ('[runs.a]\npreset = "tiny"\ngrid = { lr = [] }', "runs.a.grid"),
        ('[runs.a]\npreset = "tiny"\nn_sequences = 1.5', "runs.a.n_sequences"),
        ('[runs.a]\npreset = "tiny"\ninit_from = { run = "b" }', "runs.a.init_from"),
        ('[runs.a]\npreset = "tiny"\ninit_from = { run = "a" }', "runs.a.init_from"),
        ('[runs.a]\npreset = "tiny"\ninit_from = { run = "b", at = "soon" }\n[runs.b]\npreset = "tiny"',
         "runs.a.init_from"),
        ('[runs.a]\npreset = "tiny"\ninit_from = { run = "b", at = 1e9 }\n[runs.b]\npreset = "tiny"',
         "runs.a.init_from"),
        ('[runs.a]\npreset = "tiny"\ninit_from = { run = "b" }\n[runs.b]\npreset = "tiny"\n'
         'init_from = { run = "a" }', "spec"),
        ('[runs.a]\npreset = "tiny"\nseeds = [0, 1]\n[runs.b]\npreset = "tiny"\ninit_from = { run = "a" }',
         "runs.b.init_from"),
        ('[runs."a/b"]\npreset = "tiny"', "runs.a/b"),
        ('[runz.a]\npreset = "tiny"', "spec"),
        ('[runs.a]\npreset = "tiny"\nopto = ["no_such_intervention"]', "runs.a.opto"),
        ("[runs.a\n", "spec"),
    ],
)
def test_bad_specs_name_the_run_and_key(tmp_path, body, param):
    from toymodels.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        SweepSpec.from_toml(_spec(tmp_path, body))
    assert e.value.param == param


def test_cli_bad_spec_is_one_line_and_creates_nothing(tmp_path, capsys):
    spec = _spec(tmp_path, '[runs.a]\npreset = "tiny"\nlr = "fast"\n')
    out = tmp_path / "sweep"
    assert main([spec, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: spec: runs.a.lr: ")
    assert not out.exists()
    assert main([str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: spec: no such file")
    assert main([spec, "--out", str(out), "--executor", "cloud"]) == 2
    assert not out.exists()


DEPENDENT = f"""
    [defaults]
    preset = "tiny"
    {TINY}
    [runs.base]

    [runs.graft]
    train_kind = "icl_only"
    graft_from = {{ run = "base", at = "last" }}
    graft_modules = ["blocks.1", "unembed"]

    [runs.cont]
    init_from = {{ run = "base", at = 320 }}
    """


def test_inline_sweep_runs_dependencies_in_order_and_resumes_bit_for_bit(tmp_path, read_all):
    from transformer import train
    from transformer.checkpoint import checkpoint_at

    spec = SweepSpec.from_toml(_spec(tmp_path, DEPENDENT))
    whole = tmp_path / "whole"
    events = []
    rows = run_sweep(spec, str(whole), on_event=lambda n, s: events.append((n, s)))
    assert [r["status"] for r in rows] == ["done", "done", "done"]
    assert [e for e in events if e[1] == "done"] == [("base", "done"), ("graft", "done"), ("cont", "done")]
    with open(whole / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["run"] for r in table] == ["base", "graft", "cont"]
    assert all(int(r["sequences"]) == 640 for r in table) and all(r["icl_final"] for r in table)
    graft_cfg = json.loads(read_all(whole / "graft" / "log.h5")["@config"])
    assert graft_cfg["graft_from"] == checkpoint_at(str(whole / "base"), "last").path
    assert json.loads(read_all(whole / "cont" / "log.h5")["@config"])["init_from"] == checkpoint_at(
        str(whole / "base"), 320).path

    # interrupted: base stopped after 3 evaluations, nothing else started; the sweep resumes it
    part = tmp_path / "part"
    train(spec.run("base").config, str(part / "base"), progress=False, stop_after_evals=3)
    events.clear()
    run_sweep(spec, str(part), on_event=lambda n, s: events.append((n, s)))
    for name in ("base", "graft", "cont"):
        a, b = read_all(whole / name / "log.h5"), read_all(part / name / "log.h5")
        assert set(a) == set(b)
        for key in a:
            if key != "@config":
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")

    # a finished sweep re-run trains nothing
    stamp = os.path.getmtime(whole / "base" / "log.h5")
    events.clear()
    run_sweep(spec, str(whole), on_event=lambda n, s: events.append((n, s)))
    assert events == [(n, "done (earlier)") for n in ("base", "graft", "cont")]
    assert os.path.getmtime(whole / "base" / "log.h5") == stamp


def test_a_failed_run_is_reported_and_its_dependents_skipped(tmp_path, capsys):
    spec = _spec(tmp_path, f"""
        [defaults]
        preset = "tiny"
        {TINY}
        [runs.broken]
        init_from = "{tmp_path / 'no_such_run'}"

        [runs.after]
        init_from = {{ run = "broken" }}

        [runs.fine]
        n_sequences = 160
        """)
    out = tmp_path / "sweep"
    assert main([spec, "--out", str(out), "--no-progress"]) == 1
    with open(out / "summary.csv") as f:
        status = {r["run"]: r["status"] for r in csv.DictReader(f)}
    assert status["broken"].startswith("failed: ")
    assert status["after"].startswith("skipped")
    assert status["fine"] == "done"
    assert "broken: failed" in capsys.readouterr().err


@pytest.mark.slow
def test_local_executor_runs_through_submitit(tmp_path):
    pytest.importorskip("submitit")
    text = f'[defaults]\npreset = "tiny"\n{TINY}\n[runs.a]\nn_sequences = 160\n'
    spec = SweepSpec.from_toml(_spec(tmp_path, text))
    rows = run_sweep(spec, str(tmp_path / "sweep"), executor="local", poll_s=0.2)
    assert rows[0]["status"] == "done" and rows[0]["sequences"] == 160
    assert (tmp_path / "sweep" / "jobs").is_dir()


@pytest.mark.slow
def test_local_sweep_killed_mid_run_resumes_to_the_uninterrupted_logs(tmp_path, read_all):
    """A real kill (SIGKILL of the sweep process and its submitit job while a run is training), then
    the same command again: the logs equal those of an uninterrupted sweep."""
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("submitit")
    text = f"""
        [defaults]
        preset = "tiny"
        {TINY}
        checkpoint_every = 1
        [runs.base]
        n_sequences = 3200

        [runs.cont]
        init_from = {{ run = "base", at = "last" }}
        n_sequences = 320
        """
    spec_path = _spec(tmp_path, text)
    whole = tmp_path / "whole"
    run_sweep(SweepSpec.from_toml(spec_path), str(whole))

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "transformer.sweep", spec_path, "--out", str(killed), "--executor", "local",
           "--no-progress"]
    env = {**os.environ, "ICL_COOPETITION_CACHE_DIR": "off"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    # wait until base has kept a few checkpoints but is not finished, then kill everything it started
    while time.monotonic() < deadline:
        done = sorted((killed / "base").glob("ckpt-*")) if (killed / "base").is_dir() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the sweep made no checkpoints within 240 s")
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep process and the submitit workers it spawned
    proc.wait()
    time.sleep(0.5)
    with open(killed / "summary.csv") as f:
        status = {r["run"]: r["status"] for r in csv.DictReader(f)}
    assert status["base"] == "running" and status["cont"] == "pending"

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for name in ("base", "cont"):
        a, b = read_all(whole / name / "log.h5"), read_all(killed / name / "log.h5")
        assert set(a) == set(b)
        for key in a:
            if key != "@config":
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")


@pytest.mark.parametrize(
    "path",
    sorted(
        glob.glob(os.path.join(os.path.dirname(__file__), "..", "paper_figs", "**", "*.toml"), recursive=True)
    ),
    ids=os.path.basename,
)
def test_committed_sweep_specs_parse_and_expand(path):
    """Every sweep spec under paper_figs/ is valid (presets, fields, dependencies, interventions)."""
    spec = SweepSpec.from_toml(path)
    assert len(spec.runs) >= 1
    for run in spec.runs:
        run.config.edits()  # the interventions expand for the model's size
