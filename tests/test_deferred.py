"""Plain backprop with deferred weight updates equals stepping every sample on its own."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty.config import RunConfig
from thrifty.network import Params
from thrifty.rules import LayerSelection, Rule, registry
from thrifty.train import (
    Structure,
    _as_arrays,
    deferred_block,
    defers_updates,
    numbers_of,
    run_chunk,
)
from util import initial_state, tie_free_data

T = 30


def _run(config: RunConfig, block: int, *, active: float = 1.0) -> tuple[Any, Any, Any]:
    """(initial state, final state, StepOutput) of T samples of ``config`` in one chunk."""
    x, y = tie_free_data()
    order = np.random.default_rng(3).integers(0, len(y), T)
    config = config.resolved()
    dtype = jnp.dtype(config.dtype)
    structure, numbers, state, k_steps = initial_state(config, x.shape[1] - 1)
    state = state._replace(active=jnp.asarray(active, dtype))
    initial = jax.tree.map(np.array, state)
    final, out = run_chunk(
        state,
        jnp.asarray(order, jnp.int32),
        jnp.arange(T, dtype=jnp.int32),
        jnp.asarray(x, dtype),
        jnp.asarray(y, jnp.int32),
        numbers,
        k_steps,
        structure=structure,
        block=block,
    )
    return initial, final, out


def _config(**kw: Any) -> RunConfig:
    """A small float64 run on synthetic data that learns within T samples."""
    return RunConfig(
        dataset="synthetic", n_hidden=12, lr=0.05, sigma=0.3, dtype="float64", **kw
    ).resolved()


def _defers(config: RunConfig) -> bool:
    numbers = _as_arrays(numbers_of(config), jnp.dtype(config.dtype))
    return defers_updates(Structure.of(config, 784, 10), numbers)


def _assert_same_run(config: RunConfig, block: int) -> Any:
    """Weights, rule state, every step's energies (M0 exact, M1 and M_α) and losses of
    ``block`` agree with stepping every sample on its own, in float64; returns the
    per-sample run's StepOutput."""
    _, want, want_out = _run(config, 1)
    _, got, got_out = _run(config, block)
    for w_got, w_want in zip(got.params, want.params, strict=True):
        np.testing.assert_allclose(np.asarray(w_got), np.asarray(w_want), atol=1e-12, rtol=0)
    for s_got, s_want in zip(
        jax.tree.leaves(got.rule_state), jax.tree.leaves(want.rule_state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(s_got), np.asarray(s_want))
    for e_got, e_want in zip(got_out.energy, want_out.energy, strict=True):
        np.testing.assert_array_equal(np.asarray(e_got.m0), np.asarray(e_want.m0))
        np.testing.assert_array_equal(
            np.asarray(e_got.m0_potentiation), np.asarray(e_want.m0_potentiation)
        )
        for name in ("m1", "m1_potentiation", "m_alpha"):
            np.testing.assert_allclose(
                np.asarray(getattr(e_got, name)), np.asarray(getattr(e_want, name)), rtol=1e-10
            )
        assert np.asarray(e_got.m0).shape == (T,)
    np.testing.assert_allclose(np.asarray(got_out.loss), np.asarray(want_out.loss), rtol=1e-10)
    # the weights did learn: the comparison is not between two unchanged states
    assert np.asarray(want_out.energy[0].m0).sum() + np.asarray(want_out.energy[1].m0).sum() > 0
    return want_out


@pytest.mark.parametrize("block", [2, 7, 30])
@pytest.mark.parametrize(
    ("loss", "activation"),
    [("mse", "leaky_relu"), ("cross_entropy", "leaky_relu"), ("mse", "relu")],
)
def test_deferred_updates_equal_per_sample_steps(block: int, loss: str, activation: str) -> None:
    """Plain backprop, for blocks that divide T and one that leaves a tail."""
    config = _config(loss=loss, activation=activation, alphas=(0.5, 2.0))
    want_out = _assert_same_run(config, block)
    assert np.asarray(want_out.energy[0].m0).sum() > 0  # the input layer learned too


MASK_RULES = [
    ("subnet:units=5",),
    ("neuron-mask:fraction=0.5",),
    ("neuron-select:fraction=0.3",),
    ("neuron-select:fraction=0.3,by=activity",),
    ("random-neuron-mask:fraction=0.5",),
    ("class-neuron-mask:fraction=0.5",),
    ("frozen-input",),
    ("lazy",),
    ("top-k:fraction=0.2,per=neuron",),
    ("subnet:units=6", "top-k:fraction=0.3,per=neuron", "lazy"),
]


@pytest.mark.parametrize("rules", MASK_RULES, ids=" + ".join)
def test_rules_with_post_and_pre_masks_defer_updates_exactly(rules: tuple[str, ...]) -> None:
    """Rules whose selections are post and pre masks see each sample's exact proposal
    inside a block (a block of 7 leaves a tail of 2 samples stepped on their own)."""
    config = _config(rules=rules, alphas=(0.5,))
    assert _defers(config)
    _assert_same_run(config, 7)


def test_frozen_run_with_deferred_updates_changes_and_spends_nothing() -> None:
    config = RunConfig(dataset="synthetic", n_hidden=12, lr=0.05, dtype="float64")
    initial, final, out = _run(config, 10, active=0.0)
    for w0, w1 in zip(initial.params, final.params, strict=True):
        np.testing.assert_array_equal(np.asarray(w1), w0)
    for e in out.energy:
        assert int(np.asarray(e.m0).sum()) == 0
        assert float(np.asarray(e.m1).sum()) == 0.0


def test_which_runs_defer_updates() -> None:
    def defers(**kw: Any) -> bool:
        return _defers(RunConfig(dataset="synthetic", **kw).resolved())

    assert defers()
    assert defers(rules=("subnet:units=10", "lazy"))
    # a threshold or a fixed synapse matrix is not an outer product
    assert not defers(rules=("top-k:fraction=0.1",))
    assert not defers(rules=("subnet:units=10", "top-k:fraction=0.1"))
    assert not defers(rules=("synapse-mask:hidden=0.5",))
    assert not defers(synapses="caching:threshold=0.01")
    assert not defers(simpson=True)
    assert deferred_block(100) == 64 and deferred_block(10000) == 32


def test_a_rule_that_reads_the_weights_steps_every_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule may read the weights' current values (``reads_weights`` defaults to True):
    its runs are not deferred, and they see the weights after every sample."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    @registry.register("strong-units")
    def strong_units() -> Rule:
        """Only hidden units whose incoming weights sum to more than zero learn."""

        def init(params: Params, key: jax.Array) -> tuple[()]:
            return ()

        def update(proposal: Any, state: Any, params: Params, ctx: Any) -> tuple[Any, Any]:
            post = (params.hidden.sum(axis=1) > 0).astype(params.hidden.dtype)
            return (LayerSelection(post=post), LayerSelection()), state

        return Rule(init, update, "strong-units")

    config = _config(rules=("strong-units",))
    assert strong_units().reads_weights
    assert not _defers(config)
    _, want, _ = _run(config, 1)
    _, got, _ = _run(config, 7)
    for w_got, w_want in zip(got.params, want.params, strict=True):
        np.testing.assert_array_equal(np.asarray(w_got), np.asarray(w_want))


@pytest.mark.parametrize("rules", [(), ("subnet:units=5",)], ids=["backprop", "subnet"])
def test_a_diverging_run_diverges_at_the_same_sample_with_the_same_energy(
    rules: tuple[str, ...],
) -> None:
    """A run that blows up: deferred and per-sample steps meet the first non-finite loss
    at the same sample, and the energies of the samples before it (those a record
    counts) agree."""
    config = RunConfig(
        dataset="synthetic", n_hidden=12, lr=2.0, sigma=1.0, dtype="float64", rules=rules
    ).resolved()
    assert _defers(config)
    _, _, want = _run(config, 1)
    _, _, got = _run(config, 7)
    first = [int(np.argmax(~np.isfinite(np.asarray(o.loss)))) for o in (want, got)]
    assert first[0] == first[1] and 0 < first[0] < T - 1
    assert not np.isfinite(np.asarray(want.loss)[first[0]])
    before = slice(0, first[0])
    np.testing.assert_allclose(
        np.asarray(got.loss)[before], np.asarray(want.loss)[before], rtol=1e-8
    )
    for e_got, e_want in zip(got.energy, want.energy, strict=True):
        np.testing.assert_array_equal(np.asarray(e_got.m0)[before], np.asarray(e_want.m0)[before])
        np.testing.assert_allclose(
            np.asarray(e_got.m1)[before], np.asarray(e_want.m1)[before], rtol=1e-8
        )
