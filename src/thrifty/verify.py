"""Check a run of thrifty against the NumPy reference, rule of one's own included.

:func:`reference_run` runs :func:`thrifty.reference.run` on the config's data from the
same start as :func:`thrifty.train.run`: the initial weights, the rules' initial states
(their random masks and subnets) and the order of the samples are taken from the fast
path; everything after is the reference's own (dense NumPy, float64). With a reference
version of a rule (a function returning, per layer, the boolean matrix of synapses it
allows, see :mod:`thrifty.reference.rules`), :func:`differences` then lists where the
fast path's record and the reference's run disagree::

    import jax
    jax.config.update("jax_enable_x64", True)  # float64 runs, before any other JAX use
    from thrifty import verify
    from thrifty.config import RunConfig
    from thrifty.train import load_dataset, run

    config = RunConfig(dataset="synthetic", n_hidden=12, dtype="float64",
                       rules=("my-rule:theta=0.01",), budget_epochs=0.2)
    dataset = load_dataset(config)
    record = run(config, dataset)
    want = verify.reference_run(config, dataset, rule=my_reference_rule)
    assert verify.differences(record, want) == []

A rule whose selection depends on a random draw of its own at each step
(``ctx.key``) cannot be replayed by the reference: it would need the same draws.

:func:`start` gives that start itself (weights, data, sample order, check interval,
budget, criterion, the rules' random draws), for an implementation of one's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from thrifty import reference as ref
from thrifty.config import RunConfig
from thrifty.data import Dataset
from thrifty.reference.rules import ReferenceRule

SUMS_RTOL = 1e-9
"""Relative tolerance of :func:`differences` for sums in float64 runs (counts and
accuracies must be equal)."""

FLOAT32_RTOL = 1e-4
"""Relative tolerance for the sums of float32 runs, whose weights drift from the
reference's float64 ones by rounding."""


class Start(NamedTuple):
    """Where :func:`thrifty.train.run` starts a run: all an implementation of one's own
    needs to replay it (:func:`start`). Weights and data are NumPy arrays; the states
    are as the fast path holds them (JAX arrays).

    Attributes
    ----------
    w1, w2 : ndarray, shapes (N, n_inputs + 1) and (n_outputs, N + 1)
        Initial weights in the run's dtype, bias column last (weight units); with
        caching, the persistent weights (the transient ones start at 0).
    x_train : ndarray, shape (n_train, n_inputs + 1)
        Training inputs as the network sees them (after the config's ``inputs``), with
        the bias input 1 last.
    y_train : ndarray of int, shape (n_train,)
    x_check, y_check : ndarray, shapes (n_check, n_inputs + 1) and (n_check,)
        The set the run checks its accuracy on (validation or test, per the protocol),
        bias input last.
    order : ndarray of int, shape (budget,)
        Index into ``x_train`` of the sample of every step.
    check_interval : int
        Samples between two checks of the accuracy.
    budget : int
        Most samples the run may take, a whole number of check intervals.
    criterion : float
        The run stops at the first check whose accuracy reaches this fraction.
    rule_state : Any
        The rules' initial state, as their ``init`` returned it (JAX arrays; a tuple
        of them for a chain): their random masks and subnets.
    synapse_state : Any
        The synapse model's initial state (``()`` for plain synapses).
    """

    w1: np.ndarray
    w2: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_check: np.ndarray
    y_check: np.ndarray
    order: np.ndarray
    check_interval: int
    budget: int
    criterion: float
    rule_state: Any
    synapse_state: Any


