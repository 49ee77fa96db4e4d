"""Running a sweep: chunk planning, executors and resuming (library entry point :func:`run_sweep`).

A sweep's points are split into chunks that share one compiled call (:func:`plan_chunks`); each chunk
is computed by :func:`toymodels.sweep.chunk.compute_chunk` and committed as one crash-safe file of the
store (:mod:`toymodels.sweep.store`). Chunks run in this process (``executor="inline"``, sharded over
the local JAX devices) or as submitit jobs (``local`` or ``slurm``) whose function, :func:`_job_entry`,
lives here so that submitit pickles it by reference to this importable module. Re-running the same
sweep into the same directory resumes it: finished chunks are skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._internal import prepare_output_dir
from .._internal.executors import submitit_executor
from ..errors import require
from .chunk import compute_chunk
from .spec import SweepSpec
from .store import (
    SweepState,
    claim_directory,
    read_chunk_summaries,
    read_record,
    remove_temporaries,
    sweep_record,
    write_chunk,
)
from .verdicts import VerdictThresholds

EXECUTORS = ("inline", "local", "slurm")
CURVE_BUDGET_BYTES = 256 * 2**20  # recorded curves held in memory per chunk (auto chunk size)
MAX_CHUNK = 4096


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def auto_chunk_size(spec: SweepSpec, method_index: int, n_devices: int = 1) -> int:
    """Runs per chunk so that the recorded curves of a chunk take about 256 MiB (at most 4096)."""
    n_t = len(spec.methods[method_index].times)
    n_curves = 2 + spec.n_mechanisms
    size = int(np.clip(CURVE_BUDGET_BYTES // (n_t * n_curves * 8), 1, MAX_CHUNK))
    return max(n_devices, size // n_devices * n_devices)


def plan_chunks(
    spec: SweepSpec, points: dict[str, np.ndarray], todo: np.ndarray, chunk_size: int, n_devices: int = 1
) -> list[np.ndarray]:
    """Split the points ``todo`` into chunks that share a static structure (see :func:`chunk_static`)."""
    keys = np.stack(
        [
            points["method"],
            points["reduced"].astype(np.int64),
            points["clamps"],
            np.where(points["reduced"], -1, points["dims_index"]),
        ],
        axis=-1,
    )[todo]
    chunks = []
    for key in np.unique(keys, axis=0):
        group = todo[(keys == key).all(axis=1)]
        size = chunk_size if chunk_size > 0 else auto_chunk_size(spec, int(key[0]), n_devices)
        chunks += [group[i : i + size] for i in range(0, group.size, size)]
    return chunks


# ---------------------------------------------------------------------------------------------
# Chunk jobs (the unit of work of every executor)
# ---------------------------------------------------------------------------------------------


def run_chunk(out: str, idx: Sequence[int], record: dict[str, Any] | None = None, devices=None) -> str:
    """Compute the points ``idx`` of the sweep in ``out`` and write their chunk file; returns its name.

    This is what a submitit job runs (it reads the sweep from ``OUT/sweep.json``).
    """
    record = read_record(out) if record is None else record
    spec = SweepSpec.from_dict(record["spec"])
    thresholds = VerdictThresholds(**record["thresholds"])
    idx = np.asarray(idx, dtype=np.int64)
    t, curves, summary = compute_chunk(spec, spec.points(), idx, thresholds, devices)
    return write_chunk(out, record["sweep_id"], idx, t, curves, summary, record["curve_points"])


def _job_entry(out: str, idx: list[int]) -> str:  # pragma: no cover - runs in submitit workers
    from .._internal import enable_persistent_cache

    enable_persistent_cache()  # a worker process is its own entry point
    return run_chunk(out, idx)


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


def run_sweep(
    spec: SweepSpec,
    out: str,
    thresholds: VerdictThresholds = VerdictThresholds(),
    *,
    chunk_size: int = 0,
    curve_points: int = 401,
    executor: str = "inline",
    slurm: dict[str, Any] | None = None,
    devices=None,
    progress: bool = False,
    write_every_s: float = 5.0,
    on_chunk: Callable[[str, int], None] | None = None,
) -> SweepState:
    """Run (or resume) a sweep into ``out``; returns the in-memory summary of all points.

    Args:
        spec: the grid. thresholds: verdict thresholds.
        out: output directory (created); it may hold an unfinished run of the same sweep.
        chunk_size: runs per compiled call (0: automatic, ~256 MiB of curves, ≤ 4096).
        curve_points: stored points per curve (≤ 0: all recorded times).
        executor: ``inline`` (this process), ``local`` or ``slurm`` (submitit jobs, one per chunk).
        slurm: ``partition``, ``time`` (minutes), ``gpus``, ``cpus``, ``array_parallelism``.
        devices: JAX devices to shard each chunk over (inline only; default all local devices).
        progress: show a progress bar (runs done, runs/s, ETA) on stderr.
        write_every_s: rewrite ``sweep.h5``/``summary.csv`` at most this often (and at the end).
        on_chunk: called with (chunk name, new points) after each chunk is committed.
    """
    import jax

    require(executor in EXECUTORS, "executor", f"must be one of {EXECUTORS} (got {executor!r})")
    record = sweep_record(spec, thresholds, curve_points)
    ex = (
        None if executor == "inline" else submitit_executor(executor, os.path.join(out, "jobs"), slurm or {})
    )
    prepare_output_dir(out)
    claim_directory(out, record)
    remove_temporaries(out)
    state = SweepState(spec, record)
    for name, chunk in read_chunk_summaries(out, record["sweep_id"]).items():
        state.add(name, chunk)
    state.write(out)
    todo = np.nonzero(~state.done)[0]
    n_devices = len(jax.local_devices() if devices is None else devices) if executor == "inline" else 1
    chunks = plan_chunks(spec, state.points, todo, chunk_size, n_devices)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(todo.size), unit="run", desc="sweep", smoothing=0.1, dynamic_ncols=True)
    last_write = time.monotonic()

    def commit(name: str, chunk_points: np.ndarray, summary: dict | None = None) -> None:
        nonlocal last_write
        if summary is None:
            summary = read_chunk_summaries(out, record["sweep_id"]).get(name)
            require(summary is not None, "executor", f"job for chunk {name} finished but its file is missing")
        new = state.add(name, summary)
        if bar is not None:
            bar.update(new)
        if time.monotonic() - last_write >= write_every_s:
            state.write(out)
            last_write = time.monotonic()
        if on_chunk is not None:
            on_chunk(name, new)

    try:
        if executor == "inline":
            for idx in chunks:
                t, curves, summary = compute_chunk(spec, state.points, idx, thresholds, devices)
                name = write_chunk(out, record["sweep_id"], idx, t, curves, summary, curve_points)
                commit(name, idx, {"point": idx, **summary})
        elif chunks:
            jobs = ex.map_array(_job_entry, [out] * len(chunks), [c.tolist() for c in chunks])
            pending = dict(zip(jobs, chunks))
            while pending:
                for job in [j for j in pending if j.done()]:
                    idx = pending.pop(job)
                    try:
                        name = job.result()
                    except Exception as e:  # noqa: BLE001 - report the failed chunk, keep the others
                        raise RuntimeError(
                            f"chunk job {job.job_id} (points {idx[0]}..{idx[-1]}) failed: {e}"
                        ) from e
                    commit(name, idx)
                time.sleep(0.2)
    finally:
        if bar is not None:
            bar.close()
        state.write(out)
    return state


__all__ = ["EXECUTORS", "auto_chunk_size", "plan_chunks", "run_chunk", "run_sweep"]
