r"""Per-run summary measures of a sweep, and the verdict: did mechanism 1 (ICL) emerge, and did it last?

All measures are computed from the recorded curves (every recorded time: GD ``--save-every``, flow
``--n-save``), before the stored curves are subsampled. Values after a stop (loss below the stop
loss) or a divergence are NaN in the curves; "final" means the last finite value.

Reference level. At the saddle (all vectors 0) mechanism k's loss is

.. math::  L_k^0 = \tfrac12\,\mathrm{mean}\big(\textstyle\bigotimes_{x\in S_k} x^*\big)^2
         = \frac{\prod_{x\in S_k} R_x}{2\prod_{x\in S_k} n_x},

the height of the plateau, and the level mechanism 1 returns to when competition drives a → 0.

Measures (names are the HDF5 dataset and CSV column names):

* ``m1_initial`` L₁(0); ``m1_ref`` L₁⁰; ``m1_min`` min_t L₁ and ``m1_min_time`` its (first) time;
  ``m1_final``; ``m2_final``; ``loss_final``;
* ``m2_divot_depth`` = max_t min[L₂(t) − min_{s≤t} L₂(s), L₂(t) − min_{s≥t} L₂(s)], the height of
  the largest temporary worsening (a bump that is later undone) of mechanism 2, and
  ``m2_divot_time`` the time of its top (0 and NaN for a run without one; a rise that is never
  undone, as when mechanism 2 loses the competition, is not a divot);
* ``loss_threshold_time`` — first time the total loss < ``loss_threshold`` (NaN: never);
* ``escape_time`` — plateau escape: first time some mechanism k has L_k < ``escape_ratio``·L_k⁰ (NaN: never);
* ``stop`` — stop step (GD; −1 never) or time (flow; NaN never); ``failed`` — diverged / solver gave up.

Verdict (thresholds are :class:`VerdictThresholds`):

* ``none`` (0) — mechanism 1 never emerged: ``m1_min > emerge_ratio · m1_ref``;
* ``transient`` (2) — it emerged, then faded: ``m1_final >= fade_ratio · m1_ref``;
* ``persistent`` (1) — it emerged and stayed: ``m1_final < fade_ratio · m1_ref``.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import require

VERDICTS = ("none", "persistent", "transient")
PENDING = -1
SUMMARY_FIELDS = (
    "m1_initial", "m1_ref", "m1_min", "m1_min_time", "m1_final", "m2_final", "loss_final",
    "m2_divot_depth", "m2_divot_time", "loss_threshold_time", "escape_time", "stop", "failed", "verdict",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class VerdictThresholds:
    """Thresholds of the summary measures (see the module docstring).

    Attributes:
        emerge_ratio: mechanism 1 emerged if its minimum loss ≤ emerge_ratio · L₁⁰ (default 0.1).
        fade_ratio: it faded (transient) if its final loss ≥ fade_ratio · L₁⁰ (default 0.5).
        loss_threshold: the total-loss level whose first crossing is ``loss_threshold_time`` (1e-3).
        escape_ratio: plateau escape when some L_k < escape_ratio · L_k⁰ (default 0.5).
    """

    emerge_ratio: float = 0.1
    fade_ratio: float = 0.5
    loss_threshold: float = 1e-3
    escape_ratio: float = 0.5

    def __post_init__(self) -> None:
        for name in ("emerge_ratio", "fade_ratio", "loss_threshold", "escape_ratio"):
            v = getattr(self, name)
            require(
                np.isfinite(v) and v > 0, name.replace("_", "-"), f"must be a finite number > 0 (got {v})"
            )
        require(
            self.emerge_ratio < self.fade_ratio,
            "fade-ratio",
            f"must exceed --emerge-ratio ({self.emerge_ratio}) so a run cannot be both emerged and faded "
            "at its minimum",
        )


def saddle_levels(
    mechanisms: Sequence[Sequence[str]], vectors: Sequence[str], R: np.ndarray, dims: np.ndarray
) -> np.ndarray:
    """L_k⁰ = Π R / (2 Π n) per run and mechanism; R and dims have shape (runs, V). Returns (runs, K)."""
    out = []
    for mech in mechanisms:
        idx = [vectors.index(v) for v in mech]
        prod_r = functools.reduce(operator.mul, (R[:, i] for i in idx))
        prod_n = functools.reduce(operator.mul, (dims[:, i].astype(np.float64) for i in idx))
        out.append(prod_r / (2 * prod_n))
    return np.stack(out, axis=-1)


def _first_time(mask: np.ndarray, t: np.ndarray) -> np.ndarray:
    hit = mask.any(axis=1)
    return np.where(hit, t[np.argmax(mask, axis=1)], np.nan)


def _last_finite(y: np.ndarray) -> np.ndarray:
    finite = np.isfinite(y)
    last = y.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    return np.where(finite.any(axis=1), y[np.arange(y.shape[0]), last], np.nan)


def verdicts(
    m1_ref: np.ndarray, m1_min: np.ndarray, m1_final: np.ndarray, th: VerdictThresholds
) -> np.ndarray:
    """Verdict codes (indices into :data:`VERDICTS`) from the three mechanism-1 levels."""
    emerged = m1_min <= th.emerge_ratio * m1_ref
    faded = m1_final >= th.fade_ratio * m1_ref
    return np.where(~emerged, 0, np.where(faded, 2, 1)).astype(np.int8)


def summarise(
    t: np.ndarray,
    curves: Mapping[str, np.ndarray],
    ref: np.ndarray,
    stop: np.ndarray,
    failed: np.ndarray,
    th: VerdictThresholds,
) -> dict[str, np.ndarray]:
    """Summary measures of a batch of runs.

    Args:
        t: recorded times (n_times,).
        curves: ``loss``, ``mechanism_1_loss`` (and ``mechanism_2_loss``), each (runs, n_times).
        ref: saddle levels L_k⁰, (runs, K).
        stop: stop step/time per run; failed: bool per run.
        th: thresholds.
    """
    t = np.asarray(t, dtype=np.float64)
    m1 = np.asarray(curves["mechanism_1_loss"], dtype=np.float64)
    n = m1.shape[0]
    rows = np.arange(n)
    any1 = np.isfinite(m1).any(axis=1)
    j = np.argmin(np.where(np.isfinite(m1), m1, np.inf), axis=1)
    out = {
        "m1_initial": m1[:, 0],
        "m1_ref": ref[:, 0],
        "m1_min": np.where(any1, m1[rows, j], np.nan),
        "m1_min_time": np.where(any1, t[j], np.nan),
        "m1_final": _last_finite(m1),
        "loss_final": _last_finite(np.asarray(curves["loss"], dtype=np.float64)),
    }
    if "mechanism_2_loss" in curves:
        m2 = np.asarray(curves["mechanism_2_loss"], dtype=np.float64)
        filled = np.where(np.isfinite(m2), m2, np.inf)
        rise = m2 - np.minimum.accumulate(filled, axis=1)
        fall = m2 - np.minimum.accumulate(filled[:, ::-1], axis=1)[:, ::-1]
        bump = np.where(np.isfinite(m2), np.minimum(rise, fall), -np.inf)
        k = np.argmax(bump, axis=1)
        depth = bump[rows, k]
        out["m2_final"] = _last_finite(m2)
        out["m2_divot_depth"] = np.where(np.isfinite(depth), np.maximum(depth, 0.0), np.nan)
        out["m2_divot_time"] = np.where(depth > 0, t[k], np.nan)
    else:
        out["m2_final"] = out["m2_divot_depth"] = out["m2_divot_time"] = np.full(n, np.nan)
    out["loss_threshold_time"] = _first_time(np.asarray(curves["loss"]) < th.loss_threshold, t)
    escaped = np.zeros(m1.shape, dtype=bool)
    for k in range(ref.shape[1]):
        escaped |= np.asarray(curves[f"mechanism_{k + 1}_loss"]) < th.escape_ratio * ref[:, k : k + 1]
    out["escape_time"] = _first_time(escaped, t)
    out["stop"] = np.asarray(stop, dtype=np.float64)
    out["failed"] = np.asarray(failed, dtype=bool)
    out["verdict"] = verdicts(out["m1_ref"], out["m1_min"], out["m1_final"], th)
    return out


__all__ = [
    "PENDING",
    "SUMMARY_FIELDS",
    "VERDICTS",
    "VerdictThresholds",
    "saddle_levels",
    "summarise",
    "verdicts",
]
