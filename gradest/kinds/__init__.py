"""The built-in cell kinds, one file each (the contract: `gradest.sweep.cell_kind`).

* `gradient` (order 10): `gradest.gradient_stats` of each estimator variant on each task at
  θ₀; its statistics are what the leaderboard ranks; figure: variance against S;
* `temperature` (20): the Gumbel-softmax bias/variance trade-off against τ;
* `train` (30): training runs and their histories (also the cells of `gradest.presets`);
  figures: training curves, the trained estimator's variance along training;
* `lasso_delta` (40): the Huber width δ of the Lasso against the gap to scikit-learn's optimum.

Each file owns its kind's plan, run, columns, the frames it derives from its rows and its
figures; a new kind (or a new figure of a kind) is that one file. The kind registry imports
every module of this package on first use (`gradest.sweep.cell_kind.KINDS`).
"""
