"""The training log ``log.h5``: its one owner (writer, reader, aliases).

Layout (the original study's, see docs/transformer.md):

=============================================  ========================  ===============================
dataset                                        shape                     meaning
=============================================  ========================  ===============================
``eval_iter``                                  (n_evals,)                sequences seen at each evaluation
``<evaluator>/{loss,acc,in_context_acc,prob}`` (n_evals, n_eval)         per-sequence metrics
``ciwl``, ``flip``, ``iwl``                    soft links                ``iwl_copy_avail``, ``flip_icl``,
                                                                         ``pure_iwl``
``train_loss``, ``train_iter``                 (n_steps,)                mean batch loss of each step,
                                                                         sequences seen after it
``<evaluator>/target``                          (n_eval,)                 target label of each sequence
``train_penalty``                              (n_steps,)                λ Σ‖a‖ of each step (runs with
                                                                         ``l2_penalty > 0``)
``probes/<probe>``                             (n_evals, depth, heads)   attention probes
attribute ``config``                           JSON                      the run's ``TrainConfig``
=============================================  ========================  ===============================

Writers: :func:`create_log` (empty, resizable, atomic), :func:`append_train_loss`,
:func:`append_eval` (used by training) and :func:`write_log` (a whole log from arrays: tests,
synthetic curves). Readers: :func:`open_log` (one-line errors for missing or foreign files),
:func:`evaluator_group` (a name or alias), :func:`read_config`, :func:`check_shapes`, :func:`evaluator_means`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from toymodels._internal import atomic_write
from toymodels.errors import ConfigError, require

from .config import EVALUATORS, TrainConfig

ALIASES: dict[str, str] = {"ciwl": "iwl_copy_avail", "flip": "flip_icl", "iwl": "pure_iwl"}
"""Soft links of the log: short name → evaluator group."""
METRICS: tuple[str, ...] = ("loss", "acc", "in_context_acc", "prob")
"""Per-sequence metrics of every evaluator group."""
PROBES: tuple[str, ...] = ("induction_strength", "prev_token_attn", "induction_strength_flip", "self_attn")
"""Datasets of the ``probes`` group, each (n_evals, depth, heads)."""


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def create_log(
    path: str,
    cfg: TrainConfig,
    depth: int,
    heads: int,
    attrs: dict[str, str] | None = None,
    targets: dict[str, np.ndarray] | None = None,
) -> None:
    """Empty, resizable log for ``cfg``'s evaluators (written atomically); ``attrs``: further
    root attributes (e.g. what a re-evaluation evaluated); ``targets``: each evaluator set's target
    label per sequence (``<evaluator>/target``, fixed for the run)."""
    atomic_write(
        path, lambda tmp: _write_empty_log(tmp, cfg, depth, heads, attrs or {}, targets or {}), suffix=".h5"
    )


def _write_empty_log(tmp: str, cfg: TrainConfig, depth: int, heads: int, attrs, targets) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = cfg.to_json()
        for key, value in attrs.items():
            f.attrs[key] = value
        f.create_dataset("eval_iter", (0,), maxshape=(None,), dtype="i8")
        f.create_dataset("train_loss", (0,), maxshape=(None,), dtype="f4", chunks=(4096,))
        f.create_dataset("train_iter", (0,), maxshape=(None,), dtype="i8", chunks=(4096,))
        if cfg.l2_penalty:
            f.create_dataset("train_penalty", (0,), maxshape=(None,), dtype="f4", chunks=(4096,))
        for name in cfg.evaluators:
            g = f.create_group(name)
            for m in METRICS:
                g.create_dataset(
                    m, (0, cfg.n_eval), maxshape=(None, cfg.n_eval), dtype="f4",
                    chunks=(1, cfg.n_eval),
                )
            if name in targets:
                g.create_dataset("target", data=np.asarray(targets[name], np.int64))
        p = f.create_group("probes")
        for m in PROBES:
            p.create_dataset(m, (0, depth, heads), maxshape=(None, depth, heads), dtype="f4")
        _link_aliases(f, cfg.evaluators)


def _link_aliases(f: h5py.File, evaluators) -> None:
    for alias, target in ALIASES.items():
        if target in evaluators:
            f[alias] = h5py.SoftLink("/" + target)


def _append(d: h5py.Dataset, rows: np.ndarray) -> None:
    n = d.shape[0]
    d.resize(n + rows.shape[0], axis=0)
    d[n:] = rows


def append_train_loss(
    path: str, losses: np.ndarray, first_step: int, batch: int, penalties: np.ndarray | None = None
) -> None:
    """Append the per-step losses of steps ``first_step, first_step + 1, …`` (batch ``batch``) and,
    for runs with a loss penalty, the penalty ``λ Σ_a ‖a‖`` of each step (``train_penalty``)."""
    with h5py.File(path, "a") as f:
        _append(f["train_loss"], np.asarray(losses, np.float32))
        if penalties is not None:
            _append(f["train_penalty"], np.asarray(penalties, np.float32))
        steps = first_step + np.arange(len(losses))
        _append(f["train_iter"], (steps + 1) * batch)


def append_eval(path: str, seen: int, metrics: dict, probes: dict) -> None:
    """Append one evaluation: ``metrics[evaluator][metric]`` (n_eval,) and ``probes[name]``."""
    with h5py.File(path, "a") as f:
        _append(f["eval_iter"], np.array([seen]))
        for name, ms in metrics.items():
            for m in METRICS:
                _append(f[name][m], np.asarray(ms[m], np.float32)[None])
        for m, v in probes.items():
            _append(f["probes"][m], np.asarray(v, np.float32)[None])


def write_log(
    path: str | os.PathLike,
    seen: np.ndarray,
    evaluators: dict[str, dict[str, np.ndarray]],
    config: dict | None = None,
    train_loss: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Write a whole log from arrays (tests, synthetic curves).

    ``evaluators``: group name → {metric: (n_evals, n_eval) array}; ``train_loss``: optional
    ``(train_iter, train_loss)`` per-step arrays. Soft links are added as training adds them.
    """
    with h5py.File(os.fspath(path), "w") as f:
        f.attrs["config"] = json.dumps(config or {})
        f.create_dataset("eval_iter", data=np.asarray(seen, dtype=np.int64))
        for name, metrics in evaluators.items():
            g = f.create_group(name)
            for m, v in metrics.items():
                g.create_dataset(m, data=np.asarray(v, dtype=np.float32))
        _link_aliases(f, evaluators)
        if train_loss is not None:
            f.create_dataset("train_iter", data=np.asarray(train_loss[0], dtype=np.int64))
            f.create_dataset("train_loss", data=np.asarray(train_loss[1], dtype=np.float32))


