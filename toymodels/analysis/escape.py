r"""Plateau escape time of the N-vector model from a small symmetric start: numerics vs asymptotics.

Symmetric start (all vectors of dimension n, :math:`R = n`, :math:`Q_0 = σ^2n`, :math:`P_0 = zσ\sqrt n`).
The escape time is the gradient-flow time at which the loss first falls to half its value at the
origin (:math:`L(0) = ½·\prod R/\prod n = ½`), located by a Diffrax event (end of the first step past
it) on the exact reduced ODE (:mod:`toymodels.reduced`, (P, Q) form), solved in rescaled time
t / t_pred. The prediction is the leading-order result of
:func:`toymodels.analysis.saddle.escape_time_prediction` (derived by SymPy from the same reduced ODE):

* N ≥ 3: :math:`t_* = n^{N/2}(zσ)^{-(N-2)}/(N-2)` — slope −(N − 2) on a log-log plot;
* N = 2: :math:`t ≈ n\log(1/σ)` — slope n against log(1/σ).

The difference between the numerical and predicted time is the σ-independent time to go from the
blow-up of the linearised plateau dynamics to the half-loss point, so the ratio tends to 1 and the
fitted exponent to −(N − 2) as σ → 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from ..errors import require
from ..losses import tensor_model
from ..precision import numerics
from ..reduced import ReducedParams, ReducedState, reduced_dynamics
from .saddle import escape_time_prediction

__all__ = ["EscapeRow", "escape_table", "escape_times", "fitted_exponent", "predicted_escape_time"]


def predicted_escape_time(N: int, sigma, n: float = 20.0, z: float = 1.0) -> np.ndarray:
    """Leading-order escape time (SymPy expression of :func:`escape_time_prediction`, evaluated)."""
    _, t_star = escape_time_prediction(N)
    syms = {s.name: s for s in t_star.free_symbols}
    f = sp.lambdify(
        [syms.get("sigma", sp.Symbol("sigma")), syms.get("z", sp.Symbol("z")), syms.get("n", sp.Symbol("n"))],
        t_star,
        "numpy",
    )
    return np.asarray(f(np.asarray(sigma, dtype=float), z, n), dtype=float)


def escape_times(
    N: int, sigmas: Sequence[float], n: float = 20.0, z: float = 1.0, rtol: float = 1e-10
) -> np.ndarray:
    """Numerical escape times (half-loss crossing) of the reduced gradient flow, vmapped over σ."""
    require(2 <= N <= 8, "n", f"N must be in [2, 8] (got {N})")
    sig = np.asarray(sigmas, dtype=float)
    require(bool(np.all((sig > 0) & (sig * z * z < 1))), "sigma", "need 0 < sigma and z^2 sigma < 1")
    model = tensor_model((n,) * N)
    dyn = reduced_dynamics(model, coordinates="PQ")
    t_pred = predicted_escape_time(N, sig, n, z)
    # First-passage time of the loss through ½·L(0) (a Diffrax event; the shared integrator's Newton
    # event root-find fails to converge on the steep drop at t ~ 1e7), in rescaled time
    # τ = t / t_scale so the escape happens at τ = O(1) whatever σ.
    t_scale = t_pred + n

    def one(P0, Q0, scale):
        params = ReducedParams(R=jnp.full(N, n), dims=jnp.full(N, n), mu=jnp.zeros(1), alpha=jnp.asarray(0.0))
        term = diffrax.ODETerm(lambda t, y, args: jax.tree.map(lambda v: scale * v, dyn.velocity(y, params)))
        # boolean event: stop at the end of the first step with loss <= ½·L(0); the step there is
        # ~1e-9 of the escape time (rtol 1e-10), far below the precision the table needs
        event = diffrax.Event(cond_fn=lambda t, y, args, **kw: dyn.loss(y, params) <= 0.25)
        sol = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            0.0,
            t_max,
            None,
            ReducedState(P=P0, Q=Q0),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=1e-14),
            event=event,
            max_steps=200_000,
            throw=False,
        )
        hit = sol.result == diffrax.RESULTS.event_occurred
        return jnp.where(hit, sol.ts[-1], jnp.nan)

    t_max = 50.0
    with numerics("float64"):
        B = len(sig)
        P0 = jnp.asarray(z * sig * np.sqrt(n))[:, None] * jnp.ones((B, N))
        Q0 = jnp.asarray(sig**2 * n)[:, None] * jnp.ones((B, N))
        tau = np.asarray(jax.jit(jax.vmap(one))(P0, Q0, jnp.asarray(t_scale)), dtype=float)
    require(
        bool(np.all(np.isfinite(tau))),
        "sigma",
        f"no escape before {t_max} x the predicted time for some sigma: {sig[~np.isfinite(tau)]}",
    )
    return tau * t_scale


def fitted_exponent(sigmas, times, N: int) -> float:
    """Least-squares slope: d log t / d log σ (N ≥ 3), or d t / d log(1/σ) (N = 2)."""
    x = np.log(np.asarray(sigmas, dtype=float))
    y = np.asarray(times, dtype=float)
    if N == 2:
        return float(np.polyfit(-x, y, 1)[0])
    return float(np.polyfit(x, np.log(y), 1)[0])


@dataclasses.dataclass(frozen=True)
class EscapeRow:
    N: int
    sigma: float
    t_numeric: float
    t_predicted: float

    @property
    def ratio(self) -> float:
        return self.t_numeric / self.t_predicted


def escape_table(
    Ns: Sequence[int] = (2, 3, 4, 5),
    sigmas: dict[int, Sequence[float]] | None = None,
    n: float = 20.0,
    z: float = 1.0,
) -> tuple[list[EscapeRow], dict[int, tuple[float, float]]]:
    """Rows (N, σ, numeric, predicted) and, per N, (fitted, predicted) exponent (slope n for N = 2)."""
    default = {
        2: np.logspace(-8, -2, 7),
        3: np.logspace(-5, -2, 7),
        4: np.logspace(-4, -1.5, 6),
        5: np.logspace(-3, -1, 5),
    }
    sigmas = sigmas or {}
    rows, exps = [], {}
    for N in Ns:
        sig = np.asarray(sigmas.get(N, default.get(N, np.logspace(-2, -0.5, 4))), dtype=float)
        t = escape_times(N, sig, n, z)
        tp = predicted_escape_time(N, sig, n, z)
        rows += [EscapeRow(N, float(s), float(a), float(b)) for s, a, b in zip(sig, t, tp)]
        exps[N] = (fitted_exponent(sig, t, N), float(n) if N == 2 else -(N - 2.0))
    return rows, exps
