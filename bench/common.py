"""Shared timing helpers for the benchmarks (not a test module).

Every benchmark measures its cases and a baseline in the same process and prints
ratios, because these machines are shared and absolute timings drift.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.config import RunConfig
from thrifty.network import augment
from thrifty.train import Structure, _as_arrays, _init, numbers_of, run_chunk

N_DATA = 5000


def sizes_from_argv(doc: str | None, default: list[int]) -> list[int]:
    """Hidden-layer sizes given on the command line, or ``default``; ``-h``/``--help``
    prints ``doc`` (the benchmark's docstring) and exits."""
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(doc or "")
        raise SystemExit(0)
    try:
        sizes = [int(a) for a in args]
    except ValueError:
        raise SystemExit(f"arguments must be hidden-layer sizes (integers), got {args}") from None
    return sizes or default


def synthetic_inputs(seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Centred random inputs of MNIST's shape: (N_DATA, 785) float32, labels (N_DATA,)."""
    rng = np.random.default_rng(seed)
    x = augment(jnp.asarray(rng.normal(0.0, 0.3, (N_DATA, 784)), jnp.float32))
    y = jnp.asarray(rng.integers(0, 10, N_DATA), jnp.int32)
    return x, y


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def initial_run(config: RunConfig) -> tuple[jax.Array, jax.Array, Structure, dict, Any]:
    """A float32 run of ``config`` on :func:`synthetic_inputs`, before its first sample:
    ``(x, y, structure, numbers, state)`` for :func:`thrifty.train.run_chunk`."""
    config = config.resolved()
    x, y = synthetic_inputs()
    structure = Structure.of(config, 784, 10)
    numbers = _as_arrays(numbers_of(config), jnp.float32)
    state = _init(structure, numbers, jax.random.key(0), jnp.float32(config.sigma))
    return x, y, structure, numbers, state


def chunk_rate(
    config: RunConfig, chunk: int = 1000, repeats: int = 3, block: int | None = None
) -> float:
    """Samples/s of the compiled training chunk for ``config`` (compile excluded).

    ``block``: as in :func:`thrifty.train.run_chunk` (1: every sample stepped on its
    own; None: the default).
    """
    x, y, structure, numbers, state = initial_run(config)
    rng = np.random.default_rng(1)
    idx = jnp.asarray(rng.integers(0, N_DATA, chunk), jnp.int32)
    steps = jnp.arange(chunk, dtype=jnp.int32)
    key = jax.random.key(1)
    holder = [state]

    def once() -> None:
        s, out = run_chunk(
            holder[0], idx, steps, x, y, numbers, key, structure=structure, block=block
        )
        jax.block_until_ready(out)
        holder[0] = s

    once()  # compile
    return chunk / best_of(once, repeats)


def naive_numpy_rate(n_hidden: int, samples: int) -> float:
    """Samples/s of a naive per-sample NumPy loop that forms and counts every Δw."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.3, (N_DATA, 785)).astype(np.float32)
    x[:, -1] = 1.0
    y = rng.integers(0, 10, N_DATA)
    w1 = rng.normal(0, 0.01, (n_hidden, 785)).astype(np.float32)
    w2 = rng.normal(0, 0.01, (10, n_hidden + 1)).astype(np.float32)
    m0 = 0
    m1 = 0.0
    t = time.perf_counter()
    for s in range(samples):
        i = s % N_DATA
        u = w1 @ x[i]
        a = np.append(np.where(u > 0, u, 0.1 * u), 1.0).astype(np.float32)
        out = w2 @ a
        target = np.zeros(10, np.float32)
        target[y[i]] = 1.0
        d2 = out - target
        d1 = (w2[:, :n_hidden].T @ d2) * np.where(u > 0, 1.0, 0.1)
        dw1 = -0.01 * np.outer(d1, x[i])
        dw2 = -0.01 * np.outer(d2, a)
        m0 += np.count_nonzero(dw1) + np.count_nonzero(dw2)
        m1 += float(np.abs(dw1).sum() + np.abs(dw2).sum())
        w1 += dw1
        w2 += dw2
    return samples / (time.perf_counter() - t)


def rates_of_ways(
    config: RunConfig, module: object, name: str, ways: dict[str, object], rounds: int = 2
) -> dict[str, float]:
    """Samples/s of ``config`` with ``module.name`` set to each of ``ways`` in turn.

    Each way is compiled afresh (``jax.clear_caches``) and timed ``rounds`` times,
    alternating with the others; the best rate of each is returned, by way name.
    ``module.name`` is restored afterwards.
    """
    original = getattr(module, name)
    rates = dict.fromkeys(ways, 0.0)
    try:
        for _ in range(rounds):
            for way, impl in ways.items():
                setattr(module, name, impl)
                jax.clear_caches()
                rates[way] = max(rates[way], chunk_rate(config, repeats=3))
    finally:
        setattr(module, name, original)
    return rates
