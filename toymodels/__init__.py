"""Toy models of strategy coopetition: losses over named mechanisms, exact gradient dynamics,
reduced (P, Q) dynamics, symbolic analysis and sweeps.

The common entry points are importable from here (lazily, so ``python -m toymodels.saddle`` and
friends do not pay for what they do not use)::

    from toymodels import ToyConfig, run, coopetition_model, simulate, GradientDescent, GradientFlow
"""

from __future__ import annotations

import importlib

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
    "GradientDescent": "dynamics",
    "GradientFlow": "dynamics",
    "simulate": "dynamics",
    "Clamp": "clamps",
    "draw_vectors": "init",
    "ToyResult": "results",
    "ConfigError": "errors",
    "plot_result": "plotting",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'toymodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
