"""Sweep speed: batched, compiled chunks vs the same configurations run one at a time.

1. Reduced model: a 100 × 100 (μ₁, α) grid × 4 seeds = 40 000 runs, GD η = 1 to step 16000 (stop at
   loss < 1e-6, recorded every 10 steps), through :func:`toymodels.sweep.run_sweep` — compilation,
   chunking, summaries, verdicts and the HDF5 store included. Target: < 2 min on 2 cores.
   Timed in both state coordinates of the reduced dynamics (``--coordinates PEW PQ``; PQ is the
   sweep's float64 default, PEW that of a reduced run alone).
2. Full-vector model (dims 20 20 20 160): 1000 runs (10 μ₁ × 25 α × 4 seeds), same dynamics. Target: < 2 min.

Each chunk is sharded over one XLA host device per core (``XLA_FLAGS`` is set unless given).
Baseline in the same run: the same configurations one at a time — each point as its own compiled call
of batch size 1 (compiled once, then reused, so the baseline is not charged for recompilation), timed on
``--baseline-points`` points of each grid and extrapolated to the whole grid. The printed speed-up is
(extrapolated one-at-a-time time) / (batched wall time incl. compilation).

    python benchmarks/sweep_speed.py [--baseline-points 40] [--full-runs 1000] [--skip-full]
        [--coordinates PEW PQ]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# one XLA host device per core, so a chunk's runs are sharded over every core (set before JAX loads)
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from toymodels.methods import GradientDescent  # noqa: E402
from toymodels.sweep import VERDICTS, SweepSpec, VerdictThresholds, compute_chunk, run_sweep  # noqa: E402

METHOD = GradientDescent(lr=1.0, steps=16000, stop_loss=1e-6, save_every=10)


def batched(spec: SweepSpec, label: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        state = run_sweep(spec, out, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(out) for f in files)
    counts = {name: int((state.summary["verdict"] == k).sum()) for k, name in enumerate(VERDICTS)}
    print(
        f"{label}: {spec.n_points} runs in {wall:.1f} s ({spec.n_points / wall:.0f} runs/s, "
        "incl. compilation and "
        f"the store, {size / 2**20:.0f} MiB; process CPU time {cpu:.1f} s) · verdicts {counts}"
    )
    return wall


def one_at_a_time(spec: SweepSpec, n_sample: int, label: str) -> float:
    """Seconds per run when every point is its own call (batch of 1), after one warm-up call."""
    points = spec.points()
    rng = np.random.default_rng(0)
    sample = rng.choice(spec.n_points, size=min(n_sample, spec.n_points), replace=False)
    th = VerdictThresholds()
    one = jax.local_devices()[:1]  # a single run on one device (no padding to the device count)
    compute_chunk(spec, points, sample[:1], th, one)  # compile the batch-of-1 call
    t0, c0 = time.perf_counter(), time.process_time()
    for i in sample:
        compute_chunk(spec, points, np.asarray([i]), th, one)
    per_run = (time.perf_counter() - t0) / sample.size
    cpu_per_run = (time.process_time() - c0) / sample.size
    print(
        f"{label} one at a time: {per_run * 1000:.1f} ms/run over {sample.size} sampled points "
        f"(CPU {cpu_per_run * 1000:.1f} ms/run) → {per_run * spec.n_points:.0f} s extrapolated "
        f"to {spec.n_points} runs"
    )
    return per_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline-points", type=int, default=40)
    p.add_argument("--full-runs", type=int, default=1000, help="multiple of 100")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument(
        "--coordinates", nargs="+", default=["PEW", "PQ"], help="reduced-model state coordinates to time"
    )
    args = p.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(shared machine: wall-clock numbers are inflated); "
        f"{len(jax.local_devices())} JAX devices"
    )
    for coordinates in args.coordinates:
        reduced = SweepSpec(
            mu1=tuple(np.linspace(0.0, 0.2, 100)), alpha=tuple(np.geomspace(0.01, 1.0, 100)),
            seeds=(0, 1, 2, 3), reduced=(True,), methods=(METHOD,), coordinates=coordinates,
        )  # fmt: skip
        label = f"reduced ({coordinates}) 100×100×4"
        wall = batched(reduced, label)
        per_run = one_at_a_time(reduced, args.baseline_points, label)
        print(
            f"{label}: speed-up over one at a time ×{per_run * reduced.n_points / wall:.1f}; "
            f"target < 120 s: {'met' if wall < 120 else 'MISSED'}"
        )
    if not args.skip_full:
        n_alpha = args.full_runs // 40
        full = SweepSpec(
            mu1=tuple(np.linspace(0.0, 0.2, 10)), alpha=tuple(np.geomspace(0.01, 1.0, n_alpha)),
            seeds=(0, 1, 2, 3), reduced=(False,), methods=(METHOD,),
        )  # fmt: skip
        wall = batched(full, f"full 10×{n_alpha}×4")
        per_run = one_at_a_time(full, args.baseline_points, "full")
        print(
            f"full: speed-up over one at a time ×{per_run * full.n_points / wall:.1f}; "
            f"target < 120 s: {'met' if wall < 120 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
