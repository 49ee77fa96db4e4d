"""``python -m toymodels.sweep`` (see :mod:`toymodels.sweep.cli`)."""

from .._internal import enable_persistent_cache
from .cli import main

enable_persistent_cache()
raise SystemExit(main())
