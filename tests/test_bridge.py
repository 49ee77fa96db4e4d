"""Bridge: parameter recovery on toy-generated curves, fit ≥ initial guess, profiles, the transience
verdict, loud failure, CLI end to end, bad input (held-out full-vector cases:
tests/test_bridge_recovery.py; CLI fuzzing: tests/test_fuzz_bridge_cli.py).

All fits share one compiled program (same curve set, number of evaluation points, starts and
iteration budget), so the suite compiles the fit once (and once more for the robust loss).
"""

from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from bridge.fitting import FitSettings, fit_curves
from bridge.identify import combinations
from bridge.logs import read_log
from bridge.optimise import OptimiserSettings
from bridge.spec import TYPICAL_FREE, FitSpec, spec_for
from bridge.synthetic import toy_generated_curves, write_synthetic_log
from bridge.verdict import peak_and_fade
from toymodels.errors import ConfigError
from transformer.log import write_log

CURVES = ["icl", "ciwl", "total"]
# dim_a is the fit's reference (the dimension level is not identifiable); the overlaps are signed,
# in the canonical sign class of bridge.starts.sign_classes (ε_bc > 0): P_aP_bP_c < 0 < P_dP_bP_c
TRUTH = dict(
    span=12000.0, mu1=0.15, alpha=0.08, dim_a=20.0, dim_bc=18.0, dim_d=120.0,
    eps_a=-0.2, eps_bc=0.2, eps_d=0.1,
)  # fmt: skip
SCALES = {"icl": 3.0, "ciwl": 4.0, "total": 20.0}
OFFSETS = {"icl": 0.5, "ciwl": 0.2, "total": 1.0}
SEEN = np.linspace(0, 1.6e6, 41)
# the truth above is a point of the typical family (q(0) = 1, c tied to b), fitted here with the screen;
# the default exact family with CMA-ES is tested on the held-out case (tests/test_bridge_recovery.py)
SETTINGS = FitSettings(
    n_starts=3,
    n_candidates=8,
    profile=False,
    search="screen",
    searches=1,
    optimiser=OptimiserSettings(adam_steps=20, lm_steps=120),
)
CLI_FLAGS = [
    "--family", "typical", "--search", "screen", "--searches", "1", "--starts", "3", "--candidates", "8",
    "--adam-steps", "20", "--lm-steps", "120", "--no-profile",
]  # fmt: skip
# noisy recovery: noise σ = NOISE × each curve's spread on 41 points (the fit's own standard errors
# are then ≲ 3% for every parameter)
NOISE = 0.001


@pytest.fixture(scope="module")
def spec():
    return spec_for(CURVES, free=TYPICAL_FREE)


@pytest.fixture(scope="module")
def clean_curves(spec):
    return toy_generated_curves(spec, TRUTH, SEEN, SCALES, OFFSETS)


@pytest.fixture(scope="module")
def clean_fit(spec, clean_curves):
    return fit_curves(clean_curves, spec, SETTINGS)


def rel_errors(result, truth):
    return {k: abs(result.params[k] - v) / abs(v) for k, v in truth.items()}


def assert_recovered(result, tol: float, tol_eps: float) -> None:
    """μ₁, α, the span and the dimension ratios within ``tol``; the overlaps ε, which the curves
    determine less well (measured: 10.7% off at 0.1% noise, 5.9% in the robust fit), within ``tol_eps``."""
    errs = rel_errors(result, TRUTH)
    assert max(v for k, v in errs.items() if not k.startswith("eps_")) < tol, errs
    assert max(v for k, v in errs.items() if k.startswith("eps_")) < tol_eps, errs


def test_noise_free_recovery(clean_fit):
    errs = rel_errors(clean_fit, TRUTH)
    assert max(errs.values()) < 1e-3, errs
    for name in CURVES:
        assert abs(clean_fit.scales[name] - SCALES[name]) / SCALES[name] < 1e-3
        assert abs(clean_fit.offsets[name] - OFFSETS[name]) < 1e-3 * SCALES[name]
        assert clean_fit.r2[name] > 1 - 1e-9
    assert clean_fit.params["time_scale"] == pytest.approx(SEEN[-1] / TRUTH["span"], rel=1e-3)
    assert clean_fit.converged and clean_fit.failure is None and clean_fit.basin_starts >= 1


def test_fit_never_worse_than_initial_guess(clean_fit):
    costs, initial = clean_fit.start_costs, clean_fit.start_initial_costs
    finite = np.isfinite(initial)
    assert np.all(costs[finite] <= initial[finite])
    assert clean_fit.cost <= clean_fit.initial_cost
    assert clean_fit.cost == np.min(costs)


