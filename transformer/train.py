"""Training: scan-fused Adam steps, evaluations, HDF5 log, checkpoints/resume, grafting, CLI.

``python -m transformer.train --preset NAME [--field value ...] --out DIR [--resume]``

Training steps between two evaluations run inside one ``lax.scan`` (sequences are sampled on the
device inside the scan; the step key is ``fold_in(PRNGKey(train_seed), step)``), so there is no
per-step Python dispatch and a resumed run draws exactly the same data as an uninterrupted one.

Log (``OUT/log.h5``, see docs/transformer.md): ``eval_iter`` (n_evals,) sequences seen at each
evaluation; one group per evaluator (``train_eval``, ``icl``, ``iwl_copy_avail``, ``flip_icl``,
``pure_iwl``) with ``loss``, ``acc``, ``in_context_acc``, ``prob`` (n_evals, n_eval); soft links
``ciwl``, ``flip``, ``iwl``; ``train_loss`` (n_steps,) mean batch loss of each step and
``train_iter`` (n_steps,) sequences seen after that step; ``probes/induction_strength`` and
``probes/prev_token_attn`` (n_evals, depth, heads); attribute ``config`` (JSON).

Checkpoints (``OUT/ckpt-NNNNNN/``: ``model.eqx``, ``opt.eqx``, ``log.h5`` snapshot, ``meta.json``)
are written to a fresh directory and published by atomically replacing ``OUT/latest``; ``--resume``
restores model, optimiser and log from it and continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, PyTree

from toymodels.atomic import atomic_write

from .config import PRESETS, ConfigError, TrainConfig, preset_config
from .data import DataError, gather_features, load_exemplars, sample_sequences, synthetic_exemplars
from .evaluate import (
    ALIASES,
    METRICS,
    evaluate_all,
    evaluator_sets,
    probe_set,
    summary,
    train_spec,
)
from .model import Transformer, batched_logits, query_loss


class ResumeError(ValueError):
    """Inconsistent resume request."""


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def load_data(cfg: TrainConfig) -> Float[np.ndarray, "classes exemplars dim"]:
    """Exemplars for training classes then holdout classes (file or synthetic)."""
    n_total = cfg.n_classes + cfg.n_holdout_classes
    if cfg.data_path is None:
        return synthetic_exemplars(
            n_total, cfg.n_exemplars, cfg.synth_dim, cfg.synth_noise, cfg.synth_seed,
            cfg.synth_offset, cfg.synth_variants, cfg.synth_variant_scale,
        )
    return load_exemplars(cfg.data_path, cfg.data_dataset, n_total, cfg.n_exemplars)


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Piecewise-constant ``lr`` → ``lr_steps`` values, times a linear warm-up if requested."""
    bounds = [s for s, _ in cfg.lr_steps]
    values = [cfg.lr] + [v for _, v in cfg.lr_steps]

    def schedule(step):
        idx = jnp.searchsorted(jnp.asarray(bounds, jnp.int32), step, side="right") if bounds else 0
        lr = jnp.asarray(values, jnp.float32)[idx]
        if cfg.warmup_steps:
            lr = lr * jnp.minimum(1.0, (step + 1) / cfg.warmup_steps)
        return lr

    return schedule


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam(β1, β2) (AdamW when ``weight_decay > 0``) with :func:`learning_rate_schedule`."""
    schedule = learning_rate_schedule(cfg)
    if cfg.weight_decay:
        return optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=cfg.weight_decay)
    return optax.adam(schedule, b1=cfg.beta1, b2=cfg.beta2)


def init_model(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model of ``cfg`` initialised from ``init_seed`` (built under one jit: fast start-up)."""
    return _model_builder(structural(cfg), feature_dim)(jax.random.PRNGKey(cfg.init_seed))


@functools.lru_cache(maxsize=16)
def _model_builder(cfg: TrainConfig, feature_dim: int) -> Callable:
    return eqx.filter_jit(
        lambda key: Transformer(
            feature_dim,
            cfg.n_classes,
            cfg.seq_len,
            depth=cfg.depth,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            mlp=cfg.mlp,
            positional=cfg.positional,
            tie_labels=cfg.tie_labels,
            unembed_init=cfg.unembed_init,
            label_init_scale=cfg.label_init_scale,
            key=key,
        )
    )


def _submodule(model: Transformer, path: str):
    obj = model
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"graft_modules: no module {path!r} in the model")
    return obj


def graft(
    model: Transformer, donor: Transformer, modules: tuple[str, ...]
) -> Transformer:
    """Copy the named submodules (e.g. ``blocks.1``, ``unembed``) from ``donor`` into ``model``."""
    for path in modules:
        mine, theirs = _submodule(model, path), _submodule(donor, path)
        if jax.tree_util.tree_structure(mine) != jax.tree_util.tree_structure(theirs) or any(
            a.shape != b.shape
            for a, b in zip(jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs))
        ):
            raise ConfigError(f"graft_modules: {path!r} differs in shape from the donor's")
        model = eqx.tree_at(lambda m, p=path: _submodule(m, p), model, theirs)
    return model


