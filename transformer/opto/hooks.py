"""The hooks of one forward pass: edits applied, activations cached.

The forward pass (:func:`transformer.model.run`) calls ``hooks(name, x)`` at every hook point and
uses what it returns; ``hooks.wants(name)`` lets it skip work nobody looks at (per-head outputs,
layout changes). :data:`NO_HOOKS` changes and records nothing (the training path without
interventions). :class:`Hooks` applies :class:`~transformer.opto.spec.Edit`\\ s (masks are built
per sequence with NumPy at trace time and broadcast over the batch axes) and fills ``cache``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .points import GLOBAL_POINTS, HEAD_POINTS, PATTERN_POINTS, full_name, pattern_mask, token_mask
from .spec import NO_ATTENTION, Edit
from .targets import TokenContext, target_pattern

EMBEDDED = "blocks.0.resid_pre"
"""The point whose value (before any edit) is the pass's embedded tokens ``e`` (``embedding`` edits)."""

# rank of each point's per-sequence value (leading axes beyond it are batch axes)
_RANK = {
    "embed.exemplar": 2,
    "embed.label": 2,
    "embed.pos": 2,
    "ln_final.scale": 0,
    "logits": 1,
    "resid_pre": 2,
    "resid_mid": 2,
    "resid_post": 2,
    "attn_out": 2,
    "mlp_out": 2,
    "attn.q": 3,
    "attn.k": 3,
    "attn.v": 3,
    "attn.z": 3,
    "attn.head_out": 3,
    "attn.scores": 3,
    "attn.pattern": 3,
}


def _local(name: str) -> tuple[str, int | None]:
    """``blocks.1.attn.v`` → (``attn.v``, 1); ``logits`` → (``logits``, None)."""
    if name.startswith("blocks."):
        _, layer, point = name.split(".", 2)
        return point, int(layer)
    return name, None


class NoHooks:
    """Hooks that change and record nothing."""

    def wants(self, name: str) -> bool:
        return False

    def __call__(self, name: str, x: Array) -> Array:
        return x


NO_HOOKS = NoHooks()


class Hooks:
    """Edits of one forward pass and the names to cache.

    Args:
        edits: primitive edits (layers ``()`` expand to every layer of ``depth``).
        depth, n_heads: the model's size.
        context: the sequences' :class:`TokenContext` (for ``mix`` targets and ``copy_scores``).
        reference: cached activations of a reference pass (for ``reference``/``copy_scores``).
        cache: names to record in :attr:`cache` (``"all"`` = every point reached).
        in_reference: these are the hooks of the reference pass: apply the edits marked
            ``in_reference`` (and only those).
    """

    def __init__(
        self,
        edits: Sequence[Edit] = (),
        depth: int = 0,
        n_heads: int = 0,
        context: TokenContext | None = None,
        reference: Mapping[str, Array] | None = None,
        cache: Iterable[str] | str = (),
        in_reference: bool = False,
    ):
        self.n_heads = n_heads
        self.embedded: Array | None = None  # blocks.0.resid_pre of this pass, for `embedding` edits
        self.context = context
        self.reference = reference or {}
        self.cache_all = cache == "all"
        self.cache_names = set() if self.cache_all else set(cache)
        self.cache: dict[str, Array] = {}
        by_point: dict[str, list[Edit]] = {}
        for e in (e for e in edits if e.in_reference == in_reference):
            layers = (None,) if e.point in GLOBAL_POINTS else (e.layers or tuple(range(depth)))
            for layer in layers:
                by_point.setdefault(full_name(e.point, layer), []).append(e)
        # preserved (reference) values first, then the other edits in order (as the original code)
        self.edits = {
            name: [e for e in es if e.op == "reference"] + [e for e in es if e.op != "reference"]
            for name, es in by_point.items()
        }

    def reference_points(self) -> set[str]:
        """Names a reference pass must cache for these edits."""
        out = set()
        for name, es in self.edits.items():
            for e in es:
                if e.op == "reference":
                    out.add(name)
                elif e.op == "copy_scores":
                    out.add(full_name("attn.scores", e.layers[0]))
        return out

    def wants(self, name: str) -> bool:
        return name in self.edits or self.cache_all or name in self.cache_names

    def __call__(self, name: str, x: Array) -> Array:
        if name == EMBEDDED:
            self.embedded = x
        for e in self.edits.get(name, ()):
            x = self._apply(e, name, x)
        if self.cache_all or name in self.cache_names:
            self.cache[name] = x
        return x

    # ------------------------------------------------------------------------------------------

    def _mask(self, e: Edit, point: str, shape: tuple[int, ...]) -> np.ndarray:
        """Boolean mask of the edit's selection over one sequence's value of ``point``."""
        if point in ("logits", "ln_final.scale"):
            return np.ones(shape, bool)
        heads = np.zeros(self.n_heads, bool)
        heads[list(e.heads) if e.heads else slice(None)] = True
        if point in PATTERN_POINTS:
            n_tokens = shape[-1]
            return heads[:, None, None] & pattern_mask(e.queries, e.keys, n_tokens)[None]
        if point == "embed.exemplar":
            rows = token_mask(e.queries, 2 * shape[0] - 1)[0::2]
        elif point == "embed.label":
            rows = token_mask(e.queries, 2 * shape[0] + 1)[1::2]
        else:
            rows = token_mask(e.queries, shape[0])
        if point in HEAD_POINTS:
            return rows[:, None, None] & heads[None, :, None]
        return rows[:, None]

    def _apply(self, e: Edit, name: str, x: Array) -> Array:
        point, _ = _local(name)
        rank = _RANK[point]
        per_seq = x.shape[x.ndim - rank :]
        if e.op == "copy_scores":
            return self._copy_scores(e, x)
        mask = self._mask(e, point, per_seq)
        if e.op == "scale":
            new = e.value * x
        elif e.op == "mean":
            new = jnp.mean(x, axis=tuple(range(x.ndim - rank)), keepdims=True) if x.ndim > rank else x
        elif e.op == "set":
            new = jnp.asarray(e.value if e.array is None else np.asarray(e.array), x.dtype)
        elif e.op == "reference":
            new = self.reference[name]
        elif e.op == "mix":
            target = target_pattern(e.target, self._context(e), e.temperature)[..., None, :, :]
            new = (1.0 - e.value) * x + e.value * target
        elif e.op == "temperature":
            new = x / e.value
        elif e.op == "embedding":
            source = np.maximum(np.arange(per_seq[0]) - int(e.value), 0)
            new = self.embedded[..., source, :]
        else:  # pragma: no cover - Edit validates its op
            raise ValueError(e.op)
        return jnp.where(mask, new, x)

    def _context(self, e: Edit) -> TokenContext:
        if self.context is None:
            raise ValueError(f"{e.op} edit with target {e.target!r} needs the sequences' context")
        return self.context

    def _copy_scores(self, e: Edit, logits: Array) -> Array:
        ctx = self._context(e)
        scores = self.reference[full_name("attn.scores", e.layers[0])][..., e.heads[0], -1, :]
        k = ctx.labels.shape[-1]
        label_ids = jnp.arange(logits.shape[-1])
        out = jnp.full_like(logits, NO_ATTENTION)
        for i in range(k):  # later context labels win ties, as the original's scatter
            hit = label_ids == ctx.labels[..., i, None]
            out = jnp.where(hit, scores[..., 2 * i + 1, None], out)
        return out


__all__ = ["NO_HOOKS", "Hooks", "NoHooks"]
