"""Fuzzing the transformer command lines with malformed input (issue 20).

For ``python -m transformer.train``, ``transformer.data``, ``transformer.evaluate`` and
``transformer.attribution``, hypothesis draws one malformed value for one flag (wrong types, NaN,
±inf, negatives, huge numbers, empty strings, unknown names, missing / corrupt / truncated / wrongly
shaped files, occupied output paths) and the command, called in-process, must exit with status 2
after exactly one stderr line ``error: …``, with no traceback and nothing created. Each command's
expensive step (building a model, generating exemplars, evaluating) is replaced by a
sentinel that fails the test: a malformed value must be refused before any of it. A subprocess
check (``python -m transformer.train``) and the other modules run as ``__main__`` confirm the same
at the entry points. Deterministic (``derandomize``), well under 30 s.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transformer import preset_config, write_exemplar_file
from transformer.attribution import main as attribution_main
from transformer.cli import data_main
from transformer.cli import main as train_main
from transformer.evaluate import main as evaluate_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


class Reached(AssertionError):
    """A malformed value got past validation to an expensive step."""


def _sentinel(*args, **kwargs):
    raise Reached("validation let a malformed value through")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """Files the fuzzers point at: a checkpointed run (its model is never loaded), runs and checkpoints
    with bad files, bad data and intervention files, occupied paths."""
    root = tmp_path_factory.mktemp("fuzz")
    cfg = preset_config("tiny", n_sequences=160, eval_every=5)
    ckpt = root / "run" / "ckpt-000001"
    ckpt.mkdir(parents=True)
    (ckpt / "model.eqx").write_bytes(b"never read: every case fails before a model is loaded")
    (ckpt / "meta.json").write_text(json.dumps({"config": cfg.to_json(), "steps": 0, "evals": 1, "seen": 0}))
    (root / "run" / "latest").write_text("ckpt-000001")
    old_meta = json.dumps({"config": "{}", "steps": "x", "evals": 1})
    for name, meta in (("badmeta", "{oops"), ("oldmeta", old_meta)):
        (root / name).mkdir()  # checkpoint directories with an unreadable meta.json
        (root / name / "model.eqx").write_bytes(b"")
        (root / name / "meta.json").write_text(meta)
    (root / "badrun" / "ckpt-000001").mkdir(parents=True)  # a run whose checkpoint is unreadable
    (root / "badrun" / "ckpt-000001" / "meta.json").write_text("{oops")
    (root / "badrun" / "ckpt-000001" / "model.eqx").write_bytes(b"")
    (root / "badrun" / "latest").write_text("ckpt-000001")
    (root / "badlog").mkdir()  # a run that never checkpointed, with a corrupt log
    (root / "badlog" / "log.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    (root / "nockpt").mkdir()
    (root / "file").write_text("occupied")
    x = np.random.default_rng(0).standard_normal((80, 4, 8)).astype(np.float32)
    write_exemplar_file(root / "good.h5", x)
    write_exemplar_file(root / "small.h5", x[:10])
    write_exemplar_file(root / "flat.h5", x[:, 0])
    write_exemplar_file(root / "narrow.h5", x[:, :2])
    write_exemplar_file(root / "int.h5", x.astype(np.int32))
    x[5, 1, 1] = np.inf
    write_exemplar_file(root / "inf.h5", x)
    (root / "truncated.h5").write_bytes((root / "good.h5").read_bytes()[:1200])
    (root / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 3)
    (root / "empty.h5").write_bytes(b"")
    (root / "binary.json").write_bytes(b"\xff\xfe\x00" * 10)
    (root / "notlist.json").write_text('{"name": "ablate_heads"}')
    (root / "badop.json").write_text('[{"name": "induction_heads", "strength": 2}]')
    (root / "bad.json").write_text("[{")
    return root


def _files(root) -> set[str]:
    return {os.path.join(d, f) for d, dirs, files in os.walk(root) for f in dirs + files}


def _check(cli, argv, root) -> None:
    """``cli(argv)`` exits 2 with one ``error:`` line and no traceback, and creates nothing."""
    before = _files(root)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = cli(argv)
        except SystemExit as e:  # argparse
            code = e.code
    lines = err.getvalue().splitlines()
    assert code == 2, (argv, code, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert _files(root) == before, (argv, _files(root) ^ before)


# ----------------------------------------------------------------------------------------------
# Malformed values
# ----------------------------------------------------------------------------------------------

JUNK = st.sampled_from(
    ["", "x", "nan", "inf", "-inf", "1e400", "-1e400", "0x10", "1,2", "--", "None", "1.5.2"]
)
"""Strings that are not numbers a flag could take (``nan`` and ``inf`` are floats, refused by range)."""


def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


TEXT = st.text(max_size=12).filter(lambda t: _not_number(t) and "\x00" not in t)


def _ints(minimum: int, huge: bool) -> st.SearchStrategy[str]:
    """Integers below ``minimum``, non-integers, junk, and (``huge``) sizes no machine has memory for."""
    out = [st.integers(max_value=minimum - 1).map(str), JUNK, TEXT,
           st.sampled_from(["1.5", "2.5e0", "1e-3"])]
    if huge:
        out.append(st.integers(14, 40).map(lambda k: f"1e{k}"))
    return st.one_of(out)


def _floats(low: float, high: float, brackets: str) -> st.SearchStrategy[str]:
    """Non-finite values, junk, and finite numbers outside ``brackets`` of ``low``, ``high``."""
    out = [st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e400"]), JUNK.filter(_not_number), TEXT]
    if np.isfinite(low):
        below = st.floats(max_value=low, exclude_max=brackets[0] == "[", allow_infinity=False)
        out.append(below.filter(lambda x: x != low).map(repr))  # not -0.0 for a closed bound 0
    if np.isfinite(high):
        above = st.floats(min_value=high, exclude_min=brackets[1] == "]", allow_infinity=False)
        out.append(above.map(repr))
    return st.one_of(out)


def _train_values(root) -> dict[str, st.SearchStrategy]:
    """Flag → strategy of malformed values for every flag of ``python -m transformer.train``."""
    from transformer.config import FLOAT_RANGES, INT_MINIMUM, SEEDS

    huge = {"n_classes", "n_holdout_classes", "n_exemplars", "synth_dim", "context_pairs", "burstiness",
            "depth", "d_model", "n_heads", "batch_size", "n_sequences", "n_eval", "n_probe", "icl_label_set"}
    values = {f"--{k.replace('_', '-')}": _ints(m, k in huge) for k, m in INT_MINIMUM.items()}
    values |= {f"--{k.replace('_', '-')}": st.one_of(_ints(0, False), st.just("4294967296"))
               for k in SEEDS}
    values |= {f"--{k.replace('_', '-')}": _floats(*r) for k, r in FLOAT_RANGES.items()}
    names = st.one_of(JUNK, TEXT)
    values |= {
        "--preset": names, "--positional": names, "--unembed-init": names, "--train-kind": names,
        "--lr-schedule": names, "--l2-groups": names,
        "--mlp": names, "--tie-labels": names, "--matched": names, "--freeze-grafted": names,
        "--evaluators": st.sampled_from([",", "icl,bogus", "ICL", "train_eval,,nope"]),
        "--mix": st.sampled_from(["bursty", "bursty:x", "nope:1", "bursty:-1", "bursty:nan", "bursty:1e400",
                                  "bursty:1,bursty:1", "a:b:c", "bursty:0"]),
        "--lr-steps": st.sampled_from(["x", "10", "10:x", "-1:1e-3", "10:-1", "10:inf", "20:1e-3,10:1e-3",
                                       "1e400:1e-3", "10:1e-3,10:2e-3", "3000000000:1e-3", "1.5:1e-3"]),
        "--keep-checkpoints": st.sampled_from(["log:0", "every:0", "log:", "sometimes", "1e400", "log:nan",
                                               "999999999999", "log:10000001", "-5", "every:1.5", ""]),
        "--eval-schedule": st.sampled_from(["foo", "log:0", "log:1e400", "log:nan", "log:-1", "log:10000001",
                                            "log:", ""]),
        "--data-path": st.sampled_from(["missing.h5", "small.h5", "narrow.h5", "flat.h5", "int.h5", "inf.h5",
                                        "truncated.h5", "garbage.h5", "empty.h5", "nockpt"]).map(
                                            lambda f: str(root / f)),
        "--init-from": st.sampled_from(["missing", "nockpt", "badmeta", "oldmeta", "file"]).map(
            lambda f: str(root / f)),
        "--graft-from": st.sampled_from(["missing", "nockpt", "badmeta", "oldmeta"]).map(
            lambda f: str(root / f)),  # with --graft-modules (alone it grafts nothing: not read)
        "--graft-modules": st.sampled_from(["blocks.1", "unembed"]),  # without --graft-from
        "--opto": st.sampled_from(["nope", "ablate_heads:layer=9,heads=0", "prev_token_heads:strength=2",
                                   "ablate_heads:layer=x", "", "induction_heads:heads=0|99", ":"]),
        "--opto-file": st.sampled_from(["missing.json", "binary.json", "notlist.json", "badop.json",
                                        "bad.json", "nockpt"]).map(lambda f: str(root / f)),
    }
    return values


@given(data=st.data())
@FUZZ
def test_fuzz_train(sandbox, data, monkeypatch_module):
    values = _train_values(sandbox)
    special = ["--data-dataset", "--out", "--resume", "--zz-unknown"]
    flag = data.draw(st.sampled_from(sorted(values) + special))
    out = str(sandbox / "fresh")
    argv = ["--preset", "tiny", "--no-progress", "--n-sequences", "160", "--eval-every", "5"]
    if flag == "--data-dataset":  # only read with a data file
        argv += ["--data-path", str(sandbox / "good.h5"), flag, data.draw(st.one_of(JUNK, TEXT))]
    elif flag == "--out":
        out = data.draw(st.sampled_from(["", "file", "file/sub", "run/ckpt-000001/model.eqx"]))
        out = out and str(sandbox / out)
    elif flag == "--resume":
        argv = ["--resume", "--no-progress"]
        choices = ["missing", "nockpt", "badmeta", "file", "oldmeta", "badrun", "badlog"]
        out = str(sandbox / data.draw(st.sampled_from(choices)))
    elif flag == "--zz-unknown":
        argv += [data.draw(st.from_regex(r"--zz-[a-z]{1,6}", fullmatch=True)), "1"]
    else:
        argv += [flag, data.draw(values[flag])]
        argv += ["--graft-modules", "blocks.1"] if flag == "--graft-from" else []
    _check(train_main, argv + ["--out", out], sandbox)


@given(data=st.data())
@FUZZ
def test_fuzz_data(sandbox, data, monkeypatch_module):
    values = {"--n-classes": _ints(1, True), "--n-exemplars": _ints(1, True), "--dim": _ints(1, True),
              "--noise": _floats(0.0, np.inf, "[)"), "--seed": _ints(0, False),
              "--offset": _floats(-np.inf, np.inf, "()"), "--variants": _ints(1, False),
              "--variant-scale": _floats(0.0, np.inf, "[)"), "--shared-scale": _floats(0.0, np.inf, "[)"),
              "--dataset": st.sampled_from(["", "/", "a//", "."]),
              "--out": st.sampled_from(["", "file/x.h5", "run", "."]).map(lambda f: f and str(sandbox / f)),
              "--zz": st.just("1")}
    flag = data.draw(st.sampled_from(sorted(values)))
    argv = ["--out", str(sandbox / "new" / "x.h5"), "--n-classes", "4", "--n-exemplars", "2", "--dim", "2"]
    _check(data_main, argv + [flag, data.draw(values[flag])], sandbox)


@given(data=st.data())
@FUZZ
def test_fuzz_evaluate(sandbox, data, monkeypatch_module):
    run = str(sandbox / "run")
    values = {
        "run": st.sampled_from(["missing", "nockpt", "file", "badmeta", "good.h5", "badrun"]),
        "--modules-from": st.one_of(
            st.sampled_from(["x", ":", "RUN@last:", "RUN@1e400:unembed", "RUN@nan:unembed",
                             "RUN@-1:unembed", "nowhere@last:unembed", "SB/badmeta:unembed",
                             "SB/nockpt:unembed", "SB/oldmeta:unembed", "RUN@x:blocks.1"]),
            TEXT),
        "--opto": st.sampled_from(["nope", "ablate_heads:layer=3,heads=0", "prev_token_heads:strength=nan",
                                   "ablate_heads:heads=x", ""]),
        "--opto-file": st.sampled_from(["missing.json", "binary.json", "bad.json", "notlist.json", "nockpt"]),
        "--evaluators": st.sampled_from([",", "bogus", "icl,nope"]),
        "--out": st.sampled_from(["run", "file/x.h5", "missing/x.h5", ""]),
        "--zz": st.just("1"),
    }
    flag = data.draw(st.sampled_from(sorted(values)))
    value = data.draw(values[flag]).replace("RUN", run).replace("SB", str(sandbox))
    argv = [run, "--out", str(sandbox / "e.h5"), "--no-progress"]
    if flag == "run":
        argv[0] = str(sandbox / value)
    elif flag in ("--opto-file", "--out") and value:
        argv += [flag, str(sandbox / value)]
    else:
        argv += [flag, value]
    _check(evaluate_main, argv, sandbox)


@given(data=st.data())
@FUZZ
def test_fuzz_attribution(sandbox, data, monkeypatch_module):
    run = data.draw(st.sampled_from(["missing", "nockpt", "file", "badmeta", "oldmeta", "good.h5", "badrun",
                                     "run"]))
    argv = [str(sandbox / run)]
    if run == "run":
        argv += [data.draw(st.sampled_from(["--evaluators", "--zz"])),
                 data.draw(st.sampled_from([",", "bogus", "icl,pure_iwl,x", "ICL"]))]
    _check(attribution_main, argv, sandbox)


@pytest.fixture(scope="module")
def monkeypatch_module():
    """The expensive steps of every command replaced by :func:`_sentinel` (module-wide)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("transformer.trainer.init_model", _sentinel)
        mp.setattr("transformer.checkpoint.init_model", _sentinel)
        mp.setattr("transformer.cli.synthetic_exemplars", _sentinel, raising=True)
        mp.setattr("transformer.reevaluate.evaluate_all", _sentinel)
        mp.setattr("transformer.attribution.margin_attribution", _sentinel)
        yield mp