def test_cmaes_search_is_deterministic_and_never_worse(spec, clean_curves):
    """The CMA-ES search (bridge.evolve): the same seed gives the same starts bit for bit; every
    instance returns a point at least as good as the screened start it evolved (here strictly better:
    the start is a random screen point, not the optimum); the record counts its evaluations."""
    from bridge.evolve import EvolutionSettings, evolve
    from bridge.starts import initial_guesses, screen_costs
    from toymodels.precision import numerics

    u = clean_curves.seen / clean_curves.seen[-1]
    Y = np.stack([clean_curves.values[n] for n in CURVES])
    sigma = Y.std(axis=1)
    evo = EvolutionSettings(instances=2, popsize=8, generations=15)
    with numerics("float64"):
        starts, screen = initial_guesses(spec, u, Y, sigma, 3, 8, 0, SETTINGS.solve)
        picked = np.asarray(screen["picked_costs"])
        a, record = evolve(spec, SETTINGS.solve, starts, picked, u, Y, sigma, evo, 0, 3)
        b, _ = evolve(spec, SETTINGS.solve, starts, picked, u, Y, sigma, evo, 0, 3)
        costs = np.asarray(screen_costs(spec, SETTINGS.solve, a, u, Y, sigma))
    assert a.shape == starts.shape and np.array_equal(a, b)
    assert np.all(costs[:2] < picked[:2]), (costs, picked)
    assert np.allclose(costs[:2], record["best_costs"], rtol=1e-9)
    assert record["evaluations"] == record["generations"] * 2 * 8 and record["generations"] <= 15


def test_search_step_budget_changes_no_successful_solve(spec, clean_curves):
    """The CMA-ES fit's step budget (EvolutionSettings.max_steps, 512 of the solve's 2048): a solve
    that succeeds within it is the same sequence of steps, so its cost is the same to the last bit;
    the points that need more steps are scored as failed. Checked on the screen's 800 random points."""
    from bridge.evolve import EvolutionSettings
    from bridge.starts import SPAN_GRID, random_starts, screen_costs, sign_classes
    from bridge.toy import SolveSettings
    from toymodels.precision import numerics

    full = SolveSettings()
    capped = EvolutionSettings().search_solve(full)
    assert capped.max_steps == 512 and capped.rtol == full.rtol
    assert EvolutionSettings().search_solve(SolveSettings(max_steps=100)).max_steps == 100
    u = clean_curves.seen / clean_curves.seen[-1]
    Y = np.stack([clean_curves.values[n] for n in CURVES])
    rows = [spec.unconstrained(dict(v, span=float(T))) for c in random_starts(spec, 8, 0)
            for v in sign_classes(spec, c) for T in SPAN_GRID]  # fmt: skip
    with numerics("float64"):
        args = (np.stack(rows), u, Y, Y.std(axis=1))
        a = np.asarray(screen_costs(spec, full, *args))
        b = np.asarray(screen_costs(spec, capped, *args))
    both = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(a[both], b[both])
    assert not np.any(np.isfinite(b) & ~np.isfinite(a))  # the budget only ever adds failures
    assert both.sum() > 100 and (np.isfinite(a) & ~np.isfinite(b)).sum() > 0  # both kinds occur


def test_screen_in_batches_gives_the_same_costs(spec, clean_curves):
    """bridge.starts.batched_costs on the screen's 800 random points (a CMA-ES fit screens in
    generation-size batches to run the evolution's compiled program): in input order whatever the
    batching (the last batch padded); a point's cost does not depend on the other points of its batch
    (the rows reversed: the same costs to the last bit); another batch size is another compiled
    program, whose costs agree to rounding (measured: 152 of 452 finite costs differ, by ≤ 4e-16
    relative, batches of 64 vs 128)."""
    from bridge.evolve import EvolutionSettings
    from bridge.starts import SPAN_GRID, batched_costs, random_starts, sign_classes
    from toymodels.precision import numerics

    solve = EvolutionSettings().search_solve(SETTINGS.solve)
    u = clean_curves.seen / clean_curves.seen[-1]
    Y = np.stack([clean_curves.values[n] for n in CURVES])
    rows = np.stack([spec.unconstrained(dict(v, span=float(T))) for c in random_starts(spec, 8, 0)
                     for v in sign_classes(spec, c) for T in SPAN_GRID])  # fmt: skip
    with numerics("float64"):
        a = batched_costs(spec, solve, rows, u, Y, Y.std(axis=1), 64)
        b = batched_costs(spec, solve, rows, u, Y, Y.std(axis=1), 128)
        c = batched_costs(spec, solve, rows[::-1], u, Y, Y.std(axis=1), 128)[::-1]
    assert a.shape == (800,) and np.isfinite(a).sum() > 100
    assert np.array_equal(b, c, equal_nan=True)
    ok = np.isfinite(a)
    assert np.array_equal(ok, np.isfinite(b))
    assert np.allclose(a[ok], b[ok], rtol=1e-12, atol=0)


