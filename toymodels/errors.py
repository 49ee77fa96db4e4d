"""User-facing configuration errors.

Every check of user input raises :class:`ConfigError`, which names the offending parameter so a CLI
can print one line (``error: --mu1: must be >= 0 (got -1.0)``) and exit with status 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Invalid user input. ``param`` is the offending parameter (as a user would write it)."""

    def __init__(self, param: str, message: str):
        self.param = param
        self.message = message
        super().__init__(f"{param}: {message}")

    @property
    def flag(self) -> str:
        """The parameter as a command-line flag (``init_scale`` → ``--init-scale``)."""
        return "--" + self.param.replace("_", "-")

    def cli_line(self) -> str:
        """The one-line CLI error: ``error: --flag: reason``."""
        return f"error: {self.flag}: {self.message}"


def require(condition: bool, param: str, message: str) -> None:
    """Raise :class:`ConfigError` for ``param`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(param, message)
