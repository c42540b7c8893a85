"""The inverse Simpson index ``D = 1 / Σ π_i²`` of where updates land (``simpson=True``).

:func:`thrifty.energy.inverse_simpson` against hand-computed values; then runs whose
recorded index (per layer, per check interval) is compared with the index computed
from the NumPy reference's per-synapse update counts on the same initial weights and
sample order: a synapse counts at a step when it is selected and its proposed update
is non-zero. Top-k moves its selection from sample to sample, so the index is neither
the number of synapses ever updated nor k.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import data
from thrifty import reference as ref
from thrifty.config import RunConfig
from thrifty.energy import inverse_simpson
from thrifty.train import Sampler, Structure, _as_arrays, _init, numbers_of, run, seeds
from util import fast_run, tie_free_data

RULE = "top-k:fraction=0.1"


def _hand_index(counts: np.ndarray) -> float:
    """1 / Σ π² of ``counts`` (0 when all are zero), in float64."""
    counts = np.asarray(counts, np.float64).ravel()
    if counts.sum() == 0:
        return 0.0
    pi = counts / counts.sum()
    return float(1.0 / np.sum(pi * pi))


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([3, 1, 0], 1.6),  # 1 / ((3/4)² + (1/4)²)
        ([0, 0, 0, 0], 0.0),  # nothing updated: 0, as the docstring says
        ([5] * 7, 7.0),  # even over m synapses: m
        ([0, 9, 0, 0], 1.0),  # one synapse: 1
        ([1, 1, 2], 8 / 3),  # 1 / (1/16 + 1/16 + 4/16)
        ([[2, 0], [0, 2]], 2.0),  # a matrix is one population of synapses
    ],
    ids=["3-1-0", "zeros", "uniform-7", "single", "1-1-2", "matrix"],
)
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int64, jnp.float64])
def test_inverse_simpson_hand_values(counts: list[Any], expected: float, dtype: Any) -> None:
    """Hand-computed values, for integer counts of either width and for float counts."""
    d = inverse_simpson(jnp.asarray(counts, dtype))
    assert d.shape == ()
    assert float(d) == pytest.approx(expected, rel=1e-6)


def test_inverse_simpson_is_not_a_count_of_updated_synapses() -> None:
    """Uneven counts give less than the number of non-zero counts; scaling all counts
    leaves the index unchanged; a uniform count gives the number of synapses."""
    counts = jnp.asarray([10, 1, 1, 1, 1], jnp.int32)
    assert float(inverse_simpson(counts)) == pytest.approx(196 / 104, rel=1e-6)
    assert float(inverse_simpson(counts * 7)) == pytest.approx(196 / 104, rel=1e-6)
    m = 1000
    assert float(inverse_simpson(jnp.full((m,), 3, jnp.int32))) == pytest.approx(m, rel=1e-5)


def _reference_counts(
    w1: np.ndarray,
    w2: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    lr: float,
    activation: str = "leaky_relu",
) -> tuple[list[np.ndarray], list[np.ndarray], list[Any]]:
    """Per layer, the number of steps at which each synapse was selected by the reference
    top-k rule and its proposed update was non-zero; the number of steps at which it was
    selected at all; and the reference's step records.

    The reference gives the selections; the proposed updates come from replaying its
    trajectory with :func:`thrifty.reference.forward` / ``backward``."""
    _, _, records = ref.train(
        w1,
        w2,
        x,
        y,
        order,
        lr=lr,
        rule=ref.top_k(0.1, "layer"),
        activation=activation,
        keep_selections=True,
    )
    w = [np.array(w1, np.float64), np.array(w2, np.float64)]
    counts = [np.zeros(a.shape, np.int64) for a in w]
    selected = [np.zeros(a.shape, np.int64) for a in w]
    for t, idx in enumerate(order):
        target = np.zeros(10)
        target[int(y[idx])] = 1.0
        acts = ref.forward(w[0], w[1], x[idx], activation)
        deltas = ref.backward(w[1], acts, target, activation, "mse")
        for layer, (d, pre) in enumerate(zip(deltas, (acts.x, acts.a), strict=True)):
            dw = -lr * np.outer(d, pre)
            applied = records[t].selection[layer] & (dw != 0)
            assert applied.sum() == records[t].m0[layer]  # the reference's own M0
            counts[layer] += applied
            selected[layer] += records[t].selection[layer]
            w[layer] = w[layer] + np.where(applied, dw, 0.0)
    return counts, selected, records


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
def test_recorded_index_matches_the_reference_counts(activation: str) -> None:
    """A tiny float64 run of top-k (10 % of the input→hidden layer per sample) over 48
    samples: the index per layer equals 1/Σπ² of the reference's per-synapse update
    counts, and differs from the number of synapses ever updated and from k. With
    leaky ReLU every output synapse is updated at every step (index = their number);
    with ReLU silent hidden units leave selected synapses without an update, and those
    do not count."""
    x, y = tie_free_data(n=40, n_inputs=20, seed=3)
    order = np.random.default_rng(1).integers(0, len(y), 48)
    lr = 0.05
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=12,
        rules=(RULE,),
        lr=lr,
        sigma=0.3,
        dtype="float64",
        activation=activation,
        simpson=True,
    )
    initial, _, out, _ = fast_run(cfg, x, y, order)
    w1, w2 = (np.asarray(w) for w in initial.params)
    counts, selected, _ = _reference_counts(w1, w2, x, y, order, lr, activation)

    recorded = [float(d) for d in out.updated]
    assert len(recorded) == 2
    expected = [_hand_index(c) for c in counts]
    # a float64 run computes its index in float64
    np.testing.assert_allclose(recorded, expected, rtol=1e-13)
    # the M0 the fast path metered is the reference's count
    for layer in range(2):
        assert int(np.sum(np.asarray(out.energy[layer].m0))) == counts[layer].sum()

    hidden = counts[0]
    k = round(0.1 * hidden.size)
    ever = int(np.count_nonzero(hidden))
    assert ever > k  # the selection moved
    assert not np.isclose(recorded[0], ever, rtol=1e-3)
    assert k < recorded[0] < ever
    if activation == "leaky_relu":
        assert hidden.sum() == k * len(order)  # k updates per sample
        assert recorded[1] == w2.size  # exact: (Σ c)² / Σ c² of uniform counts
    else:
        # selected without an update: counting selections would give another index
        assert not np.array_equal(selected[1], counts[1])
        assert not np.isclose(_hand_index(selected[1]), recorded[1], rtol=1e-3)
        assert recorded[1] < w2.size


def test_a_run_records_one_index_per_check_interval() -> None:
    """:func:`thrifty.train.run` on synthetic data (4 hidden units, float64, two checks
    of 40 samples): the record holds ``[start, hidden, output]`` per check interval,
    and each row is 1/Σπ² of that interval's reference update counts alone (the tally
    starts afresh at each check), from the run's initial weights and sample order."""
    dataset = data.synthetic(n_train=200, n_val=50, n_test=50, n_inputs=30, seed=0)
    interval = 40
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=4,
        rules=(RULE,),
        lr=0.05,
        sigma=0.3,
        dtype="float64",
        simpson=True,
        check_interval=interval,
        budget_epochs=0.4,  # 80 samples: two checks
        criterion=1.0,
    )
    record = run(cfg, dataset)
    assert record["samples"] == 2 * interval and record["status"] == "budget"
    simpson = record["simpson"]
    assert simpson["window"] == interval and simpson["columns"] == ["start", "hidden", "output"]
    rows = simpson["values"]
    assert [r[0] for r in rows] == [0, interval]

    # the run's initial weights and sample order, as train.run makes them
    config = cfg.resolved()
    key, order_seed = seeds(config.seed)
    k_init, _ = jax.random.split(key)
    structure = Structure.of(config, 30, 10)
    numbers = _as_arrays(numbers_of(config), jnp.float64)
    state = _init(structure, numbers, k_init, jnp.asarray(config.sigma, jnp.float64))
    w1, w2 = (np.asarray(w) for w in state.params)
    order = Sampler(200, "epoch", order_seed).take(2 * interval)
    x = np.hstack([np.asarray(dataset.x_train, np.float64), np.ones((200, 1))])
    y = np.asarray(dataset.y_train)

    whole, _, records = _reference_counts(w1, w2, x, y, order, cfg.lr)
    # the same run: the summed update sizes depend on the whole trajectory
    for layer, name in enumerate(("hidden", "output")):
        m1 = sum(r.m1[layer] for r in records)
        assert record["energy"][name]["m1"] == pytest.approx(m1, rel=1e-9)
    # the index of the two intervals' counts together is not the second row's
    assert not np.isclose(_hand_index(whole[0]), rows[1][1], rtol=1e-3)
    # counts per interval: replay the reference interval by interval
    for i, row in enumerate(rows):
        part = order[i * interval : (i + 1) * interval]
        start = _weights_after(w1, w2, x, y, order[: i * interval], cfg.lr)
        counts, _, _ = _reference_counts(*start, x, y, part, cfg.lr)
        np.testing.assert_allclose(row[1:], [_hand_index(c) for c in counts], rtol=1e-13)
        ever = int(np.count_nonzero(counts[0]))
        assert not np.isclose(row[1], ever, rtol=1e-3)
        assert round(0.1 * counts[0].size) < row[1] < ever
        assert row[2] == w2.size


def _weights_after(
    w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray, order: np.ndarray, lr: float
) -> tuple[np.ndarray, np.ndarray]:
    """The reference weights after training on ``order`` with top-k."""
    v1, v2, _ = ref.train(w1, w2, x, y, order, lr=lr, rule=ref.top_k(0.1, "layer"))
    return v1, v2