def test_polish_continues_only_an_unconverged_best_basin(spec, clean_curves, clean_fit):
    """polish_best: starts cut short (2 LM iterations) are continued — the best two only, to
    convergence (one at the truth's cost), their iterations summed and their initial cost kept; a
    result whose best start converged comes back untouched. The continuation runs in the fit's own
    compiled program (no new compilation) and equals, to the last bit, a separate minimisation of the
    two picked starts alone with no Adam phase and the polish's LM budget."""
    import jax

    from bridge.optimise import minimise_starts, polish_best
    from toymodels.precision import numerics

    u = clean_curves.seen / clean_curves.seen[-1]
    Y = np.stack([clean_curves.values[n] for n in CURVES])
    args = (u, Y, Y.std(axis=1))
    short = dataclasses.replace(SETTINGS.optimiser, adam_steps=0, lm_steps=2)
    theta0 = np.stack([clean_fit.theta + d for d in (0.1, -0.08, 0.06)])
    with numerics("float64"):
        res = jax.device_get(minimise_starts(spec, SETTINGS.solve, short, theta0, *args))
        assert not np.any(res.converged)
        compiles = []

        def listener(event, secs, **kwargs):
            if event.endswith("backend_compile_duration"):
                compiles.append(event)

        jax.monitoring.register_event_duration_secs_listener(listener)
        try:
            more, picked = polish_best(spec, SETTINGS.solve, short, res, *args, 0.01)
            assert compiles == []  # no XLA compilation: the polish reused the program just run
            again, none = polish_best(spec, SETTINGS.solve, short, more, *args, 0.01)
            alone_opt = dataclasses.replace(short, adam_steps=0, lm_steps=short.polish_lm_steps)
            alone = jax.device_get(minimise_starts(spec, SETTINGS.solve, alone_opt, res.theta[picked], *args))
            assert compiles  # the listener sees a compilation (2 starts, other settings: another program)
        finally:
            jax.monitoring.unregister_event_duration_listener(listener)
    for name in ("theta", "cost", "residuals", "jacobian", "converged"):
        assert np.array_equal(getattr(more, name)[picked], getattr(alone, name)), name
    assert np.array_equal(more.iterations[picked], res.iterations[picked] + alone.iterations)
    assert picked == [int(i) for i in np.argsort(res.cost)[:2]]
    left = ({0, 1, 2} - set(picked)).pop()
    assert np.all(more.converged[picked]) and not more.converged[left]
    assert np.all(more.cost[picked] < res.cost[picked]) and more.cost[picked].min() < 1e-20
    assert more.cost[left] == res.cost[left]
    assert np.all(more.iterations[picked] > res.iterations[picked])
    assert np.array_equal(more.initial_cost, res.initial_cost)
    assert none == [] and again is more


def test_cmaes_fit_recovers_noise_free_truth(spec, clean_curves):
    """A fit whose starts come from CMA-ES reaches the noise-free truth as the screened fit does.

    With the full step budget (2048): with the default cap (512 steps on every solve before the final
    curves) this small search (8 candidates, 2 × 8 × 15 evaluations) ends converged in another optimum
    (dim_bc +119 %), because the cap changes which screened points are kept (docs/bridge.md, "Step
    budget")."""
    import dataclasses

    from bridge.evolve import EvolutionSettings

    evolution = EvolutionSettings(instances=2, popsize=8, generations=15, max_steps=SETTINGS.solve.max_steps)
    settings = dataclasses.replace(SETTINGS, search="cmaes", evolution=evolution)
    result = fit_curves(clean_curves, spec, settings)
    errs = rel_errors(result, TRUTH)
    assert result.converged and max(errs.values()) < 1e-3, errs
    assert result.screen["searches"][0]["cmaes"]["instances"] == 2


def test_independent_searches_keep_the_best_and_count_agreement(spec, clean_curves, clean_fit):
    """``searches = 2``: the first search is the one-search fit's (same seed, starts, compiled
    minimisation and polish — each search is polished on its own: its picks and iterations equal
    ``clean_fit``'s, its costs to rounding), the second draws with seed + 1000; the fit is
    the best of all 2 × n starts; ``searches_in_best_basin`` counts the searches with a start within
    1 % of the best, and the summary warns when it is not every search."""
    from bridge.report import fit_dict, summary_lines
    from bridge.searches import SEARCH_SEED_STRIDE

    two = fit_curves(clean_curves, spec, dataclasses.replace(SETTINGS, searches=2, workers=1))
    assert two.screen["workers"] == 1
    n = SETTINGS.n_starts
    assert two.start_costs.shape == (2 * n,)
    assert clean_fit.screen["polished"]  # the one-search fit was polished: so is the first search
    assert [i for i in two.screen["polished"] if i < n] == clean_fit.screen["polished"]
    # the same starts and iterations; the costs to rounding only: here 2 × 2 polished starts do not fit
    # in the 3 lanes of one search's batch, so the polish ran 4 lanes, another program (with the
    # defaults, 2 × 2 ≤ 8 lanes: the same program, the same bits); noise-free, two costs are ≈ 1e-27: zero
    np.testing.assert_allclose(two.start_costs[:n], clean_fit.start_costs, rtol=1e-6, atol=1e-20)
    # the polished starts ran in another program (above): their iterations to rounding too (a noise-free
    # cost at 1e-27 stops LM where rounding says); the others ran in the same program, to the bit
    same = [i for i in range(n) if i not in clean_fit.screen["polished"]]
    assert same and np.array_equal(two.iterations[same], clean_fit.iterations[same])
    assert np.array_equal(two.start_costs[same], clean_fit.start_costs[same])
    assert [s["seed"] for s in two.screen["searches"]] == [SETTINGS.seed, SETTINGS.seed + SEARCH_SEED_STRIDE]
    assert two.screen["searches"][0]["picked"] == clean_fit.screen["searches"][0]["picked"]
    assert two.screen["searches"][1]["picked"] != two.screen["searches"][0]["picked"]
    assert two.cost == np.min(two.start_costs) <= clean_fit.cost * (1 + 1e-6) + 1e-20
    per = two.start_costs.reshape(2, n)
    assert two.screen["search_best_costs"] == [float(c) for c in per.min(axis=1)]
    in_basin = np.any(per <= two.cost * 1.01, axis=1)
    assert two.searches_in_best_basin == int(in_basin.sum()) >= 1
    assert fit_dict(two)["fit"]["searches_in_best_basin"] == two.searches_in_best_basin
    lonely = dataclasses.replace(two, searches_in_best_basin=1)
    warning = [line for line in summary_lines(lonely) if "independent searches" in line]
    assert len(warning) == 1 and warning[0].strip().startswith("warning: 1 of 2 independent searches")
    assert not [line for line in summary_lines(clean_fit) if "independent searches" in line]
    # the searches in two threads at once: the same fit to the last bit
    threaded = fit_curves(clean_curves, spec, dataclasses.replace(SETTINGS, searches=2, workers=2))
    assert threaded.screen["workers"] == 2
    assert np.array_equal(threaded.start_costs, two.start_costs)
    assert np.array_equal(threaded.theta, two.theta) and np.array_equal(threaded.iterations, two.iterations)


