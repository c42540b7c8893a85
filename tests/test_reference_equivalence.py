"""The fast path against the NumPy reference: weights, selections and energies.

Both are fed the same initial weights, sample order and random masks. In float64
the weights agree within 1e-9, M0 is identical at every step and M1 agrees within
1e-6 relative; selections are identical on tie-free data, and for top-k also on
inputs with many exact ties (equal inputs; the errors of two units never tie).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import reference as ref
from thrifty import theory
from thrifty.config import RunConfig
from thrifty.energy import dense_selection
from thrifty.network import Params, propose
from thrifty.reference.rules import count_of as ref_count_of
from thrifty.rules import build
from thrifty.rules.base import Context
from thrifty.train import _specs
from util import fast_run, tie_free_data, tied_data

N_HIDDEN = 12
T = 60


def _units(state: Any) -> np.ndarray:
    return np.asarray(state.units) != 0


def _mask_matrices(state: Any, params: Any) -> list[np.ndarray]:
    """The synapse-mask rule's masks as boolean matrices shaped like ``params``, from
    matrices or from lists of flat indices."""
    masks = []
    for mask, w in zip(state, params, strict=True):
        mask = np.asarray(mask)
        if mask.ndim == 1:
            flat = np.zeros(np.asarray(w).size, bool)
            flat[mask[mask < flat.size]] = True
            mask = flat.reshape(np.asarray(w).shape)
        masks.append(mask)
    return masks


RefFactory = Callable[[Any, Any], Any]


def _stateless_chain(*steps: tuple[str, Any]) -> tuple[tuple[str, ...], RefFactory]:
    """The case of a chain of rules without state: (rule string, reference rule) each."""
    rules = tuple(spec for spec, _ in steps)
    return rules, lambda st, k: ref.chain([rule for _, rule in steps])


def _top_k_then_mask_then(spec: str, last: Any) -> tuple[tuple[str, ...], RefFactory]:
    """The case of top-k 30 %, a 30 % synapse mask, then the rule ``spec`` (reference
    rule ``last``)."""
    rules = ("top-k:fraction=0.3", "synapse-mask:hidden=0.3,output=1", spec)

    def make(st: Any, k: Any) -> Any:
        mask = ref.synapse_mask(_mask_matrices(st[1], k[3]))
        return ref.chain([ref.top_k(0.3, "layer"), mask, last])

    return rules, make


def _optimal_masks(st: Any, k: Any) -> Any:
    """The masks of ``synapse-mask-optimal:n_min=2.3`` as the reference rule, once their
    sizes are checked against :func:`thrifty.theory.optimal_fractions` with the
    reference's rounding."""
    masks = _mask_matrices(st, k[3])
    (n_hidden, n_pre), (n_outputs, _) = (m.shape for m in masks)
    fractions = theory.optimal_fractions(n_hidden, 2.3, n_inputs=n_pre - 1, n_outputs=n_outputs)
    assert [int(m.sum()) for m in masks] == [
        ref_count_of(float(p), m.size) for p, m in zip(fractions, masks, strict=True)
    ]
    return ref.synapse_mask(masks)


