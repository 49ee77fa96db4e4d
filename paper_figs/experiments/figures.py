"""Figures and claim tables of the coopetition experiments (``coopetition.toml``), from the runs.

``python paper_figs/experiments/figures.py RUNS [--out paper_figs/experiments] [--only fig5_8a,...]``

``RUNS`` is the sweep's output directory (``python -m transformer.sweep
paper_figs/experiments/coopetition.toml --out RUNS``). For each experiment it writes ``OUT/NAME.png``
and ``OUT/NAME.md``: the published claim beside the numbers our runs give (what they show in words is
in docs/experiments.md). A figure whose runs are missing or unfinished is skipped with a note; the
end-of-training interventions (§5.4, Fig. 5.3c) are evaluated here on the bursty run's last checkpoint
(:mod:`ablations`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

from transformer.checkpoint import read_meta  # noqa: E402
from transformer.config import TrainConfig  # noqa: E402
from transformer.log import evaluator_means, open_log, read_config  # noqa: E402

LOG2 = math.log(2.0)
ICL, FLIP, CIWL, IWL = (
    "icl/in_context_acc",
    "flip_icl/in_context_acc",
    "iwl_copy_avail/in_context_acc",
    "pure_iwl/acc",
)
COLOURS = {ICL: "tab:blue", FLIP: "tab:green", CIWL: "tab:orange", IWL: "tab:red"}
SHORT = {ICL: "ICL", FLIP: "Flip", CIWL: "CIWL", IWL: "IWL"}


class Missing(Exception):
    """A run the figure needs is absent or unfinished."""


def run_config(runs: str, name: str) -> TrainConfig:
    with open_log(os.path.join(runs, name, "log.h5")) as f:
        return TrainConfig.from_dict(read_config(f))


def curves(runs: str, name: str) -> dict[str, np.ndarray]:
    log = os.path.join(runs, name, "log.h5")
    if not os.path.exists(log):
        raise Missing(f"{name}: no log")
    out = evaluator_means(log)
    cfg = run_config(runs, name)
    if out["eval_iter"].size == 0 or out["eval_iter"][-1] < cfg.n_sequences:
        raise Missing(
            f"{name}: unfinished ({int(out['eval_iter'][-1]) if out['eval_iter'].size else 0} "
            f"of {cfg.n_sequences} sequences)"
        )
    return out


def first_crossing(x: np.ndarray, y: np.ndarray, level: float, below: bool = False) -> float:
    """First ``x`` where ``y`` reaches ``level`` (from above when ``below``); ``nan`` if never."""
    hit = np.flatnonzero(y <= level if below else y >= level)
    return float(x[hit[0]]) if hit.size else float("nan")


def fmt(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v:.2g}"


def setup_axes(n: int, width: float = 4.2, height: float = 3.2):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), layout="constrained", squeeze=False)
    return fig, axes[0]


def acc_axis(ax, title: str) -> None:
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlim(left=0)
    ax.set_xlabel("sequences seen")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def loss_axis(ax, title: str, xlabel: str = "sequences seen") -> None:
    """ICL-evaluator loss panel: the log 2 plateau dotted, sequences on a symlog axis."""
    ax.axhline(LOG2, color="k", ls=":", lw=0.8, label="log 2")
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ICL evaluator loss")
    ax.set_title(title, fontsize=10)


def learning_time(c: dict[str, np.ndarray]) -> float:
    """Sequences until the ICL evaluator's loss falls below 0.4·log 2 (``nan`` if never)."""
    return first_crossing(c["eval_iter"], c["icl/loss"], 0.4 * LOG2, below=True)


def write_md(
    out: str, name: str, title: str, header: str, rows: list[tuple[str, str]], notes: str = ""
) -> None:
    lines = [
        f"# {title}",
        "",
        header,
        "",
        "| claim in the paper | what our runs show (numbers) |",
        "|---|---|",
    ]
    lines += [f"| {a} | {b} |" for a, b in rows]
    if notes:
        lines += ["", notes]
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------
# Fig. 5.6a: Layer-2 induction strength on Flip sequences per head
# ----------------------------------------------------------------------------------------------


