"""The PyTorch implementation of `gradest.backends.base.Backend`.

Transforms come from ``torch.func`` (``grad``, ``vmap``); ``jit`` is eager unless the backend
was made with ``compile=True`` (then ``torch.compile``). Optimizers are torch.optim's; a training
step is eager, θ a leaf tensor updated in place.

Noise (the promise of `gradest.noise`): torch has no per-element counter-based generator, so
replicates are drawn in fixed blocks: block ``b`` of stream ``s`` under seed ``k`` is one
``torch.Generator`` call on the backend's device seeded with a hash of (k, s, b), holding
replicates ``b·m .. b·m + m - 1`` where ``m`` = `block_replicates` (shape) depends on the
per-replicate shape only. A window of replicates draws the blocks it touches and slices them.
torch's CPU generator (Mersenne Twister) and its CUDA generator (Philox) give *different*
numbers for the same seed: CPU and CUDA runs share the scheme, not the numbers.

Threads (`replicate_call`): a vectorized call over many replicates (the sampler's compiled
call: noise and R estimates) runs on the CPU with ``threads`` intra-op threads, by default
`REPLICATE_THREADS` = 1, whatever torch's process-wide setting is, which is restored after the
call. Why: the call is already vectorized over the replicate axis, and torch's OpenMP threads
spin-wait at the barrier that ends each parallel operation; where other processes keep the
cores busy, a descheduled thread stalls every such operation. Measured on 2 cores beside other
CPU-bound processes (bandit, K = 10, R = 10,000): 2 threads 105 µs per estimate, 1 thread
3.4 µs (30x); with ``OMP_WAIT_POLICY=PASSIVE`` set before torch started, 2 threads 3.2 µs.
``make_backend(threads=None)`` keeps torch's setting (e.g. on an idle many-core machine, for
large tasks), ``threads=n`` uses n. Inside `threads` (count) (timed calls) the count given
there holds instead; `thread_count` says which count a replicate call uses.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Sequence

import numpy as np
import torch

from gradest.backends.base import Backend, TrainStep, check_noise_law, check_optimizer, standard_gamma_log_icdf

#: a noise block holds about this many numbers (see `block_replicates`)
BLOCK_NUMBERS = 2**16
MAX_BLOCK_REPLICATES = 1024
#: intra-op threads of a vectorized replicate call on the CPU by default (`replicate_call`)
REPLICATE_THREADS = 1

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}


def block_replicates(shape) -> int:
    """Replicates per noise block for a per-replicate ``shape``: the largest power of two with
    at most `BLOCK_NUMBERS` numbers per block (1 for large shapes), at most 1,024. A function
    of the shape alone, so the numbers are too."""
    size = 1
    for n in shape:
        size *= int(n)
    per_block = max(1, BLOCK_NUMBERS // max(size, 1))
    per_block = 1 << (per_block.bit_length() - 1)
    return min(per_block, MAX_BLOCK_REPLICATES)


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, v) for v in tree)
    return fn(tree)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device: str = "cpu", dtype: str = "float32", compile: bool = False, threads="auto"):
        self.device = device
        self.dtype = dtype
        self.compile = compile
        self.threads_option = threads
        #: intra-op threads of `replicate_call` on the CPU (None: torch's setting)
        self.replicate_threads = _replicate_threads(threads)
        self._torch_device = torch.device(device)
        self._float = _DTYPES[dtype]

    def __repr__(self) -> str:  # part of compile-cache keys: a compiled backend is another backend
        threads = "" if self.threads_option == "auto" else f", threads={self.threads_option!r}"
        return f"TorchBackend(device={self.device!r}, dtype={self.dtype!r}, compile={self.compile}{threads})"

    def _dt(self, dtype):
        if dtype is None or dtype == "float":
            return self._float
        return _DTYPES[dtype]

    # creation and conversion
    def asarray(self, x, dtype=None):
        if isinstance(x, torch.Tensor):
            if dtype is None and not x.is_floating_point():
                return x.to(self._torch_device)
            return x.to(device=self._torch_device, dtype=self._dt(dtype))
        arr = np.asarray(x)
        if dtype is None and arr.dtype.kind not in "fc":
            return torch.as_tensor(arr, device=self._torch_device)
        return torch.as_tensor(arr, dtype=self._dt(dtype), device=self._torch_device)

    def to_numpy(self, x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def zeros(self, shape):
        return torch.zeros(tuple(shape), dtype=self._float, device=self._torch_device)

    def ones(self, shape):
        return torch.ones(tuple(shape), dtype=self._float, device=self._torch_device)

    def arange(self, n):
        return torch.arange(n, device=self._torch_device)

    # elementwise
    def exp(self, x):
        return torch.exp(x)

    def log(self, x):
        return torch.log(x)

    def log1p(self, x):
        return torch.log1p(x)

    def sqrt(self, x):
        return torch.sqrt(x)

    def abs(self, x):
        return torch.abs(x)

    def sign(self, x):
        return torch.sign(x)

    def tanh(self, x):
        return torch.tanh(x)

    def erf(self, x):
        return torch.special.erf(x)

    def sigmoid(self, x):
        return torch.sigmoid(x)

    def log_sigmoid(self, x):
        return torch.nn.functional.logsigmoid(x)

    def softplus(self, x):
        return torch.nn.functional.softplus(x)

    def relu(self, x):
        return torch.relu(x)

    def where(self, cond, x, y):
        return torch.where(cond, torch.as_tensor(x), torch.as_tensor(y))

    def maximum(self, x, y):
        return torch.maximum(torch.as_tensor(x), torch.as_tensor(y))

    def minimum(self, x, y):
        return torch.minimum(torch.as_tensor(x), torch.as_tensor(y))

    def clip(self, x, lo, hi):
        return torch.clamp(x, lo, hi)

    def astype(self, x, dtype):
        return x.to(self._dt(dtype))

    # special functions of the Gamma family (implicit reparameterization: `_StandardGammaIcdf`)
    def lgamma(self, x):
        return torch.lgamma(x)

    def digamma(self, x):
        return torch.digamma(x)

    def gammainc(self, a, x):
        return torch.special.gammainc(a, x)

    def gammaincc(self, a, x):
        return torch.special.gammaincc(a, x)

    def standard_gamma_icdf(self, alpha, u):
        alpha, u = torch.broadcast_tensors(alpha, u.to(alpha.dtype))
        info = torch.finfo(u.dtype)
        u = u.clamp(min=info.tiny, max=1.0 - info.eps / 2)  # noise cast from float64 can round to 1
        return _StandardGammaIcdf.apply(alpha, u, self)[0]

    # reductions
    @staticmethod
    def _dims(axis):
        return tuple(axis) if isinstance(axis, (tuple, list)) else axis

    def sum(self, x, axis=None, keepdims=False):
        if axis is None:
            return torch.sum(x)
        return torch.sum(x, dim=self._dims(axis), keepdim=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        if axis is None:
            return torch.mean(x)
        return torch.mean(x, dim=self._dims(axis), keepdim=keepdims)

    def max(self, x, axis=None, keepdims=False):
        if axis is None:
            return torch.max(x)
        return torch.amax(x, dim=self._dims(axis), keepdim=keepdims)

    def argmax(self, x, axis=-1):
        return torch.argmax(x, dim=axis)

    def logsumexp(self, x, axis=-1, keepdims=False):
        return torch.logsumexp(x, dim=self._dims(axis), keepdim=keepdims)

    def softmax(self, x, axis=-1):
        return torch.softmax(x, dim=axis)

    def log_softmax(self, x, axis=-1):
        return torch.log_softmax(x, dim=axis)

    # indexing and shape
    def one_hot(self, index, num_classes):
        # a comparison rather than F.one_hot: it batches under torch.func.vmap
        classes = torch.arange(num_classes, device=index.device)
        return (index.unsqueeze(-1) == classes).to(self._float)

    def take_along_axis(self, x, index, axis):
        return torch.take_along_dim(x, index.long(), dim=axis)

    def reshape(self, x, shape):
        return torch.reshape(x, tuple(shape))

    def expand_dims(self, x, axis):
        return torch.unsqueeze(x, axis)

    def broadcast_to(self, x, shape):
        return torch.broadcast_to(x, tuple(shape))

    def stack(self, xs, axis=0):
        return torch.stack(list(xs), dim=axis)

    def split(self, x, sizes):
        return list(torch.split(x, [int(n) for n in sizes]))

    def concatenate(self, xs, axis=0):
        return torch.cat(list(xs), dim=axis)

    def moveaxis(self, x, source, destination):
        return torch.movedim(x, source, destination)

    def matmul(self, a, b):
        return torch.matmul(a, b)

    def einsum(self, subscripts, *operands):
        return torch.einsum(subscripts, *operands)

    # autodiff
    def stop_gradient(self, x):
        return x.detach()

    def grad(self, fn, has_aux=False):
        return torch.func.grad(fn, has_aux=has_aux)

    def value_and_grad(self, fn, has_aux=False):
        return _value_and_grad(fn, has_aux)

    def vmap(self, fn, in_axes=0, out_axes=0):
        in_dims = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        return torch.func.vmap(fn, in_dims=in_dims, out_dims=out_axes)

    def jit(self, fn):
        return torch.compile(fn) if self.compile else fn

    def block(self, x):
        if self._torch_device.type == "cuda":
            torch.cuda.synchronize(self._torch_device)
        return x

    # noise
    def noise_block_replicates(self, shape):
        return block_replicates(shape)

    def replicate_noise(self, seed, stream_id, law, shape, first, count):
        check_noise_law(law)
        per_block = self.noise_block_replicates(shape)
        first, count = int(first), int(count)
        b0, b1 = first // per_block, (first + count - 1) // per_block
        blocks = [self._noise_block(int(seed), stream_id, law, tuple(shape), b, per_block) for b in range(b0, b1 + 1)]
        out = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        offset = first - b0 * per_block
        return out[offset:offset + count]

    def _noise_block(self, seed, stream_id, law, shape, block, per_block):
        """Replicates block·per_block .. (block+1)·per_block - 1 of one stream: [per_block, *shape]."""
        gen = torch.Generator(device=self._torch_device)
        gen.manual_seed(_mix(seed, stream_id, block))
        size = (per_block, *shape)
        opts = dict(generator=gen, dtype=self._float, device=self._torch_device)
        if law == "normal":
            return torch.randn(size, **opts)
        u = torch.rand(size, **opts)
        tiny = torch.finfo(self._float).tiny
        u = u.clamp(min=tiny, max=1.0 - torch.finfo(self._float).eps / 2)
        if law == "uniform":
            return u
        return -torch.log(-torch.log(u))

    def replicate_grads(self, fn):
        vg = torch.func.vmap(torch.func.grad(fn, has_aux=True), in_dims=(None, 0, None, None))

        def grads(params, noise, state, batch):
            if _leading(noise) != 1:
                return vg(params, noise, state, batch)[0]
            # one replicate: plain autograd (torch.func's vmap and grad cost more than the estimate)
            leaf = params.detach().requires_grad_(True)
            with torch.enable_grad():
                value, _ = fn(leaf, _tree_map(lambda x: x[0], noise), state, batch)
                g = torch.autograd.grad(value, leaf, allow_unused=True)[0] if value.requires_grad else None
            return (torch.zeros_like(leaf) if g is None else g).unsqueeze(0)

        return grads

    # training
    def optimizer(self, name, learning_rate):
        return _torch_optimizer(check_optimizer(name), learning_rate)

    def train_step(self, loss, draw_noise, optimizer, phi_objective=None):
        return TorchTrainStep(self, loss, draw_noise, check_optimizer(optimizer), phi_objective)

    # threads
    def _policy_threads(self):
        """The count `replicate_call` sets, or None where it leaves torch's setting as is."""
        if self._torch_device.type != "cpu" or getattr(_EXPLICIT, "depth", 0):
            return None  # inside `threads(count)` the caller's count holds
        return self.replicate_threads

    def thread_count(self):
        policy = self._policy_threads()
        return torch.get_num_threads() if policy is None else policy

    @contextlib.contextmanager
    def threads(self, count):
        before = torch.get_num_threads()
        if count is not None:
            torch.set_num_threads(int(count))
            _EXPLICIT.depth = getattr(_EXPLICIT, "depth", 0) + 1
        try:
            yield
        finally:
            if count is not None:
                _EXPLICIT.depth -= 1
            torch.set_num_threads(before)

    def replicate_call(self, fn):
        """``fn`` run with `replicate_threads` intra-op threads on the CPU (module docstring),
        torch's setting restored after each call; unchanged on CUDA or with ``threads=None``."""
        if self._torch_device.type != "cpu" or self.replicate_threads is None:
            return fn

        def call(*args, **kwargs):
            count = self._policy_threads()
            before = torch.get_num_threads()
            if count is None or count == before:  # nothing to switch (a check costs ~0.2 µs, a switch ~5)
                return fn(*args, **kwargs)
            torch.set_num_threads(count)
            try:
                return fn(*args, **kwargs)
            finally:
                torch.set_num_threads(before)

        return call

    # memory
    def reset_peak_memory(self):
        if self._torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._torch_device)

    def peak_memory_bytes(self):
        if self._torch_device.type == "cuda":
            return float(torch.cuda.max_memory_allocated(self._torch_device))
        return math.nan