def test_noisy_recovery_and_profiles(spec):
    """0.1% noise: the parameters within 5% (the overlaps within 20%); the profile intervals of μ₁,
    α and the identifiable combinations contain the truth; the dimension level is not determined."""
    import dataclasses

    curves = toy_generated_curves(spec, TRUTH, SEEN, SCALES, OFFSETS, noise=NOISE, seed=3)
    result = fit_curves(curves, spec, dataclasses.replace(SETTINGS, profile=True))
    assert_recovered(result, 0.05, 0.2)
    assert all(r > 0.99 for r in result.r2.values())
    ident = result.identifiability
    assert "dim_level" in ident["not_determined"]
    truth = combinations(TRUTH, SEEN[-1])
    profiles = ident["profile"]["parameters"]
    assert all(v["determined"] for v in profiles.values()), profiles
    # Five 95 % intervals all cover the truth with probability 0.95^5 = 0.77 only; at least four of
    # five do with probability 0.977 (a false alarm of ~2 %), which is what is asserted.
    missed = [k for k, v in profiles.items() if not v["lower"] <= truth[k] <= v["upper"]]
    assert len(profiles) == 5 and len(missed) <= 1, (missed, profiles, truth)


def test_transience_prediction(clean_fit):
    t = clean_fit.transience
    assert t["predicts_transience"] and t["predicted"]["learned"] and t["agrees"]
    obs = t["observed"]
    assert obs["learned"] and obs["fades"]
    # the toy's own peak (fine grid) lies within one evaluation interval of the data's minimum
    assert abs(t["predicted"]["peak_at"] - obs["peak_at"]) <= SEEN[1] - SEEN[0]


def test_transience_verdict_definition():
    x = np.arange(10.0)
    y = np.array([5, 3, 1, 0.5, 1, 2, 3, 4, 4, 4.0])
    pf = peak_and_fade(x, y)
    assert pf["peak_at"] == 3 and pf["fades"]
    # plateau = median(5, 3, 1) = 3, drop 2.5: fade level 0.5 + 1.25 = 1.75 on the running median
    assert pf["fade_at"] == pytest.approx(4 + (1.75 - 1) / (2 - 1))
    # an initial value above the plateau (a negative initial overlap, an initialisation transient)
    # does not set the reference: falls 3.5 → 2 (plateau) → 0.5, back to 2 = fully faded
    assert peak_and_fade(x, [3.5, 2.0, 2.0, 1.5, 0.5, 0.5, 1.0, 1.8, 2.0, 2.0])["fades"]
    assert not peak_and_fade(x, x)["learned"]
    # falls to 0.2 and climbs back to 0.8 (of 1): faded
    assert peak_and_fade(x, [1, 0.6, 0.2, 0.3, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8])["fades"]
    # a single high point after the minimum is noise, not a fade: the final level decides
    assert not peak_and_fade(x, [1, 0.6, 0.2, 0.9, 0.2, 0.2, 0.2, 0.21, 0.2, 0.2])["fades"]
    # the verdict is invariant under the affine maps that relate toy and transformer units
    for s, o in ((3.0, 0.5), (0.01, 7.0)):
        a, b = peak_and_fade(x, y), peak_and_fade(x, s * y + o)
        assert (a["learned"], a["fades"], a["peak_at"], a["fade_at"]) == (
            b["learned"], b["fades"], b["peak_at"], pytest.approx(b["fade_at"])
        )  # fmt: skip


def test_spec_transforms_roundtrip(spec):
    from toymodels.precision import numerics

    theta = spec.unconstrained(TRUTH)
    with numerics("float64"):
        phys = spec.physical(theta)
    for k, v in TRUTH.items():
        assert float(phys[k]) == pytest.approx(v, rel=1e-12)
    with pytest.raises(ConfigError, match="free"):
        FitSpec(free=("mu1",))
    with pytest.raises(ConfigError, match="mu2 must be"):
        spec_for(CURVES, fixed={"mu2": -1.0})
    with pytest.raises(ConfigError, match="eps_a must be"):
        spec_for(CURVES, free=("span", "mu1"), fixed={"eps_a": 1.5})


