r"""What a sweep runs: axes, the grid of points, and the spec-file format.

A sweep is the Cartesian product of its axes, in this fixed order (the last varies fastest)::

    method × reduced × clamps × dims × init_scale × mu1 × mu2 × alpha × seed

Numeric axes are written as

* ``0.1`` — one value;  ``0,0.05,0.1`` — an explicit list;
* ``START:STOP:NUM`` — NUM linearly spaced values from START to STOP inclusive (``numpy.linspace``);
* ``log:START:STOP:NUM`` — NUM logarithmically spaced values (``numpy.geomspace``, START, STOP > 0).

Seeds use the ``python -m toymodels`` syntax (``7``, ``0-11``, ``0,3,5``). Dimensions are one axis
per vector (``--dims 20 20 20 10:160:4``) or named groups whose vectors share one value
(``--dims a=20 bc=10,20,40 d=160``: b and c always have the same dimension).

A spec file (TOML or JSON) holds the same axes under the keys :data:`SPEC_KEYS`, e.g.::

    mu1 = "0:0.2:21"          # or [0, 0.1] or 0.1
    alpha = "log:0.01:1:11"
    seeds = "0-3"
    dims = {a = 20, bc = "10,20,40", d = 160}   # or ["20", "20", "20", "160"]
    method = ["gd", "flow"]
    reduced = [true, false]
    clamps = [[], ["c"], ["b", "c"]]

Everything here validates its input and raises :class:`~toymodels.errors.ConfigError` naming the
parameter, so the CLI can print one line and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..clamps import Clamp, check_clamps
from ..errors import ConfigError, require
from ..experiment import DEFAULT_DIMS, MAX_DIM, MODELS, check_method, parse_seeds
from ..losses import ToyModel, coopetition_model, tensor_model
from ..methods import GradientDescent, GradientFlow, Method

#: keys a spec file may hold (each is an axis)
SPEC_KEYS = ("mu1", "mu2", "alpha", "dims", "seeds", "init_scale", "clamps", "method", "reduced")
#: numeric per-point axes, in product order
NUMERIC_AXES = ("init_scale", "mu1", "mu2", "alpha", "seed")
MAX_POINTS = 50_000_000
#: state coordinates of the reduced dynamics a sweep may use
COORDINATES = ("PEW", "PQ")


# ---------------------------------------------------------------------------------------------
# Axis parsing
# ---------------------------------------------------------------------------------------------


def _number(text: str, param: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            param, f"expected a number, a list a,b,c, START:STOP:NUM or log:START:STOP:NUM (got {text!r})"
        ) from None
    require(math.isfinite(value), param, f"must be finite (got {text!r})")
    return value


def parse_axis(spec: Any, param: str) -> tuple[float, ...]:
    """Values of one numeric axis from a number, a list, or a string (see the module docstring)."""
    if isinstance(spec, bool):
        raise ConfigError(param, f"expected numbers (got {spec!r})")
    if isinstance(spec, (int, float)):
        return (_number(str(spec), param),)
    if isinstance(spec, (list, tuple)):
        require(len(spec) > 0, param, "empty list")
        return tuple(v for item in spec for v in parse_axis(item, param))
    require(isinstance(spec, str), param, f"expected a number, a list or a string (got {spec!r})")
    text = spec.strip()
    require(bool(text), param, "empty value")
    log = text.startswith("log:")
    body = text[4:] if log else text
    if ":" in body:
        parts = body.split(":")
        require(len(parts) == 3, param, f"a range is START:STOP:NUM or log:START:STOP:NUM (got {text!r})")
        start, stop = _number(parts[0], param), _number(parts[1], param)
        try:
            num = int(parts[2])
        except ValueError:
            raise ConfigError(param, f"NUM in START:STOP:NUM must be an integer (got {parts[2]!r})") from None
        require(num >= 1, param, f"empty range {text!r} (NUM must be >= 1)")
        require(num <= MAX_POINTS, param, f"NUM must be <= {MAX_POINTS} (got {num})")
        require(num == 1 or start != stop, param, f"range {text!r} has START == STOP with NUM > 1")
        if log:
            require(start > 0 and stop > 0, param, f"log spacing needs START, STOP > 0 (got {text!r})")
            values = np.geomspace(start, stop, num)
            values[0], values[-1] = start, stop
        else:
            values = np.linspace(start, stop, num)
        return tuple(float(v) for v in values)
    require(not log, param, f"log: needs START:STOP:NUM (got {text!r})")
    items = [s for s in body.split(",")]
    require(all(s.strip() for s in items), param, f"empty item in list {text!r}")
    return tuple(_number(s, param) for s in items)


def parse_dims(spec: Any, vectors: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """All dimension tuples of a dims axis.

    ``spec`` is a sequence with one axis per vector, a sequence of ``NAME=AXIS`` tokens, or a mapping
    NAME → axis, where NAME may group vectors (``bc``) that then share each value.
    """
    if isinstance(spec, Mapping):
        groups = [(str(k), v) for k, v in spec.items()]
    else:
        require(
            isinstance(spec, (list, tuple)) and len(spec) > 0,
            "dims",
            "give one axis per vector or NAME=AXIS groups",
        )
        tokens = [str(s) if not isinstance(s, (list, tuple)) else s for s in spec]
        named = [isinstance(t, str) and "=" in t for t in tokens]
        if any(named):
            require(all(named), "dims", "mix of NAME=AXIS and positional dims; use one form")
            groups = [tuple(t.split("=", 1)) for t in tokens]
        else:
            require(
                len(tokens) == len(vectors),
                "dims",
                f"expected {len(vectors)} dimensions (one per vector {', '.join(vectors)}), "
                f"got {len(tokens)}",
            )
            groups = list(zip(vectors, tokens))
    seen: list[str] = []
    axes = []
    for names, axis in groups:
        names = names.strip()
        require(bool(names), "dims", "empty vector name in NAME=AXIS")
        for v in names:
            require(
                v in vectors, "dims", f"unknown vector {v!r} in {names!r} (vectors: {', '.join(vectors)})"
            )
            require(v not in seen, "dims", f"vector {v!r} is given twice")
            seen.append(v)
        values = parse_axis(axis, "dims")
        for value in values:
            require(
                1 <= value <= MAX_DIM,
                "dims",
                f"dimension of {names!r} must be in [1, {MAX_DIM}] (got {value:g})",
            )
            require(
                float(value).is_integer(),
                "dims",
                f"dimension of {names!r} must be an integer (got {value:g})",
            )
        axes.append((names, tuple(int(v) for v in values)))
    missing = [v for v in vectors if v not in seen]
    require(not missing, "dims", f"no dimension for vector(s) {', '.join(missing)}")
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        dim = {}
        for (names, _), value in zip(axes, combo):
            for v in names:
                dim[v] = value
        out.append(tuple(dim[v] for v in vectors))
    return tuple(dict.fromkeys(out))


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def parse_clamp_sets(spec: Any, model: ToyModel) -> tuple[tuple[Clamp, ...], ...]:
    """Clamp sets: a list of lists of ``NAME[:K]`` strings (``[]`` or ``"none"`` = no clamp)."""
    require(
        isinstance(spec, (list, tuple)) and len(spec) > 0,
        "clamps",
        "expected a list of clamp sets, e.g. [[], ['c'], ['b', 'c']]",
    )
    out = []
    for item in spec:
        if isinstance(item, str):
            item = (
                []
                if item.strip().lower() in ("", "none")
                else [s for s in item.replace("+", ",").split(",") if s]
            )
        require(
            isinstance(item, (list, tuple)), "clamps", f"a clamp set is a list of NAME[:K] (got {item!r})"
        )
        out.append(check_clamps(model, tuple(Clamp.parse(str(c)) for c in item)))
    return tuple(dict.fromkeys(out))


def load_spec_file(path: str) -> dict[str, Any]:
    """Axes from a TOML (``.toml``) or JSON file; unknown keys are an error."""
    require(os.path.isfile(path), "spec", f"no such file {path!r}")
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            with open(path) as f:
                data = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError("spec", f"cannot read {path!r}: {str(e).splitlines()[0]}") from None
    require(isinstance(data, dict), "spec", "the spec file must hold a table/object of axes")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    require(
        not unknown, "spec", f"unknown axis {', '.join(map(repr, unknown))} (axes: {', '.join(SPEC_KEYS)})"
    )
    return data


# ---------------------------------------------------------------------------------------------
# The sweep specification
# ---------------------------------------------------------------------------------------------


def _method_to_dict(method: Method) -> dict[str, Any]:
    return {"name": method.name, **dataclasses.asdict(method)}


def _method_from_dict(d: Mapping[str, Any]) -> Method:
    d = dict(d)
    name = d.pop("name")
    if name == "gd":
        return GradientDescent(**d)
    if d.get("save_times") is not None:
        d["save_times"] = tuple(d["save_times"])
    return GradientFlow(**d)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A grid of toy-model runs (the product of the axes; see the module docstring).

    Attributes:
        model, combine, prng, precision: as in :class:`toymodels.experiment.ToyConfig` (not swept).
        methods: the method axis (:class:`GradientDescent` / :class:`GradientFlow` configurations).
        reduced: the model axis: ``False`` full vectors, ``True`` exact reduced (P, Q) dynamics.
        clamps: the clamp-set axis.
        dims: the dimension axis (one tuple per value).
        init_scale, mu1, mu2, alpha: numeric axes. seeds: the seed axis.
        coordinates: state coordinates of the reduced dynamics (not an axis): ``"PQ"`` (the default
            in float64: 2.5–6× faster per run; the losses carry an absolute rounding error
            ~1e-16·R-products, so values below ~1e-12 are noise — far below every verdict threshold)
            or ``"PEW"`` (the default in float32, and that of a reduced run alone,
            :func:`toymodels.reduced.simulate_reduced`: accurate near any minimum).
    """

    model: str = "coopetition"
    combine: str = "multiplicative"
    prng: str = "legacy"
    precision: str = "float64"
    methods: tuple[Method, ...] = (GradientDescent(),)
    reduced: tuple[bool, ...] = (False,)
    clamps: tuple[tuple[Clamp, ...], ...] = ((),)
    dims: tuple[tuple[int, ...], ...] = ((20, 20, 20, 160),)
    init_scale: tuple[float, ...] = (1.0,)
    mu1: tuple[float, ...] = (0.1,)
    mu2: tuple[float, ...] = (0.0,)
    alpha: tuple[float, ...] = (0.1,)
    seeds: tuple[int, ...] = (7,)
    coordinates: str | None = None

    def __post_init__(self) -> None:
        require(self.model in MODELS, "model", f"must be one of {MODELS} (got {self.model!r})")
        structure = self.build_model(self.dims[0] if self.dims else DEFAULT_DIMS[self.model])
        for name in ("methods", "reduced", "clamps", "dims", "init_scale", "mu1", "mu2", "alpha", "seeds"):
            require(len(getattr(self, name)) >= 1, name.replace("_", "-"), "empty axis")
        for method in self.methods:
            check_method(method)
        for name in ("init_scale", "mu1", "mu2", "alpha"):
            for v in getattr(self, name):
                require(
                    math.isfinite(v) and v >= 0,
                    name.replace("_", "-"),
                    f"must be a finite number >= 0 (got {v:g})",
                )
        require(
            structure.n_mechanisms > 1 or set(self.mu2) == {0.0}, "mu2", "the tensor model has one mechanism"
        )
        require(
            bool(structure.competition) or set(self.alpha) == {0.0},
            "alpha",
            "alpha > 0 needs a competition term in the model",
        )
        for d in self.dims:
            self.build_model(d).integer_dims()
        for s in self.seeds:
            require(int(s) == s and 0 <= s < 2**31, "seeds", f"seeds must be integers in [0, 2^31) (got {s})")
        for clamps in self.clamps:
            for d in self.dims:
                check_clamps(self.build_model(d), clamps)
        if True in self.reduced:
            from ..reduced import reduced_clamped_set

            for clamps in self.clamps:
                reduced_clamped_set(self.build_model(self.dims[0]), clamps)
        if self.coordinates is None:
            object.__setattr__(self, "coordinates", "PQ" if self.precision == "float64" else "PEW")
        require(
            self.coordinates in COORDINATES,
            "coordinates",
            f"must be one of {COORDINATES} (got {self.coordinates!r})",
        )
        require(
            self.n_points <= MAX_POINTS, "spec", f"{self.n_points} points exceed the limit of {MAX_POINTS}"
        )

    # ------------------------------------------------------------------ structure
    def build_model(self, dims: Sequence[float]) -> ToyModel:
        if self.model == "coopetition":
            return coopetition_model(tuple(dims), combine=self.combine)
        return tensor_model(tuple(dims))

    @property
    def vectors(self) -> tuple[str, ...]:
        return self.build_model(self.dims[0]).vectors

    @property
    def n_mechanisms(self) -> int:
        return self.build_model(self.dims[0]).n_mechanisms

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape, in product order."""
        return (
            len(self.methods), len(self.reduced), len(self.clamps), len(self.dims),
            len(self.init_scale), len(self.mu1), len(self.mu2), len(self.alpha), len(self.seeds),
        )  # fmt: skip

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def swept_axes(self) -> list[str]:
        """Names of the axes with more than one value (``dims`` split per vector)."""
        names = []
        for name, n in zip(
            ("method", "reduced", "clamps", "dims", "init_scale", "mu1", "mu2", "alpha", "seed"), self.shape
        ):
            if n > 1:
                if name == "dims":
                    d = np.asarray(self.dims)
                    names += [f"dim_{v}" for i, v in enumerate(self.vectors) if len(set(d[:, i])) > 1]
                else:
                    names.append(name)
        return names

    def points(self) -> dict[str, np.ndarray]:
        """The table of all points (one row per run), in product order.

        Keys: ``method`` (index into :attr:`methods`), ``reduced`` (bool), ``clamps`` (index into
        :attr:`clamps`), ``dims_index``, ``dims`` (n, V), ``init_scale``, ``mu1``, ``mu2``, ``alpha``,
        ``seed``.
        """
        idx = np.indices(self.shape).reshape(len(self.shape), -1)
        m, r, c, d, s, u1, u2, a, seed = idx
        return {
            "method": m.astype(np.int64),
            "reduced": np.asarray(self.reduced, dtype=bool)[r],
            "clamps": c.astype(np.int64),
            "dims_index": d.astype(np.int64),
            "dims": np.asarray(self.dims, dtype=np.int64)[d],
            "init_scale": np.asarray(self.init_scale, dtype=np.float64)[s],
            "mu1": np.asarray(self.mu1, dtype=np.float64)[u1],
            "mu2": np.asarray(self.mu2, dtype=np.float64)[u2],
            "alpha": np.asarray(self.alpha, dtype=np.float64)[a],
            "seed": np.asarray(self.seeds, dtype=np.int64)[seed],
        }

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "combine": self.combine,
            "prng": self.prng,
            "precision": self.precision,
            "methods": [_method_to_dict(m) for m in self.methods],
            "reduced": list(self.reduced),
            "clamps": [[str(c) for c in cs] for cs in self.clamps],
            "dims": [list(d) for d in self.dims],
            "init_scale": list(self.init_scale),
            "mu1": list(self.mu1),
            "mu2": list(self.mu2),
            "alpha": list(self.alpha),
            "seeds": list(self.seeds),
            "coordinates": self.coordinates,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepSpec:
        return cls(
            model=d["model"],
            combine=d["combine"],
            prng=d["prng"],
            precision=d["precision"],
            methods=tuple(_method_from_dict(m) for m in d["methods"]),
            reduced=tuple(bool(r) for r in d["reduced"]),
            clamps=tuple(tuple(Clamp.parse(c) for c in cs) for cs in d["clamps"]),
            dims=tuple(tuple(int(x) for x in dd) for dd in d["dims"]),
            init_scale=tuple(float(x) for x in d["init_scale"]),
            mu1=tuple(float(x) for x in d["mu1"]),
            mu2=tuple(float(x) for x in d["mu2"]),
            alpha=tuple(float(x) for x in d["alpha"]),
            seeds=tuple(int(x) for x in d["seeds"]),
            coordinates=d.get("coordinates", "PEW"),  # stores written before PQ became the float64 default
        )


def spec_digest(*parts: Mapping[str, Any]) -> str:
    """A short, stable hash of JSON-serialisable dictionaries (identifies a sweep for resuming)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = [
    "MAX_POINTS",
    "SPEC_KEYS",
    "SweepSpec",
    "load_spec_file",
    "parse_axis",
    "parse_clamp_sets",
    "parse_dims",
    "parse_seeds",
    "spec_digest",
]
