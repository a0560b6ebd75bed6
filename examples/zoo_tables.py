"""REINFORCE, ARM, DisARM, REBAR and RELAX on the REBAR/RELAX toy: the tables of measured claims.

The task is ``binary_toy`` with one variable, f(b) = (b - t)², b ~ Bernoulli(σ(θ)), at
t = 0.45 and t = 0.499 [1, 2]: the two costs differ by 1 - 2t, so the gradient
∂L/∂θ = σ(θ)(1 - σ(θ))(1 - 2t) is tiny against the level of f (about 1/4). Since t < 1/2, b = 0
is the better outcome and the optimum is θ -> -∞.

Table 1, variance at θ = 0 (one sample per estimate, ``--replicates`` estimates, float64, the
same seed, so common random numbers): ``variance`` is the trace of the covariance of one
estimate with its 95% interval (`gradest.gradient_stats`), ``÷ REINFORCE`` the ratio to
REINFORCE's, ``|mean - ∇L| / se`` the distance of the mean estimate from the exact gradient in
standard errors (unbiased estimators: a |z| of a standard normal; 0 where the variance is 0 and
the mean exact). ``relax (φ₀)`` is RELAX at φ as ``init`` makes it (then it equals REBAR at the
same λ, η); ``relax (φ trained)`` after ``--phi-steps`` Adam steps (lr 0.03) on its φ loss at
θ = 0 (θ held fixed).

Table 2, θ during training: θ_t after t steps of Adam (learning rate ``--lr``, default 0.01, one
sample per step) from θ₀ = 0 with each estimator (`gradest.train`; RELAX's φ is trained alongside
θ with the same optimizer), for t in ``--checkpoints``; mean over ``--seeds`` seeds, with the
spread (min .. max) when more than one. Lower is better. ``exact`` (the exact gradient) is the
reference; ``seconds`` is the wall time of the runs (all seeds, with the per-step evaluation).
With one variable ARM's and DisARM's estimates are (1 - 2t) times a function of u, and Adam is
invariant to the scale of the gradient, so their trajectories do not depend on t.

Usage::

    python examples/zoo_tables.py                    # both backends, markdown to stdout
    python examples/zoo_tables.py --backends torch --seeds 1 --out zoo_tables.md
    python examples/zoo_tables.py --tables variance   # table 1 only (a few minutes)

[1] Tucker et al., REBAR: Low-variance, unbiased gradient estimates for discrete latent
    variable models, NeurIPS 2017.
[2] Grathwohl et al., Backpropagation through the Void: Optimizing control variates for
    black-box gradient estimation, ICLR 2018.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import gradest
from gradest.backends import get_backend
from gradest.measure import GradientSampler, summarize
from gradest import noise

TARGETS = (0.45, 0.499)
ESTIMATORS = [("reinforce", {}), ("arm", {}), ("disarm", {}), ("rebar", {}), ("relax", {})]


def train_phi(task, est, backend: str, steps: int, lr: float = 0.03, seed: int = 0) -> np.ndarray:
    """φ after ``steps`` Adam steps (torch.optim's defaults) on ``est.phi_loss`` at θ₀, one sample
    per step; the φ-gradient by the backend (jitted on jax), the update in NumPy."""
    B = get_backend(backend, dtype="float64")
    prob = task.problem(B, B.asarray(task.init_params()))
    state = est.init(prob.dist)
    specs = est.noise_spec(prob.dist, 1)
    grad = B.jit(B.grad(lambda phi, noise: est.phi_loss(phi, prob.f, prob.dist, noise, state)))
    phi = B.to_numpy(state["phi"]).astype(np.float64)
    m, v = np.zeros_like(phi), np.zeros_like(phi)
    for k in range(steps):
        step_noise = {n: noise.draw(B, seed, f"phi/{n}", s.kind, s.shape, k, 1)[0] for n, s in specs.items()}
        g = B.to_numpy(grad(B.asarray(phi), step_noise)).astype(np.float64)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        phi = phi - lr * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(v / (1 - 0.999 ** (k + 1))) + 1e-8)
    return phi


def variance_rows(backend: str, target: float, replicates: int, phi_steps: int, seed: int) -> list[dict]:
    task = gradest.get_task("binary_toy", target=target)
    rows = []
    for name, options in ESTIMATORS:
        est = gradest.get_estimator(name, **options)
        s = gradest.gradient_stats(task, est, backend=backend, num_replicates=replicates, seed=seed,
                                   dtype="float64", timing_repeats=1)
        label = {"relax": "relax (φ₀)", "rebar": "rebar (λ = 0.5, η = 1)"}.get(name, name)
        rows.append({**s, "estimator": label})
    if phi_steps:
        est = gradest.get_estimator("relax")
        phi = train_phi(task, est, backend, phi_steps, seed=seed)
        sampler = GradientSampler(task, est, backend=backend, dtype="float64", seed=seed, phi_warmup=0)
        sampler.state = {**sampler.state, "phi": sampler.backend.asarray(phi)}
        exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
        rows.append({"estimator": f"relax (φ after {phi_steps} steps)", **summarize(sampler.run(replicates), exact)})
    base = rows[0]["variance"]
    for row in rows:
        row["ratio"] = row["variance"] / base
        se = math.sqrt(row["variance"] / replicates)
        exact_scale = 1e-12 * (1.0 + row.get("exact_norm", 0.0))
        if se > exact_scale:
            row["z"] = row["bias_norm"] / se
        else:  # zero variance up to rounding: exact when the mean is
            row["z"] = 0.0 if row["bias_norm"] <= exact_scale else math.inf
    return rows


def theta_rows(backend: str, target: float, checkpoints: list[int], lr: float, seeds: list[int]) -> list[dict]:
    task = gradest.get_task("binary_toy", target=target)
    steps = max(checkpoints)
    rows = []
    for name, options in [("exact", {})] + ESTIMATORS:
        est = gradest.get_estimator(name, **options)
        thetas = np.empty((len(seeds), len(checkpoints)))
        start = time.perf_counter()
        for i, seed in enumerate(seeds):
            if steps == 0:
                thetas[i] = 0.0
                continue
            result = gradest.train(task, est, backend=backend, steps=steps, seed=seed, learning_rate=lr,
                                   dtype="float64", progress=False)
            p = result.history.set_index("step")["mean_prob"]  # σ(θ_t) of the row of step t
            for j, t in enumerate(checkpoints):
                thetas[i, j] = float(result.params[0]) if t == steps else math.log(p[t] / (1.0 - p[t]))
        rows.append({"estimator": name, "thetas": thetas, "seconds": time.perf_counter() - start})
    return rows


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e-3 and abs(x) < 1e4:
        return f"{x:.4g}"
    return f"{x:.3e}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"], choices=["torch", "jax"])
    parser.add_argument("--replicates", type=int, default=20000, help="estimates per variance (default 20000)")
    parser.add_argument("--phi-steps", type=int, default=300, help="φ steps for the trained RELAX row (0: skip)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[0, 100, 500, 2000])
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate of table 2 (default 0.01)")
    parser.add_argument("--seeds", type=int, default=3, help="training runs per estimator in table 2")
    parser.add_argument("--seed", type=int, default=0, help="seed of table 1")
    parser.add_argument("--tables", nargs="+", default=["variance", "training"], choices=["variance", "training"])
    parser.add_argument("--out", default=None, help="write the markdown here (default: stdout)")
    args = parser.parse_args(argv)
    if args.replicates < 2 or args.seeds < 1 or min(args.checkpoints) < 0 or args.phi_steps < 0:
        parser.error("--replicates must be >= 2, --seeds >= 1, --checkpoints and --phi-steps >= 0")
    checkpoints = sorted(set(args.checkpoints))
    seeds = list(range(args.seeds))

    out = ["# REINFORCE, ARM, DisARM, REBAR, RELAX on binary_toy (D = 1)", ""]
    for backend in args.backends if "variance" in args.tables else ():
        for target in TARGETS:
            rows = variance_rows(backend, target, args.replicates, args.phi_steps, args.seed)
            exact = gradest.exact_gradient(gradest.get_task("binary_toy", target=target), dtype="float64")[0]
            out += [f"## Variance at θ = 0, t = {target} ({backend}; ∂L/∂θ = {fmt(exact)}, "
                    f"R = {args.replicates}, S = 1)", ""]
            out.append(markdown(
                ["estimator", "variance", "95% interval", "÷ REINFORCE", "|mean - ∇L| / se"],
                [[r["estimator"], fmt(r["variance"]), f"{fmt(r['variance_low'])} .. {fmt(r['variance_high'])}",
                  fmt(r["ratio"]), f"{r['z']:.2f}"] for r in rows]))
            out.append("")
            print(f"variance table: {backend}, t={target} done", file=sys.stderr)
    for backend in args.backends if "training" in args.tables else ():
        for target in TARGETS:
            rows = theta_rows(backend, target, checkpoints, args.lr, seeds)
            spread = len(seeds) > 1
            out += [f"## θ after t Adam steps (lr {args.lr}, S = 1), t = {target} ({backend}; "
                    f"{'mean [min .. max] over ' + str(len(seeds)) + ' seeds' if spread else 'seed 0'})", ""]
            header = ["estimator"] + [f"θ_{t}" for t in checkpoints] + ["seconds"]
            body = []
            for r in rows:
                cells = []
                for j in range(len(checkpoints)):
                    col = r["thetas"][:, j]
                    cells.append(f"{col.mean():.3f} [{col.min():.2f} .. {col.max():.2f}]" if spread
                                 else f"{col.mean():.3f}")
                body.append([r["estimator"]] + cells + [f"{r['seconds']:.1f}"])
            out.append(markdown(header, body))
            out.append("")
            print(f"training table: {backend}, t={target} done", file=sys.stderr)
    text = "\n".join(out)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
