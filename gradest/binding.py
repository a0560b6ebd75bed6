"""The binding of an estimator to a task: whether they can run together, and the functions of
θ that measuring and training both compile.

* `check_compatible(task, estimator, S)` raises `UnsupportedCombinationError` (before any
  computation) naming why a pair cannot run: the distribution kind, S below the estimator's
  ``min_samples``, a capability the task lacks, an exact loss the task has not, or the task's
  own ``incompatibility``; `supporting_estimators(kind)` lists the registered estimators of a
  distribution kind, for that message.
* `make_loss(task, estimator, B)`: ``loss(θ [P], noise, state, batch) -> (scalar, state)``,
  the mean of the estimator's surrogate over S samples plus the task's deterministic term,
  for ONE replicate (``noise``: ``{"estimator": {name: [*shape]}, "task": {name: [*shape]}}``,
  no replicate axis). Its gradient in θ is one estimate of dL/dθ.
* `noise_specs(task, estimator, B, θ, S)`: the noise that loss needs,
  ``{"estimator": {name: NoiseSpec}, "task": {name: NoiseSpec}}`` (no task noise for
  estimators that use the exact loss); `draw_noise` draws it for replicates
  first .. first+count-1 as ``{group: {name: [count, *shape]}}`` (`gradest.noise`).
* `phi_objective(task, estimator, B)`: ``(φ, θ, noise, state, batch) -> scalar``, the
  estimator's φ loss with θ held constant (estimators with trainable φ).
* `default_samples(estimator, S)`: S, or the estimator's ``min_samples`` when None.
* `auto_chunk(task, B, specs, S)`: replicates per vectorized call from a memory budget
  (`replicate_bytes`: the bytes one replicate is estimated to hold).

Tasks and estimators are built objects here (`gradest.get_task` / `gradest.get_estimator`
resolve names before).
"""
from __future__ import annotations

import numpy as np

from gradest import noise
from gradest.registry import ESTIMATORS, get_estimator
from gradest.validation import integer

__all__ = ["UnsupportedCombinationError", "supporting_estimators", "check_compatible", "default_samples",
           "make_loss", "noise_specs", "draw_noise", "phi_objective", "auto_chunk", "CHUNK_BYTES",
           "MAX_STATIC_CHUNK", "MAX_CHUNK", "replicate_bytes"]

#: memory budget (bytes) of one vectorized chunk of replicates, before the task's own hint
CHUNK_BYTES = 256 * 2**20
#: largest chunk where compiled functions are shape-specialized (padding costs at most this)
MAX_STATIC_CHUNK = 16384
#: largest chunk elsewhere
MAX_CHUNK = 1 << 16


class UnsupportedCombinationError(ValueError):
    """An estimator x task combination that cannot run (raised before any computation)."""


def supporting_estimators(kind: str) -> list[str]:
    """The registered estimators (built with their defaults) that support distribution ``kind``."""
    names = []
    for name in ESTIMATORS.names():
        try:
            est = get_estimator(name)
        except Exception:  # an estimator whose defaults need options is not listed here
            continue
        if kind in est.supports:
            names.append(name)
    return names


def check_compatible(task, estimator, num_samples: int = 1) -> None:
    """Raise `UnsupportedCombinationError` naming why ``estimator`` cannot run on ``task``."""
    kind = task.distribution_kind
    if kind not in estimator.supports:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} does not support task {task.name!r}: the task samples from a "
            f"{kind} distribution, and {estimator.name!r} supports {', '.join(sorted(estimator.supports)) or 'nothing'}. "
            f"Estimators that support {kind}: {', '.join(supporting_estimators(kind))}")
    if num_samples < estimator.min_samples:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs num_samples >= {estimator.min_samples} "
            f"(its baseline is computed from the other samples); got num_samples={num_samples}")
    missing = set(estimator.requires) - set(getattr(task, "capabilities", ()))
    if missing:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs the task capabilities {', '.join(sorted(missing))}, which task "
            f"{task.name!r} does not offer (it offers: {', '.join(sorted(task.capabilities)) or 'none'})")
    if estimator.requires_exact and not task.has_exact():
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs the task's exact loss, and task {task.name!r} with these "
            f"options has none (too large to enumerate, or no closed form); use a sampling estimator")
    reason = getattr(task, "incompatibility", lambda est: None)(estimator)
    if reason:
        raise UnsupportedCombinationError(reason)


