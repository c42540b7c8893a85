"""Properties of selections and their prices over random vectors (hypothesis).

Vectors come from a pool that includes zeros and repeated values, so ties and empty
rows and columns are common. Shapes are fixed so each function compiles once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from test_conformance import LABEL, PARAMS, PARAMS_LIST, PROPOSAL, Case
from thrifty.energy import apply_layer, dense_selection, price_layer
from thrifty.network import LayerProposal
from thrifty.rules import build, intersect
from thrifty.rules.base import Context, LayerSelection
from thrifty.rules.library import CANDIDATE_PAIRS, first_passing, product_threshold, threshold_bits
from util import numpy_selection

N, M = 6, 5
LR = 0.25
SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

POOL = [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -0.5, -1.0, -2.0]
# magnitudes ≥ 1e-3: products never underflow, so "non-zero update" means d_i·x_j ≠ 0
_values = st.one_of(st.sampled_from(POOL), st.floats(1e-3, 4), st.floats(-4, -1e-3))


def _vector(n: int, values: Any = _values) -> Any:
    return st.lists(values, min_size=n, max_size=n).map(np.asarray)


_threshold = jax.jit(product_threshold)


def _selected(a: np.ndarray, b: np.ndarray, k: int, dtype: str) -> np.ndarray:
    a32, b32 = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    thr = np.asarray(_threshold(a32, b32, jnp.asarray(k)))
    return np.asarray(a32)[:, None] >= thr[None, :]


def _products(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    a, b = np.asarray(a, dtype).astype(float), np.asarray(b, dtype).astype(float)
    return np.outer(a, b)


_magnitude = st.one_of(st.just(0.0), st.floats(0.01, 100, allow_nan=False))


@SETTINGS
@given(
    a=_vector(N, _magnitude),
    b=_vector(M, _magnitude),
    k=st.integers(1, N * M),
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_product_threshold_selects_exactly_k_without_ties(
    a: np.ndarray, b: np.ndarray, k: int, dtype: str
) -> None:
    """Distinct non-zero products (relative gaps well above rounding): exactly the k
    largest pass; when k exceeds the non-zero products, all of them pass and no other."""
    p = _products(a, b, dtype)
    nonzero = np.sort(p[p > 0])
    assume(nonzero.size == 0 or np.all(np.diff(nonzero) > 1e-4 * nonzero[1:]))
    chosen = _selected(a, b, k, dtype)
    if k <= nonzero.size:
        assert chosen.sum() == k
        assert np.all(p[chosen] >= nonzero[-k])
    else:
        np.testing.assert_array_equal(chosen, p > 0)


@SETTINGS
@given(a=_vector(N), b=_vector(M), k=st.integers(1, N * M + 5))
def test_product_threshold_never_selects_fewer_than_k(a: np.ndarray, b: np.ndarray, k: int) -> None:
    """With ties and zeros: at least min(k, #non-zero products) pairs pass, none with a
    zero product, and every passing product is at least as large as every one that
    does not."""
    a, b = np.abs(a), np.abs(b)
    p = _products(a, b, "float64")
    chosen = _selected(a, b, k, "float64")
    n_nonzero = int((p > 0).sum())
    assert not np.any(chosen & (p == 0))
    assert chosen.sum() >= min(k, n_nonzero)
    if k >= n_nonzero:
        assert np.all(chosen[p > 0])
    if chosen.any() and (~chosen).any():
        assert p[chosen].min() >= p[~chosen].max() * (1 - 1e-12)


def _threshold_inputs(case: int, dtype: str, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """|delta|, |x| and k for one case of the threshold search (fixed shapes n, 785)."""
    rng = np.random.default_rng(case)
    a = np.abs(rng.normal(size=n)) * 10.0 ** rng.uniform(-3, 0)
    x = np.where(rng.random(785) < 0.2, rng.random(785), 0.0)  # MNIST-like: 80 % zeros
    x[-1] = 1.0  # the bias input
    kind = case % 6
    if kind == 1:  # ties among the errors and the inputs
        a, x = np.round(a * 20) / 20, np.round(x * 4) / 4
    elif kind == 2:  # a frozen half: zero errors
        a[rng.random(n) < 0.5] = 0.0
    elif kind == 3:  # tiny values: the pattern of a product is far from its own threshold's
        tiny = 1e-21 if dtype == "float32" else 1e-160
        a, x = a * tiny, x * tiny
    elif kind == 4:  # only the bias input
        x[:-1] = 0.0
    nonzero = int((a > 0).sum() * (x > 0).sum())
    k = [1, 7, nonzero // 20, nonzero - 3, nonzero, n * 785][case % 6]
    return a.astype(dtype), x.astype(dtype), max(int(k), 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threshold_bits_is_the_last_pattern_that_passes(dtype: str) -> None:
    """The search for τ ends where a bisection of every bit pattern ends: at the largest
    pattern whose threshold lets at least k pairs pass (the next one lets fewer), with
    zeros, ties, tiny values and k up to every pair. N = 600 has far more pairs than
    it ranks directly, so the bisection runs first."""
    itype = jnp.int64 if dtype == "float64" else jnp.int32
    n = 600
    assert n * 785 // 5 > CANDIDATE_PAIRS

    @jax.jit
    def search(a: jax.Array, b: jax.Array, k: jax.Array) -> tuple[jax.Array, ...]:
        a_sorted = jnp.sort(a)
        t = threshold_bits(a, a_sorted, b, k.astype(itype))
        end = jax.lax.bitcast_convert_type(jnp.max(a) * jnp.max(b), itype) + 1

        def count(bits: jax.Array) -> jax.Array:
            return jnp.sum(n - first_passing(bits, a_sorted, b))

        return t, end, count(t), count(t + 1), count(jnp.zeros((), itype))

    for case in range(18):
        a, x, k = _threshold_inputs(case, dtype, n)
        t, end, at, above, at_zero = (int(v) for v in search(a, x, jnp.asarray(k)))
        assert 0 <= t < max(end, 1)
        if at_zero < k:  # nothing lets k pass
            assert t == 0
            continue
        assert at >= k, case
        assert above < k or t == end - 1, case


# ------------------------------------------------------------ prices of selections

_price = jax.jit(price_layer, static_argnames=("alphas",))


@st.composite
def _selection(draw: Any, delta: np.ndarray) -> LayerSelection:
    """Every field present (one compiled shape) or none; threshold values taken from
    |delta| (ties with the >= boundary), 0 and inf."""
    if draw(st.booleans()):
        return LayerSelection()
    bits = st.lists(st.booleans(), min_size=N * M, max_size=N * M)
    cut = st.sampled_from([0.0, np.inf, *np.abs(delta).tolist()])
    return LayerSelection(
        post=jnp.asarray(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=N, max_size=N))),
        pre=jnp.asarray(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=M, max_size=M))),
        synapses=jnp.asarray(np.reshape(draw(bits), (N, M))),
        threshold=jnp.asarray(draw(st.lists(cut, min_size=M, max_size=M))),
    )


@SETTINGS
@given(data=st.data(), delta=_vector(N), pre=_vector(M))
def test_price_counts_only_selected_non_zero_updates(
    data: Any, delta: np.ndarray, pre: np.ndarray
) -> None:
    """M0 = selected entries with a non-zero update (selected zeros cost nothing);
    M1 = Σ|Δw| over the selection, its potentiation part over Δw > 0, M_α = Σ|Δw|^α;
    the selection written out in NumPy from its fields alone."""
    sel = data.draw(_selection(delta))
    e = _price(jnp.asarray(delta), jnp.asarray(pre), sel, LR, (0.5, 2.0))
    chosen = numpy_selection(delta, pre, sel)
    dw = np.where(chosen, -LR * np.outer(delta, pre), 0.0)
    assert int(e.m0) == int(np.count_nonzero(dw))
    assert int(e.m0_potentiation) == int(np.count_nonzero(dw > 0))
    assert float(e.m1) == pytest.approx(np.abs(dw).sum(), rel=1e-12, abs=1e-300)
    assert float(e.m1_potentiation) == pytest.approx(dw[dw > 0].sum(), rel=1e-12, abs=1e-300)
    size = np.abs(dw[dw != 0])
    np.testing.assert_allclose(
        np.asarray(e.m_alpha), [np.sum(size**0.5), np.sum(size**2)], rtol=1e-12, atol=1e-300
    )


@jax.jit
def _top_k(delta: jax.Array, pre: jax.Array, fraction: jax.Array) -> LayerSelection:
    lp = LayerProposal(delta, pre)
    proposal = PROPOSAL._replace(layers=(lp, PROPOSAL.layers[1]))
    rule = build(["top-k:fraction=0.1"], {"0.fraction": fraction})
    ctx = Context(step=jnp.asarray(0), label=jnp.asarray(0), key=jax.random.key(0))
    (sel, _), _ = rule.update(proposal, (), PARAMS, ctx)
    return sel


@SETTINGS
@given(delta=_vector(N), x=_vector(M - 1), fraction=st.floats(0.01, 1.0))
def test_top_k_selection_costs_only_non_zero_updates(
    delta: np.ndarray, x: np.ndarray, fraction: float
) -> None:
    """Top-k may select entries whose update is 0 (when k exceeds the non-zero
    products): they cost nothing, and at least min(k, #non-zero) updates are paid."""
    pre = np.append(x, 1.0)
    sel = _top_k(jnp.asarray(delta), jnp.asarray(pre), jnp.asarray(fraction))
    e = _price(jnp.asarray(delta), jnp.asarray(pre), sel, LR, ())
    nonzero = np.outer(delta != 0, pre != 0)
    chosen = numpy_selection(delta, pre, sel)
    assert int(e.m0) == int((chosen & nonzero).sum())
    k = max(int(np.floor(fraction * N * M + 0.5)), 1)
    assert int(e.m0) >= min(k, int(nonzero.sum()))
    assert 0 <= int(e.m0_potentiation) <= int(e.m0)
    assert 0 <= float(e.m1_potentiation) <= float(e.m1) * (1 + 1e-12)


# ----------------------------------------------------------------- zero proposals


@jax.jit
def _zero_energy(selection: Any, proposal: Any) -> list[jax.Array]:
    out = []
    for lp, sel in zip(proposal.layers, selection, strict=True):
        e = price_layer(lp.delta, lp.pre, sel, 0.01, (0.5,))
        out += [e.m0, e.m0_potentiation, e.m1, e.m1_potentiation, e.m_alpha[0]]
    return out


@pytest.mark.parametrize("zero", ["delta", "pre"])
@pytest.mark.parametrize(("name", "case"), PARAMS_LIST)
def test_zero_proposal_costs_nothing(name: str, case: Case | None, zero: str) -> None:
    """Every rule: when backprop proposes Δw = 0 (all errors 0, or all activities 0),
    its selection holds no NaN (a mask or threshold computed from all-zero errors or
    activities, e.g. by a division), nothing is paid and no weight moves. Pricing and
    applying multiply by the masks, so a NaN in them would show in both."""
    if case is None:
        pytest.fail(f"registered rule {name!r} has no entry in test_conformance.CASES")
    layers = tuple(
        lp._replace(**{zero: jnp.zeros_like(getattr(lp, zero))}) for lp in PROPOSAL.layers
    )
    proposal = PROPOSAL._replace(layers=layers)
    rule = build([case.spec])
    key = jax.random.key(4)
    state = rule.init(PARAMS, key)
    # a misclassified sample, so that lazy learning selects everything
    ctx = Context(step=jnp.asarray(1), label=jnp.asarray(LABEL), key=key)
    sel, _ = rule.update(proposal, state, PARAMS, ctx)
    for field in jax.tree.leaves(sel):
        assert not np.any(np.isnan(np.asarray(field, float))), sel
    assert [float(v) for v in _zero_energy(sel, proposal)] == [0.0] * 10
    for w, lp, layer_sel in zip(PARAMS, proposal.layers, sel, strict=True):
        moved = apply_layer(w, lp.delta, lp.pre, layer_sel, 0.01)
        np.testing.assert_array_equal(np.asarray(moved), np.asarray(w))


# ----------------------------------------------------------------------- intersect


@st.composite
def _any_selection(draw: Any) -> LayerSelection:
    """Each field present or absent at random."""

    def maybe(strategy: Any) -> Any:
        return draw(st.one_of(st.none(), strategy))

    floats01 = st.sampled_from([0.0, 1.0])
    return LayerSelection(
        post=maybe(_vector(N, floats01).map(jnp.asarray)),
        pre=maybe(_vector(M, floats01).map(jnp.asarray)),
        synapses=maybe(_vector(N * M, st.booleans()).map(lambda v: jnp.asarray(v.reshape(N, M)))),
        threshold=maybe(_vector(M, st.sampled_from([0.0, 0.5, 1.0, 2.0, np.inf])).map(jnp.asarray)),
    )


def _dense(delta: np.ndarray, pre: np.ndarray, sel: LayerSelection) -> np.ndarray:
    return np.asarray(dense_selection(jnp.asarray(delta), jnp.asarray(pre), sel))


@SETTINGS
@given(a=_any_selection(), b=_any_selection(), delta=_vector(N), pre=_vector(M))
def test_intersect_is_commutative_and_idempotent(
    a: LayerSelection, b: LayerSelection, delta: np.ndarray, pre: np.ndarray
) -> None:
    ab = intersect((a, a), (b, b))
    ba = intersect((b, b), (a, a))
    for x, y in zip(jax.tree.leaves(ab), jax.tree.leaves(ba), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert jax.tree.structure(ab) == jax.tree.structure(ba)
    both = _dense(delta, pre, a) & _dense(delta, pre, b)
    np.testing.assert_array_equal(_dense(delta, pre, ab[0]), both)
    np.testing.assert_array_equal(_dense(delta, pre, ba[1]), both)
    aa = intersect((a,), (a,))[0]
    np.testing.assert_array_equal(_dense(delta, pre, aa), _dense(delta, pre, a))
    assert jax.tree.structure(aa) == jax.tree.structure(a)
