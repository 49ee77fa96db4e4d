"""Toy models of strategy coopetition: losses over named mechanisms, exact gradient dynamics,
reduced (P, Q) dynamics, symbolic analysis and sweeps.

The common entry points are importable from here (lazily, so ``python -m toymodels.analysis`` and
friends do not pay for what they do not use)::

    from toymodels import ToyConfig, run, coopetition_model, simulate, GradientDescent, GradientFlow
    from toymodels import SweepSpec, run_sweep, saddle_report, coopetition_fixed_points

The engine modules (``losses``, ``dynamics``, ``reduced``, ``symbolic``, ``experiment``, …) sit at
the top level; two sub-packages have their own public API: :mod:`toymodels.sweep` (parameter sweeps,
``python -m toymodels.sweep``) and :mod:`toymodels.analysis` (saddle, fixed points, phase diagram,
escape times; ``python -m toymodels.analysis``, alias ``python -m toymodels.saddle``).
"""

from __future__ import annotations

from ._internal.facade import lazy_facade

_EXPORTS = {
    "ToyConfig": "experiment",
    "run": "experiment",
    "ToyModel": "losses",
    "LossParams": "losses",
    "coopetition_model": "losses",
    "tensor_model": "losses",
    "loss": "losses",
    "loss_params": "losses",
    "mechanism_loss": "losses",
    "competition_term": "losses",
    "GradientDescent": "methods",
    "GradientFlow": "methods",
    "simulate": "dynamics",
    "Clamp": "clamps",
    "draw_vectors": "init",
    "ToyResult": "results",
    "ConfigError": "errors",
    "plot_result": "plotting",
    "SweepSpec": "sweep",
    "SweepStore": "sweep",
    "VerdictThresholds": "sweep",
    "run_sweep": "sweep",
    "coopetition_fixed_points": "analysis",
    "saddle_report": "analysis",
}
_SUBPACKAGES = ("analysis", "sweep")

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS, _SUBPACKAGES)
