"""Direct logit attribution of the in-context margin (transformer/attribution.py)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer import (
    batched_logits,
    evaluator_sets,
    gather_features,
    init_model,
    preset_config,
    sequence_metrics,
    synthetic_exemplars,
    train,
)
from transformer.attribution import attribution_summary, main, margin_attribution, part_names


def _perturbed_model(cfg, seed=0):
    """A tiny model with every array jittered, so LayerNorm gains/biases and the unembedding bias
    are not at their neutral initial values."""
    model = init_model(cfg, cfg.synth_dim)
    leaves, treedef = jax.tree_util.tree_flatten(eqx.filter(model, eqx.is_array))
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    jittered = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, jittered), model)


@pytest.mark.parametrize("mlp, tie", [(False, False), (True, False), (False, True)])
def test_parts_sum_to_the_models_margin(mlp, tie):
    cfg = preset_config("tiny", mlp=mlp, tie_labels=tie, n_eval=200)
    model = _perturbed_model(cfg)
    exemplars = jnp.asarray(synthetic_exemplars(cfg.n_classes, cfg.n_exemplars, cfg.synth_dim,
                                                cfg.synth_noise, 0, 1.0))
    sets = evaluator_sets(cfg)
    for name in ("icl", "train_eval", "flip_icl", "iwl_copy_avail"):
        seqs = sets[name]
        res = margin_attribution(model, exemplars, seqs)
        parts, const, total = (np.asarray(res[k], np.float64) for k in ("parts", "const", "total"))
        assert parts.shape == (200, len(part_names(model)))
        assert len(part_names(model)) == 1 + cfg.depth * cfg.n_heads + (cfg.depth if mlp else 0)
        # exact split: parts + constant = the margin
        np.testing.assert_allclose(parts.sum(1) + const, total, rtol=1e-4, atol=1e-4 * np.abs(total).max())
        # the margin agrees with the training path's logits (an independent forward pass)
        logits = np.asarray(batched_logits(model, gather_features(exemplars, seqs), seqs.labels), np.float64)
        labels, target = np.asarray(seqs.labels), np.asarray(seqs.target)
        rows = np.arange(len(target))
        other = np.where(labels[:, 0] == target, labels[:, 1], labels[:, 0])
        np.testing.assert_allclose(total, logits[rows, target] - logits[rows, other], rtol=1e-4,
                                   atol=1e-4 * np.abs(total).max())
        # [margin > 0] is the evaluators' in-context accuracy (two context pairs, distinct labels)
        ic = np.asarray(sequence_metrics(model, exemplars, seqs)["in_context_acc"])
        assert np.array_equal(total > 0, ic > 0.5)
        # summary rows: direct, one per layer's heads (and MLP), all
        rows_ = attribution_summary(model, res)
        expected = ["direct", "L1 heads", "L2 heads"] + (["L1MLP", "L2MLP"] if mlp else []) + ["all"]
        assert [r["part"] for r in rows_] == expected
        assert rows_[-1]["acc_alone"] == pytest.approx(np.mean(ic))


def test_a_silenced_head_contributes_nothing():
    cfg = preset_config("tiny", n_eval=100)
    model = _perturbed_model(cfg, seed=1)
    silenced = eqx.tree_at(lambda m: m.blocks[1].attn.wo, model,
                           model.blocks[1].attn.wo.at[1].set(0.0))
    exemplars = jnp.asarray(synthetic_exemplars(cfg.n_classes, cfg.n_exemplars, cfg.synth_dim,
                                                cfg.synth_noise, 0, 1.0))
    seqs = evaluator_sets(cfg)["icl"]
    names = part_names(silenced)
    parts = np.asarray(margin_attribution(silenced, exemplars, seqs)["parts"])
    assert np.all(parts[:, names.index("L2H1")] == 0.0)
    assert np.abs(parts[:, names.index("L2H0")]).max() > 0.0


def test_cli_on_a_run_and_bad_input(tmp_path, capsys):
    cfg = preset_config("tiny", n_sequences=320, eval_every=10)
    train(cfg, str(tmp_path / "run"), progress=False)
    assert main([str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "icl (64 sequences)" in out and "L2 heads" in out and "train_eval" in out
    assert main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run: no checkpoint") and err.count("\n") == 0
    assert main([str(tmp_path / "run"), "--evaluators", "icl,bogus"]) == 2
    assert "evaluators: 'bogus'" in capsys.readouterr().err
