"""Synaptic caching (Li & van Rossum 2020): a transient and a persistent weight per synapse.

Every synapse has a persistent component ``l`` and a transient component ``s``; the
network computes with ``w = l + s``. Learning writes into ``s``; ``s`` decays; when it
grows large it is *consolidated* into ``l``. Only consolidations change the persistent
weights, so they are what the meters M0, M1 and M_α count; holding a transient weight
also costs energy, ``c · Σ|s|`` per sample.

One step of one layer, in this order (the NumPy reference does the same):

1. **update** ``s ← s − η · delta ⊗ pre`` on the synapses the rules selected;
2. **decay** ``s ← s · exp(−1/τ)`` on every synapse (τ in samples);
3. **consolidate** where ``|s| ≥ θ`` (and the synapse may consolidate at all):
   ``l ← l + s``, ``s ← 0``;
4. **price** the step: M0 = number of synapses consolidated with ``s ≠ 0``,
   M1 = Σ|consolidated s| + ``c · Σ|s|`` of what remains after step 3.

The forward pass multiplies ``l`` and ``s`` separately and adds the products, so
``l + s`` is never written during training. On the CPU a step touches only the units
that receive an update or hold transient weight when there are few of them (a
subnet; the forward pass then also reads ``s`` on their rows only), and it
consolidates and prices only the rows of units with a synapse at θ when there are
few.

The model is registered as ``"caching"`` in :data:`thrifty.synapses.SYNAPSE_MODELS`::

    --synapses caching:threshold=0.1,tau=1000,cost=0.001,per=synapse

Example
-------
>>> import jax
>>> from thrifty.network import init_params
>>> model = caching(threshold=0.05)
>>> params = init_params(jax.random.key(0), n_hidden=20)
>>> state = model.init(params, jax.random.key(1))
>>> state.transient.hidden.shape
(20, 785)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.energy import (
    LAYER_NAMES,
    StepEnergy,
    effective_vectors,
    selected_mask,
    without_list,
)
from thrifty.network import Params, Proposal
from thrifty.rules.base import LayerSelection, Selection
from thrifty.rules.library import random_mask
from thrifty.rules.registry import RuleError, register
from thrifty.synapses import SYNAPSE_MODELS, SynapseModel

PER = ("synapse", "neuron", "layer")
"""Granularity of consolidation: each synapse on its own, a unit's incoming synapses
together, or a whole layer together."""


class CachingState(NamedTuple):
    """State of the caching synapse model.

    Attributes
    ----------
    transient : Params
        The transient components ``s``, shapes like the weights:
        hidden (N, n_inputs + 1), output (n_outputs, N + 1); weight units.
    live : tuple of bool Arrays, shapes (N,) and (n_outputs,)
        Per layer, the units whose incoming transient weights may be non-zero
        (False only where they are known to be all zero); lets a step skip units
        that hold nothing and receive no update.
    consolidating : Array of shape (N,) or None
        0/1 mask of the hidden units whose incoming and outgoing synapses may
        consolidate (``consolidate_units > 0``); None when every synapse may.
        The output biases may always consolidate.
    """

    transient: Params
    live: tuple[jax.Array, ...]
    consolidating: jax.Array | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def check_caching(params: dict[str, Any], n_hidden: int | None) -> None:
    """Reject bad parameters of ``caching`` before any work.

    Parameters
    ----------
    params : dict
        The model's parameters: those given in the model string and the defaults of
        the rest (traced values are skipped).
    n_hidden : int or None
        Hidden units N, to bound ``consolidate_units``; None skips that check.

    Raises
    ------
    RuleError
        Naming the parameter and the allowed values.
    """

    def bad(name: str, allowed: str) -> RuleError:
        return RuleError(f"synapse model 'caching': {name} must be {allowed}, got {params[name]!r}")

    def concrete(name: str) -> bool:
        return name in params and _is_number(params[name])

    for name in ("threshold", "tau"):
        if concrete(name) and not (math.isfinite(params[name]) and params[name] > 0):
            raise bad(name, "a finite number > 0")
    if concrete("cost") and not (math.isfinite(params["cost"]) and params["cost"] >= 0):
        raise bad("cost", "a finite number >= 0")
    if "per" in params and params["per"] not in PER:
        raise bad("per", f"one of {', '.join(PER)}")
    if concrete("consolidate_units"):
        units = params["consolidate_units"]
        upper = "" if n_hidden is None else f", at most n_hidden={n_hidden}"
        if units != int(units) or units < 0 or (n_hidden is not None and units > n_hidden):
            raise bad("consolidate_units", f"an integer >= 0 (0: everywhere){upper}")


def _row_sum(a: jax.Array) -> jax.Array:
    """Σ of a matrix as a sum of row sums (smaller rounding error than one long sum)."""
    return jnp.sum(jnp.sum(a, axis=1))


_PACK = 4096
"""Counts of a row below this are packed two to a float: ``events + _PACK · positive``."""


def _event_counts(events: jax.Array, positive: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact int32 numbers of ``events`` and of ``events & positive`` (boolean matrices).

    Row sums of 0/1 floats are exact integers (below 2**24); when a row is shorter
    than ``_PACK`` both counts travel in one float per entry, so one reduction
    gives both. Totals are summed as int32.
    """
    dtype = jnp.float32
    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
    if events.shape[1] < _PACK:
        packed = jnp.where(events, jnp.where(positive, one + _PACK, one), zero)
        rows = jnp.sum(packed, axis=1).astype(jnp.int32)
        return jnp.sum(rows % _PACK, dtype=jnp.int32), jnp.sum(rows // _PACK, dtype=jnp.int32)
    counts = jnp.sum(jnp.where(events, one, zero), axis=1).astype(jnp.int32)
    pos = jnp.sum(jnp.where(events & positive, one, zero), axis=1).astype(jnp.int32)
    return jnp.sum(counts, dtype=jnp.int32), jnp.sum(pos, dtype=jnp.int32)


class LayerStep(NamedTuple):
    """One layer after one caching step.

    Attributes
    ----------
    persistent, transient : Array, shape (n_post, n_pre)
        ``l`` and ``s`` after the step (weight units).
    energy : StepEnergy
    live : bool Array, shape (n_post,)
        Units whose incoming transient weights may be non-zero (see :class:`CachingState`).
    """

    persistent: jax.Array
    transient: jax.Array
    energy: StepEnergy
    live: jax.Array


def row_capacity(n_post: int) -> int | None:
    """How many active units (rows) a layer step processes by gathering them; None: never.

    A unit is *active* when it receives an update or holds transient weight. When
    at most this many are active, only their rows are gathered, stepped and
    scattered back, so a caching network restricted to a small subnet costs about
    as much per sample as the subnet; otherwise every row is stepped. Gathering is
    used on the CPU only: on accelerators the dense step is one fused pass, and
    under ``vmap`` both ways would run. Subnets of up to 128 units are gathered.
    """
    if jax.default_backend() != "cpu" or n_post < 256:
        return None
    return 128


def _rows_in_loop(rows: jax.Array, i: jax.Array, size: int) -> jax.Array:
    """Indices of the True entries of ``rows`` (shape (n,)), padded with ``n`` to ``size``.

    Called inside a loop with its counter ``i``: the result is tied to the loop so
    that XLA computes it there, only when the loop runs, instead of hoisting it out.
    """
    tied = rows.astype(jnp.float32) + jnp.zeros((), jnp.float32) * i.astype(jnp.float32)
    (index,) = jnp.nonzero(tied, size=size, fill_value=rows.shape[0])
    return index


def live_rows_product(
    transient: jax.Array, live: jax.Array, x: jax.Array, capacity: int | None
) -> jax.Array:
    """``transient @ x``, multiplying only the live rows when there are few.

    Parameters
    ----------
    transient : Array, shape (n_post, n_pre)
        Transient weights ``s`` (weight units).
    live : bool Array, shape (n_post,)
        Rows that may be non-zero; the others are all zero.
    x : Array, shape (n_pre,)
        Presynaptic activity.
    capacity : int or None
        Multiply only the live rows, gathered, when there are at most this many
        (see :func:`row_capacity`); None: always every row.

    Returns
    -------
    Array, shape (n_post,)
        ``transient @ x``; rows that are not live give exactly 0. In a subnet the
        forward pass so reads ``s`` on the subnet's rows only.
    """
    if capacity is None or capacity >= transient.shape[0]:
        return transient @ x
    n_post = transient.shape[0]
    dtype = transient.dtype
    zero = jnp.zeros((), dtype)

    def live_rows(i: jax.Array, product: jax.Array) -> jax.Array:
        index = _rows_in_loop(live, i, capacity)
        rows = transient.at[index].get(mode="fill", fill_value=0)
        return product.at[index].set(rows @ x, mode="drop")

    def every_row(i: jax.Array, product: jax.Array) -> jax.Array:
        del product
        return transient @ (x + zero * i.astype(dtype))

    few = jnp.sum(live, dtype=jnp.int32) <= capacity
    product = jnp.zeros((n_post,), jnp.result_type(transient, x))
    product = jax.lax.fori_loop(0, few.astype(jnp.int32), live_rows, product)
    return jax.lax.fori_loop(0, 1 - few.astype(jnp.int32), every_row, product)


def cache_layer(
    persistent: jax.Array,
    transient: jax.Array,
    delta: jax.Array,
    pre: jax.Array,
    sel: LayerSelection,
    lr: Any,
    *,
    threshold: Any,
    decay: Any,
    cost: Any,
    per: str = "synapse",
    eligible_post: jax.Array | None = None,
    eligible_pre: jax.Array | None = None,
    alphas: tuple[float, ...] = (),
    live: jax.Array | None = None,
    capacity: int | None = None,
    rare: int | None = None,
) -> LayerStep:
    """One step of synaptic caching for one layer: update, decay, consolidate, price.

    Parameters
    ----------
    persistent, transient : Array, shape (n_post, n_pre)
        ``l`` and ``s`` (weight units).
    delta : Array, shape (n_post,)
        Error of the postsynaptic units.
    pre : Array, shape (n_pre,)
        Presynaptic activity (bias input last).
    sel : LayerSelection
        The synapses that express ``−lr · delta ⊗ pre``.
    lr : float
        Learning rate η.
    threshold : float
        Consolidation threshold θ > 0 on ``|s|`` (weight units).
    decay : float
        Factor ``exp(−1/τ)`` applied to ``s`` every sample.
    cost : float
        Cost c of holding transient weight, per unit of ``|s|`` and sample.
    per : {"synapse", "neuron", "layer"}
        What consolidates together: a synapse alone; every synapse of a unit
        (row) once one of them reaches θ; every synapse of the layer.
    eligible_post, eligible_pre : Array of shape (n_post,) / (n_pre,), or None
        0/1 masks of the synapses that may consolidate at all (a synapse must be
        eligible on both sides); None: all. Ineligible synapses only decay and
        never trigger a consolidation.
    alphas : tuple of float
        Exponents of the extra M_α meters, Σ|consolidated s|^α.
    live : bool Array of shape (n_post,), or None
        Units that may hold non-zero transient weight (None: all may).
    capacity : int or None
        Gather the active units' rows when at most this many are active (see
        :func:`row_capacity`); None: always step every row.
    rare : int or None
        When every row is stepped, consolidate only the rows of the units that
        reach θ when there are at most this many (see
        :func:`consolidation_capacity`; per layer: only when none does); None:
        consolidate every row in one chain of passes.

    Returns
    -------
    LayerStep
        The new ``l``, ``s`` and ``live``, and the energy: ``m0`` consolidations
        (synapses with ``s ≠ 0`` moved into ``l``, exact int32), ``m0_potentiation``
        those with ``s > 0``; ``m1`` = Σ|consolidated s| + ``transient``;
        ``m1_potentiation`` = Σ consolidated ``s > 0`` (the holding cost is not split
        by sign and is not in it); ``m_alpha`` over consolidations; ``transient`` =
        ``cost · Σ|s|`` after the step.

    Notes
    -----
    Both ways of stepping give the same result; gathering only skips rows whose
    transient weights are zero and receive no update (nothing happens to them).
    The dense step writes everything elementwise as one chain of ``jnp.where``:
    on accelerators XLA fuses the update, the decay, the comparison, the new
    arrays and the sums into one pass. XLA's CPU backend writes one array per
    pass and recomputes the chain in every pass and every sum, so there
    (``rare``) the common work is kept to a few simple passes and the
    consolidations, which touch few rows, are done on those rows only.
    """
    sel = without_list(sel, persistent.shape)  # caching steps whole rows
    d, x = effective_vectors(delta, pre, sel)
    n_post = persistent.shape[0]
    common = dict(
        x=x,
        sel=sel,
        lr=lr,
        threshold=threshold,
        decay=decay,
        cost=cost,
        per=per,
        eligible_pre=eligible_pre,
        alphas=alphas,
    )
    step = functools.partial(_dense_step, **common)
    dense = step
    if rare is not None:
        capacity_rows = 0 if per == "layer" else rare
        dense = functools.partial(_rare_step, capacity=capacity_rows, **common)
    everywhere = jnp.ones((n_post,), bool)
    gather = (
        capacity is not None
        and capacity < n_post
        and per != "layer"
        and eligible_pre is None
        and sel.synapses is None
    )
    if not gather:
        new_l, new_s, energy = dense(persistent, transient, d, eligible_post)
        return LayerStep(new_l, new_s, energy, everywhere)
    assert capacity is not None
    live = everywhere if live is None else live
    active = (d != 0) | live
    dtype = transient.dtype

    def every_row(i: jax.Array, carry: LayerStep) -> LayerStep:
        # tie the update to the loop, or XLA hoists it out of the loop as a full matrix
        tied = d + jnp.zeros((), dtype) * i.astype(dtype)
        new_l, new_s, energy = dense(carry.persistent, carry.transient, tied, eligible_post)
        return LayerStep(new_l, new_s, energy, everywhere)

    def active_rows(i: jax.Array, carry: LayerStep) -> LayerStep:
        index = _rows_in_loop(active, i, capacity)

        def take(a: jax.Array) -> jax.Array:
            return a.at[index].get(mode="fill", fill_value=0)

        post = None if eligible_post is None else take(eligible_post)
        rows_l, rows_s, energy = step(take(carry.persistent), take(carry.transient), take(d), post)
        return LayerStep(
            carry.persistent.at[index].set(rows_l, mode="drop"),
            carry.transient.at[index].set(rows_s, mode="drop"),
            energy,
            carry.live.at[index].set(jnp.any(rows_s != 0, axis=1), mode="drop"),
        )

    # Loops that run once or not at all: unlike a conditional, a loop updates
    # its (large) carried arrays in place.
    few = jnp.sum(active, dtype=jnp.int32) <= capacity
    carry = LayerStep(persistent, transient, _no_energy(dtype, len(alphas)), live)
    carry = jax.lax.fori_loop(0, few.astype(jnp.int32), active_rows, carry)
    return jax.lax.fori_loop(0, 1 - few.astype(jnp.int32), every_row, carry)


def _no_energy(dtype: Any, n_alpha: int) -> StepEnergy:
    """A StepEnergy of zeros."""
    return StepEnergy(
        m0=jnp.zeros((), jnp.int32),
        m0_potentiation=jnp.zeros((), jnp.int32),
        m1=jnp.zeros((), dtype),
        m1_potentiation=jnp.zeros((), dtype),
        m_alpha=jnp.zeros((n_alpha,), dtype),
        transient=jnp.zeros((), dtype),
    )


def _decayed(
    transient: jax.Array,
    d: jax.Array,
    synapses: jax.Array | None,
    *,
    x: jax.Array,
    sel: LayerSelection,
    lr: Any,
    decay: Any,
) -> jax.Array:
    """Transient weights after the update and the decay, shape (rows, n_pre).

    ``d`` is the effective error of these rows, ``synapses`` the rows of the
    selection's fixed synapse mask.
    """
    dtype = transient.dtype
    update = jnp.outer(jnp.asarray(lr, dtype) * d, x)
    mask = selected_mask(d, sel._replace(synapses=synapses))
    if mask is not None:
        update = jnp.where(mask, update, jnp.zeros((), dtype))
    return (transient - update) * jnp.asarray(decay, dtype)


def _eligible(eligible_post: jax.Array | None, eligible_pre: jax.Array | None) -> jax.Array | None:
    """Boolean (rows, 1), (1, n_pre) or (rows, n_pre) mask of synapses that may
    consolidate; None: all may."""
    eligible = None
    if eligible_post is not None:
        eligible = (eligible_post != 0)[:, None]
    if eligible_pre is not None:
        col = (eligible_pre != 0)[None, :]
        eligible = col if eligible is None else eligible & col
    return eligible


def _consolidating(
    s: jax.Array,
    eligible_post: jax.Array | None,
    *,
    threshold: Any,
    per: str,
    eligible_pre: jax.Array | None,
) -> jax.Array:
    """Boolean matrix of the synapses that consolidate, from the decayed ``s``
    (per layer: all eligible ones when any synapse of these rows reached θ)."""
    eligible = _eligible(eligible_post, eligible_pre)
    reached = jnp.abs(s) >= jnp.asarray(threshold, s.dtype)
    if eligible is not None:
        reached = reached & eligible
    if per == "synapse":
        return reached
    if per == "neuron":
        consolidate = jnp.any(reached, axis=1, keepdims=True)
    elif per == "layer":
        consolidate = jnp.any(reached)
    else:
        raise RuleError(f"synapse model 'caching': per must be one of {', '.join(PER)}")
    if eligible is not None:
        consolidate = consolidate & eligible
    return jnp.broadcast_to(consolidate, s.shape)


class Moved(NamedTuple):
    """What one step consolidates (see :func:`_moved`)."""

    m0: jax.Array
    m0_potentiation: jax.Array
    m1: jax.Array
    m1_potentiation: jax.Array
    m_alpha: jax.Array


def _moved(s: jax.Array, consolidate: jax.Array, alphas: tuple[float, ...]) -> Moved:
    """Consolidations of one step: their number (``s ≠ 0``; exact int32), those with
    ``s > 0``, Σ|s| moved, Σ of positive s moved and Σ|s|^α moved, from the decayed
    transient weights ``s`` and the boolean matrix of synapses that consolidate."""
    dtype = s.dtype
    zero = jnp.zeros((), dtype)
    moved_size = jnp.where(consolidate, jnp.abs(s), zero)
    m0, m0_potentiation = _event_counts(consolidate & (s != 0), s > 0)
    m_alpha = (
        jnp.stack([_row_sum(jnp.where(moved_size > 0, moved_size**a, zero)) for a in alphas])
        if alphas
        else jnp.zeros((0,), dtype)
    )
    return Moved(
        m0=m0,
        m0_potentiation=m0_potentiation,
        m1=_row_sum(moved_size),
        m1_potentiation=_row_sum(jnp.where(consolidate & (s > 0), s, zero)),
        m_alpha=m_alpha,
    )


def _energy(moved: Moved, held: jax.Array) -> StepEnergy:
    """StepEnergy from the consolidations and the holding cost ``c · Σ|s|``."""
    return StepEnergy(
        m0=moved.m0,
        m0_potentiation=moved.m0_potentiation,
        m1=moved.m1 + held,
        m1_potentiation=moved.m1_potentiation,
        m_alpha=moved.m_alpha,
        transient=held,
    )


def _consolidated(
    persistent: jax.Array, s: jax.Array, consolidate: jax.Array, alphas: tuple[float, ...]
) -> tuple[jax.Array, jax.Array, Moved]:
    """Move the consolidating ``s`` into ``l``: the new ``l``, the new ``s`` and what moved.

    ``s`` is the decayed transient weights before consolidation, ``consolidate`` the
    boolean matrix of the synapses that consolidate (shapes (rows, n_pre)).
    """
    zero = jnp.zeros((), s.dtype)
    moved = _moved(s, consolidate, alphas)
    new_l = jnp.where(consolidate, persistent + s, persistent)
    # The transient array is updated in place: make it wait for everything that
    # reads the old transient values (otherwise XLA copies them first).
    after = zero * (new_l[0, 0] + moved.m1 + moved.m0.astype(s.dtype))
    new_s = jnp.where(consolidate, zero, s + after)
    return new_l, new_s, moved


def consolidation_capacity(n_post: int) -> int | None:
    """Units of a layer whose consolidations a step handles alone; None: never.

    On the CPU, a layer of at least 256 units is stepped in two parts when few of
    its units reach θ in a step (at most this many, the usual case): the update
    and the decay of every transient weight, and the row sums of ``|s|``, in
    simple passes over memory; then the consolidations, on the rows of those
    units only (nothing when none reaches θ), gathered into the smallest of four
    sizes that holds them: 1/32, 1/16, 1/8 or 1/4 of the layer. When more units
    than a quarter reach θ, every row is consolidated at once (see
    :func:`_rare_step`). On MNIST at θ = 10⁻³ about 90 of 1000 units reach θ per
    sample (``docs/caching.md``).
    """
    if jax.default_backend() != "cpu" or n_post < 256:
        return None
    return n_post // 4


def _row_sums_and_reaching(
    s: jax.Array,
    threshold: Any,
    eligible_post: jax.Array | None,
    eligible_pre: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Row sums of ``|s|`` and the rows with an eligible synapse at θ, in one pass.

    Parameters
    ----------
    s : Array, shape (rows, n_pre)
        Transient weights (weight units).
    threshold : float or scalar Array
        θ, in weight units.
    eligible_post, eligible_pre : Array of shapes (rows,) and (n_pre,), or None
        Units whose synapses may consolidate (non-zero: eligible); None: all.

    Returns
    -------
    held : Array, shape (rows,)
        ``Σ_j |s_ij|`` for the rows that do not reach θ; 0 for those that do.
    reaching : bool Array, shape (rows,)
        Rows with an eligible synapse ``|s_ij| ≥ θ``.

    Notes
    -----
    One sum per row of ``max(|s|, (|s| − θ⁻)·K)``, where θ⁻ is the number just
    below θ and K a power of two: a synapse below θ adds ``|s|`` (the term is at
    most 0), one at θ adds at least ``K·(θ − θ⁻)``, which K makes more than
    ``4·n_pre·θ``, while a row of values below θ sums to less than ``n_pre·θ``.
    XLA's CPU backend takes such a sum over the written ``s`` in one pass, while
    a ``where`` or a second reduction would each cost a pass of their own. The
    comparison is exact as long as ``θ − θ⁻`` is a normal number (θ above about
    10⁻³⁰ in float32); below that every row is reported as reaching θ, and the
    caller checks them all.
    """
    dtype = s.dtype
    info = jnp.finfo(dtype)
    n_pre = s.shape[1]
    theta = jnp.asarray(threshold, dtype)
    below = jnp.nextafter(theta, jnp.zeros((), dtype))
    # θ − θ⁻ > θ·2^-(nmant + 2), so K·(θ − θ⁻) > 4·n_pre·θ
    k = 2.0 ** (math.ceil(math.log2(n_pre)) + info.nmant + 4)
    size = jnp.abs(s)
    eligible = _eligible(eligible_post, eligible_pre)
    eligible_size = size if eligible is None else size * eligible.astype(dtype)
    flagged = jnp.sum(jnp.maximum(size, (eligible_size - below) * jnp.asarray(k, dtype)), axis=1)
    reaching = flagged >= 2 * n_pre * theta
    # below about 1e-30 (float32), θ − θ⁻ may be lost in the subtraction: check all rows
    reaching = reaching | (theta - below < info.smallest_normal)
    return jnp.where(reaching, jnp.zeros((), dtype), flagged), reaching


def _rare_step(
    persistent: jax.Array,
    transient: jax.Array,
    d: jax.Array,
    eligible_post: jax.Array | None,
    *,
    x: jax.Array,
    sel: LayerSelection,
    lr: Any,
    threshold: Any,
    decay: Any,
    cost: Any,
    per: str,
    eligible_pre: jax.Array | None,
    alphas: tuple[float, ...],
    capacity: int,
) -> tuple[jax.Array, jax.Array, StepEnergy]:
    """The caching step of :func:`_dense_step` for a layer where few units consolidate.

    Same arguments and result as :func:`_dense_step`. Every transient weight is
    updated and decayed in one pass over memory, and one more pass gives the row
    sums of ``|s|`` and the rows with a synapse at θ. When no unit has one, that
    is all. When at most ``capacity`` units do, only their rows are consolidated
    and priced (a gather of those rows, into ``capacity // 8``, ``// 4``, ``// 2``
    or ``capacity`` rows, the smallest that holds them); otherwise every row is.
    Per layer, ``capacity`` must be 0: the layer consolidates as a whole as soon
    as one unit has a synapse at θ.
    """
    dtype = transient.dtype
    zero = jnp.zeros((), dtype)
    s = _decayed(transient, d, sel.synapses, x=x, sel=sel, lr=lr, decay=decay)
    held_rows, reaching = _row_sums_and_reaching(s, threshold, eligible_post, eligible_pre)
    count = jnp.sum(reaching, dtype=jnp.int32)
    consolidating = functools.partial(
        _consolidating, threshold=threshold, per=per, eligible_pre=eligible_pre
    )
    Carry = tuple[jax.Array, jax.Array, jax.Array, Moved]

    def some_rows(size: int) -> Callable[[jax.Array, Carry], Carry]:
        def body(i: jax.Array, carry: Carry) -> Carry:
            l_all, s_all, held, _moved_before = carry
            index = _rows_in_loop(reaching, i, size)

            def take(a: jax.Array) -> jax.Array:
                return a.at[index].get(mode="fill", fill_value=0)

            l_rows, s_rows = take(l_all), take(s_all)
            post = None if eligible_post is None else take(eligible_post)
            consolidate = consolidating(s_rows, post)
            moved = _moved(s_rows, consolidate, alphas)
            new_l = jnp.where(consolidate, l_rows + s_rows, l_rows)
            l_all = l_all.at[index].set(new_l, mode="drop")
            # s is rewritten in place once l is: a data dependence orders the writes
            after = zero * (l_all[0, 0] + moved.m1)
            new_s = jnp.where(consolidate, zero, s_rows + after)
            held = held.at[index].set(jnp.sum(jnp.abs(new_s), axis=1), mode="drop")
            return l_all, s_all.at[index].set(new_s, mode="drop"), held, moved

        return body

    def all_rows(_: jax.Array, carry: Carry) -> Carry:
        l_all, s_all, _held_before, _moved_before = carry
        consolidate = consolidating(s_all, eligible_post)
        l_all, s_all, moved = _consolidated(l_all, s_all, consolidate, alphas)
        return l_all, s_all, jnp.sum(jnp.abs(s_all), axis=1), moved

    none = _moved(s[:0], jnp.zeros((0, s.shape[1]), bool), alphas)
    carry = (persistent, s, held_rows, none)
    # Nothing to do when no unit reaches θ; otherwise the rows of the units that do,
    # gathered into the smallest of a few sizes that holds them, or every row. Loops
    # that run once or not at all update their carried arrays in place.
    below = 0
    for size in sorted({capacity // 8, capacity // 4, capacity // 2, capacity} - {0}):
        runs = (count > below) & (count <= size)
        carry = jax.lax.fori_loop(0, runs.astype(jnp.int32), some_rows(size), carry)
        below = size
    new_l, new_s, held_rows, moved = jax.lax.fori_loop(
        0, (count > below).astype(jnp.int32), all_rows, carry
    )
    held = jnp.asarray(cost, dtype) * jnp.sum(held_rows)
    return new_l, new_s, _energy(moved, held)


def _dense_step(
    persistent: jax.Array,
    transient: jax.Array,
    d: jax.Array,
    eligible_post: jax.Array | None,
    *,
    x: jax.Array,
    sel: LayerSelection,
    lr: Any,
    threshold: Any,
    decay: Any,
    cost: Any,
    per: str,
    eligible_pre: jax.Array | None,
    alphas: tuple[float, ...],
) -> tuple[jax.Array, jax.Array, StepEnergy]:
    """The caching step on every row given (shapes (rows, n_pre)); see :func:`cache_layer`.

    Returns the new ``l``, ``s`` and the energy. ``d`` is the effective
    error of these rows (post mask applied), ``x`` the effective presynaptic
    activity.
    """
    s = _decayed(transient, d, sel.synapses, x=x, sel=sel, lr=lr, decay=decay)
    consolidate = _consolidating(
        s, eligible_post, threshold=threshold, per=per, eligible_pre=eligible_pre
    )
    new_l, new_s, moved = _consolidated(persistent, s, consolidate, alphas)
    held = jnp.asarray(cost, s.dtype) * _row_sum(jnp.abs(new_s))
    return new_l, new_s, _energy(moved, held)


def _eligibility(
    consolidating: jax.Array | None, layer: int
) -> tuple[jax.Array | None, jax.Array | None]:
    """Post and pre eligibility masks of a layer from the hidden-unit mask (N,)."""
    if consolidating is None:
        return None, None
    if layer == 0:
        return consolidating, None
    bias = jnp.ones((1,), consolidating.dtype)
    return None, jnp.concatenate([consolidating, bias])


def _check_now(threshold: Any, tau: Any, cost: Any, per: str, consolidate_units: Any) -> None:
    given = {
        "threshold": threshold,
        "tau": tau,
        "cost": cost,
        "per": per,
        "consolidate_units": consolidate_units,
    }
    check_caching(given, None)


@register(
    "caching",
    registry=SYNAPSE_MODELS,
    check=check_caching,
    choices={"per": PER},
)
def caching(
    *,
    threshold: float,
    tau: float = 1000.0,
    cost: float = 0.001,
    per: str = "synapse",
    consolidate_units: int = 0,
    alphas: tuple[float, ...] = (),
) -> SynapseModel:
    """Synaptic caching: updates go to a decaying transient weight, consolidated at |s| ≥ θ.

    Parameters
    ----------
    threshold : float
        Consolidation threshold θ > 0 on ``|s|`` (weight units).
    tau : float
        Decay time constant τ > 0 of the transient weights, in samples.
    cost : float
        Cost c ≥ 0 of holding transient weight, per unit of ``|s|`` per sample.
    per : {"synapse", "neuron", "layer"}
        Consolidate each synapse on its own, every incoming synapse of a unit when
        one of them reaches θ, or the whole layer when one synapse does.
    consolidate_units : int
        0: every synapse may consolidate. ``k > 0``: only the incoming and outgoing
        synapses of a fixed random set of ``k`` hidden units (drawn from the key
        given to ``init``) ever consolidate, plus the output biases; elsewhere the
        transient weights learn and decay but never become persistent.
    alphas : tuple of float
        Exponents of the extra M_α meters (set by the library, not the model string).

    Returns
    -------
    SynapseModel
        ``params`` are the persistent weights ``l``; the state is a
        :class:`CachingState`; ``weights(params, state)`` is ``l + s`` and
        ``parts(params, state)`` is ``(l, s)``: the forward pass of a sample reads
        both and never writes their sum.

    Notes
    -----
    Numeric parameters may be traced JAX scalars (vmapped sweeps over θ, τ, c);
    ``per`` is structure. See the module docstring for the order within a step.
    """
    _check_now(threshold, tau, cost, per, consolidate_units)
    everywhere = _is_number(consolidate_units) and consolidate_units == 0

    def init(params: Params, key: jax.Array) -> CachingState:
        transient = Params(*(jnp.zeros_like(w) for w in params))
        live = tuple(jnp.zeros((w.shape[0],), bool) for w in params)
        if everywhere:
            return CachingState(transient, live)
        n_hidden = params.hidden.shape[0]
        units = random_mask(key, (n_hidden,), consolidate_units)
        # consolidate_units = 0 given as a traced number still means "everywhere"
        units = jnp.where(jnp.asarray(consolidate_units) > 0, units, True)
        return CachingState(transient, live, units.astype(params.hidden.dtype))

    def apply(
        params: Params,
        state: CachingState,
        proposal: Proposal,
        selection: Selection,
        lr: jax.Array,
    ) -> tuple[Params, CachingState, tuple[StepEnergy, ...]]:
        decay = jnp.exp(-1.0 / jnp.asarray(tau, params.hidden.dtype))
        steps = []
        layers = zip(params, state.transient, state.live, proposal.layers, selection, strict=True)
        for index, (w, s, live, lp, sel) in enumerate(layers):
            post, pre = _eligibility(state.consolidating, index)
            steps.append(
                cache_layer(
                    w,
                    s,
                    lp.delta,
                    lp.pre,
                    sel,
                    lr,
                    threshold=threshold,
                    decay=decay,
                    cost=cost,
                    per=per,
                    eligible_post=post,
                    eligible_pre=pre,
                    alphas=alphas,
                    live=live,
                    capacity=row_capacity(w.shape[0]),
                    rare=consolidation_capacity(w.shape[0]),
                )
            )
        new_state = CachingState(
            Params(*(st.transient for st in steps)),
            tuple(st.live for st in steps),
            state.consolidating,
        )
        return (
            Params(*(st.persistent for st in steps)),
            new_state,
            tuple(st.energy for st in steps),
        )

    def weights(params: Params, state: CachingState) -> Params:
        return Params(*(w + s for w, s in zip(params, state.transient, strict=True)))

    def parts(params: Params, state: CachingState) -> tuple[Params, ...]:
        return params, state.transient

    def hidden_input(params: Params, state: CachingState, x_aug: jax.Array) -> jax.Array:
        s = state.transient.hidden
        return params.hidden @ x_aug + live_rows_product(
            s, state.live[0], x_aug, row_capacity(s.shape[0])
        )

    def summary(params: Params, state: CachingState) -> dict[str, Any]:
        del params
        out: dict[str, Any] = {}
        for name, s in zip(LAYER_NAMES, state.transient, strict=True):
            a = np.asarray(s)
            out[name] = {
                "remaining_m0": int(np.count_nonzero(a)),
                "remaining_m1": float(np.abs(a.astype(np.float64)).sum()),
            }
        return out

    return SynapseModel(
        init,
        apply,
        "caching",
        weights=weights,
        parts=parts,
        hidden_input=hidden_input,
        summary=summary,
    )