# ----------------------------------------------------------------------------------------------
# The entry points: ``python -m …`` (one subprocess; the others run as ``__main__`` in-process)
# ----------------------------------------------------------------------------------------------


def test_train_entry_point(tmp_path, cli_env):
    argv = [sys.executable, "-m", "transformer.train", "--lr", "inf", "--out", str(tmp_path / "o")]
    r = subprocess.run(argv, env=cli_env, capture_output=True, text=True, cwd=ROOT)
    assert (r.returncode, r.stderr) == (2, "error: --lr: must be finite and > 0, got inf\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy: already imported
@pytest.mark.parametrize(
    "module, argv, line",
    [
        ("transformer.data", ["--n-classes", "1e8", "--out", "OUT/x.h5"], "error: --n-classes: needs ~"),
        ("transformer.attribution", ["OUT"], "error: run: no checkpoint"),
        ("transformer.evaluate", ["OUT", "--out", "OUT/e.h5"], "error: run: no checkpoints"),
    ],
)
def test_main_blocks(tmp_path, capsys, monkeypatch, module, argv, line):
    monkeypatch.setattr(sys, "argv", [module, *(a.replace("OUT", str(tmp_path / "o")) for a in argv)])
    with pytest.raises(SystemExit) as e:
        runpy.run_module(module, run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(line) and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
