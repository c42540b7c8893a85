"""Shared helpers for the tests: small data, fast-path runs on given weights and order."""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from thrifty.config import RunConfig
from thrifty.network import Params, augment
from thrifty.rules.base import LayerSelection
from thrifty.train import Structure, _as_arrays, _init, numbers_of, run_chunk


def dot_precisions(lowered: Any) -> list[str]:
    """The ``precision = [...]`` of every ``dot_general`` in a lowered program ("none"
    for a product that names none)."""
    dots = [line for line in lowered.as_text().splitlines() if "dot_general" in line]
    found = [re.search(r"precision = \[([^\]]*)\]", line) for line in dots]
    return [m.group(1) if m else "none" for m in found]


def tie_free_data(n: int = 60, n_inputs: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Augmented float64 inputs (n, n_inputs + 1) with no ties, and labels (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, n_inputs))
    y = rng.integers(0, 10, n).astype(np.int32)
    return np.asarray(augment(jnp.asarray(x))), y


def tied_data(n: int = 60, n_inputs: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Augmented float64 inputs (n, n_inputs + 1), quarters from −0.75 to 0.75, so that
    many inputs, and the updates of one unit, are exactly equal; and labels (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (n, n_inputs)) * 0.25
    y = rng.integers(0, 10, n).astype(np.int32)
    return np.asarray(augment(jnp.asarray(x))), y


def initial_state(
    config: RunConfig, n_inputs: int, *, seed: int = 0
) -> tuple[Structure, dict[str, Any], Any, jax.Array]:
    """A run of ``config`` (resolved) with ``n_inputs`` inputs and 10 outputs, before its
    first sample: ``(structure, numbers, TrainState, key of its steps)`` for
    :func:`thrifty.train.run_chunk`, in the config's dtype, from the seed ``seed``."""
    dtype = jnp.dtype(config.dtype)
    structure = Structure.of(config, n_inputs, 10)
    numbers = _as_arrays(numbers_of(config), dtype)
    k_init, k_steps = jax.random.split(jax.random.key(seed))
    state = _init(structure, numbers, k_init, jnp.asarray(config.sigma, dtype))
    return structure, numbers, state, k_steps


def fast_run(
    config: RunConfig,
    x_aug: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    *,
    seed: int = 0,
    params: Params | None = None,
) -> tuple[Any, Any]:
    """Run the compiled chunk over ``order`` from the state of ``seed`` (or ``params``).

    Returns (final TrainState, StepOutput); also the initial state as attribute-free tuple.
    """
    config = config.resolved()
    dtype = jnp.dtype(config.dtype)
    structure, numbers, state, k_steps = initial_state(config, x_aug.shape[1] - 1, seed=seed)
    if params is not None:
        state = state._replace(params=Params(*(jnp.asarray(w, dtype) for w in params)))
    initial = jax.tree.map(lambda a: np.array(a), state)
    final, out = run_chunk(
        state,
        jnp.asarray(order, jnp.int32),
        jnp.arange(len(order), dtype=jnp.int32),
        jnp.asarray(x_aug, dtype),
        jnp.asarray(y, jnp.int32),
        numbers,
        k_steps,
        structure=structure,
    )
    return initial, final, out, (structure, numbers, k_steps)


def numpy_selection(delta: np.ndarray, pre: np.ndarray, sel: LayerSelection) -> np.ndarray:
    """A layer's selection as a boolean (n_post, n_pre) matrix, in NumPy from the
    selection's fields alone (independent of :func:`thrifty.energy.dense_selection`)."""
    mask = np.ones((delta.size, pre.size), bool)
    d = delta.copy()
    if sel.post is not None:
        mask &= (np.asarray(sel.post) != 0)[:, None]
        d = d * np.asarray(sel.post)
    if sel.pre is not None:
        mask &= (np.asarray(sel.pre) != 0)[None, :]
    if sel.synapses is not None:
        mask &= np.asarray(sel.synapses, bool)
    if sel.listed is not None:
        listed = np.asarray(sel.listed)
        mask &= np.isin(np.arange(mask.size), listed).reshape(mask.shape)
    if sel.threshold is not None:
        mask &= np.abs(d)[:, None] >= np.asarray(sel.threshold, float)[None, :]
    return mask
