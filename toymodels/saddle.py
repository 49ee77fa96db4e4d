"""``python -m toymodels.saddle``: the original name of ``python -m toymodels.analysis`` (same flags, output).

The analysis itself lives in :mod:`toymodels.analysis` (``saddle``, ``fixed_points``, ``phases``,
``escape``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .analysis.cli import main as _analysis_main


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m toymodels.analysis`` under its original name."""
    return _analysis_main(argv, prog="python -m toymodels.saddle")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
