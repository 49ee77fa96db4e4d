"""Clamping (thesis Fig. 4.6a): hold a whole vector, or its first k entries, at the target.

A clamp is realised by a 0/1 *free mask* per vector: clamped entries start at their target and get
zero velocity (the gradient is multiplied by the mask), so they never move, in gradient descent and
in the gradient flow alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .errors import require
from .losses import ToyModel


@dataclasses.dataclass(frozen=True)
class Clamp:
    """Clamp vector ``name`` at its target: all of it (``first=None``) or its first ``first`` entries."""

    name: str
    first: int | None = None

    @classmethod
    def parse(cls, text: str) -> Clamp:
        """Parse ``NAME`` or ``NAME:K`` (the CLI's ``--clamp`` syntax); :class:`ConfigError` on ``clamp``
        for anything else."""
        name, sep, k = text.partition(":")
        require(bool(name), "clamp", f"empty vector name in {text!r}")
        if not sep:
            return cls(name)
        # ASCII digits only: "²" passes str.isdigit but not int()
        ok = k.isascii() and k.isdigit() and int(k) >= 1
        require(ok, "clamp", f"K in NAME:K must be an integer >= 1 (got {text!r})")
        return cls(name, int(k))

    def __str__(self) -> str:
        return self.name if self.first is None else f"{self.name}:{self.first}"


def check_clamps(model: ToyModel, clamps: Iterable[Clamp]) -> tuple[Clamp, ...]:
    """Validate clamps against the model (known names, K within the dimension); returns a tuple."""
    clamps = tuple(clamps)
    dims = model.dim
    for c in clamps:
        require(c.name in dims, "clamp", f"unknown vector {c.name!r} (vectors: {', '.join(model.vectors)})")
        if c.first is not None:
            require(
                c.first <= dims[c.name],
                "clamp",
                f"{c}: K exceeds the dimension {int(dims[c.name])} of {c.name!r}",
            )
    names = [c.name for c in clamps]
    require(
        len(set(names)) == len(names), "clamp", f"a vector is clamped twice: {', '.join(map(str, clamps))}"
    )
    return clamps


def free_masks(model: ToyModel, clamps: Sequence[Clamp], dtype=jnp.float64) -> dict[str, Float[Array, " n"]]:
    """Per-vector masks: 1 where an entry is free to learn, 0 where it is clamped."""
    dims = model.integer_dims()
    masks = {name: np.ones(n) for name, n in dims.items()}
    for c in check_clamps(model, clamps):
        masks[c.name][: dims[c.name] if c.first is None else c.first] = 0.0
    return {k: jnp.asarray(v, dtype=dtype) for k, v in masks.items()}


def apply_clamps(
    init: Mapping[str, Float[Array, "*batch n"]],
    targets: Mapping[str, Float[Array, "*batch n"]],
    masks: Mapping[str, Float[Array, " n"]],
) -> dict[str, Float[Array, "*batch n"]]:
    """Initial vectors with clamped entries replaced by their targets."""
    return {k: masks[k] * init[k] + (1 - masks[k]) * targets[k] for k in init}


def fully_clamped(model: ToyModel, clamps: Sequence[Clamp]) -> frozenset[str]:
    """Names of vectors clamped in full."""
    dims = model.dim
    return frozenset(c.name for c in clamps if c.first is None or c.first == dims[c.name])