def start(config: RunConfig, dataset: Dataset) -> Start:
    """The start of ``config``'s run on ``dataset``, exactly as :func:`thrifty.train.run`
    makes it: initial weights, data as the network sees it, sample order, check
    interval, budget, criterion and the rules' random draws.

    Parameters
    ----------
    config : RunConfig
        The run, as given to :func:`thrifty.train.run`.
    dataset : Dataset
        Its data (:func:`thrifty.train.load_dataset`).

    Returns
    -------
    Start

    Raises
    ------
    thrifty.config.ConfigError, thrifty.rules.registry.RuleError, thrifty.data.DataError
        As :func:`thrifty.train.run` does for a bad config or data.
    """
    import jax.numpy as jnp

    from thrifty.train import (
        _as_arrays,
        _init,
        _structure_for,
        _Tracker,
        check_config,
        check_dataset,
        numbers_of,
        prepare_arrays,
    )

    cfg = check_config(config)
    check_dataset(cfg, dataset)
    arrays = prepare_arrays(cfg, dataset)
    structure = _structure_for(cfg, arrays, dataset)
    dtype = jnp.dtype(cfg.dtype)
    numbers = _as_arrays(numbers_of(cfg), dtype)
    # the fast path's own start: its keys, sample order, check interval and budget
    tracker = _Tracker(cfg, int(arrays["x_train"].shape[0]), dataset)
    state = _init(structure, numbers, tracker.k_init, jnp.asarray(cfg.sigma, dtype))
    w1, w2 = (np.asarray(w) for w in state.params)
    interval, budget = tracker.interval, tracker.budget
    order = np.concatenate([tracker.take() for _ in range(-(-budget // interval))])
    return Start(
        w1=w1,
        w2=w2,
        x_train=np.asarray(arrays["x_train"]),
        y_train=np.asarray(arrays["y_train"]),
        x_check=np.asarray(arrays["x_check"]),
        y_check=np.asarray(arrays["y_check"]),
        order=order,
        check_interval=interval,
        budget=budget,
        criterion=tracker.criterion,
        rule_state=state.rule_state,
        synapse_state=state.synapse_state,
    )


def reference_run(
    config: RunConfig,
    dataset: Dataset,
    *,
    rule: ReferenceRule | None = None,
    rule_from_state: Callable[[Any], ReferenceRule] | None = None,
) -> ref.RunResult:
    """The reference's run of ``config`` on ``dataset``, from the fast path's start
    (:func:`start`).

    Parameters
    ----------
    config : RunConfig
        The run, as given to :func:`thrifty.train.run`.
    dataset : Dataset
        Its data (:func:`thrifty.train.load_dataset`).
    rule : ReferenceRule, optional
        The reference version of ``config.rules`` (a :func:`thrifty.reference.chain`
        for several); None for plain backprop.
    rule_from_state : callable, optional
        Instead of ``rule``: a function of the fast path's initial rule state (each
        rule's state as its ``init`` returned it, in JAX arrays, a tuple of them for a
        chain) returning the reference rule, for rules whose random draws (masks,
        subnets) live in their state.

    Returns
    -------
    thrifty.reference.RunResult
        Status, samples, accuracy curve and every meter per layer.
    """
    from thrifty.rules.registry import parse
    from thrifty.synapses import SYNAPSE_MODELS
    from thrifty.train import check_config

    if rule is not None and rule_from_state is not None:
        raise ValueError("give rule or rule_from_state, not both")
    cfg = check_config(config)
    if cfg.rules and rule is None and rule_from_state is None:
        raise ValueError(
            f"the run has rules {', '.join(cfg.rules)}: give their reference version "
            "(rule= or rule_from_state=)"
        )
    begin = start(cfg, dataset)
    if rule_from_state is not None:
        rule = rule_from_state(begin.rule_state)
    caching = None
    if cfg.synapses != "plain":
        spec = parse(cfg.synapses, SYNAPSE_MODELS)
        # the model's defaults, and the numbers the string sets
        given = {p.name: p.default for p in SYNAPSE_MODELS[spec.name].params} | dict(spec.kwargs)
        units = getattr(begin.synapse_state, "consolidating", None)
        caching = ref.Caching(
            threshold=float(given["threshold"]),
            tau=float(given["tau"]),
            cost=float(given["cost"]),
            per=str(given["per"]),
            consolidating_units=None if units is None or np.ndim(units) == 0 else units != 0,
        )
    result = ref.run(
        np.asarray(begin.w1, np.float64),
        np.asarray(begin.w2, np.float64),
        np.asarray(begin.x_train, np.float64),
        begin.y_train,
        np.asarray(begin.x_check, np.float64),
        begin.y_check,
        begin.order,
        lr=float(cfg.lr),
        criterion=begin.criterion,
        check_interval=begin.check_interval,
        budget=begin.budget,
        rule=rule,
        caching=caching,
        activation=cfg.activation,
        loss=cfg.loss,
        alphas=cfg.alphas,
        simpson=cfg.simpson,
    )
    result.key = cfg.key()
    return result


def differences(
    record: dict[str, Any], want: ref.RunResult, rtol: float | None = None
) -> list[str]:
    """Where a fast-path run record and the reference's run disagree (empty: nowhere).

    First, whether they ran the same config (where ``want`` knows its key). Counts
    (M0, samples, status, where it diverged), the accuracy curve and the
    minimal M0 must be equal; sums (M1, M_α, the minimal M1, the transient weights
    left) agree within ``rtol`` relative (default :data:`SUMS_RTOL` for float64 runs,
    :data:`FLOAT32_RTOL` for float32 ones); the Simpson index within the same, or 1e-6
    where that is tighter. A float32
    run is compared with a float64 reference: a rounding that tips a selection, or an
    accuracy at a check, shows as a difference of counts, so float64 runs are the
    exact check.
    """
    float32 = record["config"].get("dtype", "float32") == "float32"
    rtol = rtol if rtol is not None else (FLOAT32_RTOL if float32 else SUMS_RTOL)
    out: list[str] = []
    ran = RunConfig.from_dict(record["config"]).key()  # the record's own key may be older
    if want.key is not None and ran != want.key:
        out.append(
            f"key: a record of run {ran}, the reference's of run {want.key}: "
            "they ran different configs"
        )

    def same(what: str, got: Any, expected: Any) -> None:
        if got != expected:
            out.append(f"{what}: {got!r}, reference {expected!r}")

    def close(what: str, got: float, expected: float, tol: float = rtol) -> None:
        if not math.isclose(got, expected, rel_tol=tol, abs_tol=1e-300):
            out.append(f"{what}: {got!r}, reference {expected!r}")

    same("status", record["status"], want.status)
    same("samples", record["samples"], want.samples)
    same("diverged_at", record["diverged_at"], want.diverged_at)
    same("curve", [tuple(c) for c in record["curve"]], [tuple(c) for c in want.curve])
    alphas = [float(a) for a in record["config"].get("alphas") or ()]
    for name, energy in zip(("hidden", "output"), want.energy, strict=True):
        got = record["energy"][name]
        for meter in ("m0", "m0_potentiation"):
            same(f"{name} {meter}", got[meter], energy[meter])
        for meter in ("m1", "m1_potentiation", "m1_transient"):
            close(f"{name} {meter}", got[meter], energy[meter])
        for alpha, value in zip(alphas, energy["m_alpha"], strict=True):
            close(f"{name} M_{alpha!r}", got["m_alpha"][repr(alpha)], value)
    total = record["energy"]["total"]
    same("total m0", total["m0"], sum(e["m0"] for e in want.energy))
    close("total m1", total["m1"], sum(e["m1"] for e in want.energy))
    if want.minimal is None:
        same("minimal energy", record["minimal_energy"], None)
        same("inefficiency", record["inefficiency"], None)
    else:
        for name, least in zip(("hidden", "output"), want.minimal, strict=True):
            same(f"{name} minimal m0", record["minimal_energy"][name]["m0"], least["m0"])
            close(f"{name} minimal m1", record["minimal_energy"][name]["m1"], least["m1"])
    if want.remaining is None:
        same("synapse summary", record["synapse_summary"], None)
    else:
        for name, left in zip(("hidden", "output"), want.remaining, strict=True):
            got = record["synapse_summary"][name]
            same(f"{name} remaining m0", got["remaining_m0"], left["remaining_m0"])
            close(f"{name} remaining m1", got["remaining_m1"], left["remaining_m1"])
    if record["simpson"] is None:
        same("simpson", [], want.simpson)
    else:
        values = np.asarray(record["simpson"]["values"], np.float64)
        expected = np.asarray(want.simpson, np.float64)
        if values.shape != expected.shape or not np.allclose(
            values, expected, rtol=min(rtol, 1e-6), atol=0
        ):
            out.append(f"simpson: {values.tolist()!r}, reference {expected.tolist()!r}")
    return out
