"""Checkpoints of a run and moving modules between models.

A checkpoint is a directory ``OUT/ckpt-NNNNNN/`` (``NNNNNN`` = evaluations done) holding
``model.eqx`` (Equinox leaf serialisation) and ``meta.json`` (``{"config": TrainConfig JSON,
"steps": …, "evals": …, "seen": …}``, ``seen`` = sequences seen = steps × batch size). The *latest*
checkpoint, the one a run resumes from, also holds ``opt.eqx`` (the optimiser state) and a snapshot
``log.h5`` of the log: it is written to a fresh directory, then published by atomically replacing
the pointer file ``OUT/latest``. Older checkpoints are then deleted, except the evaluations the run
keeps as history (``keep_checkpoints``, see :mod:`transformer.schedule`), which lose ``opt.eqx`` and
``log.h5`` but keep ``model.eqx`` and ``meta.json``; a kept evaluation that does not refresh the
latest checkpoint is written directly in that reduced form (:func:`save_history`).
:func:`list_checkpoints` lists a run's checkpoints, :func:`checkpoint_at` picks one by sequences
seen, :func:`load_checkpoint` loads one.

Module paths name submodules of :class:`~transformer.model.Transformer` by attribute and index
(``blocks.1``, ``unembed``, ``embed_x``): :func:`graft` copies them from a donor, :func:`frozen_mask`
marks them for :func:`transformer.build.make_optimizer`; :func:`transplant` takes all of a donor's
weights (``init_from``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Collection
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from toymodels._internal import write_text_atomic
from toymodels.errors import ConfigError

from .build import feature_dim_of, init_model
from .config import TrainConfig
from .log import open_log, read_config
from .model import Transformer

LATEST = "latest"
"""Name of the pointer file holding the latest checkpoint's directory name."""
PREFIX = "ckpt-"
"""Checkpoint directories are ``PREFIX`` + the number of evaluations done, six digits."""
RESUME_FILES = ("opt.eqx", "log.h5")
"""Files only the latest checkpoint keeps (kept history checkpoints drop them)."""


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint of a run: ``evals`` evaluations and ``steps`` steps done, ``seen`` sequences
    seen (``steps × batch_size``), at directory ``path``."""

    evals: int
    steps: int
    seen: int
    path: str


def latest_checkpoint(out: str) -> str | None:
    """Directory of the latest checkpoint of run directory ``out`` (``None`` if there is none)."""
    pointer = os.path.join(out, LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, errors="replace") as f:
        name = f.read().strip()
    path = os.path.join(out, name)
    return path if name and os.path.isdir(path) else None


def read_meta(ckpt: str, what: str = "checkpoint") -> dict[str, Any]:
    """``meta.json`` of checkpoint directory ``ckpt`` with ``config`` parsed to a :class:`TrainConfig`;
    :class:`ConfigError` naming ``what`` if it is missing or not a checkpoint's."""
    path = os.path.join(ckpt, "meta.json")
    try:
        with open(path) as f:
            meta = json.load(f)
        meta = {**meta, "config": TrainConfig.from_json(meta["config"])}
        meta["steps"], meta["evals"] = int(meta["steps"]), int(meta["evals"])
    except ConfigError as e:
        raise ConfigError(what, f"{path!r} holds a bad configuration ({e})") from None
    except (OSError, ValueError, TypeError, KeyError, OverflowError) as e:
        raise ConfigError(what, f"cannot read {path!r} ({type(e).__name__})") from None
    return meta


def saved_config(out: str, what: str = "resume") -> tuple[TrainConfig, str] | None:
    """``(config, source)`` of the run in directory ``out``: its latest checkpoint's (``source`` =
    ``"checkpoint"``), else its log's for a run that started but never checkpointed (``"log"``);
    ``None`` if ``out`` holds neither. :class:`ConfigError` naming ``what`` if they are unreadable."""
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        return read_meta(ckpt, what)["config"], "checkpoint"
    log_path = os.path.join(out, "log.h5")
    if not os.path.isfile(log_path):
        return None
    try:
        with open_log(log_path, what) as f:
            plain = read_config(f)
        return TrainConfig.from_dict(plain), "log"
    except (ConfigError, OSError) as e:
        raise ConfigError(what, f"cannot read the configuration of {log_path!r} ({e})") from None


