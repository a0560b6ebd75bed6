"""Hand-written references, one module per framework, looked up by backend name.

The asv suites `benchmarks.references` (the 10-armed bandit) and `benchmarks.train_references`
(a categorical_vae training step) time gradest against code written by hand in the framework
a backend runs on. That code lives here, one module per framework (``torch.py``, ``jax.py``),
each declaring which framework it is written in (``FRAMEWORK = "torch"``): `for_backend` finds
the module whose ``FRAMEWORK`` is the backend's name. A backend without one (a plugin
framework) has no reference: `for_backend` raises NotImplementedError naming why, which asv
shows as a skip and the tests turn into ``pytest.skip``; it is never given another
framework's code.

What a framework module provides (every framework import inside the functions, so that asv,
which imports every module of ``benchmarks/``, discovers the suites without that framework):

* the bandit, REINFORCE and Gumbel-softmax (``rewards`` [K] NumPy, θ = 0, each call returns
  float64 NumPy [count, K], or for the loop the framework's arrays, after the device finished):
  ``reinforce_vectorized(backend, rewards, count, seed)``, ``reinforce_single(backend, rewards,
  seed)``, ``reinforce_loop(backend, rewards, count, seed)`` and its ``LOOP_REPLICATES``,
  ``gumbel_softmax(backend, rewards, hard, count, seed)``: each returns a zero-argument call;
* the categorical_vae training step: ``VaeTrainStep(task, estimator, backend, num_samples=,
  temperature=, learning_rate=, seed=)`` with ``.step() -> float`` and ``.params() -> [P]``,
  and the pieces it is made of (``encoder``, ``reconstruction``, ``kl``, ``loss``, the
  samplers), which the tests compare with gradest's task one by one;
* the process set-up the benchmarks need from that framework (`benchmarks._grid.configure_process`),
  each optional: ``thread_environment(threads) -> {variable: value}`` (set before the
  framework starts), ``set_threads(threads)``, ``use_compilation_cache(folder)``.

``backend`` is always a built `gradest.backends.Backend` (its device and dtype, and the batches
of ``task.train_batch``). What the frameworks share without importing one (θ cut into the
VAE's named blocks, the MLP written with ``@`` and ``+``) is `benchmarks._references.vae_layout`.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType


@functools.lru_cache(maxsize=None)
def framework_modules() -> dict[str, ModuleType]:
    """{framework name: its reference module}, from the modules of this package that declare
    ``FRAMEWORK`` (importing them imports no framework)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        framework = getattr(module, "FRAMEWORK", None)
        if isinstance(framework, str):
            found[framework] = module
    return found


def for_backend(backend: str) -> ModuleType:
    """The reference module of ``backend``'s framework, or NotImplementedError (a skip) naming
    why there is none."""
    module = framework_modules().get(backend)
    if module is None:
        raise NotImplementedError(
            f"backend {backend!r} skipped: no hand-written reference is written for it (benchmarks/_references/ "
            f"has {', '.join(sorted(framework_modules())) or 'none'})")
    return module


def each_framework(hook: str):
    """(framework, function) of every reference module that defines the set-up ``hook``."""
    for framework, module in framework_modules().items():
        fn = getattr(module, hook, None)
        if callable(fn):
            yield framework, fn
