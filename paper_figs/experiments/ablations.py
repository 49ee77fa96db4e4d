"""End-of-training interventions on the bursty run: §5.4's ablations and Fig. 5.3c / paper Fig. 2b.

Evaluated on the last checkpoint of ``RUNS/bursty`` with the CIWL evaluator's sequences (in-context
accuracy: argmax over the two labels in context), as the original study's plotting notebook does:

* all heads ablated (values of every head ← 0);
* the embedding → unembedding path removed: Layer-1 heads ablated, exemplar and label embeddings ← 0,
  every layer's patterns and values kept at their unablated values (so what the heads write is
  unchanged and only the direct path is gone);
* composition — Layer-1 heads ablated and all but one input (queries, keys or values) of every layer
  kept at their unablated values: which input of Layer 2 needs Layer 1;
* Fig. 5.3c — one Layer-2 head alone (the other heads ablated, embeddings ← 0, patterns and values
  kept) with its query row clamped to attention (1 + δ)/2 on the label token carrying the target label
  and (1 − δ)/2 on the other (δ = attention delta, −1 … 1), per head.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from transformer.build import load_data
from transformer.checkpoint import load_checkpoint
from transformer.evaluators import evaluator_sets, sequence_metrics
from transformer.opto import Edit, expand_all, parse_opto

PUBLISHED = {
    "unablated": 0.9874,
    "all heads ablated": 0.6246,
    "embedding → unembedding path removed": 0.9672,
    "Layer 1 ablated, all but queries kept": 0.954,
    "Layer 1 ablated, all but keys kept": 0.575,
    "Layer 1 ablated, all but values kept": 0.593,
}
DELTAS = np.linspace(-1.0, 1.0, 11)


def _heads(n: int, skip: int | None = None) -> str:
    return "|".join(str(h) for h in range(n) if h != skip)


def _edits(texts: list[str], depth: int, n_heads: int) -> tuple[Edit, ...]:
    return expand_all([parse_opto(t) for t in texts], depth, n_heads)


def _acc(model, exemplars, seqs, edits) -> float:
    return float(jnp.mean(sequence_metrics(model, exemplars, seqs, edits)["in_context_acc"]))


def ablations(runs: str, out: str) -> None:
    """The figure script's entry: the interventions on ``RUNS/bursty``."""
    from figures import Missing

    run = os.path.join(runs, "bursty")
    if not os.path.isdir(run):
        raise Missing("bursty: no run")
    ablations_of(run, out)


