"""Synaptic caching: the fast path against the NumPy reference, a hand-worked step,
limits, composition with rules, and parameter checks.

Both paths get the same initial weights, sample order, rule masks and consolidation
subnet. In float64 the consolidation events (M0) are identical at every step, the
persistent and transient weights agree within 1e-9 and M1 and the transient cost
within 1e-6 relative.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import caching as caching_module
from thrifty import reference as ref
from thrifty.caching import CachingState, cache_layer, caching
from thrifty.config import RunConfig
from thrifty.network import Params
from thrifty.reference.caching import consolidate_layer
from thrifty.rules.base import LayerSelection
from thrifty.rules.registry import RuleError, parse
from thrifty.synapses import SYNAPSE_MODELS, build_synapses
from thrifty.train import check_config
from util import fast_run, tie_free_data

N_HIDDEN = 12
T = 60
LR = 0.05


def _fast(
    synapses: str, rules: tuple[str, ...] = (), *, order: np.ndarray, alphas: tuple[float, ...] = ()
) -> tuple[Any, Any, Any]:
    """Fast path in float64 on the tie-free data: (initial state, final state, outputs)."""
    x, y = tie_free_data()
    cfg = RunConfig(
        dataset="synthetic",
        n_hidden=N_HIDDEN,
        rules=rules,
        synapses=synapses,
        lr=LR,
        sigma=0.3,
        dtype="float64",
        alphas=alphas,
    )
    initial, final, out, _ = fast_run(cfg, x, y, order)
    return initial, final, out


def _order() -> np.ndarray:
    _, y = tie_free_data()
    return np.random.default_rng(1).integers(0, len(y), T)


def _units(rule_state: Any) -> np.ndarray:
    return np.asarray(rule_state.units) != 0


CASES: dict[str, tuple[str, tuple[str, ...], Any]] = {
    "synapse": ("caching:threshold=0.05,tau=20,cost=0.01", (), lambda st: None),
    "neuron": ("caching:threshold=0.08,tau=20,cost=0.01,per=neuron", (), lambda st: None),
    "layer": ("caching:threshold=0.15,tau=20,cost=0.01,per=layer", (), lambda st: None),
    "default-tau": ("caching:threshold=0.03", (), lambda st: None),
    "subnet-rule": (
        "caching:threshold=0.04,tau=30,cost=0.01",
        ("subnet:units=5",),
        lambda st: ref.subnet(_units(st)),
    ),
    "lazy-rule": ("caching:threshold=0.04,tau=30,cost=0.01", ("lazy",), lambda st: ref.lazy()),
    "top-k+per-neuron": (
        "caching:threshold=0.04,tau=30,cost=0.01,per=neuron",
        ("top-k:fraction=0.3",),
        lambda st: ref.top_k(0.3, "layer"),
    ),
    # a synapse matrix: the transient update is masked synapse by synapse
    "synapse-mask-rule": (
        "caching:threshold=0.04,tau=30,cost=0.01",
        ("synapse-mask:hidden=0.3,output=0.6",),
        lambda st: ref.synapse_mask([np.asarray(st.hidden), np.asarray(st.output)]),
    ),
    "select-rule": (
        "caching:threshold=0.04,tau=30,cost=0.01",
        ("neuron-select:fraction=0.5",),
        lambda st: ref.neuron_select(0.5, "error"),
    ),
    # grouped consolidation within a subnet of consolidating units
    "neuron-in-subnet": (
        "caching:threshold=0.06,tau=30,cost=0.01,per=neuron,consolidate_units=4",
        (),
        lambda st: None,
    ),
    "layer-in-subnet": (
        "caching:threshold=0.06,tau=30,cost=0.01,per=layer,consolidate_units=4",
        (),
        lambda st: None,
    ),
}


def _compare(synapses: str, rules: tuple[str, ...], make_rule: Any) -> Any:
    order = _order()
    alphas = (0.5, 2.0)
    initial, final, out = _fast(synapses, rules, order=order, alphas=alphas)
    kwargs = dict(parse(synapses, SYNAPSE_MODELS).kwargs)
    units = initial.synapse_state.consolidating
    x, y = tie_free_data()
    result = ref.train_caching(
        initial.params[0],
        initial.params[1],
        x,
        y,
        order,
        lr=LR,
        threshold=kwargs["threshold"],
        tau=kwargs.get("tau", 1000.0),
        cost=kwargs.get("cost", 0.001),
        per=kwargs.get("per", "synapse"),
        consolidating_units=None if units is None else np.asarray(units) != 0,
        rule=make_rule(initial.rule_state),
        alphas=alphas,
    )
    for layer in range(2):
        np.testing.assert_allclose(
            np.asarray(final.params[layer]), result.persistent[layer], atol=1e-9, rtol=0
        )
        np.testing.assert_allclose(
            np.asarray(final.synapse_state.transient[layer]),
            result.transient[layer],
            atol=1e-9,
            rtol=0,
        )
        e = out.energy[layer]
        recs = result.records
        np.testing.assert_array_equal(np.asarray(e.m0), [r.m0[layer] for r in recs])
        np.testing.assert_array_equal(
            np.asarray(e.m0_potentiation), [r.m0_potentiation[layer] for r in recs]
        )
        for name in ("m1", "m1_potentiation", "transient"):
            np.testing.assert_allclose(
                np.asarray(getattr(e, name)),
                [getattr(r, name)[layer] for r in recs],
                rtol=1e-6,
                atol=1e-12,
                err_msg=f"{name}, layer {layer}",
            )
        np.testing.assert_allclose(
            np.asarray(e.m_alpha), [r.m_alpha[layer] for r in recs], rtol=1e-6, atol=1e-12
        )
    np.testing.assert_allclose(np.asarray(out.loss), [r.loss for r in result.records], rtol=1e-9)
    return initial, final, out


@pytest.mark.parametrize("case", sorted(CASES))
def test_caching_matches_reference(case: str) -> None:
    synapses, rules, make_rule = CASES[case]
    _, _, out = _compare(synapses, rules, make_rule)
    events = sum(int(np.sum(np.asarray(e.m0))) for e in out.energy)
    assert events > 0, "the case should consolidate at least once"


def test_consolidation_subnet_matches_reference() -> None:
    """Transient plasticity everywhere, consolidation only in a 4-unit subnet."""
    initial, final, _ = _compare(
        "caching:threshold=0.04,tau=30,cost=0.01,consolidate_units=4", (), lambda st: None
    )
    units = np.asarray(initial.synapse_state.consolidating) != 0
    assert units.sum() == 4
    # persistent weights change only in the subnet's rows and columns (and output biases)
    hidden_changed = np.any(np.asarray(final.params.hidden) != initial.params.hidden, axis=1)
    assert not hidden_changed[~units].any() and hidden_changed[units].any()
    output_changed = np.any(np.asarray(final.params.output) != initial.params.output, axis=0)
    assert not output_changed[:N_HIDDEN][~units].any()
    # elsewhere the transient weights learn
    assert np.all(np.asarray(final.synapse_state.transient.hidden)[~units] != 0)


def test_subnet_rule_keeps_transients_off_the_rest() -> None:
    """``subnet`` + caching: caching restricted to the subnet in both components."""
    initial, final, _ = _compare(
        "caching:threshold=0.04,tau=30,cost=0.01",
        ("subnet:units=5",),
        lambda st: ref.subnet(_units(st)),
    )
    units = _units(initial.rule_state)
    s_hidden = np.asarray(final.synapse_state.transient.hidden)
    s_output = np.asarray(final.synapse_state.transient.output)
    assert np.all(s_hidden[~units] == 0) and np.all(s_output[:, :N_HIDDEN][:, ~units] == 0)
    l_hidden = np.asarray(final.params.hidden)
    np.testing.assert_array_equal(l_hidden[~units], initial.params.hidden[~units])


def test_tiny_threshold_is_plain_backprop() -> None:
    """θ → 0, τ → ∞, c = 0: every update consolidates at once, as with plain synapses."""
    order = _order()
    _, plain_final, plain_out = _fast("plain", order=order)
    _, final, out = _fast("caching:threshold=1e-300,tau=1e15,cost=0", order=order)
    for layer in range(2):
        np.testing.assert_allclose(
            np.asarray(final.params[layer]), np.asarray(plain_final.params[layer]), atol=1e-9
        )
        assert not np.any(np.asarray(final.synapse_state.transient[layer]))
        np.testing.assert_array_equal(
            np.asarray(out.energy[layer].m0), np.asarray(plain_out.energy[layer].m0)
        )
        np.testing.assert_array_equal(
            np.asarray(out.energy[layer].m0_potentiation),
            np.asarray(plain_out.energy[layer].m0_potentiation),
        )
        np.testing.assert_allclose(
            np.asarray(out.energy[layer].m1), np.asarray(plain_out.energy[layer].m1), rtol=1e-6
        )


def test_hand_worked_two_steps() -> None:
    """One unit, two inputs; θ = 0.1, decay ½ (τ = 1/ln 2), c = 0.5, lr = 0.1.

    Step 1: delta = 1, pre = (1, 2): s = (0.05, −0.02) − 0.1·(1, 2) = (−0.05, −0.22),
    decayed (−0.025, −0.11); |−0.11| ≥ θ consolidates: l = (0, −0.11), s = (−0.025, 0).
    M0 = 1 (0 potentiating), transient = 0.5·0.025, M1 = 0.11 + 0.0125.
    Step 2: delta = −2, pre = (1, 2): s = (−0.025 + 0.2, 0.4)/2 = (0.0875, 0.2);
    0.2 consolidates: l = (0, 0.09), s = (0.0875, 0). M0 = 1 (potentiating),
    M1 = 0.2 + 0.5·0.0875, M1 of potentiation 0.2, Σ|consolidated|^2 = 0.04.
    """
    tau = 1 / math.log(2.0)
    decay = math.exp(-1 / tau)
    kw = {"threshold": 0.1, "decay": decay, "cost": 0.5, "alphas": (2.0,)}
    lw = jnp.zeros((1, 2), jnp.float64)
    s = jnp.asarray([[0.05, -0.02]], jnp.float64)
    pre = jnp.asarray([1.0, 2.0], jnp.float64)
    lw, s, e, _ = cache_layer(lw, s, jnp.asarray([1.0]), pre, LayerSelection(), 0.1, **kw)
    np.testing.assert_allclose(np.asarray(lw), [[0.0, -0.11]], atol=1e-15)
    np.testing.assert_allclose(np.asarray(s), [[-0.025, 0.0]], atol=1e-15)
    assert (int(e.m0), int(e.m0_potentiation)) == (1, 0)
    np.testing.assert_allclose(float(e.transient), 0.0125, rtol=1e-12)
    np.testing.assert_allclose(float(e.m1), 0.1225, rtol=1e-12)
    np.testing.assert_allclose(float(e.m1_potentiation), 0.0, atol=1e-15)
    lw, s, e, _ = cache_layer(lw, s, jnp.asarray([-2.0]), pre, LayerSelection(), 0.1, **kw)
    np.testing.assert_allclose(np.asarray(lw), [[0.0, 0.09]], atol=1e-15)
    np.testing.assert_allclose(np.asarray(s), [[0.0875, 0.0]], atol=1e-15)
    assert (int(e.m0), int(e.m0_potentiation)) == (1, 1)
    np.testing.assert_allclose(float(e.m1), 0.2 + 0.04375, rtol=1e-12)
    np.testing.assert_allclose(float(e.m1_potentiation), 0.2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(e.m_alpha), [0.04], rtol=1e-12)
    # the reference does the same
    rl, rs, energy = consolidate_layer(
        np.zeros((1, 2)),
        np.array([[0.05, -0.02]]),
        -0.1 * np.outer([1.0], [1.0, 2.0]),
        threshold=0.1,
        decay=decay,
        cost=0.5,
    )
    np.testing.assert_allclose(rl, [[0.0, -0.11]], atol=1e-15)
    np.testing.assert_allclose(rs, [[-0.025, 0.0]], atol=1e-15)
    assert energy[:2] == (1, 0)


@pytest.mark.parametrize("per", ["neuron", "layer"])
def test_grouped_consolidation_moves_whole_units(per: str) -> None:
    """Per neuron (row) or per layer, one synapse at θ takes the others with it."""
    lw = jnp.zeros((2, 3), jnp.float64)
    s = jnp.asarray([[0.01, 0.0, -0.02], [0.03, 0.04, 0.0]], jnp.float64)
    delta = jnp.asarray([1.0, 0.0], jnp.float64)
    pre = jnp.asarray([-1.0, 0.0, 0.0], jnp.float64)
    new_l, new_s, e, _ = cache_layer(
        lw, s, delta, pre, LayerSelection(), 1.0, threshold=0.5, decay=1.0, cost=0.0, per=per
    )
    # row 0 reaches θ at synapse (0, 0): s = 1.01
    moved_rows = [0] if per == "neuron" else [0, 1]
    expected_l = np.zeros((2, 3))
    expected_s = np.array([[1.01, 0.0, -0.02], [0.03, 0.04, 0.0]])
    for r in moved_rows:
        expected_l[r] = expected_s[r]
        expected_s[r] = 0.0
    np.testing.assert_allclose(np.asarray(new_l), expected_l, atol=1e-15)
    np.testing.assert_allclose(np.asarray(new_s), expected_s, atol=1e-15)
    # synapses with s = 0 consolidate nothing and are not counted
    assert int(e.m0) == int(np.count_nonzero(expected_l))


def test_network_computes_with_persistent_plus_transient() -> None:
    model = caching(threshold=0.1)
    params = Params(jnp.asarray([[1.0, 2.0], [3.0, 4.0]]), jnp.asarray([[5.0, 6.0, 7.0]]))
    transient = Params(jnp.asarray([[0.0, 0.5], [-0.25, 0.0]]), jnp.asarray([[0.0, 0.0, 1.0]]))
    state = CachingState(transient, ())
    assert model.weights is not None and model.parts is not None
    for w, expected in zip(
        model.weights(params, state), ([[1.0, 2.5], [2.75, 4.0]], [[5.0, 6.0, 8.0]]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(w), expected)
    l_part, s_part = model.parts(params, state)
    assert l_part is params and s_part is transient


def test_summary_reports_what_remains() -> None:
    model = caching(threshold=0.1)
    transient = Params(jnp.asarray([[0.0, 0.5], [-0.25, 0.0]]), jnp.asarray([[0.0, 0.0, 1.0]]))
    assert model.summary is not None
    summary = model.summary(transient, CachingState(transient, ()))
    assert summary == {
        "hidden": {"remaining_m0": 2, "remaining_m1": 0.75},
        "output": {"remaining_m0": 1, "remaining_m1": 1.0},
    }


def test_run_records_synapse_summary_and_transient_cost() -> None:
    from thrifty import data
    from thrifty.train import run

    config = RunConfig(
        dataset="synthetic",
        n_hidden=16,
        synapses="caching:threshold=0.02,cost=0.001",
        budget_epochs=0.5,
        lr=0.05,
    )
    record = run(config, data.synthetic(n_train=2000))
    summary = record["synapse_summary"]
    assert set(summary) == {"hidden", "output"}
    assert summary["hidden"]["remaining_m0"] > 0 and summary["hidden"]["remaining_m1"] > 0
    total = record["energy"]["total"]
    assert total["m0"] > 0 and 0 < total["m1_transient"] < total["m1"]


def test_registered_with_parameters() -> None:
    entry = SYNAPSE_MODELS["caching"]
    assert [p.name for p in entry.params] == [
        "threshold",
        "tau",
        "cost",
        "per",
        "consolidate_units",
    ]
    model = build_synapses("caching:threshold=0.1,tau=1000,cost=0.001,per=synapse")
    assert model.name == "caching" and model.weights is not None


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("caching:threshold=0", "threshold"),
        ("caching:threshold=-1", "threshold"),
        ("caching:threshold=0.1,tau=0", "tau"),
        ("caching:threshold=0.1,tau=-5", "tau"),
        ("caching:threshold=0.1,cost=-0.1", "cost"),
        ("caching:threshold=0.1,consolidate_units=21", "consolidate_units"),
        ("caching:threshold=0.1,consolidate_units=-1", "consolidate_units"),
        ("caching:threshold=0.1,consolidate_units=inf", "consolidate_units"),
        ("caching:threshold=0.1,consolidate_units=nan", "consolidate_units"),
        ("caching:threshold=0.1,per=column", "per"),
        ("caching", "threshold"),
    ],
)
def test_bad_parameters_fail_before_any_work(spec: str, names: str) -> None:
    with pytest.raises(RuleError, match=names):
        check_config(RunConfig(dataset="synthetic", n_hidden=20, synapses=spec))


def test_factory_checks_concrete_numbers() -> None:
    with pytest.raises(RuleError, match="threshold"):
        caching(threshold=0.0)
    with pytest.raises(RuleError, match="cost"):
        caching(threshold=0.1, cost=-1.0)


@pytest.mark.parametrize(
    ("synapses", "rules"),
    [
        ("caching:threshold=0.04,tau=30,cost=0.01", ("subnet:units=5",)),
        ("caching:threshold=0.05,tau=30,cost=0.01,per=neuron", ("neuron-mask:fraction=0.4",)),
        ("caching:threshold=0.04,tau=30,cost=0.01", ("lazy", "subnet:units=4")),
        ("caching:threshold=0.05,tau=20,cost=0.01", ()),
    ],
)
def test_gathering_active_units_matches_reference(
    synapses: str, rules: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stepping only the active units' rows (subnet, few live units) changes nothing;
    with more active units than the capacity every row is stepped."""
    monkeypatch.setattr(caching_module, "row_capacity", lambda n_post: 6 if n_post > 10 else None)
    reference_rules = {
        ("subnet:units=5",): lambda st: ref.subnet(_units(st)),
        ("neuron-mask:fraction=0.4",): lambda st: ref.neuron_mask(_units(st)),
        ("lazy", "subnet:units=4"): lambda st: ref.chain([ref.lazy(), ref.subnet(_units(st[1]))]),
        (): lambda st: None,
    }
    jax.clear_caches()
    try:
        initial, final, _ = _compare(synapses, rules, reference_rules[rules])
    finally:
        jax.clear_caches()
    live = np.asarray(final.synapse_state.live[0])
    if rules:  # only the plastic units were stepped: the others are known to hold nothing
        state = initial.rule_state
        state = state if hasattr(state, "units") else state[-1]
        np.testing.assert_array_equal(live, _units(state))
    else:  # more active units than the capacity: every row was stepped
        assert live.all()


