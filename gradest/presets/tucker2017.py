"""Preset ``tucker2017``: the binary toy of REBAR (Tucker et al. 2017, Figure 1), minimize
E[(b - t)²] over b ~ Bernoulli(sigmoid(θ)), at t = 0.45 (REBAR's) and t = 0.499 (RELAX's,
Grathwohl et al. 2018, Sec. 6.1 and Figure 1): the exact loss and the log-variance of the
gradient along training for REINFORCE, REBAR, RELAX, ARM and DisARM.

Published values: none (the figures are plots, and no value is printed in the text).
Orderings: the RELAX paper, Sec. 6.1 (t = 0.499, REINFORCE, REBAR and RELAX compared in its
Figure 1): its learned surrogate stays close to f and points the reparameterization part the
right way, so RELAX reaches the best performance — checked as RELAX's final exact loss below
REBAR's and REINFORCE's. Not transcribed: the REBAR paper's own Figure 1 and its text about it
(its text was not available to read), so t = 0.45 runs without a published ordering; and the
number of steps and learning rates of both figures.

Here: one coordinate, θ₀ = 0 (p = 1/2), Adam at the task's 0.1 (quick) / 0.01 (full), S = 1
(ARM and DisARM use their antithetic pair), the variance of the estimator being trained
measured at θ_t every ``track_every`` steps, with its state of that step (RELAX's and REBAR's
learned parameters as trained so far).
"""
from __future__ import annotations

from gradest.presets import Ordering, Preset, PresetBudget, PresetEstimator, PresetTask, register_preset

_CLAIM = "RELAX achieves the best performance on the toy at t = 0.499"
_WHERE = "Grathwohl et al. 2018, Sec. 6.1 (Figure 1)"

PRESET = register_preset(Preset(
    name="tucker2017",
    title="Tucker et al. 2017 (REBAR) Figure 1 toy, and the RELAX paper's: loss and gradient log-variance",
    citation="G. Tucker, A. Mnih, C. J. Maddison, D. Lawson, J. Sohl-Dickstein. REBAR: Low-variance, unbiased "
             "gradient estimates for discrete latent variable models. NeurIPS 2017 (arXiv:1703.07370), Figure 1; "
             "W. Grathwohl et al. Backpropagation through the Void. ICLR 2018 (arXiv:1711.00123), Sec. 6.1, Figure 1",
    setting="minimize E[(b - t)^2], b ~ Bernoulli(theta) one variable, t = 0.45 (REBAR) and t = 0.499 (RELAX); "
            "training curves and gradient log-variance of REINFORCE, REBAR and RELAX",
    tasks=(PresetTask("t=0.45", "binary_toy", options={"target": [0.45]}, description="t = 0.45 (REBAR)"),
           PresetTask("t=0.499", "binary_toy", options={"target": [0.499]}, description="t = 0.499 (RELAX)")),
    estimators=(PresetEstimator("reinforce", paper="REINFORCE"), PresetEstimator("rebar", paper="REBAR"),
                PresetEstimator("relax", paper="RELAX"), PresetEstimator("arm"), PresetEstimator("disarm")),
    quick=PresetBudget(steps=1000, seeds=3, learning_rate=0.1, track_every=50, track_replicates=100),
    full=PresetBudget(steps=10_000, seeds=10, learning_rate=0.01, track_every=100, track_replicates=1000),
    orderings=(Ordering("t=0.499", "relax", "rebar", "final_exact_loss", _CLAIM, _WHERE),
               Ordering("t=0.499", "relax", "reinforce", "final_exact_loss", _CLAIM, _WHERE)),
    notes="No published value is transcribed: both Figures 1 are plots. Not transcribed: REBAR's Figure 1 and "
          "the text about it (t = 0.45 has no ordering), the steps and learning rates of either figure.",
))