#: how many `TorchBackend.threads` (count) blocks are open on this thread (their count holds)
_EXPLICIT = threading.local()


def _replicate_threads(threads):
    """The ``threads`` option as a count (None: torch's setting), or a clear error."""
    if isinstance(threads, str) and threads == "auto":
        return REPLICATE_THREADS
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads={threads!r}: the torch backend's threads option is 'auto' (one intra-op thread "
                         "for vectorized replicate calls), None (torch's own setting) or an integer >= 1")
    return int(threads)


def _value_and_grad(fn, has_aux):
    """torch.func.grad_and_value in jax's layout: (value, grad), or ((value, aux), grad)."""
    inner = torch.func.grad_and_value(fn, has_aux=has_aux)

    def wrapped(*args, **kwargs):
        g, value = inner(*args, **kwargs)
        return value, g

    return wrapped


def _leading(tree) -> int:
    if isinstance(tree, dict):
        for v in tree.values():
            n = _leading(v)
            if n >= 0:
                return n
        return -1
    return int(tree.shape[0])


def _torch_optimizer(name, lr):
    """``(tensors) -> torch.optim.Optimizer`` for gradest's optimizer ``name``."""
    table = {
        "adam": lambda ts: torch.optim.Adam(ts, lr=lr),
        "sgd": lambda ts: torch.optim.SGD(ts, lr=lr),
        "momentum": lambda ts: torch.optim.SGD(ts, lr=lr, momentum=0.9),
        "rmsprop": lambda ts: torch.optim.RMSprop(ts, lr=lr),
        "adagrad": lambda ts: torch.optim.Adagrad(ts, lr=lr),
    }
    return table[name]


