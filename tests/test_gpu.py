"""GPU tests: every CUDA path of gradest (``pytest -m gpu``; ``make gpu-check`` runs them).

Without a CUDA device every test here skips (at collection, without importing a framework,
when the machine has no NVIDIA driver). A backend whose framework sees no CUDA device skips
its own tests. ``GRADEST_GPU_TEST_DEVICE=cpu`` (``make gpu-check`` with ``--rehearse``) runs
them with the CPU standing in for the GPU: that proves the tests, not the GPU.

* the conformance kit on the device: `check_estimator(device=...)` for every registered
  estimator (and the built-in variants the CPU kit checks), in both backends, with torch<->jax
  parity on the device; `check_task` on the device where the kit takes a device;
* CPU <-> device agreement of values on the same NumPy noise in float64 (every task's f, log p,
  exact loss and gradient; every estimator's surrogate, loss, gradient, state and φ loss):
  near-exact in both frameworks, since no generator is involved;
* CPU <-> device agreement of the statistics of R estimates drawn from each framework's own
  generator (float32, the default): a two-sample z-test of means and variances for torch,
  whose CPU (Mersenne Twister) and CUDA (Philox) generators give different numbers; for JAX,
  whose threefry bits are the same on every device, also replicate by replicate (TF32 off);
* the noise itself: JAX's bits identical on CPU and device and its floats within a few ulps;
  torch's draws on each device from the right distribution (Kolmogorov-Smirnov); on the
  device, replicate i independent of the window it is drawn in;
* determinism under a seed (estimates and training, bit for bit), training on the device, and
  the device's peak-memory counter.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import os
import sys
from statistics import NormalDist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # tools/ is run from the repository root, never installed

import tools.gpu_check.importable  # noqa: E402,F401  (gradest from its source tree when the GPU check asks for that)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gradest  # noqa: E402
from gradest import noise as gnoise  # noqa: E402
from gradest.backends import BACKENDS, get_backend  # noqa: E402
from gradest.estimator import sample_noise_spec  # noqa: E402
from gradest.registry import ESTIMATORS  # noqa: E402
from gradest.testing import (check_estimator, check_task, compatible_tasks, conformance_tasks,  # noqa: E402
                             declared_variants, numpy_noise, surrogate_evaluator)
from tools.gpu_check.probe import TEST_DEVICE_ENV, no_cuda_reason  # noqa: E402

try:  # the task instances the CPU kit checks, so that both check the same
    from test_conformance import EXTRA_TASKS, TASK_OPTIONS
except ImportError:  # run outside the test suite's folder
    EXTRA_TASKS = {"categorical_vae": {"kl": "sampled", "num_latents": 2, "num_categories": 3, "hidden": [4],
                                       "batch_size": 2}}
    TASK_OPTIONS = {"categorical_vae": {"num_latents": 2, "num_categories": 3, "hidden": [16], "batch_size": 8}}

DEVICE = os.environ.get(TEST_DEVICE_ENV, "cuda")
_NO_DEVICE = no_cuda_reason() if DEVICE == "cuda" else None

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_NO_DEVICE is not None, reason=f"no CUDA device: {_NO_DEVICE}")]

#: replicates of the kit's z-test (as the CPU kit), and of the CPU <-> device statistics
REPLICATES, EXTRA_REPLICATES, AGREEMENT_REPLICATES = 2000, 300, 10_000
#: family level of every statistical test here (Bonferroni within a test)
ALPHA = 1e-4
#: float64 on the same NumPy noise: CPU and device agree to reduction order and ulps
F64_RTOL, F64_ATOL = 1e-8, 1e-11


# ---- which backends run on the device ---------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _why_not(backend: str) -> str | None:
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed"
    try:
        get_backend(backend, device=DEVICE)
    except (RuntimeError, ImportError) as err:
        return f"{backend} has no {DEVICE} device: {str(err).splitlines()[0]}"
    return None


def _need(backend: str) -> None:
    reason = _why_not(backend)
    if reason:
        pytest.skip(reason)


def _device_backends() -> list[str]:
    ran = [b for b in BACKENDS if _why_not(b) is None]
    if not ran:
        pytest.skip("; ".join(_why_not(b) for b in BACKENDS))
    return ran


@pytest.fixture(params=list(BACKENDS))
def backend_name(request):
    _need(request.param)
    return request.param


# ---- the estimators and tasks ------------------------------------------------------------------
def _estimator_cases():
    cases = []
    for name in gradest.list_estimators():
        cases.append(pytest.param(name, {}, id=name))
        for options in declared_variants(name):
            label = ",".join(f"{k}={v}" for k, v in options.items())
            cases.append(pytest.param(name, options, id=f"{name}[{label}]"))
    return cases


def _build_estimator(name, options):
    if ESTIMATORS.entries[name].required_options():
        pytest.skip(f"{name} needs the options {ESTIMATORS.entries[name].required_options()}")
    return gradest.get_estimator(name, **options)


def _extra_tasks(est):
    return compatible_tasks(est, EXTRA_TASKS)


def _first_task(est):
    tasks = conformance_tasks(est) or _extra_tasks(est)
    if not tasks:
        pytest.skip(f"no registered task offers what {est.label} needs")
    return tasks[0]


def _task(name):
    return gradest.get_task(name, **TASK_OPTIONS.get(name, {}))


def _numpy_draw(rng, spec):
    shape = tuple(int(s) for s in spec.shape)
    if spec.kind == "normal":
        return rng.standard_normal(shape)
    if spec.kind == "gumbel":
        return rng.gumbel(size=shape)
    return np.clip(rng.random(shape), np.finfo(np.float64).tiny, 1.0 - np.finfo(np.float64).eps / 2)


def _assert_close(a, b, what, rtol=F64_RTOL, atol=F64_ATOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shapes differ on the CPU {a.shape} and on {DEVICE} {b.shape}"
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"{what}: CPU vs {DEVICE}")


def _flat(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}[{k!r}]"))
        return out
    return {prefix: tree}


# ---- statistics of two samples ------------------------------------------------------------------
def two_sample_z(a, b) -> tuple[float, float, float]:
    """(max |z| of the means, max |z| of the variances, the Bonferroni threshold) of estimates
    ``a`` [Ra, P] and ``b`` [Rb, P], independent draws of the same distribution under the null.
    The standard error of a variance is sqrt((m4 - v²) / R); standard errors are floored at
    1e-6 (1 + the largest value), so that deterministic estimates compare with a float
    tolerance. The threshold Φ⁻¹(1 - ALPHA / (4P)) covers the 2P two-sided tests."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    (ra, p), rb = a.shape, b.shape[0]
    ma, mb = a.mean(0), b.mean(0)
    va, vb = a.var(0, ddof=1), b.var(0, ddof=1)
    floor_m = 1e-6 * (1.0 + max(np.abs(ma).max(), np.abs(mb).max()))
    z_mean = (ma - mb) / np.maximum(np.sqrt(va / ra + vb / rb), floor_m)
    se_va = np.sqrt(np.maximum(((a - ma) ** 4).mean(0) - va**2, 0.0) / ra)
    se_vb = np.sqrt(np.maximum(((b - mb) ** 4).mean(0) - vb**2, 0.0) / rb)
    floor_v = 1e-6 * (1.0 + max(va.max(), vb.max()))
    z_var = (va - vb) / np.maximum(np.sqrt(se_va**2 + se_vb**2), floor_v)
    return float(np.abs(z_mean).max()), float(np.abs(z_var).max()), NormalDist().inv_cdf(1 - ALPHA / (4 * p))


