"""Exemplar files and sequence samplers: invariants of every sequence kind, validation errors."""

import dataclasses

import h5py
import jax
import numpy as np
import pytest

from transformer.data import (
    DataError,
    SequenceSpec,
    load_exemplars,
    sample_sequences,
    synthetic_exemplars,
    write_exemplar_file,
)

SHAPES = [dict(context_pairs=2, burstiness=1), dict(context_pairs=8, burstiness=3)]
DISTS = [dict(zipf_alpha=0.0), dict(zipf_alpha=1.0)]


def draw(kind, n=400, seed=0, **kw):
    spec = SequenceSpec(kind=kind, n_classes=kw.pop("n_classes", 40), n_exemplars=5, **kw)
    spec.validate()
    s = jax.jit(sample_sequences, static_argnums=(1, 2))(jax.random.PRNGKey(seed), spec, n)
    return spec, [np.asarray(a) for a in s]



# ---------------------------------------------------------------- files


def test_synthetic_formula_and_seed():
    a = synthetic_exemplars(6, 5, 7, 0.0, seed=3)
    assert a.shape == (6, 5, 7) and a.dtype == np.float32
    # ε = 0: every exemplar equals its class prototype
    np.testing.assert_array_equal(a, np.broadcast_to(a[:, :1], a.shape))
    b = synthetic_exemplars(6, 5, 7, 0.75, seed=3)
    np.testing.assert_array_equal(b, synthetic_exemplars(6, 5, 7, 0.75, seed=3))
    assert not np.array_equal(b, synthetic_exemplars(6, 5, 7, 0.75, seed=4))
    # same prototypes (same seed, same draw order): x = (μ + ε ξ)/sqrt(1+ε²)
    mu = a[:, 0]
    xi = (b * np.sqrt(1 + 0.75**2) - mu[:, None]) / 0.75
    big = synthetic_exemplars(200, 50, 16, 0.75, seed=1)
    assert abs(big.var() - 1.0) < 0.05  # unit variance per coordinate
    assert abs(xi.std() - 1.0) < 0.3
    # offset: the same exemplars shifted by a constant on every coordinate
    np.testing.assert_allclose(synthetic_exemplars(6, 5, 7, 0.75, seed=3, offset=1.5), b + 1.5,
                               atol=1e-6)
    with pytest.raises(DataError, match="offset"):
        synthetic_exemplars(6, 5, 7, 0.75, seed=3, offset=float("nan"))


def test_synthetic_variants_share_a_base_prototype():
    rho = 0.5
    plain = synthetic_exemplars(10, 3, 6, 0.0, seed=2)  # ε = 0: exemplars are the prototypes δ_c
    grouped = synthetic_exemplars(10, 3, 6, 0.0, seed=2, variants=4, variant_scale=rho)
    # variants = 1 is the plain generator, whatever the scale
    np.testing.assert_array_equal(
        synthetic_exemplars(10, 3, 6, 0.75, seed=2, variants=1, variant_scale=0.3),
        synthetic_exemplars(10, 3, 6, 0.75, seed=2),
    )
    # μ_c sqrt(1+ρ²) - ρ δ_c = β_{c // 4}: one base per group of 4 consecutive classes (10 → 3 groups)
    base = grouped[:, 0] * np.sqrt(1 + rho**2) - rho * plain[:, 0]
    for members in (range(0, 4), range(4, 8), range(8, 10)):
        np.testing.assert_allclose(base[list(members)], np.broadcast_to(base[members[0]], (len(members), 6)),
                                   atol=1e-5)
    assert np.abs(base[0] - base[4]).max() > 0.1 and np.abs(base[4] - base[8]).max() > 0.1
    # ρ = 0: the classes of a group coincide
    same = synthetic_exemplars(8, 2, 5, 0.0, seed=1, variants=4, variant_scale=0.0)
    np.testing.assert_array_equal(same[1], same[0])
    assert not np.array_equal(same[4], same[0])
    # the within-class noise ξ does not depend on the grouping
    noisy = synthetic_exemplars(10, 3, 6, 0.75, seed=2, variants=4, variant_scale=rho)
    xi_grouped = noisy * np.sqrt(1 + 0.75**2) - grouped[:, :1]
    xi_plain = synthetic_exemplars(10, 3, 6, 0.75, seed=2) * np.sqrt(1 + 0.75**2) - plain[:, :1]
    np.testing.assert_allclose(xi_grouped, xi_plain, atol=1e-5)
    # statistics: unit variance, prototype correlation 1/(1+ρ²) within a group, 0 across groups
    big = synthetic_exemplars(4000, 1, 64, 0.0, seed=5, variants=2, variant_scale=rho)[:, 0]
    assert abs(big.var() - 1.0) < 0.03
    within = np.mean(np.sum(big[0::2] * big[1::2], 1)) / 64
    across = np.mean(np.sum(big[0:-2:2] * big[3::2], 1)) / 64
    assert abs(within - 1 / (1 + rho**2)) < 0.03 and abs(across) < 0.03
    for kwargs, name in ((dict(variants=0), "variants"), (dict(variant_scale=-1.0), "variant_scale"),
                         (dict(variants=2, variant_scale=float("nan")), "variant_scale")):
        with pytest.raises(DataError, match=name):
            synthetic_exemplars(4, 2, 3, 0.5, seed=0, **kwargs)