def test_every_point_of_the_exact_family_is_a_pair_of_real_vectors():
    """The overlap's coordinate is the initial cosine κ = ε/√q(0) (bridge.spec): for any θ,
    |ε_x| < √q_x(0), i.e. |P_x(0)| < √(Q_x(0) R_x) (Cauchy–Schwarz) and the initial overlap z_x of
    the toy is below √n_x; a value outside is refused, in one line, by ``unconstrained`` and by
    ``--fix``. (The former coordinate, ε itself in (−1, 1), let a fit end at a cosine of 2.57.)"""
    import jax.numpy as jnp

    from bridge.spec import EXACT_FREE, Q0_OF
    from toymodels.precision import numerics

    exact = spec_for(CURVES, free=EXACT_FREE)
    theta = np.random.default_rng(0).normal(scale=6.0, size=(200, len(EXACT_FREE)))
    with numerics("float64"):
        for t in theta:
            phys = exact.physical(jnp.asarray(t))
            for eps, q0 in Q0_OF.items():
                assert abs(float(phys[eps])) < np.sqrt(float(phys[q0])) * (1 + 1e-15)
            tp = exact.toy_params(phys)
            assert np.all(np.abs(np.asarray(tp.overlap)) <= np.sqrt(np.asarray(tp.dims)) * (1 + 1e-12))
    # the cosine, not ε, is what θ holds: the same θ with a 4× larger q(0) has a 2× larger ε
    values = dict(TRUTH, q0_a=1.0, q0_bc=1.0, q0_d=1.0, dim_c=18.0, eps_c=0.2, q0_c=1.0)
    t = exact.unconstrained(values)
    with numerics("float64"):
        twice = exact.physical(jnp.asarray(np.where(np.array(EXACT_FREE) == "q0_a", t + np.log(4.0), t)))
    assert float(twice["eps_a"]) == pytest.approx(2 * TRUTH["eps_a"], rel=1e-12)
    with pytest.raises(ConfigError, match="Cauchy"):
        exact.unconstrained(dict(values, q0_c=0.25, eps_c=0.6))
    with pytest.raises(ConfigError, match="eps_a is held at 0.1 while q0_a is free"):
        spec_for(CURVES, free=("span", "mu1", "q0_a"), fixed={"eps_a": 0.1})
    with pytest.raises(ConfigError, match="eps_d is held at 0.2236 while q0_d is free"):
        spec_for(CURVES, free=("span", "mu1", "q0_d"))  # ε_d at its default
    with pytest.raises(ConfigError, match="Cauchy"):
        spec_for(CURVES, free=("span", "mu1"), fixed={"eps_a": 0.6, "q0_a": 0.25})


def test_a_parameter_pinned_at_its_bound_is_reported(clean_fit):
    """``at_bound``: an initial cosine driven to ±1 (θ far out: tanh saturated) or a dimension driven
    to 1 is listed; interior points list nothing; the summary warns about a pinned parameter."""
    from bridge.report import summary_lines
    from bridge.spec import EXACT_FREE

    exact = spec_for(CURVES, free=EXACT_FREE)
    theta = np.zeros(len(EXACT_FREE))
    assert exact.at_bound(theta) == []
    assert exact.at_bound(np.full(len(EXACT_FREE), 5.0)) == []  # κ = tanh(0.074): interior
    pinned = theta.copy()
    pinned[EXACT_FREE.index("eps_bc")] = -12.0  # κ = −tanh(81): −1 to float64
    pinned[EXACT_FREE.index("dim_d")] = -20.0  # n = 1 + 2e-9
    pinned[EXACT_FREE.index("mu1")] = -50.0  # μ₁ = e^θ has no bound a step cannot leave
    assert exact.at_bound(pinned) == ["dim_d", "eps_bc"]
    assert not [line for line in summary_lines(clean_fit) if "bound of its range" in line]
    ident = dict(clean_fit.identifiability, at_bound=["eps_bc"])
    lines = summary_lines(dataclasses.replace(clean_fit, identifiability=ident))
    assert len([line for line in lines if line.strip().startswith("warning: eps_bc at the bound")]) == 1


