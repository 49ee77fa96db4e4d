"""Command-line helpers shared by every entry point of the project (toy, sweep, bridge, transformer).

One-line usage errors (``error: … (see --help)``, exit status 2), integer lists such as seeds, and the
output-directory check that runs before anything is written.
"""

from __future__ import annotations

import argparse
import os

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
            if sep:
                a, b = int(lo), int(hi)
                require(a <= b, param, f"empty range {part!r}")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(param, f"expected integers like 7, 0-11 or 0,3,5 (got {text!r})") from None
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
