"""Sweeps: oracle = the same configuration run alone, known verdicts, the store, resume after SIGKILL,
submitit's local executor, sharding over two devices, plots."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from toymodels.dynamics import GradientDescent
from toymodels.experiment import ToyConfig, run
from toymodels.sweep import (
    CSV_COLUMNS,
    VERDICTS,
    SweepSpec,
    SweepStore,
    VerdictThresholds,
    read_csv,
    run_sweep,
)
from toymodels.sweep.cli import main

PAPER_GD = GradientDescent(lr=1.0, steps=10000, stop_loss=1e-6)
# the small grid shared by the store / resume / executor tests (one compiled call shape)
SMALL = [
    "--reduced",
    "--mu1",
    "0:0.1:3",
    "--alpha",
    "0.05,0.1",
    "--seeds",
    "6-7",
    "--save-every",
    "10",
    "--quiet",
    "--no-plot",
]


@pytest.fixture(scope="module", autouse=True)
def sweep_env(tmp_path_factory, cli_env):
    """Subprocesses (the killed sweep, submitit workers) share one persistent compilation cache:
    the environment of this module's subprocesses (also set in-process, for submitit)."""
    old = os.environ.get("ICL_COOPETITION_CACHE_DIR")
    path = str(tmp_path_factory.mktemp("jax_cache"))
    os.environ["ICL_COOPETITION_CACHE_DIR"] = path
    yield {**cli_env, "ICL_COOPETITION_CACHE_DIR": path}
    if old is None:
        os.environ.pop("ICL_COOPETITION_CACHE_DIR", None)
    else:
        os.environ["ICL_COOPETITION_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def paper_sweeps(tmp_path_factory):
    """μ₁ ∈ {0, 0.1}, seeds 0 and 7, paper settings (GD η = 1, stop at 1e-6) up to step 10000
    (seed 7 stops at 9620), full and reduced."""
    out = {}
    for reduced in (False, True):
        d = tmp_path_factory.mktemp("reduced" if reduced else "full")
        spec = SweepSpec(
            mu1=(0.0, 0.1), seeds=(0, 7), reduced=(reduced,), methods=(PAPER_GD,), coordinates="PEW"
        )
        run_sweep(spec, str(d), curve_points=0)
        out[reduced] = SweepStore(str(d))
    return out


@pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])
def test_a_sweep_point_equals_the_same_configuration_run_alone(paper_sweeps, reduced):
    store = paper_sweeps[reduced]
    alone = run(ToyConfig(mu=(0.1, 0.0), seeds=(0, 7), reduced=reduced, method=PAPER_GD))
    for j, point in enumerate((2, 3)):  # μ₁ = 0.1, seeds 0 and 7
        assert store.points["mu1"][point] == 0.1 and store.points["seed"][point] == alone.labels["seed"][j]
        t, curves = store.curves(point)
        np.testing.assert_array_equal(t, alone.t)
        for name, y in curves.items():
            np.testing.assert_array_equal(np.isnan(y), np.isnan(alone[name][j]))
            np.testing.assert_allclose(y, alone[name][j], rtol=1e-9, atol=1e-13, err_msg=name)
        assert store.summary["stop"][point] == alone.stop[j]


@pytest.mark.parametrize("reduced", [False, True], ids=["full", "reduced"])
def test_verdicts_of_runs_whose_behaviour_is_known(paper_sweeps, reduced):
    s, pts = paper_sweeps[reduced].summary, paper_sweeps[reduced].points
    seven = np.nonzero((pts["seed"] == 7) & (pts["mu1"] == 0.1))[0][0]
    # thesis Fig. 5.9a / science.md §2: minimum ≈ 0.003 near step 5660, back to ≈ 0.2, stop at 9620
    assert VERDICTS[s["verdict"][seven]] == "transient"
    assert 0.001 < s["m1_min"][seven] < 0.005 and 5500 <= s["m1_min_time"][seven] <= 5800
    assert s["m1_final"][seven] > 0.15 and s["stop"][seven] == 9620
    assert s["m2_divot_depth"][seven] > 0 and s["m2_divot_time"][seven] < s["m1_min_time"][seven]
    assert s["escape_time"][seven] < s["m1_min_time"][seven] < s["loss_threshold_time"][seven]
    for point in np.nonzero(pts["mu1"] == 0.0)[0]:  # μ₁ = 0: mechanism 1 wins, no transience
        assert VERDICTS[s["verdict"][point]] != "transient"
        assert s["m1_final"][point] < 1e-3


