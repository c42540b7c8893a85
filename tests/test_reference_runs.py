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

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_reference_equivalence import CASES, RefFactory
from thrifty import data
from thrifty import reference as ref
from thrifty.config import RunConfig
from thrifty.rules.registry import parse
from thrifty.synapses import SYNAPSE_MODELS
from thrifty.train import (
    Sampler,
    _as_arrays,
    _init,
    _structure_for,
    budget_samples,
    check_config,
    numbers_of,
    prepare_arrays,
    run,
    run_many,
    seeds,
)

SUMS_RTOL = 1e-9


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    """Synthetic data with 30 inputs: 400 training samples, 120 to check on."""
    return data.synthetic(n_train=400, n_val=120, n_test=60, n_inputs=30, seed=3)


def reference_of(config: RunConfig, dataset: data.Dataset, make_rule: RefFactory | None) -> Any:
    """The reference's run of ``config``, from the fast path's initial state and order."""
    cfg = check_config(config)
    arrays = prepare_arrays(cfg, dataset)
    structure = _structure_for(cfg, arrays, dataset)
    dtype = jnp.dtype(cfg.dtype)
    numbers = _as_arrays(numbers_of(cfg), dtype)
    key, order_seed = seeds(cfg.seed)
    k_init, k_steps = jax.random.split(key)
    state = _init(structure, numbers, k_init, jnp.asarray(cfg.sigma, dtype))
    p0 = [np.asarray(w) for w in state.params]
    interval = int(cfg.check_interval or 1000)
    n_train = int(arrays["x_train"].shape[0])
    budget = budget_samples(cfg, n_train)
    sampler = Sampler(n_train, cfg.sampling or "epoch", order_seed)
    order = np.concatenate([sampler.take(interval) for _ in range(-(-budget // interval))])
    rule = make_rule(state.rule_state, (structure, numbers, k_steps, p0)) if make_rule else None
    caching = None
    if cfg.synapses != "plain":
        kwargs = dict(parse(cfg.synapses, SYNAPSE_MODELS).kwargs)
        units = getattr(state.synapse_state, "consolidating", None)
        caching = ref.Caching(
            threshold=float(kwargs["threshold"]),
            tau=float(kwargs.get("tau", 1000.0)),
            cost=float(kwargs.get("cost", 0.001)),
            per=str(kwargs.get("per", "synapse")),
            consolidating_units=None if units is None or np.ndim(units) == 0 else units != 0,
        )
    return ref.run(
        p0[0],
        p0[1],
        np.asarray(arrays["x_train"], np.float64),
        np.asarray(arrays["y_train"]),
        np.asarray(arrays["x_check"], np.float64),
        np.asarray(arrays["y_check"]),
        order,
        lr=float(cfg.lr),
        criterion=float(cfg.criterion or 0.95),
        check_interval=interval,
        budget=budget,
        rule=rule,
        caching=caching,
        activation=cfg.activation,
        loss=cfg.loss,
        alphas=cfg.alphas,
        simpson=cfg.simpson,
    )


def assert_same_run(record: dict[str, Any], want: Any) -> None:
    """Every number of ``record`` (a fast-path run record) as the reference has it."""
    assert (record["status"], record["samples"], record["diverged_at"]) == (
        want.status,
        want.samples,
        want.diverged_at,
    )
    assert [tuple(c) for c in record["curve"]] == want.curve
    layers = ("hidden", "output")
    for name, energy in zip(layers, want.energy, strict=True):
        got = record["energy"][name]
        for meter in ("m0", "m0_potentiation"):
            assert got[meter] == energy[meter], (name, meter)
        for meter in ("m1", "m1_potentiation", "m1_transient"):
            assert got[meter] == pytest.approx(energy[meter], rel=SUMS_RTOL, abs=1e-300), meter
        alphas = [float(a) for a in record["config"]["alphas"]]
        got_alpha = [got["m_alpha"][repr(a)] for a in alphas] if alphas else []
        assert got_alpha == pytest.approx(energy["m_alpha"], rel=SUMS_RTOL), name
    total = record["energy"]["total"]
    assert total["m0"] == sum(e["m0"] for e in want.energy)
    assert total["m1"] == pytest.approx(sum(e["m1"] for e in want.energy), rel=SUMS_RTOL)
    if want.minimal is None:
        assert record["minimal_energy"] is None and record["inefficiency"] is None
    else:
        for name, least in zip(layers, want.minimal, strict=True):
            assert record["minimal_energy"][name]["m0"] == least["m0"]
            assert record["minimal_energy"][name]["m1"] == pytest.approx(least["m1"], rel=1e-9)
    if want.remaining is None:
        assert record["synapse_summary"] is None
    else:
        for name, left in zip(layers, want.remaining, strict=True):
            got = record["synapse_summary"][name]
            assert got["remaining_m0"] == left["remaining_m0"]
            assert got["remaining_m1"] == pytest.approx(left["remaining_m1"], rel=1e-9)
    if record["simpson"] is None:
        assert want.simpson == []
    else:
        values = np.asarray(record["simpson"]["values"], np.float64)
        np.testing.assert_allclose(values, np.asarray(want.simpson, np.float64), rtol=1e-6)


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
