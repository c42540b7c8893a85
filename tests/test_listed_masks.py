"""Fixed synapse masks kept as lists of indices: the same synapses, the same training.

A synapse-mask rule that keeps a small share of a layer plastic holds that layer's
mask as the ascending flat indices of its plastic synapses
(:attr:`thrifty.rules.base.LayerSelection.listed`), and the step applies and prices
the update on them alone. Here the list is compared with the boolean matrix it
replaces: the same draw, the same selections when intersected with other rules, and
the same training (weights within rounding, M0 equal at every step, M1 within rounding).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import thrifty.rules.library as library
from thrifty import data
from thrifty.config import RunConfig
from thrifty.energy import dense_selection, listed_matrix, without_list
from thrifty.network import init_params, propose
from thrifty.rules import Context, LayerSelection, build
from thrifty.rules.base import NO_SYNAPSE, intersect_layer
from thrifty.rules.library import list_capacity
from thrifty.rules.registry import RuleSpec, parse, spec_structure
from thrifty.train import _structure_for, prepare_arrays, run, run_many
from util import fast_run, tie_free_data

N_HIDDEN, N_IN = 40, 20
PARAMS = init_params(jax.random.key(0), n_hidden=N_HIDDEN, n_inputs=N_IN, n_outputs=10, sigma=0.3)


def _shapes(n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Layer shapes of an MNIST network with N hidden units."""
    return (n, 785), (10, n + 1)


def _with_capacity(spec: str, capacity: tuple[int, int]) -> RuleSpec:
    """``spec`` with the library-set capacity given explicitly."""
    parsed = parse(spec)
    return RuleSpec(parsed.name, (*parsed.kwargs, ("capacity", capacity)))


def _ctx() -> Context:
    return Context(step=jnp.asarray(0), label=jnp.asarray(0), key=jax.random.key(0))


def _sorted_list(rng: np.random.Generator, share: float, size: int, pad: int) -> jax.Array:
    chosen = np.flatnonzero(rng.random(size) < share)
    return jnp.asarray(np.concatenate([chosen, np.full(pad, NO_SYNAPSE)]), jnp.int32)


def test_list_capacity_holds_the_count_as_a_power_of_two() -> None:
    for size in (10_000, 785_000, 2_355_000):
        for count in (1, 200, 1_000, 23_000, 40_000, 100_000):
            capacity = list_capacity(count, size)
            smallest = max(256, 1 << math.ceil(math.log2(1.001 * count + 2)))
            assert capacity == (smallest if smallest <= library.LISTED_UP_TO * size else 0)
            assert capacity == 0 or capacity >= count + 2


def test_small_shares_of_large_layers_are_listed() -> None:
    """The counting argument's mask at N = 3000 (p1 = 1.1 %, p2 = 0.89) lists the input
    layer only; half a layer, or a small layer, stays a boolean matrix; 1 % of the
    output layer (300 of 30 010 synapses) is listed."""
    structure = spec_structure(["synapse-mask-optimal:n_min=30"], _shapes(3000))
    assert structure == (("synapse-mask-optimal", (("capacity", (32_768, 0)),)),)
    structure = spec_structure(["synapse-mask:hidden=0.5,output=0.01"], _shapes(3000))
    assert structure == (("synapse-mask", (("capacity", (0, 512)),)),)
    structure = spec_structure(["synapse-mask:hidden=0.05"], _shapes(20))
    assert structure == (("synapse-mask", (("capacity", (0, 0)),)),)
    # without shapes (a sweep's grouping key) there are no library-set arguments
    assert spec_structure(["synapse-mask:hidden=0.01"]) == (("synapse-mask", ()),)
    # the rule's name shows the rule string, not the capacity
    rule = build([_with_capacity("synapse-mask:hidden=0.05", (256, 0))])
    assert rule.name == "synapse-mask:hidden=0.05"


