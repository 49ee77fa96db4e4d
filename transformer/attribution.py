"""Direct logit attribution of the in-context margin at the query token.

The logits at the query are ``z = U LN(r) + c`` with the final LayerNorm
``LN(r) = γ ⊙ (r − mean(r)) / σ(r) + β`` and the residual stream at the query a sum of parts,

    r = e + Σ_{l,h} o_{l,h} (+ Σ_l m_l),

``e`` the query token's own embedding (exemplar embedding plus position: the *direct* path),
``o_{l,h}`` what head ``h`` of layer ``l`` writes at the query and ``m_l`` the MLP outputs.
Holding ``σ = σ(r)`` of the whole stream fixed, ``LN`` is linear in the parts, so exactly

    z = Σ_p U (γ ⊙ (p − mean(p)) / σ) + (U β + c).

For a sequence whose target ``y`` is among its context labels, the *in-context margin* is
``Δ = z_y − mean_{l ∈ others} z_l`` over the context label tokens whose label is not ``y``; with
two context pairs of distinct labels (the 2-layer study) it is ``z_y − z_{y'}`` and
``[Δ > 0]`` is the evaluators' in-context accuracy. ``Δ`` splits into the same parts plus a
constant. On the ICL evaluator (context labels re-assigned to {0, 1}) the parts show which
circuit decides: the Layer-2 heads copy the label of the matching exemplar, while the direct
path's in-weights preference between two labels unrelated to the query's class acts as noise.

``python -m transformer.attribution RUN_DIR`` prints the split for the run's last checkpoint; bad
input (a missing or corrupt checkpoint, an unknown evaluator) is one line ``error: …``, exit status 2.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from toymodels._internal.cli_tools import OneLineParser, error_line
from toymodels.errors import ConfigError

from .build import load_data
from .checkpoint import checkpoint_config, load_checkpoint
from .data import Sequences, gather_features
from .evaluators import evaluator_sets
from .model import Transformer, forward_with_activations


def part_names(model: Transformer) -> tuple[str, ...]:
    """Names of the residual-stream parts, in the order of :func:`margin_parts`."""
    names = ["direct"]
    for layer in range(1, len(model.blocks) + 1):
        names += [f"L{layer}H{h}" for h in range(model.n_heads)]
    for layer, block in enumerate(model.blocks, start=1):
        if block.mlp is not None:
            names.append(f"L{layer}MLP")
    return tuple(names)


def margin_parts(
    model: Transformer,
    features: Float[Array, "k1 dim"],
    labels: Int[Array, " k"],
    target: Int[Array, ""],
) -> tuple[Float[Array, " parts"], Float[Array, ""], Float[Array, ""]]:
    """``(parts, const, total)`` of the in-context margin of one sequence (module docstring).

    ``parts.sum() + const == total`` up to rounding, ``total`` being the margin of the model's
    own logits.
    """
    logits, acts = forward_with_activations(model, features, labels)
    r = acts["resid"][-1][-1]
    pieces = [acts["resid"][0][-1][None], acts["head_out"][:, :, -1].reshape(-1, r.shape[-1])]
    if "mlp_out" in acts:
        pieces.append(acts["mlp_out"][:, -1])
    parts = jnp.concatenate(pieces)  # (n_parts, d)
    ln = model.ln_f
    sigma = jnp.sqrt(jnp.var(r) + ln.eps)
    gamma = ln.weight if ln.weight is not None else jnp.ones_like(r)
    beta = ln.bias if ln.bias is not None else jnp.zeros_like(r)
    u, c = model.unembedding()
    others = (labels != target).astype(r.dtype)
    others = others / jnp.maximum(others.sum(), 1.0)  # mean over the other context label tokens

    def margin(v):  # v_y − mean_{others} v_l, for any per-label quantity v
        return v[target] - others @ v[labels]

    w_rows = margin(u)  # the margin is linear in z = U LN(r) + c
    normed = gamma * (parts - parts.mean(-1, keepdims=True)) / sigma
    const = beta @ w_rows + (margin(c) if c is not None else 0.0)
    return normed @ w_rows, const, margin(logits)


@jax.jit
def margin_attribution(
    model: Transformer,
    exemplars: Float[Array, "classes exemplars dim"],
    seqs: Sequences,
) -> dict[str, Float[Array, ...]]:
    """:func:`margin_parts` of every sequence: ``parts`` (n, n_parts), ``const`` (n,), ``total`` (n,)."""
    feats = gather_features(exemplars, seqs)
    parts, const, total = jax.vmap(lambda f, s: margin_parts(model, f, s.labels, s.target))(feats, seqs)
    return {"parts": parts, "const": const, "total": total}


def attribution_summary(model: Transformer, result: dict) -> list[dict]:
    """Rows ``{part, mean, sd, acc_alone, acc_without}`` for the direct path, each layer's heads
    together and each MLP, then ``all``: mean and sd of the part's margin over the sequences,
    ``[part + const > 0]`` (the part alone decides) and ``[total − part > 0]`` (everything but the
    part) as fractions of the sequences.
    """
    names = part_names(model)
    parts = np.asarray(result["parts"], np.float64)
    const = np.asarray(result["const"], np.float64)
    total = np.asarray(result["total"], np.float64)
    groups: dict[str, list[int]] = {"direct": [0]}
    for i, name in enumerate(names[1:], start=1):
        key = name.split("H")[0] + " heads" if "H" in name else name
        groups.setdefault(key, []).append(i)
    rows = []
    for key, idx in groups.items():
        m = parts[:, idx].sum(1)
        rows.append(dict(part=key, mean=m.mean(), sd=m.std(), acc_alone=np.mean(m + const > 0),
                         acc_without=np.mean(total - m > 0)))
    rows.append(dict(part="all", mean=total.mean(), sd=total.std(), acc_alone=np.mean(total > 0),
                     acc_without=float("nan")))
    return rows


def format_summary(title: str, rows: list[dict]) -> str:
    lines = [title, f"  {'part':<10} {'mean':>8} {'sd':>8} {'acc alone':>10} {'acc without':>12}"]
    for r in rows:
        without = "" if np.isnan(r["acc_without"]) else f"{r['acc_without']:.3f}"
        lines.append(
            f"  {r['part']:<10} {r['mean']:8.2f} {r['sd']:8.2f} {r['acc_alone']:10.3f} {without:>12}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(
        prog="python -m transformer.attribution",
        description="Split the in-context margin at the query into the direct path, each layer's "
        "heads and MLPs, for a run's checkpoint, on its evaluator sets.",
    )
    p.add_argument("run", help="run directory (its latest checkpoint), checkpoint directory or model.eqx")
    p.add_argument("--evaluators", default="icl,train_eval",
                   help="comma-separated evaluators whose sets are split (default icl,train_eval)")
    args = p.parse_args(argv)
    try:
        cfg = checkpoint_config(args.run, "run")
        wanted = tuple(e for e in args.evaluators.split(",") if e)
        unknown = [e for e in wanted if e not in cfg.evaluators]
        if not wanted:
            raise ConfigError("evaluators", f"no evaluator named (the run's: {','.join(cfg.evaluators)})")
        if unknown:
            msg = f"{unknown[0]!r} is not among the run's evaluators {cfg.evaluators}"
            raise ConfigError("evaluators", msg)
        exemplars = jnp.asarray(load_data(cfg))
        cfg, model = load_checkpoint(args.run, "run", exemplars.shape[-1])
    except ConfigError as e:
        print(error_line(e, positional=("run",)), file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:
        print(f"error: run: cannot read {args.run!r} ({getattr(e, 'strerror', None) or type(e).__name__})",
              file=sys.stderr)
        return 2
    sets = evaluator_sets(cfg)
    for name in wanted:
        if name == "pure_iwl":
            print(f"{name}: skipped (its target label is not in the context)")
            continue
        rows = attribution_summary(model, margin_attribution(model, exemplars, sets[name]))
        print(format_summary(f"{name} ({cfg.n_eval} sequences): in-context margin z_target - z_other", rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["part_names", "margin_parts", "margin_attribution", "attribution_summary", "format_summary"]
