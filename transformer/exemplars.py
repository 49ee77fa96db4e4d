"""Exemplar data: the HDF5 file layout (loading, validation, writing) and the synthetic generator.

Layout of an exemplar file (the original study's Omniglot feature files): one float dataset,
by default at ``resnet18/224/feat``, shaped ``(classes, exemplars, feature_dim)``.

Synthetic exemplars: class prototypes :math:`\\mu_c \\sim N(0, I_D)` and exemplars

.. math:: x_{c,e} = (\\mu_c + \\varepsilon\\,\\xi_{c,e}) / \\sqrt{1 + \\varepsilon^2},
   \\qquad \\xi_{c,e} \\sim N(0, I_D),

so every exemplar has unit expected per-coordinate variance and ``ε`` sets the within-class
spread. An optional ``offset`` :math:`m` is added to every coordinate, :math:`x_{c,e} + m\\,\\mathbf 1`:
a component shared by all exemplars, like the large positive mean of the study's ResNet-18
features (post-ReLU, so non-negative). It decides which strategy the transformer learns first
(docs/cpu_quick_preset.md): with centred features (``m = 0``) in-weights learning (CIWL) forms
first and ICL never does; with ``m = 1`` ICL forms first and then gives way to CIWL.

Two more options bring the statistics closer to ResNet features: a *shared random component*
:math:`s \sim N(0, \sigma_s^2 I_D)` (``shared_scale`` :math:`\sigma_s`), one vector added to every
exemplar, so the shared mean differs per coordinate (some units almost always active, some rarely); and
*rectification* (``rectify``), :math:`x \leftarrow \max(x, 0)` after the offset and shared component,
so features are non-negative and sparse where :math:`m + s_j` is low, like post-ReLU outputs.

The sequence samplers that index these exemplars are :mod:`transformer.data`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import h5py
import numpy as np
from jaxtyping import Float

from toymodels._internal import atomic_write
from toymodels._internal.cli_tools import require_memory
from toymodels.errors import ConfigError

DEFAULT_DATASET = "resnet18/224/feat"


class DataError(ConfigError):
    """Bad data file or data/sequence specification, raised with one string ``"param: reason"``: a
    :class:`~toymodels.errors.ConfigError` for ``param`` (command lines print ``error: --param: reason``)."""

    def __init__(self, text: str):
        param, sep, message = text.partition(": ")
        super().__init__(param if sep else "data", message if sep else text)


def synthetic_exemplars(
    n_classes: int,
    n_exemplars: int,
    dim: int,
    noise: float,
    seed: int,
    offset: float = 0.0,
    variants: int = 1,
    variant_scale: float = 1.0,
    shared_scale: float = 0.0,
    rectify: bool = False,
) -> Float[np.ndarray, "classes exemplars dim"]:
    """Synthetic exemplars ``x_{c,e} = r((μ_c + ε ξ_{c,e}) / sqrt(1 + ε²) + offset + s)``, float32,
    seeded, with ``r = max(·, 0)`` if ``rectify`` else the identity.

    ``ξ`` are i.i.d. standard normal. With ``variants`` = 1 the class prototypes ``μ_c = δ_c`` are
    i.i.d. standard normal. With ``variants`` = V > 1 the classes come in groups of V consecutive
    classes that share a base prototype, like the study's 12800 Omniglot classes (1600 characters
    × 8 rotations and flips): ``μ_c = (β_{⌊c/V⌋} + ρ δ_c) / sqrt(1 + ρ²)`` with base prototypes
    ``β`` i.i.d. standard normal and ``ρ`` = ``variant_scale``, so every prototype is still
    standard normal and two classes of one group have prototype correlation ``1 / (1 + ρ²)``.
    The shared component ``s ~ N(0, shared_scale² I)`` is one vector for all exemplars (zero when
    ``shared_scale`` = 0). The draws are ``δ`` (classes × 1 × dim), then ``ξ``, then ``β`` if
    ``variants`` > 1, then ``s`` if ``shared_scale`` > 0 (numpy PCG64 from ``seed``), so ``ξ`` and
    ``δ`` depend on neither option, and the defaults give the plain generator bit for bit.
    """
    check_synthetic(n_classes, n_exemplars, dim, noise, seed, offset, variants, variant_scale,
                    shared_scale)
    rng = np.random.default_rng(seed)
    proto = rng.standard_normal((n_classes, 1, dim), dtype=np.float32)
    xi = rng.standard_normal((n_classes, n_exemplars, dim), dtype=np.float32)
    if variants > 1:
        base = rng.standard_normal((-(-n_classes // variants), 1, dim), dtype=np.float32)
        group = np.arange(n_classes) // variants
        rho = np.float32(variant_scale)
        proto = (base[group] + rho * proto) / np.float32(math.sqrt(1.0 + variant_scale**2))
    x = (proto + np.float32(noise) * xi) / np.float32(math.sqrt(1.0 + noise**2))
    x += np.float32(offset)  # in place: the peak stays at synthetic_bytes
    if shared_scale > 0:
        x += np.float32(shared_scale) * rng.standard_normal(dim, dtype=np.float32)
    if rectify:
        np.maximum(x, np.float32(0), out=x)
    return x


def write_exemplar_file(
    path: str | os.PathLike,
    features: Float[np.ndarray, "classes exemplars dim"],
    dataset: str = DEFAULT_DATASET,
    attrs: dict | None = None,
) -> None:
    """Write ``features`` to ``path`` at ``dataset`` atomically (temp file then rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset(dataset, data=features)
            for k, v in (attrs or {}).items():
                d.attrs[k] = v

    atomic_write(path, write, suffix=".h5")


def check_synthetic(
    n_classes: int, n_exemplars: int, dim: int, noise: float, seed: int, offset: float = 0.0,
    variants: int = 1, variant_scale: float = 1.0, shared_scale: float = 0.0,
) -> None:
    """:class:`DataError` naming the first bad argument of :func:`synthetic_exemplars` (which calls it)."""
    sizes = {"n_classes": n_classes, "n_exemplars": n_exemplars, "dim": dim, "variants": variants}
    for name, value in sizes.items():
        if int(value) < 1:
            raise DataError(f"{name}: must be >= 1, got {value}")
    if seed < 0:
        raise DataError(f"seed: must be >= 0, got {seed}")
    if not (math.isfinite(noise) and noise >= 0):
        raise DataError(f"noise: must be finite and >= 0, got {noise}")
    if not math.isfinite(offset):
        raise DataError(f"offset: must be finite, got {offset}")
    if not (math.isfinite(variant_scale) and variant_scale >= 0):
        raise DataError(f"variant_scale: must be finite and >= 0, got {variant_scale}")
    if not (math.isfinite(shared_scale) and shared_scale >= 0):
        raise DataError(f"shared_scale: must be finite and >= 0, got {shared_scale}")


def synthetic_bytes(n_classes: int, n_exemplars: int, dim: int) -> int:
    """Peak bytes of :func:`synthetic_exemplars` (three float32 arrays of the output's size)."""
    return 3 * 4 * n_classes * n_exemplars * dim


@contextlib.contextmanager
def _exemplar_dataset(path: str | os.PathLike, dataset: str) -> Iterator[h5py.Dataset]:
    """The checked exemplar dataset of a file (3-d, floating point, nothing empty), left unread."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"data_path: no such file {path!r}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"data_path: {path!r} is not a readable HDF5 file ({e})") from None
    with f:
        try:
            d = f[dataset] if dataset in f else None
        except (KeyError, ValueError, TypeError, OSError):
            d = None
        if not isinstance(d, h5py.Dataset):
            raise DataError(f"data_dataset: {path!r} has no dataset {dataset!r}")
        if d.ndim != 3 or 0 in d.shape:
            raise DataError(
                f"data_dataset: {dataset!r} must be classes x exemplars x dim, got shape {d.shape}"
            )
        if not np.issubdtype(d.dtype, np.floating):
            raise DataError(f"data_dataset: {dataset!r} must be floating point, got {d.dtype}")
        yield d


def exemplar_file_shape(path: str | os.PathLike, dataset: str = DEFAULT_DATASET) -> tuple[int, int, int]:
    """``(classes, exemplars, dim)`` of a file's exemplar dataset, checked (as it is loaded) but unread."""
    with _exemplar_dataset(path, dataset) as d:
        return tuple(int(n) for n in d.shape)


def load_exemplars(
    path: str | os.PathLike,
    dataset: str = DEFAULT_DATASET,
    n_classes: int | None = None,
    n_exemplars: int | None = None,
) -> Float[np.ndarray, "classes exemplars dim"]:
    """Load and validate the first ``n_classes`` × ``n_exemplars`` exemplars of a file (refused up
    front if they would not fit in this machine's memory)."""
    with _exemplar_dataset(path, dataset) as d:
        c, e, dim = d.shape
        n_classes = c if n_classes is None else n_classes
        n_exemplars = e if n_exemplars is None else n_exemplars
        if not 1 <= n_classes <= c:
            raise DataError(f"n_classes: {n_classes} requested but the file has {c} classes")
        if not 1 <= n_exemplars <= e:
            raise DataError(f"n_exemplars: {n_exemplars} requested but the file has {e} exemplars")
        require_memory("n_classes", 2 * 4 * n_classes * n_exemplars * dim)
        try:
            x = np.asarray(d[:n_classes, :n_exemplars], dtype=np.float32)
        except OSError as err:
            raise DataError(f"data_path: cannot read {dataset!r} of {os.fspath(path)!r} ({err})") from None
    if not np.all(np.isfinite(x)):
        raise DataError(f"data_dataset: {dataset!r} contains non-finite values")
    return x


__all__ = [
    "DEFAULT_DATASET",
    "DataError",
    "check_synthetic",
    "exemplar_file_shape",
    "load_exemplars",
    "synthetic_bytes",
    "synthetic_exemplars",
    "write_exemplar_file",
]
