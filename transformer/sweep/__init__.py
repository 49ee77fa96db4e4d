"""Transformer sweeps: named runs from a TOML spec, expanded over grids and seeds, with
dependencies (graft from / start from another run's checkpoint), run inline or through submitit
(local processes or SLURM), resumable, summarised in ``OUT/summary.csv``.

``python -m transformer.sweep SPEC.toml --out DIR [--executor inline|local|slurm]``
(:mod:`transformer.sweep.cli`); from Python::

    from transformer.sweep import SweepSpec, run_sweep
    rows = run_sweep(SweepSpec.from_toml("spec.toml"), "sweeps/a")
"""

from __future__ import annotations

from toymodels._internal.facade import lazy_facade

_EXPORTS = {
    "Dependency": "spec",
    "RunSpec": "spec",
    "SweepSpec": "spec",
    "run_sweep": "run",
    "run_state": "run",
    "train_run": "run",
    "read_record": "run",
    "summary_rows": "summary",
    "write_summary": "summary",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
