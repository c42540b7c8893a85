"""Per-sample training: step, chunk (``lax.scan``), run.

One *step* presents one sample: forward, backward, the rules select, the synapse
model applies and prices the update. A *chunk* is ``check_interval`` steps
compiled as one ``jax.lax.scan``; between chunks the host checks accuracy, sums
the energies exactly (int64) and decides whether to stop.

A run ends as

- ``converged``: accuracy on the check set reached the criterion at a check;
  the energy is that spent up to this check;
- ``budget``: the sample budget ran out first;
- ``diverged``: a loss or an update became non-finite; ``diverged_at`` is the index
  of that sample, and only the samples before it are charged.

Example
-------
>>> from thrifty.config import RunConfig
>>> from thrifty import data
>>> record = run(RunConfig(dataset="synthetic", n_hidden=20), data.synthetic())  # doctest: +SKIP
>>> record["status"], record["energy"]["total"]["m0"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thrifty import __version__
from thrifty.config import ConfigError, RunConfig
from thrifty.energy import (
    Ledger,
    StepEnergy,
    effective_vectors,
    inefficiency,
    inverse_simpson,
    minimal_energy,
    price_layer,
    updated_synapses,
)
from thrifty.network import (
    MATMUL_PRECISION,
    LayerProposal,
    Params,
    Proposal,
    activate,
    activate_slope,
    augment,
    chunk_classes,
    chunk_rows,
    init_params,
    output_error,
    output_loss,
    propose,
    row_chunks,
)
from thrifty.rules import registry as rule_registry
from thrifty.rules.base import Context
from thrifty.synapses import SYNAPSE_MODELS, build_synapses, synapse_numbers, synapse_structure


class TrainState(NamedTuple):
    """Everything that changes during a run.

    Attributes
    ----------
    params : Params
        Persistent weights.
    synapse_state : Any
        State of the synapse model (empty for plain synapses).
    rule_state : Any
        State of the rules (fixed masks, ...).
    active : Array, shape ()
        1 while the run learns; 0 freezes it (no updates, no energy).
    """

    params: Params
    synapse_state: Any
    rule_state: Any
    active: jax.Array


class StepOutput(NamedTuple):
    """Per-step outputs of a chunk (each with a leading step axis).

    ``updated`` holds, per layer, the boolean matrix of synapses updated at the
    step when the run tallies them (``simpson``), else is empty; :func:`_chunk`
    replaces it by the chunk's inverse Simpson index per layer.
    """

    energy: tuple[StepEnergy, ...]
    loss: jax.Array
    updated: tuple[jax.Array, ...] = ()


@dataclasses.dataclass(frozen=True)
class Structure:
    """What a compiled chunk depends on besides numbers (hashable)."""

    n_inputs: int
    n_hidden: int
    n_outputs: int
    activation: str
    loss: str
    rules: tuple[Any, ...]
    synapses: tuple[Any, ...]
    dtype: str
    alphas: tuple[float, ...]
    simpson: bool = False
    registrations: tuple[int, ...] = ()
    """The registration serials of the rules and the synapse model: a rule registered
    again under its name compiles anew (:func:`thrifty.rules.registry.registrations`)."""

    @classmethod
    def of(cls, config: RunConfig, n_inputs: int, n_outputs: int) -> Structure:
        """Structure of a (resolved) config for data of the given shape."""
        shapes = ((config.n_hidden, n_inputs + 1), (n_outputs, config.n_hidden + 1))
        return cls(
            n_inputs=n_inputs,
            n_hidden=config.n_hidden,
            n_outputs=n_outputs,
            activation=config.activation,
            loss=config.loss,
            rules=rule_registry.spec_structure(config.rules, shapes),
            synapses=synapse_structure(config.synapses),
            dtype=config.dtype,
            alphas=config.alphas,
            simpson=config.simpson,
            registrations=rule_registry.registrations(config.rules)
            + rule_registry.registrations([config.synapses], SYNAPSE_MODELS),
        )


def numbers_of(config: RunConfig) -> dict[str, Any]:
    """The numbers of a run that may be traced: lr and the rules' numeric parameters."""
    return {
        "lr": config.lr,
        "rules": rule_registry.spec_numbers(config.rules),
        "synapses": synapse_numbers(config.synapses),
    }


def _as_arrays(numbers: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """:func:`numbers_of` as JAX scalars: lr and float parameters in the run's float
    type, int parameters as int32 (so that a rule may index or count with them)."""

    def array(value: Any) -> jax.Array:
        integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
        return jnp.asarray(value, jnp.int32 if integer else dtype)

    return {
        "lr": jnp.asarray(numbers["lr"], dtype),
        "rules": {k: array(v) for k, v in numbers["rules"].items()},
        "synapses": {k: array(v) for k, v in numbers["synapses"].items()},
    }


def _specs(structure: Structure, numbers: dict[str, Any]) -> tuple[Any, Any]:
    specs = [
        rule_registry.RuleSpec(name, kwargs) for name, kwargs in _rule_specs(structure, numbers)
    ]
    rule = rule_registry.build(specs, numbers["rules"])
    name, str_kwargs = structure.synapses
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in str_kwargs) if str_kwargs else "")
    syn = build_synapses(spec, numbers["synapses"], alphas=structure.alphas)
    return rule, syn


def _rule_specs(structure: Structure, numbers: dict[str, Any]) -> list[tuple[str, tuple]]:
    """Rule specs with every numeric parameter taken from ``numbers``."""
    out = []
    for i, (name, str_kwargs) in enumerate(structure.rules):
        kw = dict(str_kwargs)
        for key, value in numbers["rules"].items():
            idx, _, pname = key.partition(".")
            if int(idx) == i:
                kw[pname] = value
        out.append((name, tuple(kw.items())))
    return out


def init_state(
    structure: Structure, numbers: dict[str, Any], key: jax.Array, sigma: Any
) -> TrainState:
    """Initial weights and rule/synapse states from one key (traceable)."""
    k_params, k_rule, k_syn = jax.random.split(key, 3)
    params = init_params(
        k_params,
        n_hidden=structure.n_hidden,
        n_inputs=structure.n_inputs,
        n_outputs=structure.n_outputs,
        sigma=sigma,
        dtype=jnp.dtype(structure.dtype),
    )
    rule, syn = _specs(structure, numbers)
    return TrainState(
        params=params,
        synapse_state=syn.init(params, k_syn),
        rule_state=rule.init(params, k_rule),
        active=jnp.ones((), jnp.dtype(structure.dtype)),
    )


def make_step(
    structure: Structure,
    numbers: dict[str, Any],
    x_data: jax.Array,
    y_data: jax.Array,
    key: jax.Array,
) -> Callable[[TrainState, tuple[jax.Array, jax.Array]], tuple[TrainState, StepOutput]]:
    """The function ``(state, (sample_index, step)) -> (state, StepOutput)`` of one sample."""
    rule, syn = _specs(structure, numbers)
    lr = numbers["lr"]
    weights = syn.weights or (lambda params, s: params)
    parts = syn.parts or (lambda params, s: (weights(params, s),))
    stateless = structure.synapses[0] == "plain"

    def step(state: TrainState, inp: tuple[jax.Array, jax.Array]) -> tuple[TrainState, StepOutput]:
        index, t = inp
        x = x_data[index]
        label = y_data[index]
        target = jax.nn.one_hot(label, structure.n_outputs, dtype=x.dtype)
        w = weights(state.params, state.synapse_state)
        proposal = propose(
            parts(state.params, state.synapse_state),
            x,
            target,
            activation=structure.activation,
            loss=structure.loss,
            hidden_input=(
                None
                if syn.hidden_input is None
                else syn.hidden_input(state.params, state.synapse_state, x)
            ),
        )
        ctx = Context(step=t, label=label, key=jax.random.fold_in(key, t))
        selection, rule_state = rule.update(proposal, state.rule_state, w, ctx)
        # A frozen run (active = 0) changes nothing and so spends nothing.
        if stateless:
            params, syn_state, energy = syn.apply(
                state.params, state.synapse_state, proposal, selection, lr * state.active
            )
            energy = jax.tree.map(lambda e: e * state.active.astype(e.dtype), energy)
        else:  # e.g. caching: transient weights must not decay once the run is frozen

            def learn(st: TrainState) -> tuple[Params, Any, tuple[StepEnergy, ...]]:
                return syn.apply(st.params, st.synapse_state, proposal, selection, lr)

            def keep(st: TrainState) -> tuple[Params, Any, tuple[StepEnergy, ...]]:
                shapes = jax.eval_shape(learn, st)[2]
                zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
                return st.params, st.synapse_state, zeros

            params, syn_state, energy = jax.lax.cond(state.active > 0, learn, keep, state)
        loss = output_loss(proposal.output, target, structure.loss)
        new = TrainState(params, syn_state, rule_state, state.active)
        updated: tuple[jax.Array, ...] = ()
        if structure.simpson:
            updated = tuple(
                updated_synapses(lp.delta, lp.pre, sel) & (state.active != 0)
                for lp, sel in zip(proposal.layers, selection, strict=True)
            )
        return new, StepOutput(energy, loss, updated)

    return step


