"""The cost of pricing M_α: samples/s of rules with extra exponents relative to the same
rule without them, in the same process.

M_α = Σ|Δw|^α is summed from factors (η·D·X)^α · Σ|δ/D|^α · Σ|x/X|^α where the selection
is made of post and pre masks or of a threshold on |δ_i x_j| (top-k per layer); where it
is a synapse matrix (a fixed synapse mask), each α adds one column to the product that
prices the matrix, and the pairs are summed one by one only at the steps, and for the α,
where a representable term would otherwise be lost (see ``thrifty.energy`` and
docs/rules.md). Run: ``python bench/bench_alpha.py [N]`` (default N = 10 000).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import chunk_rate, sizes_from_argv
from thrifty.config import RunConfig

CASES = {
    "backprop": (),
    "subnet 100 units": ("subnet:units=100",),
    "top-k per layer 5%": ("top-k:fraction=0.05",),
    "synapse mask 10%/100%": ("synapse-mask:hidden=0.1,output=1",),
}
ALPHAS = ((0.5,), (0.5, 2.0))


def main() -> None:
    n = sizes_from_argv(__doc__, [10_000])[0]
    print(f"# N = {n}, float32; ratio = samples/s with the exponents ÷ samples/s without")
    head = "".join(f" {'α = ' + ', '.join(map(str, a)):>16}" for a in ALPHAS)
    print(f"{'rule':<24} {'no α, samples/s':>16}{head}")
    for name, rules in CASES.items():
        base = chunk_rate(RunConfig(n_hidden=n, rules=rules))
        ratios = [chunk_rate(RunConfig(n_hidden=n, rules=rules, alphas=a)) / base for a in ALPHAS]
        print(f"{name:<24} {base:>16.0f}" + "".join(f" {r:>16.2f}" for r in ratios))


if __name__ == "__main__":
    main()
