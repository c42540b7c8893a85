"""Synapse models: how a selected update changes the stored weights, and what it costs.

A synapse model is a pair of pure functions:

- ``init(params, key) -> state``
- ``apply(params, state, proposal, selection, lr) -> (params, state, energies)``

where ``energies`` holds one :class:`~thrifty.energy.StepEnergy` per layer and
``params`` are the persistent weights. Optionally ``weights(params, state)``
gives the weights the network computes with (default: ``params``),
``parts(params, state)`` the same weights as parts that sum to them (the forward
pass of each sample then never forms the sum), ``hidden_input(params, state, x)``
the input layer's product with a sample (when the model can skip rows it knows to
be zero), and ``summary(params, state)`` a plain-JSON dict per layer for the run record
(e.g. what remains in a transient component at the end). The
plain model writes ``w += Δw`` on the selected synapses and prices the update
from the factored vectors; the caching model (:mod:`thrifty.caching`) keeps a
transient and a persistent component per synapse.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from thrifty.energy import StepEnergy, apply_layer, price_layer
from thrifty.network import Params, Proposal
from thrifty.rules.base import Selection
from thrifty.rules.registry import Entry, RuleError, parse, register, with_defaults

SYNAPSE_MODELS: dict[str, Entry] = {}
"""Registry of synapse models, keyed by the name used in ``--synapses``."""

ApplyFn = Callable[
    [Params, Any, Proposal, Selection, jax.Array],
    tuple[Params, Any, tuple[StepEnergy, ...]],
]


class SynapseModel(NamedTuple):
    """``init(params, key) -> state`` and ``apply(...)`` (see module docstring)."""

    init: Callable[[Params, jax.Array], Any]
    apply: ApplyFn
    name: str = "plain"
    weights: Callable[[Params, Any], Params] | None = None
    """Effective weights the network computes with; None means ``params`` itself."""
    parts: Callable[[Params, Any], tuple[Params, ...]] | None = None
    """The effective weights as parts whose sum they are, for the per-sample forward
    pass (see :func:`thrifty.network.propose`); None: ``(weights(params, state),)``."""
    hidden_input: Callable[[Params, Any, jax.Array], jax.Array] | None = None
    """``W_hidden @ x_aug`` of a sample, computed by the model (e.g. skipping rows of a
    part it knows to be zero); None: from ``parts``. Must equal the sum of the parts'
    products up to rounding."""
    summary: Callable[[Params, Any], dict[str, Any]] | None = None
    """Host-side summary of the final state for the record; None for nothing."""


@register("plain", registry=SYNAPSE_MODELS)
def plain(*, alphas: tuple[float, ...] = ()) -> SynapseModel:
    """Weights change at once: ``w ← w − η · delta ⊗ pre`` on the selected synapses.

    Energies are computed from the factored vectors (no update matrix is formed
    for pricing); the weight update is one fused pass per layer.
    """

    def init(params: Params, key: jax.Array) -> tuple[()]:
        del params, key
        return ()

    def apply(
        params: Params, state: Any, proposal: Proposal, selection: Selection, lr: jax.Array
    ) -> tuple[Params, Any, tuple[StepEnergy, ...]]:
        new_layers = []
        energies = []
        for w, lp, sel in zip(params, proposal.layers, selection, strict=True):
            new_layers.append(apply_layer(w, lp.delta, lp.pre, sel, lr))
            energies.append(price_layer(lp.delta, lp.pre, sel, lr, alphas))
        return Params(*new_layers), state, tuple(energies)

    return SynapseModel(init, apply, "plain")


def build_synapses(
    spec: str,
    numbers: Mapping[str, Any] | None = None,
    *,
    alphas: tuple[float, ...] = (),
    n_hidden: int | None = None,
) -> SynapseModel:
    """Build the synapse model named by ``spec`` (e.g. ``"plain"``,
    ``"caching:threshold=0.1"``); ``numbers`` may replace numeric parameters
    (keys ``"<param>"``) with traced values."""
    entry = SYNAPSE_MODELS.get(spec.partition(":")[0].strip())
    supplied: dict[str, Any] = {}
    if entry is not None and numbers is not None:
        numeric = {p.name for p in entry.params if p.kind != "str"}
        supplied = {k: v for k, v in numbers.items() if k in numeric}
        # A required number supplied in ``numbers`` (the spec may carry only the
        # structure) counts as given; its placeholder below is replaced at once.
        fill = [p.name for p in entry.params if p.required and p.name in supplied]
        if fill:
            spec += ("," if ":" in spec else ":") + ",".join(f"{k}=1" for k in fill)
    parsed = parse(spec, SYNAPSE_MODELS)
    entry = SYNAPSE_MODELS[parsed.name]
    kwargs = dict(parsed.kwargs)
    kwargs.update(supplied)
    if n_hidden is not None and entry.check is not None:
        entry.check(with_defaults(entry, kwargs), n_hidden)
    if "alphas" in inspect.signature(entry.factory).parameters:
        kwargs["alphas"] = alphas
    elif alphas:
        raise RuleError(f"synapse model {parsed.name!r} has no M_alpha meter; drop --alpha")
    return entry.factory(**kwargs)


def synapse_numbers(spec: str) -> dict[str, float]:
    """Numeric parameters of a synapse-model string."""
    parsed = parse(spec, SYNAPSE_MODELS)
    kinds = {p.name: p.kind for p in SYNAPSE_MODELS[parsed.name].params}
    return {k: v for k, v in parsed.kwargs if kinds[k] != "str"}


def synapse_structure(spec: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """Hashable compile key of a synapse-model string (its name and string parameters)."""
    parsed = parse(spec, SYNAPSE_MODELS)
    kinds = {p.name: p.kind for p in SYNAPSE_MODELS[parsed.name].params}
    return parsed.name, tuple((k, v) for k, v in parsed.kwargs if kinds[k] == "str")


# Registers the "caching" model; imported last because thrifty.caching builds on the above.
from thrifty import caching as _caching  # noqa: E402, F401