def test_initial_norms_q0_set_the_initial_state():
    """q0_x = Q_x(0)/n_x per vector (b and c share q0_bc) with P_x(0) = ε_x n_x kept; the default
    q0 = 1 is the typical statistics the fit has always used."""
    import jax.numpy as jnp

    from bridge.spec import Q0_NAMES
    from bridge.toy import initial_state
    from toymodels.precision import numerics

    free = ("span", "mu1", "alpha", "dim_bc", "dim_d", "eps_a", "eps_bc", "eps_d", *Q0_NAMES)
    values = dict(TRUTH, q0_a=1.7, q0_bc=0.6, q0_d=1.1)
    q_spec = spec_for(CURVES, free=free)
    with numerics("float64"):
        state, params = initial_state(q_spec.toy_params(q_spec.physical(q_spec.unconstrained(values))))
        n = np.asarray(params.dims)
        np.testing.assert_allclose(np.asarray(state.Q) / n, [1.7, 0.6, 0.6, 1.1], rtol=1e-12)
        eps = [TRUTH["eps_a"], TRUTH["eps_bc"], TRUTH["eps_bc"], TRUTH["eps_d"]]
        np.testing.assert_allclose(np.asarray(state.P) / n, eps, rtol=1e-12)
        default = dict(TRUTH, dim_a=20.0, mu2=0.0, q0_a=1.0, q0_bc=1.0, q0_d=1.0)
        typical_spec = spec_for(CURVES, free=TYPICAL_FREE)
        plain = typical_spec.toy_params({k: jnp.asarray(v) for k, v in default.items()})
        typical, _ = initial_state(plain)
        np.testing.assert_allclose(np.asarray(typical.Q), np.asarray(params.dims), rtol=1e-12)
    with pytest.raises(ConfigError, match="q0_bc must be"):
        spec_for(CURVES, free=TYPICAL_FREE, fixed={"q0_bc": 0.0})
    # c's own parameters: tied to b's unless named (free or fixed)
    split = spec_for(CURVES, free=(*free, "dim_c", "eps_c"), fixed={"q0_c": 2.5})
    values = dict(values, dim_c=40.0, eps_c=-0.3)
    with numerics("float64"):
        phys = split.physical(split.unconstrained(values))
        state, params = initial_state(split.toy_params(phys))
        n = np.asarray(params.dims)
        np.testing.assert_allclose(n, [20.0, 18.0, 40.0, 120.0], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(state.P) / n, [-0.2, 0.2, -0.3, 0.1], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(state.Q) / n, [1.7, 0.6, 2.5, 1.1], rtol=1e-12)
        tied = q_spec.physical(q_spec.unconstrained(values))
        assert float(tied["dim_c"]) == float(tied["dim_bc"]) and float(tied["eps_c"]) == float(tied["eps_bc"])


def test_projection_and_robust_transform():
    import jax.numpy as jnp

    from bridge.objective import huber, project_linear
    from toymodels.precision import numerics

    m = np.linspace(0.0, 1.0, 11)
    with numerics("float64"):
        s, o = project_linear(jnp.asarray(m), jnp.asarray(3 * m + 0.5), jnp.ones(11))
        assert float(s) == pytest.approx(3.0) and float(o) == pytest.approx(0.5)
        s, o = project_linear(jnp.asarray(m), jnp.asarray(3 * m - 0.5), jnp.ones(11))  # offset bound active
        assert float(o) == 0.0 and float(s) == pytest.approx(np.sum(m * (3 * m - 0.5)) / np.sum(m * m))
        s, o = project_linear(jnp.asarray(m), jnp.asarray(2.0 - m), jnp.ones(11))  # anti-correlated
        assert 0 < float(s) <= 1e-12 and float(o) == pytest.approx(1.5)
        e = jnp.asarray([-3.0, -0.5, 0.0, 0.2, 4.0])
        r = jnp.sign(e) * jnp.sqrt(2 * huber(e, 1.0))
        np.testing.assert_allclose(0.5 * np.asarray(r) ** 2, [2.5, 0.125, 0.0, 0.02, 3.5])


# ------------------------------------------------------------------ logs and CLI


def test_read_log_layout(tmp_path, clean_curves):
    path = tmp_path / "log.h5"
    write_synthetic_log(path, clean_curves)
    c = read_log(path, CURVES)
    np.testing.assert_allclose(c.seen, SEEN)
    for name in CURVES:
        np.testing.assert_allclose(c.values[name], clean_curves.values[name], rtol=1e-6)
    assert c.sources["ciwl"] == "iwl_copy_avail/loss" and c.sources["total"] == "train_eval/loss"
    part = read_log(path, CURVES, skip_first=1, max_seen=SEEN[30])
    np.testing.assert_allclose(part.seen, SEEN[1:31])
    np.testing.assert_allclose(part.values["icl"], clean_curves.values["icl"][1:31], rtol=1e-6)
    err = read_log(path, ["icl"], metric="error")
    np.testing.assert_allclose(err.values["icl"], 1 - np.exp(-clean_curves.values["icl"]), rtol=1e-5)


def test_total_from_per_step_train_loss(tmp_path):
    seen = np.arange(0, 1000, 100)
    steps = np.arange(1, 1000) + 0.0  # sequences seen after each step (batch 1)
    loss = 10.0 / (1 + steps / 100)
    ev = {"icl": {"loss": np.ones((10, 2)) * np.linspace(2, 1, 10)[:, None]}}
    write_log(tmp_path / "log.h5", seen, ev, train_loss=(steps, loss))
    c = read_log(tmp_path / "log.h5", ["icl", "total"])
    assert c.sources["total"].startswith("train_loss")
    assert c.values["total"][1] == pytest.approx(loss[:100].mean(), rel=1e-6)
    assert c.values["total"][0] == pytest.approx(loss[0], rel=1e-6)


