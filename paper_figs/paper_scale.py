"""The paper-scale run (``--preset coopetition-paper``): curves, mechanism probes and landmarks.

    python paper_figs/paper_scale.py RUN_DIR [--out paper_figs/paper_scale]

Writes into ``OUT/``:

* ``curves.png`` — evaluator accuracies and losses (``transformer.plot``; Fig. 5.1b / 5.9b style);
* ``mechanism.png`` — per head, over training: Layer-1 previous-token and self attention, and the
  last layer's induction strength on Flip sequences (paper Figs. 3, 5.6a, 5.7 style);
* ``landmarks.md`` — the timeline's landmarks (:func:`landmarks`) beside the study's;
* ``log.h5`` — the run's log; if it is over 20 MB, a copy in the same layout keeping the first
  1000 sequences of each evaluator (:func:`transformer.log.trim_log`). The figures and landmarks
  are computed from the full log.

Landmarks (all from the evaluator means at the logged evaluations, sequences seen):

* ICL peak: maximum in-context accuracy of the ICL evaluator (the study: ≥ 0.85, and then a fall);
* Flip peak and the first evaluation after it with Flip < 0.5 (the study: peak ≈ 3e6, crossing later);
* CIWL ≥ 0.95: first evaluation where the CIWL in-context accuracy reaches 0.95 (the study: by ≈ 2e7);
* pure IWL: its maximum accuracy (the study: 0.08 %, chance 1/12800);
* CIWL-loss divot: the largest rise of the CIWL loss above its running minimum before the Flip
  peak (Fig. 5.9b);
* per head: the peak of the Layer-1 previous-token attention and where it falls below half of its
  peak; the sign of the last layer's Flip induction strength at its extreme.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from transformer.log import evaluator_means, trim_log  # noqa: E402

MAX_LOG_BYTES = 20 * 2**20
KEEP_SEQUENCES = 1000


def _first(seen: np.ndarray, mask: np.ndarray) -> float:
    idx = np.flatnonzero(mask)
    return float(seen[idx[0]]) if idx.size else float("nan")


def landmarks(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """The timeline landmarks of one run's evaluator means (see the module docstring); NaN where a
    landmark never happens."""
    seen = curves["eval_iter"].astype(float)
    icl = curves["icl/in_context_acc"]
    flip = curves["flip_icl/in_context_acc"]
    ciwl = curves["iwl_copy_avail/in_context_acc"]
    iwl = curves["pure_iwl/acc"]
    ciwl_loss = curves["iwl_copy_avail/loss"]
    p = int(np.argmax(flip))
    before = ciwl_loss[: p + 1]
    divot = float(np.max(before - np.minimum.accumulate(before))) if before.size else 0.0
    out = {
        "sequences": float(seen[-1]),
        "icl_peak": float(icl.max()),
        "icl_peak_at": float(seen[int(np.argmax(icl))]),
        "icl_final": float(icl[-1]),
        "flip_peak": float(flip[p]),
        "flip_peak_at": float(seen[p]),
        "flip_below_half_after_peak": _first(seen[p:], flip[p:] < 0.5),
        "flip_final": float(flip[-1]),
        "ciwl_095_at": _first(seen, ciwl >= 0.95),
        "ciwl_final": float(ciwl[-1]),
        "iwl_max": float(iwl.max()),
        "ciwl_loss_divot": divot,
    }
    if "probes/prev_token_attn" in curves:
        prev = curves["probes/prev_token_attn"][:, 0]  # (evals, heads) of Layer 1
        self_attn = curves["probes/self_attn"][:, 0]
        ind = curves["probes/induction_strength_flip"][:, -1]
        out["l1_prev_token_max"] = float(prev.max())
        out["l1_prev_token_final_max_head"] = float(prev[-1].max())
        out["l1_self_attn_final_max_head"] = float(self_attn[-1].max())
        out["l2_flip_induction_max"] = float(ind.max())
        out["l2_flip_induction_min"] = float(ind.min())
        out["l2_flip_induction_final_min_head"] = float(ind[-1].min())
    return out


def plot_mechanism(curves: dict[str, np.ndarray], out: str, title: str) -> None:
    """Per-head probes over training (log x axis; the evaluation at 0 sequences is drawn at the
    left edge of a symlog axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = curves["eval_iter"].astype(float)
    first = seen[seen > 0].min() if (seen > 0).any() else 1.0
    panels = (
        ("probes/prev_token_attn", 0, "Layer 1: previous-token attention"),
        ("probes/self_attn", 0, "Layer 1: self attention"),
        ("probes/induction_strength_flip", -1, "Layer 2: induction strength on Flip sequences"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    for ax, (key, layer, label) in zip(axes, panels):
        v = curves[key][:, layer]
        colors = plt.cm.tab10(np.arange(v.shape[1]) % 10)
        for h in range(v.shape[1]):
            ax.plot(seen, v[:, h], color=colors[h], lw=1.2, label=f"head {h}")
        ax.set_xscale("symlog", linthresh=first)
        ax.set(xlabel="sequences seen (symlog: 0, then log)", title=label)
        ax.set_xlim(left=0)
        if "induction" in key:
            ax.axhline(0, color="grey", lw=0.6, ls=":")
    axes[0].legend(fontsize=8, ncols=2)
    fig.suptitle(title)
    fig.savefig(out, dpi=110)
    plt.close(fig)


STUDY = {
    "icl_peak": "≥ 0.85 (Fig. 5.1b)",
    "flip_peak_at": "≈ 3e6 (Fig. 5.1b)",
    "flip_below_half_after_peak": "later than the peak, before 2e7",
    "ciwl_095_at": "by ≈ 2e7 (CIWL → 1)",
    "iwl_max": "0.0008 (0.08 %)",
    "ciwl_loss_divot": "a small divot while ICL forms (Fig. 5.9b)",
    "l1_prev_token_max": "rises while ICL forms, then falls (Fig. 5.7)",
    "l1_self_attn_final_max_head": "self attention rises as CIWL takes over",
    "l2_flip_induction_max": "positive while ICL dominates (Fig. 5.6a)",
    "l2_flip_induction_final_min_head": "negative at the end (Fig. 5.6a)",
}


def landmark_table(marks: dict[str, float]) -> str:
    rows = ["| landmark | ours | the study |", "|---|---|---|"]
    for k, v in marks.items():
        rows.append(f"| {k} | {v:.4g} | {STUDY.get(k, '')} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="run directory (its log.h5)")
    p.add_argument("--out", default=os.path.join("paper_figs", "paper_scale"))
    p.add_argument("--label", default="coopetition-paper", help="figure title prefix")
    args = p.parse_args(argv)
    from transformer.plot import plot_log

    log = os.path.join(args.run, "log.h5")
    curves = evaluator_means(log)
    marks = landmarks(curves)
    os.makedirs(args.out, exist_ok=True)
    title = (f"{args.label}, {marks['sequences']:.3g} sequences: ICL peak {marks['icl_peak']:.2f}, "
             f"Flip peak {marks['flip_peak']:.2f} -> {marks['flip_final']:.2f}, "
             f"CIWL {marks['ciwl_final']:.2f}")
    plot_log(log, os.path.join(args.out, "curves.png"), title=title)
    plot_mechanism(curves, os.path.join(args.out, "mechanism.png"), title)
    with open(os.path.join(args.out, "landmarks.md"), "w") as f:
        f.write(f"Landmarks of `{args.run}` ({args.label}); definitions: paper_figs/paper_scale.py.\n\n")
        f.write(landmark_table(marks))
    dst = os.path.join(args.out, "log.h5")
    if os.path.getsize(log) > MAX_LOG_BYTES:
        trim_log(log, dst, KEEP_SEQUENCES)
    else:
        import shutil

        shutil.copyfile(log, dst)
    print(landmark_table(marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
