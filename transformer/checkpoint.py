"""Checkpoints of a run and moving modules between models.

A checkpoint is a directory ``OUT/ckpt-NNNNNN/`` (``NNNNNN`` = evaluations done) holding
``model.eqx`` and ``opt.eqx`` (Equinox leaf serialisation), a snapshot ``log.h5`` of the log and
``meta.json`` (``{"config": TrainConfig JSON, "steps": …, "evals": …}``). It is written to a fresh
directory, then published by atomically replacing the pointer file ``OUT/latest``; only the latest
checkpoint is kept.

Module paths name submodules of :class:`~transformer.model.Transformer` by attribute and index
(``blocks.1``, ``unembed``, ``embed_x``): :func:`graft` copies them from a donor, :func:`frozen_mask`
marks them for :func:`transformer.build.make_optimizer`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from toymodels._internal import write_text_atomic
from toymodels.errors import ConfigError

from .build import feature_dim_of, init_model
from .config import TrainConfig
from .model import Transformer

LATEST = "latest"
"""Name of the pointer file holding the latest checkpoint's directory name."""


def latest_checkpoint(out: str) -> str | None:
    """Directory of the latest checkpoint of run directory ``out`` (``None`` if there is none)."""
    pointer = os.path.join(out, LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        name = f.read().strip()
    path = os.path.join(out, name)
    return path if os.path.isdir(path) else None


def read_meta(ckpt: str) -> dict[str, Any]:
    """``meta.json`` of checkpoint directory ``ckpt`` with ``config`` parsed to a :class:`TrainConfig`."""
    with open(os.path.join(ckpt, "meta.json")) as f:
        meta = json.load(f)
    return {**meta, "config": TrainConfig.from_json(meta["config"])}


def restore_state(ckpt: str, model: Transformer, opt_state: PyTree) -> tuple[Transformer, PyTree]:
    """The model and optimiser state saved in ``ckpt``, read into the structures ``model`` and
    ``opt_state`` of the run being resumed; :class:`ConfigError` (``resume``) if the files do not
    fit them (e.g. a frozen-graft run saved before frozen parameters stopped keeping Adam moments).
    """
    try:
        model = eqx.tree_deserialise_leaves(os.path.join(ckpt, "model.eqx"), model)
        opt_state = eqx.tree_deserialise_leaves(os.path.join(ckpt, "opt.eqx"), opt_state)
    except (RuntimeError, ValueError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            "resume", f"{ckpt!r} does not hold this run's model and optimiser state ({reason})"
        ) from None
    return model, opt_state


def save_checkpoint(
    out: str, log_path: str, model, opt_state, cfg: TrainConfig, steps: int, evals: int
) -> None:
    """Write ``OUT/ckpt-<evals>/`` then atomically point ``OUT/latest`` at it; drop older ones."""
    name = f"ckpt-{evals:06d}"
    final = os.path.join(out, name)
    tmp = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=out)
    eqx.tree_serialise_leaves(os.path.join(tmp, "model.eqx"), model)
    eqx.tree_serialise_leaves(os.path.join(tmp, "opt.eqx"), opt_state)
    shutil.copyfile(log_path, os.path.join(tmp, "log.h5"))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({"config": cfg.to_json(), "steps": steps, "evals": evals}, f)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(os.path.join(out, LATEST), name)
    for entry in os.listdir(out):
        if entry.startswith("ckpt-") and entry != name:
            shutil.rmtree(os.path.join(out, entry), ignore_errors=True)


def load_checkpoint(
    path: str, what: str = "checkpoint", feature_dim: int | None = None
) -> tuple[TrainConfig, Transformer]:
    """``(config, model)`` saved at ``path``: a run directory (its latest checkpoint), a checkpoint
    directory or its ``model.eqx``. ``feature_dim`` defaults to the saved run's data. A missing
    checkpoint is a :class:`ConfigError` naming ``what``.
    """
    given = path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, LATEST)):
        path = latest_checkpoint(path) or path
    if os.path.isdir(path):
        path = os.path.join(path, "model.eqx")
    ckpt = os.path.dirname(path)
    if not (os.path.isfile(path) and os.path.isfile(os.path.join(ckpt, "meta.json"))):
        raise ConfigError(what, f"no checkpoint (model.eqx + meta.json) at {given!r}")
    cfg = read_meta(ckpt)["config"]
    if feature_dim is None:
        feature_dim = feature_dim_of(cfg)
    return cfg, eqx.tree_deserialise_leaves(path, init_model(cfg, feature_dim))


def load_donor(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model saved at ``cfg.graft_from`` (a run directory, checkpoint directory or model.eqx)."""
    return load_checkpoint(cfg.graft_from, "graft_from", feature_dim)[1]


def submodule(model: PyTree, path: str):
    """The submodule of ``model`` at ``path`` (``blocks.1``, ``unembed``); :class:`ConfigError`
    (``graft_modules``) if there is none."""
    obj = model
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
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
    "frozen_mask",
    "graft",
    "latest_checkpoint",
    "load_checkpoint",
    "load_donor",
    "read_meta",
    "restore_state",
    "save_checkpoint",
    "submodule",
]
