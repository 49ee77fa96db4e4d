"""``python -m toymodels``: outputs, one-line errors with exit status 2, nothing half-written."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from toymodels._internal import parse_int_list
from toymodels.cli import main
from toymodels.errors import ConfigError
from toymodels.experiment import parse_seeds


def test_cli_end_to_end_in_a_fresh_process(tmp_path, cli_env):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "toymodels", "--seeds", "0-2", "--steps", "300", "--out", str(out)],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "seed 2" in proc.stdout
    with h5py.File(out / "toymodel.h5") as f:
        assert f["loss"].shape == (3, 301) and f["seed"][()].tolist() == [0, 1, 2]
    with Image.open(out / "toymodel.png") as im:  # 3 panels of 4.2 × 3.2 in at 120 dpi
        assert im.size == (1512, 384)
    assert sorted(os.listdir(out)) == ["toymodel.h5", "toymodel.png"]  # no temporary leftovers


def test_the_default_figure_is_slide_sized(tmp_path):
    """``python -m toymodels`` on one seed: 7 × 4.6 in at 120 dpi (it was 420 × 320 pixels)."""
    assert main(["--steps", "200", "--out", str(tmp_path), "--quiet"]) == 0
    with Image.open(tmp_path / "toymodel.png") as im:
        assert im.size == (840, 552)


def test_cli_flow_tensor_model_with_clamps(tmp_path):
    rc = main(
        [
            "--model",
            "tensor",
            "--dims",
            "6",
            "5",
            "4",
            "--method",
            "flow",
            "--t-max",
            "50",
            "--n-save",
            "11",
            "--clamp",
            "b",
            "--clamp",
            "c:2",
            "--seeds",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert rc == 0
    with h5py.File(tmp_path / "toymodel.h5") as f:
        np.testing.assert_allclose(f["t"][()], np.linspace(0, 50, 11))
        np.testing.assert_array_equal(f["final/b"][()], f["targets/b"][()])
        np.testing.assert_array_equal(f["final/c"][()][:, :2], f["targets/c"][()][:, :2])
        assert "stop_time" in f and "mechanism_2_loss" not in f


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--mu1", "-0.1"], "--mu1"),
        (["--mu2", "-1"], "--mu2"),
        (["--alpha", "-0.5"], "--alpha"),
        (["--dims", "20", "0", "20", "160"], "--dims"),
        (["--dims", "20", "20", "20"], "--dims"),
        (["--clamp", "z"], "--clamp"),
        (["--clamp", "a:0"], "--clamp"),
        (["--clamp", "a:21"], "--clamp"),
        (["--method", "flow", "--t-max", "0"], "--t-max"),
        (["--method", "flow", "--t-max", "-5"], "--t-max"),
        (["--lr", "0"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--seeds", "5-2"], "--seeds"),
        (["--seeds", "x"], "--seeds"),
        # runs that cannot fit any machine's memory (≥ 50 TB), named by what drives the estimate
        (["--seeds", "0-999999", "--steps", "160000"], "--seeds"),
        (["--seeds", "0-100000000000"], "--seeds"),  # refused before the range is expanded
        (["--init-scale", "-1"], "--init-scale"),
        (["--steps", "100000000000"], "--steps"),  # past the 32-bit step counter
        (["--steps", "2000000000", "--seeds", "0-999"], "--steps"),
        (["--method", "flow", "--n-save", "10000000000", "--seeds", "0-99"], "--n-save"),
        (["--dims", "2000000000", "20", "20", "160", "--seeds", "0-999"], "--dims"),
        (["--dims", "100000000000", "20", "20", "160"], "--dims"),
        (["--method", "flow", "--max-steps", "10000000000"], "--max-steps"),
        (["--alpha", "-0.1"], "--alpha"),  # a negative value is a value, not an option
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    rc = main(argv + ["--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"error: {flag}:") and err.count("\n") == 1, err
    assert not out.exists()  # not even the directory


def test_empty_seed_range_says_so(capsys):
    assert main(["--seeds", "5-2", "--out", "/nonexistent/never"]) == 2
    assert "empty range '5-2'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, flag, reason",
    [
        (["--mu1", "nan"], "--mu1", "finite"),
        (["--alpha", "-inf"], "--alpha", "finite"),
        (["--lr", "inf"], "--lr", "finite"),
        (["--steps", "1.5"], "--steps", "integer"),
        (["--steps", "1e400"], "--steps", "integer"),
        (["--method", "flow", "--rtol", "inf"], "--rtol", "finite"),
        (["--alpha", "-0.1,0.1"], "--alpha", "expected a number"),
        (["--stop-loss", "x"], "--stop-loss", "expected a number or none"),
    ],
)
def test_malformed_values_are_usage_errors_naming_the_flag(tmp_path, capsys, argv, flag, reason):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {flag}: ") and reason in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["under a file", "a file", "in /proc", "empty", "outputs are directories"])
def test_unwritable_output_directory(tmp_path, capsys, where):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    (tmp_path / "occupied" / "toymodel.h5").mkdir(parents=True)
    out = {
        "under a file": str(blocker / "sub"),
        "a file": str(blocker),
        "in /proc": "/proc/icl_coopetition_test",
        "empty": "",
        "outputs are directories": str(tmp_path / "occupied"),
    }[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main(["--steps", "10", "--out", out])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --out:") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_argparse_errors_are_one_line_without_traceback(cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "toymodels", "--mu1", "abc"],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--mu1" in proc.stderr and "Traceback" not in proc.stderr


def test_integral_numbers_are_integers():
    from toymodels.cli import build_parser

    assert build_parser().parse_args(["--steps", "1.6e4", "--n-save", "1001"]).steps == 16000


def test_parse_int_list():
    assert parse_int_list("0-3,7") == (0, 1, 2, 3, 7)
    assert parse_int_list("7") == (7,)
    with pytest.raises(ConfigError):
        parse_int_list("3-1")


def test_parse_seeds():
    assert parse_seeds("0-3,7") == (0, 1, 2, 3, 7) and parse_seeds([1, "4-5"]) == (1, 4, 5)
    for text, reason in [("5-2", "empty range"), ("0-99999999999", "at most"), ("x", "expected integers"),
                         ("2147483648", "must be integers in"), ("", "expected integers")]:  # fmt: skip
        with pytest.raises(ConfigError, match=reason):
            parse_seeds(text)


def test_memory_estimate_names_the_flag_that_drives_it():
    from toymodels.experiment import ToyConfig
    from toymodels.methods import GradientDescent, GradientFlow

    gib = 2**30
    est = ToyConfig(method=GradientDescent(steps=10**9)).memory()
    assert est.flag == "steps" and est.total_bytes > 300 * gib  # 10⁹ × 21 measures × 8 bytes × 2
    assert ToyConfig(seeds=tuple(range(10**5))).memory().flag == "seeds"
    assert ToyConfig(dims=(10**9, 20, 20, 160)).memory().flag == "dims"
    assert ToyConfig(method=GradientFlow(n_save=10**9)).memory().flag == "n-save"
    small = ToyConfig().memory()
    assert small.total_bytes < gib / 100
    small.check(gib)
    with pytest.raises(ConfigError, match="GiB"):
        est.check(gib)
