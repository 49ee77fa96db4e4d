"""Sweep axes, spec files and bad input (one line, exit 2, nothing written)."""

import json

import numpy as np
import pytest

from toymodels.errors import ConfigError
from toymodels.sweep import SweepSpec, parse_axis, parse_dims, parse_seeds
from toymodels.sweep.cli import build_parser, main, spec_from_args


def test_axis_syntax():
    np.testing.assert_allclose(parse_axis("0:0.2:5", "mu1"), [0, 0.05, 0.1, 0.15, 0.2])
    log = parse_axis("log:0.01:1:3", "alpha")
    assert log[0] == 0.01 and log[-1] == 1.0 and abs(log[1] - 0.1) < 1e-12
    assert parse_axis("0.1", "mu1") == (0.1,)
    assert parse_axis("0,0.05,0.1", "mu1") == (0.0, 0.05, 0.1)
    assert parse_axis([0, "1:2:2"], "mu1") == (0.0, 1.0, 2.0)
    assert parse_axis(3, "mu1") == (3.0,)
    assert parse_seeds("0-3") == (0, 1, 2, 3) and parse_seeds([7, "1-2"]) == (7, 1, 2)


def test_dims_positional_and_grouped():
    assert parse_dims(["20", "20", "20", "10,160"], "abcd") == ((20, 20, 20, 10), (20, 20, 20, 160))
    grouped = parse_dims(["a=20", "bc=10,40", "d=160"], "abcd")
    assert grouped == ((20, 10, 10, 160), (20, 40, 40, 160))
    assert parse_dims({"a": 20, "bc": "10,40", "d": 160}, "abcd") == grouped


def test_grid_order_and_size():
    spec = SweepSpec(mu1=(0.0, 0.1), alpha=(0.05, 0.1, 0.2), seeds=(0, 1), reduced=(True,))
    pts = spec.points()
    assert spec.n_points == 12 and pts["seed"].tolist()[:4] == [0, 1, 0, 1]  # seed varies fastest
    assert pts["alpha"].tolist()[:6] == [0.05, 0.05, 0.1, 0.1, 0.2, 0.2]
    assert spec.swept_axes() == ["mu1", "alpha", "seed"]
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_file_equals_flags(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        'mu1 = "0:0.1:3"\nalpha = "log:0.01:1:3"\nseeds = "0-1"\ndims = {a = 20, bc = "10,20", d = 160}\n'
        'method = ["gd", "flow"]\nreduced = [true]\nclamps = [[], ["c"]]\n'
    )
    from_file = spec_from_args(build_parser().parse_args(["--spec", str(path), "--steps", "100"]))
    from_flags = spec_from_args(
        build_parser().parse_args(
            [
                "--mu1",
                "0:0.1:3",
                "--alpha",
                "log:0.01:1:3",
                "--seeds",
                "0-1",
                "--dims",
                "a=20",
                "bc=10,20",
                "d=160",
                "--method",
                "gd,flow",
                "--reduced",
                "--clamp-sets",
                "none,c",
                "--steps",
                "100",
            ]
        )
    )
    assert from_file == from_flags and from_file.n_points == 3 * 3 * 2 * 2 * 2 * 2
    jpath = tmp_path / "grid.json"
    jpath.write_text(json.dumps({"mu1": [0, 0.1], "seeds": 7}))
    assert spec_from_args(build_parser().parse_args(["--spec", str(jpath)])).mu1 == (0.0, 0.1)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--mu1", "-0.1"], "--mu1"),
        (["--mu1", "0:1:0"], "--mu1"),
        (["--mu1", "0.1:0.1:3"], "--mu1"),
        (["--mu1", "a:b:c"], "--mu1"),
        (["--mu2=-1,0"], "--mu2"),
        (["--alpha", "log:0:1:5"], "--alpha"),
        (["--alpha=-0.5:0.5:3"], "--alpha"),
        (["--dims", "20", "0", "20", "160"], "--dims"),
        (["--dims", "a=20", "bc=0:10:3", "d=160"], "--dims"),
        (["--dims", "a=20", "b=20", "d=160"], "--dims"),
        (["--dims", "20", "20", "20"], "--dims"),
        (["--seeds", "3-1"], "--seeds"),
        (["--method", "sgd"], "--method"),
        (["--clamp-sets", "none,z"], "--clamp"),
        (["--init-scale", "-1"], "--init-scale"),
        (["--steps", "0"], "--steps"),
        (["--fade-ratio", "0.05"], "--fade-ratio"),
        (["--chunk-size", "-1"], "--chunk-size"),
        (["--plot-axes", "mu1,nope"], "--plot-axes"),
        (["--reduced", "--clamp", "c:3"], "--clamp"),
        (["--mu1", "-0.1,0.1"], "--mu1"),  # a value that looks like a negative number is a value
        (["--alpha", "-0.5:0.5:3"], "--alpha"),
        (["--mu1", "0:1:100000000000"], "--mu1"),  # refused before the range is built
        (["--seeds", "0-100000000000"], "--seeds"),
        (["--curve-points", "-1"], "--curve-points"),  # was taken as "every recorded time"
        (["--curve-points", "1"], "--curve-points"),
        (["--chunk-size", "100000000"], "--chunk-size"),
        # chunks that cannot fit any machine's memory (~10 TB, ~100 TB), named by what drives them
        (
            ["--mu1", "0:0.1:1000", "--alpha", "0:0.1:1000", "--steps", "160000", "--chunk-size", "1000000"],
            "--chunk-size",
        ),
        (["--steps", "2000000000", "--chunk-size", "1000", "--seeds", "0-999"], "--steps"),
        (["--steps", "100000000000"], "--steps"),
        (["--cpus", "-1"], "--cpus"),
        (["--array-parallelism", "0"], "--array-parallelism"),
        (["--time", "0"], "--time"),
        (["--plot-points", "0-100000000000"], "--plot-points"),
        (["--plot-points", "3"], "--plot-points"),  # the sweep has one point
        (["--dims", "20", "20", "20", "1e12"], "--dims"),
        (["--out", "/proc/icl_coopetition_test"], "--out"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    rc = main(["--out", str(out), "--quiet"] + argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"error: {flag}:") and err.count("\n") == 1, err
    assert not out.exists()  # not even the directory


@pytest.mark.parametrize("argv", [["--emerge-ratio", "inf"], ["--chunk-size", "x"], ["--gpus", "1.5"]])
def test_malformed_values_are_one_line_usage_errors(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {argv[0]}:") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, flag",
    [
        ("mu3 = 0.1\n", "--spec"),
        ('mu1 = "0:1:0"\n', "--mu1"),
        ('dims = ["20", "20", "0", "160"]\n', "--dims"),
        ('seeds = "x"\n', "--seeds"),
        ("not toml = = \n", "--spec"),
    ],
)
def test_bad_spec_file(tmp_path, capsys, content, flag):
    path = tmp_path / "spec.toml"
    path.write_text(content)
    rc = main(["--spec", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {flag}:") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_axis_in_both_flag_and_spec_is_an_error(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"mu1": [0, 0.1]}')
    with pytest.raises(ConfigError) as e:
        spec_from_args(build_parser().parse_args(["--spec", str(path), "--mu1", "0.2"]))
    assert e.value.param == "mu1"
