"""Persistent XLA compilation cache for the command-line entry points.

Compiling the fused dynamics costs 1–3 s per process; the cache makes repeated CLI runs start
fast. It is enabled only by the ``python -m …`` entry points (which own their process), never on
import of the library, so a user's JAX configuration is left alone. Location:
``$ICL_COOPETITION_CACHE_DIR``, else ``$XDG_CACHE_HOME/icl-coopetition/jax``
(``~/.cache/icl-coopetition/jax``); set ``ICL_COOPETITION_CACHE_DIR=off`` to disable it.
"""

from __future__ import annotations

import os


def enable_persistent_cache() -> str | None:
    """Point JAX's compilation cache at the project's cache directory; returns it (None if off)."""
    path = os.environ.get("ICL_COOPETITION_CACHE_DIR")
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "icl-coopetition", "jax")
    if path.lower() in ("off", "none", "0", ""):
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