def frozen_mask(model: Transformer, modules: tuple[str, ...]) -> PyTree[bool]:
    """Pytree of bools over the model's arrays: ``True`` inside the named submodules."""
    mask = jax.tree_util.tree_map(lambda _: False, model)
    for path in modules:
        sub = _submodule(mask, path)
        mask = eqx.tree_at(
            lambda m, p=path: _submodule(m, p), mask, jax.tree_util.tree_map(lambda _: True, sub)
        )
    return mask


def load_checkpoint(
    path: str, what: str = "checkpoint", feature_dim: int | None = None
) -> tuple[TrainConfig, Transformer]:
    """``(config, model)`` saved at ``path``: a run directory (its latest checkpoint), a checkpoint
    directory or its ``model.eqx``. ``feature_dim`` defaults to the saved run's data. A missing
    checkpoint is a :class:`ConfigError` naming ``what``.
    """
    given = path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "latest")):
        path = _latest_checkpoint(path) or path
    if os.path.isdir(path):
        path = os.path.join(path, "model.eqx")
    meta_path = os.path.join(os.path.dirname(path), "meta.json")
    if not (os.path.isfile(path) and os.path.isfile(meta_path)):
        raise ConfigError(f"{what}: no checkpoint (model.eqx + meta.json) at {given!r}")
    with open(meta_path) as f:
        cfg = TrainConfig.from_json(json.load(f)["config"])
    if feature_dim is None:
        feature_dim = cfg.synth_dim if cfg.data_path is None else load_data(cfg).shape[-1]
    return cfg, eqx.tree_deserialise_leaves(path, init_model(cfg, feature_dim))


def load_donor(cfg: TrainConfig, feature_dim: int) -> Transformer:
    """The model saved at ``cfg.graft_from`` (a run directory, checkpoint directory or model.eqx)."""
    return load_checkpoint(cfg.graft_from, "graft_from", feature_dim)[1]


