"""Named interventions: the original study's ``opto.py`` catalogue as compositions of edits.

An :class:`Intervention` is a named entry of :data:`CATALOGUE` with its parameters (``layer``,
``heads``, ``strength``, ``temperature``, ``only_labels``), or ``name="edits"`` with explicit
:class:`~transformer.opto.spec.Edit` primitives. Frozen, hashable, JSON round-trip; the text form
``NAME:key=value,...`` is the command line's (:func:`parse_opto`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from toymodels.errors import ConfigError, require

from .spec import NO_ATTENTION, Edit, int_tuple

# ----------------------------------------------------------------------------------------------
# Named interventions
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Intervention:
    """A named intervention of :data:`CATALOGUE` with its parameters, or ``name="edits"``.

    ``layer`` (0-based; ``None`` = the intervention's default layer), ``heads`` (``()`` = all),
    ``strength`` in [0, 1], ``temperature``, ``only_labels``: as each entry of :data:`CATALOGUE`
    says. :meth:`expand` gives the primitive edits for a model of a given depth and width.
    """

    name: str
    layer: int | None = None
    heads: tuple[int, ...] = ()
    strength: float = 1.0
    temperature: float | None = None
    only_labels: bool = False
    edits: tuple[Edit, ...] = ()

    def __post_init__(self) -> None:
        require(
            self.name in CATALOGUE or self.name == "edits",
            "opto",
            f"unknown intervention {self.name!r} (one of {', '.join(CATALOGUE)}, edits)",
        )
        require(self.name != "edits" or self.edits, "opto", "'edits' needs a list of edits")
        require(self.name == "edits" or not self.edits, "opto", f"{self.name}: takes no 'edits'")
        require(
            math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0,
            "opto",
            f"{self.name}: strength must be in [0, 1] (got {self.strength})",
        )
        if self.temperature is not None:
            require(
                math.isfinite(self.temperature) and self.temperature >= 0,
                "opto",
                f"{self.name}: temperature must be finite and >= 0 (got {self.temperature})",
            )
        require(len(set(self.heads)) == len(self.heads), "opto", f"{self.name}: repeated heads {self.heads}")

    def check(self, depth: int, n_heads: int) -> None:
        """:class:`ConfigError` if a layer or head is out of range for the model."""
        if self.layer is not None:
            require(
                0 <= self.layer < depth,
                "opto",
                f"{self.name}: layer {self.layer} out of range (the model has {depth} layers, 0-based)",
            )
        for h in self.heads:
            require(
                0 <= h < n_heads, "opto", f"{self.name}: head {h} out of range ({n_heads} heads, 0-based)"
            )
        for e in self.edits:
            for layer in e.layers:
                require(0 <= layer < depth, "opto", f"edits: layer {layer} out of range ({depth} layers)")
            for h in e.heads:
                require(0 <= h < n_heads, "opto", f"edits: head {h} out of range ({n_heads} heads)")
        self.expand(depth, n_heads)

    def expand(self, depth: int, n_heads: int) -> tuple[Edit, ...]:
        """The primitive edits of this intervention for a model of ``depth`` layers."""
        if self.name == "edits":
            return self.edits
        entry = CATALOGUE[self.name]
        layer = self.layer if self.layer is not None else entry.default_layer(depth)
        if entry.needs_heads:
            require(len(self.heads) > 0, "opto", f"{self.name}: name the heads (heads=0|3)")
        if entry.one_head:
            require(len(self.heads) == 1, "opto",
                    f"{self.name}: give exactly one head (got {list(self.heads)})")
        if entry.needs_temperature:
            require(self.temperature is not None and self.temperature > 0, "opto",
                    f"{self.name}: give temperature > 0")
        return entry.build(self, layer, self.heads, depth)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "name" and v != f.default:
                out[f.name] = [e.to_dict() for e in v] if f.name == "edits" else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Intervention:
        require(isinstance(d, Mapping), "opto", f"an intervention is a JSON object (got {d!r})")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        require(not unknown, "opto", f"unknown intervention field {unknown[0] if unknown else ''!r}")
        require("name" in d, "opto", "an intervention needs a 'name'")
        d = dict(d)
        if "heads" in d:
            d["heads"] = int_tuple(d["heads"], "heads")
        if "edits" in d:
            require(isinstance(d["edits"], list), "opto", "'edits' must be a list of objects")
            d["edits"] = tuple(Edit.from_dict(e) for e in d["edits"])
        for key in ("strength", "temperature"):
            if key in d and d[key] is not None:
                try:
                    d[key] = float(d[key])
                except (TypeError, ValueError):
                    raise ConfigError("opto", f"{key}: not a number ({d[key]!r})") from None
        if "layer" in d and d["layer"] is not None:
            d["layer"] = int_tuple(d["layer"], "layer")[0]
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError("opto", f"bad intervention {dict(d)}: {e}") from None


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """How a named intervention becomes edits; ``maths`` is its one-line definition."""

    maths: str
    build: Any  # (intervention, layer, heads, depth) -> tuple[Edit, ...]
    default: str = "first"  # default layer: first | last | all
    needs_heads: bool = False
    one_head: bool = False
    needs_temperature: bool = False

    def default_layer(self, depth: int) -> int | None:
        return {"first": 0, "last": depth - 1, "all": None}[self.default]


def _layers(layer: int | None) -> tuple[int, ...]:
    return () if layer is None else (layer,)


def _rows(iv: Intervention) -> str:
    return "labels" if iv.only_labels else "all"


def _preserve(point: str) -> CatalogueEntry:
    return CatalogueEntry(
        f"{point} of every head (of ``layer`` if given) ← its value in the reference pass",
        lambda iv, layer, heads, depth: (Edit(point, "reference", _layers(layer), heads),),
        default="all",
    )


def _perfect_prev_token_input(layer: int, heads: tuple[int, ...]) -> tuple[Edit, ...]:
    require(layer >= 1, "opto", f"perfect_prev_token_input: layer must be >= 1 (got {layer}); it "
            "replaces the output of the blocks below it")
    return (
        Edit("resid_pre", "embedding", (layer,), value=0.0, in_reference=True),
        Edit("resid_pre", "embedding", (layer,), queries="context", value=1.0, in_reference=True),
        Edit("attn.scores", "reference", (layer,), heads),
        Edit("resid_pre", "embedding", (layer,), value=0.0),
    )


CATALOGUE: dict[str, CatalogueEntry] = {
    "ablate_heads": CatalogueEntry(
        "v_h ← 0 for the heads (all tokens): the heads write nothing",
        lambda iv, layer, heads, depth: (Edit("attn.v", "scale", (layer,), heads, value=0.0),),
        needs_heads=True,
    ),
    "ablate_embedding": CatalogueEntry(
        "exemplar and label token embeddings ← 0 (positions kept); with the preserve_* "
        "interventions it removes the direct embedding → unembedding path",
        lambda iv, layer, heads, depth: (
            Edit("embed.exemplar", "scale", value=0.0),
            Edit("embed.label", "scale", value=0.0),
        ),
    ),
    "prev_token_heads": CatalogueEntry(
        "pattern ← (1 − s)·pattern + s·P, P[t, t−1] = 1 (token 0 attends to itself); on label "
        "tokens only with only_labels",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.pattern",
                "mix",
                (layer,),
                heads,
                queries=_rows(iv),
                target="prev_token",
                value=iv.strength,
            ),
        ),
        needs_heads=True,
    ),
    "disallow_prev_token_heads": CatalogueEntry(
        "scores[t, t−1] ← −10⁹ (no attention to the previous token; label tokens only with only_labels)",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.scores", "set", (layer,), heads, queries=_rows(iv), keys="previous", value=NO_ATTENTION
            ),
        ),
        needs_heads=True,
    ),
    "induction_heads": CatalogueEntry(
        "query row ← (1 − s)·pattern + s·I, I = 1 on the label tokens whose exemplar has the "
        "query's class (shared equally), 0 elsewhere",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.pattern", "mix", (layer,), heads, queries="query", target="induction", value=iv.strength
            ),
        ),
        default="last",
        needs_heads=True,
    ),
    "match_heads": CatalogueEntry(
        "query row ← (1 − s)·pattern + s·M, M on label token i = softmax_i(cos(x_i, x_q) / τ) "
        "(τ = temperature, 0 = hardmax), 0 on exemplar tokens",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.pattern",
                "mix",
                (layer,),
                heads,
                queries="query",
                target="match",
                value=iv.strength,
                temperature=iv.temperature or 0.0,
            ),
        ),
        default="last",
        needs_heads=True,
    ),
    "perfect_copy": CatalogueEntry(
        "logits ← −10⁹ except the context labels, whose logits are one head's query → label "
        "scores (reference pass)",
        lambda iv, layer, heads, depth: (Edit("logits", "copy_scores", (layer,), heads),),
        default="last",
        needs_heads=True,
        one_head=True,
    ),
    "head_temperature": CatalogueEntry(
        "scores ← scores / τ for the heads (all tokens)",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.scores",
                "temperature",
                (layer,),
                heads,
                value=iv.temperature,
            ),
        ),
        needs_heads=True,
        needs_temperature=True,
    ),
    "silence_non_label_attn": CatalogueEntry(
        "last layer, query row: scores to exemplar tokens (the query included) ← −10⁹",
        lambda iv, layer, heads, depth: (
            Edit(
                "attn.scores",
                "set",
                (depth - 1,),
                heads,
                queries="query",
                keys="exemplars",
                value=NO_ATTENTION,
            ),
        ),
        default="last",
        needs_heads=True,
    ),
    "perfect_prev_token_input": CatalogueEntry(
        "the original's \"Layer 1 clamp\": the input of block ``layer`` (default: the last) ← the "
        "embedded tokens e (the blocks below bypassed); its scores (of ``heads``, default all) ← those "
        "of a reference pass whose input to that block is e_{t−1} at the context tokens t ≥ 1 "
        "(token 0 and the query keep their own e_t)",
        lambda iv, layer, heads, depth: _perfect_prev_token_input(layer, heads),
        default="last",
    ),
    "preserve_patterns": _preserve("attn.pattern"),
    "preserve_values": _preserve("attn.v"),
    "preserve_queries": _preserve("attn.q"),
    "preserve_keys": _preserve("attn.k"),
}
"""The original study's interventions (its ``opto.py``), each a composition of edits."""


# ----------------------------------------------------------------------------------------------
# Text forms: CLI and JSON
# ----------------------------------------------------------------------------------------------


def parse_opto(text: str) -> Intervention:
    """``NAME:key=value,...`` (keys ``layer``, ``heads`` as ``1|4|7``, ``strength``, ``temperature``,
    ``only_labels``) → :class:`Intervention`."""
    name, _, rest = text.partition(":")
    d: dict[str, Any] = {"name": name.strip()}
    for item in (p for p in rest.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        require(bool(sep), "opto", f"expected key=value in {text!r} (got {item!r})")
        if key == "heads":
            d["heads"] = [h for h in value.split("|") if h]
        elif key == "only_labels":
            require(
                value.lower() in ("1", "0", "true", "false", "yes", "no"),
                "opto",
                f"only_labels: expected true or false (got {value!r})",
            )
            d["only_labels"] = value.lower() in ("1", "true", "yes")
        elif key in ("layer", "strength", "temperature"):
            d[key] = value
        else:
            raise ConfigError(
                "opto", f"unknown key {key!r} in {text!r} (layer, heads, strength, temperature, only_labels)"
            )
    return Intervention.from_dict(d)


def interventions_from_json(text: str, source: str = "opto-file") -> tuple[Intervention, ...]:
    """A JSON list of intervention objects → interventions."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(source, f"not JSON ({e})") from None
    require(isinstance(data, list), source, "expected a JSON list of intervention objects")
    return tuple(Intervention.from_dict(d) for d in data)


def interventions_to_json(interventions: Sequence[Intervention]) -> str:
    return json.dumps([iv.to_dict() for iv in interventions], sort_keys=True)


def expand_all(interventions: Sequence[Intervention], depth: int, n_heads: int) -> tuple[Edit, ...]:
    """Every edit of ``interventions`` (checked against the model's size), in order."""
    edits: list[Edit] = []
    for iv in interventions:
        iv.check(depth, n_heads)
        edits.extend(iv.expand(depth, n_heads))
    require(
        not any(e.in_reference for e in edits) or any(e.op in ("reference", "copy_scores") for e in edits),
        "opto",
        "edits in the reference pass (in_reference) need an edit that reads it (reference, copy_scores)",
    )
    return tuple(edits)


__all__ = [
    "CATALOGUE",
    "CatalogueEntry",
    "Intervention",
    "expand_all",
    "interventions_from_json",
    "interventions_to_json",
    "parse_opto",
]
