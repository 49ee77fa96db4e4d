"""Saddle report (SymPy) against independent oracles: explicit-component Hessians, the materialised
loss, and numerical escape times."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from toymodels.analysis import (
    escape_times,
    explicit_hessian_at_origin,
    fitted_exponent,
    predicted_escape_time,
    saddle_report,
)
from toymodels.analysis.cli import main
from toymodels.losses import loss_params, materialised_loss, tensor_model
from toymodels.precision import numerics


@pytest.mark.parametrize("N", [2, 3, 4, 5])
def test_report_structure(N):
    rep = saddle_report(N)
    assert rep.gradient_coefficient == 0
    assert rep.hessian_zero == (N >= 3)
    lead_minus, lead_plus = rep.leading_order
    assert sp.simplify(lead_minus + lead_plus) == 0
    # sign of the leading order for nonzero target entries and positive dims
    vals = {s: 1.3 for s in lead_minus.free_symbols}
    assert float(lead_minus.subs(vals)) < 0 < float(lead_plus.subs(vals))
    # the escape-time law
    sigma, z, n = sp.symbols("sigma z n", positive=True)
    expected = n ** sp.Rational(N, 2) * (sigma * z) ** (2 - N) / (N - 2) if N >= 3 else n * sp.log(1 / sigma)
    t_star = rep.escape_time.subs(
        {s: {"sigma": sigma, "z": z, "n": n}[s.name] for s in rep.escape_time.free_symbols}
    )
    assert sp.simplify(sp.expand_log(t_star - expected, force=True)) == 0


@pytest.mark.parametrize("N", [2, 3, 4])
def test_hessian_matches_explicit_components(N):
    """Hessian at 0 from explicit vector components (materialised tensors, dim 2 per vector)."""
    H, g = explicit_hessian_at_origin(N, dim=2)
    assert all(x == 0 for x in g)
    if N >= 3:
        assert H == sp.zeros(*H.shape)
        return
    # N = 2: nonzero eigenvalues ±|a*||b*|/(n_a n_b) with n = 2, as the report says
    rng = np.random.default_rng(0)
    star = {s: rng.normal() for s in H.free_symbols}
    eig = np.sort(np.linalg.eigvalsh(np.array(H.subs(star), dtype=float)))
    Ra = sum(v**2 for s, v in star.items() if s.name.startswith("astar"))
    Rb = sum(v**2 for s, v in star.items() if s.name.startswith("bstar"))
    rep = saddle_report(2)
    predicted = sorted(
        float(e.subs({sym: {"R_a": Ra, "R_b": Rb}.get(sym.name, 2.0) for sym in e.free_symbols}))
        for e in rep.hessian_eigenvalues
    )
    np.testing.assert_allclose([eig[0], eig[-1]], predicted, rtol=1e-10)
    np.testing.assert_allclose(eig[1:-1], 0, atol=1e-12)


@pytest.mark.parametrize("N", [3, 4])
def test_delta_along_directions_matches_materialised_loss(N):
    """ΔL along d∓ from the report equals the loss computed by materialising the tensors."""
    dims = (3,) * N
    model = tensor_model(dims)
    rep = saddle_report(N)
    rng = np.random.default_rng(1)
    with numerics("float64"):
        targets = {v: jnp.asarray(rng.normal(size=3)) for v in model.vectors}
        lp = loss_params(model)
        zero = {v: jnp.zeros(3) for v in model.vectors}
        L0 = materialised_loss(model, zero, targets, lp)
        eps = 0.37
        for sign, expr in ((+1, rep.delta_minus), (-1, rep.delta_plus)):
            direction = {v: jnp.zeros(3).at[1].set(targets[v][1]) for v in model.vectors}
            first = model.vectors[0]
            direction[first] = direction[first] * sign
            x = {v: eps * d for v, d in direction.items()}
            numeric = float(materialised_loss(model, x, targets, lp) - L0)
            subs = {s: float(targets[s.name[2:]][1]) for s in expr.free_symbols if s.name.startswith("t_")}
            subs |= {s: 3.0 for s in expr.free_symbols if s.name.startswith("n_")}
            subs |= {s: eps for s in expr.free_symbols if s.name == "epsilon"}
            np.testing.assert_allclose(float(expr.subs(subs)), numeric, rtol=1e-10)


def test_escape_time_scaling_n3_and_n2():
    """Numerics vs asymptotics: exponent −1 for N = 3, slope n = 20 against log(1/σ) for N = 2."""
    s3 = np.logspace(-4, -2, 3)
    t3 = escape_times(3, s3)
    assert abs(fitted_exponent(s3, t3, 3) + 1) < 2e-3
    np.testing.assert_allclose(t3 / predicted_escape_time(3, s3), 1, rtol=5e-3)
    s2 = np.logspace(-8, -4, 3)
    t2 = escape_times(2, s2)
    assert abs(fitted_exponent(s2, t2, 2) - 20.0) < 0.2


def test_cli(capsys):
    assert main(["--n", "3"]) == 0
    out = capsys.readouterr().out
    assert "Hessian at the origin vanishes identically" in out and "\\frac" in out
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --n:") and err.count("\n") == 1
    assert main(["--n", "1"]) == 2


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--phase-diagram", "/proc/icl_coopetition_test.png"], "--phase-diagram"),  # FileNotFoundError
        (["--phase-diagram", "OUT.xyz"], "--phase-diagram"),  # unknown image format
        (["--grid", "0", "--phase-diagram", "OUT.png"], "--grid"),  # IndexError
        (["--grid", "0"], "--grid"),
        (["--coopetition", "--mu1", "-0.1"], "--mu1"),  # a negative value is a value, not an option
        (["--coopetition", "--alpha", "inf"], "--alpha"),
        (["--coopetition", "--seed", "-1"], "--seed"),
        (["--coopetition", "--starts", "0"], "--starts"),
        (["--coopetition", "--dims", "20", "20", "20", "0"], "--dims"),
        (["--coopetition", "--dims", "20", "20", "20"], "--dims"),
        (["--n", "27"], "--n"),
        (["--n", "x"], "--n"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == 2 and err.startswith(f"error: {flag}:") and err.count("\n") == 1, err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_saddle_alias_is_the_analysis_cli(capsys):
    from toymodels.saddle import main as saddle_main

    assert saddle_main(["--grid", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --grid:")
