r"""The sweep's on-disk store: crash-safe chunk files, the ``sweep.h5`` index and ``summary.csv``.

Layout of ``OUT/``::

    sweep.json            the sweep (spec, thresholds, curve subsampling) and its id; written once
    chunks/cXXXXXXXXX_YYYYYYYYY.h5
                          one finished chunk (points X..Y of one static group), never modified:
        point (n,)                        global point indices
        t (n_t,)                          stored times (GD: step, flow: time), subsampled
        curves/<name> (n, n_t)            loss, mechanism_k_loss, competition
        summary/<field> (n,)              see toymodels.sweep.verdicts
    sweep.h5              the index, rewritten after every chunk:
        points/<axis> (N,)                mu1, mu2, alpha, seed, init_scale, reduced, method,
                                          clamps (indices, names in attrs), dims (N, V)
        summary/<field> (N,)              NaN (verdict −1) where a point is not done yet
        summary/done, summary/chunk, summary/row   which chunk file (and row in it) holds a point
        chunks/<name>                     HDF5 external link to chunks/<name>.h5
    summary.csv           one row per finished point

Crash safety: every file is written to a temporary name in the same directory and renamed into place
(``os.replace`` is atomic), so a reader or a resumed sweep sees either a whole file or none; a killed
sweep loses at most the chunks in flight. Chunk files carry the sweep id; a resumed sweep counts the
points of every valid chunk file as done (the index is derived data and is rebuilt from them).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from .._internal import atomic_write
from ..errors import ConfigError, require
from ..results import package_versions
from .spec import SweepSpec
from .verdicts import PENDING, SUMMARY_FIELDS, VERDICTS, VerdictThresholds

INDEX_FORMAT = "toymodels-sweep/1"
CHUNK_FORMAT = "toymodels-sweep-chunk/1"
CSV_COLUMNS = (
    "point",
    "mu1",
    "mu2",
    "alpha",
    "dims",
    "seed",
    "init_scale",
    "method",
    "reduced",
    "clamps",
) + SUMMARY_FIELDS


def remove_temporaries(out: str) -> None:
    """Delete temporary files a killed sweep left behind."""
    for pattern in (".tmp-*", os.path.join("chunks", ".tmp-*")):
        for path in glob.glob(os.path.join(out, pattern)):
            try:
                os.remove(path)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# sweep.json: the identity of a sweep
# ---------------------------------------------------------------------------------------------


def sweep_record(spec: SweepSpec, thresholds: VerdictThresholds, curve_points: int) -> dict[str, Any]:
    from dataclasses import asdict

    from .spec import spec_digest

    body = {"spec": spec.to_dict(), "thresholds": asdict(thresholds), "curve_points": int(curve_points)}
    return {"format": INDEX_FORMAT, "sweep_id": spec_digest(body), **body}


def claim_directory(out: str, record: Mapping[str, Any]) -> None:
    """Write ``OUT/sweep.json`` or check that the one there describes the same sweep."""
    path = os.path.join(out, "sweep.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
        require(
            old.get("sweep_id") == record["sweep_id"],
            "out",
            f"{out!r} holds a different sweep (id {old.get('sweep_id')}, this one {record['sweep_id']}); "
            "use another directory or delete it",
        )
        return

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)

    atomic_write(path, write, ".json")


def read_record(out: str) -> dict[str, Any]:
    with open(os.path.join(out, "sweep.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# Chunk files
# ---------------------------------------------------------------------------------------------


def chunk_name(idx: np.ndarray) -> str:
    return f"c{int(idx[0]):09d}_{int(idx[-1]):09d}"


def subsample_indices(n_times: int, curve_points: int) -> np.ndarray:
    """Indices of the stored times: all (``curve_points`` ≤ 0 or ≥ n_times) or ~evenly spaced
    incl. both ends."""
    if curve_points <= 0 or curve_points >= n_times:
        return np.arange(n_times)
    return np.unique(np.round(np.linspace(0, n_times - 1, curve_points)).astype(np.int64))


def write_chunk(
    out: str, sweep_id: str, idx: np.ndarray, t: np.ndarray, curves: Mapping[str, np.ndarray],
    summary: Mapping[str, np.ndarray], curve_points: int,
) -> str:  # fmt: skip
    """Write one finished chunk atomically; returns its name."""
    keep = subsample_indices(t.size, curve_points)
    name = chunk_name(idx)
    os.makedirs(os.path.join(out, "chunks"), exist_ok=True)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHUNK_FORMAT
            f.attrs["sweep_id"] = sweep_id
            f.create_dataset("point", data=np.asarray(idx, dtype=np.int64))
            f.create_dataset("t", data=t[keep])
            g = f.create_group("curves")
            for k, v in curves.items():
                g.create_dataset(
                    k, data=v[:, keep], chunks=True, compression="gzip", compression_opts=1, shuffle=True
                )
            s = f.create_group("summary")
            for k in SUMMARY_FIELDS:
                s.create_dataset(k, data=summary[k])

    atomic_write(os.path.join(out, "chunks", name + ".h5"), write, ".h5")
    return name


def read_chunk_summaries(out: str, sweep_id: str) -> dict[str, dict[str, np.ndarray]]:
    """Summaries of every valid chunk file of this sweep (name → {point, fields…})."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "chunks", "c*.h5"))):
        name = os.path.basename(path)[:-3]
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != CHUNK_FORMAT or f.attrs.get("sweep_id") != sweep_id:
                    continue
                d = {"point": f["point"][()]}
                for k in SUMMARY_FIELDS:
                    d[k] = f["summary"][k][()]
        except (OSError, KeyError):
            continue  # unreadable: not a finished chunk of ours
        found[name] = d
    return found


