"""run_many: aggregate samples/s of B runs in one vmapped computation, against the same
B runs done one after another (single-run chunks), measured in the same process.

Run: ``python bench/bench_many.py [N ...]`` (default N = 100 and 1000). Target at
N = 100: 32 runs at once at least 5× the aggregate throughput of 32 separate runs.

Next to each batch it prints a ceiling measured in the same process: the aggregate
samples/s of the same number of runs doing nothing but the two block products every
exact backprop step needs (the forward product of the input layer and its update,
4·785·N flop per sample, with the block of :func:`thrifty.train.deferred_block`),
vmapped. No way of running the batch that keeps those products can beat it, so its
ratio to the separate runs bounds what ``run_many`` can gain on the machine. A second,
looser ceiling, ``at peak``, is the rate at which those products would run at the
machine's speed for one large matrix product (2048², measured in the same process).
Both ceilings compute in thrifty's matrix-product precision
(:data:`thrifty.train.MATMUL_PRECISION`).

``--vmap-only`` times the vmapped batches against the separate runs and nothing else
(no mapped batches, no ceilings): on a GPU, where each case costs seconds of
compilation, the measurement that fits a short lease.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

from common import N_DATA, best_of, chunk_rate, sizes_from_argv, synthetic_inputs
from thrifty.config import RunConfig
from thrifty.train import (
    MATMUL_PRECISION,
    Structure,
    _as_arrays,
    _batched,
    batch_mode,
    deferred_block,
    numbers_of,
)


def batched_rate(
    n_hidden: int, batch: int, mode: str, chunk: int = 1000, repeats: int = 3
) -> float:
    """Aggregate samples/s of ``batch`` runs (seeds and learning rates differ) in one vmap."""
    configs = [
        RunConfig(n_hidden=n_hidden, seed=s, lr=0.01 * (1 + s % 3)).resolved() for s in range(batch)
    ]
    x, y = synthetic_inputs()
    structure = Structure.of(configs[0], 784, 10)
    numbers = jax.tree.map(
        lambda *v: jnp.stack(v), *[_as_arrays(numbers_of(c), jnp.float32) for c in configs]
    )
    init, run_chunk = _batched(structure, mode)
    keys = jax.random.split(jax.random.key(0), batch)
    state = init(numbers, keys, jnp.full((batch,), 0.01, jnp.float32))
    rng = np.random.default_rng(1)
    idx = jnp.asarray(rng.integers(0, N_DATA, (batch, chunk)), jnp.int32)
    steps = jnp.arange(chunk, dtype=jnp.int32)
    holder = [state]

    def once() -> None:
        s, out = run_chunk(holder[0], idx, steps, x, y, numbers, keys)
        jax.block_until_ready(out)
        holder[0] = s

    once()
    return batch * chunk / best_of(once, repeats)


def products_rate(n_hidden: int, batch: int, chunk: int = 1024, repeats: int = 3) -> float:
    """Aggregate samples/s of ``batch`` runs that only do the input layer's block products.

    Per block of K samples (K from :func:`thrifty.train.deferred_block`) and per run:
    the gather of the block's inputs (K, 785), the forward product with the weights
    (N, 785) and the update ``W −= Δᵀ X`` with a stand-in error of shape (K, N). The
    runs are vmapped and the blocks scanned, in one compiled call, as in ``run_many``.
    """
    block = deferred_block(n_hidden)
    x, _ = synthetic_inputs()
    rng = np.random.default_rng(2)
    weights = jnp.asarray(rng.normal(0.0, 0.01, (batch, n_hidden, 785)), jnp.float32)
    idx = jnp.asarray(rng.integers(0, N_DATA, (batch, chunk // block, block)), jnp.int32)

    def one_run(w: jax.Array, blocks: jax.Array) -> jax.Array:
        def step(w: jax.Array, rows: jax.Array) -> tuple[jax.Array, None]:
            xb = x[rows]
            error = 1e-3 * jnp.tanh(xb @ w.T)
            return w - error.T @ xb, None

        return jax.lax.scan(step, w, blocks)[0]

    products = jax.jit(jax.vmap(one_run), donate_argnums=0)
    holder = [weights]

    def once() -> None:
        with jax.default_matmul_precision(MATMUL_PRECISION):
            holder[0] = jax.block_until_ready(products(holder[0], idx))

    once()
    return batch * (chunk // block) * block / best_of(once, repeats)


def peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """Flop/s of one compiled (size × size) @ (size × size) float32 product."""
    rng = np.random.default_rng(3)
    a, b = (jnp.asarray(rng.normal(size=(size, size)), jnp.float32) for _ in range(2))
    product = jax.jit(functools.partial(jnp.matmul, precision=MATMUL_PRECISION))
    jax.block_until_ready(product(a, b))
    return 2 * size**3 / best_of(lambda: jax.block_until_ready(product(a, b)), repeats)


def main() -> None:
    vmap_only = "--vmap-only" in sys.argv
    if vmap_only:
        sys.argv.remove("--vmap-only")
    sizes = sizes_from_argv(__doc__, [100, 1000])
    print("# aggregate samples/s; 'separate' = one compiled single-run chunk after another")
    print(
        f"# device: {jax.devices()[0].device_kind}; run_many's default here: "
        f"{batch_mode(100, deferred=True)} at N = 100, "
        f"{batch_mode(1000, deferred=True)} at N = 1000"
    )
    if not vmap_only:
        print(
            "# ceilings for run_many: 'products only', the batch doing nothing but the input "
            "layer's block products; 'at peak', those products at the speed of one 2048² product"
        )
    print(f"{'N':>6} {'runs':>5} {'mode':>13} {'run_many':>10} {'separate':>10} {'ratio':>7}")
    for n in sizes:
        before = chunk_rate(RunConfig(n_hidden=n), repeats=5)
        rates = {}
        for batch in (1, 8, 32):
            for mode in ("vmap",) if vmap_only else ("vmap", "map"):
                rates[batch, mode] = batched_rate(n, batch, mode)
            if not vmap_only:
                rates[batch, "products only"] = products_rate(n, batch)
        # the faster of two measurements, before and after: one alone can be slowed by
        # other work on the machine, which would inflate every ratio
        single = max(before, chunk_rate(RunConfig(n_hidden=n), repeats=5))
        if not vmap_only:
            rates["any", "at peak"] = peak_flops() / (4 * 785 * n)
        for (batch, mode), many in rates.items():
            print(
                f"{n:>6} {batch:>5} {mode:>13} {many:>10.0f} {single:>10.0f} {many / single:>7.2f}"
            )


if __name__ == "__main__":
    main()