def test_cli_end_to_end(tmp_path, clean_curves, capsys):
    from bridge.fit import main

    log = tmp_path / "run" / "log.h5"
    log.parent.mkdir()
    write_synthetic_log(log, clean_curves)
    out = tmp_path / "fit"
    assert main([str(log), "--out", str(out), *CLI_FLAGS]) == 0
    d = json.loads((out / "fit.json").read_text())
    for key in ("mu1", "mu2", "alpha", "dims", "time_scale", "curves", "stderr", "transience"):
        assert key in d
    assert set(d["dims"]) == {"a", "b", "c", "d"}
    assert d["mu1"] == pytest.approx(TRUTH["mu1"], rel=1e-3)
    assert d["dims"]["d"] == pytest.approx(TRUTH["dim_d"], rel=1e-3)
    for name in CURVES:
        assert set(d["curves"][name]) >= {"scale", "offset", "r2"}
        assert d["curves"][name]["r2"] > 0.999
    assert d["converged"] is True and d["failure"] is None
    assert d["eps"]["a"] == pytest.approx(TRUTH["eps_a"], rel=1e-3)
    assert (out / "fit.png").stat().st_size > 10_000
    assert sorted(os.listdir(out)) == ["fit.json", "fit.png"]  # no temporary files left
    assert "R² = 1.0000" in capsys.readouterr().out


def test_failure_is_loud(tmp_path, clean_fit, clean_curves, capsys, monkeypatch):
    """A fit that did not converge: one line, exit 3, fit.json with converged = false, no table."""
    import dataclasses

    import bridge.fit
    from bridge.fitting import failure_reason

    inf = np.inf
    conv = np.array([True, False])
    assert failure_reason(np.array([inf, inf]), np.array([inf, inf]), conv, 0, 1.0).startswith("every start")
    none = np.array([False, False])
    assert "no start converged" in failure_reason(np.array([1.0, 2.0]), np.array([3.0, 3.0]), none, 0, 1.0)
    assert "condition number" in failure_reason(np.array([1.0, 2.0]), np.array([3.0, 3.0]), conv, 0, inf)
    assert "no better" in failure_reason(np.array([3.0, 2.0]), np.array([3.0, 3.0]), conv, 0, 10.0)
    assert failure_reason(np.array([1.0, 2.0]), np.array([3.0, 3.0]), conv, 0, 10.0) is None

    failed = dataclasses.replace(clean_fit, converged=False, failure="no start converged (test)")
    monkeypatch.setattr(bridge.fit, "fit_curves", lambda *a, **k: failed)
    log = tmp_path / "log.h5"
    write_synthetic_log(log, clean_curves)
    out = tmp_path / "fit"
    assert bridge.fit.main([str(log), "--out", str(out), *CLI_FLAGS]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""  # no R² table, no parameters
    err = captured.err.strip()
    assert "\n" not in err and err.startswith("error: fit did not converge: no start converged (test)")
    d = json.loads((out / "fit.json").read_text())
    assert d["converged"] is False and d["failure"] == "no start converged (test)"
    assert sorted(os.listdir(out)) == ["fit.json"]
    # bridge.compare: the failed run is marked, its directory holds fit.json only (no figure)
    import bridge.compare

    (tmp_path / "run").mkdir()
    write_synthetic_log(tmp_path / "run" / "log.h5", clean_curves)
    cmp_out = tmp_path / "cmp"
    assert bridge.compare.main([str(tmp_path / "run"), "--out", str(cmp_out), *CLI_FLAGS]) == 3
    assert "| mu1 | failed |" in capsys.readouterr().out
    assert sorted(os.listdir(cmp_out / "run")) == ["fit.json"]


def test_condition_number_from_the_singular_values():
    """cond(JᵀJ) = (s_max/s_min)² from J's singular values, accurate where JᵀJ's eigenvalues are not
    (cond(JᵀJ) ≈ 1e20, beyond 1/ε: eigvalsh returns a smallest eigenvalue of either sign); +inf
    for a J that is rank-deficient to working precision (a column that is a combination of others)."""
    from bridge.fitting import condition_number

    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(480, 6)))
    V, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    s = np.array([1.0, 0.3, 0.1, 1e-3, 1e-6, 1e-10])
    J = U @ np.diag(s) @ V.T
    assert condition_number(J) == pytest.approx(1e20, rel=1e-4)
    assert condition_number(np.eye(3)) == 1.0
    flat = np.column_stack([J, J[:, 0] - 2.0 * J[:, 3]])
    assert condition_number(flat) == np.inf
    assert condition_number(np.full((4, 2), np.nan)) == np.inf


def _bad_logs(tmp_path, clean_curves):
    """name → (path, expected fragment of the error)."""
    good = {"train_eval", "icl", "iwl_copy_avail"}
    cases = {}
    p = tmp_path / "missing.h5"
    write_synthetic_log(p, clean_curves.select(["icl", "total"]))
    cases["missing evaluator"] = (p, "iwl_copy_avail")
    p = tmp_path / "short.h5"
    short = type(clean_curves)(seen=SEEN[:5], values={k: v[:5] for k, v in clean_curves.values.items()})
    write_synthetic_log(p, short)
    cases["too few points"] = (p, "too few evaluation points")
    p = tmp_path / "nan.h5"
    write_synthetic_log(p, clean_curves)
    with h5py.File(p, "a") as f:
        f["icl"]["loss"][7, 0] = np.nan
    cases["non-finite"] = (p, "non-finite")
    p = tmp_path / "garbage.h5"
    p.write_bytes(b"not an hdf5 file")
    cases["unreadable"] = (p, "cannot read")
    cases["absent"] = (tmp_path / "nope.h5", "no such file")
    assert good
    return cases


