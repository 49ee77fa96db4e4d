"""Reduced (P, E, W) model speed vs the full-vector model, measured in the same run.

1. One coopetition run (paper seed 7, μ₁ = α = 0.1, dims 20/20/20/160) to t = 16000: gradient
   descent (16000 steps, lr 1) and gradient flow (Tsit5, rtol 1e-8), reduced vs full, after
   compilation (best of ``--repeats``).
2. A vmapped sweep of ``--configs`` (μ₁, α) configurations (typical initial statistics, σ = 1,
   fixed overlaps) to t = 16000 with the gradient flow (``--n-save`` saves), reduced model, timed
   including compilation and after it; the full-vector model runs ``--full-configs`` of the same
   configurations and its time is scaled per configuration to give the speed-up.

    python benchmarks/reduced_speed.py [--configs 10000] [--full-configs 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.dynamics import GradientDescent, GradientFlow, simulate
from toymodels.init import draw_vectors
from toymodels.losses import LossParams, coopetition_model, loss_params
from toymodels.precision import numerics
from toymodels.reduced import (
    ReducedParams,
    ReducedState,
    _solve_batch,
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
    args = ap.parse_args()
    model = coopetition_model()
    lp = loss_params(model, (0.1,), 0.1)
    gd = GradientDescent(lr=1.0, steps=16000, stop_loss=None, save_every=100)
    flow = GradientFlow(t_max=16000.0, n_save=161, rtol=1e-8, atol=1e-10)
    print(f"devices: {jax.devices()}")
    with numerics("float64"):
        targets, init = draw_vectors(model, [7])
    stats = initial_stats_from_vectors(targets, init)
    print("\n1) one run, seed 7, mu1 = alpha = 0.1, to t = 16000 (public API, after compilation, best of %d)" % args.repeats)
    for method in (gd, flow):
        t_red = best_time(lambda: simulate_reduced(model, method, stats, lp), args.repeats)
        t_full = best_time(lambda: simulate(model, method, targets, init, lp), args.repeats)
        print(f"   {method.name:4s}: reduced {t_red * 1e3:8.2f} ms   full {t_full * 1e3:8.2f} ms   speed-up {t_full / t_red:6.1f}x")
    # the compiled reduced solve alone (no input checks, host transfer or result object)
    dyn = reduced_dynamics(model)
    with numerics("float64"):
        V = model.vectors
        state = ReducedState(**{f: jnp.asarray(np.stack([getattr(stats[v], f) for v in V], -1)) for f in "PEW"})
        R = jnp.asarray(np.stack([stats[v].R for v in V], -1))
        params = ReducedParams(R=R, dims=jnp.asarray([model.dims], dtype=float), mu=jnp.asarray([[0.1, 0.0]]), alpha=jnp.asarray([0.1]))
        for method in (gd, flow):
            t = best_time(lambda: jax.block_until_ready(_solve_batch(dyn, method, state, params)), args.repeats)
            print(f"   {method.name:4s}: reduced compiled solve alone {t * 1e3:8.2f} ms")

    # 2) sweep over (mu1, alpha)
    n = args.configs
    side = int(np.ceil(np.sqrt(n)))
    mu1, alpha = np.meshgrid(np.linspace(0.0, 0.3, side), np.linspace(0.0, 0.3, side))
    mu = np.stack([mu1.ravel()[:n], np.zeros(n)], -1)
    al = alpha.ravel()[:n]
    targets_n = {k: np.broadcast_to(np.asarray(v), (n, v.shape[-1])) for k, v in targets.items()}
    init_n = {k: np.broadcast_to(np.asarray(v), (n, v.shape[-1])) for k, v in init.items()}
    stats_n = initial_stats_from_vectors(targets_n, init_n)
    lpn = LossParams(mu=mu, alpha=al)
    sweep = GradientFlow(t_max=16000.0, n_save=args.n_save, rtol=1e-8, atol=1e-10)
    print(f"\n2) {n} (mu1, alpha) configurations (seed 7 vectors) vmapped, gradient flow to t = 16000, {args.n_save} saves")
    t0 = time.perf_counter()
    simulate_reduced(model, sweep, stats_n, lpn)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = simulate_reduced(model, sweep, stats_n, lpn)
    t_red = time.perf_counter() - t0
    ok = np.isfinite(res["loss"][:, 0]).mean()
    print(f"   reduced: {t_red:7.2f} s after compilation ({t_first:.2f} s incl. compilation); {len(res.failures())} solver failures; {ok:.0%} finite")
    m = args.full_configs
    sub = np.random.default_rng(0).choice(n, size=m, replace=False)  # a random subset of the grid
    t_s = {k: v[sub] for k, v in targets_n.items()}
    i_s = {k: v[sub] for k, v in init_n.items()}
    lps = LossParams(mu=mu[sub], alpha=al[sub])
    st_s = initial_stats_from_vectors(t_s, i_s)
    t_full = best_time(lambda: simulate(model, sweep, t_s, i_s, lps), 1)
    t_red_s = best_time(lambda: simulate_reduced(model, sweep, st_s, lps), 1)
    print(f"   same {m} random configurations, one vmapped call each: reduced {t_red_s:.3f} s, full {t_full:.3f} s -> speed-up {t_full / t_red_s:.1f}x")
    print(f"   (a vmapped adaptive solve runs as many steps as its stiffest member, so times are not linear in the batch size)")


if __name__ == "__main__":
    main()
