"""A transformer sweep: named runs from a TOML file, expanded over grids and seeds, with dependencies.

The file (``SPEC.toml``)::

    [defaults]                      # applied to every run (any TrainConfig field, or preset)
    preset = "cpu-quick"

    [runs.bursty]                   # one run, directory OUT/bursty
    keep_checkpoints = "log:30"

    [runs.icl_only_grafted]         # depends on bursty: starts after it has finished
    train_kind = "icl_only"
    graft_from = { run = "bursty", at = "last" }      # or at = 9.8e6 (sequences seen)
    graft_modules = ["blocks.1", "unembed"]

    [runs.lr_scan]                  # a family: the grid's Cartesian product × seeds
    grid = { lr = [1e-4, 3e-4] }
    seeds = [0, 1, 2]
    opto = ["prev_token_heads:layer=0,heads=0"]       # transformer.opto catalogue syntax

A table's keys are ``preset``, ``seeds``, ``grid``, ``opto`` and :class:`~transformer.TrainConfig`
fields (integers may be written ``1.8e6``). Seed ``s`` sets ``init_seed = s`` and
``train_seed = 10 s + 1`` (seed 0 is the presets' default pair; the evaluation sets stay fixed).
Members of a family are named ``NAME-field=value-…-seed=s`` in grid order. ``init_from`` and
``graft_from`` may be a path (as on the command line) or ``{run = NAME, at = "last" | SEQUENCES}``:
the checkpoint of another run of the sweep at (or before) that many sequences. A reference to a
family picks the member whose grid values and seed agree with the referring run's; it must pick
exactly one.

Everything is checked when the spec is read: each run's :class:`TrainConfig` is built (so a run that
exists is valid), names are unique directory names, references resolve, there are no cycles and a
checkpoint asked for is inside the referenced run's length. Errors name the run and the key.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import tomllib
from typing import Any

from toymodels.errors import ConfigError

from ..config import TrainConfig
from ..opto.catalogue import parse_opto
from ..presets import PRESETS, preset_config

SPEC_KEYS = ("preset", "seeds", "grid", "opto")
DEPENDENCY_FIELDS = ("init_from", "graft_from")
PLACEHOLDER = "sweep:"
_NAME = re.compile(r"^[A-Za-z0-9_.=+-]+$")
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


@dataclasses.dataclass(frozen=True)
class Dependency:
    """The checkpoint of run ``run`` of the sweep at ``at`` (``"last"`` or sequences seen)."""

    run: str
    at: str

    def describe(self) -> str:
        return f"{self.run}@{self.at}"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its directory name, configuration and dependencies.

    Where ``init_from``/``graft_from`` is a :class:`Dependency`, ``config`` holds the placeholder
    ``sweep:RUN@AT`` there; :meth:`resolved` replaces it by the checkpoint path once the dependency
    has finished.
    """

    name: str
    config: TrainConfig
    depends: dict[str, Dependency]
    tags: tuple[tuple[str, Any], ...] = ()
    family: str = ""

    def resolved(self, out: str) -> TrainConfig:
        """The configuration with dependencies replaced by checkpoint paths under sweep dir ``out``."""
        from ..checkpoint import checkpoint_at

        paths = {}
        for field, dep in self.depends.items():
            paths[field] = checkpoint_at(os.path.join(out, dep.run), dep.at, field).path
        return dataclasses.replace(self.config, **paths)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The expanded runs of a spec, in an order where every run comes after its dependencies."""

    runs: tuple[RunSpec, ...]
    source: dict[str, Any]

    def __post_init__(self) -> None:
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError("spec", f"two runs are named {dup!r}")

    def run(self, name: str) -> RunSpec:
        for r in self.runs:
            if r.name == name:
                return r
        raise ConfigError("run", f"no run named {name!r} in the sweep")

    @classmethod
    def from_toml(cls, path: str) -> SweepSpec:
        """Read and expand ``path`` (:class:`ConfigError` on ``spec`` if it is not readable TOML)."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError("spec", f"no such file: {path}") from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError("spec", f"{path}: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        unknown = set(data) - {"defaults", "runs"}
        if unknown:
            first = sorted(unknown)[0]
            raise ConfigError("spec", f"unknown top-level table {first!r} (expected defaults, runs)")
        defaults = data.get("defaults", {})
        runs = data.get("runs", {})
        if not isinstance(defaults, dict) or not isinstance(runs, dict) or not runs:
            raise ConfigError("spec", "expected a [runs.NAME] table per run (and an optional [defaults])")
        expanded: list[RunSpec] = []
        for name, table in runs.items():
            if not isinstance(table, dict):
                raise ConfigError(f"runs.{name}", "expected a table")
            expanded += _expand(name, {**defaults, **table})
        return cls(_ordered(_link(expanded)), data)


# ----------------------------------------------------------------------------------------------


