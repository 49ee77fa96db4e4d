"""Atomic file writes: nothing is ever half-written.

``atomic_write(path, write)`` lets ``write(tmp_path)`` fill a temporary file in the destination's
directory, gives it the permissions a normal file would get (umask), then renames it over ``path``;
on any failure (or interruption) the temporary file is removed and ``path`` is untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = ".tmp") -> None:
    """Write ``path`` atomically through ``write(tmp_path)``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (the file keeps ``path``'s extension while written)."""
    suffix = os.path.splitext(os.fspath(path))[1] or ".txt"

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write, suffix=suffix)
