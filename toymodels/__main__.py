from ._jax_cache import enable_persistent_cache
from .cli import main

enable_persistent_cache()
raise SystemExit(main())
