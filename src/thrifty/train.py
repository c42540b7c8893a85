"""Per-sample training: step, chunk (``lax.scan``), run.

One *step* presents one sample: forward, backward, the rules select, the synapse
model applies and prices the update. A *chunk* is ``check_interval`` steps
compiled as one ``jax.lax.scan``; between chunks the host checks accuracy, sums
the energies exactly (int64) and decides whether to stop.

A run ends as

- ``converged``: accuracy on the check set reached the criterion at a check;
  the energy is that spent up to this check;
- ``budget``: the sample budget ran out first;
- ``diverged``: the loss became non-finite; ``diverged_at`` is the sample index.

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
import platform
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from thrifty import __version__
from thrifty.config import ConfigError, RunConfig
from thrifty.energy import (
    Ledger,
    StepEnergy,
    inefficiency,
    inverse_simpson,
    minimal_energy,
    updated_synapses,
)
from thrifty.network import Params, augment, init_params, predict, propose
from thrifty.rules import registry as rule_registry
from thrifty.rules.base import Context
from thrifty.synapses import build_synapses, synapse_numbers, synapse_structure


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

    @classmethod
    def of(cls, config: RunConfig, n_inputs: int, n_outputs: int) -> Structure:
        """Structure of a (resolved) config for data of the given shape."""
        return cls(
            n_inputs=n_inputs,
            n_hidden=config.n_hidden,
            n_outputs=n_outputs,
            activation=config.activation,
            loss=config.loss,
            rules=rule_registry.spec_structure(config.rules),
            synapses=synapse_structure(config.synapses),
            dtype=config.dtype,
            alphas=config.alphas,
            simpson=config.simpson,
        )


def numbers_of(config: RunConfig) -> dict[str, Any]:
    """The numbers of a run that may be traced: lr and the rules' numeric parameters."""
    return {
        "lr": config.lr,
        "rules": rule_registry.spec_numbers(config.rules),
        "synapses": synapse_numbers(config.synapses),
    }


def _as_arrays(numbers: dict[str, Any], dtype: Any) -> dict[str, Any]:
    return jax.tree.map(lambda v: jnp.asarray(v, dtype), numbers)


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

    def step(state: TrainState, inp: tuple[jax.Array, jax.Array]) -> tuple[TrainState, StepOutput]:
        index, t = inp
        x = x_data[index]
        label = y_data[index]
        target = jax.nn.one_hot(label, structure.n_outputs, dtype=x.dtype)
        w = weights(state.params, state.synapse_state)
        proposal = propose(w, x, target, activation=structure.activation, loss=structure.loss)
        ctx = Context(step=t, label=label, key=jax.random.fold_in(key, t))
        selection, rule_state = rule.update(proposal, state.rule_state, w, ctx)
        # A frozen run (active = 0) proposes nothing and so spends nothing.
        selection = tuple(
            s._replace(post=state.active if s.post is None else s.post * state.active)
            for s in selection
        )
        params, syn_state, energy = syn.apply(
            state.params, state.synapse_state, proposal, selection, lr
        )
        if structure.loss == "mse":
            loss = 0.5 * jnp.sum((proposal.output - target) ** 2)
        else:
            loss = -jnp.sum(target * jax.nn.log_softmax(proposal.output))
        new = TrainState(params, syn_state, rule_state, state.active)
        updated: tuple[jax.Array, ...] = ()
        if structure.simpson:
            updated = tuple(
                updated_synapses(lp.delta, lp.pre, sel) & (state.active != 0)
                for lp, sel in zip(proposal.layers, selection, strict=True)
            )
        return new, StepOutput(energy, loss, updated)

    return step


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
) -> tuple[TrainState, StepOutput]:
    step = make_step(structure, numbers, x_data, y_data, key)
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
    return state, out._replace(updated=tuple(inverse_simpson(t) for t in tally))


run_chunk = jax.jit(_chunk, static_argnames=("structure",), donate_argnums=(0,))
"""Compiled chunk: ``(state, indices (T,), steps (T,), x (n, d+1), y (n,), numbers, key)``."""

_init = jax.jit(init_state, static_argnames=("structure",))


@functools.partial(jax.jit, static_argnames=("activation",))
def _correct(params: Params, x_aug: jax.Array, y: jax.Array, *, activation: str) -> jax.Array:
    return jnp.sum(predict(params, x_aug, activation=activation) == y)


def accuracy(params: Params, x_aug: jax.Array, y: jax.Array, *, activation: str) -> float:
    """Fraction of rows of ``x_aug`` (n, d+1) classified as ``y`` (n,)."""
    return float(_correct(params, x_aug, y, activation=activation)) / int(y.shape[0])


