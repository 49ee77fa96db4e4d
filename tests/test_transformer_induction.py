"""The induction-head study's setting (thesis ch. 4): ``relabel`` sequences, the label-pair split, the
held-out evaluators, the 5-label unembedding and the ``induction-heads`` preset.

Oracles: the exact count of distinct training sequences (50·49 ordered class pairs × 16 training
ordered label pairs × 2 orders = 78 400), held-out label pairs never drawn in training, held-out
classes' features disjoint from the training features, the target always the label attached to the
query's class, and earlier evaluator and probe sets drawn from the same keys as before.
"""

from __future__ import annotations

import dataclasses
import itertools

import equinox as eqx
import jax
import numpy as np
import pytest

from toymodels.errors import ConfigError
from transformer import preset_config
from transformer.build import init_model, load_data, memory_estimate
from transformer.config import EVALUATORS
from transformer.data import SequenceSpec, label_pair_split, sample_sequences
from transformer.evaluators import evaluator_sets, evaluator_spec, probe_sets, set_key_index
from transformer.model import forward

sample = jax.jit(sample_sequences, static_argnums=(1, 2))


def short(**overrides):
    """The preset with small evaluation sets (the data and sequence shapes of the study)."""
    return preset_config("induction-heads", **{"n_eval": 300, "n_probe": 32, **overrides})


def arrays(seqs):
    return [np.asarray(a) for a in seqs]


def test_label_pair_split():
    train, heldout = label_pair_split(5, 2, seed=0)
    everything = set(itertools.permutations(range(5), 2))
    assert len(train) == 16 and len(heldout) == 4
    assert set(train) | set(heldout) == everything and not set(train) & set(heldout)
    # unordered pairs are held out: both orders on the same side
    assert all((b, a) in heldout for a, b in heldout) and all((b, a) in train for a, b in train)
    assert {a for p in train for a in p} == set(range(5))
    assert label_pair_split(5, 2, 0) == (train, heldout)
    assert label_pair_split(5, 0, 3) == (tuple(sorted(everything)), ())
    assert len({label_pair_split(5, 2, s)[1] for s in range(10)}) > 1  # the seed chooses


def test_training_sequences_are_the_78400_of_the_study():
    cfg = short()
    spec = cfg.sequence_spec()
    assert spec.kind == "relabel" and cfg.n_labels == 5
    s = arrays(sample(jax.random.PRNGKey(7), spec, 1_500_000))
    classes, exemplars, labels, target = s
    assert (exemplars == 0).all() and (classes < 50).all() and (labels < 5).all()
    query_slot = classes[:, :2] == classes[:, 2:]
    assert (query_slot.sum(1) == 1).all()  # the query's class exactly once, one distractor
    # the target is the label attached to the query's class
    np.testing.assert_array_equal(target, labels[query_slot])
    ordered = {tuple(p) for p in np.stack([target, labels[~query_slot]], 1)}
    assert ordered == set(cfg.label_pairs("train"))  # every training pair, never a held-out one
    assert not ordered & set(cfg.label_pairs("heldout"))
    codes = ((classes[:, 0] * 50 + classes[:, 1]) * 50 + classes[:, 2]) * 25 + labels[:, 0] * 5 + labels[:, 1]
    assert np.unique(codes).size == 50 * 49 * 16 * 2 == 78_400


def test_heldout_evaluators():
    cfg = short()
    sets = {k: arrays(v) for k, v in evaluator_sets(cfg).items()}
    assert set(sets) == {"train_eval", "heldout_pairs", "heldout_exemplars", "heldout_classes"}
    train_pairs, heldout_pairs = set(cfg.label_pairs("train")), set(cfg.label_pairs("heldout"))
    for name, (classes, exemplars, labels, target) in sets.items():
        query_slot = classes[:, :2] == classes[:, 2:]
        assert (query_slot.sum(1) == 1).all(), name
        np.testing.assert_array_equal(target, labels[query_slot])
        pairs = {tuple(p) for p in np.stack([target, labels[~query_slot]], 1)}
        assert pairs == (heldout_pairs if name == "heldout_pairs" else train_pairs), name
        if name == "heldout_classes":
            assert classes.min() >= 50 and classes.max() < 150 and np.unique(classes).size > 90
        else:
            assert classes.max() < 50
        if name == "heldout_exemplars":
            assert set(np.unique(exemplars)) == {1, 2, 3, 4}
        else:
            assert (exemplars == 0).all(), name
    x = load_data(cfg)
    assert x.shape == (150, 5, 64)
    train_x = x[:50, :1].reshape(-1, 64)
    # held-out classes: their features share no vector with the training features
    held = x[50:, :1].reshape(-1, 64)
    assert np.abs(held[:, None] - train_x[None]).max(-1).min() > 0.1
    # held-out exemplars: new draws around the training classes' prototypes (closer to their own)
    for c in range(50):
        own = np.linalg.norm(x[c, 1:] - x[c, 0], axis=-1).mean()
        others = np.linalg.norm(x[c, 1:, None] - np.delete(train_x, c, 0)[None], axis=-1).min()
        assert own < others


