r"""Interventions as data: primitive :class:`Edit`\ s and named :class:`Intervention`\ s.

An :class:`Edit` changes one hook point (:mod:`transformer.opto.points`) at chosen layers, heads and
token positions, with one of the primitives (``x`` the activation, ``M`` the selection mask):

=================  ==============================================================================
``scale``          ``x ← value · x`` on ``M`` (``value = 0``: zero-ablation)
``mean``           ``x ← mean over the batch of x`` on ``M`` (mean-ablation)
``set``            ``x ← value`` on ``M``, or ``x ← array`` (broadcast) when ``array`` is given
``reference``      ``x ← x_ref`` on ``M``, its value in a *reference pass* of the same model on the
                   same sequences without interventions, or with only the ``in_reference`` ones
                   (pattern/value/key/query-preserving ablations)
``mix``            ``pattern ← (1 − value) · pattern + value · target`` on ``M``, ``target`` one of
                   :data:`~transformer.opto.targets.TARGETS` (``prev_token``, ``induction``,
                   ``match`` with ``temperature``, ``self``)
``temperature``    ``scores ← scores / value`` on ``M``
``copy_scores``    ``logits ← −10⁹``, then the logit of context label ``l_i`` ← the reference pass's
                   score of head ``heads[0]`` of layer ``layers[0]`` from the query to label token
                   ``i`` (the original study's "perfect copy from a head's pattern")
``embedding``      ``x_t ← e_{max(t − value, 0)}`` on ``M`` for a residual-stream point, ``e`` the
                   embedded tokens of the same pass (``blocks.0.resid_pre`` before any edit) and
                   ``value`` a whole shift ≥ 0 (0: the blocks below are bypassed; 1: each token
                   carries its previous token's embedding)
=================  ==============================================================================

At a point, ``reference`` edits apply first (as in the original code, other manipulations then
override the preserved values), the rest in the order given. Gradients flow through the edited
forward pass (and through the reference pass's values).

The reference pass is the model on the same sequences with the edits marked ``in_reference``
(none: the unmodified model). Such edits change what every ``reference``/``copy_scores`` edit of
the same set reads — as the original's "Layer 1 clamp", whose patterns come from a second pass
with the previous-token embeddings in place of Layer 1's output — and need one of them to read it.

Named compositions of edits (the original study's catalogue) are in
:mod:`transformer.opto.catalogue`; ``TrainConfig.opto`` holds a tuple of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from toymodels.errors import ConfigError, require

from .points import GLOBAL_POINTS, HEAD_POINTS, KEY_WORDS, LAYER_POINTS, PATTERN_POINTS, check_positions
from .targets import TARGETS

OPS: tuple[str, ...] = ("scale", "mean", "set", "reference", "mix", "temperature", "copy_scores", "embedding")
RESIDUAL_POINTS = ("resid_pre", "resid_mid", "resid_post")
"""Points on the residual stream (what ``embedding`` edits)."""
NO_ATTENTION = -1e9
"""The score given to forbidden keys (as the original code; the softmax weight is then 0)."""


@dataclasses.dataclass(frozen=True)
class Edit:
    """One primitive change of one hook point (see the module docstring for the ops).

    ``point``: a block point (``attn.pattern``, ``resid_post``, …; ``layers`` selects the blocks,
    ``()`` = all) or a global one (``embed.label``, ``logits``). ``heads`` (``()`` = all) for points
    with a head axis; ``queries``/``keys`` select token positions. ``value``: the factor, constant,
    mixing weight, temperature or shift; ``target`` and ``temperature`` for ``mix``; ``array`` for
    ``set``. ``in_reference``: the edit applies in the reference pass, not in the edited one.
    """

    point: str
    op: str
    layers: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()
    queries: str = "all"
    keys: str = "all"
    value: float = 0.0
    target: str = ""
    temperature: float = 0.0
    array: tuple | None = None
    in_reference: bool = False

    def __post_init__(self) -> None:
        require(
            self.point in LAYER_POINTS or self.point in GLOBAL_POINTS,
            "opto",
            f"unknown hook point {self.point!r} (block points: {', '.join(LAYER_POINTS)}; "
            f"others: {', '.join(GLOBAL_POINTS)})",
        )
        require(self.op in OPS, "opto", f"unknown edit op {self.op!r} (one of {', '.join(OPS)})")
        source = self.op == "copy_scores"  # its layer and head name the source of the scores
        require(
            source or not (self.heads and self.point not in HEAD_POINTS),
            "opto",
            f"{self.point!r} has no head axis (heads={list(self.heads)})",
        )
        require(
            source or not (self.layers and self.point in GLOBAL_POINTS),
            "opto",
            f"{self.point!r} is not a block point (layers={list(self.layers)})",
        )
        check_positions(self.queries, "opto")
        check_positions(self.keys, "opto", KEY_WORDS)
        require(
            self.keys == "all" or self.point in PATTERN_POINTS,
            "opto",
            f"keys= applies to attn.scores/attn.pattern, not {self.point!r}",
        )
        require(math.isfinite(self.value), "opto", f"value must be finite (got {self.value})")
        if self.op in ("mix", "temperature"):
            require(self.point in PATTERN_POINTS, "opto", f"{self.op!r} edits attn.pattern/attn.scores")
        if self.op == "mix":
            require(self.point == "attn.pattern", "opto", "mix edits attn.pattern")
            require(
                self.target in TARGETS,
                "opto",
                f"unknown target pattern {self.target!r} (one of {', '.join(TARGETS)})",
            )
            require(0.0 <= self.value <= 1.0, "opto", f"mixing strength must be in [0, 1] (got {self.value})")
            require(self.temperature >= 0, "opto", f"temperature must be >= 0 (got {self.temperature})")
        if self.op == "temperature":
            require(self.point == "attn.scores", "opto", "temperature edits attn.scores")
            require(self.value > 0, "opto", f"temperature must be > 0 (got {self.value})")
        if self.op == "copy_scores":
            require(self.point == "logits", "opto", "copy_scores edits the logits")
            require(
                len(self.layers) == 1 and len(self.heads) == 1,
                "opto",
                "copy_scores needs exactly one layer and one head",
            )
        if self.op == "embedding":
            require(
                self.point in RESIDUAL_POINTS,
                "opto",
                f"embedding edits the residual stream ({', '.join(RESIDUAL_POINTS)}), not {self.point!r}",
            )
            require(
                self.value >= 0 and float(self.value).is_integer(),
                "opto",
                f"embedding: the shift must be a whole number >= 0 (got {self.value})",
            )
        require(
            not (self.in_reference and self.op in ("reference", "copy_scores")),
            "opto",
            f"{self.op!r} reads the reference pass and cannot be applied in it",
        )
        require(
            isinstance(self.in_reference, bool),
            "opto",
            f"in_reference must be true or false (got {self.in_reference!r})",
        )
        if self.op == "set" and self.array is not None:
            object.__setattr__(self, "array", _freeze(self.array))

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Edit:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        require(not unknown, "opto", f"unknown edit field {unknown[0] if unknown else ''!r}")
        require("point" in d and "op" in d, "opto", "an edit needs 'point' and 'op'")
        d = dict(d)
        for name in ("layers", "heads"):
            if name in d:
                d[name] = int_tuple(d[name], name)
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError("opto", f"bad edit {dict(d)}: {e}") from None


def _freeze(a):
    return tuple(_freeze(x) for x in a) if isinstance(a, (list, tuple)) else float(a)


def int_tuple(v, name: str) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,)
    try:
        return tuple(int(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError("opto", f"{name}: expected integers (got {v!r})") from None


__all__ = ["NO_ATTENTION", "OPS", "RESIDUAL_POINTS", "Edit"]
