"""Artificial optogenetics: read, clamp and ablate named activations in training and evaluation.

* :mod:`~transformer.opto.points` — the hook points of the forward pass and position selectors;
* :mod:`~transformer.opto.spec` — :class:`Edit`, the primitives (frozen, hashable, JSON round-trip);
* :mod:`~transformer.opto.catalogue` — :class:`Intervention`, the original study's named
  interventions as compositions of edits; the ``NAME:key=value`` and JSON forms;
* :mod:`~transformer.opto.targets` — target attention patterns (previous token, induction, match);
* :mod:`~transformer.opto.hooks` — :class:`Hooks`, what the forward pass calls at each point;
* :mod:`~transformer.opto.run` — logits (and caches) of a batch under interventions, with the
  reference pass that preserving ablations need.
"""

from toymodels._internal.facade import lazy_facade

_EXPORTS = {
    "LAYER_POINTS": "points",
    "GLOBAL_POINTS": "points",
    "point_names": "points",
    "Edit": "spec",
    "Intervention": "catalogue",
    "CATALOGUE": "catalogue",
    "parse_opto": "catalogue",
    "interventions_from_json": "catalogue",
    "interventions_to_json": "catalogue",
    "expand_all": "catalogue",
    "TARGETS": "targets",
    "TokenContext": "targets",
    "target_pattern": "targets",
    "Hooks": "hooks",
    "NO_HOOKS": "hooks",
    "run_with_edits": "run",
}

__getattr__, __dir__, __all__ = lazy_facade(__name__, _EXPORTS)
