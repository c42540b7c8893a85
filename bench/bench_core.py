"""Plain backprop: samples/s of the compiled path against a naive NumPy loop.

Run: ``python bench/bench_core.py`` (a few minutes on a 2-core CPU).
Prints, per N, both rates and their ratio, measured in this process.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax

from common import chunk_rate, naive_numpy_rate, sizes_from_argv
from thrifty.config import RunConfig

NAIVE_SAMPLES = {100: 2000, 1000: 300, 10000: 30}


def main() -> None:
    sizes_from_argv(__doc__, [])  # only --help; the sizes are those of NAIVE_SAMPLES
    print(
        f"# plain backprop, float32, {jax.devices()[0].device_kind}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{'N':>7} {'thrifty samples/s':>18} {'naive NumPy samples/s':>22} {'ratio':>8}")
    for n, naive_samples in NAIVE_SAMPLES.items():
        fast = chunk_rate(RunConfig(n_hidden=n))
        naive = naive_numpy_rate(n, naive_samples)
        print(f"{n:>7} {fast:>18.0f} {naive:>22.1f} {fast / naive:>8.1f}")


if __name__ == "__main__":
    main()