# ---- 1. the conformance kit on the device --------------------------------------------------------
@pytest.mark.parametrize("name, options", _estimator_cases())
def test_estimator_conforms_on_device(name, options):
    backends = _device_backends()
    est = _build_estimator(name, options)
    if conformance_tasks(est):
        results = check_estimator(est, backends=backends, device=DEVICE, num_replicates=REPLICATES)
    else:
        extra = _extra_tasks(est)
        if not extra:
            pytest.skip(f"no registered task offers what {est.label} needs ({sorted(est.requires)})")
        results = check_estimator(est, backends=backends, device=DEVICE, tasks=extra,
                                  num_replicates=EXTRA_REPLICATES)
    checks = {r.check for r in results}
    assert {"surrogate", "gradient_samples", "determinism"} <= checks
    assert ("unbiased" in checks) == est.unbiased
    if len(backends) == 2:
        assert "parity" in checks  # torch <-> jax on the device


@pytest.mark.parametrize("name", gradest.list_tasks())
def test_task_conforms_on_device(name):
    backends = _device_backends()
    if "device" not in inspect.signature(check_task).parameters:
        pytest.skip("gradest.testing.check_task takes no device yet, so the task kit runs on the CPU only; "
                    "test_task_values_agree_cpu_device checks every task on the device")
    results = check_task(name, options=TASK_OPTIONS.get(name), backends=backends, device=DEVICE)
    assert {"layout", "problem", "exact"} <= {r.check for r in results}


