r"""The exact symmetries of the fitted family: which parameter changes leave every toy curve unchanged.

**Target factorisation.** The toy's losses see the targets only through the two target tensors
a*⊗b*⊗c* and d*⊗b*⊗c*, and the competition term α‖a⊗d‖² not at all. Rescaling the targets,
x* → κ_x x* with κ_aκ_bκ_c = κ_dκ_bκ_c = 1 (so κ_a = κ_d = 1/(κ_bκ_c)), therefore changes neither
the loss as a function of the learned vectors nor, from the same vectors, their gradient flow: every
curve is the same. In the fit's normalised statistics (r_x = R_x/n_x = 1: the dimension is set by
the target's norm, docs/bridge.md "Identifiability" point 2), with s_x = log κ_x, the rescaled run
is the family member

.. math::
    n_x → n_x e^{2 s_x}, \quad q_x(0) → q_x(0)\,e^{-2 s_x}, \quad ε_x → ε_x e^{-s_x},
    \quad α → α\,e^{-4(s_b + s_c)}, \quad μ_1, μ_2 \text{ unchanged},

a two-parameter group (s_b, s_c), s_a = s_d = −(s_b + s_c). **Dimension level.** Every n_x → n_x e^ℓ
with the span T → T e^ℓ (time constants τ·n_x unchanged; docs/bridge.md point 1). The fit fixes
n_a (:data:`bridge.spec.DIM_A_REFERENCE`), so ℓ = −2 s_a rides along.

A symmetry acts inside a fit's family only where every parameter it moves is free: with the initial
norms fixed (the default family, q(0) = 1) no target rescaling survives; with q(0) free and c tied to
b (s_b = s_c) one does; in the exact family (q(0) and c's own parameters free) both do. Each one is
a direction along which the curves — hence the cost — are exactly flat, so J = ∂r/∂θ has that many
zero singular values at *every* point: the Gauss–Newton condition number is infinite by
construction, and the parameters it moves are not determined by any data. :func:`generators` gives
the directions in the fit's unconstrained coordinates θ; the fit computes its condition number and
standard errors on their orthogonal complement and lists the parameters they move as not
determined.

**What the curves do determine** (:func:`identifiable`): every combination invariant under the
group — μ₁; the competition strength at the initial norms, α_eff = α·q_a(0)·q_d(0); the time
constants τ·n_x·q_x(0) (τ = sequences per unit toy time), reported as ``tau_na`` and the ratios to
a's; and each vector's initial cosine ε_x/√q_x(0) (= P/√(QR)). With q(0) = 1 these are μ₁, α, τ·n_a,
n_bc/n_a, n_d/n_a, the combinations the fit has always reported.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .spec import C_PARAMETERS, Q0_NAMES, FitSpec

# d log(value) per unit of the group coordinates (s_b, s_c, ℓ), with s_a = s_d = −(s_b + s_c)
_A = np.array([-1.0, -1.0, 0.0])  # s_a = s_d as a row in (s_b, s_c, ℓ)
_B = np.array([1.0, 0.0, 0.0])
_C = np.array([0.0, 1.0, 0.0])
_L = np.array([0.0, 0.0, 1.0])
LOG_ACTION: dict[str, np.ndarray] = {
    "span": _L,
    "mu1": 0 * _L,
    "mu2": 0 * _L,
    "alpha": 4 * _A,
    "dim_a": 2 * _A + _L,
    "dim_bc": 2 * _B + _L,
    "dim_c": 2 * _C + _L,
    "dim_d": 2 * _A + _L,
    "q0_a": -2 * _A,
    "q0_bc": -2 * _B,
    "q0_c": -2 * _C,
    "q0_d": -2 * _A,
    "eps_a": -_A,
    "eps_bc": -_B,
    "eps_c": -_C,
    "eps_d": -_A,
}
"""Row (s_b, s_c, ℓ) → d log of each parameter under the group (module docstring)."""


def act(values: Mapping[str, float], s_b: float, s_c: float, level: float = 0.0) -> dict[str, float]:
    """The family member that the group element (s_b, s_c, ℓ) maps ``values`` to (physical values;
    c's parameters default to b's). Its toy curves equal those of ``values`` exactly."""
    g = np.array([s_b, s_c, level])
    out = dict(values)
    for name, c in C_PARAMETERS.items():
        out.setdefault(name, values[c])
    for name, row in LOG_ACTION.items():
        if name in out:
            out[name] = float(out[name] * np.exp(row @ g))
    return out


def allowed(spec: FitSpec) -> np.ndarray:
    """Basis (3, k) of the group directions (s_b, s_c, ℓ) that keep ``spec``'s fixed parameters fixed
    (those with value 0 are unmoved anyway) and c tied to b where the spec does not name c's own."""
    rows = []
    for name, row in LOG_ACTION.items():
        if name in spec.free or name in ("mu1", "mu2"):
            continue
        if name in C_PARAMETERS and not spec.mentions(name):
            rows.append(row - LOG_ACTION[C_PARAMETERS[name]])  # tied: c moves as b does
            continue
        if spec.value(name) != 0.0:
            rows.append(row)
    if not rows:
        return np.eye(3)
    _, sv, vt = np.linalg.svd(np.stack(rows))
    rank = int(np.sum(sv > 1e-12 * max(sv[0], 1.0)))
    return vt[rank:].T


