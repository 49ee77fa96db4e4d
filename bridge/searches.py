r"""Independent global searches: each a screen (and CMA-ES) with its own seed, minimised, then merged.

Which basin of the exact family one search ends in is close to a coin toss on some held-out cases
(docs/bridge.md, "Search or data?": 1 CMA-ES instance in 16 reached the truth's basin in paper s3),
while the wrong basins cost clearly more than the right one (4–1021 profile thresholds), so the
lowest cost of independent searches picks the right basin whenever one of them found it.

:func:`run_searches` runs ``settings.searches`` searches, search i with seed
``settings.seed + SEARCH_SEED_STRIDE·i`` — the screen (:func:`bridge.starts.initial_guesses`) and,
with ``settings.search = "cmaes"``, the evolution (:func:`bridge.evolve.evolve`) —, minimises each
search's ``n_starts`` starts through the same compiled program
(:func:`bridge.optimise.minimise_starts`) and polishes every search on its own
(:func:`bridge.optimise.polish_best` with ``groups``), so search 0 is the one-search fit.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.precision import numerics

from .evolve import evolve
from .optimise import StartResult, minimise_starts, polish_best
from .spec import FitSpec
from .starts import initial_guesses
from .toy import SolveSettings

SEARCH_SEED_STRIDE = 1000
"""Seed offset between independent searches (CMA-ES instance k of a search uses seed + 1 + k)."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a SLURM
    allocation; ``os.cpu_count()`` where the platform has no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def search_workers(settings) -> int:
    """Threads that run the searches at once: ``settings.workers``, or by default (None) one per
    search up to :func:`available_cores`."""
    wanted = settings.workers if settings.workers is not None else available_cores()
    return max(1, min(int(wanted), settings.searches))


def _one_search(
    i: int, spec: FitSpec, solve: SolveSettings, settings, u, Y, sigma, batch
) -> tuple[dict[str, Any], StartResult]:
    """Search i: its screen, its evolution (CMA-ES) and the minimisation of its starts (NumPy)."""
    seed = settings.seed + SEARCH_SEED_STRIDE * i
    t0 = time.perf_counter()
    theta0, record = initial_guesses(
        spec, u, Y, sigma, settings.n_starts, settings.n_candidates, seed, solve, batch
    )
    record["seed"] = seed
    record["seconds"] = time.perf_counter() - t0
    if settings.search == "cmaes":
        theta0, record["cmaes"] = evolve(
            spec, solve, theta0, np.asarray(record["picked_costs"]), u, Y, sigma,
            settings.evolution, seed, settings.n_starts,
        )  # fmt: skip
    with numerics("float64"):
        args = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))
        part = jax.device_get(minimise_starts(spec, solve, settings.optimiser, jnp.asarray(theta0), *args))
    return record, part


def run_searches(
    spec: FitSpec, solve: SolveSettings, settings, u, Y, sigma, basin_rtol: float
) -> tuple[StartResult, dict[str, Any]]:
    """The merged, polished minimisation of every search's starts (NumPy, ``searches × n_starts``
    starts, search-major) and a record: ``searches`` (each search's screen record with its seed and,
    for CMA-ES, its evolution), ``workers`` (threads that ran them), ``polished`` (indices continued
    by the polish). ``settings`` is a :class:`bridge.fitting.FitSettings`.

    With :func:`search_workers` > 1 the searches run in that many threads at once: a compiled
    program runs without Python's lock, so on as many cores the searches take the wall time of one
    (the CMA-ES bookkeeping between generations is the only serial part). The searches share no
    state and XLA's CPU programs are deterministic, so the result is the same to the last bit
    whatever the number of workers (tested)."""
    # a CMA-ES fit screens in batches of a generation's size: the evolution's compiled program
    batch = settings.evolution.generation_size(settings.n_starts) if settings.search == "cmaes" else None
    workers = search_workers(settings)
    job = functools.partial(
        _one_search, spec=spec, solve=solve, settings=settings, u=u, Y=Y, sigma=sigma, batch=batch
    )
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="bridge-search") as pool:
            done = list(pool.map(job, range(settings.searches)))
    else:
        done = [job(i) for i in range(settings.searches)]
    records = [record for record, _ in done]
    with numerics("float64"):
        args = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))
        res = jax.tree.map(lambda *a: np.concatenate(a), *[part for _, part in done])
        res, polished = polish_best(
            spec, solve, settings.optimiser, res, *args, basin_rtol,
            batch=settings.n_starts, groups=settings.searches,
        )  # fmt: skip
    return res, {"searches": records, "workers": workers, "polished": polished}


def search_agreement(costs: np.ndarray, in_basin: np.ndarray, searches: int) -> tuple[list[float], int]:
    """Each search's best cost and how many searches have a start in the best basin (``in_basin``,
    the fit's mask of :func:`bridge.optimise.best_basin`; starts search-major): fewer than all means
    the others ended in worse basins, so one more search could have found a lower one."""
    per_search = costs.reshape(searches, -1)
    reached = np.any(in_basin.reshape(per_search.shape), axis=1)
    return [float(c) for c in per_search.min(axis=1)], int(np.sum(reached))


__all__ = ["SEARCH_SEED_STRIDE", "available_cores", "run_searches", "search_agreement", "search_workers"]