DEFERRED_BLOCK = 32
"""Samples whose weight updates :func:`_deferred_chunk` applies together, for N > 2000.

The per-sample work grows with the block (products with the K rows kept so far),
the per-block passes over the weights shrink with it. Measured on a 2-core CPU
(plain backprop, ``bench/bench_speed.py``): K = 64 was fastest at N = 100 and 1000,
K = 32 at N = 10 000 (:func:`deferred_block`)."""


def deferred_block(n_hidden: int) -> int:
    """Default block of :func:`_deferred_chunk` for N hidden units: 64 up to 2000, else 32."""
    return 64 if n_hidden <= 2000 else DEFERRED_BLOCK


def _selection_shape(structure: Structure, rule: Any) -> Any:
    """The selection that ``rule`` returns for this structure, as shapes (None kept)."""
    dtype = jnp.dtype(structure.dtype)
    n_in, n_hid, n_out = structure.n_inputs + 1, structure.n_hidden, structure.n_outputs

    def select(params: Params, key: jax.Array) -> Any:
        proposal = Proposal(
            layers=(
                LayerProposal(jnp.zeros(n_hid, dtype), jnp.zeros(n_in, dtype)),
                LayerProposal(jnp.zeros(n_out, dtype), jnp.zeros(n_hid + 1, dtype)),
            ),
            hidden_input=jnp.zeros(n_hid, dtype),
            output=jnp.zeros(n_out, dtype),
        )
        ctx = Context(step=jnp.zeros((), jnp.int32), label=jnp.zeros((), jnp.int32), key=key)
        # the state as training carries it: Python numbers from init become arrays
        state = jax.tree.map(jnp.asarray, rule.init(params, key))
        return rule.update(proposal, state, params, ctx)[0]

    params = Params(
        jax.ShapeDtypeStruct((n_hid, n_in), dtype), jax.ShapeDtypeStruct((n_out, n_hid + 1), dtype)
    )
    return jax.eval_shape(select, params, jax.random.key(0))


def defers_updates(structure: Structure, numbers: dict[str, Any]) -> bool:
    """Whether chunks of this structure may defer their weight updates (see
    :func:`_deferred_chunk`): plain synapses, no Simpson tally, and rules that do not
    read the weights' values and select by post and pre masks only (no fixed synapses,
    no threshold), so that every expressed update stays an outer product."""
    if structure.synapses[0] != "plain" or structure.simpson:
        return False
    rule, _ = _specs(structure, numbers)
    if rule.reads_weights:
        return False
    return all(
        sel.synapses is None and sel.listed is None and sel.threshold is None
        for sel in _selection_shape(structure, rule)
    )


def _deferred_chunk(
    state: TrainState,
    indices: jax.Array,
    steps: jax.Array,
    x_data: jax.Array,
    y_data: jax.Array,
    numbers: dict[str, Any],
    key: jax.Array,
    *,
    structure: Structure,
    block: int,
) -> tuple[TrainState, StepOutput]:
    """Plain-synapse training over a chunk, the weight updates of ``block`` samples at once.

    Same result as :func:`_chunk` for ``indices`` of length T, a multiple of
    ``block``, when :func:`defers_updates`. Every expressed update is an outer
    product ``−η · d_t ⊗ a_t`` (the layer's errors and input activities after the
    rules' post and pre masks), so within a block of K samples, with ``W`` the
    weights at its start:

    - the input to the hidden units at sample k is
      ``W₁ x_k − Σ_{τ<k} η d_τ (a_τ · x_k)``: one matrix product ``X W₁ᵀ`` (K, N)
      at the start of the block, and the Gram matrix ``X Xᵀ`` (K, K) when the rules
      mask no inputs (else one (K,) product per sample with the masked rows);
    - the output is ``W₂ h_k − Σ_{τ<k} η e_τ (h_τ · h_k)`` and the error sent back
      ``W₂ᵀ e_k − Σ_{τ<k} η h_τ (e_τ · e_k)`` (output errors e and augmented hidden
      activities h after the masks), from the K rows kept so far;
    - the weights at the end of the block are ``W − Σ_τ η d_τ ⊗ a_τ``, one matrix
      product per layer.

    The rules see each sample's exact proposal and the weights at the block's start
    (they read only their shapes: ``reads_weights`` is False). The weights are read
    twice and written once per block instead of per sample. The energies come from
    the proposals and selections as in the per-sample step, computed for the whole
    block at once; the weights differ from the per-sample step's only by the order
    of floating-point additions.
    """
    dtype = jnp.dtype(structure.dtype)
    rule, _ = _specs(structure, numbers)
    masks_inputs = _selection_shape(structure, rule)[0].pre is not None
    active = state.active
    lr = numbers["lr"] * active
    n_blocks = indices.shape[0] // block
    n_hidden = structure.n_hidden

    def price(delta: jax.Array, pre: jax.Array, sel: Any) -> StepEnergy:
        energy = price_layer(delta, pre, sel, lr, structure.alphas)
        return jax.tree.map(lambda e: e * active.astype(e.dtype), energy)

    def one_block(
        carry: tuple[Params, Any], inp: tuple[jax.Array, jax.Array]
    ) -> tuple[tuple[Params, Any], StepOutput]:
        params, rule_state = carry
        rows, ts = inp
        w_in, w_out = params
        x_block = x_data[rows]  # (K, n_inputs + 1)
        labels = y_data[rows]
        targets = jax.nn.one_hot(labels, structure.n_outputs, dtype=dtype)
        stale = x_block @ w_in.T  # (K, N): hidden inputs before the block's updates
        gram = None if masks_inputs else x_block @ x_block.T  # (K, K)

        def sample(carry: tuple[Any, ...], k: jax.Array) -> tuple[tuple[Any, ...], Any]:
            # η·d_τ (K, N), masked inputs a_τ (K, n_inputs + 1) or None, masked
            # augmented h_τ (K, N + 1), η·e_τ (K, n_outputs); 0 for τ ≥ k
            hidden_steps, inputs, acts, out_steps, rule_state = carry
            x = x_block[k]
            overlap = gram[k] if inputs is None else inputs @ x
            u = stale[k] - overlap @ hidden_steps
            h = augment(activate(u, structure.activation))
            y = w_out @ h - out_steps.T @ (acts @ h)
            e = output_error(y, targets[k], structure.loss)
            back = (e @ w_out - (out_steps @ e) @ acts)[:n_hidden]
            d = back * activate_slope(u, structure.activation)
            proposal = Proposal(
                layers=(LayerProposal(d, x), LayerProposal(e, h)), hidden_input=u, output=y
            )
            ctx = Context(step=ts[k], label=labels[k], key=jax.random.fold_in(key, ts[k]))
            selection, rule_state = rule.update(proposal, rule_state, params, ctx)
            d_eff, x_eff = effective_vectors(d, x, selection[0])
            e_eff, h_eff = effective_vectors(e, h, selection[1])
            loss = output_loss(y, targets[k], structure.loss)
            # the rows are written in place once every product above has read the
            # arrays: a data dependence on ``d`` orders the writes after the reads
            after = jnp.zeros((), dtype) * d[0]
            carry = (
                hidden_steps.at[k].set(lr * d_eff),
                None if inputs is None else inputs.at[k].set(x_eff + after),
                acts.at[k].set(h_eff + after),
                out_steps.at[k].set(lr * e_eff + after),
                rule_state,
            )
            return carry, (d, e, h, selection, loss)

        zeros = (
            jnp.zeros((block, n_hidden), dtype),
            jnp.zeros(x_block.shape, dtype) if masks_inputs else None,
            jnp.zeros((block, n_hidden + 1), dtype),
            jnp.zeros((block, structure.n_outputs), dtype),
            rule_state,
        )
        (hidden_steps, inputs, acts, out_steps, rule_state), (d, e, h, selection, loss) = (
            jax.lax.scan(sample, zeros, jnp.arange(block))
        )
        energy = (
            jax.vmap(price)(d, x_block, selection[0]),
            jax.vmap(price)(e, h, selection[1]),
        )
        applied = x_block if inputs is None else inputs
        new = Params(w_in - hidden_steps.T @ applied, w_out - out_steps.T @ acts)
        return (new, rule_state), StepOutput(energy, loss)

    (params, rule_state), out = jax.lax.scan(
        one_block,
        (state.params, state.rule_state),
        (indices.reshape(n_blocks, block), steps.reshape(n_blocks, block)),
    )
    flat = jax.tree.map(lambda a: a.reshape(n_blocks * block, *a.shape[2:]), out)
    return state._replace(params=params, rule_state=rule_state), flat