def test_default_pq_coordinates_agree_with_the_accurate_pew_form(paper_sweeps, tmp_path):
    spec = SweepSpec(mu1=(0.0, 0.1), seeds=(0, 7), reduced=(True,), methods=(PAPER_GD,))
    assert spec.coordinates == "PQ" and SweepSpec(precision="float32").coordinates == "PEW"
    fast = run_sweep(spec, str(tmp_path), curve_points=0)
    exact = paper_sweeps[True]
    np.testing.assert_array_equal(fast.summary["verdict"], exact.summary["verdict"])
    np.testing.assert_array_equal(fast.summary["stop"], exact.summary["stop"])
    for k in ("m1_min", "m1_final", "m2_final"):  # well above the PQ form's rounding floor (~1e-12)
        big = exact.summary[k] > 1e-6
        np.testing.assert_allclose(fast.summary[k][big], exact.summary[k][big], rtol=1e-6, err_msg=k)
    np.testing.assert_allclose(fast.summary["m1_min_time"], exact.summary["m1_min_time"], atol=10)


def test_cli_store_layout_and_summary_csv(tmp_path):
    out = tmp_path / "sweep"
    assert main(SMALL + ["--out", str(out), "--curve-points", "50"]) == 0
    assert sorted(os.listdir(out)) == ["chunks", "summary.csv", "sweep.h5", "sweep.json"]
    rows = read_csv(str(out / "summary.csv"))
    assert len(rows) == 12 and list(rows[0]) == list(CSV_COLUMNS)
    for column in (
        "mu1",
        "mu2",
        "alpha",
        "dims",
        "seed",
        "verdict",
        "m1_min",
        "m1_min_time",
        "m1_final",
        "m2_final",
    ):
        assert column in rows[0]
    assert {r["verdict"] for r in rows} <= set(VERDICTS) and rows[0]["dims"] == "20x20x20x160"
    with h5py.File(out / "sweep.h5") as f:
        assert f.attrs["complete"] and f.attrs["n_done"] == 12
        assert f["points/mu1"].shape == (12,) and f["points/dims"].shape == (12, 4)
        assert set(f["summary"]) >= {
            "m1_min",
            "m1_min_time",
            "m1_final",
            "verdict",
            "m2_divot_depth",
            "m2_divot_time",
            "loss_threshold_time",
            "escape_time",
            "done",
        }
        name = next(iter(f["chunks"]))  # external links resolve to the chunk files
        assert f["chunks"][name]["curves/mechanism_1_loss"].shape[1] == 50
    store = SweepStore(str(out))
    t, curves = store.curves(11)
    assert t[-1] == 16000 and set(curves) == {"loss", "mechanism_1_loss", "mechanism_2_loss", "competition"}
    # a re-run with the same arguments finds everything done; different arguments are refused
    assert main(SMALL + ["--out", str(out), "--curve-points", "50"]) == 0
    assert main(SMALL + ["--out", str(out)]) == 2  # other --curve-points: a different sweep


def _store_snapshot(out):
    store = SweepStore(str(out))
    assert store.done.all()
    curves = [store.curves(p) for p in range(store.n_points)]
    return store.summary, curves, (out / "summary.csv").read_text()


def _assert_same_store(a, b):
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    for (ta, ca), (tb, cb) in zip(a[1], b[1]):
        np.testing.assert_array_equal(ta, tb)
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k])
    assert a[2] == b[2]


def test_resume_after_sigkill_gives_the_uninterrupted_store(tmp_path, sweep_env):
    args = SMALL + ["--chunk-size", "1"]
    reference = tmp_path / "reference"
    assert main(args + ["--out", str(reference)]) == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toymodels.sweep", *args, "--out", str(out)],
        env=sweep_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    chunks = out / "chunks"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if chunks.is_dir() and len([f for f in os.listdir(chunks) if f.startswith("c")]) >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with h5py.File(out / "sweep.h5") as f:  # the index is whole, and not complete
        assert not f.attrs["complete"] and f["summary/done"].shape == (12,)
    n_finished = len([f for f in os.listdir(chunks) if f.startswith("c")])
    assert 2 <= n_finished < 12
    finished_before = {f: os.stat(chunks / f).st_mtime_ns for f in os.listdir(chunks) if f.startswith("c")}
    assert main(args + ["--out", str(out)]) == 0
    for f, mtime in finished_before.items():  # finished chunks were skipped, not recomputed
        assert os.stat(chunks / f).st_mtime_ns == mtime
    assert not [f for f in os.listdir(out) + os.listdir(chunks) if f.startswith(".tmp-")]
    _assert_same_store(_store_snapshot(reference), _store_snapshot(out))


def test_submitit_local_executor_fills_the_same_store(tmp_path):
    args = SMALL + ["--chunk-size", "6"]
    inline, local = tmp_path / "inline", tmp_path / "local"
    assert main(args + ["--out", str(inline)]) == 0
    assert main(args + ["--out", str(local), "--executor", "local"]) == 0
    assert len(os.listdir(local / "chunks")) == 2 and (local / "jobs").is_dir()
    _assert_same_store(_store_snapshot(inline), _store_snapshot(local))


