"""Toy-model figures of the thesis, one command each:

    python paper_figs/toy_figures.py 4.6a   # clamping: plateau + phase change vs smooth decay
    python paper_figs/toy_figures.py 4.7    # progress measures under normal training and clamping
    python paper_figs/toy_figures.py 5.9a   # strategy coopetition, seed 7 (the README figure)
    python paper_figs/toy_figures.py D.5    # 12 seeds, mu1 = 0.1 (transience)
    python paper_figs/toy_figures.py D.6    # 12 seeds, mu1 = 0 (no transience)
    python paper_figs/toy_figures.py all

Figures are written next to this script as ``toy_fig<NAME>.png`` (``--out DIR`` to change), each at a
fixed size (its ``figsize`` at :data:`toymodels.plotting.DPI`, no tight bounding box), so a rerun
replaces a committed PNG with one of the same pixel size. Everything goes through the library
(:func:`toymodels.experiment.run`), as a notebook would; ``figure_*`` draw given runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from toymodels.clamps import Clamp
from toymodels.experiment import ToyConfig, run
from toymodels.methods import GradientDescent
from toymodels.plotting import DPI, MIN_FONT, draw_run, plot_result, pyplot, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))
COLOURS = ("black", "tab:blue", "tab:orange")


def tensor_clamping_runs(seed: int = 3, steps: int = 1000):
    """Thesis §4.4.2 setting: 3 vectors of dim 20, GD with η = 1 for 1000 steps."""
    base = ToyConfig(
        model="tensor",
        dims=(20, 20, 20),
        mu=(0.0,),
        alpha=0.0,
        seeds=(seed,),
        method=GradientDescent(lr=1.0, steps=steps, stop_loss=None),
    )
    return {
        "no clamp": run(base),
        "c clamped": run(ToyConfig(**{**base.__dict__, "clamps": (Clamp("c"),)})),
        "b and c clamped": run(ToyConfig(**{**base.__dict__, "clamps": (Clamp("b"), Clamp("c"))})),
    }


def figure_4_6a(runs):
    """Loss of the tensor model with and without clamps (6 × 4 in: 720 × 480 pixels)."""
    fig, ax = pyplot().subplots(figsize=(6, 4), layout="constrained")
    for (label, r), colour in zip(runs.items(), COLOURS):
        ax.plot(r.t, r["loss"][0], label=label, color=colour)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("Tensor-product model (3 × 20 dims, GD η = 1):\nclamping shortens the plateau", fontsize=10)
    ax.legend(fontsize=MIN_FONT)
    ax.grid(alpha=0.3)
    return fig


def figure_4_7(runs):
    """Progress measures of the sub-circuit a (13 × 3.6 in: 1560 × 432 pixels)."""
    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    for (label, r), colour in zip(runs.items(), COLOURS):
        axes[0].plot(r.t, r["loss"][0], color=colour, label=label)
        axes[1].plot(r.t, r["one_minus_cos2_a"][0], color=colour, label=label)
        axes[2].plot(r.t, r["loss_others_at_targets_a"][0], color=colour, label=label)
    titles = ("loss", "1 − cos²(a, a*)", "loss with b = ±b*, c = ±c* (best sign)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=MIN_FONT)
    fig.suptitle(
        "Progress measures of the sub-circuit a: a phase change under normal training, smooth under clamping",
        fontsize=11,
    )
    return fig


def figure_5_9a(result):
    """Mechanism losses of one coopetition run (6.5 × 4.2 in: 780 × 504 pixels)."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.2), layout="constrained")
    draw_run(ax, result, 0, competition=False)
    ax.set_title("Strategy coopetition (seed 7, μ₁ = α = 0.1):\nmechanism 1 emerges, then fades", fontsize=10)
    return fig


def _save(fig, out: str, name: str) -> str:
    path = os.path.join(out, name)
    save_figure(fig, path, dpi=DPI)
    return path


def fig_4_6a(out: str) -> str:
    return _save(figure_4_6a(tensor_clamping_runs()), out, "toy_fig4_6a.png")


def fig_4_7(out: str) -> str:
    return _save(figure_4_7(tensor_clamping_runs()), out, "toy_fig4_7.png")


def fig_5_9a(out: str) -> str:
    # the defaults are the thesis setting: seed 7, mu1 = alpha = 0.1
    return _save(figure_5_9a(run(ToyConfig())), out, "toy_fig5_9a.png")


def fig_d5(out: str) -> str:  # 12 panels: 16.8 × 9.6 in, 2016 × 1152 pixels
    return _save(plot_result(run(ToyConfig(seeds=tuple(range(12))))), out, "toy_figD_5.png")


def fig_d6(out: str) -> str:
    r = run(ToyConfig(seeds=tuple(range(12)), mu=(0.0, 0.0), method=GradientDescent(stop_loss=1e-3)))
    return _save(plot_result(r), out, "toy_figD_6.png")


FIGURES = {"4.6a": fig_4_6a, "4.7": fig_4_7, "5.9a": fig_5_9a, "D.5": fig_d5, "D.6": fig_d6}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=list(FIGURES) + ["all"])
    p.add_argument("--out", default=HERE)
    args = p.parse_args(argv)
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    for name in names:
        print(f"Fig. {name}: {FIGURES[name](args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
