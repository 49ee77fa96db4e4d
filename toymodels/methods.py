"""How a toy run moves: the two dynamics a run can use, as frozen configurations (valid once constructed).

* :class:`GradientDescent` — discrete steps θ ← θ − η ∇L (``lr``, ``steps``, ``save_every``,
  ``stop_loss``);
* :class:`GradientFlow` — dθ/dt = −∇L solved with Diffrax (``t_max``, ``n_save``, ``solver`` from
  :data:`SOLVERS`, tolerances, step budget, ``stop_loss``).

The integrators that carry them out are in :mod:`toymodels.dynamics`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import require

# Diffrax solver classes by name (Diffrax is imported lazily: gradient descent does not need it).
SOLVERS: dict[str, str] = {
    "tsit5": "Tsit5",
    "dopri5": "Dopri5",
    "dopri8": "Dopri8",
    "heun": "Heun",
    "bosh3": "Bosh3",
    "kvaerno5": "Kvaerno5",  # implicit (stiff)
    "kvaerno3": "Kvaerno3",  # implicit (stiff)
}
IMPLICIT_SOLVERS = ("kvaerno5", "kvaerno3")


@dataclasses.dataclass(frozen=True)
class GradientDescent:
    """Discrete gradient descent.

    Attributes:
        lr: learning rate η > 0.
        steps: maximum number of updates; values are recorded at steps 0, K, 2K, …, ``steps``.
        stop_loss: stop at the first step whose loss is below this (``None``: never stop).
        save_every: K, record every K-th step (must divide ``steps``); stopping is still checked
            at every step.
    """

    lr: float = 1.0
    steps: int = 16000
    stop_loss: float | None = 1e-6
    save_every: int = 1

    def __post_init__(self) -> None:
        require(np.isfinite(self.lr) and self.lr > 0, "lr", f"must be a finite number > 0 (got {self.lr})")
        require(
            int(self.steps) == self.steps and self.steps >= 1,
            "steps",
            f"must be an integer >= 1 (got {self.steps})",
        )
        require(
            int(self.save_every) == self.save_every
            and self.save_every >= 1
            and self.steps % self.save_every == 0,
            "save_every",
            f"must be an integer >= 1 that divides steps={self.steps} (got {self.save_every})",
        )
        require(
            self.stop_loss is None or (np.isfinite(self.stop_loss) and self.stop_loss > 0),
            "stop_loss",
            f"must be a number > 0 (got {self.stop_loss})",
        )

    name = "gd"

    @property
    def times(self) -> np.ndarray:
        """Step indices of the recorded values."""
        return np.arange(0, self.steps + 1, self.save_every)


@dataclasses.dataclass(frozen=True)
class GradientFlow:
    """Continuous gradient flow solved with Diffrax.

    Attributes:
        t_max: end time (flow time = η × steps of gradient descent).
        n_save: number of equally spaced save times in [0, t_max] (or give ``save_times``).
        save_times: explicit increasing save times starting at 0 (overrides ``n_save``).
        solver: one of :data:`SOLVERS` (``kvaerno5``/``kvaerno3`` are implicit, for stiff runs).
        rtol, atol: tolerances of the PID step-size controller.
        dt0: initial step (``None``: chosen by Diffrax).
        max_steps: solver step budget per run.
        stop_loss: terminate once the loss falls below this (``None``: never); the stop time is
            located by root finding on the dense solution.
    """

    t_max: float = 16000.0
    n_save: int = 1601
    save_times: tuple[float, ...] | None = None
    solver: str = "tsit5"
    rtol: float = 1e-8
    atol: float = 1e-10
    dt0: float | None = None
    max_steps: int = 200_000
    stop_loss: float | None = None

    name = "flow"

    def __post_init__(self) -> None:
        require(
            np.isfinite(self.t_max) and self.t_max > 0,
            "t_max",
            f"must be a finite number > 0 (got {self.t_max})",
        )
        require(
            int(self.n_save) == self.n_save and self.n_save >= 2,
            "n_save",
            f"must be an integer >= 2 (got {self.n_save})",
        )
        require(
            self.solver in SOLVERS, "solver", f"must be one of {', '.join(SOLVERS)} (got {self.solver!r})"
        )
        require(self.rtol > 0 and self.atol > 0, "rtol", "tolerances must be > 0")
        require(self.max_steps >= 1, "max_steps", f"must be >= 1 (got {self.max_steps})")
        require(
            self.stop_loss is None or (np.isfinite(self.stop_loss) and self.stop_loss > 0),
            "stop_loss",
            f"must be a number > 0 (got {self.stop_loss})",
        )
        if self.save_times is not None:
            ts = np.asarray(self.save_times, dtype=float)
            require(ts.ndim == 1 and ts.size >= 1, "save_times", "need at least one save time")
            require(bool(np.all(np.diff(ts) > 0)) and ts[0] >= 0, "save_times", "must be increasing and >= 0")
            require(ts[-1] <= self.t_max, "save_times", f"must not exceed t_max={self.t_max}")
            object.__setattr__(self, "save_times", tuple(float(t) for t in ts))

    @property
    def times(self) -> np.ndarray:
        if self.save_times is not None:
            return np.asarray(self.save_times)
        return np.linspace(0.0, self.t_max, self.n_save)


Method = GradientDescent | GradientFlow


__all__ = ["IMPLICIT_SOLVERS", "SOLVERS", "GradientDescent", "GradientFlow", "Method"]