def config_differences(given: TrainConfig, saved: TrainConfig, limit: int = 4) -> str:
    """The fields where ``given`` differs from ``saved``, as ``--flag GIVEN (saved: SAVED)``, comma
    separated (the first ``limit``, then how many more); ``""`` if they are equal."""

    def show(value: Any) -> str:
        if isinstance(value, tuple):
            parts = (":".join(map(str, v)) if isinstance(v, tuple) else getattr(v, "name", v) for v in value)
            return ",".join(map(str, parts)) or "''"
        return "none" if value is None else str(value)

    diffs = [
        f"--{f.name.replace('_', '-')} {show(getattr(given, f.name))} (saved: {show(getattr(saved, f.name))})"
        for f in dataclasses.fields(TrainConfig)
        if getattr(given, f.name) != getattr(saved, f.name)
    ]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def restore_state(ckpt: str, model: Transformer, opt_state: PyTree) -> tuple[Transformer, PyTree]:
    """The model and optimiser state saved in ``ckpt``, read into the structures ``model`` and
    ``opt_state`` of the run being resumed; :class:`ConfigError` (``resume``) if the files are
    corrupt or do not fit them (e.g. a frozen-graft run saved before frozen parameters stopped
    keeping Adam moments).
    """
    try:
        model = eqx.tree_deserialise_leaves(os.path.join(ckpt, "model.eqx"), model)
        opt_state = eqx.tree_deserialise_leaves(os.path.join(ckpt, "opt.eqx"), opt_state)
    except Exception as e:  # whatever a corrupt or foreign file makes the deserialiser raise
        raise ConfigError(
            "resume", f"{ckpt!r} does not hold this run's model and optimiser state ({_reason(e)})"
        ) from None
    return model, opt_state


def _reason(e: Exception) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def _write_checkpoint(out: str, evals: int, write) -> str:
    """Fill a fresh temporary directory with ``write(tmp)`` and rename it to ``OUT/ckpt-<evals>``
    (replacing an older one of that name); return its name."""
    name = f"{PREFIX}{evals:06d}"
    final = os.path.join(out, name)
    tmp = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=out)
    write(tmp)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return name


def _write_model_and_meta(tmp: str, model, cfg: TrainConfig, steps: int, evals: int) -> None:
    eqx.tree_serialise_leaves(os.path.join(tmp, "model.eqx"), model)
    meta = {"config": cfg.to_json(), "steps": steps, "evals": evals, "seen": steps * cfg.batch_size}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f)


