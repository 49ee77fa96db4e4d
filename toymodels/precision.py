"""Scoped numerical settings: float64 dynamics and the legacy (paper) PRNG key derivation.

Nothing here changes the user's global JAX configuration: both settings are context managers
(``jax.enable_x64`` / ``jax.threefry_partitionable``) that restore the previous state on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp

from .errors import require

PRECISIONS = ("float64", "float32")


def check_precision(precision: str) -> str:
    require(precision in PRECISIONS, "precision", f"must be one of {PRECISIONS} (got {precision!r})")
    return precision


@contextlib.contextmanager
def numerics(precision: str = "float64") -> Iterator[jnp.dtype]:
    """Scope in which the toy dynamics run; yields the floating dtype to use.

    ``float64`` (default) keeps the inner-product loss identity accurate down to ~1e-12, which the
    paper's stopping rule (loss < 1e-6) needs; ``float32`` is faster but loses precision near
    convergence.
    """
    check_precision(precision)
    with jax.enable_x64(precision == "float64"):
        yield jnp.float64 if precision == "float64" else jnp.float32


@contextlib.contextmanager
def legacy_prng() -> Iterator[None]:
    """Scope with JAX's older threefry key derivation (``jax_threefry_partitionable=False``),
    which the published runs used; newer JAX defaults to the partitionable mode and draws other numbers."""
    with jax.threefry_partitionable(False):
        yield
