"""A JAX/Equinox/Optax transformer trainer for ICL emergence and transience on bursty sequences.

Modules (each one idea): :mod:`~transformer.config` (``TrainConfig``, evaluator names),
:mod:`~transformer.presets` (named configurations), :mod:`~transformer.exemplars` (exemplar files
and the synthetic generator), :mod:`~transformer.data` (sequence samplers), :mod:`~transformer.model`,
:mod:`~transformer.build` (config → data, model, optimiser), :mod:`~transformer.evaluators`
(evaluators and probes), :mod:`~transformer.log` (the ``log.h5`` layout), :mod:`~transformer.checkpoint`
(save, history, load, graft, freeze), :mod:`~transformer.schedule` (evaluation and kept-checkpoint
schedules), :mod:`~transformer.mixture` (mixtures of training distributions),
:mod:`~transformer.opto` (hook points and interventions), :mod:`~transformer.trainer` (scan-fused
steps and the run loop), :mod:`~transformer.reevaluate` (kept checkpoints evaluated after the fact),
:mod:`~transformer.cli`, :mod:`~transformer.plot`, :mod:`~transformer.attribution`,
:mod:`~transformer.tracking` (optional Weights & Biases mirror of the curves),
:mod:`~transformer.sweep` (families of runs).

The common names are importable from here (lazily, so ``python -m transformer.plot`` does not pay
for what it does not use)::

    from transformer import TrainConfig, preset_config, train, evaluator_means
"""

from __future__ import annotations

from toymodels._internal.facade import lazy_facade

_EXPORTS = {
    "TrainConfig": "config",
    "ConfigError": "config",
    "EVALUATORS": "config",
    "PRESETS": "presets",
    "preset_config": "presets",
    "structural": "config",
    "DataError": "data",
    "SequenceSpec": "data",
    "Sequences": "data",
    "sample_sequences": "data",
    "gather_features": "data",
    "synthetic_exemplars": "data",
    "load_exemplars": "data",
    "write_exemplar_file": "data",
    "Transformer": "model",
    "batched_logits": "model",
    "forward_with_activations": "model",
    "query_loss": "model",
    "load_data": "build",
    "init_model": "build",
    "make_optimizer": "build",
    "learning_rate_schedule": "build",
    "evaluator_sets": "evaluators",
    "evaluator_spec": "evaluators",
    "probe_sets": "evaluators",
    "PROBE_SETS": "evaluators",
    "sequence_metrics": "evaluators",
    "attention_probes": "evaluators",
    "evaluate_all": "evaluators",
    "ALIASES": "log",
    "METRICS": "log",
    "open_log": "log",
    "evaluator_group": "log",
    "evaluator_means": "log",
    "write_log": "log",
    "load_checkpoint": "checkpoint",
    "list_checkpoints": "checkpoint",
    "checkpoint_at": "checkpoint",
    "CheckpointInfo": "checkpoint",
    "TRAIN_KINDS": "config",
    "MixtureSpec": "mixture",
    "sample_mixture": "mixture",
    "eval_schedule": "schedule",
    "evaluate_run": "reevaluate",
    "forward": "model",
    "latest_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "graft": "checkpoint",
    "frozen_mask": "checkpoint",
    "train": "trainer",
    "TrainingDiverged": "trainer",
    "check_memory": "build",
    "memory_estimate": "build",
    "make_train_chunk": "trainer",
    "plot_log": "plot",
    "margin_attribution": "attribution",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
