r"""Interactive μ₁/α explorer of the coopetition model (the logic behind ``notebooks/sliders.ipynb``).

:func:`slider_run` is a pure function of :class:`SliderParams`: it draws the paper-compatible targets
and initial vectors of one seed, reduces them exactly to (P, Q, R) and integrates the reduced
dynamics (:mod:`toymodels.reduced`) — an 8-dimensional system whatever the dimensions, with the
dimensions, μ and α as traced inputs, so moving those sliders never recompiles (only a new method
or clamp set compiles once). :class:`SliderApp` wires ipywidgets sliders to it and redraws one
panel: mechanism-1 loss + μ₁, mechanism-2 loss, total loss and the competition term. Its callbacks
are ordinary methods, so tests drive them headless (``app.widgets["mu1"].value = 0.0``) and read
the plotted data back (``app.lines["mechanism_1_loss"].get_ydata()``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import numpy as np

from .clamps import Clamp
from .errors import require
from .init import draw_vectors
from .losses import coopetition_model
from .methods import GradientDescent, GradientFlow
from .precision import numerics
from .sweep.verdicts import VERDICTS, VerdictThresholds, saddle_levels, summarise

CURVES = ("mechanism_1_loss", "mechanism_2_loss", "loss", "competition")
CURVE_STYLE = {
    "mechanism_1_loss": dict(color="tab:blue", lw=1.6, label="mechanism 1 loss + μ₁"),
    "mechanism_2_loss": dict(color="tab:orange", lw=1.6, label="mechanism 2 loss"),
    "loss": dict(color="black", lw=1.2, ls="--", label="total loss"),
    "competition": dict(color="tab:green", lw=1.0, ls=":", label="competition C"),
}


@dataclasses.dataclass(frozen=True)
class SliderParams:
    """One configuration of the explorer (defaults: thesis Fig. 5.9a, seed 7).

    Attributes:
        mu1, alpha: μ₁ ≥ 0 and α ≥ 0 (μ₂ = 0). dim_a, dim_bc, dim_d: dimensions (b and c share one).
        seed: paper-compatible seed. method: ``"gd"`` (η = 1) or ``"flow"`` (t ≤ ``steps``).
        clamps: vectors held at their targets. steps: GD steps / flow end time. save_every: GD
        recording interval (flow: ``steps / save_every + 1`` save times).
    """

    mu1: float = 0.1
    alpha: float = 0.1
    dim_a: int = 20
    dim_bc: int = 20
    dim_d: int = 160
    seed: int = 7
    method: str = "gd"
    clamps: tuple[str, ...] = ()
    steps: int = 16000
    save_every: int = 10

    def __post_init__(self) -> None:
        require(np.isfinite(self.mu1) and self.mu1 >= 0, "mu1", f"must be >= 0 (got {self.mu1})")
        require(np.isfinite(self.alpha) and self.alpha >= 0, "alpha", f"must be >= 0 (got {self.alpha})")
        for name in ("dim_a", "dim_bc", "dim_d"):
            require(
                int(getattr(self, name)) == getattr(self, name) and getattr(self, name) >= 1,
                name,
                "must be an integer >= 1",
            )
        require(self.method in ("gd", "flow"), "method", f"must be gd or flow (got {self.method!r})")
        object.__setattr__(self, "clamps", tuple(sorted(set(self.clamps))))

    def method_config(self):
        if self.method == "gd":
            return GradientDescent(lr=1.0, steps=self.steps, stop_loss=1e-6, save_every=self.save_every)
        return GradientFlow(t_max=float(self.steps), n_save=self.steps // self.save_every + 1, stop_loss=1e-6)

    @property
    def dims(self) -> tuple[int, int, int, int]:
        return (int(self.dim_a), int(self.dim_bc), int(self.dim_bc), int(self.dim_d))


def slider_run(p: SliderParams) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Integrate one configuration with the reduced model.

    Returns:
        ``(t, curves, summary)``: times, the curves :data:`CURVES` (NaN after the stop), and the sweep's
        summary measures of this run (``verdict`` as a name).
    """
    import jax

    from .reduced import ReducedParams, initial_state, initial_stats_from_vectors, reduced_dynamics
    from .sweep.chunk import reduced_batch

    model = coopetition_model(p.dims)
    dyn = reduced_dynamics(model, tuple(Clamp(c) for c in p.clamps))
    method = p.method_config()
    with numerics("float64") as dtype:
        targets, init = draw_vectors(model, [int(p.seed)], 1.0, "legacy", np.float64)
        stats = initial_stats_from_vectors(targets, init)
        state0 = initial_state(dyn, stats, dtype)
        R = np.stack([stats[v].R for v in model.vectors], -1)
        params = ReducedParams(
            R=R,
            dims=np.asarray([p.dims], dtype=np.float64),
            mu=np.asarray([[p.mu1, 0.0]]),
            alpha=np.asarray([p.alpha]),
        )
        curves, stop, failure = jax.device_get(reduced_batch(dyn, method, state0, params))
    curves = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()}
    t = np.asarray(method.times, dtype=np.float64)
    failed = failure >= 0 if p.method == "gd" else np.isfinite(failure)
    ref = saddle_levels(model.mechanisms, model.vectors, R, np.asarray([p.dims]))
    s = summarise(t, curves, ref, stop, failed, VerdictThresholds())
    summary = {k: (VERDICTS[int(v[0])] if k == "verdict" else v[0].item()) for k, v in s.items()}
    return t, {k: v[0] for k, v in curves.items()}, summary