# ---- 2. CPU <-> device on the same NumPy noise (float64) ------------------------------------------
def _task_values(task, backend, device, tnoise, snoise):
    B = get_backend(backend, device=device, dtype="float64")
    theta = B.asarray(task.init_params())
    prob = task.problem(B, theta, noise={k: B.asarray(v) for k, v in tnoise.items()} or None)
    z = prob.dist.sample(B.asarray(snoise))
    out = {"z": B.to_numpy(z), "f(z)": B.to_numpy(prob.f(z)), "log p(z)": B.to_numpy(prob.dist.log_prob(z)),
           "deterministic term": B.to_numpy(B.asarray(prob.extra))}
    if task.has_exact() and task.exact_loss(B, theta) is not None:
        value, grad = B.value_and_grad(lambda p: task.exact_loss(B, p))(theta)
        out.update({"exact loss": B.to_numpy(value), "exact gradient": B.to_numpy(grad)})
    return out


@pytest.mark.parametrize("name", gradest.list_tasks())
def test_task_values_agree_cpu_device(name, backend_name):
    task, S = _task(name), 3
    rng = np.random.default_rng(11)
    tnoise = {k: _numpy_draw(rng, s) for k, s in sorted(task.noise_spec(S).items())}
    B = get_backend(backend_name, dtype="float64")
    dist = task.problem(B, B.asarray(task.init_params())).dist
    snoise = _numpy_draw(rng, sample_noise_spec(dist, S)["sample"])
    cpu = _task_values(task, backend_name, "cpu", tnoise, snoise)
    dev = _task_values(task, backend_name, DEVICE, tnoise, snoise)
    assert cpu.keys() == dev.keys()
    for what in cpu:
        _assert_close(cpu[what], dev[what], f"{name} ({backend_name}) {what}")


@pytest.mark.parametrize("name, options", _estimator_cases())
def test_estimator_values_agree_cpu_device(name, options, backend_name):
    est = _build_estimator(name, options)
    task = _first_task(est)
    S = max(est.min_samples, 2) + 1
    noises = [numpy_noise(task, est, S, seed=seed) for seed in (3, 4)]
    results = {}
    for device in ("cpu", DEVICE):
        evaluate = surrogate_evaluator(task, est, get_backend(backend_name, device=device, dtype="float64"))
        results[device] = [evaluate(n) for n in noises]
    for cpu, dev in zip(results["cpu"], results[DEVICE]):
        for what in ("per_sample", "loss", "grad", "phi_loss", "phi_grad"):
            if cpu[what] is None or dev[what] is None:
                assert cpu[what] is None and dev[what] is None, f"{what} on one device only"
                continue
            _assert_close(cpu[what], dev[what], f"{est.label} on {task.name} ({backend_name}) {what}")
        cs, ds = _flat(cpu["state"]), _flat(dev["state"])
        assert cs.keys() == ds.keys()
        for k in cs:
            _assert_close(cs[k], ds[k], f"{est.label} on {task.name} ({backend_name}) new state {k}")


# ---- 3. CPU <-> device statistics of each framework's own noise (float32) -------------------------
def _samples(task, est, backend, device, S):
    return gradest.gradient_samples(task, est, backend=backend, device=device, num_samples=S,
                                    num_replicates=AGREEMENT_REPLICATES, seed=5, phi_warmup=0)


