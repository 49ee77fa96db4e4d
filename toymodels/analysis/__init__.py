"""Analysis of the toy models: the symbolic saddle at the origin, fixed points and escape times.

Public API (imported lazily, so ``python -m toymodels.analysis --n 3`` does not load JAX's solvers)::

    from toymodels.analysis import saddle_report, coopetition_fixed_points, phase_diagram, escape_table

Modules, one idea each:

* :mod:`~toymodels.analysis.saddle` — SymPy saddle report of the N-vector model, escape-time asymptotics;
* :mod:`~toymodels.analysis.fixed_points` — fixed points of the reduced coopetition flow and their stability;
* :mod:`~toymodels.analysis.phases` — the (μ₁, α) phase diagram built on them, checked against runs;
* :mod:`~toymodels.analysis.escape` — numerical plateau-escape times against the asymptotics;
* :mod:`~toymodels.analysis.cli` — ``python -m toymodels.analysis`` (alias ``python -m toymodels.saddle``).
"""

from __future__ import annotations

from .._internal.facade import lazy_facade

_EXPORTS = {
    "SaddleReport": "saddle",
    "escape_time_prediction": "saddle",
    "explicit_hessian_at_origin": "saddle",
    "saddle_report": "saddle",
    "LABELS": "fixed_points",
    "FixedPoint": "fixed_points",
    "coopetition_fixed_points": "fixed_points",
    "format_table": "fixed_points",
    "REGIMES": "phases",
    "PhaseDiagram": "phases",
    "RunCheck": "phases",
    "check_phase_diagram_with_runs": "phases",
    "phase_diagram": "phases",
    "plot_phase_diagram": "phases",
    "EscapeRow": "escape",
    "escape_table": "escape",
    "escape_times": "escape",
    "fitted_exponent": "escape",
    "predicted_escape_time": "escape",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
