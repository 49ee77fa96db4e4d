"""Reduced model speed vs the full-vector model, measured in the same run.

Both state coordinates of the reduced model are timed: (P, E, W) (the default of a run; accurate near
any minimum) and (P, Q) (the sweep default in float64; several times cheaper per step).

1. One coopetition run (paper seed 7, μ₁ = α = 0.1, dims 20/20/20/160) to t = 16000: gradient
   descent (16000 steps, lr 1) and gradient flow (Tsit5, rtol 1e-8), reduced vs full, after
   compilation (best of ``--repeats``), through the public API and as the compiled solve alone.
2. ``--configs`` (μ₁, α) configurations (seed-7 vectors) to t = 16000 in one vmapped call of
   :func:`toymodels.reduced.simulate_reduced` (every progress measure at ``--n-save`` times; large
   flow batches in two passes), GD and flow, timed after compilation and including it; the full-vector
   model runs ``--full-configs`` of the same configurations for the speed-up. Target: < 30 s.

    python benchmarks/reduced_speed.py [--configs 10000] [--full-configs 200] [--repeats 3]
        [--coordinates PEW PQ]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.dynamics import simulate
from toymodels.init import draw_vectors
from toymodels.losses import LossParams, coopetition_model, loss_params
from toymodels.methods import GradientDescent, GradientFlow
from toymodels.precision import numerics
from toymodels.reduced import (
    ReducedParams,
    _solve_batch,
    initial_state,
    initial_stats_from_vectors,
    reduced_dynamics,
    simulate_reduced,
)


def best_time(fn, repeats):
    fn()  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=10_000)
    ap.add_argument("--full-configs", type=int, default=200)
    ap.add_argument("--n-save", type=int, default=161)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--coordinates", nargs="+", default=["PEW", "PQ"], choices=["PEW", "PQ"])
    args = ap.parse_args()
    model = coopetition_model()
    lp = loss_params(model, (0.1,), 0.1)
    gd = GradientDescent(lr=1.0, steps=16000, stop_loss=None, save_every=100)
    flow = GradientFlow(t_max=16000.0, n_save=161, rtol=1e-8, atol=1e-10)
    print(f"devices: {jax.devices()}")
    with numerics("float64"):
        targets, init = draw_vectors(model, [7])
    stats = initial_stats_from_vectors(targets, init)
    print(
        f"\n1) one run, seed 7, mu1 = alpha = 0.1, to t = 16000 (after compilation, best of {args.repeats})"
    )
    for method in (gd, flow):
        t_full = best_time(lambda: simulate(model, method, targets, init, lp), args.repeats)
        for coordinates in args.coordinates:
            t_red = best_time(
                lambda: simulate_reduced(model, method, stats, lp, coordinates=coordinates), args.repeats
            )
            # the compiled reduced solve alone (no input checks, host transfer or result object)
            dyn = reduced_dynamics(model, coordinates=coordinates)
            with numerics("float64") as dtype:
                state = jax.device_put(initial_state(dyn, stats, dtype))
                R = jnp.asarray(np.stack([stats[v].R for v in model.vectors], -1))
                params = ReducedParams(
                    R=R,
                    dims=jnp.asarray([model.dims], dtype=float),
                    mu=jnp.asarray([[0.1, 0.0]]),
                    alpha=jnp.asarray([0.1]),
                )
                t_alone = best_time(
                    lambda: jax.block_until_ready(_solve_batch(dyn, method, state, params)), args.repeats
                )
            print(
                f"   {method.name:4s} {coordinates:3s}: reduced {t_red * 1e3:7.2f} ms "
                f"(compiled solve alone {t_alone * 1e3:6.2f} ms)   "
                f"full {t_full * 1e3:8.2f} ms   speed-up {t_full / t_red:6.1f}x"
            )

    # 2) many (mu1, alpha) configurations in one vmapped call, public API
    n = args.configs
    side = int(np.ceil(np.sqrt(n)))
    mu1, alpha = np.meshgrid(np.linspace(0.0, 0.3, side), np.linspace(0.0, 0.3, side))
    mu = np.stack([mu1.ravel()[:n], np.zeros(n)], -1)
    al = alpha.ravel()[:n]
    targets_n = {k: np.broadcast_to(np.asarray(v), (n, v.shape[-1])) for k, v in targets.items()}
    init_n = {k: np.broadcast_to(np.asarray(v), (n, v.shape[-1])) for k, v in init.items()}
    stats_n = initial_stats_from_vectors(targets_n, init_n)
    lpn = LossParams(mu=mu, alpha=al)
    flow_n = GradientFlow(t_max=16000.0, n_save=args.n_save, rtol=1e-8, atol=1e-10)
    gd_n = GradientDescent(lr=1.0, steps=16000, stop_loss=None, save_every=16000 // (args.n_save - 1))
    m = args.full_configs
    sub = np.random.default_rng(0).choice(n, size=m, replace=False)  # a random subset of the grid
    t_s = {k: v[sub] for k, v in targets_n.items()}
    i_s = {k: v[sub] for k, v in init_n.items()}
    lps = LossParams(mu=mu[sub], alpha=al[sub])
    st_s = initial_stats_from_vectors(t_s, i_s)
    print(
        f"\n2) {n} (mu1, alpha) configurations in [0, 0.3]^2 (seed 7 vectors), one vmapped call, "
        "to t = 16000, "
        f"{args.n_save} recorded times, every progress measure "
        "(simulate_reduced; flow: Tsit5 rtol 1e-8, two passes)"
    )
    for method in (gd_n, flow_n):
        for coordinates in args.coordinates:
            t0 = time.perf_counter()
            simulate_reduced(model, method, stats_n, lpn, coordinates=coordinates)
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = simulate_reduced(model, method, stats_n, lpn, coordinates=coordinates)
            t_red = time.perf_counter() - t0
            ok = np.isfinite(res["loss"][:, -1]).mean()
            verdict = "met" if t_red < 30 else "MISSED"
            print(
                f"   {method.name:4s} {coordinates:3s}: {t_red:7.2f} s after compilation "
                f"({t_first:.2f} s incl. compilation); "
                f"{len(res.failures())} failures; {ok:.0%} finite; target < 30 s: {verdict}"
            )
        t_full = best_time(lambda: simulate(model, method, t_s, i_s, lps), 1)
        t_red_s = best_time(lambda: simulate_reduced(model, method, st_s, lps), 1)
        print(
            f"   {method.name:4s} same {m} random configurations, one vmapped call each: "
            f"reduced (PEW) {t_red_s:.3f} s, "
            f"full {t_full:.3f} s -> speed-up {t_full / t_red_s:.1f}x"
        )


if __name__ == "__main__":
    main()
