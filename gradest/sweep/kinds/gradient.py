"""The ``gradient`` cell kind: `gradest.gradient_stats` of an estimator variant on a task at θ₀.

Cells: every selected task x backend x variant (`PlanContext.variants_on`) x S of the task's
declared ``sample_sizes`` x measured seed, each over the task's ``num_replicates``. A row
carries the statistics of `gradest.measure.gradient_stats` (variance, bias, MSE, cosine, SNR,
seconds per estimate with their intervals, threads, φ warm-up steps).
"""
from __future__ import annotations

from gradest.sweep.kinds import CellKind, register_cell_kind

#: timed vectorized calls per seconds_per_estimate (their median)
TIMING_REPEATS = 5
_IDENTITY = ("task", "estimator", "backend", "device", "num_samples", "seed")


def stats_row(stats: dict) -> dict:
    """A row of `gradient_stats`'s numbers (the identification columns come from the cell)."""
    from gradest.sweep.store import scalar

    return {k: scalar(v) for k, v in stats.items() if k not in _IDENTITY}


def measure(cell, task, estimator) -> dict:
    from gradest.measure import gradient_stats

    return stats_row(gradient_stats(task, estimator, backend=cell.backend, device=cell.device,
                                    num_replicates=int(cell.settings["num_replicates"]),
                                    num_samples=cell.num_samples, seed=cell.seed, timing_repeats=TIMING_REPEATS))


@register_cell_kind("gradient", description="variance, bias, MSE and cost of estimates at θ₀")
class GradientKind(CellKind):
    columns = {
        "variance": "trace of the covariance of one estimate", "bias_norm": "‖E g − ∇L‖",
        "bias_sq": "‖E g − ∇L‖²", "mse": "E‖g − ∇L‖²", "cosine_to_exact": "mean cosine to ∇L",
        "snr": "‖E g‖ / √variance", "seconds_per_estimate": "median seconds per estimate",
        "work_normalized_variance": "variance × seconds per estimate",
    }

    def plan(self, ctx) -> list:
        cells = []
        for task in ctx.tasks:
            sizes = ctx.sizes(task)
            for backend in ctx.backends:
                for name, options in ctx.variants_on(backend):
                    for S in sizes.sample_sizes:
                        for seed in ctx.seeds(measured=True):
                            cells.append(ctx.cell("gradient", task, name, options, backend, seed=seed, num_samples=S,
                                                  settings={"num_replicates": int(sizes.num_replicates)}))
        return cells

    def run(self, cell, task, estimator):
        return measure(cell, task, estimator), None

    def figures(self, cells, history, palette, out) -> list:
        from gradest.reports import figures as FG

        return [(name, lambda fn=getattr(FG, name): fn(cells, palette, out))
                for name in ("variance_vs_samples", "bias_variance_mse", "efficiency_frontier")]
