"""Fixed points of the reduced coopetition flow: transience (μ₁ > 0) and persistence (μ₁ = 0)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.analysis import check_phase_diagram_with_runs, coopetition_fixed_points, phase_diagram
from toymodels.losses import coopetition_model, loss_params, stats_of, total_loss_from_stats
from toymodels.precision import numerics

DIMS = (20, 20, 20, 160)


def _by_label(fps, label):
    return [f for f in fps if f.label == label]


def test_transience_when_mu1_positive():
    fps = coopetition_fixed_points((0.1, 0.0), 0.1, DIMS, n_starts=512)
    m1 = _by_label(fps, "mechanism 1 only")
    assert all(f.stability != "stable" for f in m1)  # mechanism 1 learned is not stable (here: absent)
    m2 = _by_label(fps, "mechanism 2 only")
    assert any(f.stability == "stable" for f in m2)
    origin = [f for f in fps if f.s == (0.0, 0.0, 0.0, 0.0)]
    assert origin and origin[0].stability == "degenerate"


def test_persistence_when_mu1_zero():
    fps = coopetition_fixed_points((0.0, 0.0), 0.1, DIMS, n_starts=512)
    for label in ("mechanism 1 only", "mechanism 2 only"):
        assert any(f.stability == "stable" for f in _by_label(fps, label)), label


def test_fixed_points_are_critical_points_of_the_full_model():
    """Oracle: at x_v = s_v x*_v (targets scaled to |x*|² = n) the full-vector gradient vanishes."""
    model = coopetition_model(DIMS)
    lp = loss_params(model, (0.0, 0.0), 0.1)
    fps = coopetition_fixed_points((0.0, 0.0), 0.1, DIMS, n_starts=128)
    rng = np.random.default_rng(0)
    with numerics("float64"):
        targets = {}
        for v, n in zip(model.vectors, DIMS):
            t = rng.normal(size=n)
            targets[v] = jnp.asarray(t * np.sqrt(n) / np.linalg.norm(t))
        grad = jax.jit(jax.grad(lambda p: total_loss_from_stats(model, stats_of(p, targets), lp)))
        for f in fps:
            x = {v: s * targets[v] for v, s in zip(model.vectors, f.s)}
            g = grad(x)
            assert max(float(jnp.max(jnp.abs(gv))) for gv in g.values()) < 1e-9, f
        # and "mechanism 1 learned" with μ₁ > 0 is not a critical point at all: d is pulled in
        lp1 = loss_params(model, (0.1, 0.0), 0.1)
        g = jax.grad(lambda p: total_loss_from_stats(model, stats_of(p, targets), lp1))(
            {v: (0.0 if v == "d" else 1.0) * targets[v] for v in model.vectors}
        )
        assert float(jnp.dot(g["d"], targets["d"])) < -1e-3  # −g·d* > 0: d grows towards d*


def test_phase_diagram_and_runs():
    pd = phase_diagram(DIMS, mu1_values=[0.0, 0.1, 0.2], alpha_values=[0.05, 0.2], n_starts=256)
    assert np.all(pd.regime[0] == 1)  # μ₁ = 0: both single-mechanism states stable
    assert np.all(pd.regime[1:] == 0)  # μ₁ > 0: only mechanism 2 stable
    checks = check_phase_diagram_with_runs(
        pd, points=((0.1, 0.1), (0.0, 0.1)), n_runs=4, t_max=1e5, max_steps=20_000
    )
    assert all(ok for *_, ok in checks.rows), checks.lines()
