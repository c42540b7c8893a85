"""The counting argument, power-law fits and the V1 extrapolation (thrifty.theory)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty import theory

RATIO = theory.N_INPUTS / theory.N_OUTPUTS  # 78.4


# ------------------------------------------------------------------ counting argument


@pytest.mark.parametrize("n_min", [1.0, 7.0, 30.0, 123.4])
def test_regimes_are_continuous_at_their_boundaries(n_min: float) -> None:
    for boundary in (n_min, RATIO * n_min):
        eps = boundary * 1e-9
        below = np.array([boundary - eps])
        above = np.array([boundary + eps])
        p1_lo, p2_lo = theory.optimal_fractions(below, n_min)
        p1_hi, p2_hi = theory.optimal_fractions(above, n_min)
        assert p1_lo == pytest.approx(p1_hi, rel=1e-6)
        assert p2_lo == pytest.approx(p2_hi, rel=1e-6)
        s_lo = theory.plastic_synapses(below, n_min)
        s_hi = theory.plastic_synapses(above, n_min)
        assert s_lo == pytest.approx(s_hi, rel=1e-6)


def test_regime_labels() -> None:
    n_min = 30.0
    got = theory.regime([10, 30, 31, 2352, 2353, 1e6], n_min)
    assert got.tolist() == [1, 1, 2, 2, 3, 3]


@settings(max_examples=200, deadline=None)
@given(
    n_min=st.floats(min_value=1.0, max_value=1e3),
    factor=st.floats(min_value=1.0, max_value=1e5),
)
def test_fractions_keep_n_min_paths_and_stay_in_range(n_min: float, factor: float) -> None:
    n = n_min * factor
    p1, p2 = theory.optimal_fractions(n, n_min)
    assert 0 < p1 <= 1 and 0 < p2 <= 1
    assert p1 * p2 * n == pytest.approx(n_min, rel=1e-9)


def test_everything_plastic_below_n_min() -> None:
    p1, p2 = theory.optimal_fractions([1, 10, 30], 30)
    assert p1.tolist() == [1, 1, 1] and p2.tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (20.0, 20.0 * 794),  # N ≤ N_min: N·794
        (300.0, 30 * 784 + 300 * 10),  # N_min·784 + N·10
        (1e5, 2 * math.sqrt(30 * 7840 * 1e5)),  # 2√(N_min·7840·N)
    ],
)
def test_plastic_synapses_match_the_closed_forms(n: float, expected: float) -> None:
    assert float(theory.plastic_synapses(n, 30.0)) == pytest.approx(expected, rel=1e-12)


def test_the_optimum_is_optimal() -> None:
    """No other (p1, p2) with p1·p2·N = N_min uses fewer plastic synapses."""
    n_min = 30.0
    for n in (100.0, 1000.0, 5000.0, 1e5):
        best = float(theory.plastic_synapses(n, n_min))
        p1 = np.geomspace(n_min / n, 1.0, 2001)
        p2 = n_min / (n * p1)
        ok = p2 <= 1
        cost = n * (p1[ok] * 784 + p2[ok] * 10)
        assert best <= cost.min() * (1 + 1e-6)


def test_layers_add_up_to_the_total() -> None:
    n = np.geomspace(10, 1e5, 50)
    hidden, output = theory.plastic_synapses_by_layer(n, 25.0)
    np.testing.assert_allclose(hidden + output, theory.plastic_synapses(n, 25.0))


def test_mask_energy_passes_through_its_reference_point() -> None:
    e = theory.mask_energy([100.0, 1000.0, 1e4], 30.0, n_ref=1000.0, energy_ref=5e9)
    assert e[1] == pytest.approx(5e9)
    assert e[0] < e[1] < e[2]


def test_invalid_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_min"):
        theory.optimal_fractions(100, 0)
    with pytest.raises(ValueError, match="n_hidden"):
        theory.optimal_fractions(0, 10)


def test_smallest_converging() -> None:
    n = [10, 10, 10, 20, 20, 20, 30, 30, 30]
    ok = [False, False, True, True, True, False, True, True, True]
    assert theory.smallest_converging(n, ok) == 20
    assert theory.smallest_converging(n, ok, quorum=1.0) == 30
    assert theory.smallest_converging([10, 20], [False, False]) is None


# ---------------------------------------------------------------------- power laws


def test_fit_recovers_an_exact_power_law() -> None:
    x = np.array([100, 300, 1000, 3000, 10_000], float)
    law = theory.fit_power_law(x, 3.0 * x**0.5)
    assert law.exponent == pytest.approx(0.5, abs=1e-12)
    assert law.prefactor == pytest.approx(3.0, rel=1e-10)
    np.testing.assert_allclose(law(x), 3.0 * x**0.5)


def test_fit_interval_covers_the_true_exponent() -> None:
    rng = np.random.default_rng(7)
    x = np.repeat(np.geomspace(100, 1e4, 6), 5)
    covered = 0
    trials = 200
    for _ in range(trials):
        y = 2.0 * x**0.8 * np.exp(0.1 * rng.standard_normal(x.size))
        law = theory.fit_power_law(x, y)
        lo, hi = law.exponent_ci
        assert lo < law.exponent < hi
        covered += lo <= 0.8 <= hi
    # A 95% interval covers the truth in about 95% of the trials.
    assert 0.88 <= covered / trials <= 0.995


def test_fit_band_contains_the_fit() -> None:
    x = np.geomspace(10, 1e4, 8)
    y = x**0.3 * np.exp(0.05 * np.random.default_rng(1).standard_normal(8))
    law = theory.fit_power_law(x, y)
    lo, hi = law.interval(x)
    assert np.all(lo < law(x)) and np.all(law(x) < hi)
    assert "[" in law.describe()


def test_two_points_give_no_interval() -> None:
    law = theory.fit_power_law([10, 100], [1, 10])
    assert law.exponent == pytest.approx(1.0)
    assert all(math.isnan(v) for v in law.exponent_ci)
    lo, _ = law.interval([1000])
    assert np.isnan(lo).all()


def test_fit_drops_unusable_points_and_rejects_too_few() -> None:
    law = theory.fit_power_law([10, 100, 1000, 5], [1, 10, 100, float("inf")])
    assert law.n_points == 3
    with pytest.raises(ValueError, match="two points"):
        theory.fit_power_law([10, 10], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        theory.fit_power_law([1, 2, 3], [1, 2])


# ------------------------------------------------------------------- extrapolation


def test_v1_maps_to_hidden_units_by_synapse_count() -> None:
    assert pytest.approx(4.5e10) == theory.V1_SYNAPSES
    n = float(theory.hidden_units_for(theory.V1_SYNAPSES))
    assert n == pytest.approx(4.5e10 / 794)
    assert float(theory.synapses_of(n)) == pytest.approx(4.5e10)


def test_extrapolation_of_a_square_root_law() -> None:
    x = np.geomspace(100, 1e4, 5)
    law = theory.fit_power_law(x, (x / 100) ** 0.5)
    ext = theory.extrapolate(law, 1.0)
    expected = math.sqrt(4.5e10 / 794 / 100)  # about 750: the paper's "about 700×"
    assert ext.ratio == pytest.approx(expected, rel=1e-9)
    assert 600 < ext.ratio < 900
    with pytest.raises(ValueError, match="minimum"):
        theory.extrapolate(law, 0.0)
