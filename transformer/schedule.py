"""When a run evaluates and which of its checkpoints it keeps: pure functions of the configuration.

Evaluations are numbered from 1 in the order they happen (evaluation ``e`` is the one after which
``e`` evaluations are done; its checkpoint directory is ``ckpt-<e>``); evaluation 1 is at step 0.

**Evaluation schedule** (:func:`eval_steps`, :func:`eval_schedule`): the step counts at which the
evaluations happen, strictly increasing, first 0, last ``n_steps``.

* ``eval_schedule=None``: ``0, E, 2E, …`` below ``n_steps`` (``E = eval_every``), then ``n_steps``;
* ``"log:N"``: 0, the steps ``round(n_steps^(j/(N−1)))`` for ``j = 0 … N−1`` (a geometric
  progression from step 1 to ``n_steps``, dense early like the original study's ``eval_sched``;
  rounding merges the first few, so there are about N) and ``n_steps``; ``N = 1``: 0 and
  ``n_steps``.

**Checkpoint history** (:func:`parse_keep`, :func:`select_kept`, :func:`kept_evaluations`): which
evaluations keep their checkpoint after later ones are written (``keep_checkpoints``):

* ``all``: every evaluation (including the one at step 0);
* ``none``: none (only the latest checkpoint survives);
* ``every:K``: the evaluations whose number ``e`` is a multiple of ``K`` (the convention of
  ``checkpoint_every``);
* ``log:N``: with ``s_1 < … < s_M`` the sequences seen at the evaluations after step 0, the first
  evaluation at or after each of the N targets ``s_1 (s_M / s_1)^(j/(N−1))``, ``j = 0 … N−1``
  (always the first evaluation after 0 and the last; targets landing on the same evaluation merge,
  so about N); ``N = 1``: the last only;
* ``S1,S2,…``: sequences seen; the first evaluation at or after each value (0 = the initial model).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from typing import Protocol

from toymodels.errors import ConfigError


class Scheduled(Protocol):
    """The fields of a :class:`~transformer.config.TrainConfig` the schedules read (this module
    comes before the config in the import order: the config validates with its parsers)."""

    n_steps: int
    batch_size: int
    eval_every: int
    eval_schedule: str | None
    keep_checkpoints: str


def _count(text: str, param: str, what: str, minimum: int) -> int:
    """``text`` as an integer ≥ ``minimum`` (``2e6`` notation allowed when integral)."""
    try:
        value = float(text) if "e" in text.lower() else int(text)
    except (ValueError, OverflowError):
        raise ConfigError(param, f"cannot parse {text!r} as {what}") from None
    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise ConfigError(param, f"{what} must be an integer >= {minimum}, got {text!r}")
    return int(value)


def parse_eval_schedule(text: str | None) -> int | None:
    """``N`` of ``"log:N"`` (N ≥ 1), or ``None`` for ``None``; :class:`ConfigError` otherwise."""
    if text is None:
        return None
    mode, _, arg = text.partition(":")
    if mode != "log" or not arg:
        raise ConfigError("eval_schedule", f"must be 'log:N' (or none), got {text!r}")
    return _count(arg, "eval_schedule", "N of log:N", 1)


def eval_steps(n_steps: int, eval_every: int, schedule: str | None = None) -> list[int]:
    """Step counts of the evaluations (see the module docstring)."""
    n_log = parse_eval_schedule(schedule)
    if n_log is None:
        return list(range(0, n_steps, eval_every)) + [n_steps]
    points = {0, n_steps}
    if n_log > 1:
        points |= {min(n_steps, max(1, math.floor(n_steps ** (j / (n_log - 1)) + 0.5))) for j in range(n_log)}
    return sorted(points)


def eval_schedule(cfg: Scheduled) -> list[int]:
    """Step counts at which ``cfg``'s evaluations happen (:func:`eval_steps` of its fields)."""
    return eval_steps(cfg.n_steps, cfg.eval_every, cfg.eval_schedule)


@dataclasses.dataclass(frozen=True)
class KeepSpec:
    """A parsed ``keep_checkpoints``: ``mode`` ∈ {all, none, every, log, list}; ``n`` = K of
    ``every:K`` or N of ``log:N``; ``values`` = the sequences-seen list of ``list``."""

    mode: str
    n: int = 0
    values: tuple[int, ...] = ()


def parse_keep(text: str) -> KeepSpec:
    """Parse ``all | none | every:K | log:N | S1,S2,…``; :class:`ConfigError` (``keep_checkpoints``)."""
    param = "keep_checkpoints"
    text = text.strip()
    if text in ("all", "none"):
        return KeepSpec(text)
    mode, sep, arg = text.partition(":")
    if sep:
        if mode not in ("every", "log") or not arg:
            raise ConfigError(param, f"must be all, none, every:K, log:N or S1,S2,...; got {text!r}")
        letter = "K" if mode == "every" else "N"
        return KeepSpec(mode, _count(arg, param, f"{letter} of {mode}:{letter}", 1))
    parts = [p.strip() for p in text.split(",")]
    if not text or not all(p and p[0].isdigit() for p in parts):
        raise ConfigError(param, f"must be all, none, every:K, log:N or S1,S2,...; got {text!r}")
    return KeepSpec("list", values=tuple(_count(p, param, "sequences seen", 0) for p in parts))


def _first_at_or_after(seen: Sequence[int], value: float) -> int | None:
    """Number (1-based) of the first evaluation with ``seen >= value``; ``None`` if there is none."""
    i = bisect.bisect_left(seen, value)
    return i + 1 if i < len(seen) else None


def select_kept(seen: Sequence[int], keep: str | KeepSpec) -> frozenset[int]:
    """Numbers (1-based) of the evaluations whose checkpoints are kept, given the sequences seen at
    every evaluation of the run (``seen``, increasing, ``seen[0] = 0``) — see the module docstring."""
    spec = parse_keep(keep) if isinstance(keep, str) else keep
    m = len(seen)
    if spec.mode == "all":
        return frozenset(range(1, m + 1))
    if spec.mode == "none":
        return frozenset()
    if spec.mode == "every":
        return frozenset(range(spec.n, m + 1, spec.n))
    if spec.mode == "list":
        found = (_first_at_or_after(seen, v) for v in spec.values)
        return frozenset(e for e in found if e is not None)
    # log:N over the evaluations after step 0
    later = [e for e in range(1, m + 1) if seen[e - 1] > 0]
    if not later:
        return frozenset()
    first, last = later[0], later[-1]
    if spec.n == 1:
        return frozenset({last})
    lo, hi = math.log(seen[first - 1]), math.log(seen[last - 1])
    kept = {first, last}
    for j in range(1, spec.n - 1):
        target = math.exp(lo + (hi - lo) * j / (spec.n - 1))
        e = _first_at_or_after(seen, target * (1 - 1e-9))  # a target on an evaluation selects it
        kept.add(last if e is None else e)
    return frozenset(kept)


def kept_evaluations(cfg: Scheduled) -> frozenset[int]:
    """Numbers of ``cfg``'s evaluations whose checkpoints are kept (``keep_checkpoints``)."""
    seen = [step * cfg.batch_size for step in eval_schedule(cfg)]
    return select_kept(seen, cfg.keep_checkpoints)


__all__ = [
    "KeepSpec",
    "Scheduled",
    "eval_schedule",
    "eval_steps",
    "kept_evaluations",
    "parse_eval_schedule",
    "parse_keep",
    "select_kept",
]
