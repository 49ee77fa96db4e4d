"""Figures 4.3a, 4.5a and 4.6b/C.5 of the thesis (the induction-head study, ch. 4) from our runs.

    python -m transformer.sweep paper_figs/induction_heads/fig4_3a.toml --out RUNS/fig4_3a
    python -m transformer.sweep paper_figs/induction_heads/fig4_6b.toml --out RUNS/fig4_6b
    python -m transformer.sweep paper_figs/induction_heads/fig4_6b_lr1e-5.toml --out RUNS/fig4_6b_lr1e-5
    python paper_figs/induction_heads/figures.py RUNS [--out paper_figs/induction_heads]

Writes ``fig4_3a.png`` (loss plateau at log 2, then the phase change), ``fig4_5a.png`` (the trained
model's loss with one head ablated, and with all heads of a layer but one ablated), ``fig4_6b.png``
(clamping sub-circuits during training) and ``numbers.md`` (every number quoted in
``claims.md``: learning times, plateaus, the ablation table).

Learning time (science notes §5): the sequences seen (and iterations = sequences / batch) at the
first evaluation whose mean loss on the training-distribution evaluator (``train_eval``: 1000
sequences of the 78 400) is below 0.4·log 2. The plateau: the evaluations whose loss is within
10 % of log 2.
"""

from __future__ import annotations

import argparse
import math
import os

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from transformer import load_checkpoint  # noqa: E402
from transformer.build import load_data  # noqa: E402
from transformer.evaluators import evaluator_sets  # noqa: E402
from transformer.log import evaluator_means, open_log  # noqa: E402
from transformer.model import forward_with_activations, query_loss  # noqa: E402

LOG2 = math.log(2)
THRESHOLD = 0.4 * LOG2
PUBLISHED = {  # iterations at lr 1e-5 (science notes §5)
    "baseline": 2e5,
    "prev-token clamp (Layer 1)": 7.5e4,
    "copy clamp": 0.5e5,
}
CLAMP_RUNS = {  # run of fig4_6b.toml -> (label, colour)
    "noclamp": ("no clamp (one Layer-2 head)", "k"),
    "prev_token_head": ("Layer-1 head 2 clamped to previous token", "tab:orange"),
    "prev_token_layer": ("all Layer-1 heads clamped to previous token", "tab:brown"),
    "layer1": ("Layer 1 clamped (the study's perfect_prev_token_input)", "tab:red"),
    "match": ("match clamped (Layer-2 head 3 attends to the right label)", "tab:green"),
    "copy": ("copy clamped (logits = head 3's label scores)", "tab:blue"),
    "layer1_copy": ("Layer 1 and copy clamped", "tab:purple"),
}


def curves(run: str) -> dict[str, np.ndarray]:
    """Evaluator means, the per-step training loss and the run's config."""
    log = os.path.join(run, "log.h5")
    out = evaluator_means(log)
    with open_log(log) as f:
        out["train_loss"] = f["train_loss"][:]
        out["train_iter"] = f["train_iter"][:]
    return out


def config_of(run: str):
    return load_checkpoint(run, "run")[0]


def learning_time(seen: np.ndarray, loss: np.ndarray) -> float | None:
    """Sequences seen at the first evaluation with loss < 0.4 log 2 (None: never)."""
    below = np.flatnonzero(loss < THRESHOLD)
    return float(seen[below[0]]) if below.size else None


def plateau(seen: np.ndarray, loss: np.ndarray) -> tuple[float, float, int] | None:
    """(first, last sequences seen, count) of the evaluations with |loss − log 2| < 0.1 log 2."""
    on = np.flatnonzero(np.abs(loss - LOG2) < 0.1 * LOG2)
    return (float(seen[on[0]]), float(seen[on[-1]]), int(on.size)) if on.size else None


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, x.size))
    return np.convolve(x, np.ones(window) / window, mode="valid")


def fmt(x: float | None, missing: str = "never") -> str:
    return missing if x is None else f"{x:.3g}"


# ----------------------------------------------------------------------------------------------