def trim_log(src: str | os.PathLike, dst: str | os.PathLike, n_eval: int) -> None:
    """Copy log ``src`` to ``dst`` (atomically) in the same layout, keeping only the first ``n_eval``
    sequences of each evaluator (``<evaluator>/<metric>`` and ``<evaluator>/target``): a log small
    enough to commit. Everything else (training losses, probes, attributes) is copied whole."""
    require(n_eval >= 1, "n_eval", f"must be >= 1, got {n_eval}")

    def write(tmp: str) -> None:
        with h5py.File(os.fspath(src), "r") as f, h5py.File(tmp, "w") as g:
            for key, value in f.attrs.items():
                g.attrs[key] = value
            g.attrs["trimmed_to_sequences"] = n_eval
            for name in f:
                link = f.get(name, getlink=True)
                if isinstance(link, h5py.SoftLink):
                    continue
                if name in EVALUATORS:
                    grp = g.create_group(name)
                    for m, d in f[name].items():
                        data = d[:, :n_eval] if d.ndim == 2 else d[:n_eval]
                        grp.create_dataset(m, data=data, maxshape=(None,) * d.ndim)
                else:
                    f.copy(f[name], g, name=name)
            _link_aliases(g, [n for n in EVALUATORS if n in g])

    atomic_write(os.fspath(dst), write, suffix=".h5")


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def open_log(path: str | os.PathLike, param: str = "log") -> h5py.File:
    """Open a log for reading; :class:`ConfigError` on ``param`` if it is missing, not HDF5 or
    has no ``eval_iter`` (not a transformer log)."""
    path = os.fspath(path)
    require(os.path.isfile(path), param, f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConfigError(param, f"cannot read {path} as HDF5: {e}") from None
    if "eval_iter" not in f:
        f.close()
        raise ConfigError(param, f"{path}: no 'eval_iter' dataset; not a transformer log")
    return f


def evaluator_group(f: h5py.File, name: str) -> h5py.Group | None:
    """The group of evaluator ``name`` (or of the evaluator an alias names); ``None`` if absent."""
    for candidate in (name, ALIASES.get(name)):
        if candidate is not None and candidate in f:
            return f[candidate]
    return None


def read_config(f: h5py.File) -> dict[str, Any]:
    """The log's ``config`` attribute as a dict ({} if absent or not JSON)."""
    try:
        return json.loads(f.attrs["config"]) if "config" in f.attrs else {}
    except (TypeError, ValueError):
        return {}


def _require_shape(name: str, shape: tuple[int, ...], expected: tuple[int | None, ...], path: str) -> None:
    """``shape`` matches ``expected`` (``None``: any size), else one line naming the dataset."""
    ok = len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))
    sizes = [str(e) if e is not None else "any" for e in expected]
    want = f"({', '.join(sizes)}{',' if len(sizes) == 1 else ''})"
    require(ok, "log", f"dataset {name!r} of {path} has shape {shape}, expected {want}")


