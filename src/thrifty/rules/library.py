"""The plasticity restrictions of the paper, as registered rule factories.

Every factory is keyword-only; numeric arguments may be Python numbers or traced
JAX scalars. Counts derived from fractions are ``round(p · size)``, at least 1.
Fixed random draws (masks, subnets) come from the key given to ``init``;
per-sample draws from ``ctx.key``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from thrifty.network import Params, Proposal
from thrifty.ops import sort_by_magnitude
from thrifty.rules.base import ALL, NO_SYNAPSE, Context, LayerSelection, Rule, Selection
from thrifty.rules.registry import LayerShapes, RuleError, register


def _n_hidden(params: Params) -> int:
    return params.hidden.shape[0]


def count_of(fraction: Any, size: Any) -> jax.Array:
    """``round(fraction · size)`` (halves up), at least 1 and at most ``size``, as int32.

    ``fraction`` (a float of the run's type) and ``size`` (an integer below 2**31) may be
    traced. The product is formed exactly: the fraction is split into the two halves of
    its mantissa and the size into pieces short enough that every partial product is a
    float without rounding. Only the fraction's own rounding is then left: a decimal
    fraction is stored to within 2**-24 (float32) or 2**-53 (float64) of itself,
    relative, so a product that falls short of a half by no more than
    ``(x + 32) · 2**-24`` (or ``2**-53``; at most 0.25), with ``x = fraction · size``,
    counts as the half: 0.145 · 100 gives 15 in both types. So k is exact when the
    decimal product is a half or lies at least ``2**-23 · x + 2**-18`` (float32) from
    one: in float32, for a product with two decimals up to x ≈ 80 000 and for a whole
    product up to x ≈ 4 million (and beyond, for a fraction that float32 holds exactly,
    such as 0.5); beyond, float32 may hold the fraction too coarsely to tell, and k may
    be one more or one less (never more than ``size``).
    """
    p = jnp.asarray(fraction)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    info = jnp.finfo(p.dtype)
    digits = info.nmant + 1  # 24 or 53
    low_bits = digits // 2  # the lower half of the mantissa: 12 or 26 bits
    itype = _int_type_of(p.dtype)
    bits = jax.lax.bitcast_convert_type(p, itype)
    p_high = jax.lax.bitcast_convert_type(bits & ~((1 << low_bits) - 1), p.dtype)
    p_parts = (p_high, p - p_high)  # at most digits - low_bits and low_bits bits
    n = jnp.asarray(size)
    n = (jnp.round(n) if jnp.issubdtype(n.dtype, jnp.floating) else n).astype(jnp.int32)
    piece_bits = low_bits  # a piece times either part has at most `digits` bits: exact
    whole = jnp.zeros((), jnp.int32)
    rest = jnp.zeros((), p.dtype)
    for shift in range(0, 31, piece_bits):
        piece = ((n >> shift) & ((1 << piece_bits) - 1)).astype(p.dtype) * (2.0**shift)
        for part in p_parts:
            q = part * piece  # exact
            q_whole = jnp.floor(q)
            whole = whole + q_whole.astype(jnp.int32)
            rest = rest + (q - q_whole)  # terms exact, in [0, 1); the sum rounds by < 16·eps
    x = p * n.astype(p.dtype)
    tolerance = jnp.minimum((x + 32) * info.eps / 2, 0.25)
    rest_whole = jnp.floor(rest)
    k = whole + rest_whole.astype(jnp.int32)  # floor(x) <= size: no overflow
    up = ((rest - rest_whole) >= 0.5 - tolerance) & (k < n)
    return jnp.maximum(k + up.astype(jnp.int32), 1)


def _ordered_keys(x: jax.Array) -> jax.Array:
    """Unsigned integers ordered like the floats ``x`` (−0 and +0 equal); same shape."""
    utype = jnp.uint64 if x.dtype.itemsize == 8 else jnp.uint32
    n_bits = 8 * x.dtype.itemsize
    bits = jax.lax.bitcast_convert_type(jnp.where(x == 0, jnp.zeros_like(x), x), utype)
    sign = jnp.asarray(1, utype) << (n_bits - 1)
    return jnp.where((bits & sign) != 0, ~bits, bits | sign)


def rank_mask(scores: jax.Array, k: Any, dtype: Any) -> jax.Array:
    """0/1 mask of the ``k`` largest ``scores`` (ties broken by lower index first).

    Shapes: ``scores`` (n,) → (n,) of ``dtype``; ``k`` may be traced (1 ≤ k ≤ n).
    The k-th largest score is found by bisection over integer keys ordered like the
    floats (one count per bit of the float, no sort), then the ties at it are taken
    in index order: the same mask as ranking by a stable sort of ``−scores``.
    """
    keys = _ordered_keys(scores)
    utype = keys.dtype
    n_bits = 8 * keys.dtype.itemsize
    itype = _int_type_of(scores.dtype)
    k = jnp.asarray(k).astype(itype)

    def next_bit(i: jax.Array, kth: jax.Array) -> jax.Array:
        trial = kth | (jnp.asarray(1, utype) << (n_bits - 1 - i).astype(utype))
        return jnp.where(jnp.sum((keys >= trial).astype(itype)) >= k, trial, kth)

    kth = jax.lax.fori_loop(0, n_bits, next_bit, jnp.zeros((), utype))
    above = keys > kth
    ties = keys == kth
    wanted = k - jnp.sum(above.astype(itype))
    return (above | (ties & (jnp.cumsum(ties.astype(itype)) <= wanted))).astype(dtype)


def random_mask(key: jax.Array, shape: tuple[int, ...], k: Any) -> jax.Array:
    """Boolean array of ``shape`` with exactly ``k`` True entries at random places."""
    size = math.prod(shape)
    ranks = jax.random.permutation(key, size)
    return (ranks < k).reshape(shape)


def _check_fractions(*names: str) -> Any:
    def check(params: dict[str, Any], n_hidden: int) -> None:
        del n_hidden
        for n in names:
            if n in params and not (0 < params[n] <= 1):
                raise RuleError(f"parameter {n!r} must be in (0, 1], got {params[n]!r}")

    return check


# --------------------------------------------------------------------------- masks


class SynapseMaskState(NamedTuple):
    """Fixed masks of each layer: a boolean matrix shaped like the layer's weights, or,
    for a layer the rule was built to list, the flat indices of its plastic synapses
    (int32, shape (capacity,), ascending, padded with ``NO_SYNAPSE``; see
    :attr:`~thrifty.rules.base.LayerSelection.listed`)."""

    hidden: jax.Array
    output: jax.Array


LISTED_UP_TO = 1 / 32
"""Largest length of the index list of a fixed mask (:func:`list_capacity`), as a share
of the layer's synapses; above it, the mask is a boolean matrix. A listed update is
gathered, scattered and priced per listed synapse, several times slower per synapse
than the matrix's passes over every synapse in order: with a 1 % mask of the input
layer the list made the step 1.3–2.6× faster, with 3 % 0.6–1.1×, with 6 % 0.4–0.6×
(``python bench/bench_mask_pricing.py 1000 3000``, on one core and on two)."""


def list_capacity(count: int, size: int) -> int:
    """Length of the index list for about ``count`` plastic synapses among ``size``.

    A power of two, at least 256 and above ``count`` with room for the rounding of
    ``count`` in float32 (so runs whose counts differ a little share a compiled
    step); 0, meaning a boolean matrix, when that exceeds ``LISTED_UP_TO · size``.
    """
    capacity = max(256, 1 << math.ceil(math.log2(1.001 * count + 2)))
    return capacity if capacity <= LISTED_UP_TO * size else 0


def _mask_capacities(fractions: tuple[Any, Any], shapes: LayerShapes) -> tuple[int, ...]:
    """:func:`list_capacity` of each layer for plastic ``fractions`` (host numbers)."""
    out = []
    for fraction, shape in zip(fractions, shapes, strict=True):
        size = math.prod(shape)
        out.append(list_capacity(int(count_of(float(fraction), size)), size))
    return tuple(out)


def _draw_masks(
    params: Params, key: jax.Array, fractions: tuple[Any, Any], capacity: tuple[int, ...]
) -> SynapseMaskState:
    masks = []
    for w, fraction, k, listed in zip(
        params, fractions, jax.random.split(key), capacity, strict=True
    ):
        mask = random_mask(k, w.shape, count_of(fraction, w.size))
        if listed:
            mask = jnp.flatnonzero(mask, size=listed, fill_value=NO_SYNAPSE).astype(jnp.int32)
        masks.append(mask)
    return SynapseMaskState(*masks)


def _mask_selection(state: SynapseMaskState, capacity: tuple[int, ...]) -> Selection:
    return tuple(
        LayerSelection(listed=mask) if listed else LayerSelection(synapses=mask)
        for mask, listed in zip(state, capacity, strict=True)
    )


def _capacities_of_fractions(params: dict[str, Any], shapes: LayerShapes) -> tuple:
    fractions = (params.get("hidden", 1.0), params.get("output", 1.0))
    return (("capacity", _mask_capacities(fractions, shapes)),)


@register(
    "synapse-mask",
    check=_check_fractions("hidden", "output"),
    compile_args=_capacities_of_fractions,
)
def synapse_mask(
    *, hidden: float = 1.0, output: float = 1.0, capacity: tuple[int, ...] = (0, 0)
) -> Rule:
    """Fixed random synapse mask: fraction p1 (hidden) and p2 (output) of each layer plastic.

    ``capacity`` (set by the library, see :func:`list_capacity`): per layer, the
    length of the list of plastic synapses, or 0 for a boolean matrix.
    """

    def init(params: Params, key: jax.Array) -> SynapseMaskState:
        return _draw_masks(params, key, (hidden, output), capacity)

    def update(
        proposal: Proposal, state: SynapseMaskState, params: Params, ctx: Context
    ) -> tuple[Selection, SynapseMaskState]:
        del proposal, params, ctx
        return _mask_selection(state, capacity), state

    return Rule(init, update, "synapse-mask", reads_weights=False)


def optimal_mask_fractions(
    n_hidden: int, n_min: Any, n_inputs: int = 784, n_outputs: int = 10
) -> tuple[jax.Array, jax.Array]:
    """Fractions (p1, p2) of the counting argument for N hidden units (as
    :func:`thrifty.theory.optimal_fractions`).

    Minimises ``N (p1·n_inputs + p2·n_outputs)`` subject to ``p1·p2·N = n_min``:
    full plasticity up to ``N = n_min``, then ``p1 = n_min / N`` up to
    ``N = (n_inputs / n_outputs) · n_min``, then ``p1 = √(n_min·n_outputs / (n_inputs·N))``
    and ``p2 = (n_inputs / n_outputs) · p1``. ``n_min`` may be traced; the fractions
    are of its float type (the rule gives it that of the weights), so a float64 run
    draws the counts of :func:`thrifty.theory.optimal_fractions`.
    """
    ratio = n_inputs / n_outputs
    n_min = jnp.asarray(n_min)
    if not jnp.issubdtype(n_min.dtype, jnp.floating):
        n_min = n_min.astype(jnp.result_type(float))
    n = float(n_hidden)
    p1 = jnp.where(
        n <= n_min,
        1.0,
        jnp.where(n <= ratio * n_min, n_min / n, jnp.sqrt(n_min * n_outputs / (n_inputs * n))),
    )
    p2 = jnp.where(n <= ratio * n_min, 1.0, ratio * p1)
    return p1, p2


def _check_optimal(params: dict[str, Any], n_hidden: int) -> None:
    del n_hidden
    n_min = params.get("n_min", 0)
    if not (math.isfinite(n_min) and n_min > 0):
        raise RuleError(
            f"rule 'synapse-mask-optimal': n_min must be a finite number > 0, got {n_min!r}"
        )


def _optimal_fractions_of(shapes: LayerShapes, n_min: Any) -> tuple[jax.Array, jax.Array]:
    (n_hidden, n_pre), (n_outputs, _) = shapes
    return optimal_mask_fractions(n_hidden, n_min, n_pre - 1, n_outputs)


def _capacities_of_optimal(params: dict[str, Any], shapes: LayerShapes) -> tuple:
    fractions = _optimal_fractions_of(shapes, params["n_min"])
    return (("capacity", _mask_capacities(fractions, shapes)),)


@register("synapse-mask-optimal", check=_check_optimal, compile_args=_capacities_of_optimal)
def synapse_mask_optimal(*, n_min: float, capacity: tuple[int, ...] = (0, 0)) -> Rule:
    """Random synapse mask with p1, p2 from the counting argument for the network's N.

    ``capacity``: as for :func:`synapse_mask`.
    """

    def init(params: Params, key: jax.Array) -> SynapseMaskState:
        shapes = tuple(w.shape for w in params)
        # in the weights' float type, whatever JAX's 64-bit mode makes of a Python float
        fractions = _optimal_fractions_of(shapes, jnp.asarray(n_min, params[0].dtype))
        return _draw_masks(params, key, fractions, capacity)

    update = synapse_mask(capacity=capacity).update
    return Rule(init, update, "synapse-mask-optimal", reads_weights=False)


class UnitMaskState(NamedTuple):
    """Fixed 0/1 mask on hidden units, shape (n_hidden,)."""

    units: jax.Array


def _random_units(params: Params, key: jax.Array, k: Any) -> jax.Array:
    n = _n_hidden(params)
    return random_mask(key, (n,), k).astype(params.hidden.dtype)


@register("neuron-mask", check=_check_fractions("fraction"))
def neuron_mask(*, fraction: float) -> Rule:
    """Fixed random fraction of hidden units with plastic incoming synapses (uncoordinated).

    All hidden→output synapses stay plastic.
    """

    def init(params: Params, key: jax.Array) -> UnitMaskState:
        return UnitMaskState(_random_units(params, key, count_of(fraction, _n_hidden(params))))

    def update(
        proposal: Proposal, state: UnitMaskState, params: Params, ctx: Context
    ) -> tuple[Selection, UnitMaskState]:
        del proposal, params, ctx
        return (LayerSelection(post=state.units), LayerSelection()), state

    return Rule(init, update, "neuron-mask", reads_weights=False)


def _check_units(params: dict[str, Any], n_hidden: int) -> None:
    units = params.get("units")
    if units is None or units < 1 or units > n_hidden:
        raise RuleError(
            f"rule 'subnet': units must be an integer in [1, n_hidden={n_hidden}], got {units!r}"
        )


@register("subnet", check=_check_units)
def subnet(*, units: int) -> Rule:
    """Coordinated subnet: a fixed random set of hidden units, plastic in and out.

    The rest of the network is frozen; the output biases stay plastic.
    """

    def init(params: Params, key: jax.Array) -> UnitMaskState:
        return UnitMaskState(_random_units(params, key, units))

    def update(
        proposal: Proposal, state: UnitMaskState, params: Params, ctx: Context
    ) -> tuple[Selection, UnitMaskState]:
        del proposal, params, ctx
        pre_out = jnp.concatenate([state.units, jnp.ones((1,), state.units.dtype)])
        return (LayerSelection(post=state.units), LayerSelection(pre=pre_out)), state

    return Rule(init, update, "subnet", reads_weights=False)


# ------------------------------------------------------------------ largest updates


def _available(sel: LayerSelection, n_post: int, n_pre: int) -> jax.Array:
    """Number of synapses the post and pre masks of ``sel`` leave available, as int32
    (exact: a layer has fewer than 2**31 synapses, see ``thrifty.config.MAX_HIDDEN``)."""
    post = n_post if sel.post is None else jnp.sum(sel.post != 0)
    pre = n_pre if sel.pre is None else jnp.sum(sel.pre != 0)
    return jnp.asarray(post, jnp.int32) * jnp.asarray(pre, jnp.int32)


def _int_type_of(dtype: Any) -> Any:
    return jnp.int64 if jnp.dtype(dtype).itemsize == 8 else jnp.int32


CANDIDATE_PAIRS = 512
"""Pairs that :func:`product_threshold` ranks directly once its bracket holds no more."""


def product_threshold(
    a: jax.Array, b: jax.Array, k: jax.Array, a_sorted: jax.Array | None = None
) -> jax.Array:
    """Per-column thresholds selecting the ``k`` largest products ``a_i · b_j``.

    Parameters
    ----------
    a : Array, shape (n,)
        Non-negative (|delta|).
    b : Array, shape (m,)
        Non-negative (|pre|).
    k : int Array, shape ()
    a_sorted : Array, shape (n,), optional
        ``a`` sorted ascending, if already at hand.

    Returns
    -------
    threshold : Array, shape (m,)
        ``threshold[j] = τ / b_j`` (``inf`` where ``b_j = 0``; at least the smallest
        normal number, so that a pair with ``a_i = 0`` never passes) for the largest τ
        such that ``#{(i, j): a_i >= threshold[j]} >= k``. Exactly ``k`` pairs pass
        (every pair with a non-zero product when there are fewer; a zero product
        never passes), unless two values of ``a`` are closer than one rounding step
        of the threshold; then a few more may pass. Of products
        tied at τ in different columns, those of the lower columns pass (for ties
        within one row, the choice of a stable sort by flat index; between rows it
        may differ from that choice).

    Notes
    -----
    τ is searched over the bit patterns of non-negative floats, which are ordered
    like the floats themselves (:func:`threshold_bits`); a trial counts the
    passing pairs with a binary search of ``m`` thresholds in sorted ``a`` — no
    ``n × m`` product is formed.
    """
    itype = _int_type_of(a.dtype)
    a_sorted = a_sorted if a_sorted is not None else jnp.sort(a)
    k = k.astype(itype)
    lo = threshold_bits(a, a_sorted, b, k)
    # Products within one rounding step of τ pass together; when that lets more
    # than k pass, raise the thresholds of just enough columns to the next τ, the
    # last columns first: ties within a row go to the lower index, as in a stable
    # sort (ties between rows are settled by column, which a stable sort may not be).
    passing = a.shape[0] - first_passing(lo, a_sorted, b)
    passing_next = a.shape[0] - first_passing(lo + 1, a_sorted, b)
    excess = jnp.sum(passing) - k
    raise_col = jnp.cumsum((passing - passing_next)[::-1])[::-1] <= excess
    return jnp.where(
        raise_col & (excess > 0),
        column_thresholds(lo + 1, b, a.dtype),
        column_thresholds(lo, b, a.dtype),
    )


def column_thresholds(bits: jax.Array, b: jax.Array, dtype: Any) -> jax.Array:
    """``τ / b_j`` for τ given by its bit pattern; shape of ``b``.

    ``inf`` where ``b_j = 0``, and at least the smallest normal number elsewhere:
    a pair passes when ``a_i`` reaches its column's threshold, so a pair with a zero
    product (``a_i = 0`` or ``b_j = 0``) never passes, whatever τ.
    """
    tau = jax.lax.bitcast_convert_type(bits, dtype)
    safe_b = jnp.where(b > 0, b, jnp.ones_like(b))
    smallest = jnp.asarray(jnp.finfo(dtype).tiny, dtype)
    return jnp.where(b > 0, jnp.maximum(tau / safe_b, smallest), jnp.full_like(b, jnp.inf))


def first_passing(bits: jax.Array, a_sorted: jax.Array, b: jax.Array) -> jax.Array:
    """Per column ``j``, the first index ``i`` of ``a_sorted`` with ``a_i >= τ / b_j``.

    ``bits``: the bit pattern of τ; ``a_sorted`` (n,) ascending; ``b`` (m,). Returns
    an int Array (m,) (``n`` where no ``a_i`` passes); ``n − first_passing`` pairs
    of column ``j`` pass.
    """
    thresholds = column_thresholds(bits, b, a_sorted.dtype)
    first = jnp.searchsorted(a_sorted, thresholds, side="left", method="scan")
    return first.astype(bits.dtype)


def threshold_bits(a: jax.Array, a_sorted: jax.Array, b: jax.Array, k: jax.Array) -> jax.Array:
    """The bit pattern of τ in :func:`product_threshold`.

    Parameters
    ----------
    a, a_sorted : Array, shape (n,)
        Non-negative, and the same ascending.
    b : Array, shape (m,)
        Non-negative.
    k : int Array, shape ()
        Of the integer type as wide as ``a``'s floats.

    Returns
    -------
    int Array, shape ()
        The largest ``t`` below ``end``, one past the pattern of ``max(a)·max(b)``,
        with ``count(t) >= k`` (0 if there is none), where ``count(t)`` is the
        number of pairs with ``a_i >= τ(t) / b_j`` (:func:`column_thresholds`: pairs
        with a non-zero product only): what a bisection of ``[0, end)`` finds.

    Notes
    -----
    A bisection keeps ``count(lo) >= k > count(hi)`` until at most
    :data:`CANDIDATE_PAIRS` pairs pass at ``lo`` and not at ``hi``; it starts from
    half the smallest non-zero product, where every pair with a non-zero product
    passes. Each pair left has its own last passing pattern, found near the bit
    pattern of its product (:func:`_last_passing`); τ is the
    ``(k − count(hi))``-th largest of them. When fewer than ``k`` pairs have a
    non-zero product, all of them pass at 0, and τ is 0. ``python
    bench/bench_topk_search.py`` prints how many counts this takes, against 32
    (float32) for a bisection down to one pattern.
    """
    n = a.shape[0]
    itype = k.dtype

    def first(bits: jax.Array) -> jax.Array:
        return first_passing(bits, a_sorted, b)

    def count(first_index: jax.Array) -> jax.Array:
        return jnp.sum(n - first_index).astype(itype)

    top = jnp.max(a) * jnp.max(b)
    a_min = jnp.min(jnp.where(a > 0, a, jnp.full_like(a, jnp.inf)))
    b_min = jnp.min(jnp.where(b > 0, b, jnp.full_like(b, jnp.inf)))
    low = 0.5 * a_min * b_min
    end = jax.lax.bitcast_convert_type(top, itype) + 1
    start = jax.lax.bitcast_convert_type(jnp.where(low < jnp.inf, low, jnp.zeros_like(low)), itype)
    start = jnp.clip(start, 0, end)
    start_first, end_first = first(start), first(end)
    # every pair with a non-zero product passes at start, and no other pair at any τ
    c_start, c_end = count(start_first), count(end_first)
    Bracket = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
    bracket: Bracket = (start, end, start_first, end_first, c_start, c_end)

    def wide(br: Bracket) -> jax.Array:
        lo, hi, _, _, c_lo, c_hi = br
        # (no search when nothing, or everything, below end lets k pass)
        searching = (c_lo >= k) & (c_hi < k)
        return searching & (hi - lo > 1) & (c_lo - c_hi > CANDIDATE_PAIRS)

    def halve(br: Bracket) -> Bracket:
        lo, hi, f_lo, f_hi, c_lo, c_hi = br
        mid = lo + (hi - lo) // 2
        f_mid = first(mid)
        c_mid = count(f_mid)
        ok = c_mid >= k
        return (
            jnp.where(ok, mid, lo),
            jnp.where(ok, hi, mid),
            jnp.where(ok, f_mid, f_lo),
            jnp.where(ok, f_hi, f_mid),
            jnp.where(ok, c_mid, c_lo),
            jnp.where(ok, c_hi, c_mid),
        )

    lo, hi, f_lo, f_hi, c_lo, c_hi = jax.lax.while_loop(wide, halve, bracket)
    ranked = _last_passing(a_sorted, b, lo, hi, f_lo, f_hi)
    # the (k − c_hi)-th largest; when the bracket is one pattern wide (or holds more
    # pairs, all at one τ), lo itself
    few = (hi - lo > 1) & (c_lo - c_hi <= CANDIDATE_PAIRS)
    answer = jnp.where(few, ranked[CANDIDATE_PAIRS - (k - c_hi)], lo)
    answer = jnp.where(c_start < k, jnp.zeros((), itype), answer)
    return jnp.where(c_end >= k, end - 1, answer)


def _last_passing(
    a_sorted: jax.Array,
    b: jax.Array,
    lo: jax.Array,
    hi: jax.Array,
    f_lo: jax.Array,
    f_hi: jax.Array,
) -> jax.Array:
    """Sorted last passing bit patterns of the pairs that pass at ``lo`` and not at ``hi``.

    Parameters
    ----------
    a_sorted : Array, shape (n,)
    b : Array, shape (m,)
    lo, hi : int Array, shape ()
        Bit patterns of τ.
    f_lo, f_hi : int Array, shape (m,)
        ``first_passing`` at ``lo`` and ``hi``: column ``j`` has the pairs
        ``(i, j)`` with ``f_lo[j] <= i < f_hi[j]`` in between.

    Returns
    -------
    int Array, shape (CANDIDATE_PAIRS,)
        For each of those pairs (at most :data:`CANDIDATE_PAIRS`), the largest
        ``t`` in ``[lo, hi)`` at which ``a_i >= τ(t) / b_j``, ascending; the
        minimum integer in the unused places (at the front).

    Notes
    -----
    The last passing pattern of a pair lies within a few patterns of its
    product's (``τ/b_j`` is then ``a_i`` within two roundings), so it is
    bisected from a window of 16 patterns around it; if for any pair the window
    does not bracket it, every pair is bisected from ``[lo, hi)`` instead.
    """
    itype = lo.dtype
    dtype = a_sorted.dtype
    sizes = f_hi - f_lo
    ends = jnp.cumsum(sizes)
    slot = jnp.arange(CANDIDATE_PAIRS, dtype=itype)
    used = slot < ends[-1]
    col = jnp.minimum(jnp.searchsorted(ends, slot, side="right", method="scan"), b.shape[0] - 1)
    row = jnp.clip(f_lo[col] + slot - (ends - sizes)[col], 0, a_sorted.shape[0] - 1)
    a_pair, b_pair = a_sorted[row], b[col]
    b_pair = jnp.where(used & (b_pair > 0), b_pair, jnp.ones_like(b_pair))

    def passes(bits: jax.Array) -> jax.Array:
        return a_pair >= jax.lax.bitcast_convert_type(bits, dtype) / b_pair

    guess = jax.lax.bitcast_convert_type(a_pair * b_pair, itype)
    w_lo = jnp.clip(guess - 8, lo, hi)
    w_hi = jnp.clip(guess + 8, lo, hi)
    # lo passes and hi fails by construction; elsewhere the window is checked
    window = ((w_lo == lo) | passes(w_lo)) & ((w_hi == hi) | ~passes(w_hi))
    near = jnp.all(window | ~used)
    bounds = (jnp.where(near, w_lo, lo), jnp.where(near, w_hi, hi))

    def unfinished(bd: tuple[jax.Array, jax.Array]) -> jax.Array:
        return jnp.any(bd[1] - bd[0] > 1)

    def halve(bd: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        low, high = bd
        mid = low + (high - low) // 2
        ok = passes(mid)
        return jnp.where(ok, mid, low), jnp.where(ok, high, mid)

    last, _ = jax.lax.while_loop(unfinished, halve, bounds)
    return jnp.sort(jnp.where(used, last, jnp.iinfo(itype).min))


def _allowed_matrix(sel: LayerSelection, delta: jax.Array, pre: jax.Array) -> jax.Array:
    """The synapses ``sel`` leaves available, as a bool matrix (n_post, n_pre): its
    synapse matrix or list and its threshold on ``|delta|``, within its post and pre
    masks (:func:`thrifty.energy.dense_selection`)."""
    from thrifty.energy import dense_selection  # energy imports the rules package

    return dense_selection(delta, pre, sel)


def _beyond_masks(sel: LayerSelection) -> bool:
    """Whether ``sel`` selects by more than its post and pre masks (a synapse matrix or
    list, or a threshold)."""
    return sel.listed is not None or sel.synapses is not None or sel.threshold is not None


def _top_in_matrix(
    delta: jax.Array, pre: jax.Array, allowed: jax.Array, fraction: float, per: str
) -> jax.Array:
    """The largest updates among the ``allowed`` synapses (bool, (n_post, n_pre)).

    per="layer": the ``round(p · #allowed)`` largest ``|delta_i · pre_j|``; per="neuron":
    in each row, the ``round(p · #allowed in the row)`` largest ``|pre_j|``. Ties are
    taken in index order (row-major); a zero product is never kept, so fewer are kept
    when fewer are non-zero. Returns a bool matrix of the shape of ``allowed``.
    """
    dtype = delta.dtype
    below = jnp.asarray(-1, dtype)
    if per == "layer":
        scores = jnp.where(allowed, jnp.abs(delta)[:, None] * jnp.abs(pre)[None, :], below)
        k = count_of(fraction, jnp.sum(allowed))
        top = rank_mask(scores.reshape(-1), k, bool).reshape(allowed.shape)
        return top & (scores > 0)
    scores = jnp.where(allowed, jnp.abs(pre)[None, :], below)
    k = count_of(fraction, jnp.sum(allowed, axis=1))
    order = jnp.argsort(-scores, axis=1, stable=True)
    ranks = jnp.argsort(order, axis=1, stable=True)
    return (ranks < k[:, None]) & (scores > 0) & (delta != 0)[:, None]


def _listed_left(
    sel: LayerSelection, delta: jax.Array, n_pre: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rows, columns and availability of the synapses listed in ``sel`` (shape of
    ``sel.listed``): listed, not padding, within its post and pre masks and passing its
    threshold on ``|delta|``."""
    assert sel.listed is not None and sel.synapses is None
    listed = sel.listed
    rows, cols = listed // n_pre, listed % n_pre
    allowed = listed != NO_SYNAPSE
    if sel.post is not None:
        allowed = allowed & (sel.post.at[rows].get(mode="fill", fill_value=0) != 0)
    if sel.pre is not None:
        allowed = allowed & (sel.pre.at[cols].get(mode="fill", fill_value=0) != 0)
    if sel.threshold is not None:
        d = jnp.abs(delta).at[rows].get(mode="fill", fill_value=0)
        allowed = allowed & (d >= sel.threshold.at[cols].get(mode="fill", fill_value=0))
    return rows, cols, allowed


def _units_left(sel: LayerSelection, delta: jax.Array, pre: jax.Array) -> jax.Array | None:
    """Bool (n_post,): the units with a synapse that ``sel`` leaves available (``delta``
    and ``pre`` of shapes (n_post,), (n_pre,)); None when it leaves every unit one (no
    masks at all)."""
    n_post = delta.shape[0]
    if sel.synapses is not None:  # the matrix is at hand
        return jnp.any(_allowed_matrix(sel, delta, pre), axis=1)
    if sel.listed is not None:
        rows, _, allowed = _listed_left(sel, delta, pre.shape[0])
        return jnp.zeros((n_post,), bool).at[rows].max(allowed, mode="drop")
    units = None if sel.post is None else sel.post != 0
    if sel.threshold is None and sel.pre is None:
        return units
    # a unit keeps a synapse when |δ_i| passes the lowest threshold of an available input
    if sel.threshold is not None:
        thresholds = sel.threshold.astype(delta.dtype)
        if sel.pre is not None:
            thresholds = jnp.where(sel.pre != 0, thresholds, jnp.inf)
        kept = jnp.abs(delta) >= jnp.min(thresholds)
    else:
        kept = jnp.broadcast_to(jnp.any(sel.pre != 0), (n_post,))
    return kept if units is None else units & kept


def _top_listed(
    delta: jax.Array, pre: jax.Array, sel: LayerSelection, fraction: float
) -> LayerSelection:
    """Top-k per layer among the synapses listed in ``sel`` (within its post and pre
    masks and its threshold): ``round(p · #available)`` of them, ties taken in list
    (index) order, zero products never; a selection with a list of shape
    ``sel.listed.shape``."""
    listed = sel.listed
    assert listed is not None
    rows, cols, allowed = _listed_left(sel, delta, pre.shape[0])
    d = jnp.abs(delta).at[rows].get(mode="fill", fill_value=0)
    x = jnp.abs(pre).at[cols].get(mode="fill", fill_value=0)
    scores = jnp.where(allowed, d * x, jnp.asarray(-1, delta.dtype))
    keep = rank_mask(scores, count_of(fraction, jnp.sum(allowed)), bool) & (scores > 0)
    return LayerSelection(listed=jnp.sort(jnp.where(keep, listed, NO_SYNAPSE)))


@register("top-k", check=_check_fractions("fraction"), choices={"per": ("layer", "neuron")})
def keep_top_fraction(*, fraction: float, per: str = "layer") -> Rule:
    """Only the largest updates of the input→hidden layer: a fraction p of the layer's
    synapses (per=layer) or of each hidden unit's incoming synapses (per=neuron).

    After rules that leave only some synapses available (a subnet, a neuron or synapse
    mask), p is a fraction of the available ones and the largest are taken among them.
    """
    if per not in ("layer", "neuron"):
        raise RuleError(f"rule 'top-k': per must be one of layer, neuron; got {per!r}")

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        del params
        lp = proposal.layers[0]
        sel0 = ctx.selection[0]
        if sel0.listed is not None and per == "layer":
            return (_top_listed(lp.delta, lp.pre, sel0, fraction), LayerSelection()), state
        if _beyond_masks(sel0):
            allowed = _allowed_matrix(sel0, lp.delta, lp.pre)
            top = _top_in_matrix(lp.delta, lp.pre, allowed, fraction, per)
            return (LayerSelection(synapses=top), LayerSelection()), state
        if per == "neuron":
            n_pre = lp.pre.shape[0] if sel0.pre is None else jnp.sum(sel0.pre != 0)
            k = count_of(fraction, n_pre)
            dtype = lp.pre.dtype
            pre = rank_mask(jnp.abs(lp.pre), k, dtype) * (lp.pre != 0).astype(dtype)
            post = (lp.delta != 0).astype(dtype)  # a unit without error keeps nothing
            return (LayerSelection(post=post, pre=pre), LayerSelection()), state
        k = count_of(fraction, _available(sel0, lp.delta.shape[0], lp.pre.shape[0]))
        a_sorted, _ = sort_by_magnitude(lp.delta)
        thr = product_threshold(jnp.abs(lp.delta), jnp.abs(lp.pre), k, a_sorted)
        return (LayerSelection(threshold=thr), LayerSelection()), state

    return Rule(init, update, "top-k", reads_weights=False)


@register(
    "neuron-select", check=_check_fractions("fraction"), choices={"by": ("error", "activity")}
)
def select_neurons(*, fraction: float, by: str = "error") -> Rule:
    """Only the fraction p of hidden units with the largest |error| (or |activity|) have
    plastic incoming synapses, chosen anew on every sample."""
    if by not in ("error", "activity"):
        raise RuleError(f"rule 'neuron-select': by must be one of error, activity; got {by!r}")

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        n = _n_hidden(params)
        scores = (
            jnp.abs(proposal.layers[0].delta)
            if by == "error"
            else jnp.abs(proposal.layers[1].pre[:n])
        )
        sel0 = ctx.selection[0]
        # rank only the units with a synapse still available
        lp = proposal.layers[0]
        units = _units_left(sel0, lp.delta, lp.pre)
        if units is not None:
            scores = jnp.where(units, scores, -jnp.ones_like(scores))
        avail = n if units is None else jnp.sum(units)
        post = rank_mask(scores, count_of(fraction, avail), params.hidden.dtype)
        return (LayerSelection(post=post), LayerSelection()), state

    return Rule(init, update, "neuron-select", reads_weights=False)


# ---------------------------------------------------------------------- controls


@register("random-neuron-mask", check=_check_fractions("fraction"))
def random_neuron_mask(*, fraction: float) -> Rule:
    """Control: a new random fraction p of hidden units is plastic on every sample."""

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        del proposal
        units = _random_units(params, ctx.key, count_of(fraction, _n_hidden(params)))
        return (LayerSelection(post=units), LayerSelection()), state

    return Rule(init, update, "random-neuron-mask", reads_weights=False)


@register("class-neuron-mask", check=_check_fractions("fraction"))
def class_neuron_mask(*, fraction: float) -> Rule:
    """Control: one fixed random neuron mask per output class, chosen by the sample's label."""

    def init(params: Params, key: jax.Array) -> UnitMaskState:
        n_classes = params.output.shape[0]
        keys = jax.random.split(key, n_classes)
        k = count_of(fraction, _n_hidden(params))
        return UnitMaskState(jax.vmap(lambda kk: _random_units(params, kk, k))(keys))

    def update(
        proposal: Proposal, state: UnitMaskState, params: Params, ctx: Context
    ) -> tuple[Selection, UnitMaskState]:
        del proposal, params
        return (LayerSelection(post=state.units[ctx.label]), LayerSelection()), state

    return Rule(init, update, "class-neuron-mask", reads_weights=False)


@register("frozen-input")
def frozen_input() -> Rule:
    """Control (extreme learning machine): the input→hidden layer is frozen; only
    hidden→output synapses learn."""

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        del ctx
        zero = jnp.zeros(params.hidden.shape[0], params.hidden.dtype)
        del proposal
        return (LayerSelection(post=zero), LayerSelection()), state

    return Rule(init, update, "frozen-input", reads_weights=False)


@register("lazy")
def lazy() -> Rule:
    """Lazy learning: no update at all on samples the network already classifies correctly."""

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        wrong = (jnp.argmax(proposal.output) != ctx.label).astype(params.hidden.dtype)
        post0 = jnp.full((params.hidden.shape[0],), wrong, params.hidden.dtype)
        post1 = jnp.full((params.output.shape[0],), wrong, params.hidden.dtype)
        return (LayerSelection(post=post0), LayerSelection(post=post1)), state

    return Rule(init, update, "lazy", reads_weights=False)


@register("backprop")
def backprop() -> Rule:
    """Plain backprop: every synapse expresses its update (the same as no rule)."""

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        del proposal, params, ctx
        return ALL, state

    return Rule(init, update, "backprop", reads_weights=False)