def test_chunks_are_sharded_over_two_devices(tmp_path, sweep_env):
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from toymodels.dynamics import GradientDescent
        from toymodels.sweep import SweepSpec, SweepStore, run_sweep
        from toymodels.sweep.chunk import reduced_batch, shard_runs
        from toymodels.reduced import (
            ReducedParams, initial_state, reduced_dynamics, typical_initial_stats,
        )
        from toymodels.losses import coopetition_model
        from toymodels.precision import numerics
        assert len(jax.local_devices()) == 2
        spec = SweepSpec(mu1=(0.0, 0.05, 0.1), seeds=(7,), reduced=(True,),
                         methods=(GradientDescent(steps=6000, save_every=10),))
        two = run_sweep(spec, {str(tmp_path / "two")!r})
        one = run_sweep(spec, {str(tmp_path / "one")!r}, devices=jax.local_devices()[:1])
        for k in two.summary:
            # other partitioning: rounding may differ
            np.testing.assert_allclose(two.summary[k], one.summary[k], rtol=1e-12, atol=0)
        a, b = SweepStore({str(tmp_path / "two")!r}), SweepStore({str(tmp_path / "one")!r})
        for p in range(3):
            np.testing.assert_allclose(a.curves(p)[1]["loss"], b.curves(p)[1]["loss"], rtol=1e-12, atol=1e-15)
        # the compiled call really runs on both devices (3 runs padded to 4, 2 per device)
        dyn = reduced_dynamics(coopetition_model())
        with numerics('float64'):
            model = coopetition_model()
            stats = typical_initial_stats(model, 1.0, np.array([0.1, 0.2, 0.3]))
            state0 = initial_state(dyn, stats, np.float64)
            dims = np.tile(np.array(model.dims, dtype=float), (3, 1))
            params = ReducedParams(R=dims, dims=dims, mu=np.zeros((3, 2)) + 0.1, alpha=np.full(3, 0.1))
            args, n = shard_runs((state0, params), None)
            curves, stop, _ = reduced_batch(dyn, spec.methods[0], *args)
        assert n == 3 and curves['loss'].shape[0] == 4
        assert len(curves['loss'].sharding.device_set) == 2, curves['loss'].sharding
        print('OK')
    """)
    env = {**sweep_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_phase_diagram_and_point_curves(tmp_path, paper_sweeps):
    out = tmp_path / "plots"
    assert main(SMALL[:-1] + ["--out", str(out), "--plot-points", "0-1,11"]) == 0
    assert (out / "phase_diagram.png").stat().st_size > 20_000 and (
        out / "curves.png"
    ).stat().st_size > 20_000
    from toymodels.sweep.plots import aggregate, phase_diagram, points_result

    store = SweepStore(str(out))
    fig = phase_diagram(store, "mu1", "alpha")
    verdict_image = fig.axes[0].images[0].get_array()
    assert verdict_image.shape == (2, 3)  # α rows × μ₁ columns
    # the modal verdict of a cell is the verdict of its runs when they agree
    table = store.table()
    cell = (table["mu1"] == 0.0) & (table["alpha"] == 0.05)
    if len(set(table["verdict"][cell])) == 1:
        assert verdict_image[0, 0] == table["verdict"][cell][0]
    assert aggregate(
        np.array([1.0, 3.0, 2.0]), np.array([0, 0, 1]), np.array([0, 0, 0]), (1, 2), "median"
    ).tolist() == [[2.0, 2.0]]
    result = points_result(paper_sweeps[True], [3])
    assert result.measures["mechanism_1_loss"].shape == (1, 10001)


def test_thresholds_change_the_verdict_as_defined():
    from toymodels.sweep.verdicts import verdicts

    th = VerdictThresholds(emerge_ratio=0.1, fade_ratio=0.5)
    ref = np.ones(4)
    got = verdicts(ref, np.array([0.5, 0.01, 0.01, 0.1]), np.array([0.5, 0.01, 0.6, 0.49]), th)
    assert [VERDICTS[v] for v in got] == ["none", "persistent", "transient", "persistent"]


def test_slurm_executor_parameters(tmp_path, monkeypatch, capsys):
    import submitit

    from toymodels._internal.executors import submitit_executor

    if not submitit.SlurmExecutor.affinity() > 0:  # no SLURM here: a one-line error, nothing run
        rc = main(SMALL + ["--out", str(tmp_path / "s"), "--executor", "slurm"])
        assert rc == 2 and capsys.readouterr().err.startswith("error: --executor:")
        assert not (tmp_path / "s").exists() or os.listdir(tmp_path / "s") == []
        monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    ex = submitit_executor(
        "slurm",
        str(tmp_path),
        {"partition": "gpu", "time": 90, "gpus": 2, "cpus": 8, "array_parallelism": 16},
    )
    params = ex._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 90 and params["gpus_per_node"] == 2
    assert params["cpus_per_task"] == 8 and params["array_parallelism"] == 16
