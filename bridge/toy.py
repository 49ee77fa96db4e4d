r"""The toy side of the bridge: reduced coopetition curves as a differentiable function of its parameters.

The strategy-coopetition toy (:func:`toymodels.losses.coopetition_model`) is solved with its exact
reduced (P, Q) dynamics (:mod:`toymodels.reduced`), so the dimensions are continuous "effective
dimensions" and every curve is differentiable in every parameter through the Diffrax solve.

Initial statistics are the typical ones (:func:`toymodels.reduced.typical_initial_stats`):
:math:`R_x = n_x`, :math:`Q_x(0) = σ^2 n_x`, :math:`P_x(0) = z_x σ\sqrt{n_x}` with overlap
:math:`z_x` (the role of the seed) and init scale σ = 1 (the paper's).

Time: the transformer's clock is sequences seen, :math:`s`; the toy's is flow time
:math:`t = s / τ` with the time scale τ (sequences per unit of toy time). The solve runs in
normalised time :math:`u = s / s_\max \in [0, 1]` with velocity multiplied by
:math:`T = s_\max / τ` (the toy-time span of the log), so the save times are static and τ is an
ordinary traced parameter.

Curves in toy units: ``mechanism_1`` = :math:`L_{M1}` (ICL), ``mechanism_2`` = :math:`L_{M2}` (CIWL),
``total`` = :math:`(L_{M1}+μ_1)(L_{M2}+μ_2) + αC`.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from toymodels.losses import coopetition_model, loss_terms
from toymodels.reduced import ReducedParams, ReducedState, reduced_dynamics

TOY_CURVES = ("mechanism_1", "mechanism_2", "total")
VECTORS = ("a", "b", "c", "d")


class ToyParams(eqx.Module):
    """Physical parameters of the toy (a pytree; scalars or batch arrays).

    Attributes:
        span: T = s_max / τ, the toy time covered by the log (τ = sequences per unit of toy time).
        mu1, mu2, alpha: μ₁, μ₂, α ≥ 0.
        dims: effective dimensions (n_a, n_b, n_c, n_d) ≥ 1, shape (..., 4).
        overlap: initial overlaps z_x, shape (..., 4); P_x(0) = z_x σ √n_x.
        init_scale: σ > 0 (Q_x(0) = σ² n_x), one for every vector or one per vector (shape (..., 4)).
    """

    span: Float[Array, "*batch"]
    mu1: Float[Array, "*batch"]
    mu2: Float[Array, "*batch"]
    alpha: Float[Array, "*batch"]
    dims: Float[Array, "*batch 4"]
    overlap: Float[Array, "*batch 4"]
    init_scale: Float[Array, "*batch"] | Float[Array, "*batch 4"]


@functools.lru_cache(maxsize=1)
def coopetition_dynamics():
    """The (cached) lambdified reduced dynamics of the coopetition model (dims are traced inputs), in
    the plain (P, Q) coordinates: 8 states, the cheapest exact system."""
    return reduced_dynamics(coopetition_model(), coordinates="PQ")


def initial_state(p: ToyParams) -> tuple[ReducedState, ReducedParams]:
    """Typical initial (P, Q) and the reduced parameters of one run (traceable)."""
    n = p.dims
    sigma = p.init_scale
    state0 = ReducedState(P=p.overlap * sigma * jnp.sqrt(n), Q=sigma**2 * n)
    params = ReducedParams(R=n, dims=n, mu=jnp.stack([p.mu1, p.mu2]), alpha=p.alpha)
    return state0, params


@dataclasses.dataclass(frozen=True)
class SolveSettings:
    """Diffrax settings of the toy solve (static: part of the compiled program).

    Attributes:
        rtol, atol: PID step-size controller tolerances (on the (P, Q) state, whose entries are O(n)).
        max_steps: solver step budget; a run that exhausts it yields NaN curves.
        solver: ``"tsit5"`` (explicit, the fit's default) or ``"kvaerno5"`` (implicit, for the stiff
            late phase of long prediction horizons).
    """

    rtol: float = 1e-6
    atol: float = 1e-8
    max_steps: int = 2048
    solver: str = "tsit5"


def toy_curves(
    p: ToyParams, u_save: Float[Array, " n_times"], settings: SolveSettings = SolveSettings()
) -> dict[str, Float[Array, " n_times"]]:
    """Toy curves (toy units) at normalised times ``u_save`` ⊂ [0, 1]; NaN if the solver failed.

    Pure and traceable in ``p``: vmap it over starts and differentiate it in **forward mode**
    (``jax.jvp``/``jax.jacfwd``; the solve uses :class:`diffrax.ForwardMode`, which compiled in about
    half the time of reverse mode through a checkpointed solve in one measurement, and suits the
    ~6–8 parameters of a fit). Call it inside :func:`toymodels.precision.numerics` (float64).
    """
    import diffrax

    dyn = coopetition_dynamics()
    model = dyn.model
    state0, params = initial_state(p)

    def velocity(t, y, args):
        return jax.tree.map(lambda v: p.span * v, dyn.velocity(y, params))

    def measures(t, y, args):
        terms = loss_terms(
            model, dyn.stats(y, params), [params.mu[0], params.mu[1]], params.alpha, dyn.dims(params)
        )
        return {"mechanism_1": terms.mechanisms[0], "mechanism_2": terms.mechanisms[1], "total": terms.total}

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(velocity),
        {"tsit5": diffrax.Tsit5, "kvaerno5": diffrax.Kvaerno5}[settings.solver](),
        t0=0.0,
        t1=1.0,
        dt0=None,
        y0=state0,
        saveat=diffrax.SaveAt(ts=u_save, fn=measures),
        stepsize_controller=diffrax.PIDController(rtol=settings.rtol, atol=settings.atol),
        adjoint=diffrax.ForwardMode(),
        max_steps=settings.max_steps,
        throw=False,
    )
    ok = sol.result == diffrax.RESULTS.successful
    return {k: jnp.where(ok & jnp.isfinite(v), v, jnp.nan) for k, v in sol.ys.items()}


__all__ = [
    "TOY_CURVES",
    "VECTORS",
    "ToyParams",
    "coopetition_dynamics",
    "SolveSettings",
    "initial_state",
    "toy_curves",
]
