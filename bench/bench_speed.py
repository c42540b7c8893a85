"""Single-run speed against the memory floor and a naive NumPy loop (issue: speed).

For N = 100, 1000, 10 000 and 30 000 and each case (plain backprop with deferred
updates, and stepping every sample; top-k per layer, subnet (deferred too), synaptic
caching) prints samples/s, the ratio to plain backprop (deferred), the time of a
sample as a multiple of the memory floor's ("× floor": the floor's samples/s divided
by the case's; below 1 is faster than the floor), and (for plain) the ratio to a
naive per-sample NumPy loop.

The memory floor of one step is the time to read and write the input-layer weights
once, 2·N·785·4 bytes, at the bandwidth measured in this process by an in-place
rewrite of an array of that size, compiled by XLA (so it uses the same threads as
training): the footprint of a STREAM copy of the weights, a source and a destination
each of the weights' size. Where the weights alone fit in a cache and twice their
size does not (N = 10 000 on a 32 MB L3), the floor is then set by the memory beyond
that cache; the bandwidth of rewriting an array of the weights' size alone is
printed too. Run: ``python bench/bench_speed.py [N ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

from common import best_of, chunk_rate, naive_numpy_rate, sizes_from_argv
from thrifty.config import RunConfig
from thrifty.synapses import SYNAPSE_MODELS

CASES: dict[str, dict[str, object]] = {
    "backprop": {},
    "per sample": {"block": 1},
    "top-k 5%": {"rules": ("top-k:fraction=0.05",)},
    "subnet 100": {"rules": ("subnet:units=100",)},
    "caching": {"synapses": "caching:threshold=0.001"},
}
"""Cases and their config fields; ``block`` 1 is plain backprop stepping every sample on
its own instead of deferring the updates of a block of samples (``thrifty.train``)."""


def copy_bandwidth(n_bytes: int, sweeps: int = 20) -> float:
    """Bytes/s moved (read + write) by XLA rewriting an array of ``n_bytes`` in place.

    Like a training step's update of the weights: the array is donated and rewritten
    ``sweeps`` times in one compiled loop (``w ← w·a + b``), so it stays where the
    weights stay (cache or memory) and uses the same threads.
    """
    w = jnp.ones(n_bytes // 4, jnp.float32)
    f = jax.jit(
        lambda a: jax.lax.fori_loop(0, sweeps, lambda _, v: v * 0.999999 + 1e-7, a),
        donate_argnums=0,
    )
    holder = [f(w)]
    jax.block_until_ready(holder[0])

    def once() -> None:
        holder[0] = f(holder[0])
        jax.block_until_ready(holder[0])

    return 2 * n_bytes * sweeps / best_of(once, 5)


def floor_rate(n_hidden: int, bandwidth: float) -> float:
    """Samples/s of the memory floor: reading and writing the input-layer weights
    (``n_hidden × 785`` float32) once per sample at ``bandwidth`` bytes/s (measured
    by :func:`copy_bandwidth` of twice the weights' size, see the module docstring)."""
    return bandwidth / (2 * n_hidden * 785 * 4)


def numpy_copy_bandwidth(n_bytes: int) -> float:
    """Bytes/s of ``numpy.copyto`` (one thread) for ``n_bytes``."""
    a = np.ones(n_bytes // 4, np.float32)
    b = np.empty_like(a)
    t = best_of(lambda: np.copyto(b, a), 5)
    return 2 * n_bytes / t


def main() -> None:
    sizes = sizes_from_argv(__doc__, [100, 1000, 10_000, 30_000])
    print(f"# device: {jax.devices()[0].device_kind}; float32; chunks of 1000 samples")
    header = (
        f"{'N':>6} {'case':<12} {'samples/s':>10} {'vs plain':>9} {'floor/s':>9} {'× floor':>9}"
    )
    print(header + f" {'vs naive':>9}")
    for n in sizes:
        weights = n * 785 * 4
        bw = copy_bandwidth(2 * weights)
        floor = floor_rate(n, bw)
        print(
            f"# N={n}: weights {weights / 1e6:.1f} MB, XLA copy {bw / 1e9:.1f} GB/s "
            f"(of the weights' size alone {copy_bandwidth(weights) / 1e9:.1f} GB/s), "
            f"NumPy copy {numpy_copy_bandwidth(weights) / 1e9:.1f} GB/s"
        )
        base = None
        for name, fields in CASES.items():
            if "synapses" in fields and "caching" not in SYNAPSE_MODELS:
                continue
            fields = dict(fields)
            block = fields.pop("block", None)
            rate = chunk_rate(RunConfig(n_hidden=n, **fields), block=block)  # type: ignore[arg-type]
            base = base or rate
            extra = ""
            if name == "backprop":
                naive = naive_numpy_rate(n, max(10, min(2000, 3_000_000 // n)))
                extra = f" {rate / naive:>9.1f}"
            print(
                f"{n:>6} {name:<12} {rate:>10.0f} {rate / base:>9.2f} {floor:>9.0f} "
                f"{floor / rate:>9.2f}{extra}"
            )


if __name__ == "__main__":
    main()
