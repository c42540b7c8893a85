"""What bounds the speed of synaptic caching: steps with parts of the work removed.

Synaptic caching (θ = 10⁻³, synthetic inputs, float32) steps every sample: each
step multiplies the persistent weights ``l`` and the transient weights ``s`` with the
input, updates and decays every ``s``, sums ``|s|`` per unit (the holding cost) with
a test for synapses at θ in the same pass, and consolidates the rows that reach θ.
This benchmark times the full step and three steps that leave parts of that work
out, all in one process, against the memory floor of ``bench_speed.py`` (reading
and writing the input-layer weights once, at the bandwidth of an in-place rewrite
measured here):

- **caching**: the step as thrifty runs it;
- **without consolidation**: no synapse of the hidden layer ever counts as reaching
  θ, so its θ test and its consolidations go, while the update, the decay, both
  products, the row sums of ``|s|`` for the holding cost and the whole step of the
  small output layer stay;
- **... and without l·x**: in addition, the hidden input is ``s·x`` alone (the
  product with the persistent weights left out);
- **... and Σs for Σ|s|**: in addition, the row sums are of ``s`` itself, a row
  reduction that XLA's CPU backend runs at the speed of memory (as it does that of
  ``s·s``, and no other form tried).

The last three compute wrong results; they bound the time of a step that must
still do the rest. Their time does not depend on what the network has learnt (every
pass is over whole arrays); the time of consolidating does: it grows with the units
that reach θ, which the benchmark counts in a run of its own, after as many samples
as the timing took. "× floor" is the
floor's samples/s divided by the case's: the target for caching is 4 (docs/performance.md). The
bounds replace parts of the CPU step of large layers (``consolidation_capacity``);
elsewhere only the full step is timed. Run:
``python bench/bench_caching_bounds.py [N ...]`` (default 10 000 and 30 000; about 5
minutes on two cores).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np

import thrifty.caching as caching_module
from bench_speed import copy_bandwidth, floor_rate
from common import N_DATA, chunk_rate, initial_run, sizes_from_argv
from thrifty.config import RunConfig
from thrifty.network import Params
from thrifty.rules.registry import register
from thrifty.synapses import SYNAPSE_MODELS, SynapseModel
from thrifty.train import run_chunk

THRESHOLD = 0.001


def _register_bound(name: str, persistent_product: bool) -> None:
    """Register caching under ``name``, its hidden input without ``l·x`` unless
    ``persistent_product`` (a bound, not a model). Each case has its own name, so
    that each is traced on its own."""

    @register(name, registry=SYNAPSE_MODELS)
    @functools.wraps(caching_module.caching)  # its parameters, read by the registry
    def without_persistent_product(**given: Any) -> SynapseModel:
        model = caching_module.caching(**given)

        def hidden_input(params: Params, state: Any, x_aug: jax.Array) -> jax.Array:
            s = state.transient.hidden
            capacity = caching_module.row_capacity(s.shape[0])
            return caching_module.live_rows_product(s, state.live[0], x_aug, capacity)

        return model if persistent_product else model._replace(hidden_input=hidden_input)


def _never_reaching(
    s: jax.Array, threshold: Any, eligible_post: Any, eligible_pre: Any, *, absolute: bool
) -> tuple[jax.Array, jax.Array]:
    """Row sums of ``|s|`` (or of ``s``) and no row reaching θ."""
    del threshold, eligible_post, eligible_pre
    held = jnp.sum(jnp.abs(s) if absolute else s, axis=1)
    return held, jnp.zeros(s.shape[:1], bool)


@contextlib.contextmanager
def _row_sums(absolute: bool | None) -> Iterator[None]:
    """Within the block, steps traced for the first time test no synapse against θ
    (None: the library's test, unchanged)."""
    original = caching_module._row_sums_and_reaching
    if absolute is not None:

        def replaced(s: jax.Array, threshold: Any, post: Any, pre: Any) -> Any:
            return _never_reaching(s, threshold, post, pre, absolute=absolute)

        caching_module._row_sums_and_reaching = replaced  # type: ignore[assignment]
    try:
        yield
    finally:
        caching_module._row_sums_and_reaching = original


_register_bound("caching-bound-1", persistent_product=True)
_register_bound("caching-bound-2", persistent_product=False)
_register_bound("caching-bound-3", persistent_product=False)

CASES: dict[str, tuple[str, bool | None]] = {
    "caching": ("caching", None),
    "without consolidation": ("caching-bound-1", True),
    "... and without l·x": ("caching-bound-2", True),
    "... and Σs for Σ|s|": ("caching-bound-3", False),
}
"""Case: (synapse model, row sums: None as in the library, True of ``|s|`` without a
θ test, False of ``s`` without a θ test)."""


def consolidations(n_hidden: int, warm: int, samples: int = 64) -> tuple[float, float, float]:
    """Hidden-layer consolidations of caching with the benchmark's inputs, after
    ``warm`` samples: synapses and units per sample, and the share of units that
    consolidate at least once within 32 samples (means over ``samples`` samples,
    stepped one at a time so that ``l`` can be compared after each)."""
    config = RunConfig(n_hidden=n_hidden, synapses=f"caching:threshold={THRESHOLD}")
    x, y, structure, numbers, state = initial_run(config)
    order = jnp.asarray(np.random.default_rng(1).integers(0, N_DATA, warm + samples), jnp.int32)
    steps = jnp.arange(warm + samples, dtype=jnp.int32)
    key = jax.random.key(1)
    state, _ = run_chunk(state, order[:warm], steps[:warm], x, y, numbers, key, structure=structure)
    synapses, units, within = [], [], []
    seen = np.zeros(n_hidden, bool)
    for t in range(warm, warm + samples):
        before = np.asarray(state.params.hidden)
        state, out = run_chunk(
            state, order[t : t + 1], steps[t : t + 1], x, y, numbers, key, structure=structure
        )
        changed = np.asarray(state.params.hidden) != before
        synapses.append(int(out.energy[0].m0[0]))
        units.append(int(np.any(changed, axis=1).sum()))
        seen |= np.any(changed, axis=1)
        if (t - warm) % 32 == 31:
            within.append(seen.mean())
            seen[:] = False
    return float(np.mean(synapses)), float(np.mean(units)), float(np.mean(within))


def main() -> None:
    sizes = sizes_from_argv(__doc__, [10_000, 30_000])
    print(f"# device: {jax.devices()[0].device_kind}; float32; θ = {THRESHOLD}")
    print(f"{'N':>6} {'case':<26} {'samples/s':>10} {'vs caching':>11} {'× floor':>8}")
    for n in sizes:
        floor = floor_rate(n, copy_bandwidth(2 * n * 785 * 4))
        chunk = max(200, min(1000, 10_000_000 // n))
        print(f"# N={n}: floor {floor:.0f} samples/s; chunks of {chunk} samples")
        base = None
        for name, (model, absolute) in CASES.items():
            if base is not None and caching_module.consolidation_capacity(n) is None:
                print(f"# N={n}: the bounds apply to the CPU step of large layers only")
                break
            # each case is traced once, under its own model name (a static part of
            # the compiled chunk); the θ test is replaced while it is
            spec = f"{model}:threshold={THRESHOLD}"
            with _row_sums(absolute):
                rate = chunk_rate(RunConfig(n_hidden=n, synapses=spec), chunk=chunk)
            base = base or rate
            print(f"{n:>6} {name:<26} {rate:>10.0f} {rate / base:>11.2f} {floor / rate:>8.2f}")
        synapses, units, within = consolidations(n, warm=4 * chunk)
        print(
            f"# N={n}, caching after {4 * chunk} samples: {synapses:.0f} synapses of "
            f"{units:.0f} units consolidate per sample; {within:.0%} of the units within 32"
        )


if __name__ == "__main__":
    main()
