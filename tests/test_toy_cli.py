"""``python -m toymodels``: outputs, one-line errors with exit status 2, nothing half-written."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from toymodels._internal import parse_int_list
from toymodels.cli import main
from toymodels.errors import ConfigError


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
    assert (out / "toymodel.png").stat().st_size > 10_000
    assert sorted(os.listdir(out)) == ["toymodel.h5", "toymodel.png"]  # no temporary leftovers


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
        (["--init-scale", "-1"], "--init-scale"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    rc = main(argv + ["--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"error: {flag}:") and err.count("\n") == 1, err
    assert not out.exists() or os.listdir(out) == []


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    rc = main(["--steps", "10", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --out:") and err.count("\n") == 1


def test_argparse_errors_are_one_line_without_traceback(cli_env):
    proc = subprocess.run(
        [sys.executable, "-m", "toymodels", "--mu1", "abc"],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--mu1" in proc.stderr and "Traceback" not in proc.stderr


def test_parse_int_list():
    assert parse_int_list("0-3,7") == (0, 1, 2, 3, 7)
    assert parse_int_list("7") == (7,)
    with pytest.raises(ConfigError):
        parse_int_list("3-1")