def structural(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every field that does not change compiled code reset (seeds, lengths, paths).

    Compiled functions are cached on this, so runs differing only in seeds or length (tests,
    seed sweeps, resumes in one process) compile once.
    """
    return dataclasses.replace(
        cfg, init_seed=0, train_seed=0, eval_seed=0, synth_seed=0, n_sequences=1,
        checkpoint_every=1, data_path=None, graft_from=None, graft_modules=(),
        freeze_grafted=False,
    )


def make_train_chunk(
    cfg: TrainConfig,
    optimizer: optax.GradientTransformation,
    frozen: PyTree[bool] | None,
) -> Callable:
    """``chunk(model, opt_state, exemplars, step0, n_steps) -> (model, opt_state, losses)``.

    ``n_steps`` Adam steps in one ``lax.scan``; step ``t`` samples its batch from
    ``fold_in(PRNGKey(train_seed), t)``. Frozen parameters get zero updates. Without frozen
    parameters the compiled scan is shared by all configs with the same :func:`structural` part
    (``optimizer`` must then be ``make_optimizer(cfg)``).
    """
    train_key = jax.random.PRNGKey(cfg.train_seed)
    core = _chunk_core(structural(cfg)) if frozen is None else _build_chunk_core(cfg, optimizer, frozen)

    def chunk(model, opt_state, exemplars, step0, n_steps: int):
        return core(model, opt_state, exemplars, train_key, step0, n_steps)

    return chunk


@functools.lru_cache(maxsize=16)
def _chunk_core(cfg: TrainConfig) -> Callable:
    return _build_chunk_core(cfg, make_optimizer(cfg), None)


def _build_chunk_core(cfg, optimizer, frozen) -> Callable:
    spec = train_spec(cfg)

    def loss_fn(model, feats, seqs):
        logits = batched_logits(model, feats, seqs.labels)
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

            loss, grads = eqx.filter_value_and_grad(carried_loss)(params)
            grads = eqx.filter(grads, eqx.is_array)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            if frozen is not None:
                updates = jax.tree_util.tree_map(
                    lambda u, f: jnp.zeros_like(u) if f else u, updates, frozen
                )
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


# ----------------------------------------------------------------------------------------------
# HDF5 log
# ----------------------------------------------------------------------------------------------


def create_log(path: str, cfg: TrainConfig, depth: int, heads: int) -> None:
    """Empty, resizable log in the original study's layout (written atomically)."""
    atomic_write(path, lambda tmp: _write_empty_log(tmp, cfg, depth, heads), suffix=".h5")


def _write_empty_log(tmp: str, cfg: TrainConfig, depth: int, heads: int) -> None:
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = cfg.to_json()
        f.create_dataset("eval_iter", (0,), maxshape=(None,), dtype="i8")
        f.create_dataset("train_loss", (0,), maxshape=(None,), dtype="f4", chunks=(4096,))
        f.create_dataset("train_iter", (0,), maxshape=(None,), dtype="i8", chunks=(4096,))
        for name in cfg.evaluators:
            g = f.create_group(name)
            for m in METRICS:
                g.create_dataset(
                    m, (0, cfg.n_eval), maxshape=(None, cfg.n_eval), dtype="f4",
                    chunks=(1, cfg.n_eval),
                )
        p = f.create_group("probes")
        for m in ("induction_strength", "prev_token_attn"):
            p.create_dataset(m, (0, depth, heads), maxshape=(None, depth, heads), dtype="f4")
        for alias, target in ALIASES.items():
            if target in cfg.evaluators:
                f[alias] = h5py.SoftLink("/" + target)


def _append(d: h5py.Dataset, rows: np.ndarray) -> None:
    n = d.shape[0]
    d.resize(n + rows.shape[0], axis=0)
    d[n:] = rows


def append_train_loss(path: str, losses: np.ndarray, first_step: int, batch: int) -> None:
    with h5py.File(path, "a") as f:
        _append(f["train_loss"], np.asarray(losses, np.float32))
        steps = first_step + np.arange(len(losses))
        _append(f["train_iter"], (steps + 1) * batch)


def append_eval(path: str, seen: int, metrics: dict, probes: dict) -> None:
    with h5py.File(path, "a") as f:
        _append(f["eval_iter"], np.array([seen]))
        for name, ms in metrics.items():
            for m in METRICS:
                _append(f[name][m], np.asarray(ms[m], np.float32)[None])
        for m, v in probes.items():
            _append(f["probes"][m], np.asarray(v, np.float32)[None])


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def _latest_checkpoint(out: str) -> str | None:
    pointer = os.path.join(out, "latest")
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        name = f.read().strip()
    path = os.path.join(out, name)
    return path if os.path.isdir(path) else None


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def save_checkpoint(out: str, log_path: str, model, opt_state, cfg: TrainConfig, steps: int, evals: int) -> None:
    """Write ``OUT/ckpt-<evals>/`` then atomically point ``OUT/latest`` at it; drop older ones."""
    name = f"ckpt-{evals:06d}"
    final = os.path.join(out, name)
    tmp = tempfile.mkdtemp(prefix=".ckpt-tmp-", dir=out)
    eqx.tree_serialise_leaves(os.path.join(tmp, "model.eqx"), model)
    eqx.tree_serialise_leaves(os.path.join(tmp, "opt.eqx"), opt_state)
    shutil.copyfile(log_path, os.path.join(tmp, "log.h5"))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({"config": cfg.to_json(), "steps": steps, "evals": evals}, f)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write(os.path.join(out, "latest"), lambda tmp: _write_text(tmp, name))
    for entry in os.listdir(out):
        if entry.startswith("ckpt-") and entry != name:
            shutil.rmtree(os.path.join(out, entry), ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def eval_schedule(cfg: TrainConfig) -> list[int]:
    """Step counts at which evaluations happen: 0, every ``eval_every`` steps, and the last step."""
    points = list(range(0, cfg.n_steps, cfg.eval_every)) + [cfg.n_steps]
    return points


def train(
    cfg: TrainConfig,
    out: str,
    resume: bool = False,
    progress: bool = True,
    stop_after_evals: int | None = None,
) -> str:
    """Run (or resume) training; return the path of ``OUT/log.h5``.

    ``stop_after_evals`` stops (cleanly, after checkpointing) once that many evaluations are in
    the log — for tests and for splitting long runs.
    """
    cfg.validate()
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "log.h5")
    exemplars_np = load_data(cfg)
    for name, spec in [("train", train_spec(cfg))]:
        try:
            spec.validate()
        except DataError as e:
            raise ConfigError(str(e)) from None
    exemplars = jnp.asarray(exemplars_np)
    sets = evaluator_sets(cfg)
    probes = probe_set(cfg)

    optimizer = make_optimizer(cfg)
    model = init_model(cfg, exemplars_np.shape[-1])
    frozen = None
    if cfg.graft_modules:
        donor = load_donor(cfg, exemplars_np.shape[-1])
        model = graft(model, donor, cfg.graft_modules)
        if cfg.freeze_grafted:
            frozen = frozen_mask(eqx.filter(model, eqx.is_array), cfg.graft_modules)
    opt_state = jax.jit(optimizer.init)(eqx.filter(model, eqx.is_array))
    steps_done, evals_done = 0, 0

    ckpt = _latest_checkpoint(out) if resume else None
    if ckpt is not None:
        with open(os.path.join(ckpt, "meta.json")) as f:
            meta = json.load(f)
        if TrainConfig.from_json(meta["config"]) != cfg:
            raise ResumeError(f"resume: the configuration differs from the checkpoint's in {out!r}")
        model = eqx.tree_deserialise_leaves(os.path.join(ckpt, "model.eqx"), model)
        opt_state = eqx.tree_deserialise_leaves(os.path.join(ckpt, "opt.eqx"), opt_state)
        steps_done, evals_done = meta["steps"], meta["evals"]
        atomic_write(log_path, lambda tmp: shutil.copyfile(os.path.join(ckpt, "log.h5"), tmp), suffix=".h5")
    else:
        if not resume and (os.path.exists(log_path) or _latest_checkpoint(out)):
            raise ResumeError(f"out: {out!r} already holds a run; pass --resume or another --out")
        create_log(log_path, cfg, cfg.depth, cfg.n_heads)

    chunk = make_train_chunk(cfg, optimizer, frozen)
    schedule = eval_schedule(cfg)
    total = cfg.n_steps * cfg.batch_size

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=steps_done * cfg.batch_size, unit="seq", unit_scale=True,
                   dynamic_ncols=True, smoothing=0.1)
    try:
        for i, point in enumerate(schedule):
            if i < evals_done:
                continue
            if point > steps_done:
                n = point - steps_done
                model, opt_state, losses = chunk(
                    model, opt_state, exemplars, jnp.asarray(steps_done, jnp.int32), n
                )
                append_train_loss(log_path, np.asarray(losses), steps_done, cfg.batch_size)
                steps_done = point
                if bar is not None:
                    bar.update(n * cfg.batch_size)
            metrics, probe_vals = evaluate_all(model, exemplars, sets, probes)
            metrics = jax.device_get(metrics)
            append_eval(log_path, steps_done * cfg.batch_size, metrics, jax.device_get(probe_vals))
            evals_done = i + 1
            if bar is not None:
                bar.set_postfix({k: f"{v:.2f}" for k, v in summary(metrics).items()})
            last = evals_done == len(schedule)
            if last or evals_done % cfg.checkpoint_every == 0 or evals_done == stop_after_evals:
                save_checkpoint(out, log_path, model, opt_state, cfg, steps_done, evals_done)
            if stop_after_evals is not None and evals_done >= stop_after_evals:
                break
    finally:
        if bar is not None:
            bar.close()
    return log_path


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def _parse_value(field: dataclasses.Field, text: str) -> Any:
    name = field.name
    try:
        if name == "lr_steps":
            # "12000:1e-3,20000:3e-4"
            return tuple(
                (int(s), float(v)) for s, v in (p.split(":") for p in text.split(",") if p)
            )
        if name in ("evaluators", "graft_modules"):
            return tuple(p for p in text.split(",") if p)
        if field.type in ("bool",):
            if text.lower() in ("1", "true", "yes"):
                return True
            if text.lower() in ("0", "false", "no"):
                return False
            raise ValueError(text)
        if field.type == "int":
            return int(float(text)) if "e" in text.lower() else int(text)
        if field.type == "float":
            return float(text)
        if field.type == "str | None":
            return None if text.lower() == "none" else text
        return text
    except ValueError:
        expected = _LR_STEPS_FORMAT if name == "lr_steps" else field.type
        raise ConfigError(f"{name}: cannot parse {text!r} as {expected}") from None


