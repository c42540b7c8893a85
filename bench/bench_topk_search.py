"""Top-k per layer: the search for its threshold against a plain bisection (issue: speed).

The largest-updates rule needs, every sample, the k-th largest product
``|delta_i| · |x_j|`` of the input layer. thrifty bisects the bit patterns of τ only
until at most :data:`thrifty.rules.library.CANDIDATE_PAIRS` pairs lie between its
bounds, then ranks those pairs directly; the baseline bisects down to one bit pattern
(32 counts in float32), as thrifty did before. Both give the same thresholds
(``tests/test_rule_properties.py``). For N = 300, 1000 and 10 000 this prints, both
ways in the same process: the search alone on MNIST-like inputs (how many counts
thrifty's takes, and µs per threshold), and the samples/s of a top-k run (5 %) and of
a 100-unit subnet with top-k inside it (compiled afresh, twice each, the better rate
kept).

Run: ``python bench/bench_topk_search.py [N ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

import thrifty.rules.library as library
from common import best_of, rates_of_ways, sizes_from_argv
from thrifty.config import RunConfig
from thrifty.ops import sort_by_magnitude

CASES = {
    "top-k 5%": ("top-k:fraction=0.05",),
    "subnet 100 + top-k 5%": ("subnet:units=100", "top-k:fraction=0.05"),
}


def bisected_threshold(
    a: jax.Array, b: jax.Array, k: jax.Array, a_sorted: jax.Array | None = None
) -> jax.Array:
    """``library.product_threshold`` by a bisection of every bit pattern of τ.

    ``a`` (n,) and ``b`` (m,) non-negative, ``k`` int; returns the thresholds (m,).
    """
    dtype = a.dtype
    itype = library._int_type_of(dtype)
    a_sorted = a_sorted if a_sorted is not None else jnp.sort(a)
    n = a.shape[0]
    safe_b = jnp.where(b > 0, b, jnp.ones_like(b))

    smallest = jnp.asarray(jnp.finfo(dtype).tiny, dtype)  # a zero product never passes

    def thresholds(tau: jax.Array) -> jax.Array:
        return jnp.where(b > 0, jnp.maximum(tau / safe_b, smallest), jnp.full_like(b, jnp.inf))

    def passing(bits: jax.Array) -> jax.Array:
        tau = jax.lax.bitcast_convert_type(bits, dtype)
        first = jnp.searchsorted(a_sorted, thresholds(tau), side="left", method="scan")
        return (n - first).astype(itype)

    k = k.astype(itype)

    def body(_: Any, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        ok = jnp.sum(passing(mid)) >= k
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    hi = jax.lax.bitcast_convert_type(jnp.max(a) * jnp.max(b), itype) + 1
    bits = 8 * jnp.dtype(dtype).itemsize
    lo, _ = jax.lax.fori_loop(0, bits, body, (jnp.zeros((), itype), hi))
    now, after = passing(lo), passing(lo + 1)
    excess = jnp.sum(now) - k
    raise_col = jnp.cumsum(now - after) <= excess
    tau = jax.lax.bitcast_convert_type(lo, dtype)
    tau_next = jax.lax.bitcast_convert_type(lo + 1, dtype)
    return jnp.where(raise_col & (excess > 0), thresholds(tau_next), thresholds(tau))


def mnist_like(n: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """|delta| (n,), a normal's magnitudes · 0.01, and |x| (785,), 80 % zero like MNIST
    pixels, bias 1; float32."""
    rng = np.random.default_rng(seed)
    a = np.abs(rng.normal(size=n)) * 0.01
    x = np.where(rng.random(785) < 0.2, rng.random(785), 0.0)
    x[-1] = 1.0
    return jnp.asarray(a, jnp.float32), jnp.asarray(x, jnp.float32)


def counts_of_search(a: jax.Array, b: jax.Array, k: int) -> int:
    """How many counts (binary searches of all columns) ``library.threshold_bits`` makes."""
    calls = [0]
    first_passing = library.first_passing

    def counted(bits: jax.Array, a_sorted: jax.Array, b: jax.Array) -> jax.Array:
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return first_passing(bits, a_sorted, b)

    library.first_passing = counted
    try:
        k_int = jnp.asarray(k, jnp.int32)
        # a new function each time, so that the counting version is the one compiled
        search = jax.jit(lambda a, s, b, k: library.threshold_bits(a, s, b, k))
        jax.block_until_ready(search(a, jnp.sort(a), b, k_int))
        jax.effects_barrier()
    finally:
        library.first_passing = first_passing
    return calls[0]


def threshold_time(threshold: Any, a: jax.Array, b: jax.Array, k: int, loops: int = 100) -> float:
    """Seconds per call of ``threshold(a, b, k, sorted a)``, ``loops`` calls in one
    compiled loop (each on slightly changed errors, so none is hoisted out), the sort
    included as the rule makes it (``sort_by_magnitude``)."""
    k_int = jnp.asarray(k, jnp.int32)

    def body(_: Any, acc: jax.Array) -> jax.Array:
        a_i = a * (1 + acc[0] * 1e-30)
        thr = threshold(a_i, b, k_int, sort_by_magnitude(a_i)[0])
        return acc + jnp.where(jnp.isfinite(thr), thr, 0)

    run = jax.jit(lambda: jax.lax.fori_loop(0, loops, body, jnp.zeros(b.shape, a.dtype)))
    jax.block_until_ready(run())
    return best_of(lambda: jax.block_until_ready(run()), 3) / loops


def main() -> None:
    sizes = sizes_from_argv(__doc__, [300, 1000, 10_000])
    ways = {"bisection": bisected_threshold, "thrifty": library.product_threshold}
    print(f"# device: {jax.devices()[0].device_kind}; float32")
    print("# the search alone, MNIST-like inputs (80 % zero pixels): counts and µs per threshold")
    print(f"{'N':>6} {'k':>9} {'counts':>7} {'bisection µs':>13} {'thrifty µs':>11} {'gain':>6}")
    for n in sizes:
        a, b = mnist_like(n)
        for fraction in (0.01, 0.05):
            k = max(1, round(fraction * n * 785))
            times = {way: threshold_time(impl, a, b, k) for way, impl in ways.items()}
            old, new = times["bisection"], times["thrifty"]
            print(
                f"{n:>6} {k:>9} {counts_of_search(a, b, k):>7} {old * 1e6:>13.0f} "
                f"{new * 1e6:>11.0f} {old / new:>6.2f}"
            )
    print("# training runs (synthetic inputs), samples/s")
    print(f"{'N':>6} {'case':<22} {'bisection':>10} {'thrifty':>8} {'gain':>6}")
    for n in sizes:
        for name, rules in CASES.items():
            config = RunConfig(n_hidden=n, rules=rules)
            rates = rates_of_ways(config, library, "product_threshold", ways)
            old, new = rates["bisection"], rates["thrifty"]
            print(f"{n:>6} {name:<22} {old:>10.0f} {new:>8.0f} {new / old:>6.2f}")


if __name__ == "__main__":
    main()
