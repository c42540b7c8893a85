"""The sample order of a run: :class:`thrifty.train.Sampler`.

In ``"epoch"`` mode (the default protocol) the order is a sequence of random
permutations of the training set, and a take that straddles an epoch boundary
carries the rest of the epoch over, so every sample is seen exactly once per epoch
however the run cuts its chunks. In ``"replacement"`` mode (the reference protocol)
every index is an independent uniform draw. The order is a pure function of the seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.config import RunConfig
from thrifty.train import Sampler, seeds


def _sampler(n: int, mode: str = "epoch", seed: int = 0) -> Sampler:
    return Sampler(n, mode, np.random.SeedSequence(seed))


def _takes(sampler: Sampler, sizes: list[int]) -> np.ndarray:
    """The concatenation of takes of ``sizes``, each checked to be int32 of its size."""
    parts = []
    for size in sizes:
        part = sampler.take(size)
        assert part.dtype == np.int32 and part.shape == (size,)
        parts.append(part)
    return np.concatenate(parts)


def test_takes_straddling_an_epoch_see_every_index_once_per_epoch() -> None:
    """n = 10: take(7) then take(13) hold each index exactly twice, and each of the
    two epochs (first and last ten) is a permutation of range(10)."""
    order = _takes(_sampler(10), [7, 13])
    np.testing.assert_array_equal(np.bincount(order, minlength=10), np.full(10, 2))
    for epoch in order.reshape(2, 10):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(10))


@pytest.mark.parametrize(
    "sizes",
    [[3, 0, 17, 1, 9, 10], [1] * 30, [25, 5], [4, 4, 4, 4, 4, 4, 4, 2]],
    ids=["mixed", "ones", "more-than-an-epoch", "fours"],
)
def test_epochs_are_permutations_however_the_takes_are_cut(sizes: list[int]) -> None:
    """Whatever the take sizes (zero, one, more than an epoch), the order cut into
    consecutive blocks of n is a sequence of permutations, and it is the same order as
    one take of the whole length."""
    n = 10
    order = _takes(_sampler(n, seed=5), sizes)
    assert order.size % n == 0
    for epoch in order.reshape(-1, n):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    np.testing.assert_array_equal(order, _sampler(n, seed=5).take(order.size))


def test_epochs_are_ordered_differently() -> None:
    """Each epoch is a fresh permutation: of five epochs of 20 samples no two are equal
    and none is the identity."""
    epochs = _sampler(20, seed=1).take(100).reshape(5, 20)
    distinct = {tuple(e) for e in epochs}
    assert len(distinct) == 5
    assert not any(np.array_equal(e, np.arange(20)) for e in epochs)


def test_replacement_repeats_within_a_take_of_n() -> None:
    """With replacement, a take of n = 50 has repeated indices (and so misses some),
    where the epoch mode's take of n is a permutation."""
    n = 50
    drawn = _sampler(n, "replacement", seed=2).take(n)
    assert drawn.dtype == np.int32
    assert np.unique(drawn).size < n
    assert np.all((drawn >= 0) & (drawn < n))
    np.testing.assert_array_equal(np.sort(_sampler(n, seed=2).take(n)), np.arange(n))


def test_replacement_draws_are_uniform() -> None:
    """20 000 draws over n = 10: every count within 5 standard deviations of 2000,
    and the chi-squared statistic (9 degrees of freedom) below 30 (p ≈ 4e-4)."""
    n, draws = 10, 20_000
    counts = np.bincount(
        _takes(_sampler(n, "replacement", seed=3), [7, 13, draws - 20]), minlength=n
    )
    assert counts.sum() == draws and counts.size == n
    expected = draws / n
    sd = np.sqrt(draws * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(counts - expected) < 5 * sd), counts
    assert np.sum((counts - expected) ** 2 / expected) < 30


def test_replacement_takes_are_not_cut_into_epochs() -> None:
    """Takes with replacement do not depend on an epoch buffer: the order is the same
    whatever the take sizes, and a block of n is not a permutation."""
    n = 10
    cut = _takes(_sampler(n, "replacement", seed=4), [7, 13, 20])
    whole = _sampler(n, "replacement", seed=4).take(40)
    np.testing.assert_array_equal(cut, whole)
    assert any(np.unique(block).size < n for block in whole.reshape(4, n))


@pytest.mark.parametrize("mode", ["epoch", "replacement"])
def test_same_seed_same_order_other_seed_differs(mode: str) -> None:
    """The order is a function of the seed: the same seed gives the same 60 indices,
    another seed others."""
    a = _takes(_sampler(30, mode, seed=11), [7, 13, 40])
    b = _takes(_sampler(30, mode, seed=11), [7, 13, 40])
    c = _takes(_sampler(30, mode, seed=12), [7, 13, 40])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_run_seeds_give_reproducible_sample_orders() -> None:
    """The order stream of a run seed (:func:`thrifty.train.seeds`) gives the same
    order each time it is made, and different run seeds different orders."""
    first = Sampler(100, "epoch", seeds(3)[1]).take(250)
    again = Sampler(100, "epoch", seeds(3)[1]).take(250)
    other = Sampler(100, "epoch", seeds(4)[1]).take(250)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_protocols_choose_the_sampling_mode() -> None:
    """The default protocol samples by epochs, the reference protocol with replacement,
    and an explicit ``sampling`` overrides the protocol."""
    assert RunConfig().resolved().sampling == "epoch"
    assert RunConfig(protocol="reference").resolved().sampling == "replacement"
    assert RunConfig(protocol="reference", sampling="epoch").resolved().sampling == "epoch"


def test_no_samples_or_an_unknown_mode_is_an_error() -> None:
    """A data set without training samples would otherwise never fill an epoch."""
    with pytest.raises(ValueError, match="no training samples"):
        _sampler(0)
    with pytest.raises(ValueError, match="sampling must be"):
        _sampler(10, "shuffle")
