"""Top-k per layer: the search for its threshold against a plain bisection (issue: speed).

The largest-updates rule needs, every sample, the k-th largest product
``|delta_i| · |x_j|`` of the input layer. thrifty bisects the bit patterns of τ only
until at most :data:`thrifty.rules.library.CANDIDATE_PAIRS` pairs lie between its
bounds, then ranks those pairs directly; the baseline bisects down to one bit pattern
(32 counts in float32), as thrifty did before. Both give the same thresholds
(``tests/test_rule_properties.py``). For N = 300, 1000 and 10 000 this prints the
samples/s of a top-k run (5 %) and of a 100-unit subnet with top-k inside it, both
ways, in the same process (compiled afresh, twice each, the better rate kept).

Run: ``python bench/bench_topk_search.py [N ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp

import thrifty.rules.library as library
from common import chunk_rate
from thrifty.config import RunConfig

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
    itype = jnp.int64 if jnp.dtype(dtype).itemsize == 8 else jnp.int32
    a_sorted = a_sorted if a_sorted is not None else jnp.sort(a)
    n = a.shape[0]
    safe_b = jnp.where(b > 0, b, jnp.ones_like(b))

    def thresholds(tau: jax.Array) -> jax.Array:
        return jnp.where(b > 0, tau / safe_b, jnp.full_like(b, jnp.inf))

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


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [300, 1000, 10_000]
    search = library.product_threshold
    print(f"# device: {jax.devices()[0].device_kind}; float32; samples/s")
    print(f"{'N':>6} {'case':<22} {'bisection':>10} {'thrifty':>8} {'gain':>6}")
    for n in sizes:
        for name, rules in CASES.items():
            config = RunConfig(n_hidden=n, rules=rules)
            rates = {"bisection": 0.0, "thrifty": 0.0}
            for way, impl in [("bisection", bisected_threshold), ("thrifty", search)] * 2:
                library.product_threshold = impl
                jax.clear_caches()
                rates[way] = max(rates[way], chunk_rate(config, repeats=3))
            library.product_threshold = search
            old, new = rates["bisection"], rates["thrifty"]
            print(f"{n:>6} {name:<22} {old:>10.0f} {new:>8.0f} {new / old:>6.2f}")


if __name__ == "__main__":
    main()
