"""Plasticity restrictions: selections, rules, composition and the registry."""

from thrifty.rules import library
from thrifty.rules.base import (
    ALL,
    Context,
    LayerSelection,
    Rule,
    Selection,
    chain,
    identity,
    intersect,
)
from thrifty.rules.library import (
    backprop,
    class_neuron_mask,
    frozen_input,
    keep_top_fraction,
    lazy,
    neuron_mask,
    optimal_mask_fractions,
    random_neuron_mask,
    select_neurons,
    subnet,
    synapse_mask,
    synapse_mask_optimal,
)
from thrifty.rules.registry import REGISTRY, RuleError, RuleSpec, build, describe, parse, validate

__all__ = [
    "ALL",
    "REGISTRY",
    "Context",
    "LayerSelection",
    "Rule",
    "RuleError",
    "RuleSpec",
    "Selection",
    "backprop",
    "build",
    "chain",
    "class_neuron_mask",
    "describe",
    "frozen_input",
    "identity",
    "intersect",
    "keep_top_fraction",
    "lazy",
    "library",
    "neuron_mask",
    "optimal_mask_fractions",
    "parse",
    "random_neuron_mask",
    "select_neurons",
    "subnet",
    "synapse_mask",
    "synapse_mask_optimal",
    "validate",
]