@pytest.mark.parametrize("per", ["synapse", "neuron", "layer"])
def test_consolidating_few_rows_matches_reference(
    per: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consolidating only the rows that reach θ when few do (as on the CPU for large
    layers), and every row when more do than the capacity."""
    monkeypatch.setattr(
        caching_module, "consolidation_capacity", lambda n: 8 if n == N_HIDDEN else None
    )
    jax.clear_caches()
    try:
        _compare(f"caching:threshold=0.06,tau=20,cost=0.01,per={per}", (), lambda st: None)
    finally:
        jax.clear_caches()


@pytest.mark.parametrize("per", ["synapse", "neuron", "layer"])
@pytest.mark.parametrize("reaching", [0, 1, 3, 9])
@pytest.mark.parametrize("eligibility", ["all", "post", "pre"])
def test_rare_consolidation_step_equals_dense_step(
    per: str, reaching: int, eligibility: str
) -> None:
    """The CPU step that consolidates only the rows at θ equals the one-chain step,
    whether no row, one row (the smaller gathered size of 1 row), a few rows (the
    capacity of 8 rows) or more rows than the capacity reach θ."""
    rng = np.random.default_rng(reaching)
    n_post, n_pre = 9, 7
    persistent = jnp.asarray(rng.normal(0.0, 0.3, (n_post, n_pre)))
    transient = jnp.asarray(rng.uniform(-0.05, 0.05, (n_post, n_pre)))
    rows = rng.choice(n_post, reaching, replace=False)
    # one synapse in each chosen row well above θ = 0.1, after the update and decay
    transient = transient.at[rows, rng.integers(0, n_pre, reaching)].set(0.5)
    delta = jnp.asarray(rng.normal(0.0, 0.1, n_post))
    pre = jnp.asarray(rng.uniform(0.0, 1.0, n_pre))
    post_mask = jnp.asarray((np.arange(n_post) % 3 != 0).astype(float))
    pre_mask = jnp.asarray((np.arange(n_pre) % 2 == 0).astype(float))
    kw: dict[str, Any] = dict(
        x=pre,
        sel=LayerSelection(),
        lr=0.1,
        threshold=0.1,
        decay=0.9,
        cost=0.01,
        per=per,
        eligible_pre=pre_mask if eligibility == "pre" else None,
        alphas=(0.5, 2.0),
    )
    post = post_mask if eligibility == "post" else None
    want = caching_module._dense_step(persistent, transient, delta, post, **kw)
    got = caching_module._rare_step(
        persistent, transient, delta, post, capacity=0 if per == "layer" else 8, **kw
    )
    for a, b in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-15)
    for name in ("m0", "m0_potentiation"):
        assert int(getattr(got[2], name)) == int(getattr(want[2], name))
    for name in ("m1", "m1_potentiation", "m_alpha", "transient"):
        np.testing.assert_allclose(getattr(got[2], name), getattr(want[2], name), rtol=1e-12)
    if reaching and eligibility == "all":
        assert int(want[2].m0) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.01, 0.125, 3.0, 1e-35])
def test_row_sums_and_reaching_are_exact_at_the_threshold(
    dtype: type[np.floating], threshold: float
) -> None:
    """The one-pass row sums and rows at θ equal a direct count, also for |s| exactly
    at θ and exactly one number below it, with and without eligibility masks."""
    theta = dtype(threshold)
    below = np.nextafter(theta, dtype(0))
    rng = np.random.default_rng(7)
    n_rows, n_pre = 8, 785
    s = (rng.uniform(-0.9, 0.9, (n_rows, n_pre)) * theta).astype(dtype)
    s[1, 3] = theta  # at θ
    s[2, 4] = -below  # just below θ: does not reach
    s[3, 5] = -theta
    s[4, :] = below * np.where(np.arange(n_pre) % 2 == 0, 1, -1)  # a full row just below θ
    s[5, 6] = theta * 4
    post = (np.arange(n_rows) != 3).astype(dtype)
    pre = (np.arange(n_pre) != 6).astype(dtype)
    for eligible_post, eligible_pre in [(None, None), (post, None), (None, pre), (post, pre)]:
        eligible = np.ones((n_rows, n_pre), bool)
        if eligible_post is not None:
            eligible &= eligible_post[:, None] != 0
        if eligible_pre is not None:
            eligible &= eligible_pre[None, :] != 0
        want_reaching = np.any((np.abs(s) >= theta) & eligible, axis=1)
        # compiled, as in training: XLA's simplifications must not change the result
        held, reaching = jax.jit(caching_module._row_sums_and_reaching)(
            jnp.asarray(s),
            jnp.asarray(theta),
            None if eligible_post is None else jnp.asarray(eligible_post),
            None if eligible_pre is None else jnp.asarray(eligible_pre),
        )
        if threshold < 1e-30 and dtype == np.float32:  # every row is checked instead
            assert np.asarray(reaching).all()
            continue
        np.testing.assert_array_equal(np.asarray(reaching), want_reaching)
        want_held = np.where(want_reaching, 0, np.abs(s).sum(axis=1, dtype=np.float64))
        np.testing.assert_allclose(
            np.asarray(held), want_held, rtol=1e-5 if dtype == np.float32 else 1e-12
        )


@pytest.mark.parametrize("n_live", [0, 3, 6, 9])
def test_live_rows_product_equals_full_product(n_live: int) -> None:
    """The forward product of the transient weights over the live rows only (at most
    6 here) equals the full product; with more live rows every row is multiplied."""
    rng = np.random.default_rng(n_live)
    n_post, n_pre = 12, 7
    live = np.zeros(n_post, bool)
    live[rng.choice(n_post, n_live, replace=False)] = True
    s = np.where(live[:, None], rng.normal(0.0, 0.1, (n_post, n_pre)), 0.0)
    x = rng.uniform(0.0, 1.0, n_pre)
    got = caching_module.live_rows_product(jnp.asarray(s), jnp.asarray(live), jnp.asarray(x), 6)
    np.testing.assert_allclose(np.asarray(got), s @ x, rtol=1e-12, atol=0)
    assert np.all(np.asarray(got)[~live] == 0)


@pytest.mark.parametrize("n_pre", [785, 4095, 4096, 5000])
def test_event_counts_are_exact_on_either_side_of_the_packing_limit(n_pre: int) -> None:
    """The counts of consolidations and of those with s > 0, packed two to a float for
    rows shorter than 4096 and counted apart for longer ones (the output layer of a
    network of 4096 hidden units or more)."""
    from thrifty.caching import _event_counts

    rng = np.random.default_rng(n_pre)
    events = rng.random((6, n_pre)) < 0.9
    positive = rng.random((6, n_pre)) < 0.5
    events[0] = positive[0] = True  # a full row: the largest packed count
    count, count_positive = _event_counts(jnp.asarray(events), jnp.asarray(positive))
    assert int(count) == int(events.sum())
    assert int(count_positive) == int((events & positive).sum())
