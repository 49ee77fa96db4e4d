"""Every figure a command line or figure script writes, rendered from small inputs and checked for
layout: no text outside the figure, no two texts overlapping (tick labels, titles, labels, legends),
no text under 9 pt, and the pixel size a slide needs. The checker itself is tested on the cramped
fixed-margin layout the toy command used to write (it must find its cut and overlapping labels)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest
from matplotlib.text import Text

from toymodels.plotting import DPI, MIN_FONT, plot_result, pyplot
from toymodels.results import ToyResult

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1.0  # pixels a text may reach past the figure's edge
MIN_GAP = 2.0  # pixels between any two texts (labels that touch read as one: "1000012000")


# ---------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------


def drawn_texts(fig) -> list[Text]:
    """The texts a full draw of ``fig`` actually renders (visible, non-empty; tick labels of ticks
    outside the view limits are not drawn and not returned)."""
    drawn: list[Text] = []
    original = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    with mock.patch.object(Text, "draw", record):
        fig.canvas.draw()
    return drawn


def _describe(text: Text) -> str:
    return repr(text.get_text()[:40])


def layout_problems(fig, min_font: float = MIN_FONT) -> list[str]:
    """Texts outside the figure, overlapping pairs of texts, and texts smaller than ``min_font``."""
    renderer = fig.canvas.get_renderer()
    texts = drawn_texts(fig)
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    frame = fig.bbox
    problems = []
    for t, b in boxes:
        if (
            b.x0 < frame.x0 - TOLERANCE
            or b.y0 < frame.y0 - TOLERANCE
            or b.x1 > frame.x1 + TOLERANCE
            or b.y1 > frame.y1 + TOLERANCE
        ):
            problems.append(
                f"{_describe(t)} extends outside the figure: {b.extents.round()} vs {frame.extents}"
            )
        if t.get_fontsize() < min_font:
            problems.append(f"{_describe(t)} is {t.get_fontsize():g} pt (< {min_font:g})")
    for (s, a), (t, b) in itertools.combinations(boxes, 2):
        width = min(a.x1, b.x1) - max(a.x0, b.x0)  # < 0: the gap between them
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        if width > -MIN_GAP and height > -MIN_GAP:
            problems.append(f"{_describe(s)} overlaps {_describe(t)} (or is closer than {MIN_GAP} px)")
    return problems


def check_figure(fig, size_px: tuple[int, int] | None = None, dpi: float = DPI) -> None:
    """Assert a clean layout (and, given, the pixel size at ``dpi``); closes the figure."""
    try:
        problems = layout_problems(fig)
        pixels = tuple(int(round(v * dpi)) for v in fig.get_size_inches())
    finally:
        pyplot().close(fig)
    assert not problems, "\n".join(problems)
    if size_px is not None:
        assert pixels == size_px


def test_the_checker_finds_the_old_fixed_margin_layout():
    """The toy command's old figure: 4.2 × 3.2 in at 100 dpi with fixed margins. Its y tick labels and
    x label are cut and the figure title overlaps the panel title; the checker must say so."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot([0, 4000, 8000], [1.0, 1e-4, 1e-10])
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("seed 7", fontsize=9)
    ax.legend(["mechanism 1 loss"], fontsize=7)
    fig.suptitle("gd · dims [20, 20, 20, 160] · α=0.1", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.9)
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("outside the figure" in p and "10^{0}" in p for p in problems), problems  # "10⁰" cut
    assert any("'step' extends outside" in p for p in problems), problems
    assert any("'seed 7' overlaps" in p or "overlaps 'seed 7'" in p for p in problems), problems
    assert any("is 7 pt" in p for p in problems), problems


