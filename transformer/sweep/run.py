"""Running a transformer sweep: each run in ``OUT/NAME/``, dependencies first, resumable.

A run is *done* when its latest checkpoint has trained all of its steps; a re-run of the sweep
skips done runs and resumes the others from their checkpoints (bit for bit, as
``python -m transformer.train --resume``). Runs go through one of three executors: ``inline`` (this
process, one after another), ``local`` or ``slurm`` (submitit jobs, one per run, submitted as soon
as the runs they depend on are done; at most ``max_parallel`` at a time). A failed run is reported
(``failed: reason``) and the runs depending on it are ``skipped``; the others go on. The summary of
every run is written to ``OUT/summary.csv`` after each run (:mod:`transformer.sweep.summary`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from toymodels._internal import prepare_output_dir, write_text_atomic
from toymodels._internal.executors import submitit_executor
from toymodels.errors import require

from ..checkpoint import latest_checkpoint, read_meta
from .spec import SweepSpec
from .summary import summary_rows, write_summary

EXECUTORS = ("inline", "local", "slurm")
RECORD = "sweep.json"


def run_state(out: str, run) -> str:
    """``done`` (all steps trained), ``partial`` (a checkpoint to resume from) or ``new``."""
    ckpt = latest_checkpoint(os.path.join(out, run.name))
    if ckpt is None:
        return "new"
    return "done" if read_meta(ckpt)["steps"] >= run.config.n_steps else "partial"


def train_run(out: str, name: str, spec: SweepSpec | None = None, progress: bool = False) -> str:
    """Train (or resume) run ``name`` of the sweep in ``out``; returns its log path. This is what a
    submitit job runs (it reads the sweep from ``OUT/sweep.json``)."""
    from ..trainer import train

    spec = read_record(out) if spec is None else spec
    run = spec.run(name)
    # resume=True also starts a run that holds nothing yet, or was killed before its first checkpoint
    return train(run.resolved(out), os.path.join(out, name), resume=True, progress=progress)


def _job_entry(out: str, name: str) -> str:  # pragma: no cover - runs in submitit workers
    from toymodels._internal import enable_persistent_cache

    enable_persistent_cache()  # a worker process is its own entry point
    return train_run(out, name)


def read_record(out: str) -> SweepSpec:
    """The sweep stored in ``OUT/sweep.json``."""
    path = os.path.join(out, RECORD)
    require(os.path.isfile(path), "out", f"{out!r} holds no transformer sweep ({RECORD} missing)")
    with open(path) as f:
        return SweepSpec.from_dict(json.load(f)["spec"])


def run_sweep(
    spec: SweepSpec,
    out: str,
    *,
    executor: str = "inline",
    slurm: dict[str, Any] | None = None,
    max_parallel: int = 0,
    progress: bool = False,
    poll_s: float = 1.0,
    on_event: Callable[[str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) every run of ``spec`` into ``out``; returns the summary rows.

    Args:
        spec: the sweep. out: its directory (created; it may hold an unfinished run of the sweep).
        executor: ``inline``, ``local`` or ``slurm``. slurm: options of
            :func:`toymodels._internal.executors.submitit_executor` (partition, time, gpus, ...).
        max_parallel: jobs at a time (0: 1 for ``local``, unlimited for ``slurm``).
        progress: a progress bar per inline run. on_event: called with (run, status) on each change.
    """
    require(executor in EXECUTORS, "executor", f"must be one of {EXECUTORS} (got {executor!r})")
    require(max_parallel >= 0, "max_parallel", f"must be >= 0, got {max_parallel}")
    ex = None if executor == "inline" else submitit_executor(executor, os.path.join(out, "jobs"), slurm)
    limit = max_parallel or (1 if executor == "local" else len(spec.runs))
    prepare_output_dir(out)
    write_text_atomic(os.path.join(out, RECORD), json.dumps({"spec": spec.source}, indent=1, default=str))
    status = {r.name: "done" if run_state(out, r) == "done" else "pending" for r in spec.runs}

    def note(name: str, what: str) -> None:
        status[name] = what
        write_summary(out, summary_rows(out, spec, status))
        if on_event is not None:
            on_event(name, what)

    for name, what in status.items():
        if what == "done" and on_event is not None:
            on_event(name, "done (earlier)")
    write_summary(out, summary_rows(out, spec, status))
    running: dict[Any, str] = {}
    while True:
        for run in spec.runs:
            if status[run.name] != "pending":
                continue
            deps = [status[d.run] for d in run.depends.values()]
            if any(d.startswith(("failed", "skipped")) for d in deps):
                note(run.name, "skipped: a run it depends on did not finish")
            elif all(d == "done" for d in deps) and len(running) < limit:
                if ex is None:
                    note(run.name, "running")
                    note(run.name, _inline(out, spec, run.name, progress))
                else:
                    running[ex.submit(_job_entry, out, run.name)] = run.name
                    note(run.name, "running")
        if not running:  # inline: one pass in dependency order; submitit: nothing left to wait for
            break
        for job in [j for j in running if j.done()]:
            name = running.pop(job)
            try:
                job.result()
                note(name, "done")
            except Exception as e:  # noqa: BLE001 - a failed run is reported, the others go on
                note(name, "failed: " + _one_line(e))
        if running:
            time.sleep(poll_s)
    return summary_rows(out, spec, status)


def _inline(out: str, spec: SweepSpec, name: str, progress: bool) -> str:
    try:
        train_run(out, name, spec, progress=progress)
    except Exception as e:  # noqa: BLE001 - as a failed submitit job: reported, the others go on
        return "failed: " + _one_line(e)
    return "done"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:300]


def print_event(name: str, what: str) -> None:
    print(f"{name}: {what}", file=sys.stderr, flush=True)


__all__ = ["EXECUTORS", "print_event", "read_record", "run_state", "run_sweep", "train_run"]