def test_synthetic_shared_component_and_rectification():
    plain = synthetic_exemplars(10, 3, 6, 0.75, seed=2, offset=0.5, variants=2)
    # the shared component is one vector s, the same for every class and exemplar, drawn after β
    shared = synthetic_exemplars(10, 3, 6, 0.75, seed=2, offset=0.5, variants=2, shared_scale=2.0)
    s = shared - plain
    np.testing.assert_allclose(s, np.broadcast_to(s[0, 0], s.shape), atol=1e-5)
    rng = np.random.default_rng(2)
    for shape in ((10, 1, 6), (10, 3, 6), (5, 1, 6)):  # δ, ξ, β
        rng.standard_normal(shape, dtype=np.float32)
    np.testing.assert_allclose(s[0, 0], 2.0 * rng.standard_normal(6, dtype=np.float32), atol=1e-5)
    # rectification is max(·, 0) of the unrectified features, nothing else
    np.testing.assert_array_equal(
        synthetic_exemplars(10, 3, 6, 0.75, seed=2, offset=0.5, variants=2, shared_scale=2.0, rectify=True),
        np.maximum(shared, 0))
    # statistics: with offset 0 and no shared part half of the coordinates are 0, the mean is 1/sqrt(2π)
    big = synthetic_exemplars(2000, 5, 32, 0.75, seed=3, rectify=True)
    assert big.min() == 0.0 and abs((big == 0).mean() - 0.5) < 0.01
    assert abs(big.mean() - 1 / np.sqrt(2 * np.pi)) < 0.01
    with pytest.raises(DataError, match="shared_scale"):
        synthetic_exemplars(4, 2, 3, 0.5, seed=0, shared_scale=-1.0)
    with pytest.raises(DataError, match="shared_scale"):
        synthetic_exemplars(4, 2, 3, 0.5, seed=0, shared_scale=float("inf"))


def test_file_roundtrip_and_splits(tmp_path):
    x = synthetic_exemplars(10, 4, 3, 0.5, seed=0)
    p = tmp_path / "ex.h5"
    write_exemplar_file(p, x)
    np.testing.assert_array_equal(load_exemplars(p), x)
    np.testing.assert_array_equal(load_exemplars(p, n_classes=7, n_exemplars=2), x[:7, :2])
    write_exemplar_file(tmp_path / "other.h5", x, dataset="a/b")
    np.testing.assert_array_equal(load_exemplars(tmp_path / "other.h5", "a/b"), x)
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (None, {}, "no such file"),
        ("garbage", {}, "not a readable HDF5"),
        ("nodataset", {}, "has no dataset"),
        ("2d", {}, "classes x exemplars x dim"),
        ("int", {}, "floating point"),
        ("nan", {}, "non-finite"),
        ("ok", {"n_classes": 11}, "n_classes: 11 requested but the file has 10"),
        ("ok", {"n_exemplars": 5}, "n_exemplars: 5 requested"),
    ],
)
def test_load_errors(tmp_path, make, kwargs, match):
    p = tmp_path / "bad.h5"
    x = synthetic_exemplars(10, 4, 3, 0.5, seed=0)
    if make == "garbage":
        p.write_bytes(b"not hdf5 at all")
    elif make == "nodataset":
        with h5py.File(p, "w") as f:
            f["other"] = x
    elif make == "2d":
        write_exemplar_file(p, x[:, 0])
    elif make == "int":
        write_exemplar_file(p, x.astype(np.int32))
    elif make == "nan":
        x[3, 1, 0] = np.nan
        write_exemplar_file(p, x)
    elif make == "ok":
        write_exemplar_file(p, x)
    with pytest.raises(DataError, match=match):
        load_exemplars(p, **kwargs)


