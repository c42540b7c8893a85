"""One suite that every registered rule must pass.

``CASES`` gives every entry of ``thrifty.rules.REGISTRY`` a valid parameter set; a rule
registered without one fails here, so new rules join the suite. For a small network and
a random proposal:

(a) ``jax.jit(rule.update)`` gives what the eager call gives;
(b) ``jax.vmap`` of init + update over a batch of keys and numbers (traced, through
    ``build(specs, numbers)``) gives what separate calls give;
(c) the rule state keeps its tree structure, shapes and dtypes through ``update``;
(d) with fraction 1 (where the rule has one) the selection is plain backprop's;
(e) chained after a subnet, the selection lies inside the subnet's.

Then, on short training chunks (``util.fast_run``), the exact energy invariants of
every fixed restriction and of top-k, in float64 and float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import util
from thrifty.config import RunConfig
from thrifty.energy import Ledger, dense_selection, price_layer
from thrifty.network import init_params, propose
from thrifty.rules import ALL, REGISTRY, Context, build, parse
from thrifty.rules.registry import spec_numbers
from thrifty.train import init_state
from util import fast_run, tie_free_data

N_IN, N_HIDDEN, N_OUT = 12, 6, 10
SIZES = (N_HIDDEN * (N_IN + 1), N_OUT * (N_HIDDEN + 1))  # 78, 70
SUBNET = 3


@dataclass(frozen=True)
class Case:
    """A valid rule string; a batch of values for its numeric parameters (the first
    are the string's own); the values that make it select everything (None when no
    value does)."""

    spec: str
    batch: dict[str, tuple[float, ...]] = field(default_factory=dict)
    full: dict[str, float] | None = None


CASES: dict[str, list[Case]] = {
    "backprop": [Case("backprop", full={})],
    "class-neuron-mask": [
        Case("class-neuron-mask:fraction=0.4", {"fraction": (0.4, 0.2, 1.0)}, {"fraction": 1})
    ],
    "frozen-input": [Case("frozen-input")],
    "lazy": [Case("lazy")],
    "neuron-mask": [
        Case("neuron-mask:fraction=0.4", {"fraction": (0.4, 0.1, 0.7)}, {"fraction": 1})
    ],
    "neuron-select": [
        Case("neuron-select:fraction=0.3,by=error", {"fraction": (0.3, 0.6, 1.0)}, {"fraction": 1}),
        Case(
            "neuron-select:fraction=0.5,by=activity", {"fraction": (0.5, 0.2, 0.9)}, {"fraction": 1}
        ),
    ],
    "random-neuron-mask": [
        Case("random-neuron-mask:fraction=0.5", {"fraction": (0.5, 0.2, 0.8)}, {"fraction": 1})
    ],
    "subnet": [Case("subnet:units=3", {"units": (3, 1, 5)}, {"units": N_HIDDEN})],
    "synapse-mask": [
        Case(
            "synapse-mask:hidden=0.3,output=0.6",
            {"hidden": (0.3, 0.1, 0.9), "output": (0.6, 1.0, 0.25)},
            {"hidden": 1, "output": 1},
        )
    ],
    "synapse-mask-optimal": [
        # N = 6: N_min = 2 gives p1 = √(2·10/(12·6)) ≈ 0.53, p2 = 0.63; N_min ≥ 6 gives 1, 1
        Case("synapse-mask-optimal:n_min=2", {"n_min": (2, 0.5, 4)}, {"n_min": N_HIDDEN})
    ],
    "top-k": [
        Case("top-k:fraction=0.1,per=layer", {"fraction": (0.1, 0.02, 0.5)}, {"fraction": 1}),
        Case("top-k:fraction=0.3,per=neuron", {"fraction": (0.3, 0.05, 0.8)}, {"fraction": 1}),
    ],
}

PARAMS_LIST = [
    pytest.param(name, case, id=case.spec if case else name)
    for name in sorted(REGISTRY)
    for case in CASES.get(name, [None])
]


def _case(name: str, case: Case | None) -> Case:
    if case is None:
        pytest.fail(f"registered rule {name!r} has no entry in CASES of {__file__}: add one")
    return case


def test_every_registered_rule_has_a_case() -> None:
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"add these registered rules to CASES: {missing}"
    assert not sorted(set(CASES) - set(REGISTRY)), "CASES names rules that are not registered"
    for name, cases in CASES.items():
        for case in cases:
            spec = parse(case.spec)
            assert spec.name == name
            numeric = set(spec_numbers([spec]))
            assert {f"0.{k}" for k in case.batch} == numeric, case.spec
            assert all(case.batch[k][0] == dict(spec.kwargs)[k] for k in case.batch), case.spec


# ------------------------------------------------------------------- the small network

PARAMS = init_params(
    jax.random.key(11),
    n_hidden=N_HIDDEN,
    n_inputs=N_IN,
    n_outputs=N_OUT,
    sigma=0.5,
    dtype=jnp.float64,
)
_X = jnp.concatenate([jax.random.normal(jax.random.key(12), (N_IN,), jnp.float64), jnp.ones(1)])
_Y0 = int(jnp.argmax(propose(PARAMS, _X, jnp.zeros(N_OUT)).output))
LABEL = (_Y0 + 1) % N_OUT  # a misclassified sample: lazy learning selects everything
PROPOSAL = propose(PARAMS, _X, jax.nn.one_hot(LABEL, N_OUT, dtype=jnp.float64))
_NONZERO = [np.outer(np.asarray(lp.delta) != 0, np.asarray(lp.pre) != 0) for lp in PROPOSAL.layers]
assert all(m.all() for m in _NONZERO)  # every proposed update is non-zero


def _ctx(key: jax.Array) -> Context:
    return Context(step=jnp.asarray(3), label=jnp.asarray(LABEL), key=key)


@jax.jit
def _priced(selection: Any) -> tuple[list[jax.Array], list[Any]]:
    dense, energies = [], []
    for lp, sel in zip(PROPOSAL.layers, selection, strict=True):
        dense.append(dense_selection(lp.delta, lp.pre, sel))
        e = price_layer(lp.delta, lp.pre, sel, 0.01)
        energies.append((e.m0, e.m0_potentiation, e.m1, e.m1_potentiation))
    return dense, energies


def _numbers(case: Case, index: int | None = None, values: dict | None = None) -> dict:
    """The rule's ``spec_numbers`` as float64 arrays (as a run passes them), with the
    values of one batch entry, of the whole batch (leading axis), or the given ones."""
    out = {}
    for key in spec_numbers([case.spec]):
        name = key.partition(".")[2]
        if values is not None:
            value = values[name]
        else:
            value = case.batch[name] if index is None else case.batch[name][index]
        out[key] = jnp.asarray(value, jnp.float64)
    return out


def _init_update(case: Case, key: jax.Array, numbers: dict) -> tuple[Any, Any, Any]:
    """Init and one update: (state, selection, new state)."""
    k_init, k_step = jax.random.split(key)
    rule = build([case.spec], numbers)
    state = rule.init(PARAMS, k_init)
    sel, new_state = rule.update(PROPOSAL, state, PARAMS, _ctx(k_step))
    return state, sel, new_state


_VMAPPED: dict[str, Any] = {}
_EAGER: dict[str, Any] = {}


def _vmapped(case: Case) -> Any:
    if case.spec not in _VMAPPED:
        _VMAPPED[case.spec] = jax.jit(jax.vmap(lambda k, n: _init_update(case, k, n)))
    return _VMAPPED[case.spec]


def _keys(n: int) -> jax.Array:
    return jax.random.split(jax.random.key(5), n)


def _eager(case: Case) -> tuple[Any, Any, Context, Any]:
    """The rule built from its string (Python numbers), run eagerly with the keys of the
    first batch entry: (rule, state, ctx, (selection, new state))."""
    if case.spec not in _EAGER:
        k_init, k_step = jax.random.split(_keys(3)[0])
        rule = build([case.spec])
        state = rule.init(PARAMS, k_init)
        ctx = _ctx(k_step)
        _EAGER[case.spec] = (rule, state, ctx, rule.update(PROPOSAL, state, PARAMS, ctx))
    return _EAGER[case.spec]


def _assert_trees_equal(a: Any, b: Any, *, rtol: float = 0.0) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if rtol and np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-300)
        else:
            np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------ (a) to (e)


@pytest.mark.parametrize(("name", "case"), PARAMS_LIST)
def test_jit_matches_eager(name: str, case: Case | None) -> None:
    case = _case(name, case)
    rule, state, ctx, eager = _eager(case)
    jitted = jax.jit(rule.update)(PROPOSAL, state, PARAMS, ctx)
    _assert_trees_equal(eager, jitted)
    _assert_trees_equal(_priced(eager[0]), _priced(jitted[0]), rtol=1e-12)


@pytest.mark.parametrize(("name", "case"), PARAMS_LIST)
def test_vmap_matches_separate_calls(name: str, case: Case | None) -> None:
    """(b) a batch of keys and traced numbers gives what separate calls give, and
    (c) the state keeps its tree structure, shapes and dtypes through update."""
    case = _case(name, case)
    n = len(next(iter(case.batch.values()))) if case.batch else 3
    keys = _keys(n)
    batched = _vmapped(case)(keys, _numbers(case))
    for i in range(n):
        one = _init_update(case, keys[i], _numbers(case, i))
        _assert_trees_equal(jax.tree.map(lambda a, i=i: a[i], batched), one, rtol=1e-12)
        state, _, new_state = one
        assert jax.tree.structure(state) == jax.tree.structure(new_state)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
            assert (a.shape, a.dtype) == (b.shape, b.dtype)
    # the first entry has the rule string's own numbers: traced numbers select what
    # Python numbers select and draw the same masks
    _, state, _, (sel, new_state) = _eager(case)
    first = jax.tree.map(lambda a: a[0], batched)
    _assert_trees_equal(_priced(first[1])[0], _priced(sel)[0])
    _assert_trees_equal(first[2], jax.tree.map(lambda a, b: a.astype(b.dtype), new_state, first[2]))


@pytest.mark.parametrize(("name", "case"), PARAMS_LIST)
def test_chained_after_subnet_stays_inside_it(name: str, case: Case | None) -> None:
    """(e) the selection of subnet + rule is a subset of the subnet's selection."""
    case = _case(name, case)
    k_init, k_step = jax.random.split(jax.random.key(8))
    chained = build([f"subnet:units={SUBNET}", case.spec])
    state = chained.init(PARAMS, k_init)
    sel, _ = chained.update(PROPOSAL, state, PARAMS, _ctx(k_step))
    sub, _ = build([f"subnet:units={SUBNET}"]).update(PROPOSAL, state[0], PARAMS, _ctx(k_step))
    got, inside = _priced(sel)[0], _priced(sub)[0]
    for layer in range(2):
        chosen, allowed = np.asarray(got[layer]), np.asarray(inside[layer])
        assert not np.any(chosen & ~allowed)
    assert np.asarray(inside[0]).sum() == SUBNET * (N_IN + 1)
    assert np.asarray(inside[1]).sum() == N_OUT * (SUBNET + 1)


