"""``python -m toymodels.analysis`` (see :mod:`toymodels.analysis.cli`)."""

from .cli import main

raise SystemExit(main())
