r"""What the data determine: profile-likelihood intervals and the identifiable combinations.

Degeneracy (docs/bridge.md, "Identifiability"). In normalised statistics p = P/n, q = Q/n, r = R/n
the reduced flow of vector x is a dimension-free field slowed by 1/n_x, started at p_x(0) = ε_x. So
the curves depend on the dimensions and the time scale τ only through the time constants τ·n_x,
and on the seed only through the ε_x: multiplying every n by k and τ by 1/k leaves them unchanged.
The identifiable combinations reported are

* ``tau_na`` = τ·n_a: sequences seen per unit of a's normalised time;
* ``ratio_bc`` = n_bc/n_a and ``ratio_d`` = n_d/n_a: the relative speeds of the vectors;
* μ₁ and α (in the units of the typical statistics R = n, see docs/bridge.md for real seeds);

and the dimension level n_a is *not determined* (fixed by convention, :data:`bridge.spec.DIM_A_REFERENCE`).

Profile likelihood. For a free parameter with unconstrained coordinate θ_i and each offset δ in
:data:`OFFSETS`, the cost is re-minimised with θ_i pinned to θ̂_i + δ (an anchor residual of weight
:data:`ANCHOR_WEIGHT`, the fit's compiled program and Levenberg–Marquardt from the optimum). With the
Gaussian likelihood and σ² estimated by ŝ² = 2·cost/(m − p), the 95% interval is
{θ_i : cost_profile − cost_min ≤ ½·χ²₁(0.95)·ŝ²}, the crossings interpolated linearly in
√(cost increase) between grid points (exact for a quadratic profile). A side on which the profile
never reaches the threshold within the grid (a factor e^3 ≈ 20 in the parameter) is open: the
parameter is reported as *not determined* on that side.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from toymodels.precision import numerics

from .optimise import Anchor, OptimiserSettings, minimise_starts
from .spec import FitSpec
from .toy import SolveSettings

OFFSETS = np.array([-3.0, -1.0, -0.3, 0.3, 1.0, 3.0])
ANCHOR_WEIGHT = 1e8
CHI2_1_95 = 3.841
PROFILED = ("mu1", "alpha", "span", "dim_bc", "dim_d", "dim_a")
COMBINATION = {"mu1": "mu1", "alpha": "alpha", "span": "tau_na", "dim_bc": "ratio_bc", "dim_d": "ratio_d"}


def combinations(phys: dict[str, float], s_max: float) -> dict[str, float]:
    """The identifiable combinations (module docstring) of physical parameters."""
    tau = s_max / phys["span"]
    return {
        "mu1": phys["mu1"],
        "alpha": phys["alpha"],
        "tau_na": tau * phys["dim_a"],
        "ratio_bc": phys["dim_bc"] / phys["dim_a"],
        "ratio_d": phys["dim_d"] / phys["dim_a"],
    }


def _to_combination(spec: FitSpec, name: str, theta_i: float, phys: dict[str, float], s_max: float):
    """Value of the combination of parameter ``name`` when its θ is ``theta_i`` (others at the optimum)."""
    if name.startswith("dim_"):
        value = 1.0 + np.exp(theta_i)
    else:
        value = float(np.exp(theta_i))
    return combinations({**phys, name: value}, s_max)[COMBINATION[name]]


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
    """Profile intervals of the free parameters in :data:`PROFILED` (module docstring), run through
    the fit's compiled minimisation in batches of ``batch`` starts (its number of starts)."""
    names = [n for n in PROFILED if n in spec.free and n in COMBINATION]
    p = theta_hat.size
    rows, anchors = [], []
    for name in names:
        i = spec.free.index(name)
        for d in OFFSETS:
            t = theta_hat.copy()
            t[i] += d
            rows.append(t)
            anchors.append((i, theta_hat[i] + d))
    n = len(rows)
    pad = (-n) % batch
    rows += [theta_hat] * pad
    anchors += [(0, theta_hat[0])] * pad
    direction = np.zeros((len(rows), p))
    for k, (i, _) in enumerate(anchors):
        direction[k, i] = 1.0
    target = np.array([t for _, t in anchors])
    costs = []
    with numerics("float64"):
        for b in range(0, len(rows), batch):
            sl = slice(b, b + batch)
            anchor = Anchor(
                direction=jnp.asarray(direction[sl]),
                target=jnp.asarray(target[sl]),
                weight=jnp.full((batch,), ANCHOR_WEIGHT),
                adam_steps=jnp.zeros((batch,), jnp.int32),
            )
            res = minimise_starts(spec, solve, opt, jnp.asarray(np.stack(rows[sl])), u, Y, sigma, anchor)
            th = np.asarray(res.theta)
            pen = 0.5 * ANCHOR_WEIGHT * (np.sum(direction[sl] * th, axis=1) - target[sl]) ** 2
            costs.append(np.asarray(res.cost) - pen)
    costs = np.concatenate(costs)[:n].reshape(len(names), OFFSETS.size)
    h = 0.5 * CHI2_1_95 * s2
    out: dict[str, Any] = {"threshold": h, "offsets": OFFSETS.tolist(), "parameters": {}}
    for j, name in enumerate(names):
        i = spec.free.index(name)
        delta = costs[j] - cost_hat
        ends = {}
        for side, sel in (("lower", OFFSETS < 0), ("upper", OFFSETS > 0)):
            ds, dc = np.abs(OFFSETS[sel]), delta[sel]
            order = np.argsort(ds)
            ds, dc = np.concatenate([[0.0], ds[order]]), np.concatenate([[0.0], dc[order]])
            hit = np.nonzero(dc >= h)[0]
            if hit.size == 0 or not np.isfinite(h):
                ends[side] = None
                continue
            k = int(hit[0])
            a, b = np.sqrt(max(dc[k - 1], 0.0)), np.sqrt(dc[k])
            f = (np.sqrt(h) - a) / (b - a) if b > a else 1.0
            d = ds[k - 1] + f * (ds[k] - ds[k - 1])
            ends[side] = _to_combination(
                spec, name, theta_hat[i] + (d if side == "upper" else -d), phys, s_max
            )
        value = _to_combination(spec, name, theta_hat[i], phys, s_max)
        if _to_combination(spec, name, theta_hat[i] + 1.0, phys, s_max) < value:  # decreasing in θ
            ends = {"lower": ends["upper"], "upper": ends["lower"]}
        out["parameters"][COMBINATION[name]] = {
            "value": value,
            "lower": ends["lower"],
            "upper": ends["upper"],
            "determined": ends["lower"] is not None and ends["upper"] is not None,
            "profile_cost_increase": delta.tolist(),
            "better_optimum_found": bool(np.nanmin(delta) < -max(0.1 * h, 1e-12 * cost_hat)),
        }
    return out


__all__ = ["ANCHOR_WEIGHT", "COMBINATION", "OFFSETS", "combinations", "profile"]
