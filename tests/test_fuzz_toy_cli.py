"""Fuzzing the toy command lines with malformed values for every flag (hypothesis).

Per command (``python -m toymodels``, ``python -m toymodels.sweep``, ``python -m toymodels.analysis``)
each example sets one flag to a malformed value — a wrong type, NaN, ±inf, a negative, a huge number,
an empty string, an unknown name, an unwritable or occupied output path — or adds an unknown flag, and
runs ``main(argv)`` in-process. It must exit with status 2, print exactly one stderr line starting
``error:`` and no traceback, create nothing, and never reach the solver (which is replaced by a
function that fails the test). Three subprocess runs check the same of the installed entry points.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toymodels.errors import ConfigError


def fuzz(max_examples: int):
    """Hypothesis settings: reproducible (derandomised, no example database), no deadline, the
    fixtures reused."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---------------------------------------------------------------------------------------------
# Malformed values
# ---------------------------------------------------------------------------------------------


def _not_a_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


TEXT = st.text(max_size=10)
NOT_A_NUMBER = TEXT.filter(_not_a_float)
NON_FINITE = st.sampled_from(["nan", "-nan", "NaN", "inf", "-inf", "+inf", "Infinity", "-Infinity", "1e400"])
NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr) | st.integers(
    max_value=-1
).map(str)
NOT_AN_INTEGER = (
    NOT_A_NUMBER
    | st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer())).map(repr)
    | st.sampled_from(["1.5", "0x10", "1e400", "nan"])
)
HUGE = st.integers(min_value=2**31, max_value=10**40).map(str)


def bad_number(nonnegative: bool = True, positive: bool = False):
    """Not a number, not finite, or (when the flag needs one) negative / zero."""
    out = NOT_A_NUMBER | NON_FINITE
    if nonnegative or positive:
        out |= NEGATIVE
    if positive:
        out |= st.sampled_from(["0", "0.0", "-0"])
    return out


def bad_integer(low: int, high: int | None = None):
    """Not an integer, below ``low`` or above ``high``."""
    out = NOT_AN_INTEGER | st.integers(max_value=low - 1).map(str)
    if high is not None:
        out |= st.integers(min_value=high + 1, max_value=high + 10**40).map(str)
    return out


def rejected_by(parse):
    """Texts that ``parse`` refuses with a :class:`ConfigError` (any other exception fails the test)."""

    def refused(text: str) -> bool:
        try:
            parse(text)
        except ConfigError:
            return True
        return False

    return TEXT.filter(refused)


def unknown_name(choices):
    return TEXT.filter(lambda t: t not in choices)


def bad_flag(parser):
    """``--NAME`` that is no flag of ``parser`` and no unambiguous prefix of one."""
    flags = [o for a in parser._actions for o in a.option_strings]
    names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12)
    return names.map(lambda t: "--" + t).filter(lambda f: sum(o.startswith(f) for o in flags) != 1)


def one_of_flag(cases):
    """argv fragments: a flag with one of its malformed values (``cases``: flag → (base argv, values))."""
    return st.one_of(
        *(
            st.tuples(
                st.just(base),
                values.map(lambda v, flag=flag: [flag, v] if isinstance(v, str) else [flag, *v]),
            )
            for flag, (base, values) in cases.items()
        )
    ).map(lambda pair: pair[0] + pair[1])


# ---------------------------------------------------------------------------------------------
# The arena: a directory with occupied output paths; nothing may appear in it
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a_file").write_text("not a directory")
    for name in ("toymodel.h5", "sweep.h5", "summary.csv"):
        (root / "occupied" / name).mkdir(parents=True)
    (root / "spec.toml").write_text("mu3 = 0.1\n")
    (root / "spec.json").write_text('{"mu1": "0:1:0"}')
    return root


def snapshot(root) -> list[str]:
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files)


def bad_paths(arena, suffix: str = ""):
    return st.sampled_from(
        [
            "",
            "/proc/icl_coopetition_fuzz" + suffix,
            "/proc/icl_coopetition_fuzz/deeper" + suffix,
            str(arena / "a_file" / ("sub" + suffix)),
            str(arena / ("x" * 300 + suffix)),
            str(arena / ("nul\0name" + suffix)),
        ]
    )


def _forbidden(*args, **kwargs):
    raise AssertionError("a malformed value reached the solver")


