"""The ``temperature`` cell kind: the Gumbel-softmax bias/variance trade-off against τ.

Cells measure `gradest.gradient_stats` (the row of `gradest.kinds.gradient`) of
``gumbel_softmax(temperature=τ, hard=h)`` for h in (False, True) and each τ of the kind's grid,
at S = 1, on the first selected categorical task of `TASKS` (the VAE's cost is nonlinear in z,
so the relaxed and straight-through variants differ; on the bandit, linear in z, their
gradients coincide). The sweep runs when ``gumbel_softmax`` is selected; in the quick budget on
the first backend only. Resolving a small bias needs many replicates (the noise floor of the
measured bias² is variance / R): the grid sets R.

Frames: `temperature_stats` (the rows averaged over seeds per task x backend x hard x τ).
Figure: `temperature_sweep`, bias², variance and MSE against τ. Its rows are τ variants of
one estimator, not estimators of the leaderboard: it colours them by the τ = 1 variants'
labels, one colour per hard/soft form (`palette_labels`).
"""
from __future__ import annotations

import pandas as pd

from gradest.kinds.gradient import gradient_stats_row, measured_counts
from gradest.plotting.frames import canonical_label, done
from gradest.sweep.cell_kind import CellKind, register_cell_kind

#: categorical tasks for the sweep, by preference (the first one selected runs it)
TASKS = ("categorical_vae", "bandit")
ESTIMATOR = "gumbel_softmax"


def _color_label(hard) -> str:
    """The label whose colour the τ variants of the ``hard`` form take (the τ = 1 variant's)."""
    return f"{ESTIMATOR}[hard={hard},temperature=1.0]"


def temperature_stats(cells: pd.DataFrame, kind: str = "temperature") -> pd.DataFrame:
    """The cells of ``kind`` averaged over seeds per task x backend x hard x τ, with bias² and
    its interval from the mean bias norm, and the bias² noise floor variance / R."""
    frame = done(cells, kind)
    if frame.empty or "temperature" not in frame.columns:
        return pd.DataFrame()
    if "hard" not in frame.columns:
        frame["hard"] = frame["estimator"].str.contains("hard=True")
    frame["hard"] = frame["hard"].map(lambda v: str(v).lower() in ("true", "1"))
    keys = ["task", "backend", "hard", "temperature"]
    stats = [c for c in ("variance", "variance_low", "variance_high", "bias_norm", "bias_norm_low",
                         "bias_norm_high", "bias_sq", "mse", "mse_low", "mse_high", "num_replicates")
             if c in frame.columns]
    for c in stats + ["temperature"]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    out = frame.groupby(keys)[stats].mean().reset_index()
    if "bias_norm" in out.columns:
        out["bias_sq"] = out["bias_norm"] ** 2
        out["bias_sq_low"] = out["bias_norm_low"] ** 2
        out["bias_sq_high"] = out["bias_norm_high"] ** 2
    if "num_replicates" in out.columns:
        out["bias_sq_floor"] = out["variance"] / out["num_replicates"]
    return out


