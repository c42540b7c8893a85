"""An independent, plain NumPy (float64) re-implementation of thrifty's numerics.

Everything is dense and written out: the update matrix of every layer is formed,
every selection is a boolean matrix, every meter sums over it. It never imports
JAX. Tests feed it the same initial weights, sample order and masks as the fast
path and compare trajectories, selections and energies, step by step
(:func:`train`, :func:`train_caching`) and over whole runs with their checks,
stopping and divergence (:func:`run`).
"""

from thrifty.reference.caching import CachingStepRecord, train_caching
from thrifty.reference.network import (
    Activations,
    backward,
    forward,
    loss_value,
)
from thrifty.reference.protocol import Caching, RunResult, run
from thrifty.reference.rules import (
    ReferenceRule,
    StepInput,
    chain,
    class_neuron_mask,
    frozen_input,
    lazy,
    neuron_mask,
    neuron_select,
    per_step_mask,
    subnet,
    synapse_mask,
    top_k,
)
from thrifty.reference.train import StepRecord, energy_of, propose, train

__all__ = [
    "Activations",
    "Caching",
    "CachingStepRecord",
    "ReferenceRule",
    "RunResult",
    "StepInput",
    "StepRecord",
    "backward",
    "chain",
    "class_neuron_mask",
    "energy_of",
    "forward",
    "frozen_input",
    "lazy",
    "loss_value",
    "neuron_mask",
    "neuron_select",
    "per_step_mask",
    "propose",
    "run",
    "subnet",
    "synapse_mask",
    "top_k",
    "train",
    "train_caching",
]