def save_checkpoint(
    out: str,
    log_path: str,
    model,
    opt_state,
    cfg: TrainConfig,
    steps: int,
    evals: int,
    keep: Collection[int] = (),
) -> None:
    """Write the resumable ``OUT/ckpt-<evals>/`` then atomically point ``OUT/latest`` at it.

    Then every other checkpoint directory is deleted, except those of the evaluations in ``keep``
    (numbers of evaluations done), which are reduced to ``model.eqx`` + ``meta.json``; leftovers
    of interrupted writes are removed too.
    """

    def write(tmp: str) -> None:
        _write_model_and_meta(tmp, model, cfg, steps, evals)
        eqx.tree_serialise_leaves(os.path.join(tmp, "opt.eqx"), opt_state)
        shutil.copyfile(log_path, os.path.join(tmp, "log.h5"))

    name = _write_checkpoint(out, evals, write)
    write_text_atomic(os.path.join(out, LATEST), name)
    keep = set(keep)
    for entry in os.listdir(out):
        path = os.path.join(out, entry)
        if entry.startswith(".ckpt-tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.startswith(PREFIX) and entry != name:
            if _evals_of(entry) in keep:
                for file in RESUME_FILES:
                    if os.path.isfile(os.path.join(path, file)):
                        os.remove(os.path.join(path, file))
            else:
                shutil.rmtree(path, ignore_errors=True)


def save_history(out: str, model, cfg: TrainConfig, steps: int, evals: int) -> None:
    """Write the kept (non-resumable) checkpoint ``OUT/ckpt-<evals>/``: ``model.eqx`` and
    ``meta.json`` only; ``OUT/latest`` is left alone."""
    _write_checkpoint(out, evals, lambda tmp: _write_model_and_meta(tmp, model, cfg, steps, evals))


def _evals_of(name: str) -> int | None:
    digits = name[len(PREFIX):]
    return int(digits) if name.startswith(PREFIX) and digits.isdigit() else None


def list_checkpoints(run_dir: str, what: str = "run") -> list[CheckpointInfo]:
    """Every checkpoint of run directory ``run_dir`` (directories ``ckpt-*`` holding ``model.eqx``
    and ``meta.json``), sorted by evaluations done; ``[]`` if there is none; :class:`ConfigError`
    naming ``what`` for an unreadable ``meta.json``."""
    if not os.path.isdir(run_dir):
        return []
    found = []
    for entry in os.listdir(run_dir):
        path = os.path.join(run_dir, entry)
        if _evals_of(entry) is None or not all(
            os.path.isfile(os.path.join(path, f)) for f in ("model.eqx", "meta.json")
        ):
            continue
        try:
            with open(os.path.join(path, "meta.json")) as f:
                meta = json.load(f)
            seen = meta.get("seen")
            if seen is None:  # written before meta.json recorded it
                seen = meta["steps"] * json.loads(meta["config"])["batch_size"]
            found.append(CheckpointInfo(int(meta["evals"]), int(meta["steps"]), int(seen), path))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            bad = os.path.join(path, "meta.json")
            raise ConfigError(what, f"cannot read {bad!r} ({type(e).__name__})") from None
    return sorted(found, key=lambda c: c.evals)


def checkpoint_at(run_dir: str, spec: str | int, what: str = "checkpoint") -> CheckpointInfo:
    """The checkpoint of ``run_dir`` that ``spec`` names.

    ``"last"``: the latest checkpoint (the one ``OUT/latest`` points at; the one with most
    evaluations if there is no pointer). A number of sequences seen (``2000000``, ``2e6``): the
    checkpoint with the most sequences seen *at or before* that number — the model as it was at
    that point of training, never one trained on more data. :class:`ConfigError` naming ``what``,
    listing the available checkpoints, if there is none.
    """
    found = list_checkpoints(run_dir, what)
    available = ", ".join(str(c.seen) for c in found) or "none"
    if not found:
        raise ConfigError(what, f"no checkpoints in {run_dir!r}")
    if str(spec).strip() == "last":
        latest = latest_checkpoint(run_dir)
        for c in found:
            if latest is not None and os.path.samefile(c.path, latest):
                return c
        return found[-1]
    try:
        value = float(spec)
    except (TypeError, ValueError):
        raise ConfigError(what, f"must be 'last' or a number of sequences seen, got {spec!r}") from None
    if not math.isfinite(value):
        raise ConfigError(what, f"must be 'last' or a number of sequences seen, got {spec!r}")
    before = [c for c in found if c.seen <= value]
    if not before:
        raise ConfigError(
            what, f"no checkpoint at or before {spec} sequences in {run_dir!r} (kept: {available})"
        )
    return before[-1]


def load_checkpoint(
    path: str, what: str = "checkpoint", feature_dim: int | None = None
) -> tuple[TrainConfig, Transformer]:
    """``(config, model)`` saved at ``path``: a run directory (its latest checkpoint), a checkpoint
    directory or its ``model.eqx``. ``feature_dim`` defaults to the saved run's data. A missing
    checkpoint is a :class:`ConfigError` naming ``what``.
    """
    given, path = path, _model_file(path, what)
    cfg = read_meta(os.path.dirname(path), what)["config"]
    if feature_dim is None:
        feature_dim = feature_dim_of(cfg)
    try:
        return cfg, eqx.tree_deserialise_leaves(path, init_model(cfg, feature_dim))
    except Exception as e:  # whatever a corrupt or foreign file makes the deserialiser raise
        raise ConfigError(
            what, f"cannot read {given!r} with {feature_dim}-dimensional features ({_reason(e)})"
        ) from None


def checkpoint_config(path: str, what: str = "checkpoint") -> TrainConfig:
    """The configuration of the checkpoint :func:`load_checkpoint` would load from ``path`` (the
    model is not read)."""
    return read_meta(os.path.dirname(_model_file(path, what)), what)["config"]


def _model_file(path: str, what: str) -> str:
    """``model.eqx`` of a run directory (its latest checkpoint), a checkpoint directory or the file
    itself; :class:`ConfigError` naming ``what`` unless it and its ``meta.json`` exist."""
    given = path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, LATEST)):
        path = latest_checkpoint(path) or path
    if os.path.isdir(path):
        path = os.path.join(path, "model.eqx")
    if not (os.path.isfile(path) and os.path.isfile(os.path.join(os.path.dirname(path), "meta.json"))):
        raise ConfigError(what, f"no checkpoint (model.eqx + meta.json) at {given!r}")
    return path