def temperature_sweep(cells: pd.DataFrame, palette, out):
    """Bias², variance and MSE against τ, one row of panels per task; a `Figure` or None."""
    from matplotlib.lines import Line2D

    from gradest.plotting.figure import Figure, backend_handles, positive, yerr
    from gradest.plotting.style import backend_line, backend_marker, finish, log_axis, save, subplots

    stats = temperature_stats(cells)
    if stats.empty or stats["temperature"].nunique() < 2:
        return None
    quantities = [(q, t) for q, t in (("bias_sq", "bias² = ‖E[g] − ∇L‖²"), ("variance", "variance"),
                                      ("mse", "MSE")) if q in stats.columns]
    tasks = sorted(stats["task"].unique())
    fig, axes = subplots(len(tasks), len(quantities), 3.6, [2.9] * len(tasks))
    labels = {}
    for r, task in enumerate(tasks):
        for c, (q, title) in enumerate(quantities):
            ax = axes[r][c]
            part = stats[stats["task"] == task]
            for (hard, backend), line in part.groupby(["hard", "backend"]):
                line = positive(line.sort_values("temperature"), q)
                if line.empty:
                    continue
                label = canonical_label(_color_label(hard))
                labels[label] = f"{label}: {'straight-through (hard)' if hard else 'relaxed'}"
                ax.errorbar(line["temperature"], line[q], yerr=yerr(line, q), color=palette(label),
                            ls=backend_line(backend), marker=backend_marker(backend), ms=4, capsize=2)
                if q == "bias_sq" and "bias_sq_floor" in line.columns:
                    ax.plot(line["temperature"], line["bias_sq_floor"], color=palette(label), ls=":", lw=1.0)
            log_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("temperature τ (log)")
            ax.set_ylabel("grad units²")
            ax.set_title(f"{title} — {task}" if len(tasks) > 1 else title)
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=text) for lab, text in sorted(labels.items())]
    handles += backend_handles(stats["backend"])
    if "bias_sq_floor" in stats.columns:
        handles.append(Line2D([], [], color="0.3", ls=":", label="bias² noise floor variance/R"))
    finish(fig, heights=[2.9] * len(tasks), wspace=0.75, title="Gumbel-softmax: bias and variance vs temperature",
           handles=handles, legend_title="gumbel_softmax")
    counts = measured_counts(done(cells, "temperature"))
    caption = (f"Gumbel-softmax gradient estimates at θ₀ on {', '.join(tasks)} against the temperature τ "
               f"({counts}), 95% intervals. Lower τ brings the relaxed sample closer to the discrete one (less "
               "bias) at the price of more variance; the straight-through variant is hard in the forward pass. "
               "Dotted: variance/R, the bias² that R replicates of an unbiased estimator would show (bias below "
               "it is not resolved). Colours are those of the τ = 1 variants in the other figures. Where f is linear "
               "in the sample (bandit), the relaxed and hard variants give the same gradient and one line hides "
               "the other.")
    return Figure("temperature_sweep", "Gumbel-softmax temperature sweep", caption, save(fig, out, "temperature_sweep"))


@register_cell_kind("temperature", description="Gumbel-softmax bias and variance against the temperature τ")
class TemperatureKind(CellKind):
    order = 20
    columns = {"temperature": "τ of the relaxation", "variance": "trace of the covariance",
               "bias_sq": "‖E g − ∇L‖²", "mse": "E‖g − ∇L‖²"}
    grid = {"quick": {"temperatures": (0.1, 0.3, 1.0, 3.0), "num_replicates": 400, "first_backend_only": True},
            "full": {"temperatures": (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), "num_replicates": None,
                     "first_backend_only": False}}

    def plan(self, ctx) -> list:
        task = next((t for t in TASKS if t in ctx.tasks), None)
        if task is None or not any(name == ESTIMATOR for name, _ in ctx.variants):
            return []
        grid = self.grid_for(ctx.budget)
        replicates = ctx.budget.num_replicates or grid["num_replicates"] or ctx.sizes(task).num_replicates
        backends = ctx.backends[:1] if grid["first_backend_only"] else ctx.backends
        cells = []
        for backend in backends:
            for hard in (False, True):
                for tau in grid["temperatures"]:
                    for seed in ctx.seeds(measured=True):
                        cells.append(ctx.cell(self.name, task, ESTIMATOR, {"temperature": float(tau), "hard": hard},
                                              backend, seed=seed, num_samples=1,
                                              settings={"num_replicates": int(replicates), "temperature": float(tau)}))
        return cells

    def run(self, cell, task, estimator):
        return gradient_stats_row(cell, task, estimator), None

    def palette_labels(self, rows) -> list:
        # one colour per hard/soft form, that of its τ = 1 variant, not one per τ
        return [_color_label(hard) for hard in (False, True)] if rows is not None and len(rows) else []

    def figures(self, cells, history, palette, out) -> list:
        return [("temperature_sweep", lambda: temperature_sweep(cells, palette, out))]
