"""Speed of the ``induction-heads`` preset (thesis ch. 4) on this machine, against the study's report.

The study reports that one jitted run of its induction-head setting took ≈ 7 minutes on a 6-core 2018
laptop (≈ 330 minutes without jit). This script times ours:

1. the compiled training scan alone (:func:`transformer.trainer.make_train_chunk`): one warm-up call
   that compiles, then ``--steps`` Adam steps timed — seconds per step, wall clock and this process's
   CPU time (the second is what counts on a machine whose cores are shared);
2. one evaluation (:func:`transformer.evaluators.evaluate_all`: the four evaluator sets and the probes);
3. the whole preset run implied by them (its ``n_steps`` and evaluation schedule, plus compilation),
   and the same for 2e5 / 6e5 / 1e6 iterations (the study's learning time, clamp-run and main-run
   lengths; the report does not say which length its 7 minutes were for);
4. with ``--full``: the preset run itself through :func:`transformer.train` (log and checkpoints
   included), timed end to end.

It prints each time and its ratio to the study's 7 minutes. Speed is reported, never asserted.

    taskset -c 1 python benchmarks/induction_heads_speed.py [--steps 4000] [--full] [--lr 1e-5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp

from transformer import preset_config, train
from transformer.build import init_model, load_data, make_optimizer
from transformer.evaluators import evaluate_all, evaluator_sets, probe_sets
from transformer.schedule import eval_schedule
from transformer.trainer import make_train_chunk

STUDY_SECONDS = 7 * 60.0
"""The study's jitted run on a 6-core 2018 laptop (science notes §5)."""


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - t[0], now[1] - t[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4000, help="timed training steps (after the warm-up)")
    p.add_argument("--full", action="store_true", help="also run the whole preset through train()")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's 1e-5)")
    args = p.parse_args()

    cfg = preset_config("induction-heads", **({} if args.lr is None else {"lr": args.lr}))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {len(os.sched_getaffinity(0))} core(s) "
          f"visible; preset induction-heads: {cfg.n_steps} steps of batch {cfg.batch_size}, "
          f"evaluations every {cfg.eval_every} steps ({len(eval_schedule(cfg))} in all)")

    exemplars = jnp.asarray(load_data(cfg))
    model = init_model(cfg, exemplars.shape[-1])
    opt_state = jax.jit(make_optimizer(cfg).init)(model)
    chunk = make_train_chunk(cfg)

    t = clocks()
    model, opt_state, losses = chunk(model, opt_state, exemplars, jnp.asarray(0, jnp.int32), args.steps)
    losses.block_until_ready()
    compile_wall, compile_cpu = since(t)
    t = clocks()
    model, opt_state, losses = chunk(model, opt_state, exemplars, jnp.asarray(args.steps, jnp.int32),
                                     args.steps)
    losses.block_until_ready()
    wall, cpu = since(t)
    step_wall, step_cpu = wall / args.steps, cpu / args.steps
    # the first call compiled and ran as many steps: its compilation is the difference
    compile_wall, compile_cpu = max(compile_wall - wall, 0.0), max(compile_cpu - cpu, 0.0)
    print(f"training scan: compilation {compile_wall:.1f} s wall / {compile_cpu:.1f} s CPU; "
          f"{args.steps} compiled steps "
          f"{wall:.2f} s wall / {cpu:.2f} s CPU = {1e3 * step_wall:.3f} ms wall, {1e3 * step_cpu:.3f} ms CPU "
          f"per step (loss {float(losses[-1]):.3f})")

    sets, probes = evaluator_sets(cfg), probe_sets(cfg)
    jax.block_until_ready(evaluate_all(model, exemplars, sets, probes, cfg.edits()))  # compile
    t = clocks()
    for _ in range(3):
        jax.block_until_ready(evaluate_all(model, exemplars, sets, probes, cfg.edits()))
    eval_wall, eval_cpu = (x / 3 for x in since(t))
    print(f"one evaluation ({len(sets)} sets x {cfg.n_eval} sequences + probes): "
          f"{1e3 * eval_wall:.1f} ms wall, {1e3 * eval_cpu:.1f} ms CPU")

    print(f"implied run times (compiled steps + evaluations every {cfg.eval_every} steps + the "
          f"compilation; ratio to the study's {STUDY_SECONDS / 60:.0f} min):")
    for label, n in (("preset", cfg.n_steps), ("2e5 iterations", 200_000), ("6e5 iterations", 600_000),
                     ("1e6 iterations", 1_000_000)):
        n_evals = n // cfg.eval_every + 2
        for clock, per_step, per_eval, compiling in (("wall", step_wall, eval_wall, compile_wall),
                                                     ("CPU", step_cpu, eval_cpu, compile_cpu)):
            total = n * per_step + n_evals * per_eval + compiling
            print(f"  {label:>15} ({n} steps), {clock:>4}: {total / 60:6.1f} min = "
                  f"{total / STUDY_SECONDS:.2f} x the study's")

    if args.full:
        with tempfile.TemporaryDirectory() as out:
            t = clocks()
            train(cfg, os.path.join(out, "run"), progress=False)
            wall, cpu = since(t)
        print(f"full preset run through train(): {wall / 60:.1f} min wall ({wall / STUDY_SECONDS:.2f} x the "
              f"study's), {cpu / 60:.1f} min CPU ({cpu / STUDY_SECONDS:.2f} x)")


if __name__ == "__main__":
    main()
