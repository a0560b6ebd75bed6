"""``make gpu-check``: every CUDA path of gradest checked by one prepared run on a GPU machine.

Run ``python -m tools.gpu_check [--out DIR]`` from the repository root (what ``make gpu-check``
does) with the Python that holds CUDA builds of torch and jax (with optax, seaborn,
scikit-learn, pandas, rich). It needs no network and no ``make venv``, and fits one GPU for at
most `stages.DEFAULT_BUDGET` seconds (8 minutes; ``--budget``). Steps, each in its own process
with its own deadline (docs/gpu.md has the details):

1. **probe** (`probe`; at most 2 minutes): the machine, the GPU (``nvidia-smi``), the versions
   of every framework, whether torch and jax each see a CUDA device. Without a CUDA device (no
   NVIDIA driver, ``CUDA_VISIBLE_DEVICES`` hiding every device, or frameworks that see none)
   the check says so, writes its summary, runs nothing GPU-bound and exits 0: CI and laptops
   run it as a smoke test.
2. **import** (`importable`): gradest importable from this working tree without downloading
   anything: as it is when already installed from here, else ``pip install --no-deps
   --no-build-isolation --no-index -e .`` (``--user`` outside a virtual environment when that
   fails), else a finder for the source tree in gradest's own processes (``--no-install`` goes
   straight there; asv then cannot run).
3. **pytest** (`stages`, at most 40 % of the budget): ``pytest -m gpu`` over the test files that
   hold GPU tests (``tests/test_gpu.py``), with pytest-xdist workers where installed (JAX does
   not preallocate GPU memory: ``XLA_PYTHON_CLIENT_PREALLOCATE=false``); the JUnit XML read back.
4. **timings** (`timings`, at most 22 %): one ``categorical_vae`` training step at the shapes of
   Jang et al. through gradest's ``Trainer`` against the hand-written step of the same
   framework (the references of ``benchmarks/_references/``, reused as they are), and
   R = 100,000 REINFORCE estimates on the 10-armed bandit on the GPU against the CPU.
5. **asv** (`asv`, the rest): the ``cuda`` rows of the asv suites in the current environment,
   results in ``DIR/asv/results``; asv from the environment or from carried wheels
   (``--wheels DIR`` / ``$GRADEST_WHEELS`` / ``.whl/``), else skipped with a note.

The summary (`summary`: ``summary.json`` and ``summary.md``) goes to ``--out`` (default
``results/gpu-check/<UTC time>``) with the logs; it is rewritten after every step, so a run cut
short keeps what it did. The exit status is 0 when nothing failed (also without a CUDA
device), 1 otherwise. ``--rehearse`` runs the same steps with the CPU standing in for the GPU.

Modules, one job each: `process` (commands with deadlines and logs), `importable` (gradest from
the source tree), `probe` (machine, CUDA, versions), `stages` (the budget, the run's summary,
pytest and the timings process), `timings` (the timing process), `asv` (wheels and asv runs),
`summary` (the Markdown page), `__main__` (the CLI and the order of the steps).
"""
