"""Experiment tracking: mirror a run's scalar curves to Weights & Biases (``--wandb PROJECT``).

The HDF5 log stays the record; the tracker is a copy for dashboards. :class:`WandbTracker` is an
``on_eval`` callback of :func:`transformer.trainer.train`: after each evaluation it logs
:func:`scalars` of the :class:`~transformer.trainer.Evaluation` (host values the trainer has already
written to the log), so a run is bit for bit the same with or without it. The wandb run starts at
the first evaluation — after :func:`~transformer.trainer.train` has checked everything — so a run
refused for bad input sends nothing. ``wandb`` is optional (``pip install 'icl-coopetition[tracking]'``);
its offline mode (``WANDB_MODE=offline``, files under ``WANDB_DIR``) needs no account.

Scalars (the x-axis is ``sequences``, the log's ``eval_iter``; keys as in
:func:`transformer.log.evaluator_means`):

* ``<evaluator>/<metric>`` — the mean over the evaluation set, exactly the float32 mean
  ``evaluator_means`` computes from the log (``icl/in_context_acc``, ``flip_icl/acc``, …);
* ``train_loss`` (and ``train_penalty``) — the mean of the per-step values since the previous
  evaluation (absent at step 0);
* ``probes/<probe>/L<l>H<h>`` — every attention probe per layer and head (0-based, as
  TransformerLens names them).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any

import numpy as np

from toymodels.errors import ConfigError

from .config import TrainConfig
from .trainer import Evaluation

INSTALL_HINT = "pip install 'icl-coopetition[tracking]'"
_BAD_PROJECT = re.compile(r"[/\\#?%:,]")


def scalars(ev: Evaluation) -> dict[str, float]:
    """The flat ``{name: value}`` scalars of one evaluation (see the module docstring)."""
    out: dict[str, float] = {"sequences": int(ev.seen)}
    for name, metrics in ev.metrics.items():
        for metric, values in metrics.items():
            out[f"{name}/{metric}"] = float(np.asarray(values, np.float32)[None].mean(axis=1)[0])
    for key, values in (("train_loss", ev.train_loss), ("train_penalty", ev.train_penalty)):
        if values is not None and len(values):
            out[key] = float(np.asarray(values, np.float32).mean())
    for probe, values in ev.probes.items():
        for (layer, head), v in np.ndenumerate(np.asarray(values, np.float32)):
            out[f"probes/{probe}/L{layer}H{head}"] = float(v)
    return out


def require_wandb(param: str = "wandb") -> Any:
    """The ``wandb`` module; :class:`ConfigError` on ``param`` if it is not installed."""
    try:
        return importlib.import_module("wandb")
    except ImportError:
        raise ConfigError(param, f"needs the wandb package ({INSTALL_HINT})") from None


def check_project(project: str, param: str = "wandb") -> str:
    """``project`` if it is a valid W&B project name (1–128 characters, none of ``/ \\ # ? % : ,``)."""
    if not project or len(project) > 128 or _BAD_PROJECT.search(project) or not project.isprintable():
        raise ConfigError(param, f"{project!r} is not a W&B project name "
                                 "(1-128 characters, none of / \\ # ? % : ,)")
    return project


class WandbTracker:
    """Mirrors evaluations to a W&B run of ``project``, named ``name``, with ``cfg`` as its config.

    Call it with each :class:`~transformer.trainer.Evaluation` (pass it as ``train(...,
    on_eval=tracker)``), then :meth:`finish` once. ``dir`` is where wandb writes its files (default:
    ``WANDB_DIR``, else the current directory), never the run's own directory. The wandb package is
    checked when the tracker is made, the run is started at the first call.
    """

    def __init__(self, project: str, name: str, cfg: TrainConfig, dir: str | None = None,
                 extra_config: dict[str, Any] | None = None):
        self.project = check_project(project)
        self.name, self.cfg, self.dir = name, cfg, dir
        self.extra_config = dict(extra_config or {})
        self._wandb = require_wandb()
        self._run = None

    def _start(self) -> None:
        wandb = self._wandb
        try:
            self._run = wandb.init(
                project=self.project, name=self.name, dir=self.dir,
                config={**json.loads(self.cfg.to_json()), **self.extra_config},
                settings=wandb.Settings(console="off", silent=True),
            )
        except Exception as e:  # noqa: BLE001 - wandb raises its own errors (no API key, network, ...)
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError("wandb", f"cannot start a W&B run: {reason}") from None
        self._run.define_metric("sequences")
        self._run.define_metric("*", step_metric="sequences")

    def __call__(self, ev: Evaluation) -> None:
        if self._run is None:
            self._start()
        self._run.log(scalars(ev))

    def finish(self, exit_code: int = 0) -> None:
        """Close the W&B run (if one was started); ``exit_code`` ≠ 0 marks it failed."""
        if self._run is not None:
            self._run.finish(exit_code=exit_code)
            self._run = None


def wandb_tracker(project: str, out: str, cfg: TrainConfig, resume: bool = False) -> WandbTracker:
    """The tracker of ``python -m transformer.train --wandb PROJECT``: a W&B run named after the run
    directory ``out``, whose config is the run's configuration plus ``run_dir`` and ``resumed``."""
    name = os.path.basename(os.path.normpath(os.path.abspath(out)))
    return WandbTracker(project, name, cfg, extra_config={"run_dir": os.path.abspath(out), "resumed": resume})


__all__ = ["INSTALL_HINT", "WandbTracker", "check_project", "require_wandb", "scalars", "wandb_tracker"]