CASES: dict[str, tuple[tuple[str, ...], RefFactory]] = {
    "backprop": ((), lambda st, k: None),
    "synapse-mask": (
        ("synapse-mask:hidden=0.3,output=0.6",),
        lambda st, k: ref.synapse_mask([np.asarray(st.hidden), np.asarray(st.output)]),
    ),
    "synapse-mask-optimal": (("synapse-mask-optimal:n_min=2.3",), _optimal_masks),
    "neuron-mask": (("neuron-mask:fraction=0.3",), lambda st, k: ref.neuron_mask(_units(st))),
    "subnet": (("subnet:units=5",), lambda st, k: ref.subnet(_units(st))),
    "top-k-layer": (("top-k:fraction=0.1",), lambda st, k: ref.top_k(0.1, "layer")),
    "top-k-neuron": (("top-k:fraction=0.2,per=neuron",), lambda st, k: ref.top_k(0.2, "neuron")),
    "select-error": (
        ("neuron-select:fraction=0.25,by=error",),
        lambda st, k: ref.neuron_select(0.25, "error"),
    ),
    "select-activity": (
        ("neuron-select:fraction=0.25,by=activity",),
        lambda st, k: ref.neuron_select(0.25, "activity"),
    ),
    "class-mask": (
        ("class-neuron-mask:fraction=0.3",),
        lambda st, k: ref.class_neuron_mask(np.asarray(st.units) != 0),
    ),
    "frozen-input": (("frozen-input",), lambda st, k: ref.frozen_input()),
    "lazy": (("lazy",), lambda st, k: ref.lazy()),
    "subnet+top-k": (
        ("subnet:units=6", "top-k:fraction=0.1"),
        lambda st, k: ref.chain([ref.subnet(_units(st[0])), ref.top_k(0.1, "layer")]),
    ),
    "lazy+top-k": (
        ("lazy", "top-k:fraction=0.05"),
        lambda st, k: ref.chain([ref.lazy(), ref.top_k(0.05, "layer")]),
    ),
    "synapse-mask+top-k": (
        ("synapse-mask:hidden=0.3,output=0.6", "top-k:fraction=0.2"),
        lambda st, k: ref.chain(
            [ref.synapse_mask(_mask_matrices(st[0], k[3])), ref.top_k(0.2, "layer")]
        ),
    ),
    "synapse-mask+top-k-neuron": (
        ("synapse-mask:hidden=0.4,output=0.6", "top-k:fraction=0.3,per=neuron"),
        lambda st, k: ref.chain(
            [ref.synapse_mask(_mask_matrices(st[0], k[3])), ref.top_k(0.3, "neuron")]
        ),
    ),
    "subnet+top-k-neuron": (
        ("subnet:units=6", "top-k:fraction=0.2,per=neuron"),
        lambda st, k: ref.chain([ref.subnet(_units(st[0])), ref.top_k(0.2, "neuron")]),
    ),
    "subnet+select": (
        ("subnet:units=6", "neuron-select:fraction=0.5"),
        lambda st, k: ref.chain([ref.subnet(_units(st[0])), ref.neuron_select(0.5, "error")]),
    ),
    # rules that count what is left, after rules that select by more than unit masks
    "top-k+select": _stateless_chain(
        ("top-k:fraction=0.05", ref.top_k(0.05, "layer")),
        ("neuron-select:fraction=0.5", ref.neuron_select(0.5, "error")),
    ),
    "top-k+top-k": _stateless_chain(
        ("top-k:fraction=0.3", ref.top_k(0.3, "layer")),
        ("top-k:fraction=0.5", ref.top_k(0.5, "layer")),
    ),
    "top-k+top-k-neuron": _stateless_chain(
        ("top-k:fraction=0.3", ref.top_k(0.3, "layer")),
        ("top-k:fraction=0.5,per=neuron", ref.top_k(0.5, "neuron")),
    ),
    "top-k-neuron+select": _stateless_chain(
        ("top-k:fraction=0.2,per=neuron", ref.top_k(0.2, "neuron")),
        ("neuron-select:fraction=0.5", ref.neuron_select(0.5, "error")),
    ),
    # a threshold, then a listed or matrix mask, then a rule that counts what is left
    "top-k+synapse-mask+top-k": _top_k_then_mask_then("top-k:fraction=0.5", ref.top_k(0.5)),
    "top-k+synapse-mask+select": _top_k_then_mask_then(
        "neuron-select:fraction=0.5", ref.neuron_select(0.5, "error")
    ),
    "synapse-mask+select": (
        ("synapse-mask:hidden=0.05,output=1", "neuron-select:fraction=0.5"),
        lambda st, k: ref.chain(
            [ref.synapse_mask(_mask_matrices(st[0], k[3])), ref.neuron_select(0.5, "error")]
        ),
    ),
}


def _random_mask_ref(structure: Any, numbers: Any, key: jax.Array, params: Params) -> Any:
    """Reference rule that reproduces the fast path's per-step random neuron masks."""
    rule = build(["random-neuron-mask:fraction=0.3"])

    def masks(t: int) -> np.ndarray:
        proposal = propose(params, jnp.zeros(params.hidden.shape[1]), jnp.zeros(10))
        ctx = Context(
            step=jnp.asarray(t, jnp.int32), label=jnp.asarray(0), key=jax.random.fold_in(key, t)
        )
        sel, _ = rule.update(proposal, (), params, ctx)
        return np.asarray(sel[0].post) != 0

    return ref.per_step_mask(masks)


