"""Held-out recovery in CI: one case of the test of record (benchmarks/bridge_recovery.py has all).

The published run — the paper setting (dims 20/20/20/160, μ₁ = α = 0.1, GD η = 1), seed 7 (thesis
Fig. 5.9a) — simulated with the full-vector toy, observed like a transformer run (160
evaluations, random time scale in [500, 5000], random affine loss maps, 1–2% noise;
:func:`bridge.heldout.heldout_cases`) and fitted blind with the defaults (the exact family,
CMA-ES; no profiles). Issue 19's targets, applied to what loss curves can determine: every curve
R² ≥ 0.98; μ₁' (the seed's equivalent μ₁) and α_eff = α'·q_a(0)·q_d(0) within 25%; transience
predicted exactly when the curves show it; the ICL-loss minimum and fade times within 10%. α itself
is moved by the exact family's symmetry (:mod:`bridge.symmetry`): the fit must say it is not
determined rather than print it as a result.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge.fitting import FitSettings, fit_curves
from bridge.heldout import Setting, heldout_cases, score
from bridge.spec import EXACT_FREE, spec_for


@pytest.fixture(scope="module")
def case_and_fit():
    case = heldout_cases([Setting("paper", seeds=(7,))])[0]
    result = fit_curves(case.curves, spec_for(["icl", "ciwl", "total"]), FitSettings(profile=False))
    return case, result


def test_case_is_what_it_claims(case_and_fit):
    case, _ = case_and_fit
    t = case.truth
    assert case.curves.n_points == 160 and 500 <= t["time_scale"] <= 5000 and 0.01 <= t["noise"] <= 0.02
    # seed 7 is the published transient run: ICL minimum near step 5660, stop at step 9620
    assert t["stop_step"] == 9620 and t["fades"]
    assert t["peak_at"] / t["time_scale"] == pytest.approx(5660, rel=0.01)


def test_blind_fit_meets_the_identifiable_targets(case_and_fit):
    case, result = case_and_fit
    assert result.spec.free == EXACT_FREE and result.settings.search == "cmaes"  # the defaults
    s = score(result, case.truth)
    assert s["converged"], result.failure
    assert s["r2_min"] >= 0.98, s
    assert s["fades_pred"] == s["fades_true"], s
    assert abs(s["peak_err"]) <= 0.10 and abs(s["fade_err"]) <= 0.10, s
    assert abs(s["mu1_eq_err"]) <= 0.25 and abs(s["alpha_eff_err"]) <= 0.25, s
    assert s["meets_identifiable"]
    assert np.isfinite(result.condition_number)


def test_alpha_is_reported_not_determined(case_and_fit):
    """α (and each initial norm and dimension the symmetry moves) is listed as not determined, with
    no standard error; μ₁ and α_eff, which the curves determine, are not."""
    _, result = case_and_fit
    nd = result.identifiability["not_determined"]
    assert "alpha" in nd and np.isnan(result.stderr["alpha"])
    assert "mu1" not in nd and np.isfinite(result.stderr["mu1"])
    assert result.identifiability["symmetries"] == 2
    assert np.isfinite(result.identifiability["combinations"]["alpha_eff"])