def generators(spec: FitSpec, theta: np.ndarray) -> np.ndarray:
    """The symmetry directions at θ in the fit's unconstrained coordinates, (p, k), k =
    :func:`allowed`'s dimension: column j is dθ/dt along the group direction j (J @ it = 0),
    normalised to unit length. A free overlap's coordinate is its initial cosine κ = ε/√q(0)
    (:mod:`bridge.spec`), which the group leaves unchanged (ε → ε e^{−s}, q(0) → q(0) e^{−2s}): its
    component is 0; ε itself moves through q(0)."""
    basis = allowed(spec)
    if basis.shape[1] == 0:
        return np.zeros((len(spec.free), 0))
    theta = np.asarray(theta, dtype=np.float64)
    out = np.zeros((len(spec.free), basis.shape[1]))
    for i, name in enumerate(spec.free):
        if name.startswith("eps_"):
            continue  # κ is invariant
        dlog = LOG_ACTION[name] @ basis  # d log value per unit of each basis direction
        # θ = log(n − 1) for a dimension (dθ/d log n = n/(n − 1)), θ = log value otherwise
        out[i] = (1.0 + np.exp(-theta[i]) if name.startswith("dim_") else 1.0) * dlog
    return out / np.linalg.norm(out, axis=0, keepdims=True)


def moved(spec: FitSpec) -> list[str]:
    """The free parameters some symmetry of ``spec`` moves: none of them is determined by the data."""
    basis = allowed(spec)
    return [n for n in spec.free if basis.shape[1] and np.any(np.abs(LOG_ACTION[n] @ basis) > 1e-12)]


def identifiable(values: Mapping[str, float], s_max: float) -> dict[str, float]:
    """The group-invariant combinations (module docstring) of physical ``values`` (initial norms
    missing: 1; c's parameters missing: b's); ``s_max`` is the log's last sequences seen
    (τ = s_max / span)."""
    v = dict(values)
    for name in Q0_NAMES:
        v.setdefault(name, 1.0)  # the typical statistics (the default family's fixed value)
    for name, c in C_PARAMETERS.items():
        v.setdefault(name, v[c])
    tau = s_max / v["span"]
    t = {x: tau * v[f"dim_{k}"] * v[f"q0_{k}"] for x, k in (("a", "a"), ("b", "bc"), ("c", "c"), ("d", "d"))}
    out = {
        "mu1": v["mu1"],
        "alpha_eff": v["alpha"] * v["q0_a"] * v["q0_d"],
        "tau_na": t["a"],
        "ratio_bc": t["b"] / t["a"],
        "ratio_c": t["c"] / t["a"],
        "ratio_d": t["d"] / t["a"],
    }
    for x, k in (("a", "a"), ("b", "bc"), ("c", "c"), ("d", "d")):
        out[f"cos_{x}"] = v[f"eps_{k}"] / v[f"q0_{k}"] ** 0.5
    return out


__all__ = ["LOG_ACTION", "act", "allowed", "generators", "identifiable", "moved"]
