"""A rule of one's own checked against its reference version (:mod:`thrifty.verify`),
as docs/rules.md shows it."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import reference as ref
from thrifty import verify
from thrifty.config import RunConfig
from thrifty.rules import LayerSelection, Rule, registry
from thrifty.train import load_dataset, run


def _error_gate(*, theta: float) -> Rule:
    """Only hidden units whose |error| is at least theta learn (docs/rules.md)."""

    def update(proposal: Any, state: Any, params: Any, ctx: Any) -> tuple[Any, Any]:
        delta = proposal.layers[0].delta
        post = (jnp.abs(delta) >= theta).astype(delta.dtype)
        return (LayerSelection(post=post), LayerSelection()), state

    return Rule(lambda params, key: (), update, "error-gate", reads_weights=False)


def _error_gate_reference(theta: float) -> ref.ReferenceRule:
    """The same rule, dense: the synapses of units whose |error| reaches theta."""

    def select(step: ref.StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        hidden, output = (np.ones(dw.shape, bool) for dw in step.dw)
        hidden[np.abs(step.deltas[0]) < theta, :] = False
        return [hidden, output]

    return select


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("error-gate")(_error_gate)


CONFIG = RunConfig(
    dataset="synthetic",
    n_hidden=12,
    dtype="float64",
    lr=0.05,
    rules=("error-gate:theta=0.02",),
    budget_epochs=0.3,
    check_interval=100,
    n_train=1000,
    alphas=(0.5,),
)


def test_a_rule_of_ones_own_agrees_with_its_reference_version(registered: None) -> None:
    dataset = load_dataset(CONFIG)
    record = run(CONFIG, dataset)
    want = verify.reference_run(CONFIG, dataset, rule=_error_gate_reference(0.02))
    assert verify.differences(record, want) == []
    # the gate selects: fewer updates than plain backprop's, and some
    plain = run(dataclasses.replace(CONFIG, rules=()), dataset)
    assert 0 < record["energy"]["hidden"]["m0"] < plain["energy"]["hidden"]["m0"]
    assert (
        verify.differences(
            plain, verify.reference_run(dataclasses.replace(CONFIG, rules=()), dataset)
        )
        == []
    )


def test_a_reference_that_selects_otherwise_is_told_apart(registered: None) -> None:
    """A reference version with another threshold: the differences name the meters."""
    dataset = load_dataset(CONFIG)
    record = run(CONFIG, dataset)
    other = verify.reference_run(CONFIG, dataset, rule=_error_gate_reference(0.03))
    found = verify.differences(record, other)
    assert any(d.startswith("hidden m0:") for d in found)
    assert any(d.startswith("hidden m1:") for d in found)
    assert not any(d.startswith("output m0:") for d in found)  # the output layer is plain


def test_rules_without_a_reference_version_are_refused(registered: None) -> None:
    dataset = load_dataset(CONFIG)
    with pytest.raises(ValueError, match="give their reference version"):
        verify.reference_run(CONFIG, dataset)
    with pytest.raises(ValueError, match="not both"):
        verify.reference_run(
            CONFIG,
            dataset,
            rule=_error_gate_reference(0.02),
            rule_from_state=lambda state: _error_gate_reference(0.02),
        )


def test_a_rule_whose_draws_live_in_its_state_is_replayed_from_that_state() -> None:
    """A subnet draws its units in ``init``: the reference rule is made from that state
    (a single rule's own; a chain's is the tuple of its rules')."""
    config = dataclasses.replace(CONFIG, rules=("subnet:units=4",), alphas=())
    dataset = load_dataset(config)
    record = run(config, dataset)
    want = verify.reference_run(
        config, dataset, rule_from_state=lambda state: ref.subnet(np.asarray(state.units) != 0)
    )
    assert verify.differences(record, want) == []
    # the units drawn matter: another choice of four is told apart
    other = verify.reference_run(config, dataset, rule=ref.subnet(np.arange(12) < 4))
    assert verify.differences(record, other) != []


def test_a_record_of_another_config_is_told_apart_first(registered: None) -> None:
    dataset = load_dataset(CONFIG)
    other = dataclasses.replace(CONFIG, seed=1)
    found = verify.differences(
        run(other, dataset), verify.reference_run(CONFIG, dataset, rule=_error_gate_reference(0.02))
    )
    assert found[0].startswith(f"key: a record of run {other.key()}, the reference's of run")
    # a record of the same config under an older key (its rule strings as written) is not
    record = run(CONFIG, dataset)
    record["key"] = "0" * 16
    want = verify.reference_run(CONFIG, dataset, rule=_error_gate_reference(0.02))
    assert verify.differences(record, want) == []


def test_a_reference_rule_of_the_wrong_form_is_named(registered: None) -> None:
    """A reference rule returns one boolean matrix per layer, shaped like its weights:
    float matrices (read as selections everywhere they are not 0) are refused."""
    dataset = load_dataset(CONFIG)

    def floats(step: ref.StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ones(dw.shape) for dw in step.dw]

    def one_layer(step: ref.StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        return current[:1]

    for wrong in (floats, one_layer):
        with pytest.raises(ValueError, match="a reference rule must return one boolean matrix"):
            verify.reference_run(CONFIG, dataset, rule=wrong)


def test_start_replays_a_run_by_hand() -> None:
    """:func:`verify.start` is where :func:`run` starts: plain backprop replayed from it
    by a loop written here (forward and errors from :mod:`thrifty.reference`) gives the
    record's accuracy curve, M0 and M1 per layer."""
    config = RunConfig(
        dataset="synthetic",
        n_hidden=6,
        dtype="float64",
        lr=0.05,
        budget_epochs=0.12,
        check_interval=40,
        n_train=1000,
        criterion=1.0,
    )
    dataset = load_dataset(config)
    record = run(config, dataset)
    begin = verify.start(config, dataset)
    assert (begin.check_interval, begin.budget) == (40, 120)
    assert begin.order.shape == (120,) and begin.criterion == 1.0
    assert begin.w1.shape == (6, begin.x_train.shape[1]) and begin.w1.dtype == np.float64
    assert np.all(begin.x_train[:, -1] == 1) and np.all(begin.x_check[:, -1] == 1)

    w = [begin.w1.copy(), begin.w2.copy()]
    m0, m1, curve = [0, 0], [0.0, 0.0], []
    for t, i in enumerate(begin.order, start=1):
        acts = ref.forward(w[0], w[1], begin.x_train[i])
        target = np.eye(w[1].shape[0])[begin.y_train[i]]
        deltas = ref.backward(w[1], acts, target)
        for layer, (d, pre) in enumerate(zip(deltas, (acts.x, acts.a), strict=True)):
            dw = -config.lr * np.outer(d, pre)
            m0[layer] += int(np.count_nonzero(dw))
            m1[layer] += float(np.abs(dw).sum())
            w[layer] += dw
        if t % begin.check_interval == 0:
            guesses = [ref.forward(w[0], w[1], x).y.argmax() for x in begin.x_check]
            curve.append([t, float(np.mean(np.asarray(guesses) == begin.y_check))])
    assert [list(p) for p in record["curve"]] == curve
    for layer, name in enumerate(("hidden", "output")):
        assert record["energy"][name]["m0"] == m0[layer]
        assert record["energy"][name]["m1"] == pytest.approx(m1[layer], rel=1e-12)
