"""Fig. 5.6b,c / paper Fig. 3b,c style checkpoint mixing on a run with kept checkpoints.

``python paper_figs/fig5_6bc.py RUN_DIR [--out paper_figs/fig5_6bc_cpu_quick] [--peak-of flip|icl]``:

* (b) every kept checkpoint evaluated with Layer 2 and the unembedding fixed from the end of
  training (``--modules-from RUN@last:blocks.1,unembed``);
* (c) every kept checkpoint evaluated with the embeddings and Layer 1 fixed from one checkpoint
  t (``--modules-from RUN@t:embed_x,embed_label,pos,blocks.0``) for three t: early (the kept
  checkpoint nearest, in log scale, to a quarter of the ICL peak), the ICL peak (of the Flip
  evaluator, or with ``--peak-of icl`` of the ICL evaluator), and the end.

The run's own curves are drawn as light lines. Writes ``OUT.png`` and ``OUT.md`` (the numbers), and
the re-evaluation logs beside them in ``OUT_logs/`` (not meant to be committed).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from transformer.checkpoint import list_checkpoints  # noqa: E402
from transformer.log import evaluator_means  # noqa: E402
from transformer.reevaluate import evaluate_run, parse_source  # noqa: E402

CURVES = (
    ("icl/in_context_acc", "ICL", "tab:blue"),
    ("flip_icl/in_context_acc", "Flip", "tab:green"),
    ("iwl_copy_avail/in_context_acc", "CIWL", "tab:orange"),
)
LAYER1 = "embed_x,embed_label,pos,blocks.0"
LAYER2 = "blocks.1,unembed"


def choose_checkpoints(run: str, peak_of: str = "flip") -> dict[str, int]:
    """Sequences seen of the early, ICL-peak and late checkpoints (see the module docstring); the
    peak is that of the Flip evaluator (``peak_of="flip"``) or of the ICL evaluator (``"icl"``: for
    runs whose Flip accuracy never rises above its initial noise, as the paper-scale run's)."""
    kept = [c.seen for c in list_checkpoints(run) if c.seen > 0]
    curves = evaluator_means(os.path.join(run, "log.h5"))
    seen = curves["eval_iter"]
    accuracy = curves["flip_icl/in_context_acc" if peak_of == "flip" else "icl/in_context_acc"]
    on_kept = [accuracy[np.flatnonzero(seen == s)[0]] for s in kept]
    peak = kept[int(np.argmax(on_kept))]
    early = min(kept, key=lambda s: abs(np.log(s) - np.log(max(peak / 4, 1))))
    return {"early": early, "ICL peak": peak, "late": kept[-1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--out", default="paper_figs/fig5_6bc_cpu_quick")
    p.add_argument("--reuse-logs", action="store_true",
                   help="reuse re-evaluation logs already in OUT_logs/ (redraw and re-tabulate only)")
    p.add_argument("--peak-of", choices=("flip", "icl"), default="flip",
                   help="the evaluator whose peak is the middle checkpoint of panel (c)")
    args = p.parse_args(argv)
    logs = args.out + "_logs"
    os.makedirs(logs, exist_ok=True)
    own = evaluator_means(os.path.join(args.run, "log.h5"))
    def evaluate(path: str, source: str) -> None:
        if not (args.reuse_logs and os.path.exists(path)):
            evaluate_run(args.run, path, modules_from=parse_source(source))

    fixed_l2 = os.path.join(logs, "layer2_from_end.h5")
    evaluate(fixed_l2, f"{args.run}@last:{LAYER2}")
    picks = choose_checkpoints(args.run, args.peak_of)
    fixed_l1 = {}
    for name, seen in picks.items():
        path = os.path.join(logs, f"layer1_from_{seen}.h5")
        evaluate(path, f"{args.run}@{seen}:{LAYER1}")
        fixed_l1[name] = (seen, evaluator_means(path))
    # table rows: the kept checkpoints at the three picks and half way (log) between the peak and the end
    mid = float(np.exp((np.log(picks["ICL peak"]) + np.log(picks["late"])) / 2))
    row_at = sorted({picks["early"], picks["ICL peak"], picks["late"]} | {mid})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), sharey=True, layout="constrained")
    panels = [("(b) Layer 2 + unembedding fixed from the end", evaluator_means(fixed_l2))] + [
        (f"(c) embeddings + Layer 1 fixed from {name}\n({seen:.3g} sequences)", curves)
        for name, (seen, curves) in fixed_l1.items()
    ]
    keep = own["eval_iter"] > 0
    lines = [
        "| panel | checkpoint (sequences) | ICL | Flip | CIWL | the run: ICL | Flip | CIWL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ax, (title, curves) in zip(axes, panels):
        x = curves["eval_iter"]
        k = x > 0
        for key, label, color in CURVES:
            ax.plot(own["eval_iter"][keep], own[key][keep], color=color, alpha=0.25, lw=1)
            ax.plot(x[k], curves[key][k], color=color, marker="o", ms=3, label=label)
        ax.set(xscale="log", xlabel="sequences seen", title=title, ylim=(-0.02, 1.02))
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        for i in sorted({int(np.argmin(np.abs(np.log(x[k]) - np.log(t)))) for t in row_at}):
            i = int(np.flatnonzero(k)[i])
            j = int(np.argmin(np.abs(own["eval_iter"] - x[i])))
            vals = " | ".join(f"{curves[key][i]:.2f}" for key, _, _ in CURVES)
            run_vals = " | ".join(f"{own[key][j]:.2f}" for key, _, _ in CURVES)
            lines.append(f"| {title.splitlines()[0]} | {x[i]:.3g} | {vals} | {run_vals} |")
    axes[0].set_ylabel("in-context accuracy")
    axes[0].legend(fontsize=8, title="light: the run itself", title_fontsize=8)
    fig.savefig(args.out + ".png", dpi=110)
    with open(args.out + ".md", "w") as f:
        f.write(
            f"Checkpoint mixing on `{args.run}` (rows: the kept checkpoints at early, peak, half way "
            "(log) to the end, and the end; "
            f"early/peak/late = {picks}).\n\n" + "\n".join(lines) + "\n"
        )
    print(args.out + ".png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
