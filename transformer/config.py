"""Run configuration: :class:`TrainConfig` (frozen, valid once constructed, JSON round-trip), the
evaluator names, the structural key that compiled code is cached on, and the presets.

Every bad value raises :class:`toymodels.errors.ConfigError` naming the field (one error type for
the whole project; ``str(e)`` is ``"field: reason"``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from toymodels.errors import ConfigError

from .data import DataError, SequenceSpec
from .mixture import MixtureSpec
from .opto.catalogue import Intervention, expand_all
from .opto.spec import Edit
from .schedule import parse_eval_schedule, parse_keep

LR_SCHEDULES: tuple[str, ...] = ("piecewise", "inverse_sqrt")
L2_GROUPS: tuple[str, ...] = ("all", "no_norm", "matrices")

EVALUATORS: dict[str, str] = {
    "train_eval": "train",
    "icl": "icl_only",
    "iwl_copy_avail": "ciwl",
    "flip_icl": "flip",
    "pure_iwl": "iwl",
}
"""Evaluator name (as in the original study's logs) → the sequence kind it samples (``train``: the
training distribution). Their order fixes each evaluator's key (see :mod:`transformer.evaluators`)."""

TRAIN_KINDS: dict[str, str] = {
    "bursty": "bursty",
    "icl_only": "icl_only",
    "ciwl_only": "ciwl",
    "iwl_only": "iwl",
}
"""Training distribution (``train_kind``, the kinds of ``mix``) → the sampler's sequence kind
(:data:`transformer.data.SEQUENCE_KINDS`): ``bursty`` (labels fixed per class), ``icl_only`` (labels
re-assigned per sequence), ``ciwl_only`` (query class absent from the context, its label attached to
another class's exemplars), ``iwl_only`` (query class absent, all context classes distinct)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Same config → identical log.

    Data: ``data_path`` (``None`` = synthetic exemplars generated in memory from the ``synth_*``
    fields with ``synth_seed``); ``n_classes`` training classes (labels ``0..n_classes-1``,
    label of class ``c`` is ``c``), ``n_holdout_classes`` further classes used only by the ICL
    evaluator when > 0; ``n_exemplars`` exemplars per class.

    Optimiser: Adam(``beta1``, ``beta2``) with optional decoupled ``weight_decay`` (AdamW) and the
    study's loss penalty ``l2_penalty`` over ``l2_groups`` (:func:`transformer.build.l2_penalty`);
    ``lr_schedule="inverse_sqrt"`` is chapter 3's warm-up then ``1/sqrt(t)`` decay. The
    learning rate is ``lr`` until the first boundary of ``lr_steps`` — a tuple of
    ``(step, lr)`` pairs switching to ``lr`` at ``step`` — with an optional linear warm-up over
    ``warmup_steps``.

    Training distribution: ``train_kind`` (one of :data:`TRAIN_KINDS`), or, when ``mix`` is
    non-empty, a per-sequence mixture: each training sequence's kind is ``k`` with probability
    ``w_k / Σ w`` over the ``(kind, weight)`` pairs of ``mix`` (which then replaces ``train_kind``).

    Evaluations happen at the steps of :func:`transformer.schedule.eval_schedule` (``eval_every``,
    or ``eval_schedule="log:N"``); ``checkpoint_every`` evaluations refresh the latest (resumable)
    checkpoint and ``keep_checkpoints`` chooses the evaluations whose checkpoints are kept as
    history (:mod:`transformer.schedule`). ``init_from`` starts from all weights of another run's
    checkpoint (fresh optimiser); grafting (``graft_from``, ``graft_modules``) applies after it.

    Validated on construction (:meth:`validate`): an instance that exists is a valid run.
    """

    # data
    data_path: str | None = None
    data_dataset: str = "resnet18/224/feat"
    n_classes: int = 1600
    n_holdout_classes: int = 0
    n_exemplars: int = 20
    synth_dim: int = 64
    synth_noise: float = 0.5
    synth_seed: int = 0
    synth_offset: float = 0.0  # constant added to every feature coordinate (see data.py)
    synth_variants: int = 1  # classes per shared base prototype (study: 8 rotations/flips)
    synth_variant_scale: float = 1.0  # spread ρ of a group's prototypes around its base
    # sequences
    context_pairs: int = 2
    burstiness: int = 1
    p_bursty: float = 1.0
    zipf_alpha: float = 0.0
    train_kind: str = "bursty"  # one of TRAIN_KINDS
    mix: tuple[tuple[str, float], ...] = ()  # ((kind, weight), ...): per-sequence mixture of kinds
    icl_label_set: int = 2  # labels re-assigned per sequence for icl_only training
    matched: bool = False  # context exemplar of the query class = the query exemplar
    # model
    depth: int = 2
    d_model: int = 64
    n_heads: int = 8
    mlp: bool = False
    positional: str = "learned"
    tie_labels: bool = False  # unembedding matrix = label-embedding table
    unembed_init: str = "independent"  # or "labels": untied U initialised as a copy of the table
    label_init_scale: float = 0.02  # label table ~ scale x truncated N(0,1), as the original study
    # optimisation
    lr: float = 1e-5
    lr_steps: tuple[tuple[int, float], ...] = ()
    warmup_steps: int = 0
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    lr_schedule: str = "piecewise"  # piecewise (lr, lr_steps, warm-up) | inverse_sqrt (thesis ch. 3)
    l2_penalty: float = 0.0  # λ of the study's loss penalty λ Σ_a ‖a‖ (see transformer.build)
    l2_groups: str = "no_norm"  # arrays it sums over: all | no_norm | matrices
    batch_size: int = 32
    n_sequences: int = 20_000_000
    # evaluation / logging
    eval_every: int = 1000  # steps between evaluations
    n_eval: int = 5000  # sequences per evaluator
    n_probe: int = 512  # sequences used for induction-strength / previous-token probes
    evaluators: tuple[str, ...] = ("train_eval", "icl", "iwl_copy_avail", "flip_icl", "pure_iwl")
    checkpoint_every: int = 1  # evaluations between checkpoints
    keep_checkpoints: str = "log:30"  # all | none | every:K | log:N | S1,S2,... (transformer.schedule)
    eval_schedule: str | None = None  # None: every eval_every steps; "log:N": log-spaced steps
    # seeds
    init_seed: int = 0
    train_seed: int = 1
    eval_seed: int = 2
    # starting point and grafting
    init_from: str | None = None  # checkpoint (run dir, checkpoint dir, model.eqx): all weights
    graft_from: str | None = None  # checkpoint file (state.eqx) of another run
    graft_modules: tuple[str, ...] = ()  # e.g. ("blocks.1", "unembed")
    freeze_grafted: bool = False
    # artificial optogenetics: interventions applied in training, evaluation and probes
    opto: tuple[Intervention, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_steps(self) -> int:
        return -(-self.n_sequences // self.batch_size)

    @property
    def seq_len(self) -> int:
        return 2 * self.context_pairs + 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown config field")
        d = dict(d)
        if "lr_steps" in d:
            d["lr_steps"] = tuple((int(s), float(v)) for s, v in d["lr_steps"])
        for name in ("evaluators", "graft_modules"):
            if name in d:
                d[name] = tuple(d[name])
        if "mix" in d:
            d["mix"] = tuple((str(k), float(w)) for k, w in d["mix"])
        if "opto" in d:
            d["opto"] = tuple(
                iv if isinstance(iv, Intervention) else Intervention.from_dict(iv) for iv in d["opto"]
            )
        return cls(**d)

    def edits(self) -> tuple[Edit, ...]:
        """The primitive edits of ``opto`` for this model (:mod:`transformer.opto.spec`)."""
        return expand_all(self.opto, self.depth, self.n_heads)

    @classmethod
    def from_json(cls, s: str) -> TrainConfig:
        return cls.from_dict(json.loads(s))

    def sequence_spec(self, kind: str | None = None) -> SequenceSpec | MixtureSpec:
        """A sequence distribution over this run's classes and sequence shape.

        ``kind=None``: the training distribution — ``train_kind`` (mapped by :data:`TRAIN_KINDS`)
        with every distribution field (``p_bursty``, ``zipf_alpha``, ``icl_label_set``,
        ``matched``), or, when ``mix`` is non-empty, the :class:`~transformer.mixture.MixtureSpec` of
        those distributions for ``mix``'s kinds with its weights. Otherwise sequences of that
        sampler kind (see :data:`transformer.data.SEQUENCE_KINDS`) with the sampler's defaults for
        those fields (uniform classes, always bursty, unmatched) — the evaluators' and probes' base.
        """
        shape = dict(
            n_classes=self.n_classes,
            n_exemplars=self.n_exemplars,
            context_pairs=self.context_pairs,
            burstiness=self.burstiness,
        )
        if kind is not None:
            return SequenceSpec(kind=kind, **shape)

        def train_spec(train_kind: str) -> SequenceSpec:
            return SequenceSpec(
                kind=TRAIN_KINDS.get(train_kind, train_kind),
                p_bursty=self.p_bursty,
                zipf_alpha=self.zipf_alpha,
                label_set=self.icl_label_set,
                matched=self.matched,
                **shape,
            )

        if self.mix:
            return MixtureSpec(tuple(train_spec(k) for k, _ in self.mix), tuple(w for _, w in self.mix))
        return train_spec(self.train_kind)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field (called on construction)."""
        positive = (
            "n_classes n_exemplars synth_dim context_pairs burstiness depth d_model n_heads "
            "batch_size n_sequences eval_every n_eval n_probe checkpoint_every"
        ).split()
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.n_holdout_classes < 0:
            raise ConfigError("n_holdout_classes", f"must be >= 0, got {self.n_holdout_classes}")
        if self.context_pairs < 2 * self.burstiness:
            raise ConfigError(
                "context_pairs",
                f"{self.context_pairs} is shorter than 2 x burstiness = {2 * self.burstiness}",
            )
        if self.d_model % self.n_heads:
            raise ConfigError("n_heads", f"d_model={self.d_model} is not divisible by {self.n_heads}")
        if self.positional not in ("learned", "sinusoidal", "rope"):
            raise ConfigError("positional", f"unknown encoding {self.positional!r}")
        if self.train_kind not in TRAIN_KINDS:
            raise ConfigError("train_kind", f"must be one of {tuple(TRAIN_KINDS)}, got {self.train_kind!r}")
        kinds = [k for k, _ in self.mix]
        for k, w in self.mix:
            if k not in TRAIN_KINDS:
                raise ConfigError("mix", f"unknown kind {k!r} (one of {tuple(TRAIN_KINDS)})")
            if not (math.isfinite(w) and w > 0):
                raise ConfigError("mix", f"the weight of {k!r} must be finite and > 0, got {w}")
        if len(set(kinds)) < len(kinds):
            raise ConfigError("mix", f"a kind appears twice in {kinds}")
        last_seen = self.n_steps * self.batch_size
        for value in parse_keep(self.keep_checkpoints).values:
            if value > last_seen:
                raise ConfigError(
                    "keep_checkpoints",
                    f"{value} sequences is past the last evaluation ({last_seen} sequences seen)",
                )
        parse_eval_schedule(self.eval_schedule)
        for name in self.evaluators:
            if name not in EVALUATORS:
                raise ConfigError("evaluators", f"unknown evaluator {name!r} (one of {tuple(EVALUATORS)})")
        if not self.evaluators:
            raise ConfigError("evaluators", "at least one evaluator is required")
        if not (self.label_init_scale > 0):
            raise ConfigError("label_init_scale", f"must be > 0, got {self.label_init_scale}")
        if not (self.lr > 0):
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        for step, value in self.lr_steps:
            if step < 0 or not value > 0:
                raise ConfigError("lr_steps", f"bad (step, lr) pair ({step}, {value})")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                "lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.lr_schedule == "inverse_sqrt" and (self.warmup_steps < 1 or self.lr_steps):
            raise ConfigError("lr_schedule", "inverse_sqrt needs warmup_steps >= 1 and no lr_steps")
        if not (math.isfinite(self.l2_penalty) and self.l2_penalty >= 0):
            raise ConfigError("l2_penalty", f"must be finite and >= 0, got {self.l2_penalty}")
        if self.l2_groups not in L2_GROUPS:
            raise ConfigError("l2_groups", f"must be one of {', '.join(L2_GROUPS)}, got {self.l2_groups!r}")
        if not 0.0 <= self.p_bursty <= 1.0:
            raise ConfigError("p_bursty", f"must be in [0, 1], got {self.p_bursty}")
        if self.zipf_alpha < 0:
            raise ConfigError("zipf_alpha", f"must be >= 0, got {self.zipf_alpha}")
        if self.synth_noise < 0:
            raise ConfigError("synth_noise", f"must be >= 0, got {self.synth_noise}")
        if self.synth_variants < 1:
            raise ConfigError("synth_variants", f"must be >= 1, got {self.synth_variants}")
        if not (math.isfinite(self.synth_variant_scale) and self.synth_variant_scale >= 0):
            raise ConfigError(
                "synth_variant_scale", f"must be finite and >= 0, got {self.synth_variant_scale}"
            )
        if not math.isfinite(self.synth_offset):
            raise ConfigError("synth_offset", f"must be finite, got {self.synth_offset}")
        if self.graft_modules and not self.graft_from:
            raise ConfigError("graft_from", "graft_modules given without a checkpoint to graft from")
        if not all(isinstance(iv, Intervention) for iv in self.opto):
            raise ConfigError("opto", "expected a tuple of transformer.opto.Intervention")
        self.edits()
        try:
            self.sequence_spec().validate()
        except DataError as e:  # its messages are "field: reason"
            raise ConfigError(*str(e).split(": ", 1)) from None


PRESETS: dict[str, dict[str, Any]] = {
    # The study's main run (thesis ch. 5) at full scale; meant for a GPU.
    # synth_offset 1: a component shared by all exemplars, like the study's non-negative ResNet
    # features; with centred features the CPU runs learned CIWL first and never formed ICL
    # (docs/cpu_quick_preset.md). Not yet run at this scale (no GPU so far).
    "coopetition-paper": dict(
        n_classes=12800,
        n_exemplars=20,
        synth_dim=512,
        synth_noise=0.75,
        synth_offset=1.0,
        lr=1e-5,
        batch_size=32,
        n_sequences=20_000_000,
        eval_every=10_000,
        n_eval=5000,
        checkpoint_every=5,
    ),
    # Reduced configuration for a 2-core CPU (<= 15 minutes wall): the study's model (separate
    # unembedding) on 12800 synthetic classes whose features share a common offset of +1.5
    # (like the study's non-negative ResNet features); ICL forms first, then CIWL takes over
    # and ICL fades. Not every target holds on every seed — see docs/cpu_quick_preset.md for
    # everything tried and the per-seed numbers.
    "cpu-quick": dict(
        n_classes=12800,
        n_exemplars=20,
        synth_dim=64,
        synth_noise=0.75,
        synth_offset=1.5,
        lr=3e-4,
        lr_steps=((12_000, 1e-3), (20_000, 2e-3)),
        batch_size=32,
        n_sequences=1_800_000,
        eval_every=2000,
        n_eval=2000,
        checkpoint_every=3,
    ),
    # A tiny configuration for smoke tests (seconds).
    "tiny": dict(
        n_classes=64,
        n_exemplars=4,
        synth_dim=8,
        synth_noise=0.3,
        d_model=16,
        n_heads=2,
        lr=3e-3,
        batch_size=16,
        n_sequences=3200,
        eval_every=50,
        n_eval=64,
        n_probe=16,
    ),
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` of a named preset with ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r} (one of {tuple(PRESETS)})")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})


def structural(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every field that does not change compiled code reset (seeds, lengths, paths,
    evaluation and checkpoint schedules, starting points; ``train_kind`` and ``mix`` are kept).

    Compiled functions are cached on this key, so runs differing only in seeds or length (tests,
    seed sweeps, resumes in one process) compile once.
    """
    return dataclasses.replace(
        cfg, init_seed=0, train_seed=0, eval_seed=0, synth_seed=0, n_sequences=1,
        checkpoint_every=1, data_path=None, graft_from=None, graft_modules=(),
        freeze_grafted=False, keep_checkpoints="all", eval_schedule=None, init_from=None,
    )


__all__ = [
    "EVALUATORS",
    "PRESETS",
    "TRAIN_KINDS",
    "ConfigError",
    "TrainConfig",
    "preset_config",
    "structural",
]