def _expand(name: str, table: dict[str, Any]) -> list[RunSpec]:
    where = f"runs.{name}"
    if not _NAME.match(name):
        raise ConfigError(where, "a run name is a directory name: letters, digits and _ . = + -")
    table = dict(table)
    preset = table.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{where}.preset", f"unknown preset {preset!r} (one of {tuple(PRESETS)})")
    seeds = table.pop("seeds", None)
    grid = table.pop("grid", {})
    opto = table.pop("opto", None)
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{where}.grid", "expected {field = [value, ...]} with non-empty lists")
    if seeds is not None and not (
        isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds)
    ):
        raise ConfigError(f"{where}.seeds", f"expected a non-empty list of integers >= 0, got {seeds!r}")
    for key in list(table) + list(grid):
        if key not in _FIELDS or key == "opto":
            raise ConfigError(f"{where}.{key}", "unknown key (TrainConfig fields, preset, seeds, grid, opto)")
    axes = [(k, v) for k, v in grid.items()] + ([("seed", seeds)] if seeds is not None else [])
    members = []
    for combo in itertools.product(*(values for _, values in axes)):
        tags = tuple((k, v) for (k, _), v in zip(axes, combo))
        member = name + "".join(f"-{k}={_fmt(v)}" for k, v in tags)
        fields = {**table, **{k: v for k, v in tags if k != "seed"}}
        if seeds is not None:
            s = dict(tags)["seed"]
            fields.update(init_seed=s, train_seed=10 * s + 1)
        members.append(_run(member, name, preset, fields, opto, tags))
    return members


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v).replace("/", "_")


def _run(name, family, preset, fields, opto, tags) -> RunSpec:
    where = f"runs.{name}"
    depends = {}
    plain = {}
    for key, value in fields.items():
        if key in DEPENDENCY_FIELDS and isinstance(value, dict):
            depends[key] = _dependency(f"{where}.{key}", value)
        else:
            plain[key] = _coerce(f"{where}.{key}", key, value)
    if opto is not None:
        if not (isinstance(opto, list) and all(isinstance(o, str) for o in opto)):
            raise ConfigError(f"{where}.opto", "expected a list of strings NAME:key=value,...")
        try:
            plain["opto"] = tuple(parse_opto(o) for o in opto)
        except ConfigError as e:
            raise ConfigError(f"{where}.opto", e.message) from None
    for key, dep in depends.items():  # a placeholder until the dependency has run
        plain[key] = PLACEHOLDER + dep.describe()
    try:
        cfg = preset_config(preset, **plain) if preset else TrainConfig.from_dict(plain)
    except ConfigError as e:
        raise ConfigError(f"{where}.{e.param}", e.message) from None
    return RunSpec(name, cfg, depends, tags, family)


def _coerce(where: str, key: str, value: Any) -> Any:
    """TOML values → TrainConfig plain values (``1.8e6`` for an integer field, tables for pairs)."""
    if _FIELDS[key].type == "int" and isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ConfigError(where, f"expected an integer, got {value!r}")
        return int(value)
    if key in ("lr_steps", "mix") and isinstance(value, dict):
        return [(int(k) if key == "lr_steps" else k, v) for k, v in value.items()]
    return value


def _dependency(where: str, value: dict[str, Any]) -> Dependency:
    if set(value) - {"run", "at"} or not isinstance(value.get("run"), str):
        raise ConfigError(where, "expected {run = NAME, at = \"last\" | SEQUENCES}")
    at = value.get("at", "last")
    if at != "last":
        if isinstance(at, bool) or not isinstance(at, int | float) or not (math.isfinite(at) and at > 0):
            raise ConfigError(where, f"at: expected \"last\" or a number of sequences > 0, got {at!r}")
        at = str(int(at))
    return Dependency(value["run"], at)


def _link(runs: list[RunSpec]) -> list[RunSpec]:
    """Dependencies on families resolved to members (matching grid values and seeds)."""
    by_name = {r.name: r for r in runs}
    families: dict[str, list[RunSpec]] = {}
    for r in runs:
        families.setdefault(r.family, []).append(r)
    linked = []
    for r in runs:
        deps = {}
        for field, dep in r.depends.items():
            where = f"runs.{r.name}.{field}"
            if dep.run in by_name:
                target = by_name[dep.run]
            elif dep.run in families:
                mine = dict(r.tags)
                cands = [m for m in families[dep.run] if all(mine.get(k, v) == v for k, v in m.tags)]
                if len(cands) != 1:
                    raise ConfigError(where, f"run {dep.run!r} has {len(cands)} members matching this run "
                                             "(its grid values and seed); name one member")
                target = cands[0]
            else:
                raise ConfigError(where, f"no run named {dep.run!r} in the sweep")
            if target.name == r.name:
                raise ConfigError(where, "a run cannot depend on itself")
            if dep.at != "last" and int(dep.at) > target.config.n_sequences:
                raise ConfigError(where, f"{dep.run!r} trains {target.config.n_sequences} sequences, "
                                         f"fewer than at = {dep.at}")
            deps[field] = Dependency(target.name, dep.at)
        placeholders = {f: PLACEHOLDER + d.describe() for f, d in deps.items()}
        cfg = dataclasses.replace(r.config, **placeholders) if placeholders else r.config
        linked.append(dataclasses.replace(r, config=cfg, depends=deps))
    return linked


def _ordered(runs: list[RunSpec]) -> tuple[RunSpec, ...]:
    """Topological order (stable: spec order where dependencies allow); a cycle is an error."""
    done: list[RunSpec] = []
    names: set[str] = set()
    pending = list(runs)
    while pending:
        ready = [r for r in pending if all(d.run in names for d in r.depends.values())]
        if not ready:
            raise ConfigError("spec", "dependencies form a cycle: " + ", ".join(r.name for r in pending))
        for r in ready:
            done.append(r)
            names.add(r.name)
        pending = [r for r in pending if r.name not in names]
    return tuple(done)


__all__ = ["DEPENDENCY_FIELDS", "Dependency", "RunSpec", "SweepSpec"]
