"""Command-line helpers shared by every entry point of the project (toy, sweep, bridge, transformer).

One-line usage errors (``error: … (see --help)``, exit status 2), :class:`ConfigError` lines with
flags or positional names (:func:`error_line`), integer lists such as seeds, numbers (:func:`parse_int`,
:func:`parse_float`), the output-directory checks that run before anything is written
(:func:`check_output_path` and :func:`check_output_dir` create nothing, :func:`prepare_output_dir`
creates the directory) and the memory refusal (:func:`require_memory`).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Collection, Sequence

from ..errors import ConfigError, require


class OneLineParser(argparse.ArgumentParser):
    """argparse parser whose usage errors are one line (``error: …``) with exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see --help)\n")


def parse_int_list(text: str, param: str = "seeds") -> tuple[int, ...]:
    """Parse ``7``, ``0-11``, ``0,3,5`` or ``0-3,8`` into a tuple of integers."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ConfigError(param, f"expected integers like 7, 0-11 or 0,3,5 (got {text!r})") from None
        require(a <= b, param, f"empty range {part!r}")
        out.extend(range(a, b + 1))
    require(len(out) > 0, param, "empty list")
    require(all(v >= 0 for v in out), param, f"must be >= 0 (got {text!r})")
    return tuple(out)


def prepare_output_dir(path: str) -> str:
    """Create the output directory if needed and check that it is writable."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError("out", f"cannot create directory {path!r}: {e.strerror}") from None
    require(os.path.isdir(path), "out", f"{path!r} is not a directory")
    require(os.access(path, os.W_OK | os.X_OK), "out", f"directory {path!r} is not writable")
    return path


def error_line(e: ConfigError, positional: Collection[str] = ()) -> str:
    """The one-line CLI error for ``e``: ``error: --flag: reason`` (:meth:`ConfigError.cli_line`), or
    ``error: NAME: reason`` when ``e.param`` is one of the command's ``positional`` arguments."""
    return f"error: {e.param}: {e.message}" if e.param in positional else e.cli_line()


def parse_int(text: str, param: str) -> int:
    """``text`` as an integer (``7``, ``-3``, or ``2e6`` when integral); :class:`ConfigError` naming
    ``param`` for anything else (``1.5``, ``nan``, ``inf``, ``1e400``, words)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(param, f"cannot parse {text!r} as an integer") from None
    require(math.isfinite(value) and value.is_integer(), param, f"must be an integer, got {text!r}")
    return int(value)


def parse_float(text: str, param: str) -> float:
    """``text`` as a float (``nan`` and ``inf`` included: ranges are checked where the value is used);
    :class:`ConfigError` naming ``param`` if it is not a number."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(param, f"cannot parse {text!r} as a number") from None


NAME_MAX = 255
"""Longest file name (bytes) of common file systems."""


def _probe_directory(directory: str, param: str) -> None:
    """Create and remove a temporary file in ``directory``: the one reliable writability test (root
    passes every permission check yet cannot write in ``/proc``)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".probe-", dir=directory)
    except OSError as e:
        raise ConfigError(param, f"cannot write in directory {directory!r} ({e.strerror})") from None
    os.close(fd)
    os.remove(tmp)


def check_output_path(
    path: str | os.PathLike, param: str = "out", *, directory: bool = False, files: Sequence[str] = ()
) -> str:
    """Check, creating nothing, that ``path`` can be written; returns it as a string.

    ``directory=True``: ``path`` is a directory that exists or can be created, and ``files`` (names in
    it) are not directories. Otherwise ``path`` is a file in an existing, writable directory, and is not
    itself a directory. Raises :class:`ConfigError` on ``param``.
    """
    text = os.fspath(path)
    require(bool(text.strip()), param, "empty path")
    require("\0" not in text, param, "the path contains a NUL character")
    full = os.path.abspath(text)
    for part in full.split(os.sep):
        require(len(os.fsencode(part)) <= NAME_MAX, param, f"{part[:20]!r}… is longer than {NAME_MAX} bytes")
    if directory:
        existing = full
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        require(
            os.path.isdir(existing),
            param,
            f"{text!r} exists and is not a directory"
            if existing == full
            else f"cannot create directory {text!r}: {existing!r} is not a directory",
        )
    else:
        require(not os.path.isdir(full), param, f"{text!r} is a directory")
        existing = os.path.dirname(full)
        require(os.path.isdir(existing), param, f"directory {existing!r} does not exist")
    _probe_directory(existing, param)
    for name in files:
        target = os.path.join(full, name)
        require(not os.path.isdir(target), param, f"{target!r} is a directory, not a file")
    return text


def check_output_dir(path: str | os.PathLike, param: str = "out") -> None:
    """Check, creating nothing, that ``path`` is a writable directory or can be created as one
    (:func:`check_output_path` with ``directory=True``)."""
    check_output_path(path, param, directory=True)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(param: str, needed: int, available: int | None = None) -> None:
    """:class:`ConfigError` naming ``param`` (``needs ~X GiB, this machine has Y GiB``) when ``needed``
    bytes exceed ``available`` (default: :func:`physical_memory`; no check if unknown)."""
    available = physical_memory() if available is None else available
    if available is not None and needed > available:
        def gib(n: int) -> str:
            return f"{n / 2**30:.{1 if n < 10 * 2**30 else 0}f}"

        raise ConfigError(param, f"needs ~{gib(needed)} GiB, this machine has {gib(available)} GiB")