def check_one_line_error(main, argv, arena, capsys) -> None:
    """exit 2, one stderr line ``error: …``, no traceback, nothing on stdout, nothing created."""
    before = snapshot(arena)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, code, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), (argv, err)
    assert "Traceback" not in err and out == "", (argv, out)
    assert snapshot(arena) == before, argv


# ---------------------------------------------------------------------------------------------
# python -m toymodels
# ---------------------------------------------------------------------------------------------


def toy_cases(arena):
    from toymodels.experiment import MAX_DIM, MAX_STEPS, parse_seeds
    from toymodels.methods import SOLVERS

    flow = ["--method", "flow"]
    valid_dims = ["20", "20", "20", "160"]
    bad_dim = bad_number() | st.sampled_from(["0", "0.5", "20.5", str(MAX_DIM + 1), "1e12"])
    dims = st.one_of(
        st.tuples(st.integers(0, 3), bad_dim).map(
            lambda p: valid_dims[: p[0]] + [p[1]] + valid_dims[p[0] + 1 :]
        ),
        st.lists(st.just("20"), min_size=1, max_size=3),
        st.lists(st.just("20"), min_size=5, max_size=6),
    )
    clamp = st.sampled_from(
        ["", ":", "a:", "a:0", "a:-1", "a:21", "a:1.5", "a:x", "a:²", "e", "ab", "A"]
    ) | TEXT.filter(lambda t: t.split(":")[0].strip() not in {"a", "b", "c", "d"})
    seeds = st.sampled_from(
        ["", " ", ",", "x", "-1", "5-2", "1,,2", "0-3-5", "1.5", "0-99999999999", "2147483648"]
    )
    seeds |= st.tuples(st.integers(0, 10**6), st.integers(1, 10**6)).map(lambda p: f"{p[0] + p[1]}-{p[0]}")
    seeds |= HUGE | rejected_by(parse_seeds)
    return {
        "--model": ([], unknown_name(("coopetition", "tensor"))),
        "--dims": ([], dims),
        "--mu1": ([], bad_number()),
        "--mu2": ([], bad_number()),
        "--alpha": ([], bad_number()),
        "--combine": ([], unknown_name(("multiplicative", "additive"))),
        "--init-scale": ([], bad_number()),
        "--prng": ([], unknown_name(("legacy", "partitionable"))),
        "--clamp": ([], clamp),
        "--precision": ([], unknown_name(("float64", "float32"))),
        "--seeds": ([], seeds),
        "--method": ([], unknown_name(("gd", "flow"))),
        "--lr": ([], bad_number(positive=True)),
        "--steps": ([], bad_integer(1, MAX_STEPS)),
        "--save-every": ([], bad_integer(1) | st.integers(1, 16000).filter(lambda k: 16000 % k).map(str)),
        "--t-max": (flow, bad_number(positive=True)),
        "--n-save": (flow, bad_integer(2) | st.sampled_from(["1000000000000", "100000000000000"])),
        "--solver": (flow, unknown_name(tuple(SOLVERS))),
        "--rtol": (flow, bad_number(positive=True)),
        "--atol": (flow, bad_number(positive=True)),
        "--max-steps": (flow, bad_integer(1, MAX_STEPS)),
        "--stop-loss": (
            [],
            (NOT_A_NUMBER.filter(lambda t: t.lower() not in ("none", "off")) | NON_FINITE | NEGATIVE),
        ),
        "--out": ([], bad_paths(arena) | st.just(str(arena / "a_file")) | st.just(str(arena / "occupied"))),
    }


@pytest.fixture(scope="module")
def no_toy_solver():
    with mock.patch("toymodels.experiment.run", _forbidden):
        yield


@pytest.fixture(scope="module")
def toy_argv(arena):
    from toymodels.cli import build_parser

    return one_of_flag(toy_cases(arena)) | bad_flag(build_parser()).map(lambda f: [f])


@fuzz(200)
@given(data=st.data())
def test_toy_cli_refuses_malformed_values(data, arena, capsys, no_toy_solver, toy_argv):
    from toymodels.cli import main

    check_one_line_error(
        main, ["--quiet", "--out", str(arena / "fresh"), *data.draw(toy_argv)], arena, capsys
    )


