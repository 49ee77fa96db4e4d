"""Plots of a run's log: ``python -m transformer.plot DIR/log.h5 [--out FILE.png]``.

Left: in-context accuracy of the ICL, CIWL and Flip evaluators and accuracy of the IWL evaluator
against sequences seen (Fig. 5.1b style). Middle: losses of the train, ICL and CIWL evaluators
(Fig. 5.9b style, where the CIWL loss shows a divot while ICL forms). Right: induction strength of
the last layer's heads and previous-token attention of the first layer's heads.
"""

from __future__ import annotations

import argparse
import os
import sys

from toymodels.errors import ConfigError

from .log import evaluator_means, split_by_target

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


def plot_log(path: str, out: str | None = None, title: str | None = None) -> str:
    """Write the figure for log ``path`` (default ``<dir>/curves.png``); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = evaluator_means(path)
    keep = c["eval_iter"] > 0  # log-x axis: the evaluation at 0 sequences is not drawn
    c = {k: v[keep] for k, v in c.items()}
    x = c["eval_iter"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
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
        ax.plot(x, acc[keep], color="tab:blue", lw=0.8, ls=(0, (2, 2)) if label else (0, (6, 2)),
                alpha=0.7, label=f"ICL, target {label}")
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set(xscale="log", xlabel="sequences seen", ylabel="accuracy", ylim=(-0.02, 1.02),
           title="evaluators (Fig. 5.1b style)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for name, label, color in LOSSES:
        key = f"{name}/loss"
        if key in c:
            ax.plot(x, c[key], label=label, color=color)
    ax.set(xscale="log", xlabel="sequences seen", ylabel="loss", title="losses (Fig. 5.9b style)")
    ax.legend(fontsize=8)
    ax = axes[2]
    if "probes/induction_strength" in c:
        ind = c["probes/induction_strength"][:, -1]
        for h in range(ind.shape[1]):
            ax.plot(x, ind[:, h], color="tab:purple", alpha=0.6,
                    label="last-layer induction strength" if h == 0 else None)
        prev = c["probes/prev_token_attn"][:, 0]
        for h in range(prev.shape[1]):
            ax.plot(x, prev[:, h], color="tab:gray", alpha=0.6, ls="--",
                    label="layer-1 previous-token attn." if h == 0 else None)
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
        ax.legend(fontsize=7)
    ax.set(xscale="log", xlabel="sequences seen", title="attention probes (per head)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = out or os.path.join(os.path.dirname(os.path.abspath(path)), "curves.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m transformer.plot", description=__doc__.split("\n")[0])
    p.add_argument("log", help="path to a run's log.h5")
    p.add_argument("--out", default=None, help="output image (default: curves.png next to the log)")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    if not os.path.isfile(args.log):
        print(f"error: log: no such file {args.log!r}", file=sys.stderr)
        return 2
    try:
        out = plot_log(args.log, args.out, args.title)
    except (OSError, KeyError) as e:
        print(f"error: log: {args.log!r} is not a transformer log ({e})", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
