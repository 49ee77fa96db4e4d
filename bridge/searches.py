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


def run_searches(
    spec: FitSpec, solve: SolveSettings, settings, u, Y, sigma, basin_rtol: float
) -> tuple[StartResult, dict[str, Any]]:
    """The merged, polished minimisation of every search's starts (NumPy, ``searches × n_starts``
    starts, search-major) and a record: ``searches`` (each search's screen record with its seed and,
    for CMA-ES, its evolution), ``polished`` (indices continued by the polish). ``settings`` is a
    :class:`bridge.fitting.FitSettings`."""
    # a CMA-ES fit screens in batches of a generation's size: the evolution's compiled program
    batch = settings.evolution.generation_size(settings.n_starts) if settings.search == "cmaes" else None
    args = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))
    records, parts = [], []
    for i in range(settings.searches):
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
            parts.append(
                jax.device_get(minimise_starts(spec, solve, settings.optimiser, jnp.asarray(theta0), *args))
            )
        records.append(record)
    with numerics("float64"):
        res = jax.tree.map(lambda *a: np.concatenate(a), *parts)
        res, polished = polish_best(
            spec, solve, settings.optimiser, res, *args, basin_rtol,
            batch=settings.n_starts, groups=settings.searches,
        )  # fmt: skip
    return res, {"searches": records, "polished": polished}


def search_agreement(costs: np.ndarray, in_basin: np.ndarray, searches: int) -> tuple[list[float], int]:
    """Each search's best cost and how many searches have a start in the best basin (``in_basin``,
    the fit's mask of :func:`bridge.optimise.best_basin`; starts search-major): fewer than all means
    the others ended in worse basins, so one more search could have found a lower one."""
    per_search = costs.reshape(searches, -1)
    reached = np.any(in_basin.reshape(per_search.shape), axis=1)
    return [float(c) for c in per_search.min(axis=1)], int(np.sum(reached))


__all__ = ["SEARCH_SEED_STRIDE", "run_searches", "search_agreement"]
