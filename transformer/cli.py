"""``python -m transformer.train``: argparse → :class:`~transformer.config.TrainConfig` →
:func:`~transformer.trainer.train`.

``python -m transformer.train --preset NAME [--field value ...] --out DIR [--resume]``: every field
of :class:`~transformer.config.TrainConfig` is a flag (``--n-classes``, ``--lr-steps 12000:1e-3``,
``--evaluators icl,flip_icl``, ``--mix bursty:0.9,icl_only:0.1``, ``--keep-checkpoints log:30``,
``--eval-schedule log:100``, ``--init-from RUN``). Bad input prints one line ``error: field:
reason`` and exits with status 2. ``--resume`` without other options continues the run saved in ``DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

from toymodels.errors import ConfigError

from .checkpoint import latest_checkpoint, read_meta
from .config import PRESETS, TrainConfig, preset_config
from .data import DataError
from .opto.cli import add_opto_arguments, interventions_from_args
from .opto.cli import given as opto_given
from .trainer import train


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
            return int(float(text)) if "e" in text.lower() else int(text)
        if field.type == "float":
            return float(text)
        if field.type == "str | None":
            return None if text.lower() == "none" else text
        return text
    except ValueError:
        expected = {"lr_steps": _LR_STEPS_FORMAT, "mix": _MIX_FORMAT}.get(name, field.type)
        raise ConfigError(name, f"cannot parse {text!r} as {expected}") from None


_LR_STEPS_FORMAT = "STEP:LR pairs, comma-separated (e.g. 12000:1e-3,20000:2e-3)"
_MIX_FORMAT = "KIND:WEIGHT pairs, comma-separated (e.g. bursty:0.9,icl_only:0.1)"


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
    for f in _overridable():
        g.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, default=None,
                       metavar=f.name.upper())
    add_opto_arguments(p)
    return p


def _overridable() -> list[dataclasses.Field]:
    """Fields set by ``--field-name VALUE`` (interventions have flags of their own)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name != "opto"]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {}
    for f in _overridable():
        text = getattr(args, "cfg_" + f.name)
        if text is not None:
            overrides[f.name] = _parse_value(f, text)
    if opto_given(args):
        overrides["opto"] = interventions_from_args(args)
    if args.preset is None:
        return TrainConfig.from_dict(overrides)
    return preset_config(args.preset, **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        if args.resume and args.preset is None and not opto_given(args) and not any(
            getattr(args, "cfg_" + f.name) is not None for f in _overridable()
        ):
            ckpt = latest_checkpoint(args.out)
            if ckpt is not None:
                cfg = read_meta(ckpt)["config"]
        t0 = time.perf_counter()
        log = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                    stop_after_evals=args.stop_after_evals)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"log: {log} ({time.perf_counter() - t0:.1f} s)")
    return 0


__all__ = ["build_parser", "config_from_args", "main"]
