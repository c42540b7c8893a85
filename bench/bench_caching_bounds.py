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
- **without consolidation**: no synapse ever counts as reaching θ, so no θ test
  runs and nothing consolidates, while the update, the decay, both products and the
  row sums of ``|s|`` for the holding cost stay;
- **... and without l·x**: in addition, the hidden input is ``s·x`` alone (the
  product with the persistent weights left out);
- **... and Σs for Σ|s|**: in addition, the row sums are of ``s`` itself, the one
  row reduction that XLA's CPU backend runs at the speed of memory.

The last three compute wrong results; they bound the time of a step that must
still do the rest. Their time does not depend on what the network has learnt (every
pass is over whole arrays); the time of consolidating does: it grows with the rows
that reach θ (about a tenth of them per sample here). "× floor" is the floor's
samples/s divided by the case's: the issue's target for caching is 4. Run:
``python bench/bench_caching_bounds.py [N ...]`` (default 10 000 and 30 000; about 3
minutes on two cores).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp

import thrifty.caching as caching_module
from bench_speed import copy_bandwidth
from common import chunk_rate, sizes_from_argv
from thrifty.config import RunConfig
from thrifty.network import Params
from thrifty.rules.registry import register
from thrifty.synapses import SYNAPSE_MODELS, SynapseModel

THRESHOLD = 0.001


def _register_bound(name: str, persistent_product: bool) -> None:
    """Register caching under ``name``, its hidden input without ``l·x`` unless
    ``persistent_product`` (a bound, not a model). Each case has its own name, so
    that each is traced on its own."""

    @register(name, registry=SYNAPSE_MODELS)
    def without_persistent_product(
        *,
        threshold: float,
        tau: float = 1000.0,
        cost: float = 0.001,
        per: str = "synapse",
        consolidate_units: int = 0,
        alphas: tuple[float, ...] = (),
    ) -> SynapseModel:
        model = caching_module.caching(
            threshold=threshold,
            tau=tau,
            cost=cost,
            per=per,
            consolidate_units=consolidate_units,
            alphas=alphas,
        )

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


def main() -> None:
    sizes = sizes_from_argv(__doc__, [10_000, 30_000])
    print(f"# device: {jax.devices()[0].device_kind}; float32; θ = {THRESHOLD}")
    print(f"{'N':>6} {'case':<26} {'samples/s':>10} {'vs caching':>11} {'× floor':>8}")
    for n in sizes:
        weights = 2 * n * 785 * 4
        floor = copy_bandwidth(weights) / weights
        chunk = max(200, min(1000, 10_000_000 // n))
        print(f"# N={n}: floor {floor:.0f} samples/s; chunks of {chunk} samples")
        base = None
        for name, (model, absolute) in CASES.items():
            # each case is traced once, under its own model name (a static part of
            # the compiled chunk); the θ test is replaced while it is
            spec = f"{model}:threshold={THRESHOLD}"
            with _row_sums(absolute):
                rate = chunk_rate(RunConfig(n_hidden=n, synapses=spec), chunk=chunk)
            base = base or rate
            print(f"{n:>6} {name:<26} {rate:>10.0f} {rate / base:>11.2f} {floor / rate:>8.2f}")


if __name__ == "__main__":
    main()
