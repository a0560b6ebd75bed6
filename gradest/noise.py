"""Noise: the one place gradest makes random numbers.

Every random number an estimator or a task uses is drawn here and passed in (the estimator
contract, `gradest.estimator`). A *stream* is a name such as ``"estimator/sample"`` (the
distribution's own noise, shared by every estimator) or ``"task/reward"``; a *spec* tree
``{group: {name: NoiseSpec(shape, kind)}}`` names the streams one computation draws, each
replicate getting an array of ``shape`` drawn from the spec's *law* (its ``kind`` field).

The promise (noise scheme `NOISE_VERSION` = 3)
----------------------------------------------
Replicate ``i`` of stream ``s`` under seed ``k`` is a function of (k, s, law, shape, i) and
of the backend (and its device, where the backend says so) alone. In particular, for one
backend and device it is the same

* for every chunk size: chunking replicates changes memory, never numbers;
* for every R: the first 100 replicates of R = 3,000 are those of R = 100;
* for every estimator that draws stream ``s`` (with that shape), whatever else it draws: all
  estimators see the same ``"estimator/sample"`` noise under one seed (common random numbers);
* in every run and process, and on every worker of a distributed sweep.

Training step ``t`` under seed ``k`` uses replicate ``t`` of the same streams, so a run is
reproducible and estimators trained under one seed share noise step by step.

How a backend keeps it
----------------------
`Backend.replicate_noise` draws from a generator keyed with (k, `stream_id` (s, law)) and
either the replicate index (a counter-based generator: one replicate at a time,
`Backend.noise_block_replicates` = 1) or the index of a fixed block of
`Backend.noise_block_replicates` (shape) replicates, a number that depends on the
per-replicate shape alone: a window of replicates then draws the blocks it touches and slices
them. Each backend's module docstring says which it does, and whether its devices draw the
same numbers. Across backends the numbers differ; parity tests feed the same NumPy noise to
both.

* jax (counter-based): number j of replicate i is made from the Threefry-2x32 hash of the
  counter (i, j) under the key ``fold_in(key(k), stream_id)`` (Salmon et al. 2011), one hash
  per number and no key per replicate, so drawing R replicates costs what one
  ``jax.random`` draw of the [R, *shape] array costs; replicate 0 equals that draw's first row.
* torch (blocks): block b is one ``torch.Generator`` call seeded with a hash of (k, stream_id,
  b), holding replicates b·m .. b·m + m - 1, m = `Backend.noise_block_replicates` (shape).

Versions: a result records the scheme it was drawn under (``noise_version``), and a change of
scheme recomputes results, never mixes them.

* 3 — jax: the counter-based Threefry hash above. (Under 2, replicate i had its own key,
  ``fold_in(fold_in(PRNGKey(k), stream_id), i)``, one extra hash and a key per replicate; on
  the 10-armed bandit, R = 10,240, one XLA thread, the sampler's call took 1.31x a hand-written
  ``jit(vmap(grad))`` under 2 and 1.18x under 3, as much as with one ``jax.random`` draw of the
  whole noise array: the rest is the estimator's graph, not the noise.) torch as 2.
* 2 — replicate noise from (seed, stream, replicate) alone: torch in fixed blocks, as above;
  jax with a key per replicate.

Noise laws (`NOISE_LAWS`): ``uniform`` on the open interval (0, 1) (so log u and
log(-log u) are finite), ``normal`` N(0, 1), ``gumbel`` standard Gumbel.

Streams that must be independent of the measured replicates (a state or φ warm-up, a training
run's gradient basket) use a *prefix* (`prefixed`): ``"warmup/estimator/sample"`` is another
stream, so its numbers are unrelated to ``"estimator/sample"`` under the same seed.
"""
from __future__ import annotations

import zlib
from typing import Callable, Mapping

from gradest.backends.base import NOISE_KINDS, NOISE_LAWS, check_noise_law

__all__ = ["NOISE_VERSION", "NOISE_LAWS", "NOISE_KINDS", "SAMPLE_STREAM", "stream_id", "draw", "draw_tree",
           "drawer", "prefixed", "first_replicate", "layout", "MAX_SEED"]

#: version of the scheme above; results record it, and a change of scheme recomputes them
NOISE_VERSION = 3
#: the distribution's own noise, shared by every estimator under one seed
SAMPLE_STREAM = "estimator/sample"
#: seeds are 0 .. MAX_SEED (JAX keys take 32-bit seeds)
MAX_SEED = 2**31 - 1


def stream_id(stream: str, law: str) -> int:
    """A stable 31-bit integer for (stream name, noise law), the same in every process."""
    check_noise_law(law)
    return zlib.crc32(f"{stream}#{law}".encode()) & 0x7FFFFFFF


def draw(backend, seed, stream: str, law: str, shape, first, count: int):
    """Replicates ``first .. first + count - 1`` of ``stream``, drawn from ``law``: an array
    ``[count, *shape]``.

    ``seed`` and ``first`` may be traced integers inside a compiled function (`static_shapes`
    backends)."""
    shape = tuple(int(n) for n in shape)
    return backend.replicate_noise(seed, stream_id(stream, law), law, shape, first, int(count))


def draw_tree(backend, specs: Mapping, seed, first, count: int) -> dict:
    """``{group: {name: [count, *shape]}}`` for replicates ``first .. first + count - 1`` of the
    streams ``"<group>/<name>"`` of ``specs`` (``{group: {name: NoiseSpec}}``)."""
    return {group: {name: draw(backend, seed, f"{group}/{name}", spec.kind, spec.shape, first, count)
                    for name, spec in group_specs.items()}
            for group, group_specs in specs.items()}


def drawer(backend, specs: Mapping, count: int) -> Callable:
    """``(seed, first) -> draw_tree(backend, specs, seed, first, count)`` as a function, to be
    called inside a compiled function (a `static_shapes` backend traces seed and first; an
    eager one draws at once)."""
    streams = [(group, name, f"{group}/{name}", spec.kind, tuple(int(n) for n in spec.shape))
               for group, group_specs in specs.items() for name, spec in group_specs.items()]
    ids = [(group, name, stream_id(stream, law), law, shape) for group, name, stream, law, shape in streams]
    groups = list(specs)

    def draw_all(seed, first):
        out: dict = {group: {} for group in groups}
        for group, name, sid, law, shape in ids:
            out[group][name] = backend.replicate_noise(seed, sid, law, shape, first, count)
        return out

    return draw_all


def prefixed(specs: Mapping, prefix: str) -> dict:
    """The streams of ``specs`` renamed ``"<prefix>/<group>/<name>"``: independent noise of the
    same shapes (for warm-ups and tracked measurements that must not reuse measured noise)."""
    return {f"{prefix}/{group}": dict(group_specs) for group, group_specs in specs.items()}


def unprefixed(noise: Mapping, prefix: str) -> dict:
    """Undo `prefixed` on a drawn noise tree (the groups back to their plain names)."""
    cut = len(prefix) + 1
    return {group[cut:]: d for group, d in noise.items()}


def first_replicate(noise: Mapping) -> dict:
    """A noise tree ``{group: {name: [1, ...]}}`` without its replicate axis (one training step)."""
    return {group: {name: v[0] for name, v in d.items()} for group, d in noise.items()}


def layout(specs: Mapping) -> tuple:
    """A hashable description of a spec tree (for compile-cache keys)."""
    return tuple((group, tuple((name, tuple(int(n) for n in spec.shape), spec.kind)
                               for name, spec in sorted(group_specs.items())))
                 for group, group_specs in sorted(specs.items()))