@pytest.mark.parametrize("name, options", _estimator_cases())
def test_statistics_agree_cpu_device(name, options, backend_name):
    est = _build_estimator(name, options)
    task = _first_task(est)
    S = max(est.min_samples, 2)
    context = _full_float32_matmuls() if backend_name == "jax" else _nothing()
    with context:
        cpu = _samples(task, est, backend_name, "cpu", S)
        dev = _samples(task, est, backend_name, DEVICE, S)
    assert dev.shape == cpu.shape and np.isfinite(dev).all()
    z_mean, z_var, threshold = two_sample_z(cpu, dev)
    where = f"{est.label} on {task.name} ({backend_name}, R={AGREEMENT_REPLICATES}, S={S})"
    assert z_mean <= threshold, f"{where}: the means differ on the CPU and on {DEVICE} by {z_mean:.2f} standard " \
                                f"errors > {threshold:.2f}"
    assert z_var <= threshold, f"{where}: the variances differ on the CPU and on {DEVICE} by {z_var:.2f} " \
                               f"standard errors > {threshold:.2f}"
    if backend_name == "jax":  # the same bits on both: the same estimates, replicate by replicate
        scale = np.maximum(np.maximum(cpu.std(0), np.abs(cpu.mean(0))), 1e-12)
        off = (np.abs(cpu - dev) > 1e-3 * scale + 1e-6).any(axis=1)
        assert off.mean() <= 0.01, (
            f"{where}: {off.sum()} of {len(off)} replicates differ on the CPU and on {DEVICE} beyond 1e-3 of "
            f"the estimates' scale (largest difference {np.abs(cpu - dev).max():.3g}); JAX draws the same bits "
            f"on both")


def _full_float32_matmuls():
    import jax

    return jax.default_matmul_precision("float32")  # no TF32: matmul-heavy estimators would differ at ~1e-3


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- 4. the noise -------------------------------------------------------------------------------
def test_jax_noise_same_bits_cpu_device():
    _need("jax")
    import jax

    devices = {"cpu": jax.devices("cpu")[0], DEVICE: jax.devices("gpu" if DEVICE == "cuda" else "cpu")[0]}
    sid = gnoise.stream_id(gnoise.SAMPLE_STREAM, "uniform")

    def bits(seed, first, count, device):
        base = jax.random.fold_in(jax.random.PRNGKey(seed), sid)
        index = jax.device_put(np.arange(first, first + count, dtype=np.uint32), device)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.device_put(base, device), index)
        return np.asarray(jax.vmap(lambda k: jax.random.bits(k, (16,), np.uint32))(keys))

    np.testing.assert_array_equal(bits(7, 0, 4096, devices["cpu"]), bits(7, 0, 4096, devices[DEVICE]))
    for kind in ("uniform", "normal", "gumbel"):
        draws = {d: gnoise.draw(get_backend("jax", device=d), 7, "estimator/sample", kind, (16,), 0, 4096)
                 for d in ("cpu", DEVICE)}
        cpu, dev = (np.asarray(draws[d], dtype=np.float64) for d in ("cpu", DEVICE))
        ulps = np.abs(cpu - dev) / np.spacing(np.maximum(np.abs(cpu), 1.0).astype(np.float32)).astype(np.float64)
        assert ulps.max() <= 8, (f"jax {kind} noise: CPU and {DEVICE} differ by up to {ulps.max():.0f} ulps "
                                 f"(of max(|x|, 1))")


def test_torch_noise_distributions_on_both_devices():
    _need("torch")
    from scipy import stats

    laws = {"uniform": stats.uniform.cdf, "normal": stats.norm.cdf, "gumbel": stats.gumbel_r.cdf}
    level = ALPHA / (3 * len(laws))
    for kind, cdf in laws.items():
        draws = {}
        for d in ("cpu", DEVICE):
            B = get_backend("torch", device=d)
            draws[d] = B.to_numpy(gnoise.draw(B, 7, "estimator/sample", kind, (8,), 0, 4096)).astype(np.float64).ravel()
        for d, x in draws.items():
            p = stats.kstest(x, cdf).pvalue
            assert p > level, f"torch {kind} noise on {d}: Kolmogorov-Smirnov p = {p:.2g} < {level:.2g}"
        p = stats.ks_2samp(draws["cpu"], draws[DEVICE]).pvalue
        assert p > level, f"torch {kind} noise: CPU and {DEVICE} differ in distribution (p = {p:.2g})"


def test_noise_windows_on_device(backend_name):
    B = get_backend(backend_name, device=DEVICE)
    for kind, shape in (("gumbel", (3, 5)), ("normal", (2,)), ("uniform", (40, 50))):
        whole = B.to_numpy(gnoise.draw(B, 3, "estimator/sample", kind, shape, 0, 3000))
        window = B.to_numpy(gnoise.draw(B, 3, "estimator/sample", kind, shape, 1000, 500))
        np.testing.assert_array_equal(window, whole[1000:1500],
                                      err_msg=f"{backend_name} {kind} noise on {DEVICE}: a window differs")
        again = B.to_numpy(gnoise.draw(B, 3, "estimator/sample", kind, shape, 0, 3000))
        np.testing.assert_array_equal(again, whole)


