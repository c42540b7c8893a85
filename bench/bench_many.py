"""run_many: aggregate samples/s of B runs in one vmapped computation, against the same
B runs done one after another (single-run chunks), measured in the same process.

Run: ``python bench/bench_many.py [N ...]`` (default N = 100 and 1000). Target at
N = 100: 32 runs at once at least 5× the aggregate throughput of 32 separate runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

from common import N_DATA, best_of, chunk_rate, synthetic_inputs
from thrifty.config import RunConfig
from thrifty.train import Structure, _as_arrays, _batched, batch_mode, numbers_of


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


def main() -> None:
    print("# aggregate samples/s; 'separate' = one compiled single-run chunk after another")
    print(
        f"# device: {jax.devices()[0].device_kind}; run_many's default here: "
        f"{batch_mode(100, deferred=True)} at N = 100, "
        f"{batch_mode(1000, deferred=True)} at N = 1000"
    )
    print(f"{'N':>6} {'runs':>5} {'mode':>5} {'run_many':>10} {'separate':>10} {'ratio':>7}")
    for n in [int(a) for a in sys.argv[1:]] or [100, 1000]:
        single = chunk_rate(RunConfig(n_hidden=n))
        for batch in (1, 8, 32):
            for mode in ("vmap", "map"):
                many = batched_rate(n, batch, mode)
                print(
                    f"{n:>6} {batch:>5} {mode:>5} {many:>10.0f} {single:>10.0f} "
                    f"{many / single:>7.2f}"
                )


if __name__ == "__main__":
    main()
