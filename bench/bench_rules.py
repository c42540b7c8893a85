"""Rules at N = 10 000: samples/s relative to plain backprop in the same process.

Each rule runs as thrifty runs it (updates deferred over blocks of samples where the
rule allows, see ``thrifty.train.defers_updates``) and stepped sample by sample
(``block=1``); "ratio" is relative to plain backprop's default, "deferred gain" is
default ÷ per-sample. Run: ``python bench/bench_rules.py [N]``. Target: top-k per
layer at least half of plain backprop's throughput.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import chunk_rate, sizes_from_argv
from thrifty.config import RunConfig

CASES = {
    "backprop": (),
    "top-k per layer 5%": ("top-k:fraction=0.05",),
    "top-k per neuron 5%": ("top-k:fraction=0.05,per=neuron",),
    "subnet 100 units": ("subnet:units=100",),
    "synapse mask 10%/100%": ("synapse-mask:hidden=0.1,output=1",),
    "neuron select 10%": ("neuron-select:fraction=0.1",),
    "subnet 100 + top-k 5%": ("subnet:units=100", "top-k:fraction=0.05"),
    "neuron mask 10%": ("neuron-mask:fraction=0.1",),
    "frozen input": ("frozen-input",),
    "lazy": ("lazy",),
}


def main() -> None:
    n = sizes_from_argv(__doc__, [10_000])[0]
    print(f"# N = {n}, float32; ratio = samples/s relative to plain backprop (same process)")
    base = chunk_rate(RunConfig(n_hidden=n))
    print(f"{'rule':<26} {'samples/s':>10} {'ratio':>7} {'per sample':>11} {'deferred gain':>14}")
    for name, rules in CASES.items():
        config = RunConfig(n_hidden=n, rules=rules)
        rate = base if not rules else chunk_rate(config)
        single = chunk_rate(config, block=1)
        print(
            f"{name:<26} {rate:>10.0f} {rate / base:>7.2f} {single:>11.0f} {rate / single:>14.2f}"
        )


if __name__ == "__main__":
    main()