def test_model_outputs_the_five_labels():
    cfg = short(d_model=16, n_heads=2)
    model = eqx.filter_eval_shape(init_model, cfg, 64)  # shapes only: nothing compiled
    assert model.unembed.weight.shape == (5, 16) and model.embed_label.weight.shape == (5, 16)
    x, labels = jax.ShapeDtypeStruct((4, 3, 64), np.float32), jax.ShapeDtypeStruct((4, 2), np.int32)
    assert eqx.filter_eval_shape(forward, model, x, labels).shape == (4, 5)
    # other kinds keep one output per class (a mixture with them too); the memory estimate follows
    wide = dataclasses.replace(cfg, train_kind="icl_only")
    mixed = dataclasses.replace(cfg, mix=(("relabel", 1.0), ("bursty", 1.0)), evaluators=("train_eval",))
    assert wide.n_labels == mixed.n_labels == 50
    assert memory_estimate(cfg)["parameters"][0] < memory_estimate(wide)["parameters"][0]


def test_probes_of_a_relabelled_run_use_its_labels():
    cfg = short()
    for name, s in probe_sets(cfg).items():
        classes, _, labels, _ = arrays(s)
        assert labels.max() < 5 and classes.max() < 50, name


def test_earlier_sets_keep_their_keys(tiny_config):
    """Adding evaluators changed no earlier set: evaluator i < 5 draws from fold_in(key, i), the
    probe sets from fold_in(key, 5 + j), the held-out sets after them."""
    cfg = tiny_config(n_eval=40, evaluators=("icl", "pure_iwl"))
    key = jax.random.PRNGKey(cfg.eval_seed)
    sets = evaluator_sets(cfg)
    for i, name in enumerate(("train_eval", "icl", "iwl_copy_avail", "flip_icl", "pure_iwl")):
        assert set_key_index(name) == i
    for i, name in ((1, "icl"), (4, "pure_iwl")):  # the sets enabled: their keys do not depend on that
        direct = sample(jax.random.fold_in(key, i), evaluator_spec(cfg, name), 40)
        for a, b in zip(sets[name], direct):
            np.testing.assert_array_equal(a, b)
    probe = probe_sets(cfg)["bursty"]
    direct = sample(jax.random.fold_in(key, 5), cfg.sequence_spec("bursty"), cfg.n_probe)
    np.testing.assert_array_equal(probe.classes, direct.classes)
    assert sorted(set_key_index(n) for n in EVALUATORS) == [0, 1, 2, 3, 4, 7, 8, 9]


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(evaluators=("train_eval", "flip_icl")), "evaluators"),
        (dict(n_holdout_label_pairs=0), "n_holdout_label_pairs"),  # heldout_pairs needs some
        (dict(n_holdout_label_pairs=10), "n_holdout_label_pairs"),  # none left to train on
        (dict(icl_label_set=3, n_holdout_label_pairs=2), "n_holdout_label_pairs"),  # a label untrained
        (dict(n_holdout_exemplars=0), "n_holdout_exemplars"),
        (dict(n_holdout_classes=2), "n_holdout_classes"),
        (dict(context_pairs=4), "context_pairs"),
        (dict(icl_label_set=1, n_holdout_label_pairs=0, evaluators=("train_eval",)), "icl_label_set"),
        (dict(label_split_seed=-1), "label_split_seed"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as e:
        short(**overrides)
    assert e.value.param == field, str(e.value)


def test_relabel_spec_errors():
    base = dict(kind="relabel", n_classes=10, n_exemplars=1, label_set=5)
    with pytest.raises(ConfigError, match="label_pairs"):
        SequenceSpec(**base).validate()
    with pytest.raises(ConfigError, match="label_pairs"):
        SequenceSpec(**base, label_pairs=((1, 1),)).validate()
    with pytest.raises(ConfigError, match="label_pairs"):
        SequenceSpec(**base, label_pairs=((0, 5),)).validate()
    with pytest.raises(ConfigError, match="context_pairs"):
        SequenceSpec(**base, label_pairs=((0, 1),), context_pairs=3).validate()


def test_a_short_run_learns_in_context(tmp_path, read_all):
    """A shortened preset (smaller model, faster learning rate) escapes the log 2 plateau: every
    evaluator ends far below log 2, the held-out label pairs and classes included."""
    from transformer import train

    cfg = short(d_model=32, n_heads=4, lr=2e-3, n_sequences=32 * 600, eval_every=600, n_eval=200,
                keep_checkpoints="none", evaluators=("train_eval", "heldout_pairs", "heldout_classes"))
    log = read_all(train(cfg, str(tmp_path / "run"), progress=False))
    for name in cfg.evaluators:
        assert log[f"{name}/loss"][-1].mean() < 0.4 * np.log(2), (name, log[f"{name}/loss"].mean(1))
    assert log["probes/induction_strength"].shape == (2, 2, 4)
    assert log["probes/induction_strength"][-1, 1].max() > 0.3
