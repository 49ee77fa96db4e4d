"""What the test files share: the environment of CLI subprocesses and tiny configurations."""

from __future__ import annotations

import os

import pytest

CLI_ENV: dict[str, str] = {
    **os.environ,
    "MPLBACKEND": "Agg",
    "ICL_COOPETITION_CACHE_DIR": "off",  # measure nothing from an earlier run's compilation cache
}
"""Environment for ``python -m …`` subprocesses: headless matplotlib, no persistent XLA cache."""

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    """After each test module, drop JAX's compiled programs (``jax.clear_caches``).

    Every CPU executable holds ≈ 19 memory mappings, and jitted functions defined at module level
    (with static settings) keep theirs for the life of the process: the whole suite in one process
    reached Linux's ``vm.max_map_count`` (65 530) and XLA's compiler segfaulted while mapping the
    next program (CI, exit 139, at ≈ 95 % of the suite; 41 000 mappings measured at 74 %)."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """:data:`CLI_ENV` (a copy per test session)."""
    return dict(CLI_ENV)


@pytest.fixture(scope="session")
def single_thread_env(cli_env) -> dict[str, str]:
    """:data:`CLI_ENV` with single-threaded XLA (for subprocesses whose timing or kill point matters)."""
    return {**cli_env, "XLA_FLAGS": SINGLE_THREAD_XLA}


def _read_log_arrays(path) -> dict:
    """Every dataset of an HDF5 log as numpy arrays, plus its ``config`` attribute (``@config``)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
        out["@config"] = f.attrs["config"]
    return out


@pytest.fixture(scope="session")
def read_all():
    """``read_all(path)``: every dataset of a log and its config (to compare two runs' logs)."""
    return _read_log_arrays


@pytest.fixture(scope="session")
def tiny_config():
    """Factory of the ``tiny`` transformer preset with overrides: trains in seconds."""
    from transformer import preset_config

    def make(**overrides):
        return preset_config("tiny", **overrides)

    return make