# ---------------------------------------------------------------- samplers


def _split(s, k):
    classes, exemplars, labels, target = s
    return classes[:, :k], classes[:, k], labels, target, exemplars


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dist", DISTS)
def test_bursty(shape, dist):
    spec, s = draw("bursty", **shape, **dist)
    k, b = spec.context_pairs, spec.burstiness
    ctx, q, labels, target, _ = _split(s, k)
    np.testing.assert_array_equal(labels, ctx)  # labels fixed per class
    np.testing.assert_array_equal(target, q)
    assert np.all((ctx == q[:, None]).sum(1) == b)  # query class exactly b times
    for row, qq in zip(ctx, q):
        others, counts = np.unique(row[row != qq], return_counts=True)
        assert sorted(counts)[-1] == b and len(others) == 1 + (k - 2 * b)  # one distractor ×b
    assert s[0].min() >= 0 and s[0].max() < spec.n_classes
    assert s[1].min() >= 0 and s[1].max() < spec.n_exemplars
    # query-class positions are shuffled: each context slot holds the query class sometimes
    assert np.all((ctx == q[:, None]).mean(0) > 0.1)


@pytest.mark.parametrize("shape", SHAPES)
def test_icl_only(shape):
    spec, s = draw("icl_only", label_set=spec_labels(shape), **shape)
    k = spec.context_pairs
    ctx, q, labels, target, _ = _split(s, k)
    assert labels.min() >= 0 and labels.max() < spec.label_set
    for row, lab, qq, t in zip(ctx, labels, q, target):
        # same class -> same label, different classes -> different labels
        for i in range(k):
            for j in range(k):
                assert (row[i] == row[j]) == (lab[i] == lab[j])
        assert np.all(lab[row == qq] == t)
    # labels re-assigned per sequence: the query's label is not a function of its class
    assert len(np.unique(target)) == spec.label_set