class TorchTrainStep(TrainStep):
    """θ (and φ) as leaf tensors that torch.optim updates in place; θ's gradient by plain
    autograd (torch.func's per-call overhead is the bulk of a small task's step), φ's by
    ``torch.func.grad`` (a φ loss may differentiate the surrogate itself)."""

    def __init__(self, B, loss, draw_noise, optimizer, phi_objective):
        self.B, self.loss, self.draw_noise, self.optimizer = B, loss, draw_noise, optimizer
        self.phi_grad = torch.func.grad(phi_objective) if phi_objective is not None else None

    def init(self, theta, state, learning_rate):
        make = _torch_optimizer(self.optimizer, float(learning_rate))
        carry = {"theta": self.B.asarray(theta).detach().clone().requires_grad_(True), "state": dict(state)}
        carry["opt"] = make([carry["theta"]])
        if self.phi_grad is not None:
            carry["phi"] = state["phi"].detach().clone().requires_grad_(True)
            carry["phi_opt"] = make([carry["phi"]])
        return carry

    def step(self, carry, seed, t, batch):
        noise = self.draw_noise(seed, t)
        theta, state = carry["theta"], carry["state"]
        if self.phi_grad is not None:
            state = dict(state, phi=carry["phi"].detach())
        with torch.enable_grad():
            value, new_state = self.loss(theta, noise, state, batch)
            grad = torch.autograd.grad(value, theta, allow_unused=True)[0] if value.requires_grad else None
        phi_grad = None
        if self.phi_grad is not None:  # at θ_t, with the step's noise and state
            phi_grad = self.phi_grad(carry["phi"].detach(), theta.detach(), noise, state, batch)
        theta.grad = torch.zeros_like(theta) if grad is None else grad  # a loss constant in θ
        carry["opt"].step()
        new_state = _tree_map(lambda x: x.detach() if hasattr(x, "detach") else x, dict(new_state))
        if phi_grad is not None:
            carry["phi"].grad = phi_grad.detach()
            carry["phi_opt"].step()
            new_state["phi"] = carry["phi"].detach()
        carry["state"] = new_state
        return carry, value.detach()

    def params(self, carry):
        return carry["theta"].detach().clone()

    def state(self, carry):
        state = dict(carry["state"])
        if "phi" in carry:
            state["phi"] = carry["phi"].detach().clone()
        return state


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (splitmix64 steps), stable across processes."""
    x = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for v in ints:
        x = (x ^ (int(v) & mask)) & mask
        x = (x + 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        x ^= x >> 31
    return x & ((1 << 63) - 1)


# ---- implicit reparameterization of the standard Gamma ----------------------------------------
class _StandardGammaIcdf(torch.autograd.Function):
    """``(α, u, backend) -> (z, dz/dα, dz/du)``, z = F⁻¹(u; α) of the standard Gamma; only z is
    differentiable, its backward the implicit gradient (Figurnov et al. 2018, eq. 6).

    The value is `standard_gamma_log_icdf` in float64 whatever the dtype (torch's float32
    ``gammainc`` underflows to 0 in the lower tail of large shapes, e.g. P(199, 121) = 6e-11,
    and Newton would stall there), cast back. dz/dα is ``torch._standard_gamma_grad(α, z)``,
    the approximation torch.distributions.Gamma.rsample uses (Taylor series for small z, an
    asymptotic expansion for large α, a rational approximation between: relative error up to
    about 1e-3, typically 1e-5). Both derivatives are computed in the forward and returned as
    non-differentiable outputs, so that the backward is a product: torch.func.vmap batches it,
    where it has no batching rule for ``_standard_gamma_grad``. The ``vmap`` rule is the
    elementwise one (batch axes to the front, then the same function)."""

    @staticmethod
    def forward(alpha, u, backend):
        info = torch.finfo(alpha.dtype)
        y = standard_gamma_log_icdf(backend, alpha.double(), u.double(), torch.finfo(torch.float64).tiny)
        z = torch.exp(y).to(alpha.dtype).clamp(min=info.tiny)
        dz_dalpha = torch._standard_gamma_grad(alpha, z)
        # dz/du = 1 / p(z; α), capped where the density underflows (z clamped at tiny, α < 1)
        log_inverse_density = torch.lgamma(alpha) + z - (alpha - 1.0) * torch.log(z)
        dz_du = torch.exp(log_inverse_density.clamp(max=math.log(info.max)))
        return z, dz_dalpha, dz_du

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, dz_dalpha, dz_du = output
        ctx.mark_non_differentiable(dz_dalpha, dz_du)
        ctx.save_for_backward(dz_dalpha, dz_du)

    @staticmethod
    def backward(ctx, grad_z, _grad_dalpha, _grad_du):
        dz_dalpha, dz_du = ctx.saved_tensors
        return (grad_z * dz_dalpha if ctx.needs_input_grad[0] else None,
                grad_z * dz_du if ctx.needs_input_grad[1] else None, None)

    @staticmethod
    def vmap(info, in_dims, alpha, u, backend):
        alpha = _batch_first(alpha, in_dims[0], info.batch_size)
        u = _batch_first(u, in_dims[1], info.batch_size)
        return _StandardGammaIcdf.apply(alpha, u, backend), (0, 0, 0)


def _batch_first(x, dim, size):
    """``x`` with its vmapped axis ``dim`` first (broadcast to ``size`` where it has none)."""
    if dim is None:
        return x.unsqueeze(0).expand(size, *x.shape)
    return x.movedim(dim, 0)


def make_backend(device: str = "cpu", dtype: str = "float32", **options) -> TorchBackend:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' was asked for, but this torch has no CUDA device available "
            f"(torch {torch.__version__}, cuda={torch.version.cuda}). Use device='cpu', or install a "
            "CUDA build of torch on a machine with an NVIDIA GPU."
        )
    return TorchBackend(device=device, dtype=dtype, **options)