def ablations_of(run: str, out: str, name: str = "ablations", deltas: np.ndarray = DELTAS) -> None:
    """Evaluate the interventions on the last checkpoint of ``run``; write ``OUT/NAME.md`` and
    ``OUT/NAME_fig5_3c.png`` (``fig5_3c.png`` for the default name)."""
    from figures import write_md  # the figure script's helpers (same directory)

    cfg, model = load_checkpoint(run, "run")
    depth, n_heads = cfg.depth, cfg.n_heads
    exemplars = jnp.asarray(load_data(cfg))
    ciwl = evaluator_sets(cfg)["iwl_copy_avail"]
    all_heads = _heads(n_heads)
    l1 = f"ablate_heads:layer=0,heads={all_heads}"
    cases = {
        "unablated": [],
        "all heads ablated": [f"ablate_heads:layer={d},heads={all_heads}" for d in range(depth)],
        "embedding → unembedding path removed": [
            l1,
            "ablate_embedding",
            "preserve_patterns",
            "preserve_values",
        ],
        "Layer 1 ablated, all but queries kept": [l1, "preserve_keys", "preserve_values"],
        "Layer 1 ablated, all but keys kept": [l1, "preserve_queries", "preserve_values"],
        "Layer 1 ablated, all but values kept": [l1, "preserve_queries", "preserve_keys"],
    }
    results = {name: _acc(model, exemplars, ciwl, _edits(t, depth, n_heads)) for name, t in cases.items()}

    # Fig. 5.3c: one Layer-2 head, its attention delta clamped. The sequences are split by the slot
    # of the label token that carries the target, so each group's clamp is one fixed pattern.
    k = ciwl.labels.shape[-1]
    n_tokens = 2 * k + 1
    slot = np.asarray(jnp.argmax(ciwl.labels == ciwl.target[:, None], axis=-1))
    groups = {i: jax.tree_util.tree_map(lambda a, i=i: a[slot == i], ciwl) for i in range(k)}
    last = depth - 1
    curves = np.zeros((n_heads, deltas.size))
    for h in range(n_heads):
        base = _edits(
            [
                f"ablate_heads:layer={last},heads={_heads(n_heads, h)}",
                l1,
                "ablate_embedding",
                "preserve_patterns",
                "preserve_values",
            ],
            depth,
            n_heads,
        )
        for j, delta in enumerate(deltas):
            correct = 0.0
            for i, seqs in groups.items():
                row = np.zeros(n_tokens)
                row[1::2] = (1.0 - delta) / 2.0 / max(k - 1, 1)
                row[2 * i + 1] = (1.0 + delta) / 2.0
                pattern = np.zeros((n_tokens, n_tokens))
                pattern[-1] = row
                clamp = Edit(
                    "attn.pattern",
                    "set",
                    (last,),
                    (h,),
                    queries="query",
                    array=tuple(map(tuple, pattern.tolist())),
                )
                correct += _acc(model, exemplars, seqs, base + (clamp,)) * seqs.target.shape[0]
            curves[h, j] = correct / ciwl.target.shape[0]

    fig, ax = plt.subplots(figsize=(5.2, 4.2), layout="constrained")
    cmap = plt.get_cmap("Dark2")
    for h in range(n_heads):
        ax.plot(deltas, curves[h], marker=".", color=cmap(h % 8), label=f"head {h}")
    ax.axhline(0.5, color="k", ls="--", lw=0.7)
    ax.axvline(0.0, color="k", ls="--", lw=0.7)
    ax.set_xlabel("attention delta, correct − incorrect label")
    ax.set_ylabel("single-head CIWL in-context accuracy")
    ax.set_title("Fig. 5.3c: one Layer-2 head, attention clamped", fontsize=10)
    ax.legend(fontsize=7, ncol=2, title="Layer-2 head", title_fontsize=8)
    figure = "fig5_3c.png" if name == "ablations" else f"{name}_fig5_3c.png"
    fig.savefig(os.path.join(out, figure), dpi=120)
    plt.close(fig)

    slope = curves[:, -1] - curves[:, 0]
    best = int(np.argmax(slope))
    rows = [(f"{name}: {PUBLISHED[name]:.1%}", f"{results[name]:.1%}") for name in cases]
    rows.append(
        (
            "Fig. 5.3c / P2b: a single Layer-2 head copies the label it attends to — CIWL accuracy runs "
            "from ≈ 0 at δ = −1 through 0.5 at δ = 0 to ≈ 1 at δ = +1",
            f"head {best}: {curves[best, 0]:.2f} at δ = −1, {curves[best, deltas.size // 2]:.2f} at δ = 0, "
            f"{curves[best, -1]:.2f} at δ = +1; range (δ = +1 minus δ = −1) per head: "
            + ", ".join(f"{h}: {s:+.2f}" for h, s in enumerate(slope)),
        )
    )
    write_md(
        out,
        name,
        "§5.4 end-of-training ablations and Fig. 5.3c (CIWL sequences, in-context accuracy)",
        f"Last checkpoint of `{os.path.basename(os.path.normpath(run))}` ({cfg.n_sequences:.2g} sequences); "
        "the CIWL evaluator's "
        f"{ciwl.target.shape[0]} sequences. The study's numbers are from its 2e7-sequence run.",
        rows,
    )


def main(argv=None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(description="The end-of-training interventions on any run's last checkpoint.")
    p.add_argument("run")
    p.add_argument("--out", required=True, help="directory for NAME.md and NAME_fig5_3c.png")
    p.add_argument("--name", default="ablations")
    p.add_argument("--deltas", type=int, default=DELTAS.size, help="number of attention deltas in [-1, 1]")
    args = p.parse_args(argv)
    if args.deltas < 2:
        print("error: --deltas: must be >= 2", file=sys.stderr)
        return 2
    ablations_of(args.run, args.out, args.name, np.linspace(-1.0, 1.0, args.deltas))
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    raise SystemExit(main())