def test_cli_bad_input_exit_2(tmp_path, clean_curves, capsys):
    from bridge.fit import main

    for name, (path, fragment) in _bad_logs(tmp_path, clean_curves).items():
        out = tmp_path / ("out_" + name.replace(" ", "_"))
        assert main([str(path), "--out", str(out), *CLI_FLAGS]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("error: log: ") and fragment in err, (name, err)
        assert not out.exists(), name
    log = tmp_path / "ok.h5"
    write_synthetic_log(log, clean_curves)
    for argv, param in (
        (["--curves", "icl,bogus"], "--curves"),
        (["--fix", "alpha"], "--fix"),
        (["--free", "mu1,alpha"], "--free"),
        (["--robust", "-1"], "--robust"),
        (["--family", "exact", "--free", "mu1,alpha"], "--free"),
        (["--search", "cmaes", "--cma-popsize", "2"], "--cma-popsize"),
        (["--search", "cmaes", "--cma-generations", "0"], "--cma-generations"),
        (["--cma-max-steps", "0"], "--cma-max-steps"),
        (["--searches", "0"], "--searches"),
        (["--workers", "0"], "--workers"),
        (["--free", "span,mu1", "--fix", "eps_a=0.6", "--fix", "q0_a=0.25"], "--fix"),
    ):
        assert main([str(log), "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {param}: ") and "\n" not in err, err
    with pytest.raises(SystemExit) as e:
        main([str(log)])  # --out missing: argparse, one line, exit 2
    assert e.value.code == 2


def test_compare_cli(tmp_path, spec, clean_curves, capsys):
    from bridge.compare import main

    runs = []
    for name, mu1 in (("plain", TRUTH["mu1"]), ("matched", 0.05)):
        curves = (
            clean_curves
            if name == "plain"
            else toy_generated_curves(spec, dict(TRUTH, mu1=mu1), SEEN, SCALES, OFFSETS)
        )
        (tmp_path / name).mkdir()
        write_synthetic_log(tmp_path / name / "log.h5", curves)
        runs.append(str(tmp_path / name))
    out = tmp_path / "cmp"
    assert main([*runs, "--out", str(out), "--no-plot", *CLI_FLAGS]) == 0
    table = capsys.readouterr().out
    assert "| parameter | plain | matched |" in table
    d = json.loads((out / "compare.json").read_text())
    assert d["plain"]["mu1"] == pytest.approx(TRUTH["mu1"], rel=1e-3)
    assert d["matched"]["mu1"] == pytest.approx(0.05, rel=1e-3)
    assert (out / "compare.md").exists() and (out / "matched" / "fit.json").exists()
    assert main([runs[0], str(tmp_path / "nowhere")]) == 2


def test_integer_refinement(clean_fit):
    import dataclasses

    from bridge.refine import integer_neighbours, refine_integer

    assert (
        integer_neighbours(17.3) == [17, 18]
        and integer_neighbours(18.0) == [18]
        and integer_neighbours(0.4) == [1]
    )
    # the truth's dimensions are integers: round the (1e-13-accurate) fit so that one combination
    # of dimensions is simulated, with two seeds of the full-vector model
    params = dict(
        clean_fit.params, **{k: float(round(clean_fit.params[k])) for k in ("dim_a", "dim_bc", "dim_d")}
    )
    ref = refine_integer(dataclasses.replace(clean_fit, params=params), seeds=(0, 1))
    assert [c["seed"] for c in sorted(ref.candidates, key=lambda c: c["seed"])] == [0, 1]
    assert ref.candidates[0]["cost"] <= ref.candidates[1]["cost"]
    assert ref.best["dims"] == {"a": 20, "b": 18, "c": 18, "d": 120}
    # the full-vector seeds ignore the fitted overlaps ε (refine draws its own), so no R² is promised
    assert all(np.isfinite(r) for r in ref.best["r2"].values()), ref.best["r2"]
    assert ref.best["cost"] >= ref.continuous_cost
    json.dumps(ref.to_dict())


def test_robust_fit_resists_outliers(spec):
    """Three gross outliers (30% of a curve's spread): least squares is pulled far off, the Huber
    loss (δ = 0.01 σ, 10× the noise) recovers μ₁, α, the span and the dimension ratios within 5% and
    the overlaps within 20% (measured before the overlaps were fitted: LS 118%, Huber 4.8%)."""
    import dataclasses

    curves = toy_generated_curves(spec, TRUTH, SEEN, SCALES, OFFSETS, noise=NOISE, seed=3)
    values = {k: v.copy() for k, v in curves.values.items()}
    for name, i in (("icl", 12), ("ciwl", 25), ("total", 33)):
        values[name][i] += 0.3 * np.ptp(values[name])
    curves = dataclasses.replace(curves, values=values)
    robust = fit_curves(curves, spec_for(CURVES, free=TYPICAL_FREE, robust=0.01), SETTINGS)
    assert_recovered(robust, 0.05, 0.2)