def load_donor(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model saved at ``cfg.graft_from`` (a run directory, checkpoint directory or model.eqx)."""
    return load_checkpoint(cfg.graft_from, "graft_from", feature_dim)[1]


def submodule(model: PyTree, path: str):
    """The submodule of ``model`` at ``path`` (``blocks.1``, ``unembed``); :class:`ConfigError`
    (``graft_modules``) if there is none."""
    obj = model
    for part in path.split("."):
        try:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        except (IndexError, TypeError, KeyError):
            obj = None
        if obj is None:
            raise ConfigError("graft_modules", f"no module {path!r} in the model")
    return obj


def graft(model: Transformer, donor: Transformer, modules: tuple[str, ...]) -> Transformer:
    """Copy the named submodules (e.g. ``blocks.1``, ``unembed``) from ``donor`` into ``model``."""
    for path in modules:
        mine, theirs = submodule(model, path), submodule(donor, path)
        if jax.tree_util.tree_structure(mine) != jax.tree_util.tree_structure(theirs) or any(
            a.shape != b.shape
            for a, b in zip(jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs))
        ):
            raise ConfigError("graft_modules", f"{path!r} differs in shape from the donor's")
        model = eqx.tree_at(lambda m, p=path: submodule(m, p), model, theirs)
    return model


def transplant(model: Transformer, donor: Transformer, what: str = "init_from") -> Transformer:
    """``model`` with every array replaced by the donor's array at the same path (the donor's
    weights in this run's model structure). :class:`ConfigError` naming ``what`` if the two models
    differ in their arrays' paths or shapes."""
    mine, treedef = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))
    theirs, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(donor, eqx.is_array))
    paths = [jax.tree_util.keystr(p) for p, _ in mine]
    donor_paths = [jax.tree_util.keystr(p) for p, _ in theirs]
    if paths != donor_paths:
        where = (sorted(set(paths) ^ set(donor_paths)) or ["the order of its arrays"])[0]
        raise ConfigError(what, f"the checkpoint's model differs in structure from this run's (at {where})")
    for path, (_, a), (_, b) in zip(paths, mine, theirs):
        if a.shape != b.shape or a.dtype != b.dtype:
            theirs_, mine_ = f"{b.dtype}{list(b.shape)}", f"{a.dtype}{list(a.shape)}"
            raise ConfigError(what, f"the checkpoint's {path} is {theirs_}, this run's {mine_}")
    arrays = jax.tree_util.tree_unflatten(treedef, [b for _, b in theirs])
    return eqx.combine(arrays, eqx.filter(model, eqx.is_array, inverse=True))


def frozen_mask(model: PyTree, modules: tuple[str, ...]) -> PyTree[bool]:
    """Pytree of bools over the model's arrays: ``True`` inside the named submodules."""
    mask = jax.tree_util.tree_map(lambda _: False, model)
    for path in modules:
        sub = submodule(mask, path)
        mask = eqx.tree_at(
            lambda m, p=path: submodule(m, p), mask, jax.tree_util.tree_map(lambda _: True, sub)
        )
    return mask


__all__ = [
    "LATEST",
    "CheckpointInfo",
    "checkpoint_at",
    "checkpoint_config",
    "config_differences",
    "frozen_mask",
    "graft",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_donor",
    "read_meta",
    "restore_state",
    "save_checkpoint",
    "save_history",
    "saved_config",
    "submodule",
    "transplant",
]