# ---------------------------------------------------------------------------------------------
# python -m toymodels.sweep
# ---------------------------------------------------------------------------------------------


def _negative_axis(text: str) -> None:
    """Refuse what the sweep refuses for μ, α and σ: a malformed axis or a negative value."""
    from toymodels.sweep.spec import parse_axis

    if min(parse_axis(text, "mu1")) < 0:
        raise ConfigError("mu1", "negative")


def _replace_one(values: list[str], bad):
    """``values`` with one of them replaced by a value of ``bad``."""
    return st.tuples(st.integers(0, len(values) - 1), bad).map(
        lambda p: [*values[: p[0]], p[1], *values[p[0] + 1 :]]
    )


def sweep_cases(arena):
    from toymodels.sweep.plots import AXES

    axis = st.sampled_from(["", "a:b:c", "0:1:0", "0:1:-3", "0.1:0.1:3", "log:0:1:5", "log:-1:1:3", "log:1",
                            "1,,2", ",", "0:1:1.5", "0:1:100000000000", "0:1", "1:2:3:4"])  # fmt: skip
    axis |= NON_FINITE | NEGATIVE | NEGATIVE.map(lambda v: f"{v},0.1") | NON_FINITE.map(lambda v: f"0:{v}:3")
    axis |= rejected_by(_negative_axis)
    bad_dims = _replace_one(["20", "20", "20", "160"], axis | st.sampled_from(["0", "0.5", "20.5", "1e12"]))
    bad_dims |= st.sampled_from([["a=20", "b=20", "d=160"], ["a=20", "bc=0", "d=160"],
                                 ["a=20", "20", "20", "160"], ["z=20"], ["20", "20", "20"]])  # fmt: skip
    specs = [str(arena / "spec.toml"), str(arena / "spec.json"), str(arena / "nope.toml"), str(arena), ""]
    two_axes = lambda t: len(t.split(",")) == 2 and all(a in AXES for a in t.split(","))  # noqa: E731
    toy = toy_cases(arena)
    same = (
        "--model --combine --prng --precision --clamp --seeds --lr --steps --save-every --t-max --n-save "
        "--solver --rtol --atol --max-steps --stop-loss --out"
    ).split()
    return {
        **{flag: toy[flag] for flag in same},
        "--mu1": ([], axis),
        "--mu2": ([], axis),
        "--alpha": ([], axis),
        "--init-scale": ([], axis),
        "--dims": ([], bad_dims),
        "--method": ([], TEXT.filter(lambda t: not all(n.strip() in ("gd", "flow") for n in t.split(",")))),
        "--clamp-sets": ([], st.sampled_from(["none,z", "a:0", "e", "a+a", "a:²", "a:21"])),
        "--spec": ([], st.sampled_from(specs)),
        "--chunk-size": ([], bad_integer(0, 50_000_000)),
        "--curve-points": ([], NOT_AN_INTEGER | st.integers(max_value=-1).map(str) | st.just("1")),
        "--coordinates": ([], unknown_name(("PEW", "PQ"))),
        "--executor": ([], unknown_name(("inline", "local", "slurm"))),
        "--time": ([], bad_integer(1, 10**6)),
        "--gpus": ([], bad_integer(0, 10**6)),
        "--cpus": ([], bad_integer(0, 10**6)),
        "--array-parallelism": ([], bad_integer(1, 10**6)),
        "--emerge-ratio": ([], bad_number(positive=True) | st.sampled_from(["0.5", "0.9", "10"])),
        "--fade-ratio": ([], bad_number(positive=True) | st.sampled_from(["0.1", "0.05"])),
        "--loss-threshold": ([], bad_number(positive=True)),
        "--escape-ratio": ([], bad_number(positive=True)),
        "--plot-axes": ([], TEXT.filter(lambda t: not two_axes(t))),
        "--plot-points": ([], st.sampled_from(["1", "0-99999999999", "5-2", "-1", "x", "", "0,,1"]) | HUGE),
    }


@pytest.fixture(scope="module")
def no_sweep_solver():
    with mock.patch("toymodels.sweep.cli.run_sweep", _forbidden):
        yield


@pytest.fixture(scope="module")
def sweep_argv(arena):
    from toymodels.sweep.cli import build_parser

    return one_of_flag(sweep_cases(arena)) | bad_flag(build_parser()).map(lambda f: [f])