def spec_labels(shape):
    return 2 + shape["context_pairs"] - 2 * shape["burstiness"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dist", DISTS)
def test_iwl(shape, dist):
    spec, s = draw("iwl", **shape, **dist)
    ctx, q, labels, target, _ = _split(s, spec.context_pairs)
    assert not np.any(ctx == q[:, None])  # query class absent
    assert all(len(set(r)) == spec.context_pairs for r in ctx)  # all distinct
    np.testing.assert_array_equal(labels, ctx)
    np.testing.assert_array_equal(target, q)


@pytest.mark.parametrize("shape", SHAPES)
def test_ciwl(shape):
    spec, s = draw("ciwl", **shape)
    ctx, q, labels, target, _ = _split(s, spec.context_pairs)
    b = spec.burstiness
    assert not np.any(ctx == q[:, None])  # query class absent ...
    assert np.all((labels == q[:, None]).sum(1) == b)  # ... but its trained label present
    np.testing.assert_array_equal(target, q)
    # the query label sits on exemplars of one other class; all other pairs keep their labels
    for row, lab, qq in zip(ctx, labels, q):
        assert len(set(row[lab == qq])) == 1
        np.testing.assert_array_equal(lab[lab != qq], row[lab != qq])


@pytest.mark.parametrize("shape", SHAPES)
def test_flip(shape):
    spec, s = draw("flip", **shape)
    ctx, q, labels, target, _ = _split(s, spec.context_pairs)
    b = spec.burstiness
    for row, lab, qq, t in zip(ctx, labels, q, target):
        assert (row == qq).sum() == b
        d = row[(row != qq)]
        d = np.unique(d, return_counts=True)
        distractor = d[0][d[1] == b][0] if b > 1 else t
        assert t == distractor and t != qq  # target = the distractor's trained label
        assert np.all(lab[row == qq] == distractor)  # query class carries distractor's label
        assert np.all(lab[row == distractor] == qq)  # and vice versa: labels swapped
        rest = (row != qq) & (row != distractor)
        np.testing.assert_array_equal(lab[rest], row[rest])


@pytest.mark.parametrize("shape", SHAPES)
def test_matched_exemplars(shape):
    spec, s = draw("bursty", matched=True, **shape)
    ctx, q, _, _, ex = _split(s, spec.context_pairs)
    same = ctx == q[:, None]
    np.testing.assert_array_equal(ex[:, :-1][same], np.broadcast_to(ex[:, -1:], same.shape)[same])
    # without matching, context and query exemplars of the query class sometimes differ
    _, s2 = draw("bursty", matched=False, **shape)
    ctx2, q2, _, _, ex2 = _split(s2, spec.context_pairs)
    same2 = ctx2 == q2[:, None]
    assert np.any(ex2[:, :-1][same2] != np.broadcast_to(ex2[:, -1:], same2.shape)[same2])


def test_nonbursty_and_mixing():
    spec, s = draw("nonbursty", n=2000, n_classes=8)
    ctx, q, labels, _, _ = _split(s, 2)
    np.testing.assert_array_equal(labels, ctx)
    present = (ctx == q[:, None]).any(1).mean()
    # i.i.d. context classes: P(query class present) = 1 - (7/8)^2 ≈ 0.234
    assert abs(present - (1 - (7 / 8) ** 2)) < 0.04
    _, s = draw("bursty", n=2000, n_classes=8, p_bursty=0.5)
    ctx, q, labels, _, _ = _split(s, 2)
    np.testing.assert_array_equal(labels, ctx)
    bursty_like = ((ctx == q[:, None]).sum(1) == 1) & (ctx[:, 0] != ctx[:, 1])
    # bursty half always looks bursty; the i.i.d. half does with probability 2·(1/8)(7/8)
    assert abs(bursty_like.mean() - (0.5 + 0.5 * 2 * (1 / 8) * (7 / 8))) < 0.05


def test_zipf_and_uniform_frequencies():
    n = 10
    _, s = draw("bursty", n=6000, n_classes=n, zipf_alpha=1.0)
    q = s[0][:, -1]
    freq = np.bincount(q, minlength=n) / len(q)
    p = 1.0 / np.arange(1, n + 1)
    p /= p.sum()
    # the query class is the first distinct draw: exactly Zipfian
    np.testing.assert_allclose(freq, p, atol=0.02)
    _, s = draw("iwl", n=6000, n_classes=n)
    freq = np.bincount(s[0][:, :-1].ravel(), minlength=n) / s[0][:, :-1].size
    np.testing.assert_allclose(freq, 1 / n, atol=0.02)


def test_same_key_same_sequences_and_offset():
    _, a = draw("bursty", seed=5)
    _, b = draw("bursty", seed=5)
    _, c = draw("bursty", seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    spec = SequenceSpec(kind="icl_only", n_classes=10, class_offset=30, label_set=2)
    s = sample_sequences(jax.random.PRNGKey(0), spec, 50)
    assert int(s.classes.min()) >= 30 and int(s.classes.max()) < 40
    assert set(np.unique(s.labels)) <= {0, 1}


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(context_pairs=3, burstiness=2), "shorter than 2 x burstiness"),
        (dict(kind="iwl", n_classes=2), "need >= 3 classes"),
        (dict(kind="icl_only", label_set=1), "cannot label 2 context roles"),
        (dict(kind="nope"), "unknown sequence kind"),
        (dict(p_bursty=1.5), "p_bursty"),
    ],
)
def test_spec_errors(kw, match):
    spec = dataclasses.replace(SequenceSpec(n_classes=10), **kw)
    with pytest.raises(DataError, match=match):
        spec.validate()
