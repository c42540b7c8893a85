"""Whole runs of the fast path (:func:`thrifty.train.run`, :func:`~thrifty.train.run_many`)
against the reference's (:func:`thrifty.reference.run`): status, samples, where a run
diverged, the accuracy curve, every meter per layer and in total, the minimal energy,
the transient weights left and the Simpson index.

Both start from the fast path's initial weights, masks and sample order (the JAX draws
are not re-implemented). In float64 the counts are equal, the sums agree within 1e-9
relative, the accuracies are equal, and the Simpson index (formed in float32 from
counts of at most 2**24) within 1e-6.
"""

from __future__ import annotations

from typing import Any

import pytest

from test_reference_equivalence import CASES, RefFactory
from thrifty import data, verify
from thrifty.config import RunConfig
from thrifty.train import (
    run,
    run_many,
)

SUMS_RTOL = 1e-9


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    """Synthetic data with 30 inputs: 400 training samples, 120 to check on."""
    return data.synthetic(n_train=400, n_val=120, n_test=60, n_inputs=30, seed=3)


def reference_of(config: RunConfig, dataset: data.Dataset, make_rule: RefFactory | None) -> Any:
    """The reference's run of ``config``, from the fast path's initial state and order."""
    if make_rule is None:
        return verify.reference_run(config, dataset)
    return verify.reference_run(config, dataset, rule_from_state=lambda st: make_rule(st, None))


def assert_same_run(record: dict[str, Any], want: Any) -> None:
    """Every number of ``record`` (a fast-path run record) as the reference has it."""
    assert verify.differences(record, want) == []


def _config(**fields: Any) -> RunConfig:
    base: dict[str, Any] = {
        "dataset": "synthetic",
        "n_hidden": 12,
        "dtype": "float64",
        "lr": 0.05,
        "sigma": 0.3,
        "check_interval": 50,
        "budget_epochs": 1.0,
        "criterion": 0.9,
    }
    return RunConfig(**{**base, **fields})


RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    # reaches the criterion within the budget
    "backprop converges": ("backprop", {"budget_epochs": 2.0}),
    # an unreachable criterion: the budget ends it; every meter and the Simpson index
    "subnet + top-k to the budget": (
        "subnet+top-k",
        {"criterion": 1.0, "alphas": (0.5, 2.0), "simpson": True},
    ),
    "synapse mask, samples drawn with replacement": (
        "synapse-mask",
        {"sampling": "replacement", "criterion": 1.0, "simpson": True},
    ),
    "lazy, ReLU and cross-entropy": (
        "lazy",
        {"activation": "relu", "loss": "cross_entropy", "criterion": 1.0},
    ),
    "caching per neuron in a subnet of consolidating units": (
        "backprop",
        {
            "synapses": "caching:threshold=0.02,per=neuron,consolidate_units=5",
            "criterion": 1.0,
            "alphas": (2.0,),
        },
    ),
    "caching with a neuron mask": ("neuron-mask", {"synapses": "caching:threshold=0.01"}),
    # the loss overflows within the first chunk: charged up to the sample before
    "divergence": ("backprop", {"lr": 1e12, "criterion": 1.0}),
    # nothing consolidates: the transient weights, and their cost, overflow
    "divergence with caching": (
        "backprop",
        {"lr": 1e12, "synapses": "caching:threshold=1e300", "criterion": 1.0},
    ),
}
"""Per case: the rules of that case of the step-by-step comparison (and its reference
rule), and the config's other fields."""


@pytest.mark.parametrize("case", list(RUNS))
def test_run_matches_the_reference_run(case: str, dataset: data.Dataset) -> None:
    rule_case, fields = RUNS[case]
    rules, make_rule = CASES[rule_case]
    config = _config(rules=rules, **fields)
    record = run(config, dataset)
    want = reference_of(config, dataset, make_rule)
    assert_same_run(record, want)
    # each case measures what it is named for
    if "converges" in case:
        assert want.status == "converged" and len(want.curve) > 1
    elif "divergence" in case:
        assert want.status == "diverged" and 0 < want.diverged_at < 50
        if "caching" in case:  # charged the transient cost of the samples before
            assert want.energy[0]["m1_transient"] > 0 and want.energy[0]["m0"] == 0
    else:  # 1 epoch of 400 samples
        assert (want.status, want.samples) == ("budget", 400)


def test_run_many_matches_the_reference_run_by_run(dataset: data.Dataset) -> None:
    """Runs batched together, which stop at different checks (frozen while the others
    go on) or diverge, each match the reference's run of their own config."""
    rules, make_rule = CASES["top-k-layer"]
    configs = [
        _config(rules=rules, seed=seed, lr=lr, criterion=criterion, budget_epochs=1.25)
        for seed, lr, criterion in ((0, 0.05, 0.8), (1, 0.02, 0.4), (2, 0.1, 1.0), (3, 1e12, 1.0))
    ]
    records = run_many(configs, dataset)
    wants = [reference_of(c, dataset, make_rule) for c in configs]
    for record, want in zip(records, wants, strict=True):
        assert_same_run(record, want)
    assert [w.status for w in wants] == ["converged", "converged", "budget", "diverged"]
    assert wants[2].samples == 500  # 1.25 epochs of 400 samples
    assert wants[1].samples < wants[0].samples < wants[2].samples  # frozen while others ran