@pytest.mark.parametrize(
    "spec", ["synapse-mask:hidden=0.05,output=0.3", "synapse-mask-optimal:n_min=2"]
)
def test_listed_draw_is_the_matrix_draw(spec: str) -> None:
    key = jax.random.key(7)
    matrix = build([spec]).init(PARAMS, key)
    rule = build([_with_capacity(spec, (256, 0))])
    state = rule.init(PARAMS, key)
    assert state.hidden.dtype == jnp.int32 and state.hidden.shape == (256,)
    flat = np.asarray(state.hidden)
    real = flat[flat != NO_SYNAPSE]
    assert np.all(np.diff(real) > 0) and np.all(flat[len(real) :] == NO_SYNAPSE)
    mask = np.asarray(listed_matrix(state.hidden, PARAMS.hidden.shape))
    np.testing.assert_array_equal(mask, np.asarray(matrix.hidden))
    np.testing.assert_array_equal(np.asarray(state.output), np.asarray(matrix.output))
    sel, _ = rule.update(propose(PARAMS, jnp.ones(N_IN + 1), jnp.zeros(10)), state, PARAMS, _ctx())
    assert sel[0].listed is not None and sel[0].synapses is None
    assert sel[1].listed is None and sel[1].synapses is not None


def test_intersections_with_a_list_select_what_the_matrices_select() -> None:
    """A list intersected with another list, a boolean matrix, post/pre masks and a
    threshold selects exactly what the same selections written as matrices select."""
    rng = np.random.default_rng(0)
    n_post, n_pre = 9, 8
    shape, size = (n_post, n_pre), n_post * n_pre
    delta = jnp.asarray(rng.normal(size=n_post))
    pre = jnp.asarray(rng.normal(size=n_pre))
    a = LayerSelection(
        listed=_sorted_list(rng, 0.6, size, 3), post=jnp.asarray(rng.random(n_post) < 0.8, float)
    )
    others = {
        "list": LayerSelection(listed=_sorted_list(rng, 0.5, size, 7)),
        "full list": LayerSelection(listed=jnp.arange(size, dtype=jnp.int32)),
        "matrix": LayerSelection(synapses=jnp.asarray(rng.random(shape) < 0.5)),
        "pre": LayerSelection(pre=jnp.asarray(rng.random(n_pre) < 0.7, float)),
        "threshold": LayerSelection(threshold=jnp.asarray(rng.random(n_pre))),
    }
    for name, b in others.items():
        for first, second in ((a, b), (b, a)):
            both = intersect_layer(first, second)
            want = intersect_layer(without_list(first, shape), without_list(second, shape))
            assert both.synapses is None and both.listed is not None, name
            np.testing.assert_array_equal(
                np.asarray(dense_selection(delta, pre, both)),
                np.asarray(dense_selection(delta, pre, want)),
                err_msg=name,
            )


def _run(config: RunConfig, listed_up_to: float, monkeypatch: Any) -> tuple[Any, Any, Any]:
    monkeypatch.setattr(library, "LISTED_UP_TO", listed_up_to)
    x, y = tie_free_data(n=80, n_inputs=N_IN)
    order = np.random.default_rng(2).integers(0, len(y), 60)
    _, final, out, (structure, _, _) = fast_run(config, x, y, order)
    return final, out, structure


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "rules",
    [
        ("synapse-mask:hidden=0.05,output=0.5",),
        ("synapse-mask-optimal:n_min=1",),
        ("synapse-mask:hidden=0.1,output=1", "top-k:fraction=0.3"),
        ("subnet:units=20", "synapse-mask:hidden=0.08"),
    ],
)
def test_training_with_a_list_equals_training_with_the_matrix(
    rules: tuple[str, ...], dtype: str, monkeypatch: Any
) -> None:
    """The same weights within rounding (the matrix pass may fuse the product into the
    subtraction, the scatter adds a rounded product), M0 and its potentiation part
    equal at every step, M1 within rounding (the sums run in another order)."""
    config = RunConfig(
        dataset="synthetic", n_hidden=N_HIDDEN, lr=0.02, sigma=0.1, dtype=dtype, rules=rules
    )
    final_m, out_m, structure_m = _run(config, 0.0, monkeypatch)
    final_l, out_l, structure_l = _run(config, 1.0, monkeypatch)
    capacities = [dict(kw).get("capacity") for _, kw in structure_l.rules]
    assert any(c is not None and c[0] > 0 for c in capacities)  # the list is in use
    assert all(dict(kw).get("capacity", (0, 0)) == (0, 0) for _, kw in structure_m.rules)
    rtol, atol = (1e-12, 1e-12) if dtype == "float64" else (1e-5, 1e-6)
    for w_l, w_m in zip(final_l.params, final_m.params, strict=True):
        np.testing.assert_allclose(np.asarray(w_l), np.asarray(w_m), rtol=0, atol=atol)
    for e_l, e_m in zip(out_l.energy, out_m.energy, strict=True):
        np.testing.assert_array_equal(np.asarray(e_l.m0), np.asarray(e_m.m0))
        np.testing.assert_array_equal(
            np.asarray(e_l.m0_potentiation), np.asarray(e_m.m0_potentiation)
        )
        np.testing.assert_allclose(np.asarray(e_l.m1), np.asarray(e_m.m1), rtol=rtol)
        np.testing.assert_allclose(
            np.asarray(e_l.m1_potentiation), np.asarray(e_m.m1_potentiation), rtol=rtol
        )
    assert int(np.sum(out_l.energy[0].m0)) > 0 and np.all(np.isfinite(out_l.loss))
    np.testing.assert_allclose(np.asarray(out_l.loss), np.asarray(out_m.loss), rtol=rtol)


