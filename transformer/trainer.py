"""Training: Adam steps fused into ``lax.scan`` chunks between evaluations, and the run loop.

Training steps between two evaluations run inside one ``lax.scan`` (sequences are sampled on the
device inside the scan; the step key is ``fold_in(PRNGKey(train_seed), step)``), so there is no
per-step Python dispatch and a resumed run draws exactly the same data as an uninterrupted one.

:func:`train` runs (or resumes) a configuration: it evaluates at the steps of
:func:`transformer.schedule.eval_schedule` (0, every ``eval_every`` steps or log-spaced, and the
end; :mod:`transformer.evaluators`), appends to ``OUT/log.h5``
(:mod:`transformer.log`) and checkpoints (:mod:`transformer.checkpoint`). It checks everything
before it writes anything, and stops a run whose loss turns non-finite with
:class:`TrainingDiverged`. The command line is :mod:`transformer.cli` (``python -m transformer.train``).

(This module is ``trainer``, not ``train``: ``python -m transformer.train`` needs a module of that
name, and a package facade cannot export a function named like one of its submodules.)
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PyTree

from toymodels._internal import atomic_write
from toymodels._internal.cli_tools import check_output_dir
from toymodels.errors import ConfigError

from .build import check_memory, init_model, l2_penalty, load_data, make_optimizer
from .checkpoint import (
    PREFIX,
    config_differences,
    frozen_mask,
    graft,
    latest_checkpoint,
    load_checkpoint,
    load_donor,
    read_meta,
    restore_state,
    save_checkpoint,
    save_history,
    saved_config,
    transplant,
)
from .config import TrainConfig, structural
from .data import gather_features, sample_sequences
from .evaluators import evaluate_all, evaluator_sets, probe_sets, summary
from .log import append_eval, append_train_loss, create_log, open_log
from .model import query_loss
from .opto.run import run_with_edits
from .opto.targets import TokenContext
from .schedule import eval_schedule, kept_evaluations


def make_train_chunk(
    cfg: TrainConfig,
    optimizer: optax.GradientTransformation | None = None,
) -> Callable:
    """``chunk(model, opt_state, exemplars, step0, n_steps) -> (model, opt_state, losses)``.

    ``n_steps`` Adam steps in one ``lax.scan``; step ``t`` samples its batch from
    ``fold_in(PRNGKey(train_seed), t)``. Frozen parameters get zero updates. Without frozen
    parameters the compiled scan is shared by all configs with the same
    :func:`~transformer.config.structural` key. ``losses`` is the mean cross-entropy of each step's
    batch, shape ``(n_steps,)``; with ``l2_penalty > 0`` it is ``(n_steps, 2)``: the cross-entropy
    and the penalty ``λ Σ_a ‖a‖`` (the objective is their sum).
    """
    train_key = jax.random.PRNGKey(cfg.train_seed)
    core = _chunk_core(structural(cfg)) if optimizer is None else _build_chunk_core(cfg, optimizer)

    def chunk(model, opt_state, exemplars, step0, n_steps: int):
        return core(model, opt_state, exemplars, train_key, step0, n_steps)

    return chunk


@functools.lru_cache(maxsize=16)
def _chunk_core(cfg: TrainConfig) -> Callable:
    return _build_chunk_core(cfg, make_optimizer(cfg))


def _build_chunk_core(cfg: TrainConfig, optimizer: optax.GradientTransformation) -> Callable:
    spec = cfg.sequence_spec()

    edits = cfg.edits()

    def loss_fn(model, feats, seqs):
        # without edits this is the plain forward pass
        logits, _ = run_with_edits(model, feats, TokenContext.of(feats, seqs), edits)
        return query_loss(logits, seqs.target).mean()

    @eqx.filter_jit
    def core(model, opt_state, exemplars, train_key, step0, n_steps: int):
        params, static = eqx.partition(model, eqx.is_array)
        # carried with U stored as U^T (see _transpose_unembedding); undone after the scan
        params, opt_state = _transpose_unembedding(params), _transpose_unembedding(opt_state)

        def step(carry, t):
            params, opt_state = carry
            seqs = sample_sequences(jax.random.fold_in(train_key, t), spec, cfg.batch_size)
            feats = gather_features(exemplars, seqs)

            def carried_loss(p):
                return loss_fn(eqx.combine(_transpose_unembedding(p), static), feats, seqs)

            if cfg.l2_penalty:  # the study's penalty, added to the loss (not AdamW's decay)

                def penalised(p):
                    ce = carried_loss(p)
                    penalty = cfg.l2_penalty * l2_penalty(p, cfg.l2_groups)
                    return ce + penalty, jnp.stack([ce, penalty])

                (_, loss), grads = eqx.filter_value_and_grad(penalised, has_aux=True)(params)
            else:
                loss, grads = eqx.filter_value_and_grad(carried_loss)(params)
            grads = eqx.filter(grads, eqx.is_array)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = eqx.apply_updates(params, updates)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            step, (params, opt_state), step0 + jnp.arange(n_steps)
        )
        params, opt_state = _transpose_unembedding(params), _transpose_unembedding(opt_state)
        return eqx.combine(params, static), opt_state, losses

    return core


def _transpose_unembedding(tree: PyTree) -> PyTree:
    """``tree`` with every unembedding matrix ``U`` (n_labels × d) replaced by ``Uᵀ``, and back.

    Applies to the parameters and to the optimiser state's copies of them (Adam's moments),
    found by their path ending in ``.unembed.weight``. Inside the training scan ``U`` is carried
    as ``Uᵀ`` (d × n_labels), so that the logits ``z Uᵀ`` and the gradient ``∂L/∂Uᵀ = zᵀ g`` are
    plain row-major matrix products (with ``U`` itself the gradient ``gᵀ z`` contracts over the
    leading axis of a 32 × 12800 array: ≈ 0.5 ms more per step at 12800 labels on CPU). Adam
    and weight decay act elementwise, so the update of each entry is the same in either layout;
    only the matrix products' summation order differs.
    """

    def swap(path, leaf):
        is_u = jax.tree_util.keystr(path).endswith(".unembed.weight")
        return leaf.T if is_u and getattr(leaf, "ndim", 0) == 2 else leaf

    return jax.tree_util.tree_map_with_path(swap, tree)


def chunk_lengths(cfg: TrainConfig, n: int) -> list[int]:
    """How the ``n`` steps between two evaluations are split into compiled scans.

    With ``eval_every`` evaluations: one scan of ``n`` steps (all chunks but the last have the same
    length, so one compilation). With a log-spaced ``eval_schedule`` every chunk has a different
    length, so ``n`` is split into powers of two (largest first): at most ``log2(n_steps) + 1``
    distinct scan lengths are compiled over the whole run.
    """
    if cfg.eval_schedule is None:
        return [n]
    return [1 << b for b in reversed(range(n.bit_length())) if n >> b & 1]


class Evaluation(NamedTuple):
    """What :func:`train` hands its ``on_eval`` callback after each evaluation it logs: host (numpy)
    copies of the values it has just appended to ``log.h5``.

    ``evals``: evaluations in the log (1 = the one at step 0); ``steps``: steps done; ``seen``:
    sequences seen (the log's ``eval_iter``); ``metrics[evaluator][metric]``: per-sequence values
    (n_eval,); ``probes[probe]``: (depth, heads); ``train_loss`` (and ``train_penalty`` for runs with
    ``l2_penalty > 0``, else ``None``): the per-step values of the steps since the previous
    evaluation this process ran (empty at step 0; a resumed run starts at its checkpoint).
    """

    evals: int
    steps: int
    seen: int
    metrics: dict
    probes: dict
    train_loss: np.ndarray
    train_penalty: np.ndarray | None


class TrainingDiverged(RuntimeError):
    """A run's training loss (or an evaluation loss) became non-finite. ``step`` is the first step
    whose loss was not finite (for an evaluation: the steps done before it), ``seen`` the sequences
    seen before that step; the run stopped at the evaluation that followed, keeping its log (with
    that evaluation) and its checkpoints so far in ``out``."""

    def __init__(self, step: int, seen: int, out: str):
        self.step, self.seen, self.out = step, seen, out
        super().__init__(
            f"training diverged: non-finite loss at step {step} (sequences {seen}); "
            f"the log and checkpoints so far are kept in {out!r}"
        )


def train(
    cfg: TrainConfig,
    out: str,
    resume: bool = False,
    progress: bool = True,
    stop_after_evals: int | None = None,
    on_eval: Callable[[Evaluation], None] | None = None,
) -> str:
    """Run (or resume) training; return the path of ``OUT/log.h5``.

    Everything is checked before anything is written — the output directory, a resumed run's
    configuration, memory (:func:`~transformer.build.check_memory`), the data, the checkpoints to
    start from or graft — so bad input raises :class:`ConfigError` and leaves nothing behind.
    Without ``resume``, ``out`` must not hold a run. With ``resume`` the run in ``out`` continues
    from its latest checkpoint, or restarts if it started but never checkpointed; its saved
    configuration must equal ``cfg`` (the error names the fields that differ); an ``out`` without a
    run starts one (the command line refuses that). A fresh run that fails before its first
    checkpoint removes what it created. A non-finite loss stops the run at the next evaluation with
    :class:`TrainingDiverged` (log and checkpoints so far kept). ``stop_after_evals`` stops
    (cleanly, after checkpointing) once that many evaluations are in the log — for tests and for
    splitting long runs. ``on_eval`` is called with an :class:`Evaluation` after each evaluation has
    been appended to the log (before the check for divergence and the checkpoint); it only receives
    copies, so a run is the same with or without it (experiment tracking:
    :mod:`transformer.tracking`).
    """
    log_path = os.path.join(out, "log.h5")
    check_output_dir(out)
    saved = saved_config(out) if resume else None
    if saved is not None and saved[0] != cfg:
        raise ConfigError("resume", f"the configuration differs from the {saved[1]}'s in {out!r}: "
                          f"{config_differences(cfg, saved[0])}")
    if not resume and (os.path.exists(log_path) or latest_checkpoint(out)):
        raise ConfigError("out", f"{out!r} already holds a run; pass --resume or another --out")
    check_memory(cfg)
    exemplars_np = load_data(cfg)
    exemplars = jnp.asarray(exemplars_np)

    dim = exemplars_np.shape[-1]
    start = load_checkpoint(cfg.init_from, "init_from", dim)[1] if cfg.init_from else None
    donor = load_donor(cfg, dim) if cfg.graft_modules else None
    model = init_model(cfg, dim)
    if start is not None:
        model = transplant(model, start)
    frozen = None
    if donor is not None:
        model = graft(model, donor, cfg.graft_modules)
        if cfg.freeze_grafted:
            frozen = frozen_mask(eqx.filter(model, eqx.is_array), cfg.graft_modules)
    sets = evaluator_sets(cfg)
    probes = probe_sets(cfg)
    optimizer = make_optimizer(cfg, frozen)
    opt_state = jax.jit(optimizer.init)(eqx.filter(model, eqx.is_array))
    steps_done, evals_done = 0, 0
    ckpt = latest_checkpoint(out) if saved is not None and saved[1] == "checkpoint" else None
    if ckpt is not None:
        meta = read_meta(ckpt, "resume")
        model, opt_state = restore_state(ckpt, model, opt_state)
        steps_done, evals_done = meta["steps"], meta["evals"]
        open_log(os.path.join(ckpt, "log.h5"), "resume").close()  # a readable snapshot

    made_dir = not os.path.isdir(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ConfigError("out", f"cannot create directory {out!r}: {e.strerror or e}") from None
    try:
        if ckpt is not None:
            copy = functools.partial(shutil.copyfile, os.path.join(ckpt, "log.h5"))
            atomic_write(log_path, copy, suffix=".h5")
        else:
            create_log(log_path, cfg, cfg.depth, cfg.n_heads,
                       targets={name: np.asarray(s.target) for name, s in sets.items()})
        _run(cfg, out, model, opt_state, exemplars, sets, probes, frozen, optimizer,
             steps_done, evals_done, progress, stop_after_evals, on_eval)
    except Exception as e:
        if saved is None and not isinstance(e, TrainingDiverged) and not _has_checkpoints(out):
            _remove_created(out, made_dir)
        raise
    return log_path


def _run(cfg, out, model, opt_state, exemplars, sets, probes, frozen, optimizer,
         steps_done, evals_done, progress, stop_after_evals, on_eval=None) -> None:
    """The loop of :func:`train` from ``evals_done`` evaluations and ``steps_done`` steps on."""
    log_path = os.path.join(out, "log.h5")
    chunk = make_train_chunk(cfg, None if frozen is None else optimizer)
    schedule = eval_schedule(cfg)
    kept = kept_evaluations(cfg)
    total = cfg.n_steps * cfg.batch_size

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=steps_done * cfg.batch_size, unit="seq", unit_scale=True,
                   dynamic_ncols=True, smoothing=0.1)
    diverged = None  # first step with a non-finite loss
    interval: list[np.ndarray] = []  # training losses since the last evaluation (for on_eval)
    try:
        for i, point in enumerate(schedule):
            if i < evals_done:
                continue
            if point > steps_done:
                n = point - steps_done
                for m in chunk_lengths(cfg, n):
                    model, opt_state, losses = chunk(
                        model, opt_state, exemplars, jnp.asarray(steps_done, jnp.int32), m
                    )
                    losses = np.asarray(losses)
                    if on_eval is not None:
                        interval.append(losses.reshape(m, -1))
                    penalties = losses[:, 1] if losses.ndim == 2 else None
                    append_train_loss(log_path, losses.reshape(m, -1)[:, 0], steps_done, cfg.batch_size,
                                      penalties)
                    bad = ~np.isfinite(losses.reshape(m, -1)).all(axis=1)
                    steps_done += m
                    if bad.any():  # evaluate (and log) the model as it is, then stop
                        diverged = steps_done - m + int(np.argmax(bad))
                        break
                if bar is not None:
                    bar.update(n * cfg.batch_size)
            metrics, probe_vals = evaluate_all(model, exemplars, sets, probes, cfg.edits())
            metrics, probe_vals = jax.device_get(metrics), jax.device_get(probe_vals)
            append_eval(log_path, steps_done * cfg.batch_size, metrics, probe_vals)
            evals_done = i + 1
            if on_eval is not None:
                done = np.concatenate(interval) if interval else np.zeros((0, 2), np.float32)
                on_eval(Evaluation(evals_done, steps_done, steps_done * cfg.batch_size, metrics, probe_vals,
                                   done[:, 0], done[:, 1] if cfg.l2_penalty else None))
            interval = []
            if diverged is None and not all(np.isfinite(m["loss"]).all() for m in metrics.values()):
                diverged = steps_done
            if diverged is not None:
                raise TrainingDiverged(diverged, diverged * cfg.batch_size, out)
            if bar is not None:
                bar.set_postfix({k: f"{v:.2f}" for k, v in summary(metrics).items()})
            last = evals_done == len(schedule)
            if last or evals_done % cfg.checkpoint_every == 0 or evals_done == stop_after_evals:
                save_checkpoint(out, log_path, model, opt_state, cfg, steps_done, evals_done, kept)
            elif evals_done in kept:
                save_history(out, model, cfg, steps_done, evals_done)
            if stop_after_evals is not None and evals_done >= stop_after_evals:
                break
    finally:
        if bar is not None:
            bar.close()


def _has_checkpoints(out: str) -> bool:
    """Whether ``out`` holds a checkpoint directory (``ckpt-*``)."""
    return os.path.isdir(out) and any(e.startswith(PREFIX) for e in os.listdir(out))


def _remove_created(out: str, made_dir: bool) -> None:
    """Remove what a fresh run created in ``out``: the directory if the run made it, else the log
    and leftovers of checkpoint writes (nothing else of a directory that existed before)."""
    if made_dir:
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in os.listdir(out):
        path = os.path.join(out, entry)
        if entry == "log.h5" or entry.startswith((".ckpt-tmp-", ".tmp-")):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


__all__ = ["Evaluation", "TrainingDiverged", "chunk_lengths", "eval_schedule", "make_train_chunk", "train"]
