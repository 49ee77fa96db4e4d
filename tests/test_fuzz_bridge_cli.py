"""Fuzzing the bridge command lines (``bridge.fit``, ``bridge.compare``) with bad input.

Every case must end the same way: one line ``error: --flag: reason`` (or ``error: log: …`` for the
log argument) on stderr, exit status 2, and nothing created at ``--out``. Cases: bad flag values
(numbers out of range, NaN, inf, words where numbers go, unknown names), logs that are missing,
truncated, overwritten with random bytes, wrongly shaped or holding NaN, and ``--out`` paths that
are files or lie under a file. Hypothesis runs derandomised with no deadline, in-process
(``main(argv)``); no fit ever starts, because every input is rejected before fitting.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.logs import Curves, read_log
from bridge.synthetic import write_synthetic_log
from toymodels.errors import ConfigError

FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
N = 30
SEEN = np.linspace(0, 3e5, N)


def good_curves() -> Curves:
    x = np.linspace(0, 1, N)
    values = {
        "icl": 2.0 - 1.5 * np.exp(-((x - 0.4) ** 2) / 0.02),
        "ciwl": 2.0 - 1.8 * x,
        "total": 3.0 * np.exp(-3 * x) + 0.1,
    }
    return Curves(seen=SEEN, values=values)


@pytest.fixture(scope="module")
def good_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "log.h5"
    write_synthetic_log(path, good_curves())
    return str(path)


def run_cli(module: str, argv: list[str], capsys) -> tuple[int, str]:
    main = __import__(f"bridge.{module}", fromlist=["main"]).main
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    cap = capsys.readouterr()
    return code, cap.err


def assert_rejected(code: int, err: str, out: str, flag_prefix: str | None = None) -> None:
    line = err.strip()
    assert code == 2, (code, err)
    assert line.startswith("error: ") and "\n" not in line, err
    assert "Traceback" not in err
    if flag_prefix is not None:
        assert line.startswith(f"error: {flag_prefix}"), line
    assert not os.path.exists(out), out


# bad values per flag: each makes the command fail before anything is fitted or written
BAD = {
    "--starts": ["0", "-3", "x", "1.5", ""],
    "--candidates": ["0", "-1", "many"],
    "--seed": ["-1", "abc"],
    "--adam-steps": ["-1", "2.5"],
    "--lm-steps": ["0", "-5", "nan"],
    "--horizon": ["0.5", "nan", "-inf", "x"],
    "--min-points": ["3", "-1", "1e3"],
    "--max-seen": ["0", "-10", "nan", "inf"],
    "--skip-first": ["-1", "x"],
    "--robust": ["0", "-1", "nan", "inf", "huber"],
    "--curves": ["", "icl,icl", "bogus", "icl,,x", "flip"],
    "--free": ["mu1", "span,bogus", "span,span", "span,mu1,mu1"],
    "--fix": ["alpha", "mu2=-1", "dim_d=0.5", "eps_a=2", "eps_b=0.1", "bogus=1", "mu1=x", "span=nan"],
    "--metric": ["accuracy", ""],
}
GOOD = {
    "--starts": "2",
    "--candidates": "4",
    "--seed": "3",
    "--horizon": "2",
    "--skip-first": "1",
    "--curves": "icl,ciwl,total",
    "--robust": "0.5",
}


@FUZZ
@given(
    bad=st.sampled_from(sorted(BAD)).flatmap(lambda f: st.tuples(st.just(f), st.sampled_from(BAD[f]))),
    extra=st.lists(st.sampled_from(sorted(GOOD)), max_size=3, unique=True),
    module=st.sampled_from(["fit", "compare"]),
)
def test_bad_flags(bad, extra, module, good_log, tmp_path, capsys):
    flag, value = bad
    assume(flag not in extra)
    out = str(tmp_path / "out_flags")
    argv = [good_log, "--out", out]
    for f in extra:
        argv += [f, GOOD[f]]
    argv += [f"{flag}={value}"]
    code, err = run_cli(module, argv, capsys)
    assert_rejected(code, err, out)
    line = err.strip()
    # the line names the offending flag (or, for --curves/--free values checked against the log,
    # the curves/free parameter it concerns)
    assert line.startswith(f"error: {flag}:") or flag in ("--fix", "--free", "--curves"), line


def _corrupt(path: str, kind: str, data: st.DataObject) -> None:
    if kind == "truncate":
        size = os.path.getsize(path)
        n = data.draw(st.integers(0, size - 1), label="keep bytes")
        with open(path, "r+b") as f:
            f.truncate(n)
    elif kind == "scribble":
        size = os.path.getsize(path)
        at = data.draw(st.integers(0, size - 64), label="offset")
        junk = data.draw(st.binary(min_size=16, max_size=64), label="bytes")
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(junk)
    elif kind == "nan":
        with h5py.File(path, "a") as f:
            grp = data.draw(st.sampled_from(["icl", "iwl_copy_avail", "train_eval"]), label="group")
            i = data.draw(st.integers(0, N - 1), label="row")
            f[grp]["loss"][i, 0] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
    elif kind == "shape":
        with h5py.File(path, "a") as f:
            target = data.draw(st.sampled_from(["eval_iter", "icl/loss", "train_eval/loss"]), label="dataset")
            old = f[target][()]
            del f[target]
            shape = data.draw(st.sampled_from(["2d", "short", "scalar", "text"]), label="shape")
            new = {
                "2d": np.atleast_2d(old).reshape(1, -1, 1) if old.ndim else np.zeros((2, 2)),
                "short": old[: max(len(old) // 2, 1)] if old.ndim else old,
                "scalar": np.float64(1.0),
                "text": np.bytes_(b"not numbers"),
            }[shape]
            f[target] = new
    elif kind == "missing":
        with h5py.File(path, "a") as f:
            del f[data.draw(st.sampled_from(["icl", "iwl_copy_avail", "train_eval", "eval_iter"]))]
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "directory":
        os.remove(path)
        os.mkdir(path)


@FUZZ
@given(
    kind=st.sampled_from(["truncate", "scribble", "nan", "shape", "missing", "empty", "directory"]),
    data=st.data(),
    module=st.sampled_from(["fit", "compare"]),
)
def test_bad_logs(kind, data, module, tmp_path, capsys):
    path = tmp_path / f"run_{kind}" / "log.h5"
    path.parent.mkdir(exist_ok=True)
    if path.is_dir():
        path.rmdir()
    write_synthetic_log(path, good_curves())
    _corrupt(str(path), kind, data)
    try:  # a corruption that left a valid log (e.g. bytes in unused space) is not bad input
        read_log(path, ("icl", "ciwl", "total"), min_points=16)
        assume(False)
    except ConfigError:
        pass
    out = str(tmp_path / "out_log")
    code, err = run_cli(module, [str(path), "--out", out, "--starts", "2"], capsys)
    assert_rejected(code, err, out, "log:")


@FUZZ
@given(where=st.sampled_from(["file", "under_file", "empty"]), module=st.sampled_from(["fit", "compare"]))
def test_bad_out(where, module, good_log, tmp_path, capsys):
    blocker = tmp_path / "occupied"
    blocker.write_text("a file, not a directory")
    out = {"file": str(blocker), "under_file": str(blocker / "sub" / "dir"), "empty": ""}[where]
    code, err = run_cli(module, [good_log, "--out", out, "--starts", "2"], capsys)
    assert code == 2 and err.strip().startswith("error: --out: ") and "\n" not in err.strip(), err
    assert blocker.read_text() == "a file, not a directory"
    assert not os.path.exists(blocker / "sub")


def test_unwritable_out(good_log, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = str(locked / "fit")
    code, err = run_cli("fit", [good_log, "--out", out], capsys)
    assert_rejected(code, err, out, "--out:")


def test_missing_arguments(capsys):
    code, err = run_cli("fit", [], capsys)
    assert code == 2 and err.strip().startswith("error: ") and "\n" not in err.strip()
    code, err = run_cli("fit", ["x.h5"], capsys)
    assert code == 2 and err.strip() == "error: --out: required", err
