"""Plots of a run's log: ``python -m transformer.plot DIR/log.h5 [--out FILE.png]``.

Left: in-context accuracy of the ICL, CIWL and Flip evaluators and accuracy of the IWL evaluator
against sequences seen (Fig. 5.1b style). Middle: losses of the train, ICL and CIWL evaluators
(Fig. 5.9b style, where the CIWL loss shows a divot while ICL forms). Right: induction strength of
the last layer's heads and previous-token attention of the first layer's heads.

The x axis is logarithmic; when the log holds the evaluation at 0 sequences (before training) it is
symmetric-logarithmic instead, linear from 0 to the first evaluation after it, so that evaluation is
drawn at the left edge (the axis label says where the scale turns logarithmic). A log whose datasets
have the wrong shapes is refused with one line naming the dataset (:func:`check_log`).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from toymodels._internal import OneLineParser
from toymodels.errors import ConfigError, require

from .log import check_shapes, evaluator_means, open_log, split_by_target

CURVES = (
    ("icl", "in_context_acc", "ICL (in-context acc.)", "tab:blue"),
    ("iwl_copy_avail", "in_context_acc", "CIWL (in-context acc.)", "tab:orange"),
    ("flip_icl", "in_context_acc", "Flip (in-context acc.)", "tab:green"),
    ("pure_iwl", "acc", "IWL (acc.)", "tab:red"),
)
LOSSES = (
    ("train_eval", "train", "k"),
    ("icl", "ICL", "tab:blue"),
    ("iwl_copy_avail", "CIWL", "tab:orange"),
)
FIGSIZE = (15, 4.2)
DPI = 120  # 1800 × 504 pixels
LEGEND_FONT = 9


def check_log(path: str) -> int:
    """:func:`transformer.log.check_shapes` of the log at ``path``, and at least one evaluation.
    Returns the number of evaluations; :class:`ConfigError` on ``log`` naming the first wrong dataset."""
    with open_log(path) as f:
        n = check_shapes(f, path)
    require(n >= 1, "log", f"{path} holds no evaluation yet")
    return n


def sequences_axis(ax, x: np.ndarray) -> None:
    """Log x axis of sequences seen; symmetric-log (linear up to the first evaluation after 0, ticks
    at 0 and the decades above it) when the evaluation at 0 sequences is there, so it is drawn too."""
    from matplotlib.ticker import FixedLocator, NullLocator

    positive = x[x > 0]
    ax.set_xlabel("sequences seen")
    if positive.size and positive.size < x.size:
        first, last = float(positive.min()), float(positive.max())
        ax.set_xscale("symlog", linthresh=first, linscale=1.0)
        decades = 10.0 ** np.arange(np.ceil(np.log10(first * 1.5)), np.floor(np.log10(last)) + 1)
        ax.xaxis.set_major_locator(FixedLocator([0.0, *decades]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(-0.05 * first, last * 1.15)
        ax.set_xlabel(f"sequences seen (linear up to {first:,.0f}, log above)")
    elif positive.size:
        ax.set_xscale("log")


def log_figure(path: str, title: str | None = None):
    """The three panels for log ``path`` (checked with :func:`check_log`); returns the Figure."""
    from toymodels.plotting import pyplot

    plt = pyplot()
    check_log(path)
    c = evaluator_means(path)
    x = c["eval_iter"]
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE, layout="constrained")
    ax = axes[0]
    for name, metric, label, color in CURVES:
        key = f"{name}/{metric}"
        if key in c:
            ax.plot(x, c[key], label=label, color=color)
    try:  # ICL accuracy split by target label (0/1 are also the trained labels of classes 0/1)
        split = split_by_target(path)
    except (ConfigError, KeyError):
        split = {}
    for label, acc in split.items():
        ax.plot(
            x,
            acc,
            color="tab:blue",
            lw=0.8,
            ls=(0, (2, 2)) if label else (0, (6, 2)),
            alpha=0.7,
            label=f"ICL, target {label}",
        )
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set(ylabel="accuracy", ylim=(-0.02, 1.02), title="evaluators (Fig. 5.1b style)")
    ax = axes[1]
    for name, label, color in LOSSES:
        key = f"{name}/loss"
        if key in c:
            ax.plot(x, c[key], label=label, color=color)
    ax.set(ylabel="loss", title="losses (Fig. 5.9b style)")
    ax = axes[2]
    if "probes/induction_strength" in c:
        ind = c["probes/induction_strength"][:, -1]
        for h in range(ind.shape[1]):
            ax.plot(
                x,
                ind[:, h],
                color="tab:purple",
                alpha=0.6,
                label="last-layer induction strength" if h == 0 else None,
            )
        if "probes/prev_token_attn" in c:
            prev = c["probes/prev_token_attn"][:, 0]
            for h in range(prev.shape[1]):
                ax.plot(
                    x,
                    prev[:, h],
                    color="tab:gray",
                    alpha=0.6,
                    ls="--",
                    label="layer-1 previous-token attn." if h == 0 else None,
                )
        optional = (  # probes of logs written since they were added
            ("probes/induction_strength_flip", -1, "tab:pink", "-.", "last-layer induction strength (Flip)"),
            ("probes/self_attn", 0, "tab:olive", ":", "layer-1 self attn. (labels)"),
        )
        for key, layer, color, ls, label in optional:
            if key in c:
                vals = c[key][:, layer]
                for h in range(vals.shape[1]):
                    ax.plot(x, vals[:, h], color=color, alpha=0.6, ls=ls, label=label if h == 0 else None)
        ax.axhline(0.0, color="grey", lw=0.5, ls=":")
    ax.set(title="attention probes (per head)")
    for k, ax in enumerate(axes):
        sequences_axis(ax, x)
        if not ax.get_legend_handles_labels()[0]:
            continue
        if k < 2:
            ax.legend(fontsize=LEGEND_FONT)
        else:  # the probes fill the panel: legend below it
            ax.legend(fontsize=LEGEND_FONT, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2)
    if title:
        fig.suptitle(title)
    return fig


def plot_log(path: str, out: str | None = None, title: str | None = None) -> str:
    """Write the figure for log ``path`` (default ``<dir>/curves.png``, 1800 × 504 pixels); return its
    path."""
    from toymodels.plotting import save_figure

    out = out or os.path.join(os.path.dirname(os.path.abspath(path)), "curves.png")
    save_figure(log_figure(path, title), out, dpi=DPI)
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m transformer.plot", description=__doc__.split("\n")[0])
    p.add_argument("log", help="path to a run's log.h5")
    p.add_argument("--out", default=None, help="output image (default: curves.png next to the log)")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        from toymodels.plotting import check_figure_path

        require(os.path.isfile(args.log), "log", f"no such file {args.log!r}")
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.log)), "curves.png")
        check_figure_path(out, "out")
        check_log(args.log)
        out = plot_log(args.log, out, args.title)
    except ConfigError as e:
        message = " ".join(e.message.split())  # one line, whatever h5py said
        print(f"error: {'log' if e.param == 'log' else e.flag}: {message}", file=sys.stderr)
        return 2
    except (OSError, KeyError) as e:
        reason = " ".join(str(e).split())
        print(f"error: log: {args.log!r} is not a transformer log ({reason})", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
