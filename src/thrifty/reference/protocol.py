"""Reference whole run (NumPy, float64, dense): the protocol around the steps.

A run trains one sample at a time and checks its accuracy on a check set after every
``check_interval`` samples. It stops at the first check that reaches the criterion
("converged"), or at the first check at or after the budget ("budget"). It diverges
at the first sample whose loss, update (M1) or transient cost is not finite, or, when
they all were, at the last sample of a chunk after which the weights are not finite:
the samples before that one are charged, it and the rest are not ("diverged").

Written out independently of :mod:`thrifty.train`, from the reference's own steps
(:func:`thrifty.reference.train.propose`, :func:`thrifty.reference.energy_of`,
:func:`thrifty.reference.caching.consolidate_layer`). Tests feed it the fast path's
initial weights, masks and sample order and compare every field of the record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thrifty.reference.caching import consolidate_layer, eligible_synapses
from thrifty.reference.network import forward
from thrifty.reference.rules import ReferenceRule
from thrifty.reference.train import energy_of, m_alpha_of, propose

METERS = ("m0", "m0_potentiation", "m1", "m1_potentiation", "m1_transient")
"""The meters of :attr:`RunResult.energy`, per layer."""


@dataclass
class Caching:
    """Synaptic caching (:mod:`thrifty.reference.caching`) for :func:`run`.

    Attributes
    ----------
    threshold, tau, cost : float
        θ, τ (samples) and c.
    per : {"synapse", "neuron", "layer"}
    consolidating_units : (N,) boolean array or None
        Hidden units whose synapses may consolidate (None: all).
    """

    threshold: float
    tau: float = 1000.0
    cost: float = 0.001
    per: str = "synapse"
    consolidating_units: np.ndarray | None = None


@dataclass
class RunResult:
    """What a reference run measured, in the units of a thrifty run record.

    Attributes
    ----------
    status : {"converged", "budget", "diverged"}
    samples : int
        Samples trained and charged.
    diverged_at : int or None
        Index of the sample at which the run diverged.
    curve : list of (samples, accuracy)
        One entry per check.
    energy : list of dict, one per layer
        The meters of :data:`METERS` summed over the charged samples, and ``m_alpha``:
        the list of Σ|Δw|^α (consolidations, with caching) per exponent.
    minimal : list of dict (``m0``, ``m1``) per layer, or None when diverged
        ``#{w_T ≠ w_0}`` and ``Σ|w_T − w_0|`` of the persistent weights.
    remaining : list of dict (``remaining_m0``, ``remaining_m1``) per layer, or None
        With caching: the transient weights left at the end (non-zero count, Σ|s|).
    simpson : list of [start, D_hidden, D_output]
        Per chunk: the inverse Simpson index of the number of samples on which each
        synapse was updated (0 when none was); empty unless asked for.
    key : str or None
        The key of the config it ran, where the caller knows it
        (:func:`thrifty.verify.reference_run` sets it).
    """

    status: str = "budget"
    samples: int = 0
    diverged_at: int | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    energy: list[dict[str, Any]] = field(default_factory=list)
    minimal: list[dict[str, float]] | None = None
    remaining: list[dict[str, float]] | None = None
    simpson: list[list[float]] = field(default_factory=list)
    key: str | None = None


def inverse_simpson(counts: np.ndarray) -> float:
    """``1 / Σ π_i²`` with ``π_i = counts_i / Σ counts``; 0 when every count is 0."""
    c = np.asarray(counts, np.float64).ravel()
    total = c.sum()
    if total == 0:
        return 0.0
    return float(1.0 / np.sum((c / total) ** 2))


def accuracy(
    w: Sequence[np.ndarray], x_aug: np.ndarray, labels: np.ndarray, activation: str
) -> float:
    """Fraction of the rows of ``x_aug`` (n, n_in + 1) classified as ``labels`` (n,),
    one sample at a time."""
    correct = sum(
        int(np.argmax(forward(w[0], w[1], x, activation).y) == int(label))
        for x, label in zip(x_aug, labels, strict=True)
    )
    return correct / len(labels)


def run(
    w1: np.ndarray,
    w2: np.ndarray,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_check: np.ndarray,
    y_check: np.ndarray,
    order: Sequence[int],
    *,
    lr: float,
    criterion: float,
    check_interval: int,
    budget: int,
    rule: ReferenceRule | None = None,
    caching: Caching | None = None,
    activation: str = "leaky_relu",
    loss: str = "mse",
    n_outputs: int = 10,
    alphas: Sequence[float] = (),
    simpson: bool = False,
) -> RunResult:
    """Train until the criterion, the budget or divergence, checking every chunk.

    Parameters
    ----------
    w1 : (N, n_in + 1), w2 : (n_out, N + 1)
        Initial (persistent) weights, copied.
    x_train : (n, n_in + 1) augmented inputs; y_train : (n,) ints
    x_check, y_check : the check set, likewise
    order : sample indices, at least as many as the run may train (the budget rounded
        up to whole chunks)
    lr, criterion : float
        η, and the accuracy that ends the run.
    check_interval, budget : int
        Samples per chunk, and the samples after which a check ends the run.
    rule : reference rule or None (every synapse plastic)
    caching : :class:`Caching` or None (plain synapses)
    alphas : exponents α of the extra meters Σ|Δw|^α
    simpson : record the inverse Simpson index of every chunk

    Returns
    -------
    RunResult
    """
    persistent = [np.array(w1, np.float64), np.array(w2, np.float64)]
    initial = [w.copy() for w in persistent]
    transient = [np.zeros_like(w) for w in persistent]
    eligible = (
        eligible_synapses(caching.consolidating_units, [w.shape for w in persistent])
        if caching is not None
        else [None, None]
    )
    result = RunResult()
    result.energy = [{**dict.fromkeys(METERS, 0), "m_alpha": [0.0] * len(alphas)} for _ in "hl"]
    t = 0
    while True:
        chunk = order[t : t + check_interval]
        if len(chunk) < check_interval:
            raise ValueError(f"order holds {len(order)} samples; the run needs more")
        counts = [np.zeros(w.shape, np.int64) for w in persistent]
        charged: list[list[dict[str, Any]]] = []  # per sample, per layer
        for offset, idx in enumerate(chunk):
            steps, ok = _step(
                persistent,
                transient,
                x_train[idx],
                int(y_train[idx]),
                t + offset,
                lr=lr,
                rule=rule,
                caching=caching,
                eligible=eligible,
                activation=activation,
                loss=loss,
                n_outputs=n_outputs,
                alphas=alphas,
            )
            if not ok:
                return _diverged(result, charged, t + offset)
            charged.append([energy for _, energy in steps])
            for layer, (updated, _) in enumerate(steps):
                counts[layer] += updated
        weights = [p + s for p, s in zip(persistent, transient, strict=True)]
        if not all(np.all(np.isfinite(w)) for w in weights):
            # the chunk's last sample is taken as the one that diverged
            return _diverged(result, charged[:-1], t + check_interval - 1)
        _charge(result, charged)
        t += check_interval
        result.samples = t
        if simpson:
            result.simpson.append([t - check_interval, *(inverse_simpson(c) for c in counts)])
        acc = accuracy(weights, x_check, y_check, activation)
        result.curve.append((t, acc))
        if acc >= criterion:
            result.status = "converged"
            break
        if t >= budget:
            break
    result.minimal = [
        {"m0": int(np.count_nonzero(w != w0)), "m1": float(np.abs(w - w0).sum())}
        for w, w0 in zip(persistent, initial, strict=True)
    ]
    if caching is not None:
        result.remaining = [
            {"remaining_m0": int(np.count_nonzero(s)), "remaining_m1": float(np.abs(s).sum())}
            for s in transient
        ]
    return result


def _step(
    persistent: list[np.ndarray],
    transient: list[np.ndarray],
    x_aug: np.ndarray,
    label: int,
    step: int,
    *,
    lr: float,
    rule: ReferenceRule | None,
    caching: Caching | None,
    eligible: Sequence[np.ndarray | None],
    activation: str,
    loss: str,
    n_outputs: int,
    alphas: Sequence[float],
) -> tuple[list[tuple[np.ndarray, dict[str, Any]]], bool]:
    """One sample, the weights changed in place: per layer, the synapses updated and
    the sample's meters; and whether its loss, M1 and transient cost were finite."""
    with np.errstate(all="ignore"):
        applied, _, loss_t = propose(
            [p + s for p, s in zip(persistent, transient, strict=True)],
            x_aug,
            label,
            step,
            lr=lr,
            rule=rule,
            activation=activation,
            loss=loss,
            n_outputs=n_outputs,
        )
        out = []
        for layer, dw in enumerate(applied):
            if caching is None:
                m0, m0_pot, m1, m1_pot = energy_of(dw)
                m_alpha = m_alpha_of(dw, alphas)
                held = 0.0
                persistent[layer] = persistent[layer] + dw
            else:
                persistent[layer], transient[layer], e = consolidate_layer(
                    persistent[layer],
                    transient[layer],
                    dw,
                    threshold=caching.threshold,
                    decay=math.exp(-1.0 / caching.tau),
                    cost=caching.cost,
                    per=caching.per,
                    eligible=eligible[layer],
                    alphas=alphas,
                )
                m0, m0_pot, m1, m1_pot, m_alpha, held = e
            energy = {
                "m0": m0,
                "m0_potentiation": m0_pot,
                "m1": m1,
                "m1_potentiation": m1_pot,
                "m1_transient": held,
                "m_alpha": m_alpha,
            }
            out.append((dw != 0, energy))
    ok = math.isfinite(loss_t) and all(
        math.isfinite(e["m1"]) and math.isfinite(e["m1_transient"]) for _, e in out
    )
    return out, ok


def _charge(result: RunResult, charged: list[list[dict[str, Any]]]) -> None:
    """Add the meters of the samples ``charged`` (per sample, per layer) to ``result``."""
    for sample in charged:
        for total, energy in zip(result.energy, sample, strict=True):
            for name in METERS:
                total[name] += energy[name]
            total["m_alpha"] = [
                a + b for a, b in zip(total["m_alpha"], energy["m_alpha"], strict=True)
            ]


def _diverged(result: RunResult, charged: list[list[dict[str, Any]]], at: int) -> RunResult:
    """``result`` diverged at sample ``at``, the samples ``charged`` of its last chunk
    (those before ``at``) charged."""
    _charge(result, charged)
    result.status, result.diverged_at, result.samples = "diverged", at, at
    result.minimal = None
    return result