@fuzz(200)
@given(data=st.data())
def test_sweep_cli_refuses_malformed_values(data, arena, capsys, no_sweep_solver, sweep_argv):
    from toymodels.sweep.cli import main

    check_one_line_error(
        main, ["--quiet", "--out", str(arena / "fresh"), *data.draw(sweep_argv)], arena, capsys
    )


# ---------------------------------------------------------------------------------------------
# python -m toymodels.analysis (alias python -m toymodels.saddle)
# ---------------------------------------------------------------------------------------------


def analysis_cases(arena):
    from toymodels.analysis.cli import MAX_GRID, MAX_STARTS

    fixed = ["--coopetition"]
    diagram = ["--phase-diagram", str(arena / "fresh.png")]
    valid_dims = ["20", "20", "20", "160"]
    bad_dim = bad_number() | st.sampled_from(["0", "0.5", "1e12"])
    return {
        "--n": ([], bad_integer(2, 26)),
        "--mu1": (fixed, bad_number()),
        "--mu2": (diagram, bad_number()),
        "--alpha": (fixed, bad_number()),
        "--dims": (
            fixed,
            st.tuples(st.integers(0, 3), bad_dim).map(
                lambda p: valid_dims[: p[0]] + [p[1]] + valid_dims[p[0] + 1 :]
            )
            | st.lists(st.just("20"), min_size=1, max_size=3),
        ),
        "--starts": (fixed, bad_integer(1, MAX_STARTS)),
        "--seed": (fixed, bad_integer(0, 2**32 - 1)),
        "--grid": (diagram, bad_integer(1, MAX_GRID)),
        "--phase-diagram": (
            [],
            bad_paths(arena, ".png")
            | st.sampled_from([str(arena / "x.xyz"), str(arena), str(arena / "a_file" / "x.png")]),
        ),
    }


@pytest.fixture(scope="module")
def no_analysis_solver():
    with (
        mock.patch("toymodels.analysis.cli.saddle_report", _forbidden),
        mock.patch("toymodels.analysis.fixed_points.coopetition_fixed_points", _forbidden),
        mock.patch("toymodels.analysis.phases.phase_diagram", _forbidden),
    ):
        yield


@pytest.fixture(scope="module")
def analysis_argv(arena):
    from toymodels.analysis.cli import _parser

    return one_of_flag(analysis_cases(arena)) | bad_flag(_parser()).map(lambda f: ["--n", "3", f])


@fuzz(100)
@given(data=st.data())
def test_analysis_cli_refuses_malformed_values(data, arena, capsys, no_analysis_solver, analysis_argv):
    from toymodels.analysis.cli import main

    check_one_line_error(main, data.draw(analysis_argv), arena, capsys)


def test_no_action_is_an_error_too(arena, capsys):
    from toymodels.analysis.cli import main

    check_one_line_error(main, [], arena, capsys)


# ---------------------------------------------------------------------------------------------
# The entry points themselves (three subprocesses)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["toymodels", "--steps", "100000000000", "--out"],  # aborted inside XLA (SIGABRT)
        ["toymodels.sweep", "--curve-points", "-1", "--out"],  # was taken as "every recorded time"
        ["toymodels.saddle", "--phase-diagram"],  # FileNotFoundError in /proc
    ],
    ids=["toymodels", "sweep", "saddle"],
)
def test_entry_points(argv, arena, cli_env):
    before = snapshot(arena)
    out = "/proc/icl_coopetition_fuzz.png" if argv[0] == "toymodels.saddle" else str(arena / "fresh")
    proc = subprocess.run(
        [sys.executable, "-m", *argv, out], capture_output=True, text=True, env=cli_env, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert snapshot(arena) == before


def test_config_errors_are_value_errors():
    """The CLIs catch :class:`ConfigError`; library code that raises a plain ValueError for user input
    (``Clamp.parse('a:²')`` once raised int()'s ValueError) is not, so the fuzzing above reaches every
    check."""
    from toymodels.clamps import Clamp

    for text in ("a:²", "a:٣", "a:0", "a:-1", "a:1.5", ":3", "a:"):
        with pytest.raises(ConfigError):
            Clamp.parse(text)
    assert Clamp.parse("a:3") == Clamp("a", 3) and Clamp.parse("a") == Clamp("a")
