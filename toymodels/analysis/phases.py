r"""The (μ₁, α) phase diagram of the reduced coopetition model, from its fixed points.

At each grid point the single-mechanism fixed points of :mod:`toymodels.analysis.fixed_points` are
classified: mechanism 2 only stable (transient mechanism 1), both stable (persistence), mechanism 1
only stable, or neither. :func:`check_phase_diagram_with_runs` compares the prediction with simulated
reduced gradient flows from typical random starts; :func:`plot_phase_diagram` draws the regimes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..losses import coopetition_model
from .fixed_points import LABELS, FixedPoint, _fixed_points_batch, _label

__all__ = [
    "REGIMES",
    "PhaseDiagram",
    "RunCheck",
    "check_phase_diagram_with_runs",
    "phase_diagram",
    "phase_diagram_figure",
    "plot_phase_diagram",
]

REGIMES = (
    "mechanism 2 only stable (transient mechanism 1)",
    "both single-mechanism states stable (persistence)",
    "mechanism 1 only stable",
    "no stable single-mechanism state / degenerate",
)


@dataclasses.dataclass
class PhaseDiagram:
    mu1: np.ndarray
    alpha: np.ndarray
    regime: np.ndarray  # (n_mu1, n_alpha) index into REGIMES
    m1_status: np.ndarray  # strings: "stable", "saddle (k unstable)", "absent", ...
    m2_status: np.ndarray
    dims: tuple[float, ...]
    mu2: float


def _status(fps: Sequence[FixedPoint], label: str) -> str:
    cands = [f for f in fps if f.label == label]
    if not cands:
        return "absent"
    stable = [f for f in cands if f.stability == "stable"]
    return "stable" if stable else cands[0].description


def phase_diagram(
    dims: Sequence[float] = (20, 20, 20, 160),
    mu2: float = 0.0,
    mu1_values: Sequence[float] | None = None,
    alpha_values: Sequence[float] | None = None,
    grid: int = 13,
    n_starts: int = 512,
    seed: int = 0,
) -> PhaseDiagram:
    """Classify the single-mechanism fixed points over a (μ₁, α) grid."""
    mu1_values = np.linspace(0.0, 0.3, grid) if mu1_values is None else np.asarray(mu1_values, float)
    alpha_values = np.linspace(0.0, 0.3, grid) if alpha_values is None else np.asarray(alpha_values, float)
    regime = np.zeros((len(mu1_values), len(alpha_values)), dtype=int)
    s1 = np.empty(regime.shape, dtype=object)
    s2 = np.empty(regime.shape, dtype=object)
    grid_pts = [(i, j) for i in range(len(mu1_values)) for j in range(len(alpha_values))]
    mus = [(float(mu1_values[i]), float(mu2)) for i, _ in grid_pts]
    alphas = [float(alpha_values[j]) for _, j in grid_pts]
    all_fps = _fixed_points_batch(tuple(dims), mus, alphas, n_starts, seed)
    for (i, j), fps in zip(grid_pts, all_fps):
        st1, st2 = _status(fps, "mechanism 1 only"), _status(fps, "mechanism 2 only")
        s1[i, j], s2[i, j] = st1, st2
        if st2 == "stable" and st1 != "stable":
            regime[i, j] = 0
        elif st1 == "stable" and st2 == "stable":
            regime[i, j] = 1
        elif st1 == "stable":
            regime[i, j] = 2
        else:
            regime[i, j] = 3
    return PhaseDiagram(mu1_values, alpha_values, regime, s1, s2, tuple(dims), mu2)


@dataclasses.dataclass
class RunCheck:
    """Simulated runs at a few grid points compared with the predicted stable states."""

    rows: list[tuple[float, float, str, str, bool]]  # (mu1, alpha, predicted regime, observed, agrees)

    def lines(self) -> list[str]:
        out = [
            "phase-diagram check against simulated reduced runs (gradient flow from typical random inits):"
        ]
        for mu1, al, pred, obs, ok in self.rows:
            out.append(
                f"  mu1 = {mu1:.3g}, alpha = {al:.3g}: predicted {pred}; observed {obs} -> "
                f"{'agrees' if ok else 'DISAGREES'}"
            )
        return out


def check_phase_diagram_with_runs(
    pd: PhaseDiagram,
    points: Sequence[tuple[float, float]] = ((0.1, 0.1), (0.2, 0.05), (0.0, 0.1), (0.0, 0.2)),
    n_runs: int = 16,
    t_max: float = 2e5,
    seed: int = 0,
    max_steps: int = 50_000,
) -> RunCheck:
    """Simulate reduced gradient flows from typical random initial conditions (σ = 1, z ~ N(0,1))
    at the given (μ₁, α) and record which single-mechanism state each run ends in.

    μ₁ > 0 predicts every run ends with mechanism 2 only (a → 0); μ₁ = 0 predicts runs end in
    either single-mechanism state (both stable), never elsewhere. A run stops at loss < 1e-5, at
    t_max, or when the explicit solver exhausts ``max_steps`` (stiff once a vector is tiny and its
    partners large; reported as a solver failure); its state there is classified.
    """
    from ..losses import VectorStats, loss_params, loss_terms
    from ..methods import GradientFlow
    from ..reduced import simulate_reduced, typical_initial_stats

    rng = np.random.default_rng(seed)
    model = coopetition_model(pd.dims)
    rows = []
    for mu1, al in points:
        z = {v: np.clip(rng.standard_normal(n_runs), -3, 3) for v in model.vectors}
        stats = typical_initial_stats(model, 1.0, z)
        # stop once the loss is < 1e-5 (both single-mechanism states have loss 0); classify the
        # state at the stop (or at t_max)
        method = GradientFlow(
            t_max=t_max, n_save=2, rtol=1e-8, atol=1e-10, max_steps=max_steps, stop_loss=1e-5
        )
        lp = loss_params(model, (mu1, pd.mu2), al)
        res = simulate_reduced(model, method, stats, lp)
        fin = res.vectors["final"]
        st = {v: VectorStats(*(fin[f"{k}_{v}"] for k in ("P", "Q", "R", "E", "W"))) for v in model.vectors}
        terms = loss_terms(model, st, [np.full(n_runs, mu1), np.full(n_runs, pd.mu2)], al, model.dim)
        L1, L2 = np.asarray(terms.mechanisms[0]), np.asarray(terms.mechanisms[1])
        L1_0, L2_0 = 0.5, 0.5  # ½ΠR/N with R = n
        ends = [_label(a, b, L1_0, L2_0) for a, b in zip(L1, L2)]
        counts = {lab: ends.count(lab) for lab in LABELS if ends.count(lab)}
        obs = ", ".join(f"{k}: {v}/{n_runs}" for k, v in counts.items())
        failed = len(res.failures())
        if failed:
            obs += f" ({failed} solver failures)"
        if mu1 > 0:
            pred = "all runs end with mechanism 2 only"
            ok = counts.get("mechanism 2 only", 0) == n_runs
        else:
            pred = "runs end in mechanism 1 only or mechanism 2 only (both stable)"
            ok = counts.get("mechanism 1 only", 0) + counts.get("mechanism 2 only", 0) == n_runs
        rows.append((mu1, al, pred, obs, ok))
    return RunCheck(rows)


def phase_diagram_figure(pd: PhaseDiagram, checks: RunCheck | None = None):
    """The regimes over (μ₁, α), with the checked grid points marked (o agrees, x disagrees)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ..plotting import MIN_FONT, pyplot

    colors = ["#4C72B0", "#55A868", "#C44E52", "#BBBBBB"]
    fig, ax = pyplot().subplots(figsize=(6.4, 4.8), layout="constrained")
    dm = (pd.mu1[1] - pd.mu1[0]) if len(pd.mu1) > 1 else 1.0
    da = (pd.alpha[1] - pd.alpha[0]) if len(pd.alpha) > 1 else 1.0
    ax.imshow(
        pd.regime.T,
        origin="lower",
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=3.5,
        extent=(pd.mu1[0] - dm / 2, pd.mu1[-1] + dm / 2, pd.alpha[0] - da / 2, pd.alpha[-1] + da / 2),
        aspect="auto",
        interpolation="nearest",
    )
    present = sorted(set(pd.regime.ravel().tolist()))
    fig.legend(
        handles=[Patch(color=colors[k], label=REGIMES[k]) for k in present],
        loc="outside lower center",
        fontsize=MIN_FONT,
    )
    if checks is not None:
        for mu1, al, _, _, ok in checks.rows:
            ax.plot(mu1, al, marker="o" if ok else "x", color="k", ms=7, mfc="none" if ok else "k")
    ax.set_xlabel(r"$\mu_1$")
    ax.set_ylabel(r"$\alpha$")
    ax.set_title(
        "Reduced coopetition fixed points, dims "
        f"{tuple(int(d) if float(d).is_integer() else d for d in pd.dims)}, $\\mu_2$ = {pd.mu2:g}",
        fontsize=10,
    )
    return fig


def plot_phase_diagram(pd: PhaseDiagram, path: str, checks: RunCheck | None = None) -> None:
    """Draw the regimes over (μ₁, α) (:func:`phase_diagram_figure`) and write them atomically to
    ``path`` at 150 dpi (960 × 720 pixels)."""
    from ..plotting import save_figure

    save_figure(phase_diagram_figure(pd, checks), path, dpi=150)
