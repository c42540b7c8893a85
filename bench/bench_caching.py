"""Throughput of synaptic caching relative to plain backprop, measured in one process.

Builds the compiled chunk of :mod:`thrifty.train` for each synapse model, feeds it
5000 inputs of shape (785,) (synthetic normal ones, or the first 5000 MNIST training
images with ``--data mnist``), warms it up once and times a few chunks of 1000
samples. Prints samples/s and the ratio to plain backprop at the same N.

How many units reach θ per sample decides which way a caching step goes (see
``docs/caching.md``): on the synthetic inputs at θ = 0.01 few do; on MNIST at
θ = 10⁻³ (the best threshold of the MNIST sweep) a few hundred synapses do.

Usage::

    PYTHONPATH=src python bench/bench_caching.py            # N = 1000 and 10000
    PYTHONPATH=src python bench/bench_caching.py --n 1000 --chunks 5
    PYTHONPATH=src python bench/bench_caching.py --data mnist --models caching:threshold=0.001
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.config import RunConfig
from thrifty.network import augment
from thrifty.train import Structure, _as_arrays, _init, load_dataset, numbers_of, run_chunk

SUBNET = ("subnet:units=100",)
MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("plain", "plain", ()),
    ("caching per synapse", "caching:threshold=0.01", ()),
    ("caching per neuron", "caching:threshold=0.01,per=neuron", ()),
    ("caching per layer", "caching:threshold=0.01,per=layer", ()),
    ("caching, 100-unit consolidation", "caching:threshold=0.01,consolidate_units=100", ()),
    ("plain, subnet 100", "plain", SUBNET),
    ("caching, subnet 100", "caching:threshold=0.01", SUBNET),
)
"""(label, synapse model, rules); ratios are to the plain model with the same rules."""


class Timer:
    """A compiled chunk of one synapse model, ready to be timed.

    Parameters
    ----------
    synapses : str
        Synapse-model string, e.g. ``"caching:threshold=0.01"``.
    n_hidden : int
        Hidden units N.
    rules : tuple of str
        Plasticity rules, e.g. ``("subnet:units=100",)``.
    interval : int
        Samples per chunk.
    data : tuple of numpy arrays, or None
        Inputs (5000, 784) and labels (5000,); None: synthetic normal inputs.
    """

    def __init__(
        self,
        synapses: str,
        n_hidden: int,
        rules: tuple[str, ...] = (),
        interval: int = 1000,
        data: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        config = RunConfig(
            dataset="synthetic", n_hidden=n_hidden, synapses=synapses, rules=rules
        ).resolved()
        dtype = jnp.dtype(config.dtype)
        self.rng = np.random.default_rng(0)
        if data is None:
            data = (self.rng.normal(0.0, 1.0, (5000, 784)), self.rng.integers(0, 10, 5000))
        self.x = augment(jnp.asarray(data[0], dtype))
        self.y = jnp.asarray(data[1], jnp.int32)
        self.structure = Structure.of(config, 784, 10)
        self.numbers = _as_arrays(numbers_of(config), dtype)
        k_init, self.k_steps = jax.random.split(jax.random.key(0))
        self.state = _init(self.structure, self.numbers, k_init, jnp.asarray(config.sigma, dtype))
        self.interval = interval
        self.start = 0
        self.best = float("inf")
        self.chunk()  # compile and warm up

    def chunk(self) -> float:
        """Run one chunk; returns its wall time in seconds."""
        indices = jnp.asarray(self.rng.integers(0, 5000, self.interval), jnp.int32)
        steps = jnp.arange(self.start, self.start + self.interval, dtype=jnp.int32)
        t0 = time.perf_counter()
        self.state, out = run_chunk(
            self.state,
            indices,
            steps,
            self.x,
            self.y,
            self.numbers,
            self.k_steps,
            structure=self.structure,
        )
        jax.block_until_ready((self.state, out))
        elapsed = time.perf_counter() - t0
        self.start += self.interval
        self.best = min(self.best, elapsed)
        return elapsed

    @property
    def samples_per_s(self) -> float:
        """Throughput of the fastest chunk so far."""
        return self.interval / self.best


def main() -> None:
    """Print samples/s and the ratio to plain backprop for each model and N.

    Chunks of the models alternate and each keeps its fastest, so load from
    other processes on a shared machine affects all of them alike.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="hidden units")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks of 1000 per model")
    parser.add_argument("--models", nargs="+", default=None, help="synapse strings to time")
    parser.add_argument("--only", default="", help="time only the labels containing this text")
    parser.add_argument(
        "--data", choices=("synthetic", "mnist"), default="synthetic", help="training inputs"
    )
    args = parser.parse_args()
    data = None
    if args.data == "mnist":
        mnist = load_dataset(RunConfig(dataset="mnist"))
        data = (mnist.x_train[:5000], mnist.y_train[:5000])
    models = tuple(m for m in MODELS if args.only in m[0] or m[0] == "plain")
    if args.models is not None:
        models = (("plain", "plain", ()), *((m, m, ()) for m in args.models))
    print(
        f"device: {jax.devices()[0].device_kind}, float32, {args.data} inputs, chunks of 1000 "
        f"samples, best of {args.chunks}"
    )
    for n in args.n:
        timers = [(label, rules, Timer(spec, n, rules, data=data)) for label, spec, rules in models]
        for _ in range(args.chunks):
            for _, _, timer in timers:
                timer.chunk()
        plain = {
            rules: timer.samples_per_s
            for label, rules, timer in timers
            if label.startswith("plain")
        }
        for label, rules, timer in timers:
            rate = timer.samples_per_s
            base = plain.get(rules, plain[()])
            print(f"N={n:>6}  {label:<34} {rate:9.0f} samples/s  ratio {rate / base:.2f}")


if __name__ == "__main__":
    main()