_LR_STEPS_FORMAT = "STEP:LR pairs, comma-separated (e.g. 12000:1e-3,20000:2e-3)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m transformer.train",
        description="Train the ICL-coopetition transformer and log evaluator curves to OUT/log.h5.",
    )
    p.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--out", required=True, help="run directory (log.h5, checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-evals", type=int, default=None, help=argparse.SUPPRESS)
    g = p.add_argument_group("config overrides (see docs/transformer.md)")
    for f in dataclasses.fields(TrainConfig):
        g.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, default=None,
                       metavar=f.name.upper())
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {}
    for f in dataclasses.fields(TrainConfig):
        text = getattr(args, "cfg_" + f.name)
        if text is not None:
            overrides[f.name] = _parse_value(f, text)
    if args.preset is None:
        return TrainConfig.from_dict(overrides)
    return preset_config(args.preset, **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.resume and args.preset is None and not any(
            getattr(args, "cfg_" + f.name) is not None for f in dataclasses.fields(TrainConfig)
        ):
            ckpt = _latest_checkpoint(args.out)
            if ckpt is not None:
                with open(os.path.join(ckpt, "meta.json")) as fh:
                    cfg = TrainConfig.from_json(json.load(fh)["config"])
        t0 = time.perf_counter()
        log = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                    stop_after_evals=args.stop_after_evals)
    except (ConfigError, DataError, ResumeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"log: {log} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