def test_the_checker_finds_overlapping_tick_labels():
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2), layout="constrained")
    ax.set_xticks(np.arange(30))
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("overlaps" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# Toy results: python -m toymodels (one seed, a 12-seed grid, > 12 seeds overlaid)
# ---------------------------------------------------------------------------------------------


def synthetic_result(n_runs: int, method: str = "gd", n_times: int = 400, t_max: float = 9620.0) -> ToyResult:
    """A result with the coopetition model's curves and label ranges (no simulation)."""
    t = np.linspace(0.0, t_max, n_times)
    s = np.arange(n_runs)[:, None]
    m1 = 0.55 * np.exp(-t / (1500 + 100 * s)) + 0.2 * (1 - np.exp(-t / 4000))
    m2 = 0.5 * np.exp(-((t / (3000 + 50 * s)) ** 2)) + 1e-12
    comp = 0.1 * np.exp(-t / 700) + 1e-6 + 0 * s
    return ToyResult(
        t=t,
        measures={"loss": (m1 + 0.1) * m2 + 0.1 * comp, "mechanism_1_loss": m1, "mechanism_2_loss": m2,
                  "competition": comp},
        labels={"seed": np.arange(n_runs), "mu": np.tile([0.1, 0.0], (n_runs, 1)),
                "alpha": np.full(n_runs, 0.1)},
        stop=np.full(n_runs, -1),
        failure=np.full(n_runs, -1),
        vectors={},
        config={"method": method, "model": {"dims": [20, 20, 20, 160], "competition": ["a", "d"]},
                "reduced": False, "clamps": ["c:3"]},
    )  # fmt: skip


@pytest.mark.parametrize(
    "n_runs, size",
    [(1, (840, 552)), (3, (1512, 384)), (5, (2016, 768)), (12, (2016, 1152)), (13, (840, 552))],
    ids=["one seed", "3 seeds", "5 seeds", "12 seeds", "13 seeds overlaid"],
)
def test_toy_result_figures(n_runs, size):
    check_figure(plot_result(synthetic_result(n_runs)), size)


@pytest.mark.parametrize("n_runs", [1, 3, 12, 13])
def test_toy_figures_to_step_16000(n_runs):
    """Runs that do not stop (Fig. D.6): step labels up to 16000 must not run together."""
    check_figure(plot_result(synthetic_result(n_runs, t_max=16000.0)))


def test_toy_flow_figure():
    check_figure(plot_result(synthetic_result(2, method="flow", t_max=16000.0)))


# ---------------------------------------------------------------------------------------------
# python -m toymodels.sweep: phase_diagram.png and curves.png
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    from toymodels.sweep.cli import main

    out = tmp_path_factory.mktemp("sweep")
    argv = ["--reduced", "--mu1", "0:0.1:3", "--alpha", "0.05,0.1", "--seeds", "6-7", "--steps", "2000",
            "--save-every", "10", "--plot-points", "0-4", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_sweep_command_figures_have_a_fixed_size(sweep_dir):
    from PIL import Image

    with Image.open(sweep_dir / "phase_diagram.png") as im:
        assert im.size == (1800, 528)
    with Image.open(sweep_dir / "curves.png") as im:
        assert im.size == (2016, 768)


def test_sweep_writes_curves_only_with_plot_points(sweep_dir, tmp_path, capsys):
    """As docs/sweep.md says: phase_diagram.png when two axes are swept, curves.png only with
    --plot-points (re-running the finished sweep in a copy of its directory recomputes nothing)."""
    import shutil

    from toymodels.sweep.cli import main

    out = tmp_path / "copy"
    shutil.copytree(sweep_dir, out)
    for name in ("phase_diagram.png", "curves.png"):
        (out / name).unlink()
    argv = ["--reduced", "--mu1", "0:0.1:3", "--alpha", "0.05,0.1", "--seeds", "6-7", "--steps", "2000",
            "--save-every", "10", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "wrote sweep.h5, summary.csv, phase_diagram.png to" in capsys.readouterr().out
    assert (out / "phase_diagram.png").exists() and not (out / "curves.png").exists()


@pytest.mark.parametrize("axes", [("mu1", "alpha"), ("alpha", "seed")])
def test_sweep_phase_diagram(sweep_dir, axes):
    from toymodels.sweep import SweepStore, phase_diagram

    check_figure(phase_diagram(SweepStore(str(sweep_dir)), *axes), (1800, 528))


@pytest.mark.parametrize("points", [[0], [0, 1, 2, 3, 4], list(range(12))])
def test_sweep_point_curves(sweep_dir, points):
    from toymodels.sweep import SweepStore, plot_points_curves

    check_figure(plot_points_curves(SweepStore(str(sweep_dir)), points))


# ---------------------------------------------------------------------------------------------
# python -m toymodels.analysis --phase-diagram
# ---------------------------------------------------------------------------------------------


def test_analysis_phase_diagram():
    from toymodels.analysis.phases import PhaseDiagram, RunCheck, phase_diagram_figure

    grid = np.linspace(0, 0.3, 13)
    regime = np.zeros((13, 13), dtype=int)
    regime[0] = 1
    regime[3, 4] = 3
    pd = PhaseDiagram(
        grid, grid, regime, regime.astype(object), regime.astype(object), (20, 20, 20, 160), 0.0
    )
    checks = RunCheck([(0.1, 0.1, "x", "y", True), (0.0, 0.1, "x", "y", False)])
    check_figure(phase_diagram_figure(pd, checks), (960, 720), dpi=150)


# ---------------------------------------------------------------------------------------------
# python -m transformer.plot
# ---------------------------------------------------------------------------------------------


def write_transformer_log(path, n_evals: int = 12, from_zero: bool = True, bad: tuple | None = None) -> None:
    """A log in the training layout (written through :func:`transformer.log.write_log`)."""
    from transformer.log import write_log

    seen = np.geomspace(64_000, 1.8e6, n_evals - from_zero).astype(np.int64)
    seen = np.concatenate([[0], seen]) if from_zero else seen
    rng = np.random.default_rng(0)
    metrics = ("loss", "acc", "in_context_acc", "prob")
    evaluators = {
        name: {m: rng.uniform(0, 1, (n_evals, 8)) for m in metrics}
        for name in ("icl", "iwl_copy_avail", "flip_icl", "pure_iwl", "train_eval")
    }
    if bad is not None:
        evaluators["icl"]["acc"] = rng.uniform(0, 1, bad)
    write_log(path, seen, evaluators)
    with h5py.File(path, "a") as f:  # the probes, as training appends them
        for probe in ("induction_strength", "prev_token_attn", "induction_strength_flip", "self_attn"):
            f.create_dataset(f"probes/{probe}", data=rng.uniform(0, 1, (n_evals, 2, 8)))


@pytest.mark.parametrize("from_zero", [True, False], ids=["with the evaluation at 0", "without"])
def test_transformer_plot(tmp_path, from_zero):
    from transformer.plot import log_figure

    path = tmp_path / "log.h5"
    write_transformer_log(path, from_zero=from_zero)
    fig = log_figure(str(path), title="cpu-quick: ICL peak 0.90 -> 0.67, Flip peak 0.81 -> 0.01")
    ax = fig.axes[0]
    if from_zero:  # the evaluation at 0 sequences is drawn, at the left edge, and the label says so
        assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] <= 0 <= ax.get_lines()[0].get_xdata()[0]
        assert "linear up to 64,000" in ax.get_xlabel()
    else:
        assert ax.get_xscale() == "log"
    check_figure(fig, (1800, 504))


@pytest.mark.parametrize(
    "shape, dataset, expected",
    [((12,), "icl/acc", "(12, 8)"), ((12, 8, 2), "icl/acc", "(12, 8)"), ((11, 8), "icl/acc", "(12, 8)")],
)
def test_transformer_plot_refuses_a_wrongly_shaped_log(tmp_path, capsys, shape, dataset, expected):
    """It crashed with numpy's AxisError; now one line naming the dataset, exit 2, no figure."""
    from transformer.plot import main

    path = tmp_path / "log.h5"
    write_transformer_log(path, bad=shape)
    assert main([str(path), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: log: dataset {dataset!r} of {path} has shape {shape}, expected {expected}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.h5"]


@pytest.mark.parametrize(
    "out", ["/proc/icl_coopetition_test.png", "{tmp}/c.xyz", "{tmp}/no/such/dir/c.png", "{tmp}"]
)
def test_transformer_plot_refuses_an_unwritable_figure_path(tmp_path, capsys, out):
    from transformer.plot import main

    path = tmp_path / "log.h5"
    write_transformer_log(path)
    assert main([str(path), "--out", out.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.h5"]


def test_transformer_plot_usage_errors_are_one_line(capsys):
    from transformer.plot import main

    with pytest.raises(SystemExit) as e:
        main(["a.h5", "--nope"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# paper_figs: the toy figures (the committed PNGs keep their sizes) and the escape-time figure
# ---------------------------------------------------------------------------------------------


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"paper_figs_{name}", ROOT / "paper_figs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed_size(name: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(ROOT / "paper_figs" / name) as im:
        return im.size


@pytest.fixture(scope="module")
def toy_figures():
    return _script("toy_figures")


@pytest.fixture(scope="module")
def clamping_runs():
    """The three tensor-model runs of Figs. 4.6a and 4.7 (synthetic curves of the same shapes)."""
    t = np.arange(1001.0)
    runs = {}
    for label, plateau in (("no clamp", 600.0), ("c clamped", 150.0), ("b and c clamped", 0.0)):
        drop = 1 / (1 + np.exp((t - plateau) / 30))
        curves = {"loss": 0.5 * drop + 1e-9, "one_minus_cos2_a": 0.95 * drop + 1e-6,
                  "loss_others_at_targets_a": 0.5 * np.exp(-t / (plateau + 50)) + 1e-9}  # fmt: skip
        runs[label] = ToyResult(
            t=t, measures={k: v[None] for k, v in curves.items()},
            labels={"seed": np.array([3]), "mu": np.zeros((1, 1)), "alpha": np.zeros(1)},
            stop=np.array([-1]), failure=np.array([-1]), vectors={},
            config={"method": "gd", "model": {"dims": [20, 20, 20]}, "reduced": False, "clamps": []},
        )  # fmt: skip
    return runs


def test_paper_figure_4_6a(toy_figures, clamping_runs):
    check_figure(toy_figures.figure_4_6a(clamping_runs), _committed_size("toy_fig4_6a.png"))


def test_paper_figure_4_7(toy_figures, clamping_runs):
    check_figure(toy_figures.figure_4_7(clamping_runs), _committed_size("toy_fig4_7.png"))


def test_paper_figure_5_9a(toy_figures):
    check_figure(toy_figures.figure_5_9a(synthetic_result(1)), _committed_size("toy_fig5_9a.png"))


def test_paper_figures_d5_d6():
    check_figure(plot_result(synthetic_result(12)), _committed_size("toy_figD_5.png"))
    assert _committed_size("toy_figD_6.png") == _committed_size("toy_figD_5.png")


def test_paper_escape_time_figure():
    from toymodels.analysis.escape import EscapeRow

    sigmas = np.logspace(-5, -2, 4)
    rows = [
        EscapeRow(N, float(s), 10 * s ** -(N - 2.0) + N, 10 * s ** -(N - 2.0))
        for N in (3, 4, 5)
        for s in sigmas
    ]
    rows += [EscapeRow(2, float(s), 20 * np.log(1 / s) + 3, 20 * np.log(1 / s)) for s in sigmas]
    exps = {2: (20.011, 20.0), 3: (-1.00032, -1.0), 4: (-2.00001, -2.0), 5: (-2.99991, -3.0)}
    check_figure(
        _script("escape_time").escape_figure(rows, exps), _committed_size("escape_time.png"), dpi=150
    )
