"""Lazy package facades (PEP 562): a package's public names, imported from its modules on first use.

Every package of the project exposes its API from ``__init__`` this way, so that a command line
(``python -m toymodels.analysis``, ``python -m transformer.plot``) pays only for what it uses::

    __getattr__, __dir__, __all__ = lazy_facade(__name__, {"ToyConfig": "experiment", ...})

A name that equals one of the package's submodules cannot be exported: importing the submodule
sets the package attribute of that name to the module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_facade(
    package: str, exports: Mapping[str, str], subpackages: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``exports`` maps a public name to the
    submodule (relative to ``package``) that defines it; ``subpackages`` are exported as modules."""
    exports = dict(exports)
    names = sorted(exports) + list(subpackages)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        if name in subpackages:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__, names


__all__ = ["lazy_facade"]
