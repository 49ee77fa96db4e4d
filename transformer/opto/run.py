"""Logits of a batch under interventions, with the reference pass that preserving edits need.

``run_with_edits(model, features, context, edits)`` runs :func:`transformer.model.forward` once
with the edits' :class:`~transformer.opto.hooks.Hooks`; when an edit needs a *reference pass*
(``reference``, ``copy_scores``) it first runs the model on the same sequences with the edits
marked ``in_reference`` (none: without interventions) and caches the points those edits read.
Gradients flow through both passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jaxtyping import Array, Float

from ..model import Transformer, forward
from .hooks import NO_HOOKS, Hooks
from .spec import Edit
from .targets import TokenContext


def run_with_edits(
    model: Transformer,
    features: Float[Array, "*batch k1 dim"],
    context: TokenContext,
    edits: Sequence[Edit] = (),
    cache: Iterable[str] | str = (),
) -> tuple[Float[Array, "*batch n_labels"], dict[str, Array]]:
    """``(logits, cache)`` of the batch with ``edits`` applied; ``cache`` names what to record
    (``"all"`` = every hook point). Without edits or cache this is the plain :func:`forward`."""
    if not edits and not cache:
        return forward(model, features, context.labels, NO_HOOKS), {}
    depth, n_heads = len(model.blocks), model.n_heads
    hooks = Hooks(edits, depth, n_heads, context, cache=cache)
    needed = hooks.reference_points()
    if needed:
        ref = Hooks(edits, depth, n_heads, context, cache=needed, in_reference=True)
        forward(model, features, context.labels, ref)
        hooks.reference = ref.cache
    logits = forward(model, features, context.labels, hooks)
    return logits, hooks.cache


__all__ = ["run_with_edits"]
