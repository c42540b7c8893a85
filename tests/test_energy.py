"""Energy meters: the factored pricing against dense matrices, the exact ledger, the
minimal energy and the inefficiency.

``price_layer`` never forms the update matrix; here every selection form is written
out densely in NumPy (from the rule of :class:`~thrifty.rules.base.LayerSelection`:
synapse ``(i, j)`` is selected when ``post[i] != 0``, ``pre[j] != 0``,
``synapses[i, j]``, ``i · n_pre + j`` is listed and ``|delta_i| >= threshold[j]``)
and priced with ``energy.m_alpha_dense``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty.energy import (
    Ledger,
    StepEnergy,
    apply_layer,
    dense_selection,
    inefficiency,
    m_alpha_dense,
    minimal_energy,
    price_layer,
)
from thrifty.rules.base import NO_SYNAPSE, LayerSelection
from util import numpy_selection

LR = 0.05
ALPHAS = (0.5, 2.0)
N_POST, N_PRE = 7, 6

_price = jax.jit(price_layer, static_argnames=("alphas",))
_PRICED: dict[str, Any] = {}


def _price_forms(dtype: str) -> dict[str, Any]:
    """Every form priced in one compiled call per dtype."""
    if dtype not in _PRICED:
        delta, pre = (jnp.asarray(v, dtype) for v in _vectors())
        sels = {name: _cast(sel, jnp.dtype(dtype)) for name, sel in _forms().items()}
        price_all = jax.jit(
            lambda d, x, s: {k: price_layer(d, x, v, LR, ALPHAS) for k, v in s.items()}
        )
        _PRICED[dtype] = price_all(delta, pre, sels)
    return _PRICED[dtype]


_apply = jax.jit(apply_layer)


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    """Error and activity with zeros, a tie in |delta| and both signs."""
    rng = np.random.default_rng(3)
    delta = rng.normal(size=N_POST)
    delta[[1, 4]] = 0.0
    delta[5] = -delta[2]  # |delta_5| == |delta_2|
    pre = rng.normal(size=N_PRE)
    pre[2] = 0.0
    pre[-1] = 1.0  # bias input
    return delta, pre


def _forms() -> dict[str, LayerSelection]:
    rng = np.random.default_rng(4)
    delta, _ = _vectors()
    post = np.array([1, 1, 0, 1, 1, 1, 0], float)
    pre = np.array([1, 0, 1, 1, 1, 1], float)
    synapses = rng.random((N_POST, N_PRE)) < 0.5
    a = np.abs(delta)
    # thresholds equal to some |delta| (the >= boundary), 0 (everything), inf (nothing)
    threshold = np.array([a[2], 0.0, a[0], np.inf, a[6], a[3]])
    # about half the synapses as ascending flat indices, padded (as a rule's list is)
    chosen = np.flatnonzero(rng.random(N_POST * N_PRE) < 0.5)
    listed = np.concatenate([chosen, np.full(5, NO_SYNAPSE)]).astype(np.int32)
    return {
        "none": LayerSelection(),
        "post": LayerSelection(post=post),
        "pre": LayerSelection(pre=pre),
        "post+pre": LayerSelection(post=post, pre=pre),
        "synapses": LayerSelection(synapses=synapses),
        "threshold": LayerSelection(threshold=threshold),
        "synapses+threshold": LayerSelection(synapses=synapses, threshold=threshold),
        "everything": LayerSelection(post=post, pre=pre, synapses=synapses, threshold=threshold),
        "listed": LayerSelection(listed=listed),
        "listed+threshold": LayerSelection(listed=listed, threshold=threshold),
        "listed+synapses": LayerSelection(synapses=synapses, listed=listed),
        "listed, everything": LayerSelection(
            post=post, pre=pre, threshold=threshold, listed=listed
        ),
    }


def _dense_dw(delta: np.ndarray, pre: np.ndarray, sel: LayerSelection, lr: float) -> np.ndarray:
    dw = -lr * np.outer(delta, pre)
    return np.where(numpy_selection(delta, pre, sel), dw, 0.0)


def _cast(sel: LayerSelection, dtype: jnp.dtype) -> LayerSelection:
    def conv(v: np.ndarray | None) -> jax.Array | None:
        if v is None:
            return None
        return jnp.asarray(v) if v.dtype.kind in "bi" else jnp.asarray(v, dtype)

    return LayerSelection(*(conv(None if v is None else np.asarray(v)) for v in sel))


@pytest.mark.parametrize("lr", [1e-3, 1e3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_m_alpha_holds_where_the_learning_rate_to_the_alpha_does_not(dtype: str, lr: float) -> None:
    """η = 10⁻³ with errors near 10³, or η = 10³ with errors near 10⁻³, make updates
    near 1: η^α underflows or overflows (α = 150 in float64, 20 in float32) though
    Σ|Δw|^α does not, in every form of selection."""
    alpha = 150.0 if dtype == "float64" else 20.0
    with np.errstate(over="ignore"):
        assert np.asarray(lr, dtype) ** alpha in (0, np.inf)
    delta, pre = _vectors()
    delta, pre = (delta / lr).astype(dtype).astype(float), pre.astype(dtype).astype(float)
    forms = {k: _cast(v, jnp.dtype(dtype)) for k, v in _forms().items()}
    priced = jax.jit(lambda d, x, s: {k: price_layer(d, x, v, lr, (alpha,)) for k, v in s.items()})(
        jnp.asarray(delta, dtype), jnp.asarray(pre, dtype), forms
    )
    nonzero = 0
    for form, sel in forms.items():
        want = m_alpha_dense(_dense_dw(delta, pre, sel, lr), alpha)
        nonzero += want > 0
        assert want < np.finfo(dtype).max, form  # 0 where the form selects nothing
        got = float(priced[form].m_alpha[0])
        assert got == pytest.approx(want, rel=1e-12 if dtype == "float64" else 2e-5), form
    assert nonzero >= len(forms) - 3  # the thresholds of three forms may select nothing


def test_m_alpha_of_a_synapse_matrix_is_summed_pair_by_pair() -> None:
    """A synapse matrix that leaves out the largest pair: M_α is as float32 holds the
    selected pairs' Σ|Δw|^α, whatever the left-out pair's |Δw|^α (a scale taken from it
    overflows) and whatever each factor's power alone."""
    f32 = jnp.float32

    def m_alpha(d: list[float], x: list[float], chosen: list[list[bool]], alpha: float) -> float:
        sel = LayerSelection(synapses=jnp.asarray(chosen))
        e = _price(jnp.asarray(d, f32), jnp.asarray(x, f32), sel, 0.9, (alpha,))
        return float(e.m_alpha[0])

    # selected terms about 1e-174: 0 in float32 (not inf · 0)
    assert m_alpha([1.5, 0.1], [1.5, 1.0], [[False, False], [True, True]], 200.0) == 0.0
    # (0.9 · 2^-3 · 2^7)^20 = 1.2e24 beside a left-out (0.9 · 2^15)^20
    got = m_alpha([2.0**8, 2.0**-3], [2.0**7, 1.0], [[False, False], [True, False]], 20.0)
    assert got == pytest.approx((0.9 * 2.0**4) ** 20, rel=1e-5)
    # (0.9 · 2^10)^10 = 1.3e30 beside a left-out (0.9 · 2^20)^10, which overflows
    got = m_alpha([2.0**10, 1.0], [2.0**10, 1.0], [[False, True], [False, False]], 10.0)
    assert got == pytest.approx((0.9 * 2.0**10) ** 10, rel=1e-5)
    # the one selected pair's unit is far below the largest: its (1e-20)^2 underflows
    # while the scale (0.9 · 1e18)^2 is finite and the term (0.9 · 1e-2)^2 is not small
    got = m_alpha([1e9, 1e-11], [1e9, 1.0], [[False, False], [True, False]], 2.0)
    assert got == pytest.approx((0.9 * 1e-2) ** 2, rel=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_factored_m_alpha_holds_where_the_largest_update_is_flushed_to_zero(dtype: str) -> None:
    """η·D·X below the smallest normal number, which the CPU flushes to zero: for α < 1,
    M_α is far from 0 (here about 0.5 per synapse at α = 0.01), and it is priced so."""
    tiny = float(np.finfo(dtype).tiny)
    d = jnp.asarray([0.5, -0.25, 0.125], dtype)
    x = jnp.asarray([1.0, 0.5, -0.75, 0.0], dtype)
    lr = tiny * 1.5  # η·D·X = 0.75 · tiny
    for alpha in (0.01, 0.5, 1.0):
        got = float(_price(d, x, LayerSelection(), lr, (alpha,)).m_alpha[0])
        dw = lr * np.abs(np.outer(np.asarray(d, float), np.asarray(x, float)))
        want = float(np.sum(dw[dw != 0] ** alpha))
        assert want > 0 and got == pytest.approx(want, rel=1e-6 if dtype == "float64" else 1e-4)


def test_m_alpha_of_a_synapse_matrix_prices_products_the_cpu_flushes_to_zero() -> None:
    """Selected updates below float32's smallest normal number (1e-40 here) are counted
    in M0; M_α of a synapse matrix prices them too (1e-40^0.01 = 0.4), from its factors,
    as selections by masks and thresholds and lists of synapses do."""
    f32 = jnp.float32
    d, x = jnp.asarray([1e-20, 5e-21], f32), jnp.asarray([1e-20, 1.0, 0.5], f32)
    chosen = jnp.asarray([[True, True, False], [True, False, True]])
    e = _price(d, x, LayerSelection(synapses=chosen), 1.0, (0.01, 1.0))
    dw = np.abs(np.outer(np.asarray(d, float), np.asarray(x, float)))[np.asarray(chosen)]
    assert int(e.m0) == 4 and float(e.m_alpha[0]) > 1.5
    assert float(e.m_alpha[0]) == pytest.approx(np.sum(dw**0.01), rel=1e-5)
    assert float(e.m_alpha[1]) == pytest.approx(np.sum(dw), rel=1e-5)
    # beside an α whose least term is truly below float32's range (α = 1: 1e-40 here),
    # which needs no sum pair by pair, α = 0.01 still prices the flushed product; and
    # so does a list of the same synapses
    d, x = jnp.asarray([0.9, 1e-25], f32), jnp.asarray([1e-13, 1.0], f32)
    dw = 0.01 * np.abs(np.outer(np.asarray(d, float), np.asarray(x, float))).ravel()
    every = jnp.ones((2, 2), bool)
    for sel in (LayerSelection(synapses=every), LayerSelection(listed=jnp.arange(4))):
        e = _price(d, x, sel, 0.01, (0.01, 1.0))
        assert float(e.m_alpha[0]) == pytest.approx(np.sum(dw**0.01), rel=1e-5)
        assert float(e.m_alpha[1]) == pytest.approx(np.sum(dw), rel=1e-5)


def test_m_alpha_leaves_out_inputs_whose_threshold_no_unit_reaches() -> None:
    """A threshold that no unit reaches at the largest input: that input is selected by
    no synapse and sets no scale (its (x/X)^α would overflow, and every selected term
    underflow, were X taken from it)."""
    for dtype, big in ((jnp.float64, 1e200), (jnp.float32, 1e30)):
        d, x = jnp.asarray([1.0, 0.5], dtype), jnp.asarray([big, 1.0], dtype)
        sel = LayerSelection(threshold=jnp.asarray([jnp.inf, 0.0], dtype))
        got = float(_price(d, x, sel, 1.0, (2.0,)).m_alpha[0])
        assert got == pytest.approx(1.0**2 + 0.5**2, rel=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("form", sorted(_forms()))
def test_price_layer_matches_dense(form: str, dtype: str) -> None:
    delta, pre = _vectors()
    sel = _cast(_forms()[form], jnp.dtype(dtype))
    # the dense reference prices exactly the (rounded) inputs the meter sees
    delta, pre = delta.astype(dtype).astype(float), pre.astype(dtype).astype(float)
    dw = _dense_dw(delta, pre, sel, LR)
    e = _price_forms(dtype)[form]
    rtol = 1e-12 if dtype == "float64" else 2e-6
    assert int(e.m0) == m_alpha_dense(dw, 0)
    assert int(e.m0_potentiation) == m_alpha_dense(np.maximum(dw, 0), 0)
    np.testing.assert_allclose(float(e.m1), m_alpha_dense(dw, 1), rtol=rtol)
    np.testing.assert_allclose(
        float(e.m1_potentiation), m_alpha_dense(np.maximum(dw, 0), 1), rtol=rtol, atol=1e-300
    )
    for i, alpha in enumerate(ALPHAS):
        np.testing.assert_allclose(float(e.m_alpha[i]), m_alpha_dense(dw, alpha), rtol=rtol)
    assert float(e.transient) == 0.0
    # the selection as a matrix, and the one fused pass that applies it
    sel64 = _cast(sel, jnp.float64)
    np.testing.assert_array_equal(
        np.asarray(dense_selection(jnp.asarray(delta), jnp.asarray(pre), sel64)),
        numpy_selection(delta, pre, sel),
    )
    w = np.random.default_rng(5).normal(size=(N_POST, N_PRE))
    new = _apply(jnp.asarray(w), jnp.asarray(delta), jnp.asarray(pre), sel64, LR)
    np.testing.assert_allclose(np.asarray(new), w + dw, rtol=0, atol=1e-15)


def test_every_form_selects_something_and_not_everything() -> None:
    """The fixture is informative: each restricted form leaves out some non-zero updates."""
    delta, pre = _vectors()
    nonzero = np.outer(delta != 0, pre != 0)
    for name, sel in _forms().items():
        chosen = numpy_selection(delta, pre, sel) & nonzero
        assert chosen.any(), name
        assert (chosen.sum() < nonzero.sum()) == (name != "none"), name


def test_selected_zero_entries_cost_nothing() -> None:
    """A selection may cover entries whose update is 0 (delta_i or pre_j zero): not counted."""
    delta = jnp.array([0.0, 2.0, 0.0])
    pre = jnp.array([0.0, -1.0, 1.0])
    e = _price(delta, pre, LayerSelection(), LR, ALPHAS)
    # only delta_1 != 0, with pre_1 and pre_2: two updates of size 0.05 * 2 * 1 = 0.1
    assert int(e.m0) == 2
    assert float(e.m1) == pytest.approx(0.2)
    assert np.asarray(dense_selection(delta, pre, LayerSelection())).sum() == 9


def test_potentiation_only_hand_example() -> None:
    """delta = (1, -2, 0), pre = (3, -1, 1), lr = 0.5; Δw = −0.5 · delta ⊗ pre:

    row 0: (-1.5,  0.5, -0.5)
    row 1: ( 3.0, -1.0,  1.0)
    row 2: ( 0,    0,    0  )

    M0 = 6, M1 = 1.5 + 0.5 + 0.5 + 3 + 1 + 1 = 7.5; potentiation (Δw > 0): 0.5, 3, 1,
    so M0⁺ = 3 and M1⁺ = 4.5; M_2 = 2.25 + 0.25 + 0.25 + 9 + 1 + 1 = 13.75;
    M_0.5 = √1.5 + 2·√0.5 + √3 + 2.
    """
    e = _price(
        jnp.array([1.0, -2.0, 0.0]), jnp.array([3.0, -1.0, 1.0]), LayerSelection(), 0.5, (2.0, 0.5)
    )
    assert (int(e.m0), int(e.m0_potentiation)) == (6, 3)
    assert float(e.m1) == pytest.approx(7.5, rel=1e-14)
    assert float(e.m1_potentiation) == pytest.approx(4.5, rel=1e-14)
    assert float(e.m_alpha[0]) == pytest.approx(13.75, rel=1e-14)
    root = math.sqrt(1.5) + 2 * math.sqrt(0.5) + math.sqrt(3) + 2
    assert float(e.m_alpha[1]) == pytest.approx(root, rel=1e-14)
    # restricted to row 0 (post mask): Δw = (-1.5, 0.5, -0.5): M0⁺ = 1, M1⁺ = 0.5
    e = _price(
        jnp.array([1.0, -2.0, 0.0]),
        jnp.array([3.0, -1.0, 1.0]),
        LayerSelection(post=jnp.array([1.0, 0.0, 1.0])),
        0.5,
        (2.0, 0.5),
    )
    assert (int(e.m0), int(e.m0_potentiation)) == (3, 1)
    assert (float(e.m1), float(e.m1_potentiation)) == pytest.approx((2.5, 0.5), rel=1e-14)


# ------------------------------------------------------------------------------ ledger


def _steps(m0: np.ndarray, m1: np.ndarray | None = None) -> StepEnergy:
    t = m0.shape[0]
    m1 = np.ones(t, np.float32) if m1 is None else m1
    return StepEnergy(
        m0=m0,
        m0_potentiation=m0 // 2,
        m1=m1,
        m1_potentiation=m1 / 2,
        m_alpha=np.ones((t, 1), np.float32),
        transient=np.zeros(t, np.float32),
    )


def test_ledger_is_exact_beyond_int32_and_float64_integers() -> None:
    """Per-step int32 counts near 2**31 over millions of steps: the total passes 2**31
    (int32) and 2**53 (the last integer a float64 holds exactly) and stays exact."""
    big = np.full(2**21, 2**31 - 1, np.int32)
    small = np.array([7, 1], np.int32)
    ledger = Ledger(2, alphas=(2.0,))
    exact = [0, 0]
    exact_pot = [0, 0]
    for _ in range(3):
        ledger.add((_steps(big), _steps(small)))
        exact[0] += 2**21 * (2**31 - 1)
        exact[1] += 8
        exact_pot[0] += 2**21 * ((2**31 - 1) // 2)
        exact_pot[1] += 3
    ledger.add((_steps(np.array([1], np.int32)), _steps(np.array([2**31 - 1], np.int32))))
    exact[0] += 1
    exact[1] += 2**31 - 1
    exact_pot[1] += (2**31 - 1) // 2
    assert exact[0] > 2**53 and exact[0] % 2 == 1
    assert int(float(exact[0])) != exact[0]  # a float64 accumulator would be off
    assert ledger.layers[0].m0 == exact[0]
    assert ledger.layers[1].m0 == exact[1] > 2**31
    assert ledger.layers[0].m0_potentiation == exact_pot[0]
    assert ledger.layers[1].m0_potentiation == exact_pot[1]
    assert ledger.m0 == exact[0] + exact[1]
    record = ledger.to_dict()
    assert record["total"]["m0"] == exact[0] + exact[1]
    assert record["total"]["m0_potentiation"] == exact_pot[0] + exact_pot[1]
    assert record["hidden"]["m0"] == exact[0]
    assert isinstance(record["hidden"]["m0"], int)
    assert record["output"]["m1"] == pytest.approx(7.0)  # 3 chunks of 2 steps, then 1 step
    assert record["hidden"]["m1"] == pytest.approx(3 * 2**21 + 1)
    assert record["total"]["m_alpha"]["2.0"] == pytest.approx(3 * 2**21 + 1 + 7)


def test_ledger_counts_only_the_steps_taken() -> None:
    steps = _steps(np.array([2**31 - 1, 2**31 - 1, 5, 9], np.int32))
    ledger = Ledger(1)
    ledger.add((steps,), upto=2)
    assert ledger.m0 == 2 * (2**31 - 1)
    ledger.add((steps,), upto=0)
    assert ledger.m0 == 2 * (2**31 - 1)
    ledger.add((steps,))
    assert ledger.m0 == 4 * (2**31 - 1) + 14
    assert ledger.m1 == pytest.approx(6.0)


def test_ledger_keeps_every_meter_apart_per_layer_and_in_total() -> None:
    """Each meter of each layer has its own per-step values (powers of two, so that any
    meter added into another, or a step counted twice or not at all, changes a sum);
    the ledger sums them per layer and in total, over the first ``upto`` steps."""

    def steps(scale: float) -> StepEnergy:
        base = np.array([1.0, 2.0, 4.0])
        return StepEnergy(
            m0=np.array([1, 2, 4], np.int32) * int(scale),
            m0_potentiation=np.array([8, 16, 32], np.int32) * int(scale),
            m1=np.float32(64 * scale) * base,
            m1_potentiation=np.float32(512 * scale) * base,
            m_alpha=np.stack([4096 * scale * base, 32768 * scale * base], axis=1),
            transient=np.float32(2**18 * scale) * base,
        )

    ledger = Ledger(2, alphas=(0.5, 2.0))
    ledger.add((steps(1), steps(2**20)), upto=2)  # steps 1 and 2 of 3 count: 3 units
    ledger.add((steps(1), steps(2**20)))  # all three: 7 units
    record = ledger.to_dict()
    for name, scale in (("hidden", 1), ("output", 2**20)):
        layer = record[name]
        assert layer["m0"] == 10 * scale
        assert layer["m0_potentiation"] == 80 * scale
        assert layer["m1"] == 640 * scale
        assert layer["m1_potentiation"] == 5120 * scale
        assert layer["m1_transient"] == 10 * 2**18 * scale
        assert layer["m_alpha"] == {"0.5": 40960 * scale, "2.0": 327680 * scale}
    both = 1 + 2**20
    assert record["total"] == {
        "m0": 10 * both,
        "m0_potentiation": 80 * both,
        "m1": 640 * both,
        "m1_potentiation": 5120 * both,
        "m1_transient": 10 * 2**18 * both,
        "m_alpha": {"0.5": 40960 * both, "2.0": 327680 * both},
    }
    assert ledger.m0 == 10 * both and ledger.m1 == 640 * both


def test_ledger_accepts_a_single_layer_step_energy() -> None:
    """``Ledger.add`` is documented to take ``StepEnergy | tuple[StepEnergy, ...]``."""
    ledger = Ledger(1)
    ledger.add(_steps(np.array([3, 4], np.int32)))
    assert ledger.m0 == 7


# ---------------------------------------------------------------------- minimal energy


def test_minimal_energy_and_inefficiency_by_hand() -> None:
    """hidden (0, 1 / 2, 3) → (0, 1.5 / 2, 2): two weights changed, by 0.5 and 1;
    output (1, 1, 1) → (1, 1, -1): one weight, by 2. M0_min = 3, M1_min = 3.5.
    Spent M0 = 12, M1 = 7 → inefficiency 4 and 2."""
    initial = [np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[1.0, 1.0, 1.0]])]
    final = [np.array([[0.0, 1.5], [2.0, 2.0]]), np.array([[1.0, 1.0, -1.0]])]
    least = minimal_energy(initial, final)
    assert least["hidden"] == {"m0": 2, "m1": 1.5}
    assert least["output"] == {"m0": 1, "m1": 2.0}
    assert least["total"] == {"m0": 3, "m1": 3.5}
    spent = {"total": {"m0": 12, "m1": 7.0}}
    assert inefficiency(spent, least) == {"m0": 4.0, "m1": 2.0}
    unchanged = minimal_energy(initial, initial)
    assert unchanged["total"] == {"m0": 0, "m1": 0.0}
    assert inefficiency(spent, unchanged) == {"m0": math.inf, "m1": math.inf}


def test_minimal_energy_counts_float32_changes_exactly() -> None:
    w0 = np.zeros((3, 4), np.float32)
    w1 = w0.copy()
    w1[0, 0] = np.float32(1e-30)  # tiny but non-zero: still a change
    w1[2, 3] = -0.25
    least = minimal_energy([w0, w0[:1]], [w1, w0[:1]])
    assert least["hidden"]["m0"] == 2
    assert least["hidden"]["m1"] == pytest.approx(0.25 + 1e-30)
    assert least["output"] == {"m0": 0, "m1": 0.0}
