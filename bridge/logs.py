"""Transformer loss curves read from a ``log.h5``.

The layout of the log (groups, soft links, datasets) has one owner, :mod:`transformer.log`; this
module reads through it and adds the bridge's own notions. A curve is the mean over the
evaluation sequences of one metric of one evaluator at every evaluation. Curve names:

* ``icl``, ``ciwl``, ``flip``, ``iwl``, ``train_eval`` — the evaluator of that name or alias
  (:data:`transformer.log.ALIASES`, e.g. ``ciwl`` → ``iwl_copy_avail``);
* ``total`` — the training loss: ``train_eval`` if present, else the per-step ``train_loss``
  averaged over the steps since the previous evaluation.

Metrics: ``loss`` (default) or ``error`` = 1 − accuracy (so that, like a loss, it falls as the
network learns).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from toymodels.errors import ConfigError, require
from transformer.log import ALIASES, evaluator_group, open_log, read_config

EVALUATOR_OF: dict[str, str] = {
    name: ALIASES.get(name, name) for name in ("icl", "ciwl", "flip", "iwl", "train_eval")
}
"""Curve name → the evaluator group it is read from."""
CURVE_NAMES = tuple(EVALUATOR_OF) + ("total",)
METRICS = ("loss", "error")
MIN_POINTS = 8


@dataclasses.dataclass(frozen=True)
class Curves:
    """Transformer curves on a common evaluation grid.

    Attributes:
        seen: sequences seen at each evaluation, shape (n,), increasing.
        values: curve name → mean metric at each evaluation, shape (n,).
        metric: ``loss`` or ``error``.
        source: where the curves came from (a path, or a description).
        sources: curve name → the HDF5 object it was read from.
        config: the training configuration (the log's ``config`` attribute), or {}.
    """

    seen: np.ndarray
    values: dict[str, np.ndarray]
    metric: str = "loss"
    source: str = ""
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    @property
    def n_points(self) -> int:
        return int(self.seen.shape[0])

    def validate(self, min_points: int = MIN_POINTS) -> Curves:
        """Check shapes, monotone time and finiteness; raise :class:`ConfigError` naming the problem."""
        seen = np.asarray(self.seen, dtype=np.float64)
        src = self.source
        require(seen.ndim == 1, "log", f"eval_iter must be 1-d (got shape {seen.shape})")
        require(
            seen.shape[0] >= min_points,
            "log",
            f"{src}: too few evaluation points ({seen.shape[0]}; the fit needs at least {min_points})",
        )
        require(bool(np.all(np.isfinite(seen))), "log", f"{src}: eval_iter has non-finite values")
        require(bool(np.all(np.diff(seen) > 0)), "log", f"{src}: eval_iter must be strictly increasing")
        require(seen[-1] > 0, "log", f"{src}: eval_iter must reach a positive number of sequences")
        for name, y in self.values.items():
            require(
                np.shape(y) == seen.shape,
                "curves",
                f"curve {name!r} has shape {np.shape(y)}, expected {seen.shape}",
            )
            bad = np.nonzero(~np.isfinite(y))[0]
            require(
                bad.size == 0,
                "log",
                f"{src}: curve {name!r} has non-finite values at {bad.size} evaluation(s), "
                f"first at sequences seen {int(seen[bad[0]]) if bad.size else 0}",
            )
            require(float(np.ptp(y)) > 0, "curves", f"curve {name!r} is constant; nothing to fit")
        return self

    def select(self, names: Sequence[str]) -> Curves:
        return dataclasses.replace(self, values={n: self.values[n] for n in names})

    def skip_first(self, n: int) -> Curves:
        """Drop the first ``n`` evaluations (e.g. the initialisation transient the toy does not
        model); the time origin stays at 0 sequences seen."""
        require(int(n) == n and n >= 0, "skip-first", f"must be an integer >= 0 (got {n})")
        require(n < self.n_points, "skip-first", f"cannot skip {n} of {self.n_points} evaluations")
        values = {k: v[n:] for k, v in self.values.items()}
        return dataclasses.replace(self, seen=self.seen[n:], values=values)

    def until(self, max_seen: float) -> Curves:
        """Keep the evaluations at most ``max_seen`` sequences seen (e.g. the first part of a
        longer run)."""
        keep = self.seen <= max_seen
        require(bool(np.any(keep)), "max-seen", f"no evaluation at or before {max_seen:g} sequences seen")
        values = {k: v[keep] for k, v in self.values.items()}
        return dataclasses.replace(self, seen=self.seen[keep], values=values)


def parse_curve_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """``icl,ciwl,total`` → ("icl", "ciwl", "total"), checked against :data:`CURVE_NAMES`."""
    items = text.split(",") if isinstance(text, str) else text
    names = tuple(s.strip() for s in items if s.strip())
    require(len(names) >= 1, "curves", "name at least one curve")
    require(len(set(names)) == len(names), "curves", f"repeated curve names in {names}")
    for n in names:
        require(n in CURVE_NAMES, "curves", f"unknown curve {n!r} (known: {', '.join(CURVE_NAMES)})")
    return names


def _dataset_of(metric: str) -> str:
    """The per-sequence dataset a metric is computed from."""
    return "loss" if metric == "loss" else "acc"


def _metric_of(group, metric: str, path: str, name: str) -> np.ndarray:
    """Mean over the evaluation sequences of ``metric`` (loss, or 1 − acc) at every evaluation."""
    key = _dataset_of(metric)
    require(
        key in group,
        "log",
        f"{path}: evaluator {group.name!r} has no {key!r} dataset (needed for curve {name!r})",
    )
    data = np.asarray(group[key][()], dtype=np.float64)
    require(
        data.ndim == 2,
        "log",
        f"{path}: {group.name}/{key} must be (n_evals, n_eval_sequences) (got {data.shape})",
    )
    mean = data.mean(axis=1)
    return mean if metric == "loss" else 1.0 - mean


def _train_loss_windows(f, seen: np.ndarray, path: str) -> np.ndarray:
    """Per-step training loss averaged over the steps since the previous evaluation (at seen[0]:
    the first step's loss)."""
    require(
        "train_loss" in f and "train_iter" in f,
        "log",
        f"{path}: no train_eval evaluator and no train_loss/train_iter datasets (needed for curve 'total')",
    )
    loss = np.asarray(f["train_loss"][()], dtype=np.float64)
    it = np.asarray(f["train_iter"][()], dtype=np.float64)
    require(
        loss.shape == it.shape and loss.size > 0,
        "log",
        f"{path}: train_loss and train_iter are empty or differ in length",
    )
    out = np.empty(seen.shape)
    prev = -np.inf
    for i, s in enumerate(seen):
        window = (it > prev) & (it <= s)
        if not np.any(window):  # before the first step: the first recorded step
            window = it == it[np.argmin(np.abs(it - s))]
        out[i] = loss[window].mean()
        prev = s
    return out


def _evaluator_curve(f, name: str, metric: str, path: str) -> tuple[np.ndarray, str]:
    """Curve ``name`` (not ``total``) and the dataset it was read from."""
    group = evaluator_group(f, EVALUATOR_OF[name])
    if group is None:  # an alias stored as a group of its own
        group = evaluator_group(f, name)
    require(
        group is not None,
        "log",
        f"{path}: evaluator {EVALUATOR_OF[name]!r} (curve {name!r}) is missing; "
        f"the log has {', '.join(sorted(f.keys()))}",
    )
    return _metric_of(group, metric, path, name), group.name.lstrip("/") + "/" + _dataset_of(metric)


def _total_curve(f, seen: np.ndarray, metric: str, path: str) -> tuple[np.ndarray, str]:
    """The training loss: ``train_eval`` if the log has it, else the per-step windows."""
    if "train_eval" in f:
        return _metric_of(f["train_eval"], metric, path, "total"), "train_eval/" + _dataset_of(metric)
    require(metric == "loss", "metric", "the per-step training log has only the loss")
    return _train_loss_windows(f, seen, path), "train_loss (mean since the previous evaluation)"


def read_log(
    path: str | os.PathLike,
    curves: Sequence[str] = ("icl", "ciwl", "total"),
    metric: str = "loss",
    min_points: int = MIN_POINTS,
    skip_first: int = 0,
    max_seen: float | None = None,
) -> Curves:
    """Read curves from a transformer ``log.h5`` (dropping the first ``skip_first`` evaluations and
    those after ``max_seen`` sequences seen).

    Raises :class:`ConfigError` (parameter ``log``) if the file is missing, unreadable, truncated or
    malformed, lacks an evaluator needed by ``curves``, has fewer than ``min_points`` evaluations or
    non-finite values.
    """
    path = os.fspath(path)
    curves = parse_curve_names(curves)
    require(metric in METRICS, "metric", f"must be one of {METRICS} (got {metric!r})")
    try:
        curves = _read(path, curves, metric)
    except (KeyError, OSError, ValueError, TypeError, IndexError, RuntimeError) as e:
        # truncated files, wrongly typed or shaped datasets: h5py/NumPy errors become one line
        raise ConfigError("log", f"{path}: malformed log ({type(e).__name__}: {e})") from None
    if max_seen is not None:
        curves = curves.until(max_seen)
    if skip_first:
        curves = curves.skip_first(skip_first)
    return curves.validate(min_points)


def _read(path: str, curves: tuple[str, ...], metric: str) -> Curves:
    with open_log(path, "log") as f:
        seen = np.asarray(f["eval_iter"][()], dtype=np.float64)
        require(seen.ndim == 1, "log", f"{path}: eval_iter must be 1-d (got shape {seen.shape})")
        values, sources = {}, {}
        for name in curves:
            if name == "total":
                values[name], sources[name] = _total_curve(f, seen, metric, path)
            else:
                values[name], sources[name] = _evaluator_curve(f, name, metric, path)
        for name, y in values.items():
            require(
                y.shape == seen.shape,
                "log",
                f"{path}: curve {name!r} has {y.shape[0]} evaluations but eval_iter has {seen.shape[0]}",
            )
        config = read_config(f)
    return Curves(seen=seen, values=values, metric=metric, source=path, sources=sources, config=config)


__all__ = ["CURVE_NAMES", "Curves", "EVALUATOR_OF", "METRICS", "MIN_POINTS", "parse_curve_names", "read_log"]
