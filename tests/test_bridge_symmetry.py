"""The fitted family's exact symmetries (bridge.symmetry): the group leaves every toy curve unchanged,
its generators are null directions of the fit's Jacobian, and a family has as many as it frees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge.objective import residuals
from bridge.spec import EXACT_FREE, Q0_NAMES, TYPICAL_FREE, spec_for
from bridge.symmetry import act, allowed, generators, identifiable, moved
from bridge.toy import SolveSettings, toy_curves
from toymodels.precision import numerics

CURVES = ["icl", "ciwl", "total"]
# a seed-like point of the exact family (b and c differ; q(0) ≠ 1)
VALUES = dict(
    span=5000.0, mu1=0.12, mu2=0.0, alpha=0.15, dim_a=20.0, dim_bc=16.0, dim_d=150.0,
    eps_a=0.04, eps_bc=0.17, eps_d=-0.06, q0_a=1.4, q0_bc=1.15, q0_d=1.0,
    dim_c=20.0, eps_c=0.05, q0_c=0.77,
)  # fmt: skip
TIGHT = SolveSettings(rtol=1e-9, atol=1e-11, max_steps=65536)
U = np.linspace(0.0, 1.0, 60)


@pytest.fixture(scope="module")
def spec():
    return spec_for(CURVES, free=EXACT_FREE)


def curves(spec, values):
    theta = jnp.asarray(spec.unconstrained(values))
    out = toy_curves(spec.toy_params(spec.physical(theta)), jnp.asarray(U), TIGHT)
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("s_b, s_c", [(0.3, -0.2), (-0.25, -0.1)])
def test_group_leaves_the_curves_unchanged(spec, s_b, s_c):
    """Target rescaling (with the level that keeps n_a at its reference) moves α by a factor
    e^{-4(s_b+s_c)}, every dimension, norm and overlap — and no curve by more than the solver's
    tolerance; the identifiable combinations do not move at all."""
    moved_values = act(VALUES, s_b, s_c, level=2 * (s_b + s_c))
    assert moved_values["dim_a"] == pytest.approx(VALUES["dim_a"], rel=1e-12)
    assert moved_values["alpha"] / VALUES["alpha"] == pytest.approx(np.exp(-4 * (s_b + s_c)), rel=1e-12)
    with numerics("float64"):
        before, after = curves(spec, VALUES), curves(spec, moved_values)
    for name in before:
        scale = np.max(np.abs(before[name]))
        assert np.all(np.isfinite(before[name]))
        assert np.max(np.abs(after[name] - before[name])) < 1e-7 * scale, name
    # a control: α alone moved by half as much changes the curves
    with numerics("float64"):
        alpha_only = curves(spec, dict(VALUES, alpha=np.sqrt(moved_values["alpha"] * VALUES["alpha"])))
    assert np.all(np.isfinite(alpha_only["total"]))
    assert np.max(np.abs(alpha_only["total"] - before["total"])) > 1e-3 * np.max(np.abs(before["total"]))
    inv0, inv1 = identifiable(VALUES, 1e6), identifiable(moved_values, 1e6)
    for key in inv0:
        assert inv1[key] == pytest.approx(inv0[key], rel=1e-12), key


def test_generators_are_null_directions_of_the_jacobian(spec):
    rng = np.random.default_rng(0)
    with numerics("float64"):
        clean = curves(spec, VALUES)
        Y = np.stack([clean["mechanism_1"], clean["mechanism_2"], clean["total"]])
        Y = Y + 0.01 * Y.std(axis=1, keepdims=True) * rng.standard_normal(Y.shape)
        theta = spec.unconstrained(VALUES)
        J = np.asarray(
            jax.jacfwd(lambda t: residuals(spec, TIGHT, t, U, Y, Y.std(axis=1)))(jnp.asarray(theta))
        )
    G = generators(spec, theta)
    assert G.shape == (len(EXACT_FREE), 2)
    assert np.linalg.norm(J @ G) < 1e-9 * np.linalg.norm(J) * np.linalg.norm(G)
    # exactly two null directions: the third singular value is far above them
    sv = np.linalg.svd(J, compute_uv=False)
    assert sv[-2] < 1e-12 * sv[0] and sv[-3] > 1e-9 * sv[0], sv  # measured: 8e-16 and 3e-7


def test_a_family_has_the_symmetries_it_frees():
    typical = spec_for(CURVES, free=TYPICAL_FREE)
    assert allowed(typical).shape[1] == 0  # q(0) = 1: none; α is determined
    assert moved(typical) == []
    assert spec_for(CURVES).free == EXACT_FREE  # the default family
    assert allowed(spec_for(CURVES, free=TYPICAL_FREE + Q0_NAMES)).shape[1] == 1  # c tied to b
    assert allowed(spec_for(CURVES, free=EXACT_FREE)).shape[1] == 2
    assert "alpha" in moved(spec_for(CURVES, free=EXACT_FREE)) and "mu1" not in moved(
        spec_for(CURVES, free=EXACT_FREE)
    )
    # dim_a free as well: the dimension level joins the group
    assert allowed(spec_for(CURVES, free=EXACT_FREE + ("dim_a",))).shape[1] == 3


def test_profiled_quantities_follow_the_family(spec):
    """The exact family profiles α (flat: moved by the symmetry) and α_eff, whose log-gradient is
    e_α + e_{q_a} + e_{q_d}; the typical family profiles α only (there α_eff = α)."""
    from bridge.identify import profiled_quantities

    names, V = profiled_quantities(spec, spec.unconstrained(VALUES), 1e6)
    assert names == ["mu1", "alpha", "alpha_eff", "tau_na", "ratio_bc", "ratio_d"]
    expected = np.zeros(len(EXACT_FREE))
    for n in ("alpha", "q0_a", "q0_d"):
        expected[EXACT_FREE.index(n)] = 1.0
    assert np.allclose(V[names.index("alpha_eff")], expected, atol=1e-12)
    # every profiled combination is invariant: its gradient is orthogonal to the symmetry directions
    G = generators(spec, spec.unconstrained(VALUES))
    assert np.allclose(V[[0, 2, 3, 4, 5]] @ G, 0.0, atol=1e-9)
    typical = spec_for(CURVES, free=TYPICAL_FREE)
    names_typical, _ = profiled_quantities(typical, typical.unconstrained(VALUES), 1e6)
    assert names_typical == ["mu1", "alpha", "tau_na", "ratio_bc", "ratio_d"]