def fig4_3a(runs: str, out: str, lines: list[str]) -> None:
    names = sorted(d for d in os.listdir(runs) if os.path.isfile(os.path.join(runs, d, "log.h5")))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    lines += ["## Fig. 4.3a: plateau at log 2, then the phase change", "",
              "| run | lr | learning time (sequences) | (iterations) | plateau (iterations, loss within "
              "10 % of log 2) | final loss: train / held-out pairs / exemplars / classes | "
              "final accuracy (same) |",
              "|---|---|---|---|---|---|---|"]
    for name in names:
        run = os.path.join(runs, name)
        c, cfg = curves(run), config_of(run)
        b = cfg.batch_size
        seen, loss = c["eval_iter"], c["train_eval/loss"]
        t = learning_time(seen, loss)
        p = plateau(seen, loss)
        finals = " / ".join(f"{c[f'{e}/loss'][-1]:.2g}" for e in cfg.evaluators)
        accs = " / ".join(f"{c[f'{e}/acc'][-1]:.3f}" for e in cfg.evaluators)
        plat = "none" if p is None else f"{p[0] / b:.3g}–{p[1] / b:.3g} ({p[2]} evaluations)"
        lines.append(f"| {name} | {cfg.lr:g} | {fmt(t)} | {fmt(None if t is None else t / b)} | {plat} | "
                     f"{finals} | {accs} |")
        ax = axes[0] if cfg.lr == 1e-5 else axes[1]
        step = c["train_iter"] / b
        window = 200
        ax.plot(step[window - 1:], smooth(c["train_loss"], window), lw=0.8, alpha=0.5,
                label=f"{name}: training loss ({window}-step mean)")
        for e, style in zip(cfg.evaluators, ("-", "--", ":", "-.")):
            if name.endswith(("seed=1", "seed=2")) and e != "train_eval":
                continue
            ax.plot(seen / b, c[f"{e}/loss"], style, lw=1.4, label=f"{name}: {e}")
        if t is not None:
            ax.axvline(t / b, color="grey", lw=0.6, ls=":")
    for ax, title in zip(axes, ("lr 1e-5 (the thesis')", "lr 1e-4 (three seeds)")):
        ax.axhline(LOG2, color="k", lw=0.8, ls="--")
        ax.axhline(THRESHOLD, color="k", lw=0.6, ls=":")
        ax.text(ax.get_xlim()[1], LOG2, " log 2", va="center", fontsize=8)
        ax.text(ax.get_xlim()[1], THRESHOLD, " 0.4 log 2", va="center", fontsize=8)
        ax.set(xlabel="iterations (batch 32)", ylabel="loss", title=title, ylim=(0, 2.0))
        ax.legend(fontsize=6, loc="upper right")
    fig.suptitle("Fig. 4.3a: induction-heads preset (50 classes x 1 exemplar, "
                 "5 labels re-assigned per sequence)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig4_3a.png"), dpi=130)
    plt.close(fig)
    lines.append("")


# ----------------------------------------------------------------------------------------------


@jax.jit
def _masked_metrics(model, feats, labels, target, mask):
    """Mean loss and accuracy with each head's write scaled by ``mask`` (depth, heads): 0 = ablated
    (the head writes nothing: what ``ablate_heads``, v ← 0, does)."""
    def one(f, lab):
        return forward_with_activations(model, f, lab, head_mask=mask)[0]

    logits = jax.vmap(one)(feats, labels)
    return query_loss(logits, target).mean(), (jnp.argmax(logits, -1) == target).mean()


def ablations(run: str) -> dict[str, np.ndarray]:
    """Loss and accuracy of the run's last checkpoint on the held-out-class and training sets with
    (a) nothing, (b) each head, (c) all heads of its layer but that one, (d) a whole layer ablated."""
    cfg, model = load_checkpoint(run, "run")
    x = jnp.asarray(load_data(cfg))
    sets = evaluator_sets(cfg)
    depth, heads = cfg.depth, cfg.n_heads
    out = {}
    for name in ("train_eval", "heldout_classes"):
        s = sets[name]
        feats = x[s.classes, s.exemplars]

        def run_mask(mask, s=s, feats=feats):
            loss, acc = _masked_metrics(model, feats, s.labels, s.target, jnp.asarray(mask, jnp.float32))
            return float(loss), float(acc)

        ones = np.ones((depth, heads))
        out[f"{name}/none"] = np.array(run_mask(ones))
        one, but_one = np.zeros((depth, heads, 2)), np.zeros((depth, heads, 2))
        for layer in range(depth):
            for h in range(heads):
                m = ones.copy()
                m[layer, h] = 0
                one[layer, h] = run_mask(m)
                m = ones.copy()
                m[layer] = 0
                m[layer, h] = 1
                but_one[layer, h] = run_mask(m)
        out[f"{name}/one"], out[f"{name}/but_one"] = one, but_one
        out[f"{name}/layer"] = np.array([run_mask(np.where(np.arange(depth)[:, None] == L, 0.0, ones))
                                         for L in range(depth)])
    return out


