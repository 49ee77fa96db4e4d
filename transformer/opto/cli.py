"""Command-line flags for interventions, shared by ``python -m transformer.train`` and the
evaluation command: ``--opto NAME:key=value,...`` (repeatable) and ``--opto-file FILE.json``."""

from __future__ import annotations

import argparse

from toymodels.errors import ConfigError

from .catalogue import CATALOGUE, Intervention, interventions_from_json, parse_opto


def add_opto_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interventions (artificial optogenetics; docs/transformer.md)")
    g.add_argument(
        "--opto",
        action="append",
        default=[],
        metavar="NAME:key=value,...",
        help=f"an intervention: one of {', '.join(CATALOGUE)}; keys layer (0-based), heads "
        "(e.g. heads=1|4|7), strength (in [0, 1]), temperature, only_labels; repeatable",
    )
    g.add_argument(
        "--opto-file",
        default=None,
        metavar="FILE.json",
        help='a JSON list of intervention objects ({"name": ..., "layer": ..., ...})',
    )


def interventions_from_args(args: argparse.Namespace) -> tuple[Intervention, ...]:
    """The interventions of ``--opto-file`` then ``--opto`` (:class:`ConfigError` on bad input)."""
    out: list[Intervention] = []
    if args.opto_file is not None:
        try:
            with open(args.opto_file) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or "not text"
            raise ConfigError("opto-file", f"cannot read {args.opto_file!r}: {reason}") from None
        out.extend(interventions_from_json(text))
    out.extend(parse_opto(text) for text in args.opto)
    return tuple(out)


def given(args: argparse.Namespace) -> bool:
    """Whether any intervention flag was given."""
    return bool(args.opto) or args.opto_file is not None


__all__ = ["add_opto_arguments", "given", "interventions_from_args"]
