"""Evaluation of a run's kept checkpoints after the fact, optionally with interventions and with
modules taken from another checkpoint (the paper's Fig. 3b,c / 5.6b,c checkpoint mixing).

:func:`evaluate_run` evaluates every kept checkpoint of a run (in order of training) on the run's
own evaluation sets and probes and writes a log in the training layout (:mod:`transformer.log`:
``eval_iter`` = the checkpoint's sequences seen, evaluator groups, probes; no ``train_loss``), so
``transformer.plot`` and ``bridge.fit`` read it as they read a training log.

* The run's own training interventions (``TrainConfig.opto``) apply unless ``keep_run_opto`` is
  false; ``interventions`` are added after them.
* ``modules_from = (donor, modules)``: in every checkpoint, the submodules at those paths
  (``blocks.1``, ``unembed``, ``embed_x``, …) are replaced by the donor's (a model loaded with
  :func:`parse_source`). Replacing modules by those of the same checkpoint changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toymodels._internal import atomic_write
from toymodels.errors import ConfigError, require

from .build import feature_dim_of, init_model, load_data
from .checkpoint import checkpoint_at, graft, list_checkpoints, load_checkpoint, read_meta, submodule
from .evaluators import evaluate_all, evaluator_sets, probe_sets
from .log import append_eval, create_log
from .model import Transformer
from .opto.catalogue import Intervention


@dataclasses.dataclass(frozen=True)
class ModuleSource:
    """Modules ``modules`` of the model saved at ``path`` (``label``: how the user named it)."""

    path: str
    modules: tuple[str, ...]
    label: str


def parse_source(text: str) -> ModuleSource:
    """``SRC:MODULES`` → :class:`ModuleSource`. ``SRC`` is ``RUN@last``, ``RUN@SEQUENCES`` (the kept
    checkpoint at or before that many sequences) or a checkpoint path (run directory = its latest,
    checkpoint directory, or ``model.eqx``); ``MODULES`` is comma-separated (``blocks.1,unembed``)."""
    src, sep, modules = text.rpartition(":")
    require(
        bool(sep) and bool(src) and bool(modules),
        "modules-from",
        f"expected SRC:MODULES, e.g. runs/a@last:blocks.1,unembed (got {text!r})",
    )
    names = tuple(m.strip() for m in modules.split(",") if m.strip())
    run, at, when = src.rpartition("@")
    if at:
        path = checkpoint_at(run, when, "modules-from").path
    else:
        path = src
    return ModuleSource(path=path, modules=names, label=text)


def _load(path: str, what: str, feature_dim: int) -> Transformer:
    return load_checkpoint(path, what, feature_dim)[1]


def evaluate_run(
    run_dir: str,
    out: str,
    interventions: Sequence[Intervention] = (),
    modules_from: ModuleSource | None = None,
    evaluators: Sequence[str] | None = None,
    keep_run_opto: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Evaluate every kept checkpoint of ``run_dir`` and write the log ``out`` (atomically).

    Everything is checked (checkpoints, interventions, modules, evaluators) before anything is
    written. ``progress(i, n)`` is called after each checkpoint. Returns ``out``.
    """
    found = list_checkpoints(run_dir)
    require(len(found) > 0, "run", f"no checkpoints (ckpt-*/model.eqx + meta.json) in {run_dir!r}")
    cfg = read_meta(found[-1].path, "run")["config"]
    changes: dict = {"opto": (cfg.opto if keep_run_opto else ()) + tuple(interventions)}
    if evaluators is not None:
        changes["evaluators"] = tuple(evaluators)
        for name in evaluators:
            require(
                name in cfg.evaluators,
                "evaluators",
                f"{name!r} is not among the run's evaluators {cfg.evaluators}",
            )
    cfg = dataclasses.replace(cfg, **changes)  # validates the interventions against the model
    feature_dim = feature_dim_of(cfg)
    donor = None
    if modules_from is not None:
        donor = _load(modules_from.path, "modules-from", feature_dim)
        probe = init_model(cfg, feature_dim)
        for m in modules_from.modules:
            try:
                submodule(probe, m)
            except ConfigError:
                raise ConfigError("modules-from", f"no module {m!r} in the model") from None
        graft(probe, donor, modules_from.modules)  # shapes checked now
    directory = os.path.dirname(os.path.abspath(out))
    require(os.path.isdir(directory), "out", f"directory of {out!r} does not exist")
    require(os.access(directory, os.W_OK | os.X_OK), "out", f"directory of {out!r} is not writable")
    require(bool(out) and not os.path.isdir(out), "out", f"{out!r} is a directory")

    exemplars = jnp.asarray(load_data(cfg))
    sets, probes, edits = evaluator_sets(cfg), probe_sets(cfg), cfg.edits()
    depth, heads = cfg.depth, cfg.n_heads

    def fill(tmp: str) -> None:
        create_log(
            tmp,
            cfg,
            depth,
            heads,
            attrs={
                "evaluated_run": os.path.abspath(run_dir),
                "modules_from": "" if modules_from is None else modules_from.label,
            },
            targets={name: np.asarray(s.target) for name, s in sets.items()},
        )
        for i, c in enumerate(found):
            model = _load(c.path, "run", feature_dim)
            if donor is not None:
                model = graft(model, donor, modules_from.modules)
            metrics, probe_vals = evaluate_all(model, exemplars, sets, probes, edits)
            append_eval(tmp, c.seen, jax.device_get(metrics), jax.device_get(probe_vals))
            if progress is not None:
                progress(i + 1, len(found))

    try:
        atomic_write(out, fill, suffix=".h5")
    except OSError as e:
        raise ConfigError("out", f"cannot write {out!r} ({e.strerror or e})") from None
    return out


__all__ = ["ModuleSource", "evaluate_run", "parse_source"]