def fig4_5a(runs: str, out: str, lines: list[str]) -> None:
    names = sorted(d for d in os.listdir(runs) if os.path.isfile(os.path.join(runs, d, "log.h5")))
    results = {name: ablations(os.path.join(runs, name)) for name in names}
    main = "lr1e-5" if "lr1e-5" in results else names[0]
    # as the study's Fig. 4a: each Layer-2 head's accuracy alone / without it against its final
    # induction strength (probe on training sequences), on the training distribution
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.cm.Dark2(np.arange(8))
    for ax, metric, col in zip(axes, ("accuracy", "loss"), (1, 0)):
        for name in names:
            r = results[name]
            strength = curves(os.path.join(runs, name))["probes/induction_strength"][-1, -1]
            marker_size = 90 if name == main else 30
            ax.scatter(strength, r["train_eval/but_one"][-1, :, col], c=colours[: strength.size], marker="o",
                       s=marker_size, edgecolors="k", alpha=1.0 if name == main else 0.6)
            ax.scatter(strength, r["train_eval/one"][-1, :, col], c=colours[: strength.size], marker="^",
                       s=marker_size, edgecolors="k", alpha=1.0 if name == main else 0.6)
            if name == main:
                ax.axhline(r["train_eval/none"][col], color="k", ls="--", lw=0.8, label="no ablation")
        ax.scatter([], [], marker="o", c="w", edgecolors="k", label="only this Layer-2 head kept")
        ax.scatter([], [], marker="^", c="w", edgecolors="k", label="this Layer-2 head ablated")
        ax.set(xlabel="induction strength of the head (end of training)", ylabel=f"{metric} (training set)")
        ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 4.5a: ablating Layer-2 heads at the end of training (large: {main}; small: "
                 "the lr-1e-4 seeds; colour = head)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig4_5a.png"), dpi=130)
    plt.close(fig)
    depth, heads = results[main]["train_eval/one"].shape[:2]

    lines += ["## Fig. 4.5a: head ablations at the end of training", "",
              "Loss (accuracy) of the last checkpoint; Layer 1/2 = the thesis' numbering "
              "(0-based layers 0/1).", ""]
    for name, r in results.items():
        lines += [f"### {name}", "",
                  "| set | nothing ablated | Layer 1 ablated | Layer 2 ablated |", "|---|---|---|---|"]
        for s in ("train_eval", "heldout_classes"):
            cells = [f"{r[f'{s}/none'][0]:.3f} ({r[f'{s}/none'][1]:.3f})"] + [
                f"{r[f'{s}/layer'][L, 0]:.3f} ({r[f'{s}/layer'][L, 1]:.3f})" for L in range(depth)]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        strength = curves(os.path.join(runs, name))["probes/induction_strength"][-1]
        for s in ("train_eval", "heldout_classes"):
            lines += ["", f"| {s} | " + " | ".join(f"head {h}" for h in range(heads)) + " |",
                      "|---|" + "---|" * heads]
            for layer in range(depth):
                lines.append(f"| Layer {layer + 1} induction strength | "
                             + " | ".join(f"{strength[layer, h]:+.2f}" for h in range(heads)) + " |")
                for kind, what in (("one", "this head ablated"), ("but_one", "only this head kept")):
                    v = r[f"{s}/{kind}"][layer]
                    lines.append(f"| Layer {layer + 1}, {what} | "
                                 + " | ".join(f"{v[h, 0]:.3f} ({v[h, 1]:.2f})" for h in range(heads)) + " |")
        lines.append("")


# ----------------------------------------------------------------------------------------------


