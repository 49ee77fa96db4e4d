"""Parameter sweeps of the toy models: grids of runs in compiled, vmapped chunks, one resumable store.

Public API (imported lazily, so ``python -m toymodels.sweep --help`` and the modules that need one
piece do not pay for the rest)::

    from toymodels.sweep import SweepSpec, run_sweep, SweepStore, VerdictThresholds

Modules, one idea each:

* :mod:`~toymodels.sweep.spec` — what a sweep runs: axes, the grid of points, the spec-file format;
* :mod:`~toymodels.sweep.chunk` — one chunk of runs in one compiled, vmapped, device-sharded call;
* :mod:`~toymodels.sweep.run` — planning chunks, executors (inline, submitit local/SLURM), resuming;
* :mod:`~toymodels.sweep.store` — the crash-safe on-disk store (chunk files, ``sweep.h5``, ``summary.csv``);
* :mod:`~toymodels.sweep.verdicts` — per-run summary measures and the verdict (none/persistent/transient);
* :mod:`~toymodels.sweep.plots` — phase diagrams and the curves of chosen points;
* :mod:`~toymodels.sweep.cli` — ``python -m toymodels.sweep`` (the only module that parses arguments).
"""

from __future__ import annotations

from .._internal.facade import lazy_facade

_EXPORTS = {
    "SweepSpec": "spec",
    "MAX_POINTS": "spec",
    "SPEC_KEYS": "spec",
    "load_spec_file": "spec",
    "parse_axis": "spec",
    "parse_clamp_sets": "spec",
    "parse_dims": "spec",
    "parse_seeds": "spec",
    "compute_chunk": "chunk",
    "EXECUTORS": "run",
    "run_chunk": "run",
    "run_sweep": "run",
    "CSV_COLUMNS": "store",
    "SweepState": "store",
    "SweepStore": "store",
    "read_csv": "store",
    "SUMMARY_FIELDS": "verdicts",
    "VERDICTS": "verdicts",
    "VerdictThresholds": "verdicts",
    "saddle_levels": "verdicts",
    "summarise": "verdicts",
    "phase_diagram": "plots",
    "plot_points_curves": "plots",
    "points_result": "plots",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