def _chunk(
    state: TrainState,
    indices: jax.Array,
    steps: jax.Array,
    x_data: jax.Array,
    y_data: jax.Array,
    numbers: dict[str, Any],
    key: jax.Array,
    *,
    structure: Structure,
    block: int | None = None,
) -> tuple[TrainState, StepOutput]:
    """Train over ``indices``; see :data:`run_chunk`.

    When :func:`defers_updates`, the largest multiple of ``block`` samples (None:
    :func:`deferred_block`) goes through :func:`_deferred_chunk` and the rest sample
    by sample; ``block`` = 1: every sample is stepped on its own.
    """
    step = make_step(structure, numbers, x_data, y_data, key)
    block = deferred_block(structure.n_hidden) if block is None else block
    deferred = (indices.shape[0] // block) * block
    if block > 1 and deferred and defers_updates(structure, numbers):
        state, head = _deferred_chunk(
            state,
            indices[:deferred],
            steps[:deferred],
            x_data,
            y_data,
            numbers,
            key,
            structure=structure,
            block=block,
        )
        state, tail = jax.lax.scan(step, state, (indices[deferred:], steps[deferred:]))
        return state, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), head, tail)
    if not structure.simpson:
        return jax.lax.scan(step, state, (indices, steps))

    def tallied(
        carry: tuple[TrainState, tuple[jax.Array, ...]], inp: tuple[jax.Array, jax.Array]
    ) -> tuple[tuple[TrainState, tuple[jax.Array, ...]], StepOutput]:
        st, tally = carry
        st, out = step(st, inp)
        tally = tuple(t + u.astype(jnp.int32) for t, u in zip(tally, out.updated, strict=True))
        return (st, tally), out._replace(updated=())

    zeros = tuple(jnp.zeros(w.shape, jnp.int32) for w in state.params)
    (state, tally), out = jax.lax.scan(tallied, (state, zeros), (indices, steps))
    dtype = state.params.hidden.dtype
    return state, out._replace(updated=tuple(inverse_simpson(t, dtype) for t in tally))


def _jit(fun: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``jax.jit(fun, **options)``, traced and run with matrix products in
    :data:`MATMUL_PRECISION` whatever the caller's default. ``.lower`` lowers it
    likewise (to inspect the program)."""
    compiled = jax.jit(fun, **options)

    def in_precision(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def call(*args: Any, **kwargs: Any) -> Any:
            with jax.default_matmul_precision(MATMUL_PRECISION):
                return f(*args, **kwargs)

        return call

    run = functools.wraps(fun)(in_precision(compiled))
    run.lower = in_precision(compiled.lower)  # type: ignore[attr-defined]
    return run


run_chunk = _jit(_chunk, static_argnames=("structure", "block"), donate_argnums=(0,))
"""Compiled chunk: ``(state, indices (T,), steps (T,), x (n, d+1), y (n,), numbers, key)``;
keywords ``structure`` and ``block`` (see :func:`_chunk`)."""

_init = _jit(init_state, static_argnames=("structure",))


def _count_correct(
    params: Params, x_chunks: jax.Array, y_chunks: jax.Array, *, activation: str
) -> jax.Array:
    """Correct count over chunks of rows: ``x_chunks`` (count, size, n_inputs + 1),
    ``y_chunks`` (count, size), padded with the label −1 (see :func:`row_chunks`)."""
    return jnp.sum(chunk_classes(params, x_chunks, activation=activation) == y_chunks)


_correct_chunks = _jit(_count_correct, static_argnames=("activation",))


def _check_chunks(x_aug: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A check set as chunks of :func:`chunk_rows` rows, for :func:`_count_correct`:
    ``x_aug`` (n, n_inputs + 1) → (count, size, n_inputs + 1), ``y`` (n,) → (count,
    size), padded with the label −1, which no class matches."""
    size = chunk_rows()
    return row_chunks(x_aug, size), row_chunks(y, size, fill=-1)


@functools.partial(_jit, static_argnames=("activation",))
def _correct(params: Params, x_aug: jax.Array, y: jax.Array, *, activation: str) -> jax.Array:
    x_chunks, y_chunks = _check_chunks(x_aug, y)
    return _count_correct(params, x_chunks, y_chunks, activation=activation)


def accuracy(params: Params, x_aug: jax.Array, y: jax.Array, *, activation: str) -> float:
    """Fraction of rows of ``x_aug`` (n, d+1) classified as ``y`` (n,)."""
    return float(_correct(params, x_aug, y, activation=activation)) / int(y.shape[0])


HIDDEN_CACHE_BYTES: int | None = None
"""Largest hidden-activity cache (bytes) that :class:`CheckSet` keeps for a check set;
None: :func:`hidden_cache_limit` decides (from ``THRIFTY_CHECK_CACHE_BYTES`` when set,
else from the memory free when the cache would be built)."""

HIDDEN_CACHE_MAX = 4 << 30
"""Largest hidden-activity cache (bytes) kept however much memory is free: 4 GiB, the
activity of 10 000 check images at N = 100 000 in float32."""

HIDDEN_CACHE_UNKNOWN = 1 << 30
"""Largest hidden-activity cache (bytes) kept where the free memory is unknown: 1 GiB."""

CHECK_CACHE_ENV = "THRIFTY_CHECK_CACHE_BYTES"
"""Environment variable that sets the largest hidden-activity cache, in bytes (0: none)."""

LOCAL_WORKERS_ENV = "THRIFTY_LOCAL_WORKERS"
"""Environment variable with the number of worker processes that share this machine's
memory; :class:`thrifty.experiments.executors.LocalPool` sets it in its workers."""


WEIGHT_COPIES = 4
"""About how many times its weights' size a run holds at its peak, for
:func:`warn_if_memory_short`: ``thrifty train --budget-epochs 0.02`` of plain backprop
on MNIST peaked at 1.97 GB at N = 100 000 (0.31 GB of weights; the data and JAX itself
count more there) and at 6.9 GB at N = 500 000 (1.57 GB of weights, 4.4 times; that
run diverged at its sixth sample, within its first chunk of 1000)."""


def warn_if_memory_short(structure: Structure) -> None:
    """Warn when the weights of a run of ``structure``, :data:`WEIGHT_COPIES` times over,
    exceed the memory free (:func:`free_memory_bytes`): the run would likely be stopped
    by the system for lack of memory, with no message of its own."""
    free = free_memory_bytes()
    n = structure.n_hidden
    weights = n * (structure.n_inputs + 1) + structure.n_outputs * (n + 1)
    need = WEIGHT_COPIES * weights * np.dtype(structure.dtype).itemsize
    if free is not None and need > free:
        warnings.warn(
            f"N={n}: a run holds about {need / 1e9:.1f} GB ({WEIGHT_COPIES} times its "
            f"weights) and {free / 1e9:.1f} GB of memory is free; it may be stopped for "
            "lack of memory",
            stacklevel=3,
        )


def free_memory_bytes() -> int | None:
    """Bytes the default backend can still allocate, or None when unknown.

    On a CPU, the system's available memory (``MemAvailable`` of ``/proc/meminfo``),
    and no more than the room left under the process's cgroup limits
    (:func:`_cgroup_room`), as in a container or a cluster job, nor than the memory
    limit of the Dask worker it runs in. On other backends, what this process's JAX
    allocator may still take on its first device (``bytes_limit − bytes_in_use`` of its
    memory statistics; other processes' use of the device is not counted).
    """
    if jax.default_backend() != "cpu":
        try:
            stats = jax.local_devices()[0].memory_stats() or {}
            return int(stats["bytes_limit"]) - int(stats["bytes_in_use"])
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):
            return None
    sources = (_meminfo_available(), _cgroup_room(), _dask_worker_limit())
    known = [b for b in sources if b is not None]
    return min(known) if known else None


