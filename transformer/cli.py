"""``python -m transformer.train``: argparse → :class:`~transformer.config.TrainConfig` →
:func:`~transformer.trainer.train`; and ``python -m transformer.data`` (:func:`data_main`).

``python -m transformer.train --preset NAME [--field value ...] --out DIR [--resume]``: every field
of :class:`~transformer.config.TrainConfig` is a flag (``--n-classes``, ``--lr-steps 12000:1e-3``,
``--evaluators icl,flip_icl``, ``--mix bursty:0.9,icl_only:0.1``, ``--keep-checkpoints log:30``,
``--eval-schedule log:100``, ``--init-from RUN``). ``--resume`` continues the run saved in ``DIR``
(its checkpoint's configuration, or its log's if it never checkpointed), with the flags given
applied to that configuration (they must not change it); a ``DIR`` without a run is refused.
``--wandb PROJECT`` mirrors the scalar curves to Weights & Biases (:mod:`transformer.tracking`).

Exit status: 0 done; 2 bad input — one line ``error: --flag: reason`` on stderr, nothing written
(a run that would not fit in memory included); 1 the training diverged (non-finite loss) — one line
``error: training diverged: …``, the log and checkpoints up to the evaluation that found it kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import time
from typing import Any

import h5py

from toymodels._internal.cli_tools import (
    OneLineParser,
    check_output_dir,
    error_line,
    parse_float,
    parse_int,
    require_memory,
)
from toymodels.errors import ConfigError

from .checkpoint import saved_config
from .config import TrainConfig
from .data import DEFAULT_DATASET, check_synthetic, synthetic_bytes, synthetic_exemplars, write_exemplar_file
from .opto.cli import add_opto_arguments, interventions_from_args
from .opto.cli import given as opto_given
from .presets import PRESETS, preset_config
from .tracking import wandb_tracker
from .trainer import TrainingDiverged, train


def _parse_value(field: dataclasses.Field, text: str) -> Any:
    """The value of config field ``field`` written ``text`` on the command line."""
    name = field.name
    try:
        if name == "lr_steps":
            # "12000:1e-3,20000:3e-4"
            pairs = [p.split(":") for p in text.split(",") if p]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(text)
            return tuple((parse_int(s, name), float(v)) for s, v in pairs)
        if name in ("evaluators", "graft_modules"):
            return tuple(p for p in text.split(",") if p)
        if name == "mix":
            # "bursty:0.9,icl_only:0.1"
            pairs = [p.split(":") for p in text.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(text)
            return tuple((k.strip(), float(w)) for k, w in pairs)
        if field.type in ("bool",):
            if text.lower() in ("1", "true", "yes"):
                return True
            if text.lower() in ("0", "false", "no"):
                return False
            raise ValueError(text)
        if field.type == "int":
            return parse_int(text, name)
        if field.type == "float":
            return parse_float(text, name)
        if field.type == "str | None":
            return None if text.lower() == "none" else text
        return text
    except ConfigError as e:
        if name in _FORMATS:
            raise ConfigError(name, f"cannot parse {text!r} as {_FORMATS[name]}") from None
        raise e from None
    except ValueError:
        raise ConfigError(name, f"cannot parse {text!r} as {_FORMATS.get(name, field.type)}") from None


_FORMATS = {
    "lr_steps": "STEP:LR pairs, comma-separated (e.g. 12000:1e-3,20000:2e-3)",
    "mix": "KIND:WEIGHT pairs, comma-separated (e.g. bursty:0.9,icl_only:0.1)",
}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m transformer.train",
        description="Train the ICL-coopetition transformer and log evaluator curves to OUT/log.h5.",
    )
    p.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--out", required=True, help="run directory (log.h5, checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-evals", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--wandb", default=None, metavar="PROJECT",
                   help="mirror the scalar curves to this Weights & Biases project (needs wandb)")
    g = p.add_argument_group("config overrides (see docs/transformer.md)")
    for f in _overridable():
        g.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, default=None,
                       metavar=f.name.upper())
    add_opto_arguments(p)
    return p


def _overridable() -> list[dataclasses.Field]:
    """Fields set by ``--field-name VALUE`` (interventions have flags of their own)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name != "opto"]


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The configuration of the flags: ``--preset`` (else ``base``, a resumed run's saved
    configuration, else the defaults) with every ``--field`` and intervention flag applied."""
    overrides = {}
    for f in _overridable():
        text = getattr(args, "cfg_" + f.name)
        if text is not None:
            overrides[f.name] = _parse_value(f, text)
    if opto_given(args):
        overrides["opto"] = interventions_from_args(args)
    if args.preset is not None:
        return preset_config(args.preset, **overrides)
    if base is not None:
        return dataclasses.replace(base, **overrides)
    return TrainConfig.from_dict(overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tracker = None
    rc = 1  # an unexpected exception marks the tracked run failed
    try:
        base = None
        if args.resume:
            check_output_dir(args.out)
            saved = saved_config(args.out) if os.path.isdir(args.out) else None
            if saved is None:
                raise ConfigError("resume", f"no run to resume in {args.out!r} (no checkpoint, no log.h5)")
            base = saved[0]
        cfg = config_from_args(args, base)
        if args.wandb is not None:
            tracker = wandb_tracker(args.wandb, args.out, cfg, args.resume)
        t0 = time.perf_counter()
        log = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                    stop_after_evals=args.stop_after_evals, on_eval=tracker)
        rc = 0
    except ConfigError as e:
        print(error_line(e), file=sys.stderr)
        rc = 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 1
    except MemoryError:
        print("error: out of memory (see the sizes of --n-classes, --batch-size, --n-eval)", file=sys.stderr)
        rc = 2
    finally:
        if tracker is not None:
            tracker.finish(rc)
    if rc:
        return rc
    print(f"log: {log} ({time.perf_counter() - t0:.1f} s)")
    return 0


_DATA_FLAGS: dict[str, tuple[type, object, str]] = {
    "n_classes": (int, 12800, ""), "n_exemplars": (int, 20, ""), "dim": (int, 512, ""),
    "noise": (float, 0.75, ""), "seed": (int, 0, ""),
    "offset": (float, 0.0, "constant added to every coordinate"),
    "variants": (int, 1, "classes per shared base prototype (the study: 8 rotations/flips)"),
    "variant_scale": (float, 1.0, "spread of a group's class prototypes around its base prototype"),
    "shared_scale": (float, 0.0, "standard deviation of one random vector added to every exemplar"),
}
"""Flags of ``python -m transformer.data`` besides ``--out`` and ``--dataset``: (type, default, help)."""


def data_main(argv: list[str] | None = None) -> int:
    """``python -m transformer.data --out FILE ...``: write a synthetic exemplar file
    (:func:`~transformer.data.synthetic_exemplars`). Bad input (a value, ``--out``, ``--dataset``, a
    file that would not fit in memory) is one line ``error: --flag: reason``, exit status 2, with
    nothing written."""
    p = OneLineParser(prog="python -m transformer.data",
                      description="Write synthetic exemplars in the study's HDF5 layout.")
    p.add_argument("--out", required=True, help="the HDF5 file to write")
    for name, (_, default, help_) in _DATA_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), default=str(default), help=help_ or None)
    p.add_argument("--rectify", action="store_true",
                   help="features <- max(features, 0) (non-negative, like post-ReLU ResNet outputs)")
    p.add_argument("--dataset", default=DEFAULT_DATASET)
    args = p.parse_args(argv)
    try:
        v = {k: (parse_int if t is int else parse_float)(getattr(args, k), k)
             for k, (t, _, _) in _DATA_FLAGS.items()}
        check_synthetic(*v.values())
        if v["seed"] >= 2**63:  # stored as an HDF5 attribute (int64)
            raise ConfigError("seed", f"must be < 2^63, got {v['seed']}")
        if not args.out or os.path.isdir(args.out):
            raise ConfigError("out", f"{args.out!r} is not a file name" if args.out else "empty path")
        check_output_dir(os.path.dirname(os.path.abspath(args.out)))
        try:  # a dataset name HDF5 accepts (tried in memory)
            h5py.File(io.BytesIO(), "w").create_dataset(args.dataset, (1,), dtype="f4")
        except Exception:  # h5py's ValueError, TypeError, ...
            raise ConfigError("dataset", f"{args.dataset!r} is not an HDF5 dataset name") from None
        size = {k: v[k] / d for k, d in (("n_classes", 12800), ("n_exemplars", 20), ("dim", 512))}
        require_memory(max(size, key=size.get), synthetic_bytes(v["n_classes"], v["n_exemplars"], v["dim"]))
        x = synthetic_exemplars(*v.values(), rectify=args.rectify)
        attrs = {k: v[k] for k in ("noise", "seed", "offset", "variants", "variant_scale", "shared_scale")}
        attrs["rectify"] = args.rectify
        write_exemplar_file(args.out, x, args.dataset, attrs={**attrs, "synthetic": True})
    except ConfigError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        print(f"error: --out: cannot write {args.out!r} ({reason})", file=sys.stderr)
        return 2
    print(f"{args.out}: {args.dataset} {x.shape} float32")
    return 0


__all__ = ["build_parser", "config_from_args", "data_main", "main"]
