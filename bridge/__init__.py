"""Fit the strategy-coopetition toy to transformer loss curves.

The public API, importable from here (lazily, so ``import bridge`` stays light)::

    from bridge import read_log, spec_for, fit_curves, FitSettings, OptimiserSettings, fit_dict

    curves = read_log("RUN/log.h5", ("icl", "ciwl", "total"))
    result = fit_curves(curves, spec_for(curves.names), FitSettings(n_starts=8))
    fit_dict(result)["mu1"]

Modules: :mod:`bridge.logs` (curves from a log), :mod:`bridge.spec` (what is fitted),
:mod:`bridge.toy` (the reduced toy as a differentiable function), :mod:`bridge.objective`
(variable projection), :mod:`bridge.optimise` (Adam then Levenberg–Marquardt, multi-start),
:mod:`bridge.starts` (global search), :mod:`bridge.evolve` (its CMA-ES stage),
:mod:`bridge.searches` (independent searches, minimised and merged),
:mod:`bridge.symmetry` (the family's exact symmetries), :mod:`bridge.identify` (profiles, identifiable
combinations), :mod:`bridge.verdict` (the transience verdict), :mod:`bridge.heldout` (held-out
curves from full-vector GD), :mod:`bridge.fitting` (the pipeline), :mod:`bridge.report`
(``fit.json``, figures, tables),
:mod:`bridge.refine` (integer dimensions), :mod:`bridge.synthetic` (toy-generated curves); the
command lines :mod:`bridge.fit` and :mod:`bridge.compare`.
"""

from __future__ import annotations

from toymodels._internal.facade import lazy_facade

_EXPORTS = {
    "Curves": "logs",
    "CURVE_NAMES": "logs",
    "read_log": "logs",
    "FitSpec": "spec",
    "DEFAULTS": "spec",
    "TOY_PARAMETERS": "spec",
    "spec_for": "spec",
    "ToyParams": "toy",
    "SolveSettings": "toy",
    "toy_curves": "toy",
    "OptimiserSettings": "optimise",
    "FitResult": "fitting",
    "FitSettings": "fitting",
    "fit_curves": "fitting",
    "peak_and_fade": "verdict",
    "transience": "verdict",
    "profile": "identify",
    "combinations": "identify",
    "initial_guesses": "starts",
    "EvolutionSettings": "evolve",
    "evolve": "evolve",
    "run_searches": "searches",
    "EXACT_FREE": "spec",
    "TYPICAL_FREE": "spec",
    "FAMILIES": "spec",
    "DEFAULT_FAMILY": "spec",
    "condition_number": "fitting",
    "polish_best": "optimise",
    "identifiable": "symmetry",
    "generators": "symmetry",
    "heldout_cases": "heldout",
    "HeldOutCase": "heldout",
    "score": "heldout",
    "fit_dict": "report",
    "overlay_figure": "report",
    "summary_lines": "report",
    "table_markdown": "report",
    "write_json_atomic": "report",
    "Refinement": "refine",
    "refine_integer": "refine",
    "toy_generated_curves": "synthetic",
    "write_synthetic_log": "synthetic",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
