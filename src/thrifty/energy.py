"""Energy of plasticity: meters, the host-side ledger, the minimal energy.

The energy of learning is summed over synapses and over time,

    M_α = Σ_t Σ_synapses |Δw(t)|^α,

with M0 (α → 0) the number of non-zero updates and M1 (α = 1) their summed size.
Biases are synapses and count. The *potentiation-only* variants charge only
``Δw > 0``.

For one sample a layer's update is ``Δw = −η · delta ⊗ pre`` restricted to a
:class:`~thrifty.rules.base.LayerSelection`. :func:`price_layer` prices it from
the two vectors without forming the matrix; counts are integers per step and are
summed exactly in 64 bits on the host by :class:`Ledger`.

Notes
-----
A synapse counts toward M0 when its proposed update is non-zero, i.e. when both
``delta_i`` and ``pre_j`` are non-zero and the synapse is selected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.ops import sort_by_magnitude
from thrifty.rules.base import NO_SYNAPSE, LayerSelection, fold_synapses

LAYER_NAMES = ("hidden", "output")
"""Names of the layers in records: input→hidden and hidden→output."""


class StepEnergy(NamedTuple):
    """Energy of one layer's update at one step (arrays in a scan get a leading T axis).

    Attributes
    ----------
    m0, m0_potentiation : int32 Array, shape ()
        Number of non-zero updates; of those with Δw > 0.
    m1, m1_potentiation : float Array, shape ()
        Σ|Δw| (weight units); over Δw > 0 only.
    m_alpha : float Array, shape (n_alpha,)
        Σ|Δw|^α for the extra exponents asked for.
    transient : float Array, shape ()
        Part of ``m1`` spent on holding transient weights (synaptic caching);
        0 for plain synapses.
    """

    m0: jax.Array
    m0_potentiation: jax.Array
    m1: jax.Array
    m1_potentiation: jax.Array
    m_alpha: jax.Array
    transient: jax.Array


def effective_vectors(
    delta: jax.Array, pre: jax.Array, sel: LayerSelection
) -> tuple[jax.Array, jax.Array]:
    """Error and activity after the post and pre masks: shapes (n_post,), (n_pre,)."""
    d = delta if sel.post is None else delta * sel.post
    x = pre if sel.pre is None else pre * sel.pre
    return d, x


def listed_matrix(listed: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """The boolean matrix of ``shape`` that is True at the flat indices ``listed``."""
    flat = jnp.zeros(math.prod(shape), bool).at[listed].set(True, mode="drop")
    return flat.reshape(shape)


def without_list(sel: LayerSelection, shape: tuple[int, int]) -> LayerSelection:
    """``sel`` with its ``listed`` synapses written as the boolean matrix of a layer of
    weights of ``shape`` (n_post, n_pre): the same selection, for code that needs it."""
    if sel.listed is None:
        return sel
    listed = listed_matrix(sel.listed, shape)
    synapses = listed if sel.synapses is None else listed & sel.synapses
    return sel._replace(synapses=synapses, listed=None)


def selected_mask(d: jax.Array, sel: LayerSelection) -> jax.Array | None:
    """The ``synapses`` and ``threshold`` parts of a selection as a boolean
    (n_post, n_pre) matrix, or None when there are neither (a selection with
    ``listed`` synapses goes through :func:`without_list` first)."""
    if sel.listed is not None:
        raise ValueError("a selection with listed synapses has no matrix; see without_list")
    mask = sel.synapses
    if sel.threshold is not None:
        t = jnp.abs(d)[:, None] >= sel.threshold[None, :]
        mask = t if mask is None else jnp.logical_and(mask, t)
    return mask


def dense_selection(delta: jax.Array, pre: jax.Array, sel: LayerSelection) -> jax.Array:
    """The selection of one layer written out as a boolean (n_post, n_pre) matrix.

    Plain training never forms it; rules that rank what an earlier threshold or
    synapse matrix left do (top-k and neuron-select in such chains), as do the tests
    and diagnostics. Entries whose proposed update is zero count as selected when the
    masks allow them.
    """
    n_post, n_pre = delta.shape[0], pre.shape[0]
    sel = without_list(sel, (n_post, n_pre))
    d, _ = effective_vectors(delta, pre, sel)
    mask = jnp.ones((n_post, n_pre), bool)
    if sel.post is not None:
        mask = mask & (sel.post != 0)[:, None]
    if sel.pre is not None:
        mask = mask & (sel.pre != 0)[None, :]
    extra = selected_mask(d, sel)
    return mask if extra is None else mask & extra


def updated_synapses(delta: jax.Array, pre: jax.Array, sel: LayerSelection) -> jax.Array:
    """Boolean (n_post, n_pre) matrix of the synapses whose update is non-zero."""
    sel = without_list(sel, (delta.shape[0], pre.shape[0]))
    d, x = effective_vectors(delta, pre, sel)
    mask = (d != 0)[:, None] & (x != 0)[None, :]
    extra = selected_mask(d, sel)
    return mask if extra is None else mask & extra


def inverse_simpson(counts: jax.Array, dtype: Any = None) -> jax.Array:
    """Inverse Simpson index ``D = 1 / Σ π_i²`` of where updates landed.

    ``counts[i]`` is the number of samples of a window on which synapse ``i`` was
    updated; ``π_i = counts[i] / Σ counts``. A fixed mask gives the number of
    plastic synapses; updates spread evenly over all synapses give their number.
    Returns 0 when nothing was updated.

    Parameters
    ----------
    counts : Array, any shape
        Update counts per synapse (integers, or floats holding integers).
    dtype : dtype, optional
        Precision of the arithmetic (a run passes its own: float64 runs get a float64
        index); default: float32 for counts of 4 bytes or less, else float64.

    Returns
    -------
    Array, shape ()
        ``D``, computed as ``(Σ c)² / Σ c²``: exact for uniform counts (``D`` = their
        number) whenever the sums are exact in ``dtype``.
    """
    if dtype is None:
        dtype = jnp.float32 if counts.dtype.itemsize <= 4 else jnp.float64
    c = counts.astype(dtype).ravel()
    total = jnp.sum(c)
    squares = jnp.sum(c * c)
    return jnp.where(total > 0, total * total / jnp.where(squares > 0, squares, 1), 0).astype(dtype)


def _pair_sums(
    fd_of: Any, fx: jax.Array, d: jax.Array, sel: LayerSelection, *, integer: bool
) -> jax.Array:
    """Σ_ij fd[k, i] · fx[k, j] over the selected synapses, for each row k.

    For selections without a synapse matrix (those with one go through
    :func:`_masked_sums`).

    Parameters
    ----------
    fd_of : callable
        ``fd_of(d) -> (k, n_post)``: per-unit factors, a function of the error alone
        (so they can be evaluated in sorted order).
    fx : Array, shape (k, n_pre)
    d : Array, shape (n_post,)
        Effective error (the threshold compares ``|d|``).
    integer : bool
        The factors are 0/1 indicators: return exact int32 counts.
    """
    if integer:
        fx = fx.astype(d.dtype)

    def factors(dd: jax.Array) -> jax.Array:
        f = fd_of(dd)
        return f.astype(d.dtype) if integer else f

    def finish(per_pre: jax.Array) -> jax.Array:
        # per_pre[k, j] = Σ_i fd[k, i] over selected i; exact in floats below 2**24
        if integer:
            return jnp.sum(jnp.round(per_pre).astype(jnp.int32) * fx.astype(jnp.int32), axis=1)
        return jnp.sum(per_pre * fx, axis=1)

    if sel.synapses is None and sel.threshold is None:
        fd = factors(d)
        if integer:
            return jnp.sum(fd, 1).astype(jnp.int32) * jnp.sum(fx, 1).astype(jnp.int32)
        return jnp.sum(fd, 1) * jnp.sum(fx, 1)
    if sel.synapses is not None:
        raise ValueError("a selection with a synapse matrix is priced by _masked_sums")
    # Unit i is selected for input j when |d_i| >= threshold_j: a suffix of the
    # units sorted by |d| ascending, of length n_sel[j].
    a_sorted, d_sorted = sort_by_magnitude(d)
    n = d.shape[0]
    n_sel = n - jnp.searchsorted(a_sorted, sel.threshold, side="left", method="scan")
    fd = factors(d_sorted)
    suffix = jnp.cumsum(fd[:, ::-1], axis=1)
    suffix = jnp.concatenate([jnp.zeros((fd.shape[0], 1), fd.dtype), suffix], axis=1)
    return finish(suffix[:, n_sel])


def _masked_sums(
    d: jax.Array,
    x: jax.Array,
    synapses: jax.Array,
    alphas: tuple[float, ...],
    lr: Any = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """The counts and sums of :func:`price_layer` over a boolean synapse matrix.

    Parameters
    ----------
    d : Array, shape (n_post,)
        Effective error.
    x : Array, shape (n_pre,)
        Effective presynaptic activity.
    synapses : bool Array, shape (n_post, n_pre)
        The selected synapses.
    alphas : tuple of float
        Exponents of the M_α sums.
    lr : float
        Learning rate η, for the M_α sums.

    Returns
    -------
    counts : int32 Array, shape (3,)
        Selected pairs with ``d·x ≠ 0``, with ``d > 0, x < 0`` and with ``d < 0, x > 0``.
    sums : Array, shape (3 + len(alphas),)
        Σ|d·x|, Σ over ``d > 0, x < 0`` and over ``d < 0, x > 0`` of ``|d·x|``, and
        M_α = Σ|η·d·x|^α, over the selected pairs.

    Notes
    -----
    One product of the matrix with the presynaptic factors, ``synapses @ [x < 0,
    x > 0, max(−x, 0), max(x, 0)]ᵀ``, gives per unit what each sum needs: one pass over
    a matrix as large as the weights. The indicator columns count at most ``n_pre``
    synapses per unit, exact in floats below 2**24. M_α = (η·D·X)^α · Σ S_ij a_i b_j
    with a_i = |d_i/D|^α, b_j = |x_j/X|^α (D, X the largest |d|, |x|) takes one more
    column per α in the same product. Where that could lose a selected term (an a_i or
    b_j, or a term a_i·b_j whose value is representable, below the smallest normal
    number, or (η·D·X)^α beyond the largest, where the matrix leaves out the largest
    pairs), that α's M_α is summed pair by pair instead, one more pass over the matrix
    (a single run takes that branch only at the steps that need it).
    """
    dtype = d.dtype
    zero_x, zero_d = jnp.zeros_like(x), jnp.zeros_like(d)
    columns = [x < 0, x > 0, jnp.maximum(-x, zero_x), jnp.maximum(x, zero_x)]
    if alphas:
        scale_d, scale_x = alpha_scales(d, x)
        columns += [jnp.where(x != 0, (jnp.abs(x) / scale_x) ** a, zero_x) for a in alphas]
    per_unit = synapses.astype(dtype) @ jnp.stack([c.astype(dtype) for c in columns], axis=1)
    n_neg, n_pos = (jnp.round(per_unit[:, c]).astype(jnp.int32) for c in (0, 1))
    counts = jnp.stack(
        [
            jnp.sum(jnp.where(d != 0, n_neg + n_pos, 0)),
            jnp.sum(jnp.where(d > 0, n_neg, 0)),
            jnp.sum(jnp.where(d < 0, n_pos, 0)),
        ]
    )
    ad = jnp.abs(d)
    s_neg, s_pos = per_unit[:, 2], per_unit[:, 3]
    sums = [
        jnp.sum(ad * (s_neg + s_pos)),
        jnp.sum(jnp.maximum(d, zero_d) * s_neg),
        jnp.sum(jnp.maximum(-d, zero_d) * s_pos),
    ]
    if alphas:
        per_alpha = [jnp.where(d != 0, (ad / scale_d) ** a, zero_d) for a in alphas]
        scaled = jnp.stack([jnp.sum(a_i * per_unit[:, 4 + k]) for k, a_i in enumerate(per_alpha)])
        priced, factors = alpha_sums(lr, scale_d, scale_x, alphas, scaled)

        def least(v: jax.Array, factor: jax.Array) -> jax.Array:
            # the least entry where the factor is not 0 (inf if none): 0 if one underflowed
            return jnp.min(jnp.where(factor != 0, v, jnp.inf))

        # per α: the factored sum holds every term unless a factor underflowed, or the
        # least term a_i·b_j underflows though its value (η·D·X)^α · a_i·b_j does not
        tiny = jnp.finfo(dtype).tiny
        whole = []
        for k, a_i in enumerate(per_alpha):
            la, lb = least(a_i, d), least(columns[4 + k], x)
            below = jnp.log(factors[k]) + jnp.log(la) + jnp.log(lb) < jnp.log(tiny)
            whole.append(
                jnp.isfinite(factors[k]) & (la > 0) & (lb > 0) & ((la * lb >= tiny) | below)
            )
        holds = jnp.stack(whole)

        def pair_by_pair() -> jax.Array:
            dw = (jnp.asarray(lr, dtype) * ad)[:, None] * jnp.abs(x)[None, :]  # |Δw|
            selected = synapses & (dw != 0)
            summed = jnp.stack([jnp.sum(jnp.where(selected, dw**a, 0)) for a in alphas])
            return jnp.where(holds, priced, summed)

        sums += list(jax.lax.cond(jnp.all(holds), lambda: priced, pair_by_pair))
    return counts, jnp.stack(sums)


class _Listed(NamedTuple):
    """The factors of the listed synapses of a selection, each of shape (capacity,):
    the effective error and activity at each synapse (0 at padding) and whether the
    selection's threshold lets it through."""

    d: jax.Array
    x: jax.Array
    passes: jax.Array


