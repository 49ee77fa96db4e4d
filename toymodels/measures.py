r"""Progress measures, all functions of the per-vector statistics (P, Q, R).

At every saved time the dynamics record (names are the HDF5 dataset names):

* ``loss`` — the total loss; ``mechanism_k_loss`` (k = 1, 2, …) — each mechanism's loss L_k;
  ``competition`` — the unweighted competition term C (models with one);
* ``grad_norm`` — the norm of the applied gradient (clamped entries excluded);
* per vector x: ``norm_x`` = |x| = √Q; ``one_minus_cos2_x`` = 1 − P²/(QR) = W/Q;
  ``distance_x`` = |x − x*| = √(Q − 2P + R) = √(E²/R + W) (with E, W of
  :class:`~toymodels.losses.VectorStats` when available); ``loss_others_at_targets_x`` — the total loss with
  every other vector at ± its target (best sign; see
  :func:`toymodels.losses.loss_with_others_at_targets`).

Because every entry is a function of (P, Q, R) (and the squared gradient norm), the reduced model
:mod:`toymodels.reduced` records exactly the same measures.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp

from .losses import LossParams, ToyModel, VectorStats, loss_terms, loss_with_others_at_targets

PER_VECTOR_MEASURES = ("norm", "one_minus_cos2", "distance", "loss_others_at_targets")


def measure_names(model: ToyModel) -> tuple[str, ...]:
    """Names of all recorded measures, in a stable order."""
    names = ["loss"] + [f"mechanism_{k + 1}_loss" for k in range(model.n_mechanisms)]
    if model.competition:
        names.append("competition")
    names.append("grad_norm")
    names += [f"{m}_{v}" for m in PER_VECTOR_MEASURES for v in model.vectors]
    return tuple(names)


def measures_from_stats(
    model: ToyModel,
    stats: Mapping[str, VectorStats],
    lp: LossParams,
    grad_norm_sq,
    dims: Mapping | None = None,
) -> dict[str, jnp.ndarray]:
    """All progress measures from statistics and the squared norm of the applied gradient."""
    mu = [lp.mu[..., k] for k in range(model.n_mechanisms)]
    terms = loss_terms(model, stats, mu, lp.alpha, dims)
    out = {"loss": jnp.asarray(terms.total)}
    for k, lk in enumerate(terms.mechanisms):
        out[f"mechanism_{k + 1}_loss"] = jnp.asarray(lk)
    if model.competition:
        out["competition"] = jnp.asarray(terms.competition)
    out["grad_norm"] = jnp.sqrt(jnp.maximum(grad_norm_sq, 0.0))
    for v in model.vectors:
        st = stats[v]
        P, Q, R = (jnp.asarray(s) for s in st[:3])
        out[f"norm_{v}"] = jnp.sqrt(jnp.maximum(Q, 0.0))
        safe = jnp.where(Q * R > 0, Q * R, 1.0)
        if st.has_errors:  # sin² = W/Q and |x − x*|² = E²/R + W: sums of non-negative terms
            sin2, dist2 = R * st.W / safe, st.E * st.E / R + st.W
        else:
            sin2, dist2 = 1.0 - P * P / safe, Q - 2 * P + R
        out[f"one_minus_cos2_{v}"] = jnp.where(Q * R > 0, jnp.maximum(sin2, 0.0), 1.0)
        out[f"distance_{v}"] = jnp.sqrt(jnp.maximum(dist2, 0.0))
    for v in model.vectors:
        out[f"loss_others_at_targets_{v}"] = loss_with_others_at_targets(model, stats, lp, v, dims)
    return out