class Sampler:
    """Sample order of a run: epochs of random permutations, or draws with replacement.

    Parameters
    ----------
    n : int
        Number of training samples.
    mode : {"epoch", "replacement"}
    seed : numpy.random.SeedSequence
    """

    def __init__(self, n: int, mode: str, seed: np.random.SeedSequence) -> None:
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
    ss = np.random.SeedSequence(seed)
    k_jax, k_order = ss.spawn(2)
    key = jax.random.key(int(k_jax.generate_state(1, np.uint32)[0]))
    return key, k_order


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
    config = config.resolved()
    rule_registry.validate(config.rules, config.n_hidden)
    build_synapses(config.synapses, alphas=config.alphas, n_hidden=config.n_hidden)
    if config.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise ConfigError(
            "dtype float64 needs JAX's 64-bit mode: set JAX_ENABLE_X64=1 or call "
            "jax.config.update('jax_enable_x64', True) first"
        )
    del n_inputs
    return config


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

    ``dataset="synthetic"`` gives :func:`thrifty.data.synthetic` (no files needed).
    """
    from thrifty import data

    config = config.resolved()
    if config.dataset == "synthetic":
        return data.synthetic(criterion=float(config.criterion or 0.9))
    return data.load(
        config.dataset,
        preprocessing=preprocessing_for(config),
        data_dir=data_dir,
        cache_dir=cache_dir,
        log=log,
    )


def prepare_arrays(config: RunConfig, dataset: Any) -> dict[str, jax.Array]:
    """Device arrays of the augmented training and check sets, in the run's dtype."""
    dtype = jnp.dtype(config.dtype)
    x_train, y_train = dataset.x_train, dataset.y_train
    if config.n_train is not None:
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


def budget_samples(config: RunConfig, n_train: int) -> int:
    """Sample budget, rounded up to a whole number of checks."""
    interval = config.check_interval
    assert interval is not None
    return math.ceil(config.budget_epochs * n_train / interval) * interval


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
        Its preprocessing must match the config (see :func:`thrifty.experiments.dataset_for`).
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
        ``n_synapses``, ``wall_time_s``, ``samples_per_s``, ``versions``, ``data_source``.
    """
    config = check_config(config)
    arrays = arrays if arrays is not None else prepare_arrays(config, dataset)
    n_train = int(arrays["x_train"].shape[0])
    n_inputs = int(arrays["x_train"].shape[1]) - 1
    n_outputs = int(max(int(np.max(np.asarray(dataset.y_train))) + 1, 10))
    structure = Structure.of(config, n_inputs, n_outputs)
    numbers = _as_arrays(numbers_of(config), jnp.dtype(config.dtype))
    key, order_seed = seeds(config.seed)
    k_init, k_steps = jax.random.split(key)
    sampler = Sampler(n_train, config.sampling or "epoch", order_seed)
    interval = int(config.check_interval or 1000)
    budget = budget_samples(config, n_train)
    criterion = float(config.criterion or 0.95)

    syn_model = build_synapses(config.synapses, alphas=config.alphas)

    def effective(st: TrainState) -> Params:
        if syn_model.weights is None:
            return st.params
        return syn_model.weights(st.params, st.synapse_state)

    t0 = time.perf_counter()
    state = _init(structure, numbers, k_init, jnp.asarray(config.sigma, jnp.dtype(config.dtype)))
    initial = [np.asarray(w) for w in state.params]
    ledger = Ledger(2, config.alphas)
    curve: list[list[float]] = []
    simpson: list[list[float]] = []
    samples = 0
    status = "budget"
    diverged_at: int | None = None
    acc = 0.0
    while samples < budget:
        indices = jnp.asarray(sampler.take(interval))
        steps = jnp.arange(samples, samples + interval, dtype=jnp.int32)
        state, out = run_chunk(
            state,
            indices,
            steps,
            arrays["x_train"],
            arrays["y_train"],
            numbers,
            k_steps,
            structure=structure,
        )
        losses = np.asarray(out.loss)
        bad = ~np.isfinite(losses)
        if bad.any() or not all(bool(jnp.all(jnp.isfinite(w))) for w in effective(state)):
            first = int(np.argmax(bad)) if bad.any() else interval - 1
            ledger.add(out.energy, upto=first)
            diverged_at = samples + first
            samples += first
            status = "diverged"
            break
        ledger.add(out.energy)
        if config.simpson:
            simpson.append([samples, *(float(d) for d in out.updated)])
        samples += interval
        acc = accuracy(
            effective(state), arrays["x_check"], arrays["y_check"], activation=config.activation
        )
        curve.append([samples, acc])
        if progress is not None:
            progress(samples, acc)
        if acc >= criterion:
            status = "converged"
            break
    wall = time.perf_counter() - t0
    final = [np.asarray(w) for w in state.params]
    finite = status != "diverged"
    test_acc = (
        accuracy(effective(state), arrays["x_test"], arrays["y_test"], activation=config.activation)
        if finite
        else None
    )
    energy = ledger.to_dict()
    minimal = minimal_energy(initial, final) if finite else None
    summary = (
        syn_model.summary(state.params, state.synapse_state)
        if syn_model.summary is not None and finite
        else None
    )
    return {
        "config": config.to_dict(),
        "key": config.key(),
        "status": status,
        "samples": samples,
        "diverged_at": diverged_at,
        "curve": curve,
        "accuracy": acc if finite else None,
        "test_accuracy": test_acc,
        "energy": energy,
        "minimal_energy": minimal,
        "synapse_summary": summary,
        "simpson": (
            {"window": interval, "columns": ["start", "hidden", "output"], "values": simpson}
            if config.simpson
            else None
        ),
        "inefficiency": inefficiency(energy, minimal) if minimal else None,
        "n_synapses": {"hidden": int(initial[0].size), "output": int(initial[1].size)},
        "wall_time_s": wall,
        "samples_per_s": samples / wall if wall > 0 else None,
        "versions": versions(),
        "data_source": getattr(dataset, "source", None),
    }
