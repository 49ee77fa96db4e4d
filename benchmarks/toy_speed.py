"""Toy-model speed: fused, vmapped GD (one compiled call) vs a per-step Python loop, same run.

Baseline = how the original study's code runs: one Python-dispatched jitted step per iteration
(materialised float32 tensors, jax.value_and_grad), per-step tracking of the loss terms pulled to
the host, seed after seed, stopping when the loss < 1e-6. The baseline is timed on
``--baseline-steps`` steps per seed and extrapolated to the steps the full run executes (the sum
of the seeds' stop steps), unless ``--full-baseline`` runs all of them.

Also times the whole ``python -m toymodels --method gd|flow --seeds 0-11`` process (start-up,
compilation, run, HDF5 and figure), with a cold and a warm compilation cache.

    python benchmarks/toy_speed.py [--baseline-steps 1500] [--full-baseline] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from toymodels.dynamics import _simulate_batch
from toymodels.init import draw_vectors
from toymodels.losses import coopetition_model, loss_params
from toymodels.methods import GradientDescent, GradientFlow
from toymodels.precision import numerics

SEEDS = list(range(12))


def time_ours(method, repeats: int) -> tuple[float, float, np.ndarray]:
    model = coopetition_model()
    lp = loss_params(model, (0.1,), 0.1)
    with numerics("float64") as dtype:
        targets, init = draw_vectors(model, SEEDS)
        args = (model, method, (), dtype, targets, init, lp.mu, lp.alpha)
        t0 = time.perf_counter()
        compiled = _simulate_batch.lower(*args).compile()
        t_compile = time.perf_counter() - t0
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            traj, _, _ = jax.block_until_ready(compiled(*args[4:]))
            runs.append(time.perf_counter() - t0)
    return t_compile, float(np.median(runs)), np.asarray(traj.stop)


def baseline_per_step(seed: int, max_steps: int) -> tuple[int, float]:
    """The original study's loop for one seed; returns (steps executed, seconds)."""
    with jax.threefry_partitionable(False):
        key = jax.random.PRNGKey(seed)
        targets, params = {}, {}
        for name, dim in zip("abcd", (20, 20, 20, 160)):
            key, sub = jax.random.split(key)
            kt, ki = jax.random.split(sub)
            targets[name], params[name] = jax.random.normal(kt, (dim,)), jax.random.normal(ki, (dim,))

    def losses(p):
        t = targets
        l1 = 0.5 * jnp.mean(
            (
                jnp.einsum("i,j,k->ijk", t["a"], t["b"], t["c"])
                - jnp.einsum("i,j,k->ijk", p["a"], p["b"], p["c"])
            )
            ** 2
        )
        l2 = 0.5 * jnp.mean(
            (
                jnp.einsum("i,j,k->ijk", t["d"], t["b"], t["c"])
                - jnp.einsum("i,j,k->ijk", p["d"], p["b"], p["c"])
            )
            ** 2
        )
        comp = 0.5 * jnp.mean(jnp.outer(p["a"], p["d"]) ** 2)
        return (l1 + 0.1) * l2 + 0.1 * comp, (l1, l2, comp)

    @jax.jit
    def step(p):
        (loss, aux), g = jax.value_and_grad(losses, has_aux=True)(p)
        return jax.tree.map(lambda x, y: x - y, p, g), loss, aux

    step(params)  # compile outside the timing
    history = []
    t0 = time.perf_counter()
    n = 0
    for n in range(1, max_steps + 1):
        new, loss, (l1, l2, comp) = step(params)
        history.append((float(loss), float(l1), float(l2), float(comp)))  # per-step tracking
        if history[-1][0] < 1e-6:
            break
        params = new
    return n, time.perf_counter() - t0


def time_cli(method: str, cache_dir: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "ICL_COOPETITION_CACHE_DIR": cache_dir, "MPLBACKEND": "Agg"}
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "toymodels",
                "--method",
                method,
                "--seeds",
                "0-11",
                "--out",
                out,
                "--quiet",
            ],
            check=True,
            env=env,
        )
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--baseline-steps", type=int, default=1500, help="baseline steps timed per seed (then extrapolated)"
    )
    p.add_argument("--baseline-seeds", type=int, default=3, help="seeds timed in the baseline")
    p.add_argument("--full-baseline", action="store_true", help="run the baseline for every seed to its stop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-cli", action="store_true")
    args = p.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, {os.cpu_count()} CPUs")

    gd = GradientDescent(lr=1.0, steps=16000, stop_loss=1e-6)
    t_compile, t_run, stops = time_ours(gd, args.repeats)
    executed = int(np.sum(np.where(stops >= 0, stops + 1, gd.steps + 1)))
    print(
        f"ours  GD   12 seeds x 16000 steps, full tracking: compile {t_compile:.2f} s, run {t_run:.3f} s "
        f"({t_run / (12 * 16001) * 1e6:.2f} us per seed-step)"
    )

    seeds = SEEDS if args.full_baseline else SEEDS[: args.baseline_seeds]
    steps, seconds = 0, 0.0
    for s in seeds:
        n, t = baseline_per_step(s, 16000 if args.full_baseline else args.baseline_steps)
        steps, seconds = steps + n, seconds + t
    per_step = seconds / steps
    baseline_total = per_step * executed if not args.full_baseline else seconds
    how = "measured" if args.full_baseline else f"extrapolated from {steps} timed steps"
    print(
        f"base  GD   per-step loop: {per_step * 1e3:.3f} ms per step; {executed} steps to the 12 stops -> "
        f"{baseline_total:.1f} s ({how})"
    )
    print(
        f"RATIO GD   baseline / ours (run): {baseline_total / t_run:.0f}x ; including our compilation: "
        f"{baseline_total / (t_run + t_compile):.0f}x  (target >= 100x)"
    )

    flow = GradientFlow(t_max=16000.0, n_save=1601)
    f_compile, f_run, _ = time_ours(flow, args.repeats)
    print(
        f"ours  flow 12 seeds to t = 16000 (Tsit5, rtol 1e-8): compile {f_compile:.2f} s, run {f_run:.3f} s"
    )

    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as cache:
            for method in ("gd", "flow"):
                cold = time_cli(method, cache)
                warm = time_cli(method, cache)
                print(
                    f"CLI   python -m toymodels --method {method} --seeds 0-11: "
                    f"cold cache {cold:.2f} s, warm cache {warm:.2f} s"
                    + ("  (target < 5 s)" if method == "gd" else "")
                )
            print(f"CLI   without the cache: {time_cli('gd', 'off'):.2f} s (gd)")


if __name__ == "__main__":
    main()
