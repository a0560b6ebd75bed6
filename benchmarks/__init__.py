"""gradest's asv benchmark suites (``asv run``; see docs/benchmarks.md).

The grid suites below run over the default grid (each estimator's core variants on one task
per distribution kind: a quick pass in minutes) or, with ``GRADEST_ASV_GRID=full``, over every
estimator x task x variant (`benchmarks._grid`); the benchmark names are the same in both.

* `benchmarks.estimates`: time and peak memory of one vectorized call of R gradient estimates,
  and GPU memory, over the registry's estimator x task x backend x device grid.
* `benchmarks.statistics`: variance, squared bias, MSE and work-normalized variance over the
  same grid, against the exact gradient.
* `benchmarks.training`: time of one training step and the loss after a fixed training budget.
* `benchmarks.references`: hand-written implementations next to gradest's on the 10-armed
  bandit, so that the ratios show in one run.
* `benchmarks.train_references`: a categorical_vae training step of gradest against a
  hand-written one of the same framework.

Helpers (no benchmarks of their own; asv imports them too): `benchmarks._grid`, the grid
(labels, suites, sizes, skipping, the process set-up), and `benchmarks._references`, the
hand-written code, one module per framework.
"""
