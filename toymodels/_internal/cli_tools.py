"""Command-line helpers shared by every entry point of the project (toy, sweep, bridge, transformer).

One-line usage errors (``error: … (see --help)``, exit status 2), :class:`ConfigError` lines with
flags or positional names (:func:`error_line`), integer lists such as seeds, numbers (:func:`parse_int`,
:func:`parse_float`), the output-directory checks that run before anything is written
(:func:`check_output_dir` creates nothing, :func:`prepare_output_dir` creates the directory) and the
memory refusal (:func:`require_memory`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Collection

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


def check_output_dir(path: str, param: str = "out") -> None:
    """Check, creating nothing, that ``path`` is a writable directory or can be created as one (its
    nearest existing ancestor is a writable directory); :class:`ConfigError` naming ``param``."""
    require(bool(path), param, "empty path")
    if os.path.lexists(path):
        require(os.path.isdir(path), param, f"{path!r} exists and is not a directory")
        require(os.access(path, os.W_OK | os.X_OK), param, f"directory {path!r} is not writable")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    require(os.path.isdir(parent), param, f"cannot create {path!r}: {parent!r} is not a directory")
    writable = os.access(parent, os.W_OK | os.X_OK)
    require(writable, param, f"cannot create {path!r}: {parent!r} is not writable")


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
