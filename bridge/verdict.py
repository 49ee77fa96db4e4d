r"""The transience verdict: one definition for the transformer's ICL curve and the toy's mechanism 1.

:func:`peak_and_fade` reads a loss curve :math:`y(x)` (transformer units, or the toy's
:math:`L_1` in toy units) and needs no knowledge of its units: the verdict is invariant under the
affine maps :math:`y → s\,y + o` (s > 0) that relate the two. With the minimum :math:`y_\min` at
:math:`x_\mathrm{peak}` (the ICL peak), the reference level :math:`y_\mathrm{ref}` = the median of
the values before the minimum (the plateau the curve sat on before learning: for the toy
:math:`≈ L_1^0`; robust to an initialisation transient or an initial overlap that starts the curve
above the plateau) and the drop :math:`D = y_\mathrm{ref} - y_\min`:

* **learned** (ICL emerged): the minimum is not the first value and :math:`D ≥ 0.1\,(\max y - \min y)`;
* **fades** (transient): learned, and the *final* level :math:`y_\mathrm{end}` (median of the last
  three values) has recovered at least half of the drop, :math:`y_\mathrm{end} - y_\min ≥ ½D`;
* ``fade_at``: the first x after the peak where the (3-point running median of the) curve reaches
  :math:`y_\min + ½D`, linearly interpolated.

This is the sweep's verdict (:mod:`toymodels.sweep.verdicts`: transient iff the final
:math:`L_1 ≥ ½L_1^0`) with the saddle level replaced by the plateau before the minimum and the toy's
zero floor by the curve's minimum — the two notions a transformer curve has. A curve that falls from 1 to
0.2 and climbs back to 0.8 fades (0.6 ≥ 0.4); one that dips and recovers only briefly (a single
noisy point) does not, because the verdict is read from the final level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FADE_FRACTION = 0.5
LEARN_FRACTION = 0.1


def _median3(y: np.ndarray) -> np.ndarray:
    if y.size < 3:
        return y.copy()
    pad = np.concatenate([y[:1], y, y[-1:]])
    return np.median(np.stack([pad[:-2], pad[1:-1], pad[2:]]), axis=0)


def _crossing(x: np.ndarray, y: np.ndarray, level: float, start: int) -> float:
    """First x ≥ x[start] where y reaches ``level`` from below (linear interpolation); NaN if never."""
    hit = np.nonzero(y[start:] >= level)[0]
    if hit.size == 0:
        return np.nan
    j = start + int(hit[0])
    if j == start:
        return float(x[j])
    f = (level - y[j - 1]) / (y[j] - y[j - 1])
    return float(x[j - 1] + f * (x[j] - x[j - 1]))


def peak_and_fade(x, loss, fade_fraction: float = FADE_FRACTION) -> dict[str, Any]:
    """Verdict of one ICL loss curve (module docstring): ``peak_at``, ``peak_value``, ``drop``,
    ``learned``, ``fades``, ``fade_at``, ``reference`` (the plateau level), ``final`` (the final
    level), ``solve_failed``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    failed = not np.all(np.isfinite(y)) or y.size < 2
    out = {
        "peak_at": np.nan,
        "peak_value": np.nan,
        "drop": np.nan,
        "final": np.nan,
        "learned": False,
        "fades": False,
        "fade_at": np.nan,
        "solve_failed": bool(failed),
    }
    if failed:
        return out
    i = int(np.argmin(y))
    ref = float(np.median(y[:i])) if i > 0 else float(y[0])
    drop = float(ref - y[i])
    final = float(np.median(y[-3:]))
    learned = bool(i > 0 and drop > 0 and drop >= LEARN_FRACTION * float(np.ptp(y)))
    fades = bool(learned and final - y[i] >= fade_fraction * drop)
    out.update(peak_value=float(y[i]), reference=ref, drop=drop, final=final, learned=learned, fades=fades)
    if learned:
        out["peak_at"] = float(x[i])
    if fades:
        out["fade_at"] = _crossing(x, _median3(y), float(y[i] + fade_fraction * drop), i)
    return out


def transience(toy_grid: dict[str, np.ndarray], seen: np.ndarray, observed: np.ndarray | None) -> dict:
    """The toy's verdict within the log (the window the data show: ``predicted``) and up to the
    prediction horizon (``predicted_horizon``), the transformer's (``observed``, if its ICL curve
    was fitted), and whether the two agree."""
    x, m1 = toy_grid["seen"], toy_grid["mechanism_1"]
    inside = x <= seen[-1] * (1 + 1e-12)
    out: dict[str, Any] = {
        "definition": "bridge.verdict.peak_and_fade (docs/bridge.md, 'Transience')",
        "predicted": peak_and_fade(x[inside], m1[inside]),
        "predicted_horizon": peak_and_fade(x, m1),
        "horizon_seen": float(x[-1]),
    }
    out["predicts_transience"] = bool(out["predicted"]["fades"])
    if observed is not None:
        obs = peak_and_fade(seen, observed)
        out["observed"] = obs
        out["agrees"] = bool(obs["fades"] == out["predicted"]["fades"])
        p = out["predicted"]
        if p["learned"] and obs["learned"]:
            out["peak_ratio_predicted_over_observed"] = p["peak_at"] / obs["peak_at"]
    return out


__all__ = ["FADE_FRACTION", "LEARN_FRACTION", "peak_and_fade", "transience"]
