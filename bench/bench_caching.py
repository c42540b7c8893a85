"""Throughput of synaptic caching relative to plain backprop, measured in one process.

Builds the compiled chunk of :mod:`thrifty.train` for each synapse model, feeds it
synthetic inputs of shape (5000, 785), warms it up once and times a few chunks of
1000 samples. Prints samples/s and the ratio to plain backprop at the same N.

Usage::

    PYTHONPATH=src python bench/bench_caching.py            # N = 1000 and 10000
    PYTHONPATH=src python bench/bench_caching.py --n 1000 --chunks 5
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.config import RunConfig
from thrifty.network import augment
from thrifty.train import Structure, _as_arrays, _init, numbers_of, run_chunk

MODELS = (
    ("plain", "plain"),
    ("caching per synapse", "caching:threshold=0.01"),
    ("caching per neuron", "caching:threshold=0.01,per=neuron"),
    ("caching per layer", "caching:threshold=0.01,per=layer"),
    ("caching, 100-unit consolidation", "caching:threshold=0.01,consolidate_units=100"),
)


def samples_per_s(synapses: str, n_hidden: int, *, chunks: int, interval: int = 1000) -> float:
    """Samples per second of the compiled chunk for one synapse model (after a warm-up).

    Parameters
    ----------
    synapses : str
        Synapse-model string, e.g. ``"caching:threshold=0.01"``.
    n_hidden : int
        Hidden units N.
    chunks : int
        Number of timed chunks of ``interval`` samples.
    """
    config = RunConfig(dataset="synthetic", n_hidden=n_hidden, synapses=synapses).resolved()
    dtype = jnp.dtype(config.dtype)
    rng = np.random.default_rng(0)
    x = augment(jnp.asarray(rng.normal(0.0, 1.0, (5000, 784)), dtype))
    y = jnp.asarray(rng.integers(0, 10, 5000), jnp.int32)
    structure = Structure.of(config, 784, 10)
    numbers = _as_arrays(numbers_of(config), dtype)
    k_init, k_steps = jax.random.split(jax.random.key(0))
    state = _init(structure, numbers, k_init, jnp.asarray(config.sigma, dtype))

    def chunk(state: object, start: int) -> object:
        indices = jnp.asarray(rng.integers(0, 5000, interval), jnp.int32)
        steps = jnp.arange(start, start + interval, dtype=jnp.int32)
        state, out = run_chunk(state, indices, steps, x, y, numbers, k_steps, structure=structure)
        jax.block_until_ready(out)
        return state

    state = chunk(state, 0)  # compile and warm up
    t0 = time.perf_counter()
    for i in range(chunks):
        state = chunk(state, (i + 1) * interval)
    return chunks * interval / (time.perf_counter() - t0)


def main() -> None:
    """Print samples/s and the ratio to plain backprop for each model and N."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="hidden units")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks of 1000 samples")
    parser.add_argument("--models", nargs="+", default=None, help="synapse strings to time")
    args = parser.parse_args()
    models = MODELS if args.models is None else tuple((m, m) for m in args.models)
    print(f"device: {jax.devices()[0].device_kind}, float32, chunks of 1000 samples")
    for n in args.n:
        plain = samples_per_s("plain", n, chunks=args.chunks)
        print(f"N={n:>6}  {'plain':<34} {plain:9.0f} samples/s  ratio 1.00")
        for label, spec in models:
            if spec == "plain":
                continue
            rate = samples_per_s(spec, n, chunks=args.chunks)
            print(f"N={n:>6}  {label:<34} {rate:9.0f} samples/s  ratio {rate / plain:.2f}")


if __name__ == "__main__":
    main()