# ---------------------------------------------------------------------------------------------
# The index (sweep.h5) and summary.csv
# ---------------------------------------------------------------------------------------------


class SweepState:
    """In-memory summary of all points (what ``sweep.h5`` and ``summary.csv`` are written from)."""

    def __init__(self, spec: SweepSpec, record: Mapping[str, Any]):
        self.spec = spec
        self.record = dict(record)
        self.points = spec.points()
        n = spec.n_points
        self.summary = {k: np.full(n, np.nan) for k in SUMMARY_FIELDS}
        self.summary["verdict"] = np.full(n, PENDING, dtype=np.int8)
        self.summary["failed"] = np.zeros(n, dtype=bool)
        self.done = np.zeros(n, dtype=bool)
        self.chunk = np.full(n, -1, dtype=np.int64)
        self.row = np.full(n, -1, dtype=np.int64)
        self.chunk_names: list[str] = []

    def add(self, name: str, chunk: Mapping[str, np.ndarray]) -> int:
        """Record a finished chunk; points already done elsewhere are ignored. Returns new points."""
        idx = np.asarray(chunk["point"], dtype=np.int64)
        fresh = ~self.done[idx]
        if not fresh.any():
            return 0
        if name not in self.chunk_names:
            self.chunk_names.append(name)
        c = self.chunk_names.index(name)
        for k in SUMMARY_FIELDS:
            self.summary[k][idx[fresh]] = np.asarray(chunk[k])[fresh]
        self.done[idx[fresh]] = True
        self.chunk[idx[fresh]] = c
        self.row[idx[fresh]] = np.nonzero(fresh)[0]
        return int(fresh.sum())

    def write(self, out: str) -> None:
        """Rewrite ``sweep.h5`` and ``summary.csv`` atomically."""
        atomic_write(os.path.join(out, "sweep.h5"), self._write_index, ".h5")
        atomic_write(os.path.join(out, "summary.csv"), self._write_csv, ".csv")

    def _write_index(self, tmp: str) -> None:
        spec = self.spec
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = INDEX_FORMAT
            f.attrs["sweep_id"] = self.record["sweep_id"]
            f.attrs["record"] = json.dumps(self.record)
            f.attrs["versions"] = json.dumps(package_versions())
            f.attrs["n_points"] = spec.n_points
            f.attrs["n_done"] = int(self.done.sum())
            f.attrs["complete"] = bool(self.done.all())
            p = f.create_group("points")
            for k in ("mu1", "mu2", "alpha", "seed", "init_scale", "reduced", "method", "clamps", "dims"):
                p.create_dataset(k, data=self.points[k])
            p.attrs["vectors"] = json.dumps(list(spec.vectors))
            p.attrs["method_names"] = json.dumps([m.name for m in spec.methods])
            p.attrs["clamp_names"] = json.dumps([clamp_label(cs) for cs in spec.clamps])
            s = f.create_group("summary")
            for k in SUMMARY_FIELDS:
                s.create_dataset(k, data=self.summary[k])
            s.attrs["verdict_names"] = json.dumps(list(VERDICTS))
            s.create_dataset("done", data=self.done)
            s.create_dataset("chunk", data=self.chunk)
            s.create_dataset("row", data=self.row)
            s.attrs["chunk_names"] = json.dumps(self.chunk_names)
            g = f.create_group("chunks")
            for name in self.chunk_names:
                g[name] = h5py.ExternalLink(os.path.join("chunks", name + ".h5"), "/")

    def rows(self) -> Iterable[list[Any]]:
        """Rows of the summary table (finished points only), columns :data:`CSV_COLUMNS`."""
        pts, s = self.points, self.summary
        methods = [m.name for m in self.spec.methods]
        clamps = [clamp_label(cs) for cs in self.spec.clamps]
        for i in np.nonzero(self.done)[0]:
            row = [
                int(i), pts["mu1"][i], pts["mu2"][i], pts["alpha"][i],
                "x".join(str(int(x)) for x in pts["dims"][i]),
                int(pts["seed"][i]), pts["init_scale"][i], methods[pts["method"][i]], bool(pts["reduced"][i]),
                clamps[pts["clamps"][i]],
            ]  # fmt: skip
            for k in SUMMARY_FIELDS:
                v = s[k][i]
                if k == "verdict":
                    row.append(VERDICTS[int(v)])
                elif k == "failed":
                    row.append(bool(v))
                else:
                    row.append(repr(float(v)) if np.isfinite(v) else "nan")
            yield row

    def _write_csv(self, tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            w.writerows(self.rows())


def clamp_label(clamps) -> str:
    return "+".join(str(c) for c in clamps) or "none"


# ---------------------------------------------------------------------------------------------
# Reading a finished (or partial) sweep
# ---------------------------------------------------------------------------------------------


class SweepStore:
    """Read access to ``OUT/sweep.h5``: the points table, summaries and the curves of any point."""

    def __init__(self, out: str):
        self.out = out
        path = os.path.join(out, "sweep.h5")
        if not os.path.exists(path):
            raise ConfigError("out", f"no sweep store {path!r}")
        with h5py.File(path, "r") as f:
            require(f.attrs.get("format") == INDEX_FORMAT, "out", f"{path!r} is not a sweep store")
            self.record = json.loads(f.attrs["record"])
            self.points = {k: f["points"][k][()] for k in f["points"]}
            self.vectors = json.loads(f["points"].attrs["vectors"])
            self.method_names = json.loads(f["points"].attrs["method_names"])
            self.clamp_names = json.loads(f["points"].attrs["clamp_names"])
            self.summary = {k: f["summary"][k][()] for k in SUMMARY_FIELDS}
            self.done = f["summary"]["done"][()]
            self.chunk = f["summary"]["chunk"][()]
            self.row = f["summary"]["row"][()]
            self.chunk_names = json.loads(f["summary"].attrs["chunk_names"])
        self.spec = SweepSpec.from_dict(self.record["spec"])

    @property
    def n_points(self) -> int:
        return int(self.done.size)

    def table(self) -> dict[str, np.ndarray]:
        """Points and summaries as columns (``dim_a``, ``dim_b``, … for the dimensions)."""
        out = {k: v for k, v in self.points.items() if k != "dims"}
        for i, v in enumerate(self.vectors):
            out[f"dim_{v}"] = self.points["dims"][:, i]
        out.update(self.summary)
        out["done"] = self.done
        return out

    def curves(self, point: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Stored (subsampled) times and curves of one finished point."""
        require(0 <= point < self.n_points, "points", f"point {point} is outside 0..{self.n_points - 1}")
        require(bool(self.done[point]), "points", f"point {point} is not finished yet")
        path = os.path.join(self.out, "chunks", self.chunk_names[self.chunk[point]] + ".h5")
        with h5py.File(path, "r") as f:
            r = int(self.row[point])
            return f["t"][()], {k: f["curves"][k][r] for k in f["curves"]}


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(io.StringIO(f.read())))


__all__ = [
    "CSV_COLUMNS",
    "SweepState",
    "SweepStore",
    "atomic_write",
    "chunk_name",
    "claim_directory",
    "read_chunk_summaries",
    "read_record",
    "remove_temporaries",
    "subsample_indices",
    "sweep_record",
    "write_chunk",
]