def _compare(
    rules: tuple[str, ...],
    make_ref: Any,
    lr: float = 0.05,
    data: Any = tie_free_data,
    alphas: tuple[float, ...] = (),
    steps: int = T,
    activation: str = "leaky_relu",
    dtype: str = "float64",
) -> None:
    """The fast path in ``dtype`` against the reference. In float64: weights within
    1e-9, M0 equal, the sums within 1e-6 relative, the losses within 1e-9 and the
    selections equal; in float32: weights within 1e-5, M0 equal, the sums and losses
    within 1e-4 relative."""
    x, y = data()
    order = np.random.default_rng(1).integers(0, len(y), steps)
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=N_HIDDEN,
        rules=rules,
        lr=lr,
        sigma=0.3,
        dtype=dtype,
        alphas=alphas,
        activation=activation,
    )
    initial, final, out, (structure, numbers, k_steps) = fast_run(cfg, x, y, order)
    single = dtype == "float32"
    p0 = initial.params
    rule_ref = make_ref(initial.rule_state, (structure, numbers, k_steps, p0))
    w1, w2, records = ref.train(
        p0[0],
        p0[1],
        x,
        y,
        order,
        lr=lr,
        rule=rule_ref,
        keep_selections=True,
        alphas=alphas,
        activation=activation,
    )
    w_atol, rtol, loss_rtol = (1e-5, 1e-4, 1e-4) if single else (1e-9, 1e-6, 1e-9)
    np.testing.assert_allclose(np.asarray(final.params.hidden), w1, atol=w_atol, rtol=0)
    np.testing.assert_allclose(np.asarray(final.params.output), w2, atol=w_atol, rtol=0)
    _compare_meters(out, records, rtol=rtol, alphas=bool(alphas))
    np.testing.assert_allclose(np.asarray(out.loss), [r.loss for r in records], rtol=loss_rtol)
    if single:
        return
    rule = _specs(structure, numbers)[0]
    _compare_selections(rule, initial, x, y, order, records, lr, activation)


def _compare_meters(out: Any, records: Any, rtol: float, alphas: bool = False) -> None:
    """Per step and layer: M0 and its potentiation part equal, M1, its potentiation part
    and (``alphas``) the M_alpha meters within ``rtol``."""
    for layer in range(2):
        e = out.energy[layer]
        for name in ("m0", "m0_potentiation"):
            np.testing.assert_array_equal(
                np.asarray(getattr(e, name)), [getattr(r, name)[layer] for r in records]
            )
        for name in ["m1", "m1_potentiation"] + (["m_alpha"] if alphas else []):
            np.testing.assert_allclose(
                np.asarray(getattr(e, name)),
                [getattr(r, name)[layer] for r in records],
                rtol=rtol,
                atol=0,
            )