def _half_up(x: float) -> int:
    return max(math.floor(x + 0.5), 1)


COUNTS_IN_SUBNET = {
    # rule → synapses of the input layer it selects within a subnet of SUBNET units
    "top-k:fraction=0.1,per=layer": _half_up(0.1 * SUBNET * (N_IN + 1)),
    "top-k:fraction=0.3,per=neuron": SUBNET * _half_up(0.3 * (N_IN + 1)),
    "neuron-select:fraction=0.3,by=error": _half_up(0.3 * SUBNET) * (N_IN + 1),
    "neuron-select:fraction=0.5,by=activity": _half_up(0.5 * SUBNET) * (N_IN + 1),
}


@pytest.mark.parametrize("spec", sorted(COUNTS_IN_SUBNET))
def test_counting_rules_after_subnet_count_within_it(spec: str) -> None:
    """(e) a rule that takes a fraction takes it of what the subnet leaves: as many
    synapses as the fraction of the subnet's, all inside it; the output layer stays
    the subnet's."""
    k_init, k_step = jax.random.split(jax.random.key(8))
    chained = build([f"subnet:units={SUBNET}", spec])
    state = chained.init(PARAMS, k_init)
    sel, _ = chained.update(PROPOSAL, state, PARAMS, _ctx(k_step))
    sub, _ = build([f"subnet:units={SUBNET}"]).update(PROPOSAL, state[0], PARAMS, _ctx(k_step))
    got, inside = _priced(sel)[0], _priced(sub)[0]
    chosen = np.asarray(got[0])
    assert int(chosen.sum()) == COUNTS_IN_SUBNET[spec]
    assert not np.any(chosen & ~np.asarray(inside[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(inside[1]))


FULL_CASES = [p for p in PARAMS_LIST if p.values[1] is None or p.values[1].full is not None]
_BACKPROP: list[Any] = []


@pytest.mark.parametrize(("name", "case"), FULL_CASES)
def test_fraction_one_is_plain_backprop(name: str, case: Case | None) -> None:
    case = _case(name, case)
    if not _BACKPROP:
        _BACKPROP.extend(_priced(ALL))
    want_dense, want_energy = _BACKPROP
    _, sel, _ = _init_update(case, jax.random.key(9), _numbers(case, values=case.full))
    dense, energies = _priced(sel)
    for layer in range(2):
        chosen = np.asarray(dense[layer]) & _NONZERO[layer]
        np.testing.assert_array_equal(chosen, np.asarray(want_dense[layer]) & _NONZERO[layer])
        m0, m0p, m1, m1p = (np.asarray(v) for v in energies[layer])
        w0, w0p, w1, w1p = (np.asarray(v) for v in want_energy[layer])
        assert (int(m0), int(m0p)) == (int(w0), int(w0p))
        assert int(m0) == SIZES[layer]
        np.testing.assert_allclose([m1, m1p], [w1, w1p], rtol=1e-12)


# ------------------------------------------------------------ invariants of training

T = 24
BOTH = ("float64", "float32")
INVARIANTS: dict[str, tuple[tuple[str, ...], tuple[int, int], tuple[str, ...]]] = {
    # rules, per-step M0 of (hidden, output), dtypes; hidden 6·13 = 78, output 10·7 = 70
    "backprop": ((), (78, 70), BOTH),
    "synapse-mask": (("synapse-mask:hidden=0.3,output=0.55",), (23, 39), BOTH),  # 23.4, 38.5
    "neuron-mask": (("neuron-mask:fraction=0.5",), (3 * 13, 70), BOTH),
    "subnet": (("subnet:units=2",), (2 * 13, 10 * 3), BOTH),
    "frozen-input": (("frozen-input",), (0, 70), BOTH),
    "top-k": (("top-k:fraction=0.05",), (4, 70), BOTH),  # 0.05·78 = 3.9 → 4 every step
    # k relative to the subnet: round(0.1·3·13 = 3.9) = 4; output 10·(3 + 1)
    "subnet+top-k": (("subnet:units=3", "top-k:fraction=0.1"), (4, 40), ("float64",)),
    # round(0.25·13 = 3.25) = 3 inputs for each of the 6 units
    "top-k-per-neuron": (("top-k:fraction=0.25,per=neuron",), (6 * 3, 70), ("float64",)),
    # exactly k units on every step, whichever they are: 3, 3, 2 (0.34·6 = 2.04)
    "class-neuron-mask": (("class-neuron-mask:fraction=0.5",), (3 * 13, 70), ("float64",)),
    "neuron-select": (("neuron-select:fraction=0.5",), (3 * 13, 70), ("float64",)),
    "random-neuron-mask": (("random-neuron-mask:fraction=0.34",), (2 * 13, 70), ("float64",)),
}
INVARIANT_RUNS = [(name, dtype) for name in sorted(INVARIANTS) for dtype in INVARIANTS[name][2]]


@pytest.mark.parametrize(("name", "dtype"), INVARIANT_RUNS)
def test_training_energy_invariants(name: str, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """M0 = T × (plastic synapses) per layer, exactly, at every step and in the ledger."""
    # The compiled chunk is what is under test; the initial state is built eagerly
    # (compiling it for every rule and dtype would cost more than the runs).
    monkeypatch.setattr(util, "_init", init_state)
    rules, per_step, _ = INVARIANTS[name]
    x, y = tie_free_data(n=40, n_inputs=N_IN, seed=3)
    order = np.random.default_rng(4).integers(0, len(y), T)
    config = RunConfig(
        dataset="synthetic", n_hidden=N_HIDDEN, rules=rules, lr=0.05, sigma=0.3, dtype=dtype
    )
    _, final, out, _ = fast_run(config, x, y, order, seed=2)
    ledger = Ledger(2)
    ledger.add(out.energy)
    for layer in range(2):
        np.testing.assert_array_equal(np.asarray(out.energy[layer].m0), np.full(T, per_step[layer]))
        assert ledger.layers[layer].m0 == T * per_step[layer]
        m1 = np.asarray(out.energy[layer].m1)
        assert np.all(m1 > 0) == (per_step[layer] > 0) and np.all(m1 >= 0)
    assert ledger.m0 == T * sum(per_step)
    changed = [np.asarray(w) for w in final.params]
    assert all(np.all(np.isfinite(w)) for w in changed)
