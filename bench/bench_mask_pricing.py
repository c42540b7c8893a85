"""Fixed synapse masks: pricing a boolean matrix, and a list of indices against it.

A synapse-mask rule selects through a fixed boolean matrix as large as the weights,
so the energy of each step needs products of that matrix with the step's factors.
thrifty takes one product with four presynaptic columns
(:func:`thrifty.energy._masked_sums`); the baseline here is the earlier way, two
products of the matrix with three rows of postsynaptic factors each (counts, then
sums). Both are run in the same process, compiled afresh, twice each, and the
better rate of each is printed with their ratio.

Then, for masks that keep a small share of the input layer plastic, the list of the
plastic synapses' indices that thrifty keeps below ``LISTED_UP_TO`` of a layer
(:func:`thrifty.rules.library.list_capacity`) against the boolean matrix, at shares
around that bound: the step then applies and prices the update on the listed
synapses alone.

Run: ``python bench/bench_mask_pricing.py [N ...]`` (default 300 1000 10000).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp

import thrifty.energy as energy
import thrifty.rules.library as library
from common import rates_of_ways, sizes_from_argv
from thrifty.config import RunConfig

RULE = "synapse-mask:hidden=0.1,output=1"
LIST_SHARES = (0.01, 0.03, 0.06)
"""Plastic shares of the input layer at which the list is compared with the matrix."""


def two_products(
    d: jax.Array, x: jax.Array, synapses: jax.Array, alphas: tuple[float, ...]
) -> tuple[jax.Array, jax.Array]:
    """The counts and sums of ``energy._masked_sums``, from ``factors @ synapses`` twice.

    ``d`` (n_post,), ``x`` (n_pre,), ``synapses`` bool (n_post, n_pre); returns int32
    counts (3,) and sums (3 + len(alphas),).
    """
    m = synapses.astype(d.dtype)
    ind_d = jnp.stack([d != 0, d > 0, d < 0]).astype(d.dtype)
    ind_x = jnp.stack([x != 0, x < 0, x > 0]).astype(jnp.int32)
    counts = jnp.sum(jnp.round(ind_d @ m).astype(jnp.int32) * ind_x, axis=1)
    ad, zd = jnp.abs(d), jnp.zeros_like(d)
    ax, zx = jnp.abs(x), jnp.zeros_like(x)
    fd = [ad, jnp.maximum(d, zd), jnp.maximum(-d, zd)]
    fd += [jnp.where(d != 0, ad**a, zd) for a in alphas]
    fx = [ax, jnp.maximum(-x, zx), jnp.maximum(x, zx)]
    fx += [jnp.where(x != 0, ax**a, zx) for a in alphas]
    return counts, jnp.sum((jnp.stack(fd) @ m) * jnp.stack(fx), axis=1)


def main() -> None:
    sizes = sizes_from_argv(__doc__, [300, 1000, 10_000])
    ways = {"two": two_products, "one": energy._masked_sums}
    print(f"# device: {jax.devices()[0].device_kind}; float32; rule {RULE}; samples/s")
    print(f"{'N':>6} {'two products':>13} {'one product':>12} {'gain':>6}")
    for n in sizes:
        rates = rates_of_ways(RunConfig(n_hidden=n, rules=(RULE,)), energy, "_masked_sums", ways)
        two, one = rates["two"], rates["one"]
        print(f"{n:>6} {two:>13.0f} {one:>12.0f} {one / two:>6.2f}")
    # a bound of 0 keeps every mask a matrix; 1 lists every mask that fits in a list
    forms = {"matrix": 0.0, "list": 1.0}
    print("\n# synapse-mask:hidden=p,output=1 (input layer listed or not); samples/s")
    print(f"{'N':>6} {'p':>5} {'matrix':>8} {'list':>8} {'gain':>6}")
    for n in sizes:
        for share in LIST_SHARES:
            config = RunConfig(n_hidden=n, rules=(f"synapse-mask:hidden={share},output=1",))
            rates = rates_of_ways(config, library, "LISTED_UP_TO", forms)
            matrix, listed = rates["matrix"], rates["list"]
            print(f"{n:>6} {share:>5.2f} {matrix:>8.0f} {listed:>8.0f} {listed / matrix:>6.2f}")


if __name__ == "__main__":
    main()
