r"""Held-out recovery cases: curves from the *full-vector* gradient-descent toy, fitted blind.

A case is one toy run — dims (n_a, n_b, n_c, n_d), μ₁, α (μ₂ = 0), a seed of the paper's PRNG,
plain GD with η = 1 until the loss < 10⁻⁶ or 16000 steps (:func:`toymodels.dynamics.simulate`) —
observed like a transformer run: ``n_eval`` evaluations evenly spaced over the run (to its stop
step), time mapped to sequences seen with a time scale τ (log-uniform in [500, 5000] sequences per
step), each curve mapped affinely (scale log-uniform in [0.5, 20], offset uniform in [0, 2]) and
Gaussian noise of standard deviation ``noise`` (uniform in [1%, 2%]) × the curve's standard
deviation added. Nothing of this is given to the fit.

The truth a fit is scored against (:class:`HeldOutCase`): μ₁ and α as simulated, and — because a
real seed has R_x = |x*|² ≠ n_x — their values in the typical-statistics family the fit uses
(docs/bridge.md, "Identifiability"): with r_x = R_x/n_x, the seed's curves equal (up to the curves'
affine maps and per-vector time constants) those of the family with μ₁' = μ₁/(r_a r_b r_c) and
α' = α/(r_b r_c)², started at ε_x = P_x(0)/R_x, q_x(0) = Q_x(0)/R_x (the fit fixes q(0) = 1).
The ICL-loss minimum and fade times are read from the noise-free curve at every GD step with the
verdict of :mod:`bridge.verdict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from toymodels.dynamics import simulate
from toymodels.init import draw_vectors
from toymodels.losses import coopetition_model, loss_params
from toymodels.methods import GradientDescent
from toymodels.precision import numerics

from .logs import Curves
from .verdict import peak_and_fade

CURVE_OF = {"icl": "mechanism_1_loss", "ciwl": "mechanism_2_loss", "total": "loss"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One toy configuration and its seeds."""

    name: str
    dims: tuple[int, int, int, int] = (20, 20, 20, 160)
    mu1: float = 0.1
    alpha: float = 0.1
    seeds: tuple[int, ...] = (0,)


# the paper's setting (10 seeds) and a few others (μ₁ ∈ {0.05, 0.2}, α ∈ {0.03, 0.3}, other dims)
SETTINGS = (
    Setting("paper", seeds=tuple(range(10))),
    Setting("mu1=0.05", mu1=0.05, seeds=(0,)),
    Setting("mu1=0.2", mu1=0.2, seeds=(1,)),
    Setting("alpha=0.03", alpha=0.03, seeds=(2,)),
    Setting("alpha=0.3", alpha=0.3, seeds=(3,)),
    Setting("dims 30/15/15/240", dims=(30, 15, 15, 240), seeds=(4,)),
    Setting("dims 10/25/25/80", dims=(10, 25, 25, 80), seeds=(5,)),
)


@dataclasses.dataclass
class HeldOutCase:
    """Observed curves and the truth they came from (module docstring)."""

    name: str
    curves: Curves
    truth: dict[str, Any]


def _runs(setting: Setting, steps: int):
    model = coopetition_model(setting.dims)
    with numerics("float64"):
        targets, init = draw_vectors(model, list(setting.seeds))
    method = GradientDescent(lr=1.0, steps=steps, stop_loss=1e-6)
    res = simulate(model, method, targets, init, loss_params(model, (setting.mu1, 0.0), setting.alpha))
    return res, targets, init


