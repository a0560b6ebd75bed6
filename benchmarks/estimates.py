"""Cost of gradient estimates over the grid: time and peak memory of one vectorized call.

What is timed is the public path, `gradest.GradientSampler.run(R)`: R independent estimates of
dL/dθ at the task's initial θ, each averaging `_grid.NUM_SAMPLES` samples, drawn from the fixed
seed `_grid.SEED`, returned as a NumPy array [R, P] (which waits for the device: the copy to
the host synchronizes). R per task is the task's ``benchmark_sizes.num_replicates``
(`_grid.settings`). The sampler is built and called once in ``setup`` (jit compilation,
allocator warm-up) so that the timed call is the steady state.

Each class is one suite per distribution kind (`_grid.suite_classes`) of the grid
``GRADEST_ASV_GRID`` chooses (default or full, `_grid.suites`), e.g.
``GradientEstimate_categorical``:

* ``GradientEstimate_<kind>.time_estimate``: seconds of one call of R estimates.
* ``GradientEstimate_<kind>.peakmem_estimate``: peak resident memory of the process around
  that call.
* ``GpuMemory_<kind>.track_gpu_peak_memory``: peak device memory of that call on ``cuda``
  (`Backend.peak_memory_bytes`: torch's max_memory_allocated after a reset; jax's allocator
  peak since the process started, which includes the warm-up of the same call). These suites
  exist only on a machine with an NVIDIA GPU.
"""
from __future__ import annotations

from gradest import measure as _measure

from . import _grid


class _SamplerSetup:
    """The grid and the setup shared by the classes below (no benchmarks of its own)."""

    param_names = _grid.PARAM_NAMES
    version = "1"
    timeout = 600

    def setup(self, estimator, task, backend, device):
        case = _grid.prepare(estimator, task, backend, device)
        self.backend = case.backend
        self.replicates = case.sizes.num_replicates
        self.sampler = _measure.GradientSampler(case.task, case.estimator, backend=case.backend,
                                                num_samples=case.num_samples, seed=_grid.SEED)
        self.sampler.run(self.replicates)  # warm-up: compilation and allocation


class _GradientEstimate(_SamplerSetup, _grid.StableTiming):
    """One vectorized call of R gradient estimates (`GradientSampler.run`)."""

    def time_estimate(self, estimator, task, backend, device):
        self.sampler.run(self.replicates)

    def peakmem_estimate(self, estimator, task, backend, device):
        self.sampler.run(self.replicates)


class _GpuMemory(_SamplerSetup):
    """Peak GPU memory of one vectorized call of R gradient estimates (cuda only)."""

    def setup(self, estimator, task, backend, device):
        if device != "cuda":
            raise NotImplementedError("GPU memory is tracked on device 'cuda' only")
        super().setup(estimator, task, backend, device)

    def track_gpu_peak_memory(self, estimator, task, backend, device):
        self.backend.reset_peak_memory()
        self.sampler.run(self.replicates)
        return self.backend.peak_memory_bytes()

    track_gpu_peak_memory.unit = "bytes"


_grid.suite_classes(_GradientEstimate, globals())
_grid.suite_classes(_GpuMemory, globals(), devices=["cuda"])
