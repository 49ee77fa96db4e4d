"""Internals shared by the project's packages (``toymodels``, ``transformer``, ``bridge``); not public API.

* :func:`atomic_write`, :func:`write_text_atomic` — files are renamed into place, never half-written;
* :func:`enable_persistent_cache` — the XLA compilation cache, switched on only by entry points;
* :class:`OneLineParser`, :func:`parse_int_list`, :func:`prepare_output_dir` — command-line helpers
  with one-line errors.
"""

from .atomic import atomic_write, write_text_atomic
from .cli_tools import OneLineParser, parse_int_list, prepare_output_dir
from .facade import lazy_facade
from .jax_cache import enable_persistent_cache

__all__ = [
    "OneLineParser",
    "atomic_write",
    "enable_persistent_cache",
    "lazy_facade",
    "parse_int_list",
    "prepare_output_dir",
    "write_text_atomic",
]