def heldout_cases(
    settings: Sequence[Setting] = SETTINGS,
    n_eval: int = 160,
    steps: int = 16000,
    seed: int = 0,
) -> list[HeldOutCase]:
    """Every (setting, seed) as a :class:`HeldOutCase` (module docstring); deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    cases = []
    for st in settings:
        res, targets, init = _runs(st, steps)
        for i, s in enumerate(st.seeds):
            stop = int(res.stop[i])
            end = stop if stop > 0 else steps
            step_idx = np.round(np.linspace(0, end, n_eval)).astype(int)
            tau = float(np.exp(rng.uniform(np.log(500), np.log(5000))))
            noise = float(rng.uniform(0.01, 0.02))
            values, maps = {}, {}
            for name, measure in CURVE_OF.items():
                clean = np.asarray(res[measure][i], dtype=np.float64)[step_idx]
                scale = float(np.exp(rng.uniform(np.log(0.5), np.log(20))))
                offset = float(rng.uniform(0.0, 2.0))
                y = scale * clean + offset
                values[name] = y + noise * np.std(y) * rng.standard_normal(y.shape)
                maps[name] = (scale, offset)
            seen = tau * step_idx.astype(np.float64)
            dense = np.asarray(res["mechanism_1_loss"][i][: end + 1], dtype=np.float64)
            verdict = peak_and_fade(tau * np.arange(end + 1.0), dense)
            r = {v: float(np.sum(np.asarray(targets[v][i]) ** 2)) / n for v, n in zip("abcd", st.dims)}
            P0 = {v: float(np.dot(np.asarray(targets[v][i]), np.asarray(init[v][i]))) for v in "abcd"}
            Q0 = {v: float(np.sum(np.asarray(init[v][i]) ** 2)) for v in "abcd"}
            q0 = {v: Q0[v] / (r[v] * n) for v, n in zip("abcd", st.dims)}
            truth = {
                "setting": st.name,
                "seed": int(s),
                "dims": st.dims,
                "mu1": st.mu1,
                "alpha": st.alpha,
                "mu1_equivalent": st.mu1 / (r["a"] * r["b"] * r["c"]),
                "alpha_equivalent": st.alpha / (r["b"] * r["c"]) ** 2,
                "eps": {v: P0[v] / (r[v] * n) for v, n in zip("abcd", st.dims)},  # b, c: not one ε_bc
                "r": r,  # R_x / n_x
                "q0": q0,  # Q_x(0)/R_x (the default fit: 1)
                # the identifiable competition strength α'·q_a(0)·q_d(0) (bridge.symmetry)
                "alpha_eff": st.alpha / (r["b"] * r["c"]) ** 2 * q0["a"] * q0["d"],
                "time_scale": tau,
                "noise": noise,
                "maps": maps,
                "stop_step": stop,
                "fades": verdict["fades"],
                "learned": verdict["learned"],
                "peak_at": verdict["peak_at"],
                "fade_at": verdict["fade_at"],
            }
            curves = Curves(seen=seen, values=values, metric="loss", source=f"held-out {st.name} seed {s}")
            cases.append(HeldOutCase(name=f"{st.name} s{s}", curves=curves, truth=truth))
    return cases


def score(result, truth: dict[str, Any]) -> dict[str, Any]:
    """A fit against its case's truth: R² per curve, relative errors of μ₁, α (raw and equivalent),
    transience agreement and the relative errors of the predicted ICL-loss minimum and fade times;
    with profiles, whether μ₁, α and α_eff are determined (95 % interval closed on both sides) and
    whether the interval holds the equivalent truth μ₁', α', α_eff (None without profiles).
    ``meets`` applies the issue's targets to μ₁ and α; ``meets_identifiable`` applies them to what
    loss curves can determine, μ₁' (the seed's equivalent) and α_eff = α'·q_a(0)·q_d(0)."""
    pred = result.transience["predicted"]
    out = {
        "converged": bool(result.converged),
        "r2_min": float(min(result.r2.values())),
        "mu1_err": result.params["mu1"] / truth["mu1"] - 1,
        "alpha_err": result.params["alpha"] / truth["alpha"] - 1,
        "mu1_eq_err": result.params["mu1"] / truth["mu1_equivalent"] - 1,
        "alpha_eq_err": result.params["alpha"] / truth["alpha_equivalent"] - 1,
        "alpha_eff_err": result.identifiability["combinations"]["alpha_eff"] / truth["alpha_eff"] - 1,
        "fades_true": bool(truth["fades"]),
        "fades_pred": bool(pred["fades"]),
        "peak_err": pred["peak_at"] / truth["peak_at"] - 1 if truth["learned"] else np.nan,
        "fade_err": pred["fade_at"] / truth["fade_at"] - 1 if truth["fades"] else np.nan,
        "basin": int(result.basin_starts),
        "searches": f"{result.searches_in_best_basin}/{result.settings.searches}",
        "seconds": float(result.seconds),
    }
    prof = result.identifiability.get("profile", {}).get("parameters", {})
    # α_eff is profiled only where it differs from α (free initial norms of a or d)
    for key, profiled, true in (
        ("mu1", "mu1", truth["mu1_equivalent"]),
        ("alpha", "alpha", truth["alpha_equivalent"]),
        ("alpha_eff", "alpha_eff" if "alpha_eff" in prof else "alpha", truth["alpha_eff"]),
    ):
        # the 95 % profile interval: determined (both ends closed) and whether it holds the truth
        iv = prof.get(profiled)
        out[f"{key}_determined"] = None if iv is None else bool(iv["determined"])
        out[f"{key}_covered"] = None if iv is None else _holds(iv, true)
        out[f"{key}_interval"] = (
            None
            if iv is None
            else tuple(np.nan if iv[end] is None else iv[end] / true - 1 for end in ("lower", "upper"))
        )  # relative to the truth

    def meets(mu_err: float, alpha_err: float) -> bool:
        return bool(
            out["converged"]
            and out["r2_min"] >= 0.98
            and abs(mu_err) <= 0.25
            and abs(alpha_err) <= 0.25
            and out["fades_true"] == out["fades_pred"]
            and (not truth["learned"] or abs(out["peak_err"]) <= 0.10)
            and (not truth["fades"] or abs(out["fade_err"]) <= 0.10)
        )

    out["meets"] = meets(out["mu1_err"], out["alpha_err"])
    # the same targets for what the curves can determine: μ₁' for μ₁ and α_eff for α
    out["meets_identifiable"] = meets(out["mu1_eq_err"], out["alpha_eff_err"])
    return out


def _holds(interval: dict[str, Any], value: float) -> bool:
    """Whether a profile interval (an end None = open on that side) holds ``value``."""
    lo, hi = interval["lower"], interval["upper"]
    return bool((lo is None or lo <= value) and (hi is None or value <= hi))


__all__ = ["CURVE_OF", "SETTINGS", "HeldOutCase", "Setting", "heldout_cases", "score"]
