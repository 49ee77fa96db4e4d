r"""The least-squares objective of a fit, with the per-curve scales and offsets projected out.

For curve k with transformer values :math:`y_{ki}` at normalised times :math:`u_i` and toy curve
:math:`m_k(u_i; θ)`, the model is :math:`ŷ_{ki} = s_k m_{ki} + o_k` (:math:`s_k > 0`,
:math:`o_k ≥ 0`). Given θ the best :math:`(s_k, o_k)` is a 2-parameter weighted linear least-squares
problem, solved in closed form (with the bounds enforced: if the unconstrained offset is negative
it is set to 0 and the scale re-solved through the origin). Fitting θ alone on the projected
residuals is *variable projection* (Golub & Pereyra 1973): fewer nonlinear parameters and no
initial guesses for the linear ones.

Residuals are normalised per curve,

.. math:: r_{ki} = \frac{ŷ_{ki} - y_{ki}}{σ_k \sqrt{n}}, \qquad σ_k^2 = \mathrm{Var}_i(y_{ki}),

so the cost :math:`½\sum r^2 = ½\sum_k (1 - R^2_k)` weighs every curve equally whatever its units.
Robust option: Huber's ρ with threshold δ on the unnormalised-by-√n residual
:math:`e = (ŷ-y)/σ_k`, implemented by the residual transform :math:`r → \mathrm{sign}(e)\sqrt{2ρ(e)/n}`
(so the Gauss–Newton/LM machinery minimises :math:`\sum ρ/n`), and the linear projection done by
iteratively reweighted least squares (3 sweeps of Huber weights).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .spec import FitSpec
from .toy import SolveSettings, toy_curves

IRLS_SWEEPS = 3
_TINY = 1e-300


def project_linear(
    m: Float[Array, " n"], y: Float[Array, " n"], w: Float[Array, " n"]
) -> tuple[Array, Array]:
    """Weighted least-squares (scale > 0, offset ≥ 0) of ``y ≈ scale · m + offset``."""
    W = jnp.sum(w)
    m_bar = jnp.sum(w * m) / W
    y_bar = jnp.sum(w * y) / W
    smm = jnp.sum(w * (m - m_bar) ** 2)
    smy = jnp.sum(w * (m - m_bar) * (y - y_bar))
    flat = smm <= 1e-30 * jnp.maximum(jnp.sum(w * m * m), _TINY)
    scale = jnp.where(flat, 0.0, smy / jnp.where(flat, 1.0, smm))
    offset = y_bar - scale * m_bar
    # offset bound active: regress through the origin
    through_origin = jnp.sum(w * m * y) / jnp.maximum(jnp.sum(w * m * m), _TINY)
    scale = jnp.where(offset < 0, through_origin, scale)
    offset = jnp.where(offset < 0, 0.0, offset)
    # scale bound (toy curve anti-correlated with the data): a vanishing scale, offset = mean
    bad = scale <= 0
    scale = jnp.where(bad, 1e-12, scale)
    offset = jnp.where(bad, jnp.maximum(y_bar - 1e-12 * m_bar, 0.0), offset)
    return scale, offset


def huber(e, delta):
    a = jnp.abs(e)
    return jnp.where(a <= delta, 0.5 * e * e, delta * (a - 0.5 * delta))


def mapped_curves(spec: FitSpec, theta, u, Y, sigma, settings: SolveSettings):
    """Toy curves (toy units, (K, n)), scales (K,), offsets (K,) and predictions (K, n) at θ."""
    phys = spec.physical(theta)
    toy = toy_curves(spec.toy_params(phys), u, settings)
    M = jnp.stack([toy[b] for _, b in spec.curves])
    scales, offsets, preds = [], [], []
    for k in range(M.shape[0]):
        w = jnp.ones_like(u)
        s, o = project_linear(M[k], Y[k], w)
        if spec.robust is not None:
            for _ in range(IRLS_SWEEPS):
                e = (s * M[k] + o - Y[k]) / sigma[k]
                w = jnp.where(jnp.abs(e) <= spec.robust, 1.0, spec.robust / jnp.maximum(jnp.abs(e), _TINY))
                s, o = project_linear(M[k], Y[k], jax.lax.stop_gradient(w))
        scales.append(s)
        offsets.append(o)
        preds.append(s * M[k] + o)
    return M, jnp.stack(scales), jnp.stack(offsets), jnp.stack(preds)


def residuals(spec: FitSpec, settings: SolveSettings, theta, u, Y, sigma) -> Float[Array, " K_times_n"]:
    """Normalised (and, if ``spec.robust``, Huber-transformed) residuals, flattened; NaN if the toy
    solve failed."""
    _, _, _, pred = mapped_curves(spec, theta, u, Y, sigma, settings)
    n = Y.shape[1]
    e = (pred - Y) / sigma[:, None]
    if spec.robust is not None:
        e = jnp.sign(e) * jnp.sqrt(2.0 * huber(e, spec.robust))
    return (e / jnp.sqrt(n)).reshape(-1)


def cost_of(r) -> Array:
    """½Σr², +inf if any residual is non-finite."""
    c = 0.5 * jnp.sum(r * r)
    return jnp.where(jnp.all(jnp.isfinite(r)), c, jnp.inf)


__all__ = ["cost_of", "huber", "mapped_curves", "project_linear", "residuals"]