def test_caching_and_the_simpson_tally_take_a_listed_mask(monkeypatch: Any) -> None:
    """Synapse models and the tally that need the mask as a matrix get it written out:
    the run agrees with the run with the matrix."""
    for extra in ({"synapses": "caching:threshold=0.01,tau=100,cost=0.001"}, {"simpson": True}):
        config = RunConfig(
            dataset="synthetic",
            n_hidden=N_HIDDEN,
            lr=0.02,
            sigma=0.1,
            dtype="float64",
            rules=("synapse-mask:hidden=0.05,output=0.5",),
            **extra,
        )
        final_m, out_m, _ = _run(config, 0.0, monkeypatch)
        final_l, out_l, _ = _run(config, 1.0, monkeypatch)
        for a, b in zip(final_l.params, final_m.params, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)
        for a, b in zip(jax.tree.leaves(out_l), jax.tree.leaves(out_m), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


def test_vmapped_runs_with_lists_equal_single_runs(monkeypatch: Any) -> None:
    """Runs that differ in seed and share (one list capacity) are vmapped together by
    ``run_many``; each gives its single run's record."""
    monkeypatch.setattr(library, "LISTED_UP_TO", 1.0)
    dataset = data.synthetic(n_train=600, n_val=200, n_test=200)
    base = dict(dataset="synthetic", n_hidden=N_HIDDEN, check_interval=200, budget_epochs=1)
    configs = [
        RunConfig(**base, seed=s, rules=(f"synapse-mask:hidden={p},output=0.5",))
        for s, p in ((0, 0.05), (1, 0.05), (0, 0.06))
    ]
    arrays = prepare_arrays(configs[0], dataset)
    structures = {_structure_for(c, arrays, dataset) for c in configs}
    assert len(structures) == 1  # one compiled group, with the input layer listed
    ((_, kwargs),) = next(iter(structures)).rules
    assert dict(kwargs)["capacity"][0] == 2048
    batched = run_many(configs, dataset, arrays=arrays)
    for config, got in zip(configs, batched, strict=True):
        want = run(config, dataset, arrays=arrays)
        assert (got["status"], got["samples"], got["curve"]) == (
            want["status"],
            want["samples"],
            want["curve"],
        )
        g, w = got["energy"]["total"], want["energy"]["total"]
        assert (g["m0"], g["m0_potentiation"]) == (w["m0"], w["m0_potentiation"])
        assert g["m1"] == pytest.approx(w["m1"], rel=1e-5)
    # the runs are not copies of one another: other seed, other weights; more synapses
    totals = [r["energy"]["total"] for r in batched]
    assert totals[0]["m1"] != totals[1]["m1"]
    assert totals[2]["m0"] / batched[2]["samples"] > totals[0]["m0"] / batched[0]["samples"]
