"""Every rule on a tiny network, worked by hand: which synapses it selects and what the
selected update costs; then the rule-string syntax and its errors.

The network has 3 inputs, 4 hidden units and 3 outputs (biases as the last column).
One proposal serves most cases (lr = 0.5, Δw = −0.5 · delta ⊗ pre):

    hidden layer: delta = ( 1, -2,  3, -5)      pre = (7, -11, 13, 1)   (x, then bias)
    output layer: delta = ( 1, -0.5, 0.25)      pre = (0.5, -4, 0.25, 2, 1)
    output y = (0.2, 0.9, 0.1): the network predicts class 1.

Hidden: Σ|delta| = 11, Σ|pre| = 32; positive pre sum 21 (3 entries), negative 11 (1).
Output: Σ|delta| = 1.75, Σ|pre| = 7.75; positive pre sum 3.75 (4), negative 4 (1).
Δw > 0 (potentiation) exactly where delta_i · pre_j < 0.

Plain backprop then costs
    hidden: M0 = 16, M1 = 0.5·11·32 = 176,
            M0⁺ = 2·1 (delta>0, pre<0) + 2·3 (delta<0, pre>0) = 8,
            M1⁺ = 0.5·(4·11 + 7·21) = 95.5;
    output: M0 = 15, M1 = 0.5·1.75·7.75 = 6.78125,
            M0⁺ = 2·1 + 1·4 = 6, M1⁺ = 0.5·(1.25·4 + 0.5·3.75) = 3.4375.

The hidden products |delta_i|·|pre_j| are all distinct (no ties for top-k):

    unit 0 (|d| = 1):  7  11  13   1
    unit 1 (|d| = 2): 14  22  26   2
    unit 2 (|d| = 3): 21  33  39   3
    unit 3 (|d| = 5): 35  55  65   5
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty.config import RunConfig
from thrifty.energy import dense_selection, price_layer
from thrifty.network import LayerProposal, Params, Proposal, init_params
from thrifty.reference import rules as ref_rules
from thrifty.rules import (
    REGISTRY,
    Context,
    RuleError,
    RuleSpec,
    build,
    optimal_mask_fractions,
    parse,
    validate,
)
from thrifty.rules.library import SynapseMaskState, UnitMaskState, count_of, rank_mask
from thrifty.rules.registry import spec_numbers, spec_structure
from thrifty.train import check_config, run

LR = 0.5
PARAMS = Params(jnp.zeros((4, 4)), jnp.zeros((3, 5)))


def _proposal(
    delta_h: tuple[float, ...] = (1.0, -2.0, 3.0, -5.0),
    x: tuple[float, ...] = (7.0, -11.0, 13.0),
    delta_o: tuple[float, ...] = (1.0, -0.5, 0.25),
    h: tuple[float, ...] = (0.5, -4.0, 0.25, 2.0),
    y: tuple[float, ...] = (0.2, 0.9, 0.1),
) -> Proposal:
    return Proposal(
        layers=(
            LayerProposal(jnp.asarray(delta_h), jnp.asarray([*x, 1.0])),
            LayerProposal(jnp.asarray(delta_o), jnp.asarray([*h, 1.0])),
        ),
        hidden_input=jnp.zeros(len(delta_h)),
        output=jnp.asarray(y),
    )


P = _proposal()
FULL_HIDDEN = (16, 176.0, 8, 95.5)
FULL_OUTPUT = (15, 6.78125, 6, 3.4375)
NOTHING = (0, 0.0, 0, 0.0)

# ----------------------------------------------------------------- compiled selections

_COMPILED: dict[Any, Any] = {}


def _ctx(label: int = 0, key: int = 0, step: int = 0) -> Context:
    return Context(step=jnp.asarray(step), label=jnp.asarray(label), key=jax.random.key(key))


def _select(
    specs: list[str],
    state: Any = None,
    *,
    proposal: Proposal = P,
    params: Params = PARAMS,
    label: int = 0,
    key: int = 0,
) -> tuple[Any, Any]:
    """Selection and new state of the chained rules; ``state`` None means ``init(key)``.

    Compiled once per rule structure; the numbers travel as traced values.
    """
    numbers = {k: jnp.asarray(v) for k, v in spec_numbers(specs).items()}
    cache_key = (spec_structure(specs), tuple(sorted(numbers)), state is None)
    if cache_key not in _COMPILED:
        parsed = [parse(s) for s in specs]

        def f(numbers: Any, state: Any, proposal: Proposal, params: Params, ctx: Context) -> Any:
            rule = build(parsed, numbers)
            if state is None:
                state = rule.init(params, ctx.key)
            return rule.update(proposal, state, params, ctx)

        _COMPILED[cache_key] = jax.jit(f)
    return _COMPILED[cache_key](numbers, state, proposal, params, _ctx(label, key))


_price = jax.jit(price_layer)


def _selected(selection: Any, proposal: Proposal = P) -> list[np.ndarray]:
    return [
        np.asarray(dense_selection(lp.delta, lp.pre, sel))
        for lp, sel in zip(proposal.layers, selection, strict=True)
    ]


def _energies(selection: Any, proposal: Proposal = P) -> list[tuple[int, float, int, float]]:
    out = []
    for lp, sel in zip(proposal.layers, selection, strict=True):
        e = _price(lp.delta, lp.pre, sel, LR)
        out.append((int(e.m0), float(e.m1), int(e.m0_potentiation), float(e.m1_potentiation)))
    return out


def _check(selection: Any, hidden: Any, output: Any, proposal: Proposal = P) -> None:
    """Energies per layer: (M0, M1, M0⁺, M1⁺)."""
    got = _energies(selection, proposal)
    for layer, want in enumerate((hidden, output)):
        assert got[layer][0] == want[0] and got[layer][2] == want[2], (layer, got[layer], want)
        assert got[layer][1] == pytest.approx(want[1], rel=1e-12), (layer, got[layer], want)
        assert got[layer][3] == pytest.approx(want[3], rel=1e-12), (layer, got[layer], want)


def _rows(*rows: int, n: int = 4, m: int = 4) -> np.ndarray:
    out = np.zeros((n, m), bool)
    out[list(rows), :] = True
    return out


def _cells(cells: list[tuple[int, int]], n: int = 4, m: int = 4) -> np.ndarray:
    out = np.zeros((n, m), bool)
    for i, j in cells:
        out[i, j] = True
    return out


ALL_OUT = np.ones((3, 5), bool)

# ------------------------------------------------------------------------------ rules


def test_backprop_selects_everything() -> None:
    sel, _ = _select(["backprop"])
    hidden, output = _selected(sel)
    assert hidden.all() and output.all()
    _check(sel, FULL_HIDDEN, FULL_OUTPUT)


def test_synapse_mask_by_hand() -> None:
    """Hidden mask (0,0) (0,3) (1,1) (2,2) (3,0); |Δw| = 0.5·(7, 1, 22, 39, 35), sum 52;
    only (3,0) has delta·pre = -5·7 < 0: M0⁺ = 1, M1⁺ = 17.5.
    Output mask (0,1) (0,4) (2,0) (2,3); |Δw| = 0.5·(4, 1, 0.125, 0.5) = 2.8125;
    only (0,1) has delta·pre = 1·(-4) < 0: M0⁺ = 1, M1⁺ = 2."""
    hidden_mask = _cells([(0, 0), (0, 3), (1, 1), (2, 2), (3, 0)])
    output_mask = _cells([(0, 1), (0, 4), (2, 0), (2, 3)], 3, 5)
    state = SynapseMaskState(jnp.asarray(hidden_mask), jnp.asarray(output_mask))
    sel, new = _select(["synapse-mask:hidden=0.3,output=0.5"], state)
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, hidden_mask)
    np.testing.assert_array_equal(output, output_mask)
    np.testing.assert_array_equal(np.asarray(new.hidden), hidden_mask)
    _check(sel, (5, 52.0, 1, 17.5), (4, 2.8125, 1, 2.0))


def test_synapse_mask_init_draws_exactly_round_p_size() -> None:
    """Hidden 16 synapses, p1 = 0.3 → 4.8 → 5; output 15, p2 = 0.5 → 7.5 → 8 (halves up);
    p = 0.01 → 0.16 → at least 1."""
    for key in range(3):
        _, state = _select(["synapse-mask:hidden=0.3,output=0.5"], key=key)
        assert int(np.sum(state.hidden)) == 5 and int(np.sum(state.output)) == 8
        assert state.hidden.shape == (4, 4) and state.output.shape == (3, 5)
    _, state = _select(["synapse-mask:hidden=0.01,output=1"])
    assert int(np.sum(state.hidden)) == 1 and bool(np.all(state.output))
    _, a = _select(["synapse-mask:hidden=0.3,output=0.5"], key=1)
    _, b = _select(["synapse-mask:hidden=0.3,output=0.5"], key=1)
    np.testing.assert_array_equal(np.asarray(a.hidden), np.asarray(b.hidden))


def test_neuron_mask_by_hand() -> None:
    """Units 0 and 2 (delta 1 and 3, both > 0): hidden M0 = 2·4 = 8, M1 = 0.5·4·32 = 64,
    potentiation only with pre < 0: M0⁺ = 2, M1⁺ = 0.5·4·11 = 22. Output all plastic."""
    state = UnitMaskState(jnp.asarray([1.0, 0.0, 1.0, 0.0]))
    sel, _ = _select(["neuron-mask:fraction=0.5"], state)
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, _rows(0, 2))
    np.testing.assert_array_equal(output, ALL_OUT)
    _check(sel, (8, 64.0, 2, 22.0), FULL_OUTPUT)


@pytest.mark.parametrize(("fraction", "k"), [(0.5, 2), (0.375, 2), (0.1, 1), (0.8, 3), (1.0, 4)])
def test_neuron_mask_init_count(fraction: float, k: int) -> None:
    """round(p·4) with halves up (0.375·4 = 1.5 → 2), at least 1 (0.1·4 → 1)."""
    _, state = _select([f"neuron-mask:fraction={fraction}"])
    assert np.asarray(state.units).sum() == k
    assert set(np.unique(np.asarray(state.units))) <= {0.0, 1.0}


def test_subnet_by_hand() -> None:
    """Units 1 and 3 (delta -2, -5): hidden M0 = 8, M1 = 0.5·7·32 = 112,
    M0⁺ = 2·3 (pre > 0), M1⁺ = 0.5·7·21 = 73.5.
    Output: columns 1, 3 and the bias (pre -4, 2, 1) for all 3 outputs: M0 = 9,
    M1 = 0.5·1.75·7 = 6.125, M0⁺ = 2·1 + 1·2 = 4, M1⁺ = 0.5·(1.25·4 + 0.5·3) = 3.25."""
    state = UnitMaskState(jnp.asarray([0.0, 1.0, 0.0, 1.0]))
    sel, _ = _select(["subnet:units=2"], state)
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, _rows(1, 3))
    cols = np.zeros((3, 5), bool)
    cols[:, [1, 3, 4]] = True  # the output biases (column 4) stay plastic
    np.testing.assert_array_equal(output, cols)
    _check(sel, (8, 112.0, 6, 73.5), (9, 6.125, 4, 3.25))


def test_subnet_init_draws_exactly_units() -> None:
    for units in (1, 2, 4):
        for key in range(2):
            _, state = _select([f"subnet:units={units}"], key=key)
            assert np.asarray(state.units).sum() == units


def test_top_k_per_layer_by_hand() -> None:
    """k = round(0.25·16) = 4: the products 65 (3,2), 55 (3,1), 39 (2,2), 35 (3,0).
    M1 = 0.5·194 = 97; delta·pre < 0 at (3,2) and (3,0): M0⁺ = 2, M1⁺ = 0.5·100 = 50.
    The output layer is always fully plastic."""
    sel, _ = _select(["top-k:fraction=0.25"])
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, _cells([(3, 2), (3, 1), (2, 2), (3, 0)]))
    np.testing.assert_array_equal(output, ALL_OUT)
    _check(sel, (4, 97.0, 2, 50.0), FULL_OUTPUT)


@pytest.mark.parametrize(
    ("fraction", "cells"),
    [
        (0.15625, [(3, 2), (3, 1), (2, 2)]),  # 0.15625·16 = 2.5 → 3 (halves up)
        (0.01, [(3, 2)]),  # 0.16 → 0 → at least 1
        (0.125, [(3, 2), (3, 1)]),  # 2
        (0.5, [(3, 2), (3, 1), (2, 2), (3, 0), (2, 1), (1, 2), (1, 1), (2, 0)]),
    ],
)
def test_top_k_per_layer_count(fraction: float, cells: list[tuple[int, int]]) -> None:
    sel, _ = _select([f"top-k:fraction={fraction}"])
    np.testing.assert_array_equal(_selected(sel)[0], _cells(cells))
    assert _energies(sel)[0][0] == len(cells)


def test_top_k_fraction_one_selects_everything() -> None:
    sel, _ = _select(["top-k:fraction=1"])
    assert _selected(sel)[0].all()
    _check(sel, FULL_HIDDEN, FULL_OUTPUT)


def test_top_k_per_neuron_by_hand() -> None:
    """k = round(0.5·4) = 2 inputs with the largest |pre|: 13 (col 2), 11 (col 1), for
    every unit. M0 = 8, M1 = 0.5·11·24 = 132; potentiation: delta > 0 (sum 4) with
    pre = -11, delta < 0 (sum 7) with pre = 13: M0⁺ = 4, M1⁺ = 0.5·(44 + 91) = 67.5."""
    sel, _ = _select(["top-k:fraction=0.5,per=neuron"])
    hidden, output = _selected(sel)
    cols = np.zeros((4, 4), bool)
    cols[:, [1, 2]] = True
    np.testing.assert_array_equal(hidden, cols)
    np.testing.assert_array_equal(output, ALL_OUT)
    _check(sel, (8, 132.0, 4, 67.5), FULL_OUTPUT)


@pytest.mark.parametrize(("fraction", "columns"), [(0.25, [3]), (0.5, [2, 3]), (0.75, [0, 2, 3])])
def test_top_k_per_neuron_includes_the_bias_input(fraction: float, columns: list[int]) -> None:
    """With small inputs (0.5, -0.25, 0.75) the bias input (1) has the largest |pre|."""
    proposal = _proposal(x=(0.5, -0.25, 0.75))
    sel, _ = _select([f"top-k:fraction={fraction},per=neuron"], proposal=proposal)
    want = np.zeros((4, 4), bool)
    want[:, columns] = True
    np.testing.assert_array_equal(_selected(sel, proposal)[0], want)


def test_top_k_after_subnet_counts_within_the_subnet() -> None:
    """Subnet units 0 and 2: 2·4 = 8 synapses, k = round(0.25·8) = 2 (not 4). Their
    products 7 11 13 1 / 21 33 39 3 → 39 (2,2) and 33 (2,1); the layer's largest, 65 and
    55 of unit 3, are outside. M1 = 0.5·72 = 36; (2,1) has 3·(-11) < 0: M0⁺ = 1,
    M1⁺ = 16.5. Output: columns 0, 2 and bias (pre 0.5, 0.25, 1, all > 0): M0 = 9,
    M1 = 0.5·1.75·1.75 = 1.53125; potentiation with delta < 0 (0.5): M0⁺ = 3,
    M1⁺ = 0.5·0.5·1.75 = 0.4375."""
    state = (UnitMaskState(jnp.asarray([1.0, 0.0, 1.0, 0.0])), ())
    sel, _ = _select(["subnet:units=2", "top-k:fraction=0.25"], state)
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, _cells([(2, 2), (2, 1)]))
    cols = np.zeros((3, 5), bool)
    cols[:, [0, 2, 4]] = True
    np.testing.assert_array_equal(output, cols)
    _check(sel, (2, 36.0, 1, 16.5), (9, 1.53125, 3, 0.4375))


def test_neuron_select_by_error_by_hand() -> None:
    """k = round(0.5·4) = 2 units with the largest |delta|: 3 (5) and 2 (3).
    M0 = 8, M1 = 0.5·8·32 = 128; M0⁺ = 1·1 + 1·3 = 4, M1⁺ = 0.5·(3·11 + 5·21) = 69."""
    sel, _ = _select(["neuron-select:fraction=0.5,by=error"])
    hidden, output = _selected(sel)
    np.testing.assert_array_equal(hidden, _rows(2, 3))
    np.testing.assert_array_equal(output, ALL_OUT)
    _check(sel, (8, 128.0, 4, 69.0), FULL_OUTPUT)
    sel, _ = _select(["neuron-select:fraction=0.25,by=error"])
    np.testing.assert_array_equal(_selected(sel)[0], _rows(3))


def test_neuron_select_by_activity_by_hand() -> None:
    """|hidden activity| = (0.5, 4, 0.25, 2): units 1 and 3 (delta -2, -5):
    M0 = 8, M1 = 0.5·7·32 = 112, M0⁺ = 2·3 = 6, M1⁺ = 0.5·7·21 = 73.5."""
    sel, _ = _select(["neuron-select:fraction=0.5,by=activity"])
    np.testing.assert_array_equal(_selected(sel)[0], _rows(1, 3))
    _check(sel, (8, 112.0, 6, 73.5), FULL_OUTPUT)


def test_neuron_select_after_subnet_ranks_the_subnet() -> None:
    """Subnet units 0, 1, 2: k = round(0.5·3) = 2 (halves up) by |delta| among them → 1, 2
    (unit 3 has the largest error but is outside). Rows 1 (-2) and 2 (3): M0 = 8,
    M1 = 0.5·5·32 = 80, M0⁺ = 1·1 + 1·3 = 4, M1⁺ = 0.5·(3·11 + 2·21) = 37.5.
    Output: columns 0, 1, 2 and bias (pre 0.5, -4, 0.25, 1; Σ|pre| = 5.75, positive
    1.75 in 3, negative 4 in 1): M0 = 12, M1 = 0.5·1.75·5.75 = 5.03125,
    M0⁺ = 2·1 + 1·3 = 5, M1⁺ = 0.5·(1.25·4 + 0.5·1.75) = 2.9375."""
    state = (UnitMaskState(jnp.asarray([1.0, 1.0, 1.0, 0.0])), ())
    sel, _ = _select(["subnet:units=3", "neuron-select:fraction=0.5"], state)
    np.testing.assert_array_equal(_selected(sel)[0], _rows(1, 2))
    _check(sel, (8, 80.0, 4, 37.5), (12, 5.03125, 5, 2.9375))


def test_class_neuron_mask_by_hand() -> None:
    """Masks per class: 0 → unit 0, 1 → units 1, 2, 2 → unit 3; the label picks.
    Label 0: row 0 (delta 1): M0 = 4, M1 = 0.5·32 = 16, M0⁺ = 1, M1⁺ = 0.5·11 = 5.5.
    Label 1: rows 1, 2: M0 = 8, M1 = 80, M0⁺ = 4, M1⁺ = 37.5."""
    units = jnp.asarray([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    state = UnitMaskState(units)
    sel, new = _select(["class-neuron-mask:fraction=0.5"], state, label=0)
    np.testing.assert_array_equal(_selected(sel)[0], _rows(0))
    np.testing.assert_array_equal(_selected(sel)[1], ALL_OUT)
    _check(sel, (4, 16.0, 1, 5.5), FULL_OUTPUT)
    np.testing.assert_array_equal(np.asarray(new.units), np.asarray(units))
    sel, _ = _select(["class-neuron-mask:fraction=0.5"], state, label=1)
    np.testing.assert_array_equal(_selected(sel)[0], _rows(1, 2))
    _check(sel, (8, 80.0, 4, 37.5), FULL_OUTPUT)
    sel, _ = _select(["class-neuron-mask:fraction=0.5"], state, label=2)
    np.testing.assert_array_equal(_selected(sel)[0], _rows(3))


def test_class_neuron_mask_init() -> None:
    """One mask per class, each with exactly round(p·N) units, not all the same."""
    params = init_params(jax.random.key(0), n_hidden=20, n_inputs=3, n_outputs=10)
    numbers = {"0.fraction": jnp.asarray(0.25)}
    state = jax.jit(lambda p, k: build(["class-neuron-mask:fraction=0.25"], numbers).init(p, k))(
        params, jax.random.key(1)
    )
    units = np.asarray(state.units)
    assert units.shape == (10, 20)
    np.testing.assert_array_equal(units.sum(axis=1), np.full(10, 5))
    assert len({tuple(row) for row in units}) > 1


def test_frozen_input_by_hand() -> None:
    sel, _ = _select(["frozen-input"])
    hidden, output = _selected(sel)
    assert not hidden.any()
    np.testing.assert_array_equal(output, ALL_OUT)
    _check(sel, NOTHING, FULL_OUTPUT)


def test_lazy_by_hand() -> None:
    """The network predicts class 1: label 1 → nothing changes, any other → everything."""
    sel, _ = _select(["lazy"], label=1)
    assert not any(m.any() for m in _selected(sel))
    _check(sel, NOTHING, NOTHING)
    sel, _ = _select(["lazy"], label=2)
    assert all(m.all() for m in _selected(sel))
    _check(sel, FULL_HIDDEN, FULL_OUTPUT)


def test_lazy_composes_with_top_k() -> None:
    """Correct → nothing (top-k's at-least-one does not leak through); wrong → top-k."""
    sel, _ = _select(["lazy", "top-k:fraction=0.25"], ((), ()), label=1)
    _check(sel, NOTHING, NOTHING)
    sel, _ = _select(["lazy", "top-k:fraction=0.25"], ((), ()), label=0)
    _check(sel, (4, 97.0, 2, 50.0), FULL_OUTPUT)


def test_random_neuron_mask_each_step() -> None:
    """Exactly k = round(0.25·20) = 5 units on every step, a different set on different
    steps, the same set for the same step key."""
    params = init_params(jax.random.key(0), n_hidden=20, n_inputs=3, n_outputs=3)
    rule = build(["random-neuron-mask:fraction=0.25"], {"0.fraction": jnp.asarray(0.25)})
    proposal = _proposal(delta_h=(1.0,) * 20, h=(1.0,) * 20)

    @jax.jit
    def units(key: jax.Array) -> jax.Array:
        ctx = Context(step=jnp.asarray(0), label=jnp.asarray(0), key=key)
        sel, _ = rule.update(proposal, (), params, ctx)
        return sel[0].post

    base = jax.random.key(7)
    masks = np.stack([np.asarray(units(jax.random.fold_in(base, t))) for t in range(8)])
    np.testing.assert_array_equal(masks.sum(axis=1), np.full(8, 5))
    assert len({tuple(m) for m in masks}) == 8
    np.testing.assert_array_equal(masks[3], np.asarray(units(jax.random.fold_in(base, 3))))


def test_top_k_per_layer_keeps_exactly_k_in_a_layer_beyond_float32s_integers() -> None:
    """k = round(p · size) also where the layer's size is an odd number above 2**24
    (N = 30 001: 23 550 785 synapses, which float32 holds as 23 550 784)."""
    n, m = 30_001, 785
    delta = jnp.arange(1, n + 1, dtype=jnp.float32)  # distinct products in every column
    pre = jnp.exp2(jnp.arange(m, dtype=jnp.float32) / m)
    proposal = Proposal(
        layers=(LayerProposal(delta, pre), LayerProposal(jnp.ones(3), jnp.ones(n + 1))),
        hidden_input=jnp.zeros(n),
        output=jnp.zeros(3),
    )
    rule = build(["top-k:fraction=0.5"], {})
    state = rule.init(PARAMS, jax.random.key(1))
    sel, _ = jax.jit(rule.update)(proposal, state, PARAMS, _ctx())
    a = np.sort(np.asarray(delta))
    kept = sum(n - int(np.searchsorted(a, t)) for t in np.asarray(sel[0].threshold))
    assert kept == (n * m + 1) // 2 == 11_775_393


def test_count_of_rounds_halves_up_with_at_least_one() -> None:
    cases = [(0.5, 5, 3), (0.25, 6, 2), (0.05, 30, 2), (0.1, 25, 3), (0.01, 10, 1), (1.0, 7, 7)]
    for fraction, size, k in cases:
        assert int(count_of(fraction, size)) == k, (fraction, size)
        assert int(count_of(jnp.float32(fraction), size)) == k, (fraction, size)


@pytest.mark.parametrize(("fraction", "size", "k"), [(0.145, 100, 15), (0.285, 100, 29)])
def test_count_of_rounds_decimal_halves_up_in_every_dtype(
    fraction: float, size: int, k: int
) -> None:
    """docs/rules.md: k = round(p·size), halves up. A fraction written as a decimal whose
    product with the size is a half must give the same k in float64 and float32 runs."""
    assert int(count_of(jnp.float32(fraction), size)) == k
    assert int(count_of(fraction, size)) == k


def _decimal_count(hundredths_or_thousandths: int, scale: int, size: int) -> int:
    """round(d / scale · size), halves up, at least 1, in exact arithmetic."""
    return max(math.floor(Fraction(hundredths_or_thousandths, scale) * size + Fraction(1, 2)), 1)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_count_of_is_the_decimal_products_rounding_within_the_types_resolution(
    dtype: Any,
) -> None:
    """k = round(p·size) for the decimal p meant, as docs/rules.md says: always in
    float64; in float32 for two-decimal products up to 80 000, three-decimal ones up to
    8 000 and whole ones up to 4 million (the fraction's own rounding decides beyond).
    The reference's count agrees. 0.823 · 7065 = 5814.495 and 0.5 · 7 850 000 were one
    and four too many in float32 before."""
    sizes = [n * 785 for n in (1, 9, 67, 100, 300, 1000, 3000, 10_000)] + list(range(1, 40))
    sizes += [(n + 1) * 10 for n in (9, 67, 100, 1000)]
    counts = jax.jit(jax.vmap(jax.vmap(count_of, (0, None)), (None, 0)))
    for scale in (100, 1000):
        d = np.arange(1, scale)
        k = np.asarray(counts(jnp.asarray(d / scale, dtype), jnp.asarray(sizes, jnp.int32)))
        for i, size in enumerate(sizes):
            for j, dj in enumerate(d):
                x = Fraction(int(dj), scale) * size
                exact = _decimal_count(int(dj), scale, size)
                if dtype == jnp.float32:
                    resolved = x < (8_000 if scale == 1000 else 80_000)
                    if not (resolved or (x.denominator == 1 and x < 4_000_000)):
                        continue
                assert k[i, j] == exact, (int(dj), scale, size, int(k[i, j]), exact)
                if dtype == jnp.float64 and size < 100_000:
                    assert ref_rules.count_of(float(dj) / scale, size) == exact
    assert int(count_of(jnp.asarray(0.823, dtype), 7065)) == 5814
    assert int(count_of(jnp.asarray(0.5, dtype), 7_850_000)) == 3_925_000
    # never more than the size, and exact beyond 4 million for fractions held exactly
    for size in (8_388_576, 2**24, 78_500_000, 2**31 - 1):
        assert int(count_of(jnp.asarray(1.0, dtype), size)) == size
        assert int(count_of(jnp.asarray(0.5, dtype), size)) == (size + 1) // 2


# ------------------------------------------------------------ synapse-mask-optimal


def test_optimal_mask_fractions_three_regimes() -> None:
    """N_min = 10 (784 inputs, 10 outputs, ratio 78.4):
    N = 5, 10 (≤ N_min): p1 = p2 = 1;
    N = 100, 784 (≤ 78.4·N_min): p2 = 1, p1 = N_min / N = 0.1, 1/78.4;
    N = 10 000: p1 = √(10·10 / (784·10 000)) = 10/2800, p2 = 78.4·p1 = 0.28."""
    cases = [
        (5, 1.0, 1.0),
        (10, 1.0, 1.0),
        (100, 0.1, 1.0),
        (784, 1 / 78.4, 1.0),
        (10_000, 10 / 2800, 0.28),
    ]
    for n, p1, p2 in cases:
        got = optimal_mask_fractions(n, 10)
        assert (float(got[0]), float(got[1])) == pytest.approx((p1, p2), rel=1e-6), n
        if n >= 10:  # the mean number of plastic paths is exactly N_min
            assert float(got[0]) * float(got[1]) * n == pytest.approx(10, rel=1e-6)


@pytest.mark.parametrize("n", [7, 50, 700, 3000, 40_000])
def test_optimal_mask_fractions_minimise_plastic_synapses(n: int) -> None:
    """Brute force over p1: among masks with p1·p2·N = N_min (p ≤ 1), none has fewer
    plastic synapses N·(784·p1 + 10·p2) than the counting argument's choice."""
    n_min = 10
    p1, p2 = (float(v) for v in optimal_mask_fractions(n, n_min))
    cost = n * (784 * p1 + 10 * p2)
    grid = np.geomspace(1e-5, 1, 200_001)
    p2_grid = n_min / (n * grid)
    ok = p2_grid <= 1
    if n <= n_min:
        assert (p1, p2) == (1.0, 1.0)
        return
    best = np.min(n * (784 * grid[ok] + 10 * p2_grid[ok]))
    assert cost <= best * (1 + 1e-6)
    assert cost == pytest.approx(best, rel=1e-3)
    assert p1 * p2 * n == pytest.approx(n_min, rel=1e-6)


def test_synapse_mask_optimal_draws_those_fractions() -> None:
    """784 inputs, 10 outputs, N = 20: 15 700 input and 210 output synapses.
    N_min = 2 (second regime): p1 = 0.1 → 1570, p2 = 1 → 210.
    N_min = 0.1 (third regime, 20 ≥ 7.84): p1 = √(0.1·10/(784·20)) = 0.0079859 → 125
    (125.4), p2 = 78.4·p1 = 0.62610 → 131 (131.48)."""
    p1 = math.sqrt(0.1 * 10 / (784 * 20))
    assert (round(p1 * 15_700), round(78.4 * p1 * 210)) == (125, 131)
    params = Params(jnp.zeros((20, 785)), jnp.zeros((10, 21)))
    for n_min, want in ((2, (1570, 210)), (0.1, (125, 131))):
        state = build([f"synapse-mask-optimal:n_min={n_min}"]).init(params, jax.random.key(1))
        assert (int(np.sum(state.hidden)), int(np.sum(state.output))) == want


def test_synapse_mask_optimal_counts_follow_the_theory_with_float64_weights() -> None:
    """With float64 weights the mask sizes are those of
    :func:`thrifty.theory.optimal_fractions` with the reference's rounding, over the three
    regimes: N_min = 5.7 at N = 50 gives p1 · 39 250 = 4474.5, a half, so 4475 input
    synapses (fractions formed in float32 gave 4474). With float32 weights the fractions
    are float32 whatever JAX's 64-bit mode, as in a run."""
    from thrifty import theory

    rule = build(["synapse-mask-optimal:n_min=5.7"])
    for dtype, want in ((jnp.float64, 4475), (jnp.float32, 4474)):
        params = Params(jnp.zeros((50, 785), dtype), jnp.zeros((10, 51), dtype))
        state = rule.init(params, jax.random.key(1))
        assert (int(np.sum(state.hidden)), int(np.sum(state.output))) == (want, 510)
    differing = []
    for n in (10, 50, 100, 700, 3000, 100_000):
        sizes = (n * 785, 10 * (n + 1))
        for n_min in np.arange(1, 1000, 7) / 10:
            fractions = optimal_mask_fractions(n, jnp.asarray(n_min, jnp.float64))
            got = tuple(int(count_of(p, size)) for p, size in zip(fractions, sizes, strict=True))
            want = tuple(
                ref_rules.count_of(float(p), size)
                for p, size in zip(theory.optimal_fractions(n, float(n_min)), sizes, strict=True)
            )
            if got != want:
                differing.append((n, float(n_min), got, want))
    assert not differing


# ----------------------------------------------------------------------------- parsing


def test_parse_rule_string() -> None:
    spec = parse("top-k:per=layer,fraction=0.05")
    assert spec == RuleSpec("top-k", (("fraction", 0.05), ("per", "layer")))
    assert str(spec) == "top-k:fraction=0.05,per=layer"
    assert parse(" subnet : units = 100 ") == RuleSpec("subnet", (("units", 100),))
    assert parse("lazy") == RuleSpec("lazy", ())
    assert parse(spec) is spec
    assert parse(str(spec)) == spec
    assert isinstance(parse("subnet:units=100").kwargs[0][1], int)


def test_unknown_rule_lists_the_known_rules() -> None:
    with pytest.raises(RuleError, match="unknown rule 'topk'") as err:
        parse("topk:fraction=0.1")
    for name in REGISTRY:
        assert name in str(err.value)


def test_unknown_parameter_lists_the_rules_parameters() -> None:
    with pytest.raises(RuleError, match="'frac'") as err:
        parse("top-k:frac=0.1")
    assert "fraction" in str(err.value) and "per" in str(err.value)
    with pytest.raises(RuleError, match="its parameters: none"):
        parse("lazy:fraction=0.1")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("subnet", "needs parameter 'units'"),
        ("top-k:fraction=abc", "'fraction' must be a number"),
        ("subnet:units=2.5", "'units' must be an integer"),
        ("subnet:units=inf", "'units' must be an integer"),
        ("subnet:units=-inf", "'units' must be an integer"),
        ("subnet:units=nan", "'units' must be an integer"),
        ("subnet:units=1e400", "'units' must be an integer"),
        ("top-k:fraction=0.1,per=diagonal", "'per' must be one of layer, neuron"),
        ("neuron-select:fraction=0.1,by=size", "'by' must be one of error, activity"),
        ("top-k:fraction", "expected key=value"),
        ("", "non-empty"),
    ],
)
def test_malformed_rule_strings(text: str, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse(text)


FRACTION_RULES = [
    (name, p.name)
    for name, entry in sorted(REGISTRY.items())
    for p in entry.params
    if p.kind == "float" and name != "synapse-mask-optimal"
]


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1", "nan", "inf"])
@pytest.mark.parametrize(("rule", "param"), FRACTION_RULES)
def test_bad_fraction_names_the_parameter(rule: str, param: str, value: str) -> None:
    entry = REGISTRY[rule]
    others = ",".join(
        f"{p.name}=0.5" for p in entry.params if p.required and p.name != param and p.kind != "str"
    )
    text = f"{rule}:{param}={value}" + (f",{others}" if others else "")
    with pytest.raises(RuleError, match=f"'{param}'"):
        validate([text], 10)
    validate([f"{rule}:{param}=1" + (f",{others}" if others else "")], 10)  # 1 is fine


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_bad_n_min(value: str) -> None:
    with pytest.raises(RuleError, match="n_min"):
        validate([f"synapse-mask-optimal:n_min={value}"], 10)


def test_subnet_size_is_checked_against_the_network() -> None:
    assert validate(["subnet:units=10"], 10) == (RuleSpec("subnet", (("units", 10),)),)
    for units in (11, 0, -1):
        with pytest.raises(RuleError, match="units"):
            validate([f"subnet:units={units}"], 10)
    with pytest.raises(RuleError, match="n_hidden=10"):
        validate(["lazy", "subnet:units=11", "top-k:fraction=0.1"], 10)


@pytest.mark.parametrize(
    "rules",
    [
        ("subnet:units=11",),
        ("top-k:fraction=0",),
        ("top-k:fraction=nan",),
        ("neuron-mask:fraction=1.5",),
        ("lazy", "top-k:fraction=-0.1"),
        ("topk:fraction=0.1",),
        ("subnet:size=3",),
    ],
)
def test_check_config_rejects_bad_rules_before_any_work(rules: tuple[str, ...]) -> None:
    config = RunConfig(dataset="synthetic", n_hidden=10, rules=rules)
    with pytest.raises(RuleError):
        check_config(config)
    with pytest.raises(RuleError):  # no data is touched: the data set here is None
        run(config, None)
    check_config(RunConfig(dataset="synthetic", n_hidden=11, rules=("subnet:units=11",)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_mask_equals_a_stable_ranking(dtype: Any) -> None:
    """The bisection in ``rank_mask`` picks what a stable sort of −scores ranks first:
    ties (many, and at the k-th score) in index order, −0 equal to +0, negative
    scores below all others."""
    rng = np.random.default_rng(7)
    cases = [
        rng.normal(size=50),
        rng.integers(0, 4, 60).astype(float),  # many ties
        np.concatenate([np.abs(rng.normal(size=30)), -np.ones(10), [0.0, -0.0, 0.0]]),
        np.array([-0.0, 0.0, -0.0, 1e-30, -1e-30, 5.0, np.inf, -np.inf]),
        rng.normal(size=7) * 1e-30,
    ]
    for scores in cases:
        scores = scores.astype(dtype)
        n = scores.shape[0]
        for k in sorted({1, 2, n // 3, n // 2, n - 1, n}):
            got = np.asarray(rank_mask(jnp.asarray(scores), jnp.asarray(k), jnp.float32))
            # the reading of the docstring: sort −scores stably, take the first k
            order = np.argsort(-scores, kind="stable")
            want = np.zeros(n, np.float32)
            want[order[:k]] = 1
            np.testing.assert_array_equal(got, want, err_msg=f"k={k} scores={scores}")


# ------------------------------------------------------------ registering rules of one's own


def _gate_rule(units: int) -> Any:
    """A rule factory letting the first ``units`` hidden units learn."""
    from thrifty.rules import LayerSelection, Rule

    def gate() -> Rule:
        """Only the first units learn."""

        def init(params: Any, key: jax.Array) -> tuple[()]:
            return ()

        def update(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
            delta = proposal.layers[0].delta
            post = (jnp.arange(delta.shape[0]) < units).astype(delta.dtype)
            return (LayerSelection(post=post), LayerSelection()), state

        return Rule(init, update, reads_weights=False)

    return gate


def _short_run(rule: str) -> RunConfig:
    """A run of 100 samples of a 10-unit network on synthetic data with ``rule``."""
    return RunConfig(
        dataset="synthetic",
        n_hidden=10,
        rules=(rule,),
        budget_epochs=0.1,
        check_interval=100,
        n_train=1000,
    )


def test_a_rule_registered_again_replaces_the_old_one_in_compiled_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registering a name again (a redefinition in a notebook) warns, and runs after it
    use the new rule: compiled programs know rules by their registrations, not their
    names."""
    from thrifty.rules import registry
    from thrifty.train import load_dataset, run

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    config = _short_run("gate")
    dataset = load_dataset(config)
    registry.register("gate")(_gate_rule(1))
    one = run(config, dataset)["energy"]["hidden"]["m0"]
    with pytest.warns(UserWarning, match="rule 'gate' registered again"):
        registry.register("gate")(_gate_rule(10))
    every = run(config, dataset)["energy"]["hidden"]["m0"]
    assert one > 0 and every == 10 * one


def test_a_factory_need_not_be_hashable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any callable may be a factory, an object that cannot be hashed included (the
    compile key holds the registration's serial number, not the factory)."""
    import dataclasses as dc

    from thrifty.rules import registry
    from thrifty.train import load_dataset, run

    @dc.dataclass
    class Gate:
        units: int

        def __call__(self) -> Any:
            return _gate_rule(self.units)()

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with pytest.raises(TypeError):
        hash(Gate(1))
    registry.register("gate")(Gate(3))
    config = _short_run("gate")
    assert run(config, load_dataset(config))["energy"]["hidden"]["m0"] == 3 * 100 * 785


def test_names_the_records_know_cannot_be_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """``plain`` means plain backprop in records and figures, and the built-in rules are
    known there by their names: a rule of one's own takes neither."""
    from thrifty.rules import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with pytest.raises(RuleError, match="means plain backprop"):
        registry.register("plain")
    for name in ("backprop", "subnet", "top-k"):
        with pytest.raises(RuleError, match=f"'{name}' is built into thrifty"):
            registry.register(name)(_gate_rule(1))


@pytest.mark.parametrize("name", ["my:rule", "a,b", "x=1", "two words", "", "-lead", "a+b"])
def test_a_name_a_rule_string_cannot_hold_is_refused(name: str) -> None:
    from thrifty.rules import registry

    with pytest.raises(RuleError, match="rule name must be letters"):
        registry.register(name)


def test_unknown_rules_say_how_a_rule_of_ones_own_becomes_known() -> None:
    from thrifty.rules import registry

    with pytest.raises(RuleError, match=r"unknown rule 'my-rule'.*imported, in every process"):
        registry.parse("my-rule")


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("one", "update must return a pair"),
        ("no state", r"returned two LayerSelection \(was the state left out\?\)"),
        ("selection of one layer", "one LayerSelection per layer"),
        ("state grows", r"its state in the form it got it .*float32\[2\].*float32\[3\]"),
        ("state changes kind", r"its state in the form it got it .*float32\[2\].*int32\[2\]"),
        ("integer state plus a half", r"in the form it got it .*int32\[2\].*float(32|64)\[2\]"),
        ("float synapses", r"hidden layer's synapses must be a boolean matrix, got float32"),
        ("short post", r"hidden layer's post has shape \(3,\), expected \(10,\)"),
        ("wide pre", r"output layer's pre has shape \(5,\), expected \(11,\)"),
        ("not a rule", "must return a Rule"),
    ],
)
def test_a_rule_returning_the_wrong_form_is_named(
    returned: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mistakes in what a rule returns name the rule and say what was expected, instead
    of failing inside the training step."""
    from thrifty.rules import LayerSelection, Rule, registry
    from thrifty.train import load_dataset, run

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    def factory() -> Any:
        def init(params: Any, key: jax.Array) -> jax.Array:
            integer = returned == "integer state plus a half"
            return jnp.zeros(2, jnp.int32 if integer else jnp.float32)

        def update(proposal: Any, state: Any, params: Any, ctx: Any) -> Any:
            dtype = proposal.layers[0].delta.dtype
            if returned == "one":
                return LayerSelection()
            if returned == "no state":
                return LayerSelection(), LayerSelection()
            if returned == "selection of one layer":
                return (LayerSelection(),), state
            if returned == "state grows":
                return (LayerSelection(), LayerSelection()), jnp.zeros(3, jnp.float32)
            if returned == "state changes kind":
                return (LayerSelection(), LayerSelection()), state.astype(jnp.int32)
            if returned == "integer state plus a half":
                return (LayerSelection(), LayerSelection()), state + 0.5
            if returned == "float synapses":
                n_post, n_pre = proposal.layers[0].delta.shape[0], proposal.layers[0].pre.shape[0]
                half = jnp.full((n_post, n_pre), 0.5, dtype)
                return (LayerSelection(synapses=half), LayerSelection()), state
            if returned == "short post":
                return (LayerSelection(post=jnp.ones(3, dtype)), LayerSelection()), state
            return (LayerSelection(), LayerSelection(pre=jnp.ones(5, dtype))), state

        return None if returned == "not a rule" else Rule(init, update)

    registry.register("broken")(factory)
    config = _short_run("broken")
    with pytest.raises(RuleError, match=message) as caught:
        run(config, load_dataset(config))
    assert "'broken'" in str(caught.value)


def test_masks_in_another_float_type_or_as_lists_are_taken_in_the_weights_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rule's post and pre masks as NumPy's float64 (here with JAX's 64-bit mode on)
    or as a list select as the same values in the weights' type: the float32 run is
    plain backprop's, update for update."""
    from thrifty.rules import LayerSelection, Rule, registry
    from thrifty.train import load_dataset, run

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    @registry.register("all-by-numpy")
    def all_by_numpy() -> Rule:
        def update(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
            hidden, output = proposal.layers
            selection = (
                LayerSelection(
                    post=np.ones(hidden.delta.shape[0]), pre=np.ones(hidden.pre.shape[0])
                ),
                LayerSelection(post=[1.0] * output.delta.shape[0]),
            )
            return selection, state

        return Rule(lambda params, key: (), update)

    config = _short_run("all-by-numpy")
    dataset = load_dataset(config)
    plain = run(dataclasses.replace(config, rules=()), dataset)
    mine = run(config, dataset)
    assert mine["samples"] == plain["samples"] == 100
    for layer in ("hidden", "output"):
        assert mine["energy"][layer]["m0"] == plain["energy"][layer]["m0"] > 0
        assert mine["energy"][layer]["m1"] == pytest.approx(plain["energy"][layer]["m1"], rel=1e-6)


def test_compile_args_may_be_a_mapping_or_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compile_args`` returns the library's keyword arguments as a dict or as pairs;
    both reach the factory and the compile key."""
    from thrifty.rules import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    got: list[int] = []

    def factory(units: int = 1, capacity: tuple = (0,)) -> Any:
        got.append(capacity[0])
        return _gate_rule(units)()

    shapes = ((10, 785), (10, 11))
    for name, form in (("as-dict", dict), ("as-pairs", lambda **kw: tuple(kw.items()))):
        registry.register(name, compile_args=lambda p, s, f=form: f(capacity=(s[0][0] * 2,)))(
            factory
        )
        structure = registry.spec_structure([f"{name}:units=3"], shapes)
        assert structure == ((name, (("capacity", (20,)),)),)
        registry.build([registry.RuleSpec(name, (("units", 3), *structure[0][1]))])
    assert got == [20, 20]
    for name, returned, message in (
        ("gives-none", None, "must return a dict"),
        ("gives-a-number", {"capacity": 3}, None),
        ("sets-units", {"units": 5}, "sets 'units', which the rule string sets"),
        ("gives-a-list", {"capacity": [20]}, r"must give hashable values \(tuples, not lists\)"),
    ):
        registry.register(name, compile_args=lambda p, s, r=returned: r)(factory)
        if message is None:
            assert registry.spec_structure([name], shapes) == ((name, (("capacity", 3),)),)
            continue
        with pytest.raises(RuleError, match=f"rule '{name}': compile_args {message}"):
            registry.spec_structure([name], shapes)


def test_the_state_check_reads_python_numbers_as_jax_carries_them() -> None:
    """Untraced (``jax.disable_jit``), a Python number from ``init`` reaches ``update``
    as itself: JAX promotes it, so any number may come back; an integer array that
    comes back floating point, even weakly typed, is refused, and so is a Python float
    returned for an integer array."""
    from thrifty.rules.registry import _check_state

    _check_state("r", 0, jnp.float32(0.5))
    _check_state("r", 0, 0.5)
    _check_state("r", jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32) + 1)
    with pytest.raises(RuleError, match="in the form it got it"):
        _check_state("r", jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32) + 0.5)
    with pytest.raises(RuleError, match="in the form it got it"):
        _check_state("r", jnp.zeros((), jnp.int32), 0.5)


def test_rule_states_that_jax_carries_are_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check of a rule's state leaves to JAX what it promotes: a Python number
    that becomes a float, a NumPy array, None, a PRNG key, a dict of them."""
    from thrifty.rules import LayerSelection, Rule, registry
    from thrifty.train import load_dataset, run

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    cases = {
        "int-to-float": (lambda: 0, lambda d, s: s + jnp.sum(jnp.abs(d)), True),
        # a Python number from init arrives as an array, also where the library probes
        # the selection's form (rules that do not read the weights)
        "number-as-array": (lambda: 0, lambda d, s: s + (s >= 1).astype(jnp.int32), False),
        "numpy": (lambda: np.zeros(3), lambda d, s: s + jnp.ones(3), False),
        "none": (lambda: None, lambda d, s: None, True),
        "key": (lambda: jax.random.key(0), lambda d, s: jax.random.split(s)[0], True),
        "dict": (lambda: {"a": 0.0, "b": jnp.zeros(2)}, lambda d, s: {**s, "a": s["a"] + 1}, True),
    }

    def factory_of(first: Any, step: Any, reads: bool) -> Any:
        def factory() -> Rule:
            def update(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
                state = step(proposal.layers[0].delta, state)
                return (LayerSelection(), LayerSelection()), state

            return Rule(lambda params, key: first(), update, reads_weights=reads)

        return factory

    dataset = None
    for name, (first, step, reads) in cases.items():
        registry.register(f"state-{name}")(factory_of(first, step, reads))
        config = _short_run(f"state-{name}")
        dataset = dataset if dataset is not None else load_dataset(config)
        assert run(config, dataset)["samples"] == 100, name


def test_a_rule_check_sees_the_defaults_of_parameters_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check`` receives every parameter as a Python value: those written in the rule
    string and the defaults of the others, so it may read any of them by name."""
    from thrifty.rules import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    seen: list[dict[str, Any]] = []

    def check(params: dict[str, Any], n_hidden: int) -> None:
        seen.append(dict(params))
        if not params["theta"] > 0:
            raise RuleError(f"theta must be > 0, got {params['theta']!r}")

    @registry.register("gate-with-defaults", check=check)
    def gate(theta: float = 0.001, mode: str = "a") -> Any:
        return _gate_rule(1)()

    validate(["gate-with-defaults"], 10)
    validate(["gate-with-defaults:theta=0.5"], 10)
    assert seen == [{"theta": 0.001, "mode": "a"}, {"theta": 0.5, "mode": "a"}]
    with pytest.raises(RuleError, match="theta must be > 0"):
        validate(["gate-with-defaults:theta=-1"], 10)


def test_an_int_parameter_written_in_the_rule_string_arrives_as_an_integer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ``int`` parameter reaches the factory as an integer also when written (traced,
    int32), so a rule may index with it: one unit learns, in a single run and in a
    batch, and the one written is the one that learns."""
    from thrifty.rules import LayerSelection, Rule, registry
    from thrifty.train import load_dataset, run_many

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    seen: list[Any] = []

    @registry.register("one-unit")
    def one_unit(*, i: int = 0) -> Rule:
        seen.append(jnp.result_type(i))

        def update(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
            delta = proposal.layers[0].delta
            post = jnp.zeros_like(delta).at[i].set(1.0)
            return (LayerSelection(post=post), LayerSelection()), state

        return Rule(lambda params, key: (), update, reads_weights=False)

    def changed_units(record: dict[str, Any]) -> int:
        return record["energy"]["hidden"]["m0"] // (record["samples"] * 785)

    dataset = load_dataset(_short_run("one-unit"))
    single = run(_short_run("one-unit:i=3"), dataset)
    assert changed_units(single) == 1
    assert seen and all(jnp.issubdtype(t, jnp.integer) for t in seen)
    batch = run_many([_short_run("one-unit:i=3"), _short_run("one-unit:i=7")], dataset)
    assert [changed_units(r) for r in batch] == [1, 1]
    assert batch[0]["energy"]["total"]["m0"] == single["energy"]["total"]["m0"]
    assert batch[0]["energy"]["hidden"]["m1"] != batch[1]["energy"]["hidden"]["m1"]
    assert changed_units(run(_short_run("one-unit"), dataset)) == 1
    with pytest.raises(RuleError, match="within"):
        validate(["one-unit:i=3000000000"], 10)


def test_register_refuses_choices_it_cannot_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """``choices`` for a parameter the factory lacks, or that is not a string, and a
    default outside the choices, are refused when the rule is registered."""
    from thrifty.rules import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    def moded(*, mode: str = "a", p: float = 0.5) -> Any:
        return _gate_rule(1)()

    for choices, match in (
        ({"zz": ("b",)}, "'zz', which is not a str parameter"),
        ({"p": ("b",)}, "'p', which is not a str parameter"),
        ({"mode": ("b", "c")}, "the default of 'mode', 'a', is not one of its choices"),
    ):
        with pytest.raises(RuleError, match=match):
            registry.register("moded", choices=choices)(moded)
        assert "moded" not in registry.REGISTRY
    registry.register("moded", choices={"mode": ("a", "b")})(moded)
    with pytest.raises(RuleError, match="must be one of a, b"):
        validate(["moded:mode=c"], 10)


def test_a_rule_parameter_must_be_annotated_float_int_or_str(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parameter a rule string cannot give (a bool, or one without an annotation,
    which would be read as a float) is refused when the rule is registered."""
    from thrifty.rules import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))

    def flagged(flag: bool = True) -> Any:
        return _gate_rule(1)()

    def bare(p=0.5):  # type: ignore[no-untyped-def]
        return _gate_rule(1)()

    with pytest.raises(RuleError, match="parameter 'flag' must be annotated float, int or str"):
        registry.register("flagged")(flagged)
    with pytest.raises(RuleError, match="got no annotation"):
        registry.register("bare")(bare)
    assert "flagged" not in registry.REGISTRY and "bare" not in registry.REGISTRY
