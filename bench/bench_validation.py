"""Accuracy checks: the cached check set against a full pass, at N = 10 000.

A check on 10 000 validation images costs 2·10 000·785·N flops in full (157 GFLOP
at N = 10 000). Thrifty's full pass (:func:`thrifty.train.accuracy`) works through
the set in chunks of at most 256 images; the baseline is the same pass as one
product over the whole set, with its (10 000 × N) hidden activity in memory.
:class:`thrifty.train.CheckSet` recomputes only hidden units whose incoming weights
changed, and makes a full pass when more than a quarter did. Run:
``python bench/bench_validation.py [N]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

from common import best_of, sizes_from_argv
from thrifty.network import Params, augment, forward, init_params
from thrifty.train import CheckSet, accuracy


@jax.jit
def _correct_in_one_product(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sum(jnp.argmax(forward(params, x), -1) == y)


def main() -> None:
    n = sizes_from_argv(__doc__, [10_000])[0]
    rng = np.random.default_rng(0)
    x = augment(jnp.asarray(rng.normal(0, 0.3, (10_000, 784)), jnp.float32))
    y = jnp.asarray(rng.integers(0, 10, 10_000), jnp.int32)
    p0 = init_params(jax.random.key(0), n_hidden=n)
    print(f"# N = {n}, 10 000 check images; seconds per check (best of 3), ratio to the")
    print("# full pass as one product")
    assert int(_correct_in_one_product(p0, x, y)) / 10_000 == accuracy(
        p0, x, y, activation="leaky_relu"
    )
    full = best_of(lambda: int(_correct_in_one_product(p0, x, y)), 3)
    print(f"{'full pass, one product':<34} {full:>8.3f} {1.0:>7.2f}")
    chunked = best_of(lambda: accuracy(p0, x, y, activation="leaky_relu"), 3)
    print(f"{'full pass in chunks (thrifty)':<34} {chunked:>8.3f} {chunked / full:>7.2f}")
    # numbers of changed units that fit the network, each once, in increasing order
    for changed in sorted({min(c, n) for c in (100, 1000, n // 5, n // 2) if c > 0}):
        rows = rng.choice(n, changed, replace=False)
        w = np.asarray(p0.hidden).copy()
        w[rows] += 0.01
        params = Params(jnp.asarray(w), p0.output)
        checks = CheckSet(x, y, activation="leaky_relu")
        checks.accuracy(p0)  # fills the cache with the initial weights
        assert checks.accuracy(params) == accuracy(params, x, y, activation="leaky_relu")
        t = float("inf")
        for _ in range(3):
            # back to the initial weights first (untimed): when more than a quarter
            # of the units changed, a check takes the new weights as its reference
            checks.accuracy(p0)
            start = time.perf_counter()
            checks.accuracy(params)
            t = min(t, time.perf_counter() - start)
        how = "cached" if checks.hidden is not None else "in full"
        print(f"{f'{changed} units changed ({how})':<34} {t:>8.3f} {t / full:>7.2f}")


if __name__ == "__main__":
    main()
