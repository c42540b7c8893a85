"""thrifty: the energy that learning spends on synaptic plasticity, and the rules that save it."""

__version__ = "0.1.0"