def fig4_6b(sweeps: list[str], out: str, lines: list[str], baseline: dict[str, float]) -> None:
    """One panel per sweep (fig4_6b at lr 1e-4, fig4_6b_lr1e-5 at the thesis' lr when present)."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(8.5 * len(sweeps), 4.5), squeeze=False)
    rows = []
    for ax, runs in zip(axes[0], sweeps):
        times, lr = {}, None
        for name, (label, colour) in CLAMP_RUNS.items():
            run = os.path.join(runs, name)
            if not os.path.isfile(os.path.join(run, "log.h5")):
                continue
            c, cfg = curves(run), config_of(run)
            lr, b = cfg.lr, cfg.batch_size
            seen, loss = c["eval_iter"], c["train_eval/loss"]
            t = learning_time(seen, loss)
            times[name] = (None if t is None else t / b, plateau(seen, loss), float(loss[-1]))
            ax.plot(seen / b, loss, color=colour, lw=1.4, label=f"{label}: {fmt(times[name][0])} it.")
            if t is not None:
                ax.axvline(t / b, color=colour, lw=0.6, ls=":")
        ax.axhline(LOG2, color="k", lw=0.8, ls="--")
        ax.axhline(THRESHOLD, color="k", lw=0.6, ls=":")
        ax.set(xlabel="iterations (batch 32)", ylabel="loss (training distribution)", ylim=(0, 1.6),
               title=f"lr {lr:g}")
        ax.legend(fontsize=7)
        base = times.get("noclamp", (None,))[0]
        for name, (it, p, final) in times.items():
            rows.append((name, lr, it, None if (it is None or not base) else it / base, p, final))
    fig.suptitle("Fig. 4.6b/C.5: clamping sub-circuits during training (one Layer-2 head active)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig4_6b.png"), dpi=130)
    plt.close(fig)

    published = {"noclamp": PUBLISHED["baseline"], "prev_token_head": PUBLISHED["prev-token clamp (Layer 1)"],
                 "prev_token_layer": PUBLISHED["prev-token clamp (Layer 1)"],
                 "layer1": PUBLISHED["prev-token clamp (Layer 1)"], "copy": PUBLISHED["copy clamp"]}
    lines += ["## Fig. 4.6b/C.5: clamping during training", "",
              "Iterations until the training-set loss < 0.4 log 2; 'at 1e-5' multiplies lr-1e-4 times by 10 "
              "(learning time ∝ 1/lr: the full model's ratio from lr 1e-4 to 1e-5 is "
              f"{baseline.get('ratio', float('nan')):.2f}, Fig. 4.3a). Published: thesis at lr 1e-5.", "",
              "| run | lr | iterations | at 1e-5 | relative to no clamp | published (lr 1e-5) | "
              "published relative | plateau (iterations within 10 % of log 2) | final loss |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, lr, it, rel, p, final in rows:
        pub = published.get(name)
        pub_rel = None if pub is None else pub / PUBLISHED["baseline"]
        plat = "none" if p is None else f"{p[0] / 32:.3g}–{p[1] / 32:.3g}"
        at = None if it is None else it * lr / 1e-5
        lines.append(f"| {name} | {lr:g} | {fmt(it)} | {fmt(at)} | {fmt(rel)} | {fmt(pub, '—')} | "
                     f"{fmt(pub_rel, '—')} | {plat} | {final:.2g} |")
    lines.append("")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", help="folder holding the sweeps fig4_3a/ and fig4_6b/")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = p.parse_args()
    lines = ["# Induction-head study: the numbers of our runs", "",
             f"Written by `paper_figs/induction_heads/figures.py` from `{args.runs}`.", ""]
    base = {}
    sweep = os.path.join(args.runs, "fig4_3a")
    if os.path.isdir(sweep):
        fig4_3a(sweep, args.out, lines)
        slow = os.path.join(sweep, "lr1e-5")
        fast = os.path.join(sweep, "lr1e-4-seed=0")
        if os.path.isdir(slow) and os.path.isdir(fast):
            ts = [learning_time(c["eval_iter"], c["train_eval/loss"]) for c in (curves(slow), curves(fast))]
            if None not in ts:
                base["ratio"] = ts[0] / ts[1]
        fig4_5a(sweep, args.out, lines)
    sweeps = [os.path.join(args.runs, d) for d in ("fig4_6b", "fig4_6b_lr1e-5")]
    sweeps = [d for d in sweeps if os.path.isdir(d)]
    if sweeps:
        fig4_6b(sweeps, args.out, lines, base)
    with open(os.path.join(args.out, "numbers.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