def default_samples(estimator, num_samples) -> int:
    """S: ``num_samples``, or the estimator's ``min_samples`` when None."""
    if num_samples is None:
        return max(1, int(estimator.min_samples))
    return integer("num_samples", num_samples)


def make_loss(task, estimator, backend, batch=None):
    """``loss(θ, noise, state, batch=batch) -> (scalar, new_state)``: the surrogate loss of one
    replicate (``noise``: ``{"estimator": {...}, "task": {...}}`` without a replicate axis)."""
    B = backend
    use_task_noise = not estimator.requires_exact
    default_batch = batch

    def loss(params, noise, state, batch=default_batch):
        prob = task.problem(B, params, noise=noise.get("task") if use_task_noise else None, batch=batch)
        per_sample, new_state = estimator.surrogate(prob.f, prob.dist, noise["estimator"], state)
        return B.mean(per_sample) + prob.extra, new_state

    return loss


def noise_specs(task, estimator, backend, params, num_samples: int, batch=None) -> dict:
    """``{"estimator": {name: NoiseSpec}, "task": {name: NoiseSpec}}`` at S = ``num_samples``."""
    dist = task.problem(backend, params, batch=batch).dist
    specs = {"estimator": dict(estimator.noise_spec(dist, num_samples)), "task": {}}
    if not estimator.requires_exact:
        specs["task"] = dict(task.noise_spec(num_samples))
    return specs


def draw_noise(backend, specs: dict, seed: int, first: int, count: int) -> dict:
    """{group: {name: [count, *shape]}} for replicates first .. first+count-1 (`gradest.noise`)."""
    return noise.draw_tree(backend, specs, seed, first, count)


def phi_objective(task, estimator, backend):
    """``(φ, θ, noise, state, batch) -> scalar``: the estimator's φ loss with θ held constant."""
    B = backend
    use_task_noise = not estimator.requires_exact

    def objective(phi, theta, noise, state, batch):
        theta = B.stop_gradient(theta)  # the distribution's parameters are held constant
        prob = task.problem(B, theta, noise=noise.get("task") if use_task_noise else None, batch=batch)
        return estimator.phi_loss(phi, prob.f, prob.dist, noise["estimator"], dict(state, phi=phi))

    return objective


def auto_chunk(task, backend, specs, num_samples: int) -> int:
    """Replicates per vectorized call from the memory budget `CHUNK_BYTES` (a power of two, at
    most `MAX_STATIC_CHUNK` where compiled functions are shape-specialized, else `MAX_CHUNK`)."""
    per_replicate = replicate_bytes(task, backend, specs, num_samples)
    chunk = max(1, CHUNK_BYTES // max(per_replicate, 1))
    chunk = 1 << (int(chunk).bit_length() - 1)
    return int(min(chunk, MAX_STATIC_CHUNK if backend.static_shapes else MAX_CHUNK))


def replicate_bytes(task, backend, specs, num_samples: int) -> int:
    """Bytes one replicate of a compiled call is estimated to hold: its gradient and θ's
    cotangents (4 P), its noise (8 per element) and the task's activations (4 per element of
    ``task.activation_elements(S)``), at the backend's item size (`auto_chunk`'s budget;
    `gradest.memory` checks a chunk against the available memory with it)."""
    itemsize = 8 if backend.dtype == "float64" else 4
    noise_elems = sum(int(np.prod(s.shape)) for g in specs.values() for s in g.values())
    hint = task.activation_elements(num_samples)
    return int((4 * task.num_params + 8 * noise_elems + 4 * hint) * itemsize)