# ---- 5. determinism, training, memory -----------------------------------------------------------
_DETERMINISM_CASES = [("bandit", {}, "reinforce", {"baseline": "loo"}),
                      ("binary_toy", {}, "gumbel_softmax", {}),
                      ("categorical_vae", TASK_OPTIONS.get("categorical_vae", {}), "reinforce", {"baseline": "loo"})]


@pytest.mark.parametrize("task_name, task_options, est_name, est_options", _DETERMINISM_CASES,
                         ids=[c[0] for c in _DETERMINISM_CASES])
def test_determinism_under_a_seed_on_device(task_name, task_options, est_name, est_options, backend_name):
    task = gradest.get_task(task_name, **task_options)
    est = gradest.get_estimator(est_name, **est_options)

    def run(seed=9, **options):
        return gradest.gradient_samples(task, est, backend=backend_name, device=DEVICE, num_replicates=3000,
                                        num_samples=2, seed=seed, **options)

    first = run()
    np.testing.assert_array_equal(run(), first, err_msg=f"{backend_name} on {DEVICE}: the same seed gave "
                                                        f"different estimates")
    chunked = run(chunk_size=512)
    np.testing.assert_allclose(chunked, first, rtol=1e-5, atol=1e-7,
                               err_msg=f"{backend_name} on {DEVICE}: another chunk size changed the estimates")
    assert not np.array_equal(run(seed=10), first)

    def train():
        trainer = gradest.Trainer(task, est, backend=backend_name, device=DEVICE, seed=4, num_samples=2)
        losses = [trainer.step() for _ in range(5)]
        return np.asarray(losses), trainer.params()

    (l1, p1), (l2, p2) = train(), train()
    np.testing.assert_array_equal(l2, l1, err_msg=f"{backend_name} on {DEVICE}: training losses not reproducible")
    np.testing.assert_array_equal(p2, p1, err_msg=f"{backend_name} on {DEVICE}: trained θ not reproducible")


def test_training_on_device(backend_name):
    kwargs = dict(backend=backend_name, steps=60, seed=2, num_samples=4, learning_rate=0.1, progress=False)
    result = gradest.train("bandit", gradest.get_estimator("reinforce", baseline="loo"), device=DEVICE, **kwargs)
    history = result.history
    assert result.device == DEVICE
    assert np.isfinite(history["loss"]).all() and np.isfinite(result.params).all()
    assert history["exact_loss"].iloc[-1] < history["exact_loss"].iloc[0] - 0.05, "training did not lower the loss"
    if backend_name == "jax":  # the same bits on the CPU: the same run, up to float rounding
        cpu = gradest.train("bandit", gradest.get_estimator("reinforce", baseline="loo"), device="cpu", **kwargs)
        np.testing.assert_allclose(result.params, cpu.params, rtol=1e-3, atol=1e-4,
                                   err_msg=f"jax training on the CPU and on {DEVICE} drifted apart")
    vae = gradest.get_task("categorical_vae", **TASK_OPTIONS.get("categorical_vae", {}))
    trainer = gradest.Trainer(vae, "gumbel_softmax", backend=backend_name, device=DEVICE, seed=0)
    assert all(math.isfinite(trainer.step()) for _ in range(5))


def test_peak_memory_on_device(backend_name):
    if DEVICE == "cpu":
        pytest.skip("the CPU has no device-memory counter")
    B = get_backend(backend_name, device=DEVICE)
    B.reset_peak_memory()
    task = gradest.get_task("categorical_vae", **TASK_OPTIONS.get("categorical_vae", {}))
    gradest.gradient_samples(task, "gumbel_softmax", backend=B, num_replicates=512, num_samples=2)
    peak = B.peak_memory_bytes()
    if backend_name == "jax" and math.isnan(peak):
        pytest.skip("this jax exposes no memory statistics for the device")
    assert math.isfinite(peak) and peak > 0, f"{backend_name} on {DEVICE}: peak memory {peak!r}"
