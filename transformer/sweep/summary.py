"""``OUT/summary.csv`` of a transformer sweep: one row per run with its status and headline numbers.

Columns: ``run``, ``status``, ``sequences`` (seen at the last evaluation), then for each evaluator
curve of :data:`HEADLINE` its ``final`` and ``peak`` value (empty where the run has no log yet or
does not evaluate it).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from toymodels._internal import write_text_atomic

from ..log import evaluator_means

HEADLINE: tuple[tuple[str, str], ...] = (
    ("icl", "icl/in_context_acc"),
    ("flip", "flip_icl/in_context_acc"),
    ("ciwl", "iwl_copy_avail/in_context_acc"),
    ("iwl", "pure_iwl/acc"),
    ("train_loss", "train_eval/loss"),
)
"""(column prefix, evaluator curve) of the summary."""
COLUMNS = ("run", "status", "sequences") + tuple(f"{p}_{w}" for p, _ in HEADLINE for w in ("final", "peak"))


def run_row(out: str, name: str, status: str) -> dict[str, Any]:
    """The summary row of run ``name`` (numbers from ``OUT/NAME/log.h5`` where it exists)."""
    row: dict[str, Any] = {"run": name, "status": status}
    log = os.path.join(out, name, "log.h5")
    if not os.path.isfile(log):
        return row
    try:
        curves = evaluator_means(log)
    except (OSError, KeyError):  # a log being written by a running job
        return row
    if curves["eval_iter"].size == 0:
        return row
    row["sequences"] = int(curves["eval_iter"][-1])
    for prefix, key in HEADLINE:
        if key in curves and curves[key].size:
            row[f"{prefix}_final"] = round(float(curves[key][-1]), 4)
            row[f"{prefix}_peak"] = round(float(curves[key].max()), 4)
    return row


def summary_rows(out: str, spec, status: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of every run of ``spec`` (in dependency order) with ``status[run]``."""
    return [run_row(out, r.name, status.get(r.name, "pending")) for r in spec.runs]


def write_summary(out: str, rows: list[dict[str, Any]]) -> str:
    """Write ``OUT/summary.csv`` atomically; returns its path."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = os.path.join(out, "summary.csv")
    write_text_atomic(path, buf.getvalue())
    return path


__all__ = ["COLUMNS", "HEADLINE", "run_row", "summary_rows", "write_summary"]