def _listed(d: jax.Array, x: jax.Array, sel: LayerSelection) -> _Listed:
    """Gather ``d`` and ``x`` (shapes (n_post,), (n_pre,)) at ``sel.listed``."""
    assert sel.listed is not None
    listed, n_pre = sel.listed, x.shape[0]
    padding = listed == NO_SYNAPSE
    rows, cols = listed // n_pre, listed % n_pre
    dd = jnp.where(padding, 0, d.at[rows].get(mode="fill", fill_value=0))
    xx = x.at[cols].get(mode="fill", fill_value=0)
    if sel.threshold is None:
        passes = jnp.ones(listed.shape, bool)
    else:
        passes = jnp.abs(dd) >= sel.threshold.at[cols].get(mode="fill", fill_value=0)
    return _Listed(dd, xx, passes)


def _listed_sums(
    d: jax.Array,
    x: jax.Array,
    sel: LayerSelection,
    alphas: tuple[float, ...],
    lr: Any = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """The counts and sums of :func:`_masked_sums` over the ``listed`` synapses of
    ``sel``: one gather of the error and the activity per listed synapse."""
    syn = _listed(d, x, sel)
    counted = syn.passes & (syn.d != 0) & (syn.x != 0)
    kinds = jnp.stack(
        [counted, counted & (syn.d > 0) & (syn.x < 0), counted & (syn.d < 0) & (syn.x > 0)]
    )
    ad, ax = jnp.abs(syn.d), jnp.abs(syn.x)
    sizes = [jnp.broadcast_to(ad * ax, kinds.shape)]
    if alphas:
        rate = jnp.asarray(lr, ad.dtype)
        dw = rate * ad * ax  # |Δw| of each listed synapse
        # one flushed to zero though counted is priced from the logarithms of its factors
        normal = dw >= jnp.finfo(ad.dtype).tiny
        logs = (
            jnp.log(rate) + jnp.log(jnp.where(counted, ad, 1)) + jnp.log(jnp.where(counted, ax, 1))
        )
        sizes += [jnp.where(normal, dw**a, jnp.exp(a * logs))[None] for a in alphas]
    per_kind = jnp.concatenate([kinds] + [counted[None]] * len(alphas))
    values = jnp.where(per_kind, jnp.concatenate(sizes), 0)
    # one reduction per stack: on a CPU, XLA otherwise runs one pass per sum
    return jnp.sum(kinds, axis=1, dtype=jnp.int32), jnp.sum(values, axis=1)


def _factored_sums(
    d: jax.Array,
    x: jax.Array,
    sel: LayerSelection,
    alphas: tuple[float, ...],
    lr: Any = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """The counts and sums of :func:`_masked_sums` for a selection without a synapse
    matrix, from the factors of ``d`` and ``x`` alone (see :func:`_pair_sums`).

    M_α = Σ|η·d_i·x_j|^α is summed as (η·D·X)^α · Σ|d_i/D|^α·|x_j/X|^α with D the
    largest effective |d| and X the largest effective |x| of the inputs whose threshold
    D reaches (the others are selected by no unit), so that the pair of D and X is
    selected, the largest term is 1, and no factor raised to α alone overflows or
    underflows (:func:`alpha_sums` multiplies by (η·D·X)^α).
    """
    x_alpha = x
    if alphas and sel.threshold is not None:
        # an input whose threshold even the largest |d| does not reach is selected by
        # no unit: left out of the M_α sums, and of X
        x_alpha = jnp.where(jnp.max(jnp.abs(d)) >= sel.threshold, x, jnp.zeros_like(x))
    scales = alpha_scales(d, x_alpha) if alphas else (1.0, 1.0)

    def indicators(dd: jax.Array) -> jax.Array:
        return jnp.stack([dd != 0, dd > 0, dd < 0])

    ind_x = jnp.stack([x != 0, x < 0, x > 0])

    def magnitudes(dd: jax.Array) -> jax.Array:
        ad, zero = jnp.abs(dd), jnp.zeros_like(dd)
        rows = [ad, jnp.maximum(dd, zero), jnp.maximum(-dd, zero)]
        rows += [jnp.where(dd != 0, (ad / scales[0]) ** a, zero) for a in alphas]
        return jnp.stack(rows)

    ax, zero_x = jnp.abs(x), jnp.zeros_like(x)
    fx = [ax, jnp.maximum(-x, zero_x), jnp.maximum(x, zero_x)]
    ax_alpha = jnp.abs(x_alpha)
    fx += [jnp.where(x_alpha != 0, (ax_alpha / scales[1]) ** a, zero_x) for a in alphas]
    counts = _pair_sums(indicators, ind_x, d, sel, integer=True)
    sums = _pair_sums(magnitudes, jnp.stack(fx), d, sel, integer=False)
    if alphas:
        # the largest term is 1: a factor that overflows is a sum that does
        priced, _ = alpha_sums(lr, scales[0], scales[1], alphas, sums[3:])
        sums = jnp.concatenate([sums[:3], priced])
    return counts, sums


def alpha_sums(
    lr: Any, scale_d: jax.Array, scale_x: jax.Array, alphas: tuple[float, ...], scaled: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """M_α = (η·D·X)^α · ``scaled`` for each α (``scaled``: shape (len(alphas),), the sums
    of the terms divided by (η·D·X)^α), and the factors (η·D·X)^α (0 or inf where they
    under- or overflow).

    Where η·D·X is below the smallest normal number (which the CPU flushes to zero),
    the product is formed from logarithms: for α < 1, or with many terms, M_α can be
    far from 0 though η·D·X is not. A sum that underflowed to 0 stays 0.
    """
    dtype = scale_d.dtype
    rate = jnp.asarray(lr, dtype)
    largest = rate * scale_d * scale_x
    normal = largest >= jnp.finfo(dtype).tiny
    exponents = jnp.asarray(alphas, dtype)
    factor = largest**exponents
    logs = exponents * (jnp.log(rate) + jnp.log(scale_d) + jnp.log(scale_x))
    small = jnp.exp(logs + jnp.log(jnp.where(scaled > 0, scaled, 1)))
    sums = jnp.where(scaled == 0, 0, jnp.where(normal, factor * scaled, small))
    return sums, jnp.where(normal, factor, jnp.exp(logs))


def alpha_scales(d: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The largest ``|d|`` and ``|x|`` (1 where all are 0), by which the M_α sums
    divide the factors before raising them to α (:func:`_factored_sums`)."""

    def largest(v: jax.Array) -> jax.Array:
        top = jnp.max(jnp.abs(v))
        return jnp.where(top > 0, top, jnp.ones_like(top))

    return largest(d), largest(x)


def price_layer(
    delta: jax.Array,
    pre: jax.Array,
    sel: LayerSelection,
    lr: jax.Array | float,
    alphas: tuple[float, ...] = (),
) -> StepEnergy:
    """Energy of the update ``−lr · delta ⊗ pre`` restricted to ``sel``.

    Parameters
    ----------
    delta : Array, shape (n_post,)
    pre : Array, shape (n_pre,)
    sel : LayerSelection
    lr : float
        Learning rate η > 0.
    alphas : tuple of float
        Extra exponents α for M_α.

    Returns
    -------
    StepEnergy
    """
    d, x = effective_vectors(delta, pre, sel)
    if sel.listed is not None:
        counts, sums = _listed_sums(d, x, fold_synapses(sel), alphas, lr)
    elif sel.synapses is not None:
        counts, sums = _masked_sums(d, x, selected_mask(d, sel), alphas, lr)
    else:
        counts, sums = _factored_sums(d, x, sel, alphas, lr)
    return StepEnergy(
        m0=counts[0],
        m0_potentiation=counts[1] + counts[2],
        m1=lr * sums[0],
        m1_potentiation=lr * (sums[1] + sums[2]),
        m_alpha=sums[3:] if alphas else jnp.zeros((0,), d.dtype),
        transient=jnp.zeros((), d.dtype),
    )


def apply_layer(
    w: jax.Array, delta: jax.Array, pre: jax.Array, sel: LayerSelection, lr: jax.Array | float
) -> jax.Array:
    """``w − lr · (delta ⊗ pre)`` on the selected synapses: one fused pass over ``w``,
    or, for ``listed`` synapses, a scatter to them alone.

    Shapes: ``w`` (n_post, n_pre), ``delta`` (n_post,), ``pre`` (n_pre,).
    """
    d, x = effective_vectors(delta, pre, sel)
    if sel.listed is not None:
        sel = fold_synapses(sel)
        syn = _listed(d, x, sel)
        update = jnp.where(syn.passes, (lr * syn.d) * syn.x, 0)
        flat = w.reshape(-1).at[sel.listed].add(-update, mode="drop", indices_are_sorted=True)
        return flat.reshape(w.shape)
    update = jnp.outer(lr * d, x)
    mask = selected_mask(d, sel)
    if mask is not None:
        update = jnp.where(mask, update, jnp.zeros_like(update))
    return w - update


@dataclass
class LayerEnergy:
    """Energy of one layer summed over a run (host side, exact).

    Attributes
    ----------
    m0, m0_potentiation : int
        Counts of non-zero updates (exact, Python ints).
    m1, m1_potentiation : float
        Summed |Δw| (float64 sums of per-step values).
    m_alpha : dict of float → float
    m1_transient : float
        Part of ``m1`` spent on holding transient weights (synaptic caching).
    """

    m0: int = 0
    m0_potentiation: int = 0
    m1: float = 0.0
    m1_potentiation: float = 0.0
    m_alpha: dict[float, float] = field(default_factory=dict)
    m1_transient: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        out: dict[str, Any] = {
            "m0": self.m0,
            "m0_potentiation": self.m0_potentiation,
            "m1": self.m1,
            "m1_potentiation": self.m1_potentiation,
            "m1_transient": self.m1_transient,
        }
        if self.m_alpha:
            out["m_alpha"] = {repr(a): v for a, v in self.m_alpha.items()}
        return out


class Ledger:
    """Host-side accumulator of per-step energies, per layer, exact in 64 bits.

    Parameters
    ----------
    n_layers : int
    alphas : tuple of float
        Exponents of the extra M_α meters.
    """

    def __init__(self, n_layers: int = 2, alphas: tuple[float, ...] = ()) -> None:
        self.alphas = tuple(alphas)
        self.layers = [
            LayerEnergy(m_alpha=dict.fromkeys(self.alphas, 0.0)) for _ in range(n_layers)
        ]

    def add(self, steps: StepEnergy | tuple[StepEnergy, ...], upto: int | None = None) -> None:
        """Add per-step energies of every layer; arrays have a leading step axis.

        Only the first ``upto`` steps count (all when None): a run that stops in
        the middle of a chunk is charged for the steps it took.
        """
        layers = (steps,) if isinstance(steps, StepEnergy) else tuple(steps)
        for acc, s in zip(self.layers, layers, strict=True):
            sl = slice(None) if upto is None else slice(0, upto)
            acc.m0 += int(np.asarray(s.m0)[sl].astype(np.int64).sum())
            acc.m0_potentiation += int(np.asarray(s.m0_potentiation)[sl].astype(np.int64).sum())
            acc.m1 += float(np.asarray(s.m1)[sl].astype(np.float64).sum())
            acc.m1_potentiation += float(np.asarray(s.m1_potentiation)[sl].astype(np.float64).sum())
            acc.m1_transient += float(np.asarray(s.transient)[sl].astype(np.float64).sum())
            ma = np.asarray(s.m_alpha)[sl].astype(np.float64)
            for i, a in enumerate(self.alphas):
                acc.m_alpha[a] += float(ma[:, i].sum())

    @property
    def m0(self) -> int:
        """Total number of updates over all layers."""
        return sum(layer.m0 for layer in self.layers)

    @property
    def m1(self) -> float:
        """Total summed |Δw| over all layers."""
        return sum(layer.m1 for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Per layer and total, plain JSON."""
        out: dict[str, Any] = {
            name: layer.to_dict() for name, layer in zip(LAYER_NAMES, self.layers, strict=False)
        }
        total: dict[str, Any] = {
            "m0": self.m0,
            "m0_potentiation": sum(x.m0_potentiation for x in self.layers),
            "m1": self.m1,
            "m1_potentiation": sum(x.m1_potentiation for x in self.layers),
            "m1_transient": sum(x.m1_transient for x in self.layers),
        }
        if self.alphas:
            total["m_alpha"] = {
                repr(a): sum(x.m_alpha[a] for x in self.layers) for a in self.alphas
            }
        out["total"] = total
        return out


def minimal_energy(initial: Any, final: Any) -> dict[str, dict[str, float | int]]:
    """Energy of setting every weight directly from its initial to its final value.

    ``M0_min = #{w_T ≠ w_0}``, ``M1_min = Σ|w_T − w_0|``, per layer and in total.

    Parameters
    ----------
    initial, final : sequences of arrays, one per layer (e.g. :class:`~thrifty.network.Params`)
    """
    out: dict[str, dict[str, float | int]] = {}
    m0_tot, m1_tot = 0, 0.0
    for name, w0, w1 in zip(LAYER_NAMES, initial, final, strict=True):
        diff = np.asarray(w1, np.float64) - np.asarray(w0, np.float64)
        m0 = int(np.count_nonzero(np.asarray(w1) != np.asarray(w0)))
        m1 = float(np.abs(diff).sum())
        out[name] = {"m0": m0, "m1": m1}
        m0_tot += m0
        m1_tot += m1
    out["total"] = {"m0": m0_tot, "m1": m1_tot}
    return out


def inefficiency(energy: dict[str, Any], minimal: dict[str, Any]) -> dict[str, float]:
    """Ratio of spent to minimal energy, ``M / M_min``, in total (inf when M_min = 0)."""
    out = {}
    for key in ("m0", "m1"):
        spent, least = energy["total"][key], minimal["total"][key]
        out[key] = float(spent) / float(least) if least else float("inf")
    return out


def m_alpha_dense(dw: np.ndarray, alpha: float) -> float:
    """Σ|Δw|^α of one dense update matrix; α = 0 counts the non-zero entries."""
    a = np.abs(np.asarray(dw, np.float64))
    if alpha == 0:
        return float(np.count_nonzero(a))
    return float(np.sum(a[a != 0] ** alpha))