def fig5_6a(runs: str, out: str) -> None:
    c = curves(runs, "bursty")
    seen, ind = c["eval_iter"], c["probes/induction_strength_flip"][:, -1, :]  # (evals, heads)
    fig, (ax, bx) = setup_axes(2)
    for h in range(ind.shape[1]):
        ax.plot(seen, ind[:, h], label=f"head {h}", lw=1.3)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlim(left=0)
    ax.set_xlabel("sequences seen")
    ax.set_ylabel("Flip induction strength (Layer 2)")
    ax.set_title("Layer-2 heads on Flip sequences", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    for key in (ICL, FLIP, CIWL):
        bx.plot(seen, c[key], color=COLOURS[key], label=SHORT[key])
    acc_axis(bx, "the run (in-context accuracy)")
    bx.legend(fontsize=8)
    fig.savefig(os.path.join(out, "fig5_6a.png"), dpi=120)
    plt.close(fig)
    best = int(np.argmax(ind.max(0)))
    peak_i = int(np.argmax(ind[:, best]))
    flip_peak = int(np.argmax(c[FLIP]))
    write_md(
        out,
        "fig5_6a",
        "Fig. 5.6a / P3a: Layer-2 induction strength on Flip sequences",
        "Run `bursty` (cpu-quick, seed 0). Induction strength = attention from the query to the label "
        "token whose exemplar has the query's class minus attention to the other label (on Flip "
        "sequences: positive = the head copies the in-context label).",
        [
            (
                "Layer-2 induction heads form early; on Flip sequences their induction strength rises "
                "while ICL forms, then turns negative as CIWL takes over",
                f"strongest head {best}: peak {ind[peak_i, best]:+.2f} at {seen[peak_i]:.2g} sequences "
                f"(Flip peak {c[FLIP][flip_peak]:.2f} at {seen[flip_peak]:.2g}), end {ind[-1, best]:+.2f}; "
                f"most negative head at the end: {int(np.argmin(ind[-1]))} ({ind[-1].min():+.2f})",
            )
        ],
    )


# ----------------------------------------------------------------------------------------------
# Fig. 5.8a: ICL-only training from scratch vs grafted
# ----------------------------------------------------------------------------------------------


def fig5_8a(runs: str, out: str) -> None:
    scratch, grafted = curves(runs, "icl_only_scratch"), curves(runs, "icl_only_grafted")
    fig, (ax, bx) = setup_axes(2)
    stats = {}
    for name, c, colour in (
        ("from scratch", scratch, "tab:gray"),
        ("Layer 2 + unembedding grafted", grafted, "tab:purple"),
    ):
        ax.plot(c["eval_iter"], c["icl/loss"], color=colour, label=name)
        bx.plot(c["eval_iter"], c[ICL], color=colour, label=name)
        stats[name] = (
            learning_time(c),
            float(c["icl/loss"][-1]),
            float(c[ICL][-1]),
        )
    loss_axis(ax, "ICL-only training")
    ax.legend(fontsize=8)
    acc_axis(bx, "ICL in-context accuracy")
    fig.savefig(os.path.join(out, "fig5_8a.png"), dpi=120)
    plt.close(fig)
    s, g = stats["from scratch"], stats["Layer 2 + unembedding grafted"]
    write_md(
        out,
        "fig5_8a",
        "Fig. 5.8a / P4a: ICL-only training, from scratch vs grafted",
        "Runs `icl_only_scratch` and `icl_only_grafted` (ICL-only data: labels re-assigned per sequence; "
        "the grafted run starts with Layer 2 + unembedding of `bursty`'s last checkpoint). Learning time = "
        "sequences until the ICL loss falls below 0.4·log 2.",
        [
            (
                "from scratch, ICL-only training sits on a plateau at loss log 2",
                f"from scratch: ICL loss {scratch['icl/loss'][0]:.3f} → {s[1]:.3f} at "
                f"{scratch['eval_iter'][-1]:.2g} sequences, learning time {fmt(s[0])}, "
                f"ICL accuracy {s[2]:.2f}",
            ),
            (
                "with Layer 2 + unembedding grafted from the end of a bursty run, ICL is learned fast",
                f"grafted: learning time {fmt(g[0])}, final ICL loss {g[1]:.3f}, ICL accuracy {g[2]:.2f}",
            ),
        ],
    )


# ----------------------------------------------------------------------------------------------
# Fig. 5.8b,c: the CIWL-only run, ICL-only training grafted from its checkpoints, bursty continued
# ----------------------------------------------------------------------------------------------


def _source_seen(runs: str, name: str, key: str) -> int:
    """Sequences seen of the CIWL-only checkpoint that ``name`` was grafted/initialised from."""
    path = getattr(run_config(runs, name), key)
    return int(read_meta(os.path.dirname(path) if path.endswith(".eqx") else path)["seen"])


def _family(runs: str, prefix: str, key: str) -> list[tuple[int, str, dict[str, np.ndarray]]]:
    """The finished runs named ``prefix*`` as (sequences of the CIWL-only checkpoint they started
    from via ``key``, name, curves), in the order of those checkpoints."""
    members = []
    for name in sorted(os.listdir(runs)):
        if name.startswith(prefix) and os.path.isdir(os.path.join(runs, name)):
            try:
                members.append((_source_seen(runs, name, key), name, curves(runs, name)))
            except Missing:
                continue
    if not members:
        raise Missing(f"{prefix}*: none finished")
    return sorted(members, key=lambda m: m[0])


def fig5_8b(runs: str, out: str) -> None:
    ciwl = curves(runs, "ciwl_only")
    members = _family(runs, "icl_graft_ciwl_", "graft_from")
    fig, (ax, bx, cx) = setup_axes(3)
    for key in (ICL, FLIP, CIWL, IWL):
        ax.plot(ciwl["eval_iter"], ciwl[key], color=COLOURS[key], label=SHORT[key])
    for seen, _, _ in members:
        ax.axvline(seen, color="k", lw=0.5, ls=":")
    acc_axis(ax, "CIWL-only run (dotted: grafted checkpoints)")
    ax.legend(fontsize=8)
    cmap = plt.get_cmap("viridis")
    rows = []
    for i, (seen, name, c) in enumerate(members):
        colour = cmap(i / max(len(members) - 1, 1))
        bx.plot(c["eval_iter"], c["icl/loss"], color=colour, label=f"from {seen:.2g}")
        rows.append((seen, learning_time(c), float(c[ICL][-1]), float(c["icl/loss"][-1])))
    loss_axis(bx, "ICL-only, Layer 2 + unembedding grafted", "sequences of ICL-only training")
    bx.legend(fontsize=7)
    xs = [r[0] for r in rows]
    cx.plot(xs, [r[2] for r in rows], "o-", color="tab:blue")
    cx.set_xscale("log")
    cx.set_ylim(0.45, 1.02)
    cx.set_xlabel("CIWL-only checkpoint (sequences)")
    cx.set_ylabel("final ICL in-context accuracy")
    cx.set_title("which checkpoints enable ICL", fontsize=10)
    cx.grid(alpha=0.3)
    fig.savefig(os.path.join(out, "fig5_8b.png"), dpi=120)
    plt.close(fig)
    table = "; ".join(f"{s:.2g}: {fmt(t)} / {a:.2f}" for s, t, a, _ in rows)
    length = members[0][2]["eval_iter"][-1]
    write_md(
        out,
        "fig5_8b",
        "Fig. 5.8b / P4b: ICL-only training grafted from a CIWL-only run's checkpoints",
        f"Run `ciwl_only` (CIWL-only data from scratch, otherwise as `bursty`) and `icl_graft_ciwl_*`: "
        f"{length:.2g} sequences of ICL-only training with Layer 2 + unembedding grafted from its "
        "checkpoint.",
        [
            (
                "the CIWL-only run learns CIWL without ever showing ICL",
                f"CIWL-only run at the end: CIWL {ciwl[CIWL][-1]:.2f}, ICL {ciwl[ICL][-1]:.2f} "
                f"(peak {ciwl[ICL].max():.2f}), Flip {ciwl[FLIP][-1]:.2f}, IWL {ciwl[IWL][-1]:.3f}",
            ),
            (
                "only middle checkpoints (9.8e6 to 3.15e7 of 6.4e7 sequences) enable ICL-only training "
                "to learn ICL",
                f"checkpoint: learning time / final ICL accuracy — {table}",
            ),
        ],
    )


def fig5_8c(runs: str, out: str) -> None:
    bursty = curves(runs, "bursty")
    members = _family(runs, "bursty_from_ciwl_", "init_from")
    length = members[0][2]["eval_iter"][-1]
    fig, axes = setup_axes(len(members) + 1, width=3.4)
    panels = [("bursty from scratch", bursty)] + [(f"from CIWL-only @ {s:.2g}", c) for s, _, c in members]
    rows = []
    for ax, (title, c) in zip(axes, panels, strict=True):
        keep = c["eval_iter"] <= length
        for key in (ICL, FLIP, CIWL):
            ax.plot(c["eval_iter"][keep], c[key][keep], color=COLOURS[key], label=SHORT[key])
        acc_axis(ax, title)
        rows.append(
            (
                title,
                float(c[ICL][keep].max()),
                float(c[FLIP][keep].max()),
                float(c[FLIP][keep][-1]),
                float(c[CIWL][keep][-1]),
            )
        )
    axes[0].legend(fontsize=8)
    fig.savefig(os.path.join(out, "fig5_8c.png"), dpi=120)
    plt.close(fig)
    text = "; ".join(
        f"{t}: ICL peak {a:.2f}, Flip peak {b:.2f} → {f:.2f}, CIWL {w:.2f}" for t, a, b, f, w in rows
    )
    write_md(
        out,
        "fig5_8c",
        "Fig. 5.8c / P4c: bursty training continued from a CIWL-only run's checkpoints",
        f"Runs `bursty_from_ciwl_*`: all weights of a `ciwl_only` checkpoint, then {length:.2g} sequences "
        "of bursty training (fresh optimiser), beside the first as many sequences of `bursty`.",
        [
            (
                "Flip performance of bursty training resumed from a CIWL-only run's checkpoints (the "
                "paper's evidence that the CIWL circuit helps ICL emerge; our notes give no number)",
                text,
            )
        ],
    )


# ----------------------------------------------------------------------------------------------
# Fig. 5.11: Layer-1 previous-token attention blocked / the previous-token head ablated
# ----------------------------------------------------------------------------------------------


def _compare(runs: str, out: str, name: str, title: str, panels: list[tuple[str, str]], keys) -> dict:
    data = {label: curves(runs, run) for run, label in panels}
    fig, axes = setup_axes(len(keys))
    styles = ["-", "--", ":"]
    for ax, key in zip(axes, keys, strict=True):
        for (label, c), ls in zip(data.items(), styles, strict=False):
            ax.plot(c["eval_iter"], c[key], ls, color=COLOURS[key], label=label)
        acc_axis(ax, SHORT[key] + (" accuracy" if key == IWL else " in-context accuracy"))
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(os.path.join(out, f"{name}.png"), dpi=120)
    plt.close(fig)
    return data


def _describe(c: dict) -> str:
    return (
        f"ICL peak {c[ICL].max():.2f} → {c[ICL][-1]:.2f}, Flip peak {c[FLIP].max():.2f} → {c[FLIP][-1]:.2f}, "
        f"CIWL {c[CIWL][-1]:.2f} (reaches 0.9 at {fmt(first_crossing(c['eval_iter'], c[CIWL], 0.9))})"
    )


def fig5_11(runs: str, out: str) -> None:
    data = _compare(
        runs,
        out,
        "fig5_11",
        "Fig. 5.11: Layer-1 previous-token attention blocked / previous-token head ablated during training",
        [
            ("bursty", "unchanged"),
            ("prev_token_blocked", "prev-token attention blocked (Layer 1)"),
            ("prev_token_head_ablated", "Layer-1 prev-token head ablated"),
        ],
        (ICL, FLIP, CIWL),
    )
    base, blocked, ablated = data.values()
    write_md(
        out,
        "fig5_11",
        "Fig. 5.11: Layer-1 previous-token attention blocked / the previous-token head ablated",
        "Runs `prev_token_blocked` (scores from each token to the one before it ← −10⁹ in every Layer-1 "
        "head, throughout training) and `prev_token_head_ablated` (values of Layer-1 head 1 — this seed's "
        "previous-token head in `bursty` — ← 0 throughout training), beside `bursty`.",
        [
            (
                "blocking Layer-1 previous-token attention during training: ICL never forms, CIWL is learned "
                "as without the block",
                f"blocked: {_describe(blocked)}; unchanged run: {_describe(base)}",
            ),
            (
                "ablating the Layer-1 previous-token heads throughout training",
                f"ablated: {_describe(ablated)}",
            ),
        ],
    )


def fig5_10(runs: str, out: str) -> None:
    data = _compare(
        runs,
        out,
        "fig5_10",
        "Fig. 5.10 left: matched exemplars (context exemplar of the query class = the query exemplar)",
        [("bursty", "unmatched (bursty)"), ("matched", "matched")],
        (ICL, FLIP, CIWL),
    )
    base, matched = data.values()
    write_md(
        out,
        "fig5_10",
        "Fig. 5.10 left: matched exemplars",
        "Run `matched` (training and evaluator sequences whose context exemplar of the query's class is "
        "the query exemplar itself, as the original code's `match` option) beside `bursty`.",
        [
            (
                "with matched exemplars ICL persists and Flip → 1 (no transience)",
                f"matched: {_describe(matched)}; unmatched: {_describe(base)}",
            ),
        ],
    )


FIGURES = {
    "fig5_6a": fig5_6a,
    "fig5_8a": fig5_8a,
    "fig5_8b": fig5_8b,
    "fig5_8c": fig5_8c,
    "fig5_11": fig5_11,
    "fig5_10": fig5_10,
}


def main(argv=None) -> int:
    import ablations

    figures = {**FIGURES, "ablations": ablations.ablations}
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", help="the sweep's output directory")
    p.add_argument("--out", default=HERE)
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(figures)}")
    args = p.parse_args(argv)
    if not os.path.isdir(args.runs):
        print(f"error: runs: {args.runs!r} is not a directory", file=sys.stderr)
        return 2
    names = list(figures) if args.only is None else args.only.split(",")
    for n in names:
        if n not in figures:
            print(f"error: --only: unknown figure {n!r} (one of {', '.join(figures)})", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    for n in names:
        try:
            figures[n](args.runs, args.out)
            print(f"{n}: wrote {os.path.join(args.out, n)}.png/.md")
        except Missing as e:
            print(f"{n}: skipped ({e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
