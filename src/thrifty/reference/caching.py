"""Reference synaptic caching (NumPy, float64, dense, plain loops).

The same model as :mod:`thrifty.caching`, written out independently: every synapse
has a persistent weight ``l`` and a transient weight ``s``; the network computes
with ``w = l + s``. One step of one layer, in this order:

1. update ``s += Δw`` on the synapses the rule allows (``Δw = −η · delta ⊗ pre``);
2. decay ``s *= exp(−1/τ)``;
3. consolidate where ``|s| ≥ θ`` (per synapse, per postsynaptic unit, or per layer,
   and only where consolidation is allowed): ``l += s``, ``s = 0``;
4. price: M0 = number of synapses consolidated with ``s ≠ 0``, M1 = Σ|consolidated s|
   plus ``c · Σ|s|`` of what remains after step 3 (the transient cost).

The set of hidden units that may consolidate is given explicitly (the fast path
draws it from a key), so both can be fed the same one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from thrifty.reference.rules import ReferenceRule
from thrifty.reference.train import propose


@dataclass
class CachingStepRecord:
    """Energy of one step of synaptic caching, one entry per layer.

    Attributes
    ----------
    m0, m0_potentiation : list of int
        Synapses consolidated (with ``s ≠ 0``); those with ``s > 0``.
    m1, m1_potentiation : list of float
        Σ|consolidated s| plus the transient cost; Σ of consolidated ``s > 0``.
    m_alpha : list of list of float
        Σ|consolidated s|^α for each extra exponent.
    transient : list of float
        ``c · Σ|s|`` after the step (included in ``m1``).
    loss : float
    """

    m0: list[int]
    m0_potentiation: list[int]
    m1: list[float]
    m1_potentiation: list[float]
    m_alpha: list[list[float]]
    transient: list[float]
    loss: float


@dataclass
class CachingResult:
    """Final state and per-step records of a reference caching run.

    Attributes
    ----------
    persistent : list of arrays
        ``l`` per layer: (N, n_in + 1) and (n_out, N + 1).
    transient : list of arrays
        ``s`` per layer, same shapes.
    records : list of CachingStepRecord
        One per step.
    """

    persistent: list[np.ndarray]
    transient: list[np.ndarray]
    records: list[CachingStepRecord] = field(default_factory=list)


def eligible_synapses(
    units: np.ndarray | None, shapes: Sequence[tuple[int, int]]
) -> list[np.ndarray]:
    """Boolean matrices of the synapses that may consolidate, one per layer.

    ``units`` (N,) marks the hidden units whose incoming synapses (rows of the
    first layer) and outgoing synapses (columns of the second layer) may
    consolidate; the output biases (last column) always may. None: all.
    """
    out = [np.ones(shape, bool) for shape in shapes]
    if units is None:
        return out
    units = np.asarray(units, bool)
    for i in range(shapes[0][0]):
        if not units[i]:
            out[0][i, :] = False
            out[1][:, i] = False
    return out


def consolidate_layer(
    persistent: np.ndarray,
    transient: np.ndarray,
    dw: np.ndarray,
    *,
    threshold: float,
    decay: float,
    cost: float,
    per: str = "synapse",
    eligible: np.ndarray | None = None,
    alphas: Sequence[float] = (),
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, float, float, list[float], float]]:
    """One caching step of one layer, element by element.

    Parameters
    ----------
    persistent, transient : (n_post, n_pre) arrays
        ``l`` and ``s`` before the step (not modified).
    dw : (n_post, n_pre) array
        The applied update (zero where not selected).
    threshold, decay, cost : float
        θ, ``exp(−1/τ)`` and c.
    per : {"synapse", "neuron", "layer"}
    eligible : (n_post, n_pre) boolean array or None
        Synapses that may consolidate (None: all).
    alphas : sequence of float

    Returns
    -------
    persistent, transient : arrays after the step
    energy : (m0, m0_potentiation, m1, m1_potentiation, m_alpha, transient_cost)
    """
    lw = np.array(persistent, np.float64)
    s = np.array(transient, np.float64)
    n_post, n_pre = s.shape
    ok = np.ones((n_post, n_pre), bool) if eligible is None else np.asarray(eligible, bool)
    for i in range(n_post):
        for j in range(n_pre):
            s[i, j] = (s[i, j] + dw[i, j]) * decay

    def reaches(i: int, j: int) -> bool:
        return bool(ok[i, j] and abs(s[i, j]) >= threshold)

    chosen = np.zeros((n_post, n_pre), bool)
    if per == "synapse":
        for i in range(n_post):
            for j in range(n_pre):
                chosen[i, j] = reaches(i, j)
    elif per == "neuron":
        for i in range(n_post):
            if any(reaches(i, j) for j in range(n_pre)):
                chosen[i, :] = ok[i, :]
    elif per == "layer":
        if any(reaches(i, j) for i in range(n_post) for j in range(n_pre)):
            chosen[:, :] = ok
    else:
        raise ValueError(f"per must be synapse, neuron or layer, got {per!r}")

    m0 = m0_pot = 0
    m1 = m1_pot = 0.0
    m_alpha = [0.0 for _ in alphas]
    for i in range(n_post):
        for j in range(n_pre):
            if not chosen[i, j] or s[i, j] == 0.0:
                continue
            v = s[i, j]
            m0 += 1
            m1 += abs(v)
            if v > 0:
                m0_pot += 1
                m1_pot += v
            for k, a in enumerate(alphas):
                m_alpha[k] += abs(v) ** a
            lw[i, j] += v
            s[i, j] = 0.0
    held = cost * float(np.sum(np.abs(s)))
    return lw, s, (m0, m0_pot, m1 + held, m1_pot, m_alpha, held)


def train_caching(
    w1: np.ndarray,
    w2: np.ndarray,
    x_aug: np.ndarray,
    labels: np.ndarray,
    order: Sequence[int],
    *,
    lr: float,
    threshold: float,
    tau: float = 1000.0,
    cost: float = 0.001,
    per: str = "synapse",
    consolidating_units: np.ndarray | None = None,
    rule: ReferenceRule | None = None,
    activation: str = "leaky_relu",
    loss: str = "mse",
    n_outputs: int = 10,
    alphas: Sequence[float] = (),
) -> CachingResult:
    """Train with caching synapses on the samples ``order``, one at a time.

    Parameters
    ----------
    w1 : (N, n_in + 1), w2 : (n_out, N + 1)
        Initial persistent weights (copied, float64); transient weights start at 0.
    x_aug : (n, n_in + 1) augmented inputs; labels : (n,) ints
    order : sample indices, one per step
    lr, threshold, tau, cost : float
        η, θ, τ (samples) and c.
    per : {"synapse", "neuron", "layer"}
    consolidating_units : (N,) boolean array or None
        Hidden units whose synapses may consolidate (None: all).
    rule : reference rule or None (every synapse)

    Returns
    -------
    CachingResult
    """
    ls = [np.array(w1, np.float64), np.array(w2, np.float64)]
    ss = [np.zeros_like(w) for w in ls]
    eligible = eligible_synapses(consolidating_units, [w.shape for w in ls])
    decay = math.exp(-1.0 / tau)
    result = CachingResult(ls, ss)
    for t, idx in enumerate(order):
        applied, _, loss_t = propose(
            [lw + sw for lw, sw in zip(ls, ss, strict=True)],
            x_aug[idx],
            int(labels[idx]),
            t,
            lr=lr,
            rule=rule,
            activation=activation,
            loss=loss,
            n_outputs=n_outputs,
        )
        energies = []
        for layer in range(2):
            ls[layer], ss[layer], energy = consolidate_layer(
                ls[layer],
                ss[layer],
                applied[layer],
                threshold=threshold,
                decay=decay,
                cost=cost,
                per=per,
                eligible=eligible[layer],
                alphas=alphas,
            )
            energies.append(energy)
        result.records.append(
            CachingStepRecord(
                m0=[e[0] for e in energies],
                m0_potentiation=[e[1] for e in energies],
                m1=[e[2] for e in energies],
                m1_potentiation=[e[3] for e in energies],
                m_alpha=[e[4] for e in energies],
                transient=[e[5] for e in energies],
                loss=loss_t,
            )
        )
    result.persistent, result.transient = ls, ss
    return result