def check_shapes(f: h5py.File, path: str) -> int:
    """Check the shapes of a log's datasets: ``eval_iter`` (n,), ``<evaluator>/<metric>`` (n, N),
    ``<evaluator>/target`` (N,), ``probes/<probe>`` (n, depth ≥ 1, heads). Returns n; raises
    :class:`ConfigError` on ``log`` naming the first wrongly shaped dataset."""
    _require_shape("eval_iter", f["eval_iter"].shape, (None,), path)
    n = f["eval_iter"].shape[0]
    for name in EVALUATORS:
        group = evaluator_group(f, name)
        if group is None:
            continue
        n_seq = None
        for m in METRICS:
            if m in group:
                _require_shape(f"{name}/{m}", group[m].shape, (n, n_seq), path)
                n_seq = group[m].shape[1]
        if "target" in group:
            _require_shape(f"{name}/target", group["target"].shape, (n_seq,), path)
    if "probes" in f:
        for probe, d in f["probes"].items():
            _require_shape(f"probes/{probe}", d.shape, (n, None, None), path)
            require(d.shape[1] >= 1, "log", f"dataset 'probes/{probe}' of {path} has no layer")
    return n


def evaluator_means(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``eval_iter``, ``"<evaluator>/<metric>"`` means over the evaluation sequences (n_evals,) and
    ``"probes/<probe>"`` (n_evals, depth, heads) of the log at ``path`` (shapes checked first:
    :func:`check_shapes`)."""
    out = {}
    with h5py.File(os.fspath(path), "r") as f:
        check_shapes(f, os.fspath(path))
        out["eval_iter"] = f["eval_iter"][:]
        for name in EVALUATORS:
            if name in f:
                for m in METRICS:
                    if m in f[name]:
                        out[f"{name}/{m}"] = f[name][m][:].mean(axis=1)
        if "probes" in f:
            for m in f["probes"]:
                out[f"probes/{m}"] = f["probes"][m][:]
    return out


def split_by_target(
    path: str | os.PathLike, evaluator: str = "icl", metric: str = "in_context_acc",
    targets: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """``{label: mean of metric over the sequences whose target is label}`` (n_evals,) per target
    label of ``evaluator``'s set. The targets come from the log's ``<evaluator>/target`` (logs written
    since it was added) or from ``targets``. On the ICL set (labels 0 and 1, which are also the trained
    labels of classes 0 and 1) this shows how the model's in-weights preference between the two
    labels splits the ICL accuracy."""
    with h5py.File(os.fspath(path), "r") as f:
        group = evaluator_group(f, evaluator)
        if group is None:
            raise ConfigError("evaluator", f"{path}: no evaluator {evaluator!r}")
        values = group[metric][:]
        if targets is None:
            if "target" not in group:
                raise ConfigError("targets", f"{path}: {evaluator}/target is absent; pass the set's targets")
            targets = group["target"][:]
    targets = np.asarray(targets)
    return {int(t): values[:, targets == t].mean(axis=1) for t in np.unique(targets)}


__all__ = [
    "ALIASES",
    "METRICS",
    "PROBES",
    "append_eval",
    "append_train_loss",
    "check_shapes",
    "create_log",
    "evaluator_group",
    "evaluator_means",
    "open_log",
    "read_config",
    "split_by_target",
    "trim_log",
    "write_log",
]
