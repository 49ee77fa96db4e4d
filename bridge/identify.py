r"""What the data determine: profile-likelihood intervals and the identifiable combinations.

Degeneracy (docs/bridge.md, "Identifiability"). In normalised statistics p = P/n, q = Q/n, r = R/n
the reduced flow of vector x is a dimension-free field slowed by 1/n_x, started at p_x(0) = ε_x. So
the curves depend on the dimensions and the time scale τ only through the time constants τ·n_x,
and on the seed only through the ε_x: multiplying every n by k and τ by 1/k leaves them unchanged.
The identifiable combinations reported are

* ``tau_na`` = τ·n_a·q_a(0): sequences seen per unit of a's normalised time (at a's initial norm);
* ``ratio_bc`` = n_bc q_bc(0)/(n_a q_a(0)) and ``ratio_d`` = n_d q_d(0)/(n_a q_a(0)): the relative
  speeds of the vectors;
* μ₁, α and ``alpha_eff`` = α·q_a(0)·q_d(0) (in the units of the typical statistics R = n, see
  docs/bridge.md for real seeds);

and the dimension level n_a is *not determined* (fixed by convention, :data:`bridge.spec.DIM_A_REFERENCE`).
With the initial norms q(0) = 1 (the default family) ``alpha_eff`` = α and the others are the plain
ratios; where a family frees the initial norms, the target-factorisation symmetry
(:mod:`bridge.symmetry`) makes α itself, and the plain ratios, undetermined, and these invariant
combinations are what the curves determine.

Profile likelihood. For each profiled quantity c (a free parameter's value or a combination) with
log-gradient v = ∂ log c/∂θ at the optimum, and each offset δ in :data:`OFFSETS`, the cost is
re-minimised with v·θ pinned to v·θ̂ + δ (an anchor residual of weight :data:`ANCHOR_WEIGHT`, the
fit's compiled program and Levenberg–Marquardt from θ̂ + δ v/|v|²). With the Gaussian likelihood and
σ² estimated by ŝ² = 2·cost/(m − p), the 95% interval is {c : cost_profile − cost_min ≤
½·χ²₁(0.95)·ŝ²}; the crossing is interpolated linearly in √(cost increase) between grid points
(exact for a quadratic profile) and reported at the value of log c interpolated between the
re-minimised points (c is evaluated there, not extrapolated from the pin). A side on which the
profile never reaches the threshold within the grid (a factor ≈ e^3 ≈ 20) is open: the quantity is
*not determined* on that side. A quantity moved by an exact symmetry of the family
(:mod:`bridge.symmetry`: its log-gradient is not orthogonal to the symmetry directions) has a flat
profile whatever the data; it is not profiled but reported open on both sides with
``exact_symmetry: true`` (re-minimising along a curved orbit from a pinned start is also where LM
is least reliable: a first run reported such a profile as closed).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.precision import numerics

from .optimise import Anchor, OptimiserSettings, minimise_starts
from .spec import FitSpec
from .symmetry import identifiable, moved
from .toy import SolveSettings

OFFSETS = np.array([-3.0, -1.0, -0.3, 0.3, 1.0, 3.0])
ANCHOR_WEIGHT = 1e8
CHI2_1_95 = 3.841
PROFILED = ("mu1", "alpha", "alpha_eff", "tau_na", "ratio_bc", "ratio_d")
"""Profiled quantities, in this order; one is left out where no free parameter moves it, and
``alpha_eff`` where it is α itself (no free initial norm of a or d)."""


def combinations(phys: dict[str, float], s_max: float) -> dict[str, float]:
    """The identifiable combinations (module docstring) of physical parameters, and α itself."""
    inv = identifiable(phys, s_max)
    return {
        "mu1": inv["mu1"],
        "alpha": phys["alpha"],
        "alpha_eff": inv["alpha_eff"],
        "tau_na": inv["tau_na"],
        "ratio_bc": inv["ratio_bc"],
        "ratio_d": inv["ratio_d"],
    }


def _log_combinations(spec: FitSpec, theta, s_max: float):
    phys = spec.physical(theta)
    return jnp.log(jnp.stack([combinations(phys, s_max)[k] for k in PROFILED]))


def profiled_quantities(spec: FitSpec, theta_hat: np.ndarray, s_max: float) -> tuple[list[str], np.ndarray]:
    """The quantities profiled for ``spec`` (see :data:`PROFILED`) and their log-gradients (k, p)."""
    with numerics("float64"):
        grads = np.asarray(jax.jacfwd(_log_combinations, argnums=1)(spec, jnp.asarray(theta_hat), s_max))
    moves_q = any(n in spec.free for n in ("q0_a", "q0_d"))
    names, rows = [], []
    for k, name in enumerate(PROFILED):
        if not np.any(np.abs(grads[k]) > 1e-12) or (name == "alpha_eff" and not moves_q):
            continue
        names.append(name)
        rows.append(grads[k])
    return names, np.stack(rows) if rows else np.zeros((0, theta_hat.size))


def profile(
    spec: FitSpec,
    solve: SolveSettings,
    opt: OptimiserSettings,
    theta_hat: np.ndarray,
    cost_hat: float,
    s2: float,
    u,
    Y,
    sigma,
    phys: dict[str, float],
    s_max: float,
    batch: int,
) -> dict[str, Any]:
    """Profile intervals of the quantities of :func:`profiled_quantities` (module docstring), run
    through the fit's compiled minimisation in batches of ``batch`` starts (its number of starts)."""
    names, V = profiled_quantities(spec, theta_hat, s_max)
    # a quantity an exact symmetry moves has a flat profile by construction: not profiled. Decided
    # from the group's action (structural), not from V·G at θ̂: where an overlap saturates (|ε| → 1)
    # the unit generator is all but that overlap's coordinate and V·G of α came out ≈ 0, so α was
    # profiled; the re-minimisation could not follow the symmetry through the saturated coordinate
    # and reported α "determined", with an interval of zero width (paper s1, s7 of the recovery run)
    flat = np.isin(names, moved(spec))
    out: dict[str, Any] = {"threshold": 0.5 * CHI2_1_95 * s2, "offsets": OFFSETS.tolist(), "parameters": {}}
    symmetric = {}  # reported after the profiled ones
    for name in np.asarray(names)[flat]:
        symmetric[str(name)] = {
            "value": combinations(phys, s_max)[name],
            "lower": None,
            "upper": None,
            "determined": False,
            "exact_symmetry": True,
        }
    names, V = [n for n, f in zip(names, flat) if not f], V[~flat]
    if not names:
        out["parameters"] = symmetric
        return out
    p = theta_hat.size
    rows, direction, target = [], [], []
    for v in V:
        for d in OFFSETS:
            rows.append(theta_hat + d * v / float(v @ v))
            direction.append(v)
            target.append(float(v @ theta_hat) + d)
    n = len(rows)
    pad = (-n) % batch
    rows += [theta_hat] * pad
    direction = np.stack(direction + [np.zeros(p)] * pad)
    target = np.asarray(target + [0.0] * pad)
    weight = np.where(np.arange(len(rows)) < n, ANCHOR_WEIGHT, 0.0)
    log_combinations = jax.vmap(_log_combinations, in_axes=(None, 0, None))
    costs, logs = [], []
    with numerics("float64"):
        for b in range(0, len(rows), batch):
            sl = slice(b, b + batch)
            anchor = Anchor(
                direction=jnp.asarray(direction[sl]),
                target=jnp.asarray(target[sl]),
                weight=jnp.asarray(weight[sl]),
                adam_steps=jnp.zeros((batch,), jnp.int32),
                # a profile point has no Adam phase and spends the whole budget in LM
                lm_steps=jnp.full((batch,), opt.adam_steps + opt.lm_steps, jnp.int32),
            )
            res = minimise_starts(spec, solve, opt, jnp.asarray(np.stack(rows[sl])), u, Y, sigma, anchor)
            th = np.asarray(res.theta)
            pen = 0.5 * weight[sl] * (np.sum(direction[sl] * th, axis=1) - target[sl]) ** 2
            costs.append(np.asarray(res.cost) - pen)
            logs.append(np.asarray(log_combinations(spec, jnp.asarray(th), s_max)))
    costs = np.concatenate(costs)[:n].reshape(len(names), OFFSETS.size)
    logs = np.concatenate(logs)[:n].reshape(len(names), OFFSETS.size, len(PROFILED))
    h = out["threshold"]
    for j, name in enumerate(names):
        col = PROFILED.index(name)
        value = combinations(phys, s_max)[name]
        delta = costs[j] - cost_hat
        ends = {}
        for side, sel in (("lower", OFFSETS < 0), ("upper", OFFSETS > 0)):
            order = np.argsort(np.abs(OFFSETS[sel]))
            dc = np.concatenate([[0.0], delta[sel][order]])
            lv = np.concatenate([[np.log(value)], logs[j][sel][order][:, col]])
            hit = np.nonzero(dc >= h)[0]
            if hit.size == 0 or not np.isfinite(h):
                ends[side] = None
                continue
            k = int(hit[0])
            a, b = np.sqrt(max(dc[k - 1], 0.0)), np.sqrt(dc[k])
            f = (np.sqrt(h) - a) / (b - a) if b > a else 1.0
            ends[side] = float(np.exp(lv[k - 1] + f * (lv[k] - lv[k - 1])))
        out["parameters"][name] = {
            "value": value,
            "lower": ends["lower"],
            "upper": ends["upper"],
            "determined": ends["lower"] is not None and ends["upper"] is not None,
            "profile_cost_increase": delta.tolist(),
            "better_optimum_found": bool(np.nanmin(delta) < -max(0.1 * h, 1e-12 * cost_hat)),
        }
    out["parameters"].update(symmetric)
    return out


__all__ = ["ANCHOR_WEIGHT", "OFFSETS", "PROFILED", "combinations", "profile", "profiled_quantities"]
