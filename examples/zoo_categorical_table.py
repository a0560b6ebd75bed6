"""The categorical estimator zoo on ``categorical_vae``: variance and bias against the exact
gradient, at initialization and after training.

The VAE (scikit-learn digits, static binarization) gets a latent space small enough to
enumerate (default 2 latents × 3 classes = 9 configurations per image), so that
`gradest.exact_gradient` is the true gradient of the real model. Every registered estimator
that supports categorical latents is measured at θ₀ and at θ_T, the parameters after
``--steps`` Adam steps with exact gradients (`gradest.train(task, "exact")`), with the same
seed (common random numbers) and the same S samples per estimate:

* ``variance``: trace of the covariance of one estimate (S samples), with its 95% interval;
* ``bias``: ‖E[estimate] - exact‖ with its 95% interval (biased estimators have an interval
  away from 0; unbiased ones include 0 up to noise), and ``‖exact‖`` for scale;
* ``cos``: mean cosine between single estimates and the exact gradient;
* ``µs``: seconds per estimate (best of 3 vectorized calls), times 10⁶.

``vimco`` optimizes the S-sample bound, not the ELBO: it runs on the same model with
``kl="sampled"`` (f a negative log importance weight; the same expected loss, so the same
exact gradient), and its "bias" is the distance between the bound's gradient and the ELBO's.
Estimators with trainable φ (nvil, relax) are measured with φ as ``init`` makes it (training
θ with ``exact`` does not train φ).

Usage::

    python examples/zoo_categorical_table.py                      # torch, markdown to stdout
    python examples/zoo_categorical_table.py --backend jax --replicates 2000 --out zoo.md
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import gradest
from gradest.measure import UnsupportedCombinationError, supporting_estimators

#: the variants listed first (by name and options); every other registered categorical
#: estimator follows with its default options
VARIANTS = [
    ("reinforce", {"baseline": "none"}),
    ("reinforce", {"baseline": "moving_average"}),
    ("reinforce", {"baseline": "loo"}),
    ("reinforce", {"baseline": "optimal"}),
    ("gumbel_softmax", {"temperature": 1.0, "hard": False}),
    ("gumbel_softmax", {"temperature": 0.5, "hard": False}),
    ("gumbel_softmax", {"temperature": 1.0, "hard": True}),
    ("straight_through", {}),
    ("gumbel_rao", {"temperature": 1.0, "num_mc": 10}),
    ("reinmax", {"temperature": 1.0}),
    ("indecater", {}),
    ("vimco", {}),
]
SKIP = {"exact"}


def estimator_variants():
    listed = {name for name, _ in VARIANTS}
    extra = [(name, {}) for name in supporting_estimators("categorical") if name not in listed | SKIP]
    return [(name, opts) for name, opts in VARIANTS + extra if name in gradest.list_estimators()]


def interval(value, low, high, digits=3):
    return f"{value:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def measure(tasks, est, thetas, args):
    """{label: stats} at each θ, or a reason string when the estimator cannot run."""
    task = tasks["log_weight"] if "log_weight" in est.requires else tasks["default"]
    out = {}
    for where, theta in thetas.items():
        try:
            out[where] = gradest.gradient_stats(task, est, backend=args.backend, num_replicates=args.replicates,
                                                num_samples=max(args.samples, est.min_samples), seed=args.seed,
                                                params=theta)
        except UnsupportedCombinationError as err:
            return str(err)
    return out


def markdown(rows, thetas, exact_norms, args, train_info):
    head = ["estimator", "S"]
    for where in thetas:
        head += [f"variance ({where})", f"bias ({where})", f"cos ({where})"]
    head += ["µs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, S, stats in rows:
        if isinstance(stats, str):
            lines.append(f"| {label} | {S} | " + " | ".join(["—"] * (len(head) - 2)) + " |")
            continue
        cells = [label, str(S)]
        for where in thetas:
            s = stats[where]
            cells += [interval(s["variance"], s["variance_low"], s["variance_high"]),
                      interval(s["bias_norm"], s["bias_norm_low"], s["bias_norm_high"]),
                      f"{s['cosine_to_exact']:.3f}"]
        cells.append(f"{1e6 * stats[next(iter(thetas))]['seconds_per_estimate']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"categorical_vae (digits, {args.latents} latents × {args.classes} classes, batch "
            f"{args.batch_size}), backend {args.backend}, {args.replicates} replicates per cell, seed {args.seed}; "
            f"‖exact‖ = " + ", ".join(f"{exact_norms[w]:.4g} ({w})" for w in thetas)
            + f"; trained: {train_info}. Intervals are 95%.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "jax"])
    parser.add_argument("--latents", type=int, default=2)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--steps", type=int, default=300, help="Adam steps with exact gradients")
    parser.add_argument("--samples", type=int, default=4, help="S, samples per estimate")
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the markdown table here (default: stdout)")
    args = parser.parse_args(argv)

    common = dict(num_latents=args.latents, num_categories=args.classes, batch_size=args.batch_size)
    tasks = {"default": gradest.get_task("categorical_vae", **common),
             "log_weight": gradest.get_task("categorical_vae", kl="sampled", **common)}
    task = tasks["default"]
    if not task.has_exact():
        sys.exit(f"{args.classes}^{args.latents} latent configurations are too many to enumerate; "
                 "use fewer latents or classes")

    start = time.perf_counter()
    result = gradest.train(task, "exact", backend=args.backend, steps=args.steps, seed=args.seed, progress=False)
    history = result.history
    train_info = (f"{args.steps} Adam steps with exact gradients, loss {history['loss'].iloc[0]:.3f} -> "
                  f"{history['loss'].iloc[-1]:.3f} ({time.perf_counter() - start:.0f} s)")
    thetas = {"init": task.init_params(), "trained": result.params}
    exact_norms = {w: float(np.linalg.norm(gradest.exact_gradient(task, backend=args.backend, params=t)))
                   for w, t in thetas.items()}

    rows = []
    for name, options in estimator_variants():
        est = gradest.get_estimator(name, **options)
        t0 = time.perf_counter()
        stats = measure(tasks, est, thetas, args)
        S = max(args.samples, est.min_samples)
        rows.append((est.label, S, stats))
        status = stats if isinstance(stats, str) else "ok"
        print(f"{est.label}: {time.perf_counter() - t0:.1f} s {status if status != 'ok' else ''}", file=sys.stderr)

    table = markdown(rows, thetas, exact_norms, args, train_info)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