class SliderApp:
    """ipywidgets sliders + a live matplotlib panel over :func:`slider_run`.

    Attributes:
        widgets: name → widget (``mu1``, ``mu1_log``, ``alpha``, ``alpha_log``, ``dim_a``, ``dim_bc``,
            ``dim_d``, ``seed``, ``method``, ``clamp_a`` … ``clamp_d``).
        lines: curve name → matplotlib Line2D. figure, ax: the panel.
        last: ``(params, t, curves, summary)`` of the latest update; ``last_update_s`` its duration.
    """

    def __init__(self, params: SliderParams = SliderParams(), display_figure: bool = True):
        import ipywidgets as w
        from matplotlib.figure import Figure

        self._w = w
        self.display_figure = display_figure
        self.widgets: dict[str, Any] = {
            "mu1": w.FloatSlider(
                value=params.mu1, min=0.0, max=0.5, step=0.005, description="μ₁", readout_format=".3f"
            ),
            "mu1_log": w.Checkbox(value=False, description="log μ₁"),
            "alpha": w.FloatSlider(
                value=params.alpha, min=0.0, max=1.0, step=0.01, description="α", readout_format=".3f"
            ),
            "alpha_log": w.Checkbox(value=False, description="log α"),
            "dim_a": w.IntSlider(value=params.dim_a, min=1, max=100, description="dim a"),
            "dim_bc": w.IntSlider(value=params.dim_bc, min=1, max=100, description="dim b, c"),
            "dim_d": w.IntSlider(value=params.dim_d, min=1, max=400, description="dim d"),
            "seed": w.IntSlider(value=params.seed, min=0, max=99, description="seed"),
            "method": w.ToggleButtons(options=["gd", "flow"], value=params.method, description="method"),
        }
        for v in "abcd":
            self.widgets[f"clamp_{v}"] = w.Checkbox(value=v in params.clamps, description=f"clamp {v}")
        self.steps, self.save_every = params.steps, params.save_every
        self._log_sliders = {
            "mu1": w.FloatLogSlider(
                value=max(params.mu1, 1e-4), base=10, min=-4, max=0, description="μ₁ (log)"
            ),
            "alpha": w.FloatLogSlider(
                value=max(params.alpha, 1e-4), base=10, min=-4, max=1, description="α (log)"
            ),
        }
        self.status = w.HTML()
        self.output = w.Output()
        self._boxes = {k: w.HBox([self.widgets[k], self.widgets[f"{k}_log"]]) for k in ("mu1", "alpha")}
        # a Figure outside pyplot: no global figure registry, shown only through self.output
        self.figure = Figure(figsize=(8, 4.2))
        self.ax = self.figure.subplots()
        self.lines = {k: self.ax.plot([], [], **CURVE_STYLE[k])[0] for k in CURVES}
        self.ax.set_yscale("log")
        self.ax.grid(alpha=0.3, which="both", lw=0.4)
        self.ax.legend(fontsize=8, loc="lower left")
        self.figure.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.9)
        for k, widget in self.widgets.items():
            if k.endswith("_log"):
                widget.observe(functools.partial(self._toggle_log, k[: -len("_log")]), names="value")
            else:
                widget.observe(self._changed, names="value")
        for widget in self._log_sliders.values():
            widget.observe(self._changed, names="value")
        self.last: tuple | None = None
        self.last_update_s = float("nan")
        self.update()

    # ------------------------------------------------------------------ state
    def _value(self, name: str) -> float:
        if name in self._log_sliders and self.widgets[f"{name}_log"].value:
            return float(self._log_sliders[name].value)
        return float(self.widgets[name].value)

    def params(self) -> SliderParams:
        """The configuration the widgets show."""
        return SliderParams(
            mu1=self._value("mu1"),
            alpha=self._value("alpha"),
            dim_a=int(self.widgets["dim_a"].value),
            dim_bc=int(self.widgets["dim_bc"].value),
            dim_d=int(self.widgets["dim_d"].value),
            seed=int(self.widgets["seed"].value),
            method=self.widgets["method"].value,
            clamps=tuple(v for v in "abcd" if self.widgets[f"clamp_{v}"].value),
            steps=self.steps,
            save_every=self.save_every,
        )

    # ------------------------------------------------------------------ callbacks
    def _toggle_log(self, name: str, change) -> None:
        lin, log = self.widgets[name], self._log_sliders[name]
        if change["new"]:
            log.value = max(lin.value, 10.0**log.min)
            self._boxes[name].children = (log, self.widgets[f"{name}_log"])
        else:
            lin.value = min(max(log.value, lin.min), lin.max)
            self._boxes[name].children = (lin, self.widgets[f"{name}_log"])
        self.update()

    def _changed(self, change=None) -> None:
        self.update()

    def update(self) -> None:
        """Re-run the current configuration and redraw the panel."""
        p = self.params()
        start = time.perf_counter()
        t, curves, summary = slider_run(p)
        self.last_update_s = time.perf_counter() - start
        self.last = (p, t, curves, summary)
        for k, line in self.lines.items():
            y = curves[k] + (p.mu1 if k == "mechanism_1_loss" else 0.0)
            line.set_data(t, np.where(y > 0, y, np.nan))
        self.lines["mechanism_1_loss"].set_label(f"mechanism 1 loss + μ₁ (μ₁={p.mu1:.3g})")
        self.ax.legend(fontsize=8, loc="lower left")
        self.ax.relim()
        self.ax.autoscale_view()
        self.ax.set_xlabel("step" if p.method == "gd" else "flow time t")
        self.ax.set_title(
            f"μ₁={p.mu1:.3g} · α={p.alpha:.3g} · dims {p.dims} · seed {p.seed}"
            + (f" · clamped {'+'.join(p.clamps)}" if p.clamps else ""),
            fontsize=9,
        )
        verdict = summary["verdict"]
        self.status.value = (
            f"<b>{verdict}</b> · min L<sub>M1</sub> {summary['m1_min']:.3g} "
            f"at {summary['m1_min_time']:.0f} · "
            f"final L<sub>M1</sub> {summary['m1_final']:.3g} · update {1000 * self.last_update_s:.0f} ms"
        )
        if self.display_figure:
            from IPython.display import display

            with self.output:
                self.output.clear_output(wait=True)
                display(self.figure)

    # ------------------------------------------------------------------ layout
    def widget(self):
        """The whole app as one ipywidgets box (display it in a notebook)."""
        w = self._w
        clamps = w.HBox([self.widgets[f"clamp_{v}"] for v in "abcd"])
        dims = w.HBox([self.widgets["dim_a"], self.widgets["dim_bc"], self.widgets["dim_d"]])
        return w.VBox(
            [
                self._boxes["mu1"],
                self._boxes["alpha"],
                dims,
                w.HBox([self.widgets["seed"], self.widgets["method"]]),
                clamps,
                self.status,
                self.output,
            ]
        )


__all__ = ["CURVES", "SliderApp", "SliderParams", "slider_run"]