def _dask_worker_limit() -> int | None:
    """The memory limit (bytes) of the Dask worker this process is, or None: not in a
    Dask worker, or a worker without one. Dask's default divides a machine's memory
    among the worker processes started on it."""
    distributed = sys.modules.get("distributed")  # imported in every Dask worker
    if distributed is None:
        return None
    try:
        limit = distributed.get_worker().memory_manager.memory_limit
    except (AttributeError, ValueError, TypeError):  # ValueError: not in a worker
        return None
    return int(limit) if limit else None


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (Linux), else None."""
    kib = _file_field(path, "MemAvailable:")
    return None if kib is None else kib * 1024


def _file_field(path: str, name: str) -> int | None:
    """The whole number after ``name`` on its line of a ``name value ...`` file such
    as ``/proc/meminfo`` or a cgroup's ``memory.stat``; None when absent or unread."""
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == name:
                    return int(words[1])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


_CGROUP_FILES = {
    # version: (directory under the mount, limit, usage, reclaimable field of memory.stat)
    2: ("", "memory.max", "memory.current", "inactive_file"),
    1: ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def _cgroup_room(root: str = "/sys/fs/cgroup", membership: str = "/proc/self/cgroup") -> int | None:
    """Bytes left under this process's cgroup memory limits, or None without one.

    Reads the limit and usage (version 2: ``memory.max``, ``memory.current``; version
    1: ``memory.limit_in_bytes``, ``memory.usage_in_bytes`` under ``memory/``) of the
    process's cgroup, as ``membership`` names it, of every cgroup above it, and of the
    hierarchy's root at ``root`` (where a container sees its own cgroup). The usage
    counts the page cache, which the kernel reclaims before it runs out; its inactive
    file pages (``inactive_file``, version 1 ``total_inactive_file``, of
    ``memory.stat``) are not counted as used. Returns the least room (limit − usage,
    at least 0) among the cgroups with a limit.
    """
    try:
        with open(membership) as f:
            entries = [line.strip().split(":", 2) for line in f if line.count(":") >= 2]
    except (OSError, UnicodeDecodeError):
        entries = []
    places: list[tuple[str, int]] = []
    for _, controllers, path in entries:
        version = 2 if controllers == "" else 1 if "memory" in controllers.split(",") else 0
        if version:
            base = os.path.join(root, _CGROUP_FILES[version][0])
            places += [(d, version) for d in _cgroup_dirs(base, path)]
    places += [(os.path.join(root, _CGROUP_FILES[v][0]), v) for v in (2, 1)]
    rooms = []
    for directory, version in places:
        _, limit_file, usage_file, reclaimable = _CGROUP_FILES[version]
        try:
            with open(os.path.join(directory, limit_file)) as f:
                limit = f.read().strip()
            with open(os.path.join(directory, usage_file)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not (limit.isascii() and limit.isdigit()) or int(limit) >= 1 << 60:
            continue  # "max", or version 1's huge number: no limit here
        usage -= _file_field(os.path.join(directory, "memory.stat"), reclaimable) or 0
        rooms.append(max(int(limit) - usage, 0))
    return min(rooms) if rooms else None


def _cgroup_dirs(root: str, path: str) -> list[str]:
    """The directories under ``root`` of the cgroup ``path`` and of those above it."""
    parts = [part for part in path.split("/") if part]
    return [os.path.join(root, *parts[:depth]) for depth in range(len(parts), 0, -1)]


def hidden_cache_limit() -> int:
    """Largest hidden-activity cache (bytes) :class:`CheckSet` builds now.

    :data:`HIDDEN_CACHE_BYTES` when set, else the environment variable
    ``THRIFTY_CHECK_CACHE_BYTES`` when set; else a quarter of
    :func:`free_memory_bytes`, divided among the worker processes that share the
    machine (``THRIFTY_LOCAL_WORKERS``, set by local sweeps), at most
    :data:`HIDDEN_CACHE_MAX`; or :data:`HIDDEN_CACHE_UNKNOWN` when the free memory is
    unknown. Whether a cache is kept changes the time of a check, never its result.

    Raises
    ------
    ConfigError
        For an environment variable that is not a whole number (at least 0 bytes, at
        least 1 worker).
    """
    if HIDDEN_CACHE_BYTES is not None:
        return HIDDEN_CACHE_BYTES
    limit = _env_count(CHECK_CACHE_ENV, least=0)
    if limit is not None:
        return limit
    free = free_memory_bytes()
    if free is None:
        return HIDDEN_CACHE_UNKNOWN
    workers = _env_count(LOCAL_WORKERS_ENV, least=1) or 1
    return min(free // (4 * workers), HIDDEN_CACHE_MAX)


def _env_count(name: str, *, least: int) -> int | None:
    """The whole number in the environment variable ``name``, None when it is unset or
    blank; :class:`~thrifty.config.ConfigError` (a ValueError) unless it is at least
    ``least``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise ConfigError(f"{name} must be a whole number, at least {least}; got {text!r}")
    return value


BATCH_ENV = "THRIFTY_BATCH"
"""Environment variable that overrides :func:`batch_mode`: ``vmap`` or ``map``."""


def _batch_override() -> str | None:
    """``vmap`` or ``map`` from :data:`BATCH_ENV`, None when it is unset or blank;
    :class:`~thrifty.config.ConfigError` for any other value."""
    mode = os.environ.get(BATCH_ENV, "").strip()
    if mode and mode not in ("vmap", "map"):
        raise ConfigError(f"{BATCH_ENV} must be vmap or map; got {mode!r}")
    return mode or None


def check_environment() -> None:
    """Reject a bad value of any of thrifty's environment variables of training
    (:data:`CHECK_CACHE_ENV`, :data:`LOCAL_WORKERS_ENV`, :data:`BATCH_ENV`) before any
    work, with a :class:`~thrifty.config.ConfigError` naming it; each is read again
    where it is used."""
    _env_count(CHECK_CACHE_ENV, least=0)
    _env_count(LOCAL_WORKERS_ENV, least=1)
    _batch_override()


@functools.partial(_jit, static_argnames=("activation",))
def _hidden_rows(w_hidden: jax.Array, x_chunks: jax.Array, *, activation: str) -> jax.Array:
    """Hidden activity of chunks of rows (count, size, n_inputs + 1) → (count, size, N)."""
    return jax.lax.map(lambda x: activate(x @ w_hidden.T, activation), x_chunks)


@_jit
def _changed_rows(w: jax.Array, w_ref: jax.Array) -> jax.Array:
    return jnp.any(w != w_ref, axis=1)


@functools.partial(_jit, static_argnames=("activation",))
def _correct_from(
    hidden: jax.Array,
    rows: jax.Array,
    w_rows: jax.Array,
    w_output: jax.Array,
    x_chunks: jax.Array,
    y_chunks: jax.Array,
    *,
    activation: str,
) -> jax.Array:
    """Correct count with the hidden activity of units ``rows`` recomputed, chunk by
    chunk: ``hidden`` (count, size, N), ``x_chunks`` (count, size, n_inputs + 1),
    ``y_chunks`` (count, size), padded with the label −1."""

    def correct(chunk: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        h, x, y = chunk
        h = h.at[:, rows].set(activate(x @ w_rows.T, activation))
        out = h @ w_output[:, :-1].T + w_output[:, -1]
        return jnp.sum(jnp.argmax(out, -1) == y)

    return jnp.sum(jax.lax.map(correct, (hidden, x_chunks, y_chunks)))


class CheckSet:
    """Accuracy checks on a fixed set that recompute only the hidden units that changed.

    Restrictions that freeze part of the input layer (subnet, neuron mask, frozen
    input layer, small top-k fractions early on) leave most hidden units'
    incoming weights at their initial values; their activity on the check set is
    computed once and reused. Units whose incoming weights changed are recomputed
    at every check. When more than a quarter changed since the reference weights
    (a rule under which every unit learns), a check is a plain pass over the
    set, in chunks (as :func:`accuracy`), and takes the weights as its new reference;
    the activity is kept again at the next check at which at most a quarter changed.
    The activity is kept only when it fits :func:`hidden_cache_limit` when the cache
    would be built (a quarter of the free memory shared among local workers, at most
    4 GiB: 10 000 check images at N ≤ 100 000 in float32 where enough memory is free);
    otherwise checks are plain passes.

    Parameters
    ----------
    x_aug : Array, shape (n, n_inputs + 1)
    y : Array, shape (n,)
    activation : str
    keep : bool
        False: never keep the activity, every check is a plain pass (for runs in which
        every unit learns at every sample, such as plain backprop, whose second check
        would drop the cache its first one built).
    """

    def __init__(
        self, x_aug: jax.Array, y: jax.Array, *, activation: str, keep: bool = True
    ) -> None:
        self.n, self.activation, self.keep = int(y.shape[0]), activation, keep
        self.x_chunks, self.y_chunks = _check_chunks(x_aug, y)
        self.hidden: jax.Array | None = None
        self.w_ref: jax.Array | None = None

    def accuracy(self, params: Params) -> float:
        """Fraction of the set classified correctly by ``params``."""
        if not self.keep:
            return self._full_pass(params)
        n, n_hidden = self.n, int(params.hidden.shape[0])
        changed = np.zeros(0, np.int64)
        if self.w_ref is not None:
            changed = np.flatnonzero(np.asarray(_changed_rows(params.hidden, self.w_ref)))
        if changed.size > n_hidden // 4:
            # keeping the activity of the set would cost more than it saves now
            self.w_ref = jnp.array(params.hidden, copy=True)  # the state is donated
            self.hidden = None
            return self._full_pass(params)
        if self.hidden is None:
            rows_kept = self.x_chunks.shape[0] * self.x_chunks.shape[1]
            if rows_kept * n_hidden * params.hidden.dtype.itemsize > hidden_cache_limit():
                self.w_ref = None  # no cache to update: no reference to compare with
                return self._full_pass(params)
            self.w_ref = jnp.array(params.hidden, copy=True)  # the state is donated
            self.hidden = _hidden_rows(params.hidden, self.x_chunks, activation=self.activation)
            changed = changed[:0]
        # pad to a power of two (repeating a row) so few shapes get compiled
        size = 1 << max(int(changed.size - 1).bit_length(), 0) if changed.size else 1
        rows = np.resize(changed if changed.size else np.zeros(1, np.int64), size).astype(np.int32)
        correct = _correct_from(
            self.hidden,
            jnp.asarray(rows),
            params.hidden[rows],
            params.output,
            self.x_chunks,
            self.y_chunks,
            activation=self.activation,
        )
        return float(correct) / n

    def _full_pass(self, params: Params) -> float:
        """Accuracy of a pass over the whole set, as :func:`accuracy` computes it."""
        correct = _correct_chunks(params, self.x_chunks, self.y_chunks, activation=self.activation)
        return float(correct) / self.n


class Sampler:
    """Sample order of a run: epochs of random permutations, or draws with replacement.

    Parameters
    ----------
    n : int
        Number of training samples.
    mode : {"epoch", "replacement"}
    seed : numpy.random.SeedSequence

    Raises
    ------
    ValueError
        For no training samples or another mode.
    """

    def __init__(self, n: int, mode: str, seed: np.random.SeedSequence) -> None:
        if n < 1:
            raise ValueError(f"no training samples to draw from (n = {n})")
        if mode not in ("epoch", "replacement"):
            raise ValueError(f"sampling must be 'epoch' or 'replacement', got {mode!r}")
        self.n = n
        self.mode = mode
        self.rng = np.random.default_rng(seed)
        self._buffer = np.empty(0, np.int32)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` sample indices, int32."""
        if self.mode == "replacement":
            return self.rng.integers(0, self.n, count).astype(np.int32)
        while self._buffer.size < count:
            self._buffer = np.concatenate(
                [self._buffer, self.rng.permutation(self.n).astype(np.int32)]
            )
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out


def seeds(seed: int) -> tuple[jax.Array, np.random.SeedSequence]:
    """Independent streams of one run seed: a JAX key (weights, rules) and the sample order."""
    k_jax, k_order = np.random.SeedSequence(seed).spawn(2)
    return jax.random.key(_word_of(k_jax)), k_order


def _word_of(k_jax: np.random.SeedSequence) -> int:
    """The 32 bits of a seed's first SeedSequence child that make its JAX key."""
    return int(k_jax.generate_state(1, np.uint32)[0])


def _key_word(seed: int) -> int:
    """The 32 bits that make ``seed``'s JAX key (:func:`seeds`)."""
    return _word_of(np.random.SeedSequence(seed).spawn(2)[0])


def seeds_sharing_a_key(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """Pairs of distinct seeds whose JAX keys are equal, so that their runs share initial
    weights, masks and per-sample draws (only the sample order differs). The key holds 32
    bits, so this happens about once in 2**32 pairs: (14 375, 53 572) is the first pair,
    and no two seeds below 53 572 share a key."""
    distinct = sorted(set(seeds))
    if not distinct or distinct[-1] < 53_572:
        return []
    first: dict[int, int] = {}
    pairs = []
    for seed in distinct:
        word = _key_word(seed)
        if word in first:
            pairs.append((first[word], seed))
        else:
            first[word] = seed
    return pairs


def versions() -> dict[str, str]:
    """Versions of thrifty, Python, NumPy, JAX, and the platform, for records."""
    return {
        "thrifty": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
    }


def check_config(config: RunConfig, n_inputs: int | None = None) -> RunConfig:
    """Validate what a config implies beyond its own fields (rules, x64), before any work."""
    if not isinstance(config, RunConfig):
        raise TypeError(
            f"config must be a RunConfig (RunConfig.from_dict makes one of a dict), got "
            f"{type(config).__name__}"
        )
    config = config.resolved()
    rule_registry.validate(config.rules, config.n_hidden)
    build_synapses(config.synapses, alphas=config.alphas, n_hidden=config.n_hidden)
    if config.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise ConfigError(
            "dtype float64 needs JAX's 64-bit mode: set JAX_ENABLE_X64=1 or call "
            "jax.config.update('jax_enable_x64', True) first"
        )
    # numbers > 0 that the run's dtype would round to 0 or infinity
    real = np.dtype(config.dtype).type
    for name, value in [("lr", config.lr), ("sigma", config.sigma)] + [
        ("alphas", a) for a in config.alphas
    ]:
        with np.errstate(over="ignore"):
            rounded = real(value)
        if not (np.isfinite(rounded) and rounded > 0):
            raise ConfigError(
                f"{name} must be a number > 0 that {config.dtype} holds, got {value!r} "
                f"(it would be {float(rounded)!r})"
            )
    n_train = expected_n_train(config)
    if n_train is not None:
        budget_samples(config, n_train)
    del n_inputs
    return config


def expected_n_train(config: RunConfig) -> int | None:
    """Training samples a run of ``config`` draws from, known before loading the data:
    the stored training images less the validation sixth (``split="validation"``), or
    ``n_train`` of them; None for synthetic data, whose size is the caller's.

    Raises ConfigError when ``n_train`` asks for more than there are.
    """
    from thrifty import data

    config = config.resolved()
    stored = data.STORED_TRAINING_IMAGES.get(config.dataset)
    if stored is None:
        return None
    available = data.training_part(stored, preprocessing_for(config).split)
    if config.n_train is None:
        return available
    _check_n_train(config, available)
    return config.n_train


def _check_n_train(config: RunConfig, available: int) -> None:
    if config.n_train is not None and config.n_train > available:
        raise ConfigError(
            f"n_train must be at most the {available} training images of "
            f"{config.dataset}, got {config.n_train}"
        )


def preprocessing_for(config: RunConfig) -> Any:
    """The data preprocessing that a config's protocol and input variant call for."""
    from thrifty import data

    config = config.resolved()
    base = (
        data.DEFAULT_PREPROCESSING if config.protocol == "default" else data.REFERENCE_PREPROCESSING
    )
    if config.inputs == "raw":
        base = dataclasses.replace(base, scale=1 / 255, centre="none", noise=0.0)
    return base


def load_dataset(
    config: RunConfig,
    *,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    """The :class:`thrifty.data.Dataset` a config trains on, prepared as its protocol says.

    ``dataset="synthetic"`` gives :func:`thrifty.data.synthetic` (no files needed),
    mapped onto [0, 1] for ``inputs="raw"``; both protocols train on the same
    synthetic data.
    """
    from thrifty import data

    config = config.resolved()
    if config.dataset == "synthetic":
        return data.synthetic(criterion=float(config.criterion or 0.9), raw=config.inputs == "raw")
    return data.load(
        config.dataset,
        preprocessing=preprocessing_for(config),
        data_dir=data_dir,
        cache_dir=cache_dir,
        log=log,
    )


def check_dataset(config: RunConfig, dataset: Any) -> None:
    """Raise ConfigError unless ``dataset`` is the data set ``config`` names, prepared
    as its protocol and inputs say (a record must describe the data it was trained on)."""
    if not all(hasattr(dataset, a) for a in ("name", "x_train", "y_train")):
        raise TypeError(
            "dataset must be a thrifty.data.Dataset, as load_dataset(config) gives, got "
            f"{type(dataset).__name__}"
        )
    config = config.resolved()
    if dataset.name != config.dataset:
        raise ConfigError(
            f"dataset: the config names {config.dataset!r} but the data given are "
            f"{dataset.name!r}; load them with load_dataset(config)"
        )
    inputs = getattr(dataset, "inputs", None)
    if inputs is not None and inputs != config.inputs:
        raise ConfigError(
            f"dataset: the {dataset.name} data given are its {inputs} form, the config's "
            f"inputs {config.inputs!r}; load them with load_dataset(config)"
        )
    wanted = preprocessing_for(config)
    if dataset.preprocessing is not None and dataset.preprocessing != wanted:
        raise ConfigError(
            f"dataset: the data were prepared as {dataset.preprocessing}, the config's "
            f"protocol {config.protocol!r} and inputs {config.inputs!r} need {wanted}; "
            "load them with load_dataset(config)"
        )


def prepare_arrays(config: RunConfig, dataset: Any) -> dict[str, jax.Array]:
    """Device arrays of the augmented training and check sets, in the run's dtype."""
    dtype = jnp.dtype(config.dtype)
    x_train, y_train = dataset.x_train, dataset.y_train
    if config.n_train is not None:
        _check_n_train(config, len(y_train))
        x_train, y_train = x_train[: config.n_train], y_train[: config.n_train]
    check = (
        (dataset.x_val, dataset.y_val)
        if config.check_set == "validation"
        else (dataset.x_test, dataset.y_test)
    )
    return {
        "x_train": augment(jnp.asarray(x_train, dtype)),
        "y_train": jnp.asarray(y_train, jnp.int32),
        "x_check": augment(jnp.asarray(check[0], dtype)),
        "y_check": jnp.asarray(check[1], jnp.int32),
        "x_test": augment(jnp.asarray(dataset.x_test, dtype)),
        "y_test": jnp.asarray(dataset.y_test, jnp.int32),
    }


MAX_SAMPLES = 2**31 - 1
"""The most samples a run trains: its steps are counted in int32 (the per-step keys of
the rules and the sample order take them)."""


def budget_samples(config: RunConfig, n_train: int) -> int:
    """Sample budget, rounded up to a whole number of checks (a run stops at a check).

    Raises ConfigError when the budget (``budget_epochs · n_train`` samples) is shorter
    than one check interval, which the rounding would stretch many times over.
    """
    interval = config.check_interval
    assert interval is not None
    budget = config.budget_epochs * n_train
    if budget < interval * (1 - 1e-9):
        # the least budget_epochs that holds one check, rounded up to 4 significant digits
        need = interval / n_train
        scale = 10.0 ** (3 - math.floor(math.log10(need)))
        enough = math.ceil(need * scale) / scale
        raise ConfigError(
            f"budget_epochs: a budget of {budget:.6g} samples ({config.budget_epochs:g} "
            f"epochs of {n_train}) is shorter than one check interval ({interval} "
            "samples), and a run stops only at a check: raise budget_epochs to at least "
            f"{enough:g} or lower check_interval to at most {max(math.floor(budget), 1)}"
        )
    # budget_epochs · n_train within rounding of a whole number of checks is that
    # number (1.1 · 50 000 is 55 000.000000000007 in floats, not a check more)
    samples = math.ceil(budget / interval * (1 - 1e-12)) * interval
    if samples > MAX_SAMPLES:
        raise ConfigError(
            f"budget_epochs: a budget of {samples:.3g} samples ({config.budget_epochs:g} "
            f"epochs of {n_train}) is more than a run can count: at most {MAX_SAMPLES} "
            f"samples, {MAX_SAMPLES / n_train:.4g} epochs"
        )
    return samples


class _Tracker:
    """Host-side bookkeeping of one run: sample order, energy ledger, checks, status."""

    def __init__(self, config: RunConfig, n_train: int, dataset: Any) -> None:
        self.config = config
        key, order_seed = seeds(config.seed)
        self.k_init, self.k_steps = jax.random.split(key)
        self.sampler = Sampler(n_train, config.sampling or "epoch", order_seed)
        self.interval = int(config.check_interval or 1000)
        self.budget = budget_samples(config, n_train)
        self.criterion = float(config.criterion or 0.95)
        self.syn_model = build_synapses(config.synapses, alphas=config.alphas)
        self.ledger = Ledger(2, config.alphas)
        self.curve: list[list[float]] = []
        self.simpson: list[list[float]] = []
        self.samples = 0
        self.status = "budget"
        self.diverged_at: int | None = None
        self.acc = 0.0
        self.done = False
        self.source = getattr(dataset, "source", None)
        self.wall = 0.0
        self.initial: list[np.ndarray] = []

    def effective(self, st: TrainState) -> Params:
        """Weights the network computes with."""
        if self.syn_model.weights is None:
            return st.params
        return self.syn_model.weights(st.params, st.synapse_state)

    def take(self) -> np.ndarray:
        """Sample indices of the next chunk (zeros once the run is done)."""
        if self.done:
            return np.zeros(self.interval, np.int32)
        return self.sampler.take(self.interval)

    def absorb(self, out: StepOutput, finite_weights: bool) -> bool:
        """Account for one chunk; returns True when the run still needs a check.

        A run diverges at the first sample whose loss or whose update (its M1) is not
        finite; the samples before it are charged, it and the rest are not. When every
        loss and update was finite but the weights are not (a finite update overflowed
        them), the chunk's last sample is taken as that sample.
        """
        bad = ~np.isfinite(np.asarray(out.loss))
        for layer in out.energy:
            bad |= ~np.isfinite(np.asarray(layer.m1)) | ~np.isfinite(np.asarray(layer.transient))
        if bad.any() or not finite_weights:
            first = int(np.argmax(bad)) if bad.any() else self.interval - 1
            self.ledger.add(out.energy, upto=first)
            self.diverged_at = self.samples + first
            self.samples += first
            self.status = "diverged"
            self.done = True
            return False
        self.ledger.add(out.energy)
        if self.config.simpson:
            self.simpson.append([self.samples, *(float(d) for d in out.updated)])
        self.samples += self.interval
        return True

    def checked(self, acc: float) -> None:
        """Record the accuracy of a check and decide whether the run stops."""
        self.acc = acc
        self.curve.append([self.samples, acc])
        if acc >= self.criterion:
            self.status = "converged"
            self.done = True
        elif self.samples >= self.budget:
            self.done = True

    def record(self, state: TrainState, test_acc: float | None) -> dict[str, Any]:
        """The run record (plain JSON types) from the final state."""
        config = self.config
        final = [np.asarray(w) for w in state.params]
        finite = self.status != "diverged"
        energy = self.ledger.to_dict()
        minimal = minimal_energy(self.initial, final) if finite else None
        summary = (
            self.syn_model.summary(state.params, state.synapse_state)
            if self.syn_model.summary is not None and finite
            else None
        )
        return {
            "config": config.to_dict(),
            "key": config.key(),
            "status": self.status,
            "samples": self.samples,
            "diverged_at": self.diverged_at,
            "curve": self.curve,
            "accuracy": self.acc if finite else None,
            "test_accuracy": test_acc if finite else None,
            "energy": energy,
            "minimal_energy": minimal,
            "synapse_summary": summary,
            "simpson": (
                {
                    "window": self.interval,
                    "columns": ["start", "hidden", "output"],
                    "values": self.simpson,
                }
                if config.simpson
                else None
            ),
            "inefficiency": inefficiency(energy, minimal) if minimal else None,
            "n_synapses": {
                "hidden": int(self.initial[0].size),
                "output": int(self.initial[1].size),
            },
            "wall_time_s": self.wall,
            "samples_per_s": self.samples / self.wall if self.wall > 0 else None,
            "versions": versions(),
            "data_source": self.source,
        }


def _structure_for(config: RunConfig, arrays: dict[str, jax.Array], dataset: Any) -> Structure:
    n_inputs = int(arrays["x_train"].shape[1]) - 1
    n_outputs = int(max(int(np.max(np.asarray(dataset.y_train))) + 1, 10))
    return Structure.of(config, n_inputs, n_outputs)


def run(
    config: RunConfig,
    dataset: Any,
    *,
    arrays: dict[str, jax.Array] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train one network as ``config`` says and return its record (plain JSON types).

    Parameters
    ----------
    config : RunConfig
    dataset : thrifty.data.Dataset
        Its preprocessing must match the config (see :func:`load_dataset`).
    arrays : dict, optional
        Device arrays from :func:`prepare_arrays`, to share them between runs.
    progress : callable ``(samples, accuracy) -> None``, optional
        Called after every check.

    Returns
    -------
    dict
        ``config``, ``key``, ``status``, ``samples``, ``diverged_at``,
        ``curve`` (list of ``[samples, accuracy]``), ``accuracy``, ``test_accuracy``,
        ``energy`` (per layer and total), ``minimal_energy``, ``inefficiency``,
        ``synapse_summary``, ``simpson``, ``n_synapses``, ``wall_time_s``,
        ``samples_per_s``, ``versions``, ``data_source``.
    """
    config = check_config(config)
    check_dataset(config, dataset)
    arrays = arrays if arrays is not None else prepare_arrays(config, dataset)
    structure = _structure_for(config, arrays, dataset)
    warn_if_memory_short(structure)  # before the weights are made
    numbers = _as_arrays(numbers_of(config), jnp.dtype(config.dtype))
    tracker = _Tracker(config, int(arrays["x_train"].shape[0]), dataset)
    activation = config.activation

    # with no rule but backprop every unit learns at every sample: nothing to keep
    restricted = any(name != "backprop" for name, _ in structure.rules)
    checks = CheckSet(arrays["x_check"], arrays["y_check"], activation=activation, keep=restricted)
    t0 = time.perf_counter()
    sigma = jnp.asarray(config.sigma, jnp.dtype(config.dtype))
    state = _init(structure, numbers, tracker.k_init, sigma)
    tracker.initial = [np.asarray(w) for w in state.params]
    while not tracker.done:
        indices = jnp.asarray(tracker.take())
        steps = jnp.arange(tracker.samples, tracker.samples + tracker.interval, dtype=jnp.int32)
        state, out = run_chunk(
            state,
            indices,
            steps,
            arrays["x_train"],
            arrays["y_train"],
            numbers,
            tracker.k_steps,
            structure=structure,
        )
        weights = tracker.effective(state)
        finite = all(bool(jnp.all(jnp.isfinite(w))) for w in weights)
        if tracker.absorb(out, finite):
            tracker.checked(checks.accuracy(weights))
            if progress is not None:
                progress(tracker.samples, tracker.acc)
    tracker.wall = time.perf_counter() - t0
    test_acc = None
    if tracker.status != "diverged":
        weights = tracker.effective(state)
        test_acc = accuracy(weights, arrays["x_test"], arrays["y_test"], activation=activation)
    return tracker.record(state, test_acc)


VMAP_ON_CPU_UP_TO = 500
"""Hidden units up to which :func:`run_many` vmaps runs stepped sample by sample on a
CPU (see :func:`batch_mode`)."""

VMAP_DEFERRED_ON_CPU_UP_TO = 100
"""Hidden units up to which :func:`run_many` vmaps runs with deferred updates on a CPU."""


def batch_mode(
    n_hidden: int | None = None, synapses: str = "plain", *, deferred: bool = False
) -> str:
    """How :func:`run_many` batches runs of ``n_hidden`` hidden units on the default device.

    ``"vmap"``: all runs advance together as one vectorised computation; the default
    on accelerators, and on a CPU for plain synapses and networks of up to
    :data:`VMAP_ON_CPU_UP_TO` hidden units, or :data:`VMAP_DEFERRED_ON_CPU_UP_TO` when
    the runs defer their updates (``deferred``, see :func:`defers_updates`).
    ``"map"``: one compiled call advances each run through its whole chunk in turn,
    so that run's weights stay in cache; the default on a CPU otherwise. Stepped
    sample by sample, a larger single run is limited by memory traffic, and
    interleaving runs sample by sample only evicts them from cache; with deferred
    updates a single run already computes in block-sized matrix products, and
    vmapping gains nothing beyond the smallest networks. The caching model's CPU step
    skips work with loops whose trip counts depend on the data, and vmapped, every run
    would do all of it. Measured on the 2-core CPUs of ``docs/performance.md``: 32
    plain runs stepped per sample, vmapped, gave 1.4–1.7× the aggregate samples/s of
    separate runs at N = 100–500 (mapped: about 1.05×) and 0.6–0.75× at N = 1000
    (mapped: 0.9–1.2×); with deferred updates, vmapped 0.95–0.99× at N = 100 (mapped
    0.92–0.97×), 0.91× at 300 and 0.63× at 500 (mapped 1.01× and 0.86×); 8 caching
    runs at N = 300 gave 0.51× vmapped and 0.83× mapped. Override with the
    environment variable ``THRIFTY_BATCH=vmap|map``.
    """
    mode = _batch_override()
    if mode is not None:
        return mode
    if jax.default_backend() != "cpu":
        return "vmap"
    limit = VMAP_DEFERRED_ON_CPU_UP_TO if deferred else VMAP_ON_CPU_UP_TO
    small = n_hidden is not None and n_hidden <= limit
    return "vmap" if small and synapses == "plain" else "map"


@functools.lru_cache(maxsize=32)
def _batched(
    structure: Structure, mode: str = "vmap"
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Compiled init and chunk over a leading run axis for runs of one structure.

    ``mode`` is ``"vmap"`` or ``"map"`` (see :func:`batch_mode`); both give the
    same results as separate runs.
    """
    init = _jit(jax.vmap(functools.partial(init_state, structure)))
    single = functools.partial(_chunk, structure=structure)
    if mode == "vmap":
        batched = jax.vmap(single, in_axes=(0, 0, None, None, None, 0, 0))
    else:

        def batched(
            state: TrainState,
            indices: jax.Array,
            steps: jax.Array,
            x: jax.Array,
            y: jax.Array,
            numbers: dict[str, Any],
            keys: jax.Array,
        ) -> tuple[TrainState, StepOutput]:
            return jax.lax.map(
                lambda a: single(a[0], a[1], steps, x, y, a[2], a[3]),
                (state, indices, numbers, keys),
            )

    return init, _jit(batched, donate_argnums=(0,))


@functools.partial(_jit, static_argnames=("activation",))
def _correct_many(params: Params, x_aug: jax.Array, y: jax.Array, *, activation: str) -> jax.Array:
    return jax.lax.map(lambda p: _correct(p, x_aug, y, activation=activation), params)


def numbers_layout(config: RunConfig) -> Any:
    """Which numbers a run passes to its compiled program: the tree structure of
    :func:`numbers_of` (a parameter left at its default is not among them). Runs
    batched together must share it."""
    return jax.tree.structure(numbers_of(config))


def _group_key(config: RunConfig, structure: Structure) -> tuple[Any, ...]:
    return (structure, config.check_interval, numbers_layout(config))


def run_many(
    configs: Sequence[RunConfig],
    dataset: Any,
    *,
    arrays: dict[str, jax.Array] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Train many networks that differ only in numbers as one compiled computation.

    Runs may differ in seed, learning rate, σ, the rules' numeric parameters,
    the synapse model's numbers, criterion and budget; runs that differ in
    structure (rule names, sizes, dtype, check interval, which parameters a rule or
    synapse string writes out) are grouped and each group runs as one batch. A
    finished run is frozen: it keeps stepping with zero updates and spends no
    energy. A group's runs are vmapped, or on a CPU mapped one after another for
    networks of more than 500 hidden units (100 when the runs defer their updates)
    and for caching synapses (:func:`batch_mode`).

    Records are those of :func:`run`; mapped runs are identical in every number.
    Vmapped products and sums may add in another order, so in float32 M1 and the
    weights (hence the minimal energy's M1) may differ from a separate run's in the
    last bits (of order 1e-8 relative), depending on which runs share the batch; in
    float64 they agree to 1e-12. Status, samples, curve, accuracies and M0 were
    identical in every comparison so far, though a weight differing in its last bit
    could in principle move an accuracy by one image.

    Parameters
    ----------
    configs : sequence of RunConfig
        All must use the same data (dataset, protocol, inputs, dtype, n_train, check set).
    dataset : thrifty.data.Dataset
    progress : callable ``(finished, total) -> None``, optional

    Returns
    -------
    list of dict
        One record per config, in the order given.
    """
    configs = [check_config(c) for c in configs]
    if not configs:
        return []
    data_keys = {
        (c.dataset, c.protocol, c.inputs, c.dtype, c.n_train, c.check_set) for c in configs
    }
    if len(data_keys) > 1:
        raise ConfigError(
            "run_many needs configs that share dataset, protocol, inputs, dtype, n_train and "
            f"check_set; got {sorted(map(str, data_keys))}"
        )
    check_dataset(configs[0], dataset)
    arrays = arrays if arrays is not None else prepare_arrays(configs[0], dataset)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(_group_key(c, _structure_for(c, arrays, dataset)), []).append(i)
    records: list[dict[str, Any] | None] = [None] * len(configs)
    finished = 0
    for (structure, *_), members in groups.items():
        for i, rec in zip(
            members,
            _run_group([configs[i] for i in members], structure, dataset, arrays),
            strict=True,
        ):
            records[i] = rec
            finished += 1
        if progress is not None:
            progress(finished, len(configs))
    return [r for r in records if r is not None]


def _run_group(
    configs: list[RunConfig], structure: Structure, dataset: Any, arrays: dict[str, jax.Array]
) -> list[dict[str, Any]]:
    dtype = jnp.dtype(configs[0].dtype)
    n_train = int(arrays["x_train"].shape[0])
    trackers = [_Tracker(c, n_train, dataset) for c in configs]
    numbers = jax.tree.map(
        lambda *xs: jnp.stack(xs), *[_as_arrays(numbers_of(c), dtype) for c in configs]
    )
    deferred = defers_updates(structure, _as_arrays(numbers_of(configs[0]), dtype))
    mode = batch_mode(structure.n_hidden, structure.synapses[0], deferred=deferred)
    init, chunk = _batched(structure, mode)
    interval = trackers[0].interval
    activation = configs[0].activation
    t0 = time.perf_counter()
    state = init(
        numbers,
        jnp.stack([t.k_init for t in trackers]),
        jnp.asarray([c.sigma for c in configs], dtype),
    )
    for i, t in enumerate(trackers):
        t.initial = [np.asarray(w[i]) for w in state.params]
    key_steps = jnp.stack([t.k_steps for t in trackers])
    samples = 0
    while not all(t.done for t in trackers):
        active = jnp.asarray([0.0 if t.done else 1.0 for t in trackers], dtype)
        state = state._replace(active=active)
        indices = jnp.asarray(np.stack([t.take() for t in trackers]))
        steps = jnp.arange(samples, samples + interval, dtype=jnp.int32)
        state, out = chunk(
            state, indices, steps, arrays["x_train"], arrays["y_train"], numbers, key_steps
        )
        samples += interval
        eff = _effective_batch(trackers[0], state)
        finite = np.asarray(
            jnp.all(
                jnp.stack([jnp.all(jnp.isfinite(w), axis=tuple(range(1, w.ndim))) for w in eff]),
                axis=0,
            )
        )
        needs_check = []
        for i, t in enumerate(trackers):
            if t.done:
                continue
            out_i = jax.tree.map(lambda a, i=i: a[i], out)
            if t.absorb(out_i, bool(finite[i])):
                needs_check.append(i)
        if needs_check:
            correct = np.asarray(
                _correct_many(eff, arrays["x_check"], arrays["y_check"], activation=activation)
            )
            n_check = int(arrays["y_check"].shape[0])
            for i in needs_check:
                trackers[i].checked(int(correct[i]) / n_check)
                if trackers[i].done:
                    trackers[i].wall = time.perf_counter() - t0
    for t in trackers:
        if t.wall == 0.0:
            t.wall = time.perf_counter() - t0
    correct_test = np.asarray(
        _correct_many(
            _effective_batch(trackers[0], state),
            arrays["x_test"],
            arrays["y_test"],
            activation=activation,
        )
    )
    n_test = int(arrays["y_test"].shape[0])
    records = []
    for i, t in enumerate(trackers):
        st_i = jax.tree.map(lambda a, i=i: a[i], state)
        records.append(t.record(st_i, int(correct_test[i]) / n_test))
    return records


def _effective_batch(tracker: _Tracker, state: TrainState) -> Params:
    """Effective weights of a batched state (leading run axis)."""
    if tracker.syn_model.weights is None:
        return state.params
    return jax.vmap(tracker.syn_model.weights)(state.params, state.synapse_state)
