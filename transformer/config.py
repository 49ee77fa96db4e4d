"""Run configuration: :class:`TrainConfig` (frozen, valid once constructed, JSON round-trip), the
evaluator names, the structural key that compiled code is cached on, and the presets.

Every bad value raises :class:`toymodels.errors.ConfigError` naming the field (one error type for
the whole project; ``str(e)`` is ``"field: reason"``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any

from toymodels.errors import ConfigError

from .data import DataError, SequenceSpec, label_pair_split
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
    "heldout_pairs": "relabel",
    "heldout_exemplars": "relabel",
    "heldout_classes": "relabel",
}
"""Evaluator name (as in the original study's logs) → the sequence kind it samples (``train``: the
training distribution). Their order fixes each evaluator's key (see :mod:`transformer.evaluators`).
The ``heldout_*`` evaluators are the induction-head study's test sets (thesis ch. 4): ``relabel``
sequences with the held-out label pairs, the held-out exemplars of the training classes, or the
held-out classes (the original code's ``fsl_val_rl``, ``fsl_train_valex``, ``fsl_test_class``)."""
CLASS_LABEL_EVALUATORS: tuple[str, ...] = ("iwl_copy_avail", "flip_icl", "pure_iwl")
"""Evaluators whose labels are the classes' trained labels (``0..n_classes-1``): they need a model
with an output per class, so a ``relabel`` run (``icl_label_set`` outputs) cannot have them."""

TRAIN_KINDS: dict[str, str] = {
    "bursty": "bursty",
    "icl_only": "icl_only",
    "ciwl_only": "ciwl",
    "iwl_only": "iwl",
    "relabel": "relabel",
}
"""Training distribution (``train_kind``, the kinds of ``mix``) → the sampler's sequence kind
(:data:`transformer.data.SEQUENCE_KINDS`): ``bursty`` (labels fixed per class), ``icl_only`` (labels
re-assigned per sequence), ``ciwl_only`` (query class absent from the context, its label attached to
another class's exemplars), ``iwl_only`` (query class absent, all context classes distinct),
``relabel`` (the induction-head study: the query's class and a distractor labelled by an ordered pair
of the ``icl_label_set`` labels drawn per sequence from the training pairs)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Same config → identical log.

    Data: ``data_path`` (``None`` = synthetic exemplars generated in memory from the ``synth_*``
    fields with ``synth_seed``); ``n_classes`` training classes (labels ``0..n_classes-1``,
    label of class ``c`` is ``c``), ``n_holdout_classes`` further classes used only by the ICL
    and ``heldout_classes`` evaluators when > 0; ``n_exemplars`` exemplars per class, followed by
    ``n_holdout_exemplars`` held-out exemplars of every class (``heldout_exemplars`` evaluator).

    Relabelled training (``train_kind="relabel"``, the induction-head study): the
    ``icl_label_set`` labels form ``L(L−1)/2`` unordered pairs, of which ``n_holdout_label_pairs``
    (chosen by ``label_split_seed``) are held out for the ``heldout_pairs`` evaluator; each training
    sequence labels its two classes with an ordered training pair (:meth:`label_pairs`), and the
    model's unembedding has one output per label (:attr:`n_labels`), not per class.

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
    n_holdout_exemplars: int = 0  # held-out exemplars of every class, after the n_exemplars
    synth_dim: int = 64
    synth_noise: float = 0.5
    synth_seed: int = 0
    synth_offset: float = 0.0  # constant added to every feature coordinate (see data.py)
    synth_variants: int = 1  # classes per shared base prototype (study: 8 rotations/flips)
    synth_variant_scale: float = 1.0  # spread ρ of a group's prototypes around its base
    synth_shared_scale: float = 0.0  # σ of one random vector added to every exemplar
    synth_rectify: bool = False  # features ← max(features, 0), like post-ReLU ResNet outputs
    # sequences
    context_pairs: int = 2
    burstiness: int = 1
    p_bursty: float = 1.0
    zipf_alpha: float = 0.0
    train_kind: str = "bursty"  # one of TRAIN_KINDS
    mix: tuple[tuple[str, float], ...] = ()  # ((kind, weight), ...): per-sequence mixture of kinds
    icl_label_set: int = 2  # labels re-assigned per sequence for icl_only and relabel training
    n_holdout_label_pairs: int = 0  # unordered label pairs held out of relabel training
    label_split_seed: int = 0  # which label pairs are held out (transformer.data.label_pair_split)
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

    @property
    def relabelled(self) -> bool:
        """Whether every training sequence is a ``relabel`` sequence (labels carry no class)."""
        kinds = [k for k, _ in self.mix] if self.mix else [self.train_kind]
        return all(k == "relabel" for k in kinds)

    @property
    def n_labels(self) -> int:
        """Outputs of the model's unembedding (and rows of its label table): the ``icl_label_set``
        labels of a relabelled run (the original code's ``model_output_classes`` default with
        ``fs_relabel > 0``), otherwise one per training class, ``n_classes``."""
        return self.icl_label_set if self.relabelled else self.n_classes

    def label_pairs(self, split: str = "train") -> tuple[tuple[int, int], ...]:
        """The ordered label pairs of ``split`` (``"train"`` or ``"heldout"``) of the
        ``icl_label_set`` labels (:func:`transformer.data.label_pair_split`)."""
        train, heldout = label_pair_split(
            self.icl_label_set, self.n_holdout_label_pairs, self.label_split_seed
        )
        return {"train": train, "heldout": heldout}[split]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config of plain (JSON) values: tuples from lists, interventions from dicts."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown config field")
        d = dict(d)
        for name in sorted(_FROM_PLAIN.keys() & d.keys()):
            try:
                d[name] = _FROM_PLAIN[name](d[name])
            except ConfigError:
                raise
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(name, f"cannot read {d[name]!r}") from None
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
        ``relabel`` sequences (either way) use the ``icl_label_set`` labels and the training pairs.
        """
        shape = dict(
            n_classes=self.n_classes,
            n_exemplars=self.n_exemplars,
            context_pairs=self.context_pairs,
            burstiness=self.burstiness,
        )

        def relabel(kind: str) -> dict[str, Any]:
            if kind != "relabel":
                return {}
            return dict(label_set=self.icl_label_set, label_pairs=self.label_pairs("train"))

        if kind is not None:
            return SequenceSpec(kind=kind, **shape, **relabel(kind))

        def train_spec(train_kind: str) -> SequenceSpec:
            kind = TRAIN_KINDS.get(train_kind, train_kind)
            return SequenceSpec(
                kind=kind,
                p_bursty=self.p_bursty,
                zipf_alpha=self.zipf_alpha,
                label_set=self.icl_label_set,
                matched=self.matched,
                **shape,
                **{k: v for k, v in relabel(kind).items() if k != "label_set"},
            )

        if self.mix:
            return MixtureSpec(tuple(train_spec(k) for k, _ in self.mix), tuple(w for _, w in self.mix))
        return train_spec(self.train_kind)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field (called on construction): types,
        every number finite and in its range (:data:`INT_MINIMUM`, :data:`FLOAT_RANGES`, seeds in
        ``[0, 2^32)``, at most :data:`MAX_STEPS` steps), names, and the fields' combinations."""
        _check_types(self)
        for name, low in INT_MINIMUM.items():
            if getattr(self, name) < low:
                raise ConfigError(name, f"must be >= {low}, got {getattr(self, name)}")
        for name in SEEDS:
            if not 0 <= getattr(self, name) < 2**32:
                raise ConfigError(name, f"must be in [0, 2^32), got {getattr(self, name)}")
        for name, (low, high, brackets) in FLOAT_RANGES.items():
            _check_range(name, getattr(self, name), low, high, brackets)
        if self.n_steps > MAX_STEPS:
            raise ConfigError("n_sequences", f"{self.n_sequences} sequences of batch {self.batch_size} are "
                              f"{self.n_steps} steps, more than the {MAX_STEPS} a run can count")
        if self.context_pairs < 2 * self.burstiness:
            msg = f"{self.context_pairs} is shorter than 2 x burstiness = {2 * self.burstiness}"
            raise ConfigError("context_pairs", msg)
        if self.d_model % self.n_heads:
            raise ConfigError("n_heads", f"d_model={self.d_model} is not divisible by {self.n_heads}")
        if self.icl_label_set > self.n_classes:
            raise ConfigError("icl_label_set", f"{self.icl_label_set} > the model's {self.n_classes} labels")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        kinds = [k for k, _ in self.mix]
        for k, w in self.mix:
            if k not in TRAIN_KINDS:
                raise ConfigError("mix", f"unknown kind {k!r} (one of {tuple(TRAIN_KINDS)})")
            if not (math.isfinite(w) and w > 0):
                raise ConfigError("mix", f"the weight of {k!r} must be finite and > 0, got {w}")
        if len(set(kinds)) < len(kinds):
            raise ConfigError("mix", f"a kind appears twice in {kinds}")
        _check_schedules(self)
        for name in self.evaluators:
            if name not in EVALUATORS:
                raise ConfigError("evaluators", f"unknown evaluator {name!r} (one of {tuple(EVALUATORS)})")
        if not self.evaluators:
            raise ConfigError("evaluators", "at least one evaluator is required")
        _check_relabelling(self)
        steps = [step for step, _ in self.lr_steps]
        if steps != sorted(set(steps)) or not all(0 <= step <= MAX_STEPS for step in steps):
            raise ConfigError("lr_steps", f"steps must increase and lie in [0, {MAX_STEPS}], got {steps}")
        for step, value in self.lr_steps:
            _check_range("lr_steps", value, 0.0, math.inf, "()", f"the learning rate of step {step}")
        if self.lr_schedule == "inverse_sqrt" and (self.warmup_steps < 1 or self.lr_steps):
            raise ConfigError("lr_schedule", "inverse_sqrt needs warmup_steps >= 1 and no lr_steps")
        if self.graft_modules and not self.graft_from:
            raise ConfigError("graft_from", "graft_modules given without a checkpoint to graft from")
        if not all(isinstance(iv, Intervention) for iv in self.opto):
            raise ConfigError("opto", "expected a tuple of transformer.opto.Intervention")
        self.edits()
        try:
            self.sequence_spec().validate()
        except DataError as e:  # the sampler's names for two of the fields
            raise ConfigError(_SPEC_FIELDS.get(e.param, e.param), e.message) from None


MAX_STEPS = 2**31 - 1
"""Most steps of a run (the step counter inside the compiled training scan is int32)."""
MAX_LOG_POINTS = 10**6
"""Largest ``N`` of ``log:N`` (``eval_schedule``, ``keep_checkpoints``)."""
SEEDS: tuple[str, ...] = ("synth_seed", "init_seed", "train_seed", "eval_seed", "label_split_seed")
INT_MINIMUM: dict[str, int] = {
    "n_holdout_classes": 0, "n_holdout_exemplars": 0, "n_holdout_label_pairs": 0, "warmup_steps": 0,
    **dict.fromkeys(
        "n_classes n_exemplars synth_dim synth_variants context_pairs burstiness icl_label_set depth "
        "d_model n_heads batch_size n_sequences eval_every n_eval n_probe checkpoint_every".split(), 1),
}
"""Smallest value of each integer field (seeds: :data:`SEEDS`)."""
FLOAT_RANGES: dict[str, tuple[float, float, str]] = {
    "synth_noise": (0.0, math.inf, "[)"), "synth_offset": (-math.inf, math.inf, "()"),
    "synth_variant_scale": (0.0, math.inf, "[)"), "synth_shared_scale": (0.0, math.inf, "[)"),
    "p_bursty": (0.0, 1.0, "[]"),
    "zipf_alpha": (0.0, math.inf, "[)"), "label_init_scale": (0.0, math.inf, "()"),
    "lr": (0.0, math.inf, "()"), "beta1": (0.0, 1.0, "[)"), "beta2": (0.0, 1.0, "[)"),
    "weight_decay": (0.0, math.inf, "[)"), "l2_penalty": (0.0, math.inf, "[)"),
}
"""Range of each float field, ``(low, high, brackets)``: ``"[)"`` = ``low <= x < high``; always finite."""
_CHOICES: dict[str, tuple[str, ...]] = {
    "positional": ("learned", "sinusoidal", "rope"), "unembed_init": ("independent", "labels"),
    "train_kind": tuple(TRAIN_KINDS), "lr_schedule": LR_SCHEDULES, "l2_groups": L2_GROUPS,
}
_FROM_PLAIN: dict[str, Any] = {
    "lr_steps": lambda v: tuple((s, float(w)) for s, w in v),
    "evaluators": tuple,
    "graft_modules": tuple,
    "mix": lambda v: tuple((str(k), float(w)) for k, w in v),
    "opto": lambda v: tuple(iv if isinstance(iv, Intervention) else Intervention.from_dict(iv) for iv in v),
}
"""How :meth:`TrainConfig.from_dict` turns plain values of the tuple fields into theirs."""
_SPEC_FIELDS = {"kind": "train_kind", "label_set": "icl_label_set", "label_pairs": "icl_label_set"}
"""Fields of :class:`~transformer.data.SequenceSpec` named differently in the config."""


def _check_range(name: str, value: float, low: float, high: float, brackets: str, what: str = "") -> None:
    """:class:`ConfigError` for ``name`` unless ``value`` is finite and within ``brackets`` of low, high."""
    above = value >= low if brackets[0] == "[" else value > low
    below = value <= high if brackets[1] == "]" else value < high
    if math.isfinite(value) and above and below:
        return
    if math.isinf(low) and math.isinf(high):
        need = "finite"
    elif math.isinf(high):
        need = f"finite and {'>=' if brackets[0] == '[' else '>'} {low:g}"
    else:
        need = f"in {brackets[0]}{low:g}, {high:g}{brackets[1]}"
    raise ConfigError(name, f"{what + ' ' if what else ''}must be {need}, got {value}")


def _check_types(cfg: TrainConfig) -> None:
    """:class:`ConfigError` for the first field whose value is not of its declared type."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        ok = {
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "str | None": value is None or isinstance(value, str),
        }.get(f.type, isinstance(value, tuple))
        if not ok:
            raise ConfigError(f.name, f"must be of type {f.type}, got {value!r}")
    pairs = {"lr_steps": (numbers.Integral, numbers.Real), "mix": (str, numbers.Real)}
    for name, types in pairs.items():
        for pair in getattr(cfg, name):
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(isinstance, pair, types))):
                raise ConfigError(name, f"expected ({types[0].__name__}, number) pairs, got {pair!r}")
    for name in ("evaluators", "graft_modules"):
        if not all(isinstance(v, str) for v in getattr(cfg, name)):
            raise ConfigError(name, f"expected names, got {getattr(cfg, name)!r}")


def _check_relabelling(cfg: TrainConfig) -> None:
    """The label-pair split, the held-out sets the ``heldout_*`` evaluators need, and no evaluator
    with class labels for a relabelled run (whose model has ``icl_label_set`` outputs)."""
    n_pairs = cfg.icl_label_set * (cfg.icl_label_set - 1) // 2
    if cfg.n_holdout_label_pairs and cfg.n_holdout_label_pairs >= n_pairs:
        raise ConfigError("n_holdout_label_pairs", f"{cfg.icl_label_set} labels have {n_pairs} pairs: "
                          f"holding out {cfg.n_holdout_label_pairs} leaves none to train on")
    if cfg.n_holdout_label_pairs:
        seen = {a for pair in cfg.label_pairs("train") for a in pair}
        if len(seen) < cfg.icl_label_set:
            missing = sorted(set(range(cfg.icl_label_set)) - seen)
            held = cfg.n_holdout_label_pairs
            raise ConfigError("n_holdout_label_pairs", f"holding out {held} pairs (label_split_seed "
                              f"{cfg.label_split_seed}) leaves label(s) {missing} untrained")
    needs = {"heldout_pairs": ("n_holdout_label_pairs", 1), "heldout_exemplars": ("n_holdout_exemplars", 1),
             "heldout_classes": ("n_holdout_classes", 3)}
    for name in cfg.evaluators:
        if name in needs and getattr(cfg, needs[name][0]) < needs[name][1]:
            field, low = needs[name]
            got = getattr(cfg, field)
            raise ConfigError(field, f"the {name} evaluator needs {field} >= {low}, got {got}")
        if cfg.relabelled and name in CLASS_LABEL_EVALUATORS:
            raise ConfigError("evaluators", f"{name!r} targets class labels, but a relabel run's model has "
                              f"only icl_label_set = {cfg.icl_label_set} outputs")
        if EVALUATORS[name] == "relabel" and cfg.context_pairs != 2 * cfg.burstiness:
            raise ConfigError("context_pairs", f"the {name} evaluator's relabel sequences need context_"
                              f"pairs = 2 x burstiness = {2 * cfg.burstiness}, got {cfg.context_pairs}")


def _check_schedules(cfg: TrainConfig) -> None:
    """``eval_schedule`` and ``keep_checkpoints`` parse, with at most :data:`MAX_LOG_POINTS` log points
    and kept sequences-seen values within the run."""
    for name, parse in (("eval_schedule", parse_eval_schedule), ("keep_checkpoints", parse_keep)):
        try:
            spec = parse(getattr(cfg, name))
        except ConfigError:
            raise
        except (ValueError, OverflowError):  # transformer.schedule's int(float(text)) of nan, 1e400
            raise ConfigError(name, f"cannot parse {getattr(cfg, name)!r}") from None
        n = spec if name == "eval_schedule" else (spec.n if spec.mode == "log" else None)
        if n is not None and n > MAX_LOG_POINTS:
            raise ConfigError(name, f"N of log:N must be <= {MAX_LOG_POINTS}, got {n}")
    last_seen = cfg.n_steps * cfg.batch_size
    for value in parse_keep(cfg.keep_checkpoints).values:
        if value > last_seen:
            raise ConfigError(
                "keep_checkpoints",
                f"{value} sequences is past the last evaluation ({last_seen} sequences seen)",
            )


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
    "TRAIN_KINDS",
    "ConfigError",
    "TrainConfig",
    "structural",
]
