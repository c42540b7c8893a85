"""Selections, rules and their composition.

A *rule* decides, sample by sample, which synapses express the update that backprop
proposes. It is a pair of pure functions in the style of optax:

- ``init(params, key) -> state``
- ``update(proposal, state, params, ctx) -> (selection, state)``

A *selection* describes the chosen synapses of each layer without forming the
``(n_post, n_pre)`` update matrix: masks on the post and pre side, an optional
fixed set of synapses (a boolean matrix, or a list of their flat indices when
few are chosen), and an optional per-presynapse threshold on the size of the
postsynaptic error. Synapse ``(i, j)`` of a layer is selected when

    post[i] != 0  and  pre[j] != 0  and  synapses[i, j]  and  i·n_pre + j in listed
    and  |delta_i| >= threshold[j]

(absent fields select everything). Selections of several rules intersect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from thrifty.network import LayerProposal, Params, Proposal

NO_SYNAPSE = 2**31 - 1
"""Padding of :attr:`LayerSelection.listed`: larger than every flat index, so
gathers at it read their fill value and scatters to it are dropped."""


class LayerSelection(NamedTuple):
    """Which synapses of one layer express the proposed update.

    Attributes
    ----------
    post : Array of shape (n_post,) or None
        0/1 mask on postsynaptic units (a gate on the error).
    pre : Array of shape (n_pre + 1,) or None
        0/1 mask on presynaptic inputs (bias last).
    synapses : bool Array of shape (n_post, n_pre + 1) or None
        Fixed per-synapse mask.
    threshold : Array of shape (n_pre + 1,) or None
        Synapse ``(i, j)`` is selected only if ``|delta_i| >= threshold[j]``.
        Used by the largest-updates rule: with ``threshold[j] = τ / |pre_j|`` it
        selects ``|delta_i · pre_j| >= τ`` without forming the product.
    listed : int32 Array of shape (capacity,) or None
        Fixed synapses as flat indices ``i · (n_pre + 1) + j`` into the layer's
        weights, ascending, padded at the end with :data:`NO_SYNAPSE`.
        The same selection as the boolean matrix with these entries set, for a few
        synapses among many: pricing and applying the update then touch only them.
    """

    post: jax.Array | None = None
    pre: jax.Array | None = None
    synapses: jax.Array | None = None
    threshold: jax.Array | None = None
    listed: jax.Array | None = None


Selection = tuple[LayerSelection, ...]
"""One :class:`LayerSelection` per layer, ``(hidden, output)``."""

ALL: Selection = (LayerSelection(), LayerSelection())
"""The selection of plain backprop: every synapse of both layers."""


class Context(NamedTuple):
    """What a rule may know about the current step besides the proposal.

    Attributes
    ----------
    step : int Array, shape ()
        Index of the sample within the run (0, 1, ...).
    label : int Array, shape ()
        Class of the current sample.
    key : jax.Array
        PRNG key for this step only.
    selection : Selection
        What the rules before this one in a :func:`chain` have selected.
    """

    step: jax.Array
    label: jax.Array
    key: jax.Array
    selection: Selection = ALL


InitFn = Callable[[Params, jax.Array], Any]
UpdateFn = Callable[[Proposal, Any, Params, Context], tuple[Selection, Any]]


class Rule(NamedTuple):
    """A plasticity restriction: ``init`` and ``update`` (see module docstring).

    Attributes
    ----------
    init : callable ``(params, key) -> state``
    update : callable ``(proposal, state, params, ctx) -> (selection, state)``
    name : str
        Human-readable description, e.g. ``"subnet(units=100)"``.
    reads_weights : bool
        Whether ``update`` reads the values of ``params`` (not only their shapes and
        dtype). A rule that does not, and selects by post and pre masks alone, lets
        plain-synapse runs apply their updates in blocks of samples (faster, same
        result); the safe default is True.
    """

    init: InitFn
    update: UpdateFn
    name: str = "rule"
    reads_weights: bool = True


def _mul(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
    if a is None:
        return b
    if b is None:
        return a
    return a * b


def _and(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
    if a is None:
        return b
    if b is None:
        return a
    return jnp.logical_and(a, b)


def _max(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
    if a is None:
        return b
    if b is None:
        return a
    return jnp.maximum(a, b)


def _both_listed(a: jax.Array | None, b: jax.Array | None) -> jax.Array | None:
    """The flat indices in both ascending lists ``a`` and ``b`` (``a``'s shape)."""
    if a is None:
        return b
    if b is None:
        return a
    found = b.at[jnp.searchsorted(b, a)].get(mode="fill", fill_value=NO_SYNAPSE) == a
    return jnp.sort(jnp.where(found, a, NO_SYNAPSE))


def fold_synapses(sel: LayerSelection) -> LayerSelection:
    """The same selection with at most one of ``synapses`` and ``listed``: a boolean
    matrix beside a list is folded into the list (entries it does not select become
    :data:`NO_SYNAPSE`)."""
    if sel.listed is None or sel.synapses is None:
        return sel
    kept = sel.synapses.reshape(-1).at[sel.listed].get(mode="fill", fill_value=False)
    listed = jnp.sort(jnp.where(kept, sel.listed, NO_SYNAPSE))
    return sel._replace(synapses=None, listed=listed)


def intersect_layer(a: LayerSelection, b: LayerSelection) -> LayerSelection:
    """Synapses selected by both ``a`` and ``b``."""
    return fold_synapses(
        LayerSelection(
            post=_mul(a.post, b.post),
            pre=_mul(a.pre, b.pre),
            synapses=_and(a.synapses, b.synapses),
            threshold=_max(a.threshold, b.threshold),
            listed=_both_listed(a.listed, b.listed),
        )
    )


def intersect(a: Selection, b: Selection) -> Selection:
    """Layer-wise intersection of two selections."""
    return tuple(intersect_layer(x, y) for x, y in zip(a, b, strict=True))


def restrict(proposal: Proposal, selection: Selection) -> Proposal:
    """Zero the errors and activities that the post/pre masks of ``selection`` exclude.

    Rules later in a chain see this restricted proposal, so a largest-updates rule
    after a subnet ranks only the subnet's updates.
    """
    layers = []
    for lp, sel in zip(proposal.layers, selection, strict=True):
        delta = lp.delta if sel.post is None else lp.delta * sel.post
        pre = lp.pre if sel.pre is None else lp.pre * sel.pre
        layers.append(LayerProposal(delta, pre))
    return proposal._replace(layers=tuple(layers))


def identity() -> Rule:
    """Plain backprop: every synapse expresses its update."""

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def update(
        proposal: Proposal, state: Any, params: Params, ctx: Context
    ) -> tuple[Selection, Any]:
        del proposal, params, ctx
        return ALL, state

    return Rule(init, update, "backprop", reads_weights=False)


def chain(*rules: Rule) -> Rule:
    """Compose rules: each sees the proposal restricted by those before it, and
    the resulting selections intersect.

    Example
    -------
    >>> rule = chain(subnet(units=100), keep_top_fraction(fraction=0.05))  # doctest: +SKIP
    """
    if not rules:
        return identity()
    if len(rules) == 1:
        return rules[0]

    def init(params: Params, key: jax.Array) -> tuple[Any, ...]:
        keys = jax.random.split(key, len(rules))
        return tuple(r.init(params, k) for r, k in zip(rules, keys, strict=True))

    def update(
        proposal: Proposal, state: tuple[Any, ...], params: Params, ctx: Context
    ) -> tuple[Selection, tuple[Any, ...]]:
        selection = ctx.selection
        keys = jax.random.split(ctx.key, len(rules))
        new_states = []
        for r, s, k in zip(rules, state, keys, strict=True):
            sub_ctx = ctx._replace(key=k, selection=selection)
            sel, s = r.update(restrict(proposal, selection), s, params, sub_ctx)
            selection = intersect(selection, sel)
            new_states.append(s)
        return selection, tuple(new_states)

    return Rule(
        init,
        update,
        " + ".join(r.name for r in rules),
        reads_weights=any(r.reads_weights for r in rules),
    )
