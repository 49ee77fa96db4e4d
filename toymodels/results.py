"""Simulation results (times × measures × runs) and their HDF5 layout.

HDF5 layout (stable; ``h5py`` or any HDF5 reader):

=============================  =====================  ==========================================
dataset                        shape                  meaning
=============================  =====================  ==========================================
``t``                          (n_times,)             GD: step index; flow: flow time
``loss``                       (n_runs, n_times)      total loss
``mechanism_1_loss``, …        (n_runs, n_times)      each mechanism's loss L_k (without μ_k)
``competition``                (n_runs, n_times)      unweighted competition term C
``grad_norm``, ``norm_a``, …   (n_runs, n_times)      further measures (:mod:`toymodels.measures`)
``seed``                       (n_runs,)              seed of each run (−1 for explicit vectors)
``mu``                         (n_runs, n_mech)       μ_k of each run
``alpha``                      (n_runs,)              α of each run
``stop_step`` / ``stop_time``  (n_runs,)              GD: first step with loss < stop loss (−1:
                                                      never); flow: stop time (NaN: never)
``diverged_step`` /            (n_runs,)              GD: step at which the loss became non-finite
``failure_time``                                      (−1: never); flow: time the solver gave up
``targets/x``, ``init/x``,     (n_runs, dim)          full model: vectors; reduced model: groups
``final/x``                                           of ``P_x``, ``Q_x``, ``R_x`` (n_runs,)
=============================  =====================  ==========================================

Values after a stop or divergence are NaN. Root attributes: ``config`` (JSON: model, method,
clamps, precision, …), ``versions`` (JSON: package versions), ``format`` (layout version).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import h5py
import numpy as np

from ._internal import atomic_write

FORMAT_VERSION = "toymodels-result/1"
_RESERVED = {"t", "seed", "mu", "alpha", "stop_step", "stop_time", "diverged_step", "failure_time"}


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    # looked up once per process (reading the installed metadata costs ~5 ms per package)
    out = {}
    for pkg in ("icl-coopetition", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "sympy", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclasses.dataclass
class ToyResult:
    """Results of a batch of toy-model runs.

    Attributes:
        t: recorded times (GD: steps; flow: flow time), shape (n_times,).
        measures: name → array (n_runs, n_times).
        labels: per-run labels: ``seed`` (n_runs,), ``mu`` (n_runs, n_mech), ``alpha`` (n_runs,), …
        stop: GD: stop step per run (−1 never); flow: stop time (NaN never).
        failure: GD: divergence step (−1 never); flow: solver failure time (NaN never).
        vectors: optional groups (``targets``, ``init``, ``final``) of name → array.
        config: all parameters (JSON-serialisable).
        versions: package versions.
    """

    t: np.ndarray
    measures: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    stop: np.ndarray
    failure: np.ndarray
    vectors: dict[str, dict[str, np.ndarray]]
    config: dict[str, Any]
    versions: dict[str, str] = dataclasses.field(default_factory=package_versions)

    def __post_init__(self) -> None:
        self.normalise_config()

    def normalise_config(self) -> None:
        """Keep ``config`` in JSON types (lists, not tuples) so it round-trips through HDF5 unchanged."""
        self.config = json.loads(json.dumps(self.config))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_trajectory(
        cls,
        traj,
        *,
        model,
        method,
        lp,
        clamps,
        precision: str,
        run_labels: Mapping[str, Any] | None,
        vectors: Mapping[str, Mapping[str, Any]],
        reduced: bool,
        extra_config: Mapping[str, Any] | None = None,
    ) -> ToyResult:
        measures = {k: np.asarray(v, dtype=np.float64) for k, v in traj.measures.items()}
        n_runs = next(iter(measures.values())).shape[0]
        labels = {
            "seed": np.full(n_runs, -1, dtype=np.int64),
            "mu": np.asarray(lp.mu, dtype=np.float64),
            "alpha": np.asarray(lp.alpha, dtype=np.float64),
        }
        for k, v in (run_labels or {}).items():
            labels[k] = np.broadcast_to(np.asarray(v), (n_runs,) + np.shape(v)[1:]).copy()
        method_cfg = dataclasses.asdict(method)
        config = {
            "model": model.to_dict(),
            "method": method.name,
            "method_config": method_cfg,
            "clamps": [str(c) for c in clamps],
            "precision": precision,
            "reduced": reduced,
        }
        config.update(extra_config or {})
        is_gd = method.name == "gd"
        return cls(
            t=np.asarray(method.times, dtype=np.float64),
            measures=measures,
            labels=labels,
            stop=np.asarray(traj.stop, dtype=np.int64 if is_gd else np.float64),
            failure=np.asarray(traj.failure, dtype=np.int64 if is_gd else np.float64),
            vectors={
                g: {k: np.asarray(v, dtype=np.float64) for k, v in d.items()} for g, d in vectors.items()
            },
            config=config,
        )

    # ------------------------------------------------------------------ convenience
    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def n_runs(self) -> int:
        return next(iter(self.measures.values())).shape[0]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.measures[name]

    def failures(self) -> list[str]:
        """Human-readable lines for runs that diverged (GD) or whose solver failed (flow)."""
        lines = []
        for i in range(self.n_runs):
            label = f"seed {self.labels['seed'][i]}" if self.labels["seed"][i] >= 0 else f"run {i}"
            if self.method == "gd" and self.failure[i] >= 0:
                lines.append(f"{label} diverged at step {int(self.failure[i])} (non-finite loss)")
            elif self.method == "flow" and np.isfinite(self.failure[i]):
                lines.append(
                    f"{label}: the ODE solver gave up at t = {self.failure[i]:.6g} "
                    "(step budget or non-finite state)"
                )
        return lines

    # ------------------------------------------------------------------ HDF5
    def save(self, path: str | os.PathLike) -> None:
        """Write to HDF5 atomically (temporary file in the same directory, then rename)."""
        atomic_write(path, self._write_hdf5, suffix=".h5")

    def _write_hdf5(self, path: str) -> None:
        with h5py.File(path, "w") as f:
            f.attrs["format"] = FORMAT_VERSION
            f.attrs["config"] = json.dumps(self.config)
            f.attrs["versions"] = json.dumps(self.versions)
            f.create_dataset("t", data=self.t)
            for name, arr in self.measures.items():
                f.create_dataset(
                    name, data=arr, chunks=True, compression="gzip", compression_opts=1, shuffle=True
                )
            for name, arr in self.labels.items():
                f.create_dataset(name, data=arr)
            if self.method == "gd":
                f.create_dataset("stop_step", data=self.stop)
                f.create_dataset("diverged_step", data=self.failure)
            else:
                f.create_dataset("stop_time", data=self.stop)
                f.create_dataset("failure_time", data=self.failure)
            for group, d in self.vectors.items():
                g = f.create_group(group)
                for name, arr in d.items():
                    g.create_dataset(name, data=arr)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ToyResult:
        """Read a result written by :meth:`save`."""
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["config"])
            versions = json.loads(f.attrs["versions"])
            is_gd = config["method"] == "gd"
            measures, labels, vectors = {}, {}, {}
            for name, obj in f.items():
                if isinstance(obj, h5py.Group):
                    vectors[name] = {k: obj[k][()] for k in obj}
                elif name in ("seed", "mu", "alpha") or (name not in _RESERVED and obj.ndim == 1):
                    labels[name] = obj[()]
                elif name not in _RESERVED:
                    measures[name] = obj[()]
            return cls(
                t=f["t"][()],
                measures=measures,
                labels=labels,
                stop=f["stop_step" if is_gd else "stop_time"][()],
                failure=f["diverged_step" if is_gd else "failure_time"][()],
                vectors=vectors,
                config=config,
                versions=versions,
            )
