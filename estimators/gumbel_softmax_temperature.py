"""The ``temperature`` cell kind: the Gumbel-softmax bias/variance trade-off against τ.

Beside the ``gumbel_softmax`` estimator it sweeps: cells measure `gradest.gradient_stats` of
``gumbel_softmax(temperature=τ, hard=h)`` for h in (False, True) and each τ of the kind's grid,
at S = 1, on the first selected categorical task of `TASKS` (the VAE's cost is nonlinear in z,
so the relaxed and straight-through variants differ; on the bandit, linear in z, their
gradients coincide). The sweep runs when ``gumbel_softmax`` is selected; in the quick budget on
the first backend only. Resolving a small bias needs many replicates (the noise floor of the
measured bias² is variance / R): the grid sets R.
"""
from __future__ import annotations

from gradest.sweep.kinds import CellKind, register_cell_kind
from gradest.sweep.kinds.gradient import measure

#: categorical tasks for the sweep, by preference (the first one selected runs it)
TASKS = ("categorical_vae", "bandit")
ESTIMATOR = "gumbel_softmax"


@register_cell_kind("temperature", description="Gumbel-softmax bias and variance against the temperature τ")
class TemperatureKind(CellKind):
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
                        cells.append(ctx.cell("temperature", task, ESTIMATOR, {"temperature": float(tau), "hard": hard},
                                              backend, seed=seed, num_samples=1,
                                              settings={"num_replicates": int(replicates), "temperature": float(tau)}))
        return cells

    def run(self, cell, task, estimator):
        return measure(cell, task, estimator), None

    def figures(self, cells, history, palette, out) -> list:
        from gradest.reports import figures as FG

        return [("temperature_sweep", lambda: FG.temperature_sweep(cells, palette, out))]