def _compare_selections(
    rule: Any,
    initial: Any,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    records: Any,
    lr: float,
    activation: str,
) -> None:
    """Replay the reference trajectory and check the fast rule selects the same synapses
    wherever the proposed update is non-zero. ``rule``: the fast run's rule, as its
    compiled step builds it."""
    w = [np.array(initial.params[0]), np.array(initial.params[1])]
    state = initial.rule_state
    key = jax.random.split(jax.random.key(0))[1]  # the step key of fast_run(seed=0)

    @jax.jit  # one program per rule: op by op, every step would compile its own loops
    def select(params: Params, x_t: Any, target: Any, state: Any, ctx: Context) -> Any:
        proposal = propose(params, x_t, target, activation=activation)
        sel, state = rule.update(proposal, state, params, ctx)
        dense = [
            dense_selection(lp.delta, lp.pre, s) for lp, s in zip(proposal.layers, sel, strict=True)
        ]
        return proposal, dense, state

    for t, idx in enumerate(order):
        params = Params(jnp.asarray(w[0]), jnp.asarray(w[1]))
        target = jax.nn.one_hot(int(y[idx]), 10, dtype=jnp.float64)
        ctx = Context(
            step=jnp.asarray(t, jnp.int32),
            label=jnp.asarray(int(y[idx])),
            key=jax.random.fold_in(key, t),
        )
        proposal, dense, state = select(params, jnp.asarray(x[idx]), target, state, ctx)
        for layer in range(2):
            lp = proposal.layers[layer]
            fast = np.asarray(dense[layer])
            nonzero = np.outer(np.asarray(lp.delta) != 0, np.asarray(lp.pre) != 0)
            np.testing.assert_array_equal(fast & nonzero, records[t].selection[layer] & nonzero)
            dw = -lr * np.outer(np.asarray(lp.delta), np.asarray(lp.pre))
            w[layer] = w[layer] + np.where(records[t].selection[layer], dw, 0.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_matches_reference(case: str) -> None:
    rules, make_ref = CASES[case]
    _compare(rules, make_ref)


@pytest.mark.parametrize(
    "case",
    [
        "synapse-mask+top-k",
        "synapse-mask+top-k-neuron",
        "synapse-mask+select",
        "top-k+synapse-mask+top-k",
        "top-k+synapse-mask+select",
    ],
)
def test_listed_mask_then_top_k_matches_reference(case: str, monkeypatch: Any) -> None:
    """A mask kept as a list of synapses: top-k ranks among the listed synapses, and
    neuron-select among the units with a listed synapse."""
    from thrifty.rules import library

    monkeypatch.setattr(library, "LISTED_UP_TO", 2.0)  # every mask becomes a list
    rules, make_ref = CASES[case]
    _compare(rules, make_ref)


@pytest.mark.parametrize(
    "case",
    [
        "top-k-layer",
        "top-k-neuron",
        "subnet+top-k",
        "lazy+top-k",
        "synapse-mask+top-k",
        "top-k+select",
        "top-k+top-k-neuron",
    ],
)
def test_top_k_with_tied_updates_matches_reference(case: str) -> None:
    """Inputs on a coarse grid tie many updates of a unit; the largest updates are taken
    with ties within a unit going to the lower input, as the reference's stable sort
    takes them (the errors are continuous, so no two units tie)."""
    rules, make_ref = CASES[case]
    _compare(rules, make_ref, data=tied_data)


def _top_k_running_out(fraction: float, per: str, ran_out: list[bool]) -> Any:
    """The reference's top-k, noting in ``ran_out`` whether a step had fewer non-zero
    updates than the rule's k (in the layer, or in some unit's row)."""
    inner = ref.top_k(fraction, per)

    def select(step: Any, current: list[np.ndarray]) -> list[np.ndarray]:
        nonzero = (step.dw[0] != 0) & current[0]
        if per == "layer":
            short = nonzero.sum() < ref_count_of(fraction, int(current[0].sum()))
        else:
            k = [ref_count_of(fraction, int(row.sum())) for row in current[0]]
            short = bool(np.any(nonzero.sum(axis=1) < np.asarray(k)))
        ran_out.append(bool(short))
        return inner(step, current)

    return select


ZERO_UPDATE_CASES: dict[str, tuple[str, Any, float, str, str, Any]] = {
    # (activation, data, first top-k's fraction and per, the rule after it, its reference)
    "relu-select": (
        "relu", tie_free_data, 0.6, "layer",
        "neuron-select:fraction=0.3", ref.neuron_select(0.3, "error"),
    ),
    "relu-top-k": (
        "relu", tie_free_data, 0.6, "layer", "top-k:fraction=0.3", ref.top_k(0.3, "layer"),
    ),
    "relu-neuron-select": (
        "relu", tie_free_data, 0.9, "neuron",
        "neuron-select:fraction=0.5", ref.neuron_select(0.5, "error"),
    ),
    "zero-inputs-top-k": (
        "leaky_relu", tied_data, 0.95, "layer", "top-k:fraction=0.5", ref.top_k(0.5, "layer"),
    ),
    "zero-inputs-top-k-neuron": (
        "leaky_relu", tied_data, 0.95, "layer",
        "top-k:fraction=0.5,per=neuron", ref.top_k(0.5, "neuron"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ZERO_UPDATE_CASES))
def test_top_k_never_keeps_a_zero_update(case: str) -> None:
    """Where a top-k asks for more synapses than have a non-zero update (units without
    error under ReLU, inputs exactly 0), it keeps only the non-zero ones, and the rule
    after it counts only those: the same synapses and units as the reference."""
    activation, data, fraction, per, then, last = ZERO_UPDATE_CASES[case]
    ran_out: list[bool] = []

    def make(st: Any, k: Any) -> Any:
        return ref.chain([_top_k_running_out(fraction, per, ran_out), last])

    first = f"top-k:fraction={fraction},per={per}"
    _compare((first, then), make, data=data, activation=activation)
    assert any(ran_out)  # the case arose


@pytest.mark.parametrize("case", ["backprop", "subnet", "neuron-mask", "lazy", "subnet+select"])
def test_runs_with_deferred_updates_match_reference(case: str) -> None:
    """200 steps: three whole blocks of 64 samples whose updates are applied at once
    (``thrifty.train.defers_updates``), then 8 more, against the reference's steps."""
    from thrifty.train import Structure, _as_arrays, deferred_block, defers_updates, numbers_of

    rules, make_ref = CASES[case]
    cfg = RunConfig(dataset="synthetic", n_hidden=N_HIDDEN, rules=rules, dtype="float64")
    numbers = _as_arrays(numbers_of(cfg.resolved()), jnp.float64)
    assert defers_updates(Structure.of(cfg.resolved(), 20, 10), numbers)
    assert deferred_block(N_HIDDEN) == 64
    _compare(rules, make_ref, steps=200)


@pytest.mark.parametrize("case", ["backprop", "synapse-mask", "top-k-layer", "subnet", "lazy"])
def test_m_alpha_matches_reference(case: str) -> None:
    """The extra meters Σ|Δw|^α against the reference's dense sums, per step and layer."""
    rules, make_ref = CASES[case]
    _compare(rules, make_ref, alphas=(0.5, 2.0))


def test_random_neuron_mask_matches_reference() -> None:
    def make(st: Any, extra: Any) -> Any:
        structure, numbers, k_steps, p0 = extra
        return _random_mask_ref(structure, numbers, k_steps, Params(*(jnp.asarray(w) for w in p0)))

    x, y = tie_free_data()
    order = np.random.default_rng(1).integers(0, len(y), T)
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=N_HIDDEN,
        rules=("random-neuron-mask:fraction=0.3",),
        lr=0.05,
        sigma=0.3,
        dtype="float64",
    )
    initial, final, out, extra = fast_run(cfg, x, y, order)
    rule_ref = make(initial.rule_state, (*extra, initial.params))
    w1, w2, records = ref.train(
        initial.params[0], initial.params[1], x, y, order, lr=0.05, rule=rule_ref
    )
    np.testing.assert_allclose(np.asarray(final.params.hidden), w1, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.asarray(final.params.output), w2, atol=1e-9, rtol=0)
    _compare_meters(out, records, rtol=1e-6)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
def test_variants_match_reference(loss: str, activation: str) -> None:
    x, y = tie_free_data()
    order = np.arange(T) % len(y)
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=N_HIDDEN,
        lr=0.05,
        sigma=0.3,
        dtype="float64",
        loss=loss,
        activation=activation,
    )
    initial, final, out, _ = fast_run(cfg, x, y, order)
    w1, w2, records = ref.train(
        initial.params[0], initial.params[1], x, y, order, lr=0.05, loss=loss, activation=activation
    )
    np.testing.assert_allclose(np.asarray(final.params.hidden), w1, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.asarray(final.params.output), w2, atol=1e-9, rtol=0)
    _compare_meters(out, records, rtol=1e-6)


@pytest.mark.parametrize(
    "case",
    ["subnet+top-k", "top-k-neuron", "select-error", "lazy", "synapse-mask", "class-mask"],
)
def test_float32_rules_stay_close_to_reference(case: str) -> None:
    """The float32 path that thrifty runs by default, with rules: M0 identical to the
    float64 reference at every step, weights within 1e-5, sums within 1e-4."""
    rules, make_ref = CASES[case]
    _compare(rules, make_ref, dtype="float32")


def test_float32_stays_close_to_reference() -> None:
    """Float32 fast path: weights within 1e-5 absolute of the float64 reference after T steps;
    M0 identical (no update underflows to zero at these sizes)."""
    x, y = tie_free_data()
    order = np.arange(T) % len(y)
    cfg = RunConfig(dataset="synthetic", n_hidden=N_HIDDEN, lr=0.05, sigma=0.3, dtype="float32")
    initial, final, out, _ = fast_run(cfg, x, y, order)
    w1, w2, records = ref.train(initial.params[0], initial.params[1], x, y, order, lr=0.05)
    np.testing.assert_allclose(np.asarray(final.params.hidden), w1, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(final.params.output), w2, atol=1e-5, rtol=0)
    _compare_meters(out, records, rtol=1e-5)
