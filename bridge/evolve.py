r"""Global search by CMA-ES: evolve the screen's best starts before the local minimisation.

The screen (:mod:`bridge.starts`) picks the best of a few thousand random points; in the exact
family (14 free parameters: every q_x(0) and c's own parameters free) its best points lie in basins
3–7× above the truth's cost, and neither more random starts nor a staged search from the default
family's optimum climbs out (docs/bridge.md, "Why the fit misses"). A covariance-matrix-adaptation
evolution strategy (Hansen's CMA-ES, the well-kept ``cma`` package) does: it adapts a full
covariance to the valleys of the landscape, which here are long, curved and nearly degenerate
(the overlaps, initial norms and rates trade off against each other).

:func:`evolve` runs ``instances`` independent CMA-ES instances in the unconstrained coordinates θ,
instance k started at the k-th best screened start with step size ``sigma0`` (θ is logarithmic in
every parameter, so σ = 1 is a factor ≈ e per parameter). Each generation, the populations of all
instances (``instances`` × ``popsize`` points) are evaluated in **one** compiled, vmapped forward
solve (:func:`bridge.starts.screen_costs`, the screen's own program: no derivatives); a failed solve
scores :data:`FAILED_COST`. An instance stops at ``generations`` or at CMA-ES's own termination
criteria; the stopped ones keep being evaluated at their mean (fixed batch, one compilation) but
are no longer told. The result: every instance's best point (its start if it improved on nothing),
then the best points of the whole history, distinct in cost, up to ``n_out`` — the starts of the
Adam → Levenberg–Marquardt minimisation (:mod:`bridge.optimise`), which polishes them.

Deterministic: CMA-ES draws its populations from its own seeded generator (``seed`` + k for
instance k), so the same data, settings and seed give the same starts.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax.numpy as jnp
import numpy as np

from toymodels.errors import require
from toymodels.precision import numerics

from .spec import FitSpec
from .starts import screen_costs
from .toy import SolveSettings

FAILED_COST = 1e3
"""Score of a point whose solve fails (costs of a fit are ½Σ(1 − R²) ≤ 1.5 for any finite point)."""


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """Budget of the CMA-ES search (module docstring).

    Attributes:
        instances: independent instances, started at the best screened starts (≤ the fit's starts).
        popsize: points per instance per generation.
        generations: most generations per instance.
        sigma0: initial step size in the unconstrained coordinates.
        max_steps: solver step budget (at most the fit's own) of every solve of a CMA-ES fit
            before its final curves: the screen, the evolution, the local minimisation and the
            profiles (:meth:`search_solve`). A batch of points is one vmapped solve, which steps
            until its slowest member is done, and a member that fails (a diverging point, or a
            rejected LM trial) uses up the whole budget: with 2048 steps, 10 failing points of 128
            made a late generation of paper s7 3.5× slower than with 512, and a held-out fit with
            profiles took 296 s instead of 125 s; every point that succeeded with 2048 steps
            succeeded with 512, with the same cost to the last bit (a solve that succeeds is the same
            sequence of steps whatever the budget). The fit's final curves and predictions use the
            full budget.
    """

    instances: int = 4
    popsize: int = 32
    generations: int = 400
    sigma0: float = 1.0
    max_steps: int = 512

    def generation_size(self, n_starts: int) -> int:
        """Points scored per generation by :func:`evolve` given ``n_starts`` screened starts."""
        return min(self.instances, n_starts) * self.popsize

    def search_solve(self, solve: SolveSettings) -> SolveSettings:
        """``solve`` with its step budget capped at :attr:`max_steps`."""
        return dataclasses.replace(solve, max_steps=min(solve.max_steps, self.max_steps))

    def __post_init__(self) -> None:
        for name in ("instances", "popsize", "generations", "max_steps"):
            v = getattr(self, name)
            require(int(v) == v and v >= 1, f"cma-{name}", f"must be an integer >= 1 (got {v})")
        require(self.popsize >= 4, "cma-popsize", f"must be >= 4 (got {self.popsize})")
        require(
            np.isfinite(self.sigma0) and self.sigma0 > 0, "cma-sigma0", f"must be > 0 (got {self.sigma0})"
        )


def evolve(
    spec: FitSpec,
    solve: SolveSettings,
    starts: np.ndarray,
    start_costs: np.ndarray,
    u: np.ndarray,
    Y: np.ndarray,
    sigma: np.ndarray,
    settings: EvolutionSettings,
    seed: int,
    n_out: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Evolve the first ``settings.instances`` rows of ``starts`` (unconstrained, best first, with
    their screened ``start_costs``) and return ``n_out`` starts (n_out, p) for the local minimisation
    and a record (module docstring). An instance that found nothing better than its start returns
    the start, so the returned starts are never worse than the screen's."""
    import cma  # the search's only user; imported here so that the package imports without it

    t0 = time.perf_counter()
    k = min(settings.instances, starts.shape[0])
    opts = {"popsize": settings.popsize, "maxiter": settings.generations, "verbose": -9}
    strategies = [
        cma.CMAEvolutionStrategy(np.asarray(starts[i], float), settings.sigma0, dict(opts, seed=seed + 1 + i))
        for i in range(k)
    ]
    history: list[tuple[float, np.ndarray]] = []
    generations = 0
    with numerics("float64"):
        data = (jnp.asarray(u), jnp.asarray(Y), jnp.asarray(sigma))  # float64: the solve's times too
        while not all(es.stop() for es in strategies):
            batches = [es.ask() if not es.stop() else [es.mean] * settings.popsize for es in strategies]
            theta = np.stack([x for b in batches for x in b])
            costs = np.asarray(screen_costs(spec, solve, jnp.asarray(theta), *data))
            costs = np.where(np.isfinite(costs), costs, FAILED_COST)
            for j, es in enumerate(strategies):
                if es.stop():
                    continue
                c = costs[j * settings.popsize : (j + 1) * settings.popsize]
                es.tell(batches[j], c.tolist())
                i = int(np.argmin(c))
                history.append((float(c[i]), np.asarray(batches[j][i])))
            generations += 1
    best = [
        (float(es.result.fbest), np.asarray(es.result.xbest))
        if es.result.xbest is not None and es.result.fbest < start_costs[i]
        else (float(start_costs[i]), np.asarray(starts[i], float))
        for i, es in enumerate(strategies)
    ]
    out = [x for _, x in best]
    seen = {round(c, 12) for c, _ in best}
    for c, x in sorted(history, key=lambda z: z[0]):
        if len(out) >= n_out:
            break
        if round(c, 12) not in seen:
            seen.add(round(c, 12))
            out.append(x)
    out += [out[0]] * (n_out - len(out))  # a short history: repeat the best
    record = {
        "instances": k,
        "popsize": settings.popsize,
        "generations": generations,
        "evaluations": generations * k * settings.popsize,
        "start_costs": [float(c) for c in start_costs[:k]],
        "best_costs": [c for c, _ in best],
        "stopped_by": [sorted(es.stop()) for es in strategies],
        "seconds": time.perf_counter() - t0,
    }
    return np.stack(out[:n_out]), record


__all__ = ["FAILED_COST", "EvolutionSettings", "evolve"]
