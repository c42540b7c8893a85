"""Reference per-sample training loop and energy meters (NumPy, float64, dense)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.reference.network import backward, forward, loss_value
from thrifty.reference.rules import ReferenceRule, StepInput


@dataclass
class StepRecord:
    """Energy and selection of one step.

    Attributes
    ----------
    m0, m0_potentiation : list of int, one per layer
    m1, m1_potentiation : list of float, one per layer
    loss : float
    selection : list of boolean matrices (only when asked for)
    m_alpha : list of list of float
        Per layer, Σ|Δw|^α over the changed synapses, one per exponent asked for.
    """

    m0: list[int]
    m0_potentiation: list[int]
    m1: list[float]
    m1_potentiation: list[float]
    loss: float
    selection: list[np.ndarray] | None = None
    m_alpha: list[list[float]] | None = None


def energy_of(dw: np.ndarray) -> tuple[int, int, float, float]:
    """(M0, M0 of potentiation, M1, M1 of potentiation) of one dense update matrix."""
    return (
        int(np.count_nonzero(dw)),
        int(np.count_nonzero(dw > 0)),
        float(np.abs(dw).sum()),
        float(dw[dw > 0].sum()),
    )


def m_alpha_of(dw: np.ndarray, alphas: Sequence[float]) -> list[float]:
    """Σ|Δw|^α over the non-zero entries of one dense update matrix, per exponent."""
    changed = np.abs(dw[dw != 0])
    return [float(np.sum(changed**alpha)) for alpha in alphas]


def propose(
    w: Sequence[np.ndarray],
    x_aug: np.ndarray,
    label: int,
    step: int,
    *,
    lr: float,
    rule: ReferenceRule | None,
    activation: str,
    loss: str,
    n_outputs: int,
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """One sample's updates as the rule lets them through.

    Parameters
    ----------
    w : (N, n_in + 1) and (n_out, N + 1) arrays
        The weights the network computes with.
    x_aug : (n_in + 1,) augmented input; label : int
    step : int
        Index of the sample in the run (for rules that change with it).

    Returns
    -------
    applied : list of arrays shaped like ``w``
        ``Δw = −η · delta ⊗ pre`` where the rule allows it, 0 elsewhere.
    allowed : list of boolean arrays shaped like ``w``
        The rule's selection.
    loss : float
        The sample's loss before the update.
    """
    target = np.zeros(n_outputs)
    target[label] = 1.0
    acts = forward(w[0], w[1], x_aug, activation)
    d1, d2 = backward(w[1], acts, target, activation, loss)
    deltas, pres = [d1, d2], [acts.x, acts.a]
    dw = [-lr * np.outer(d, p) for d, p in zip(deltas, pres, strict=True)]
    allowed = [np.ones(d.shape, bool) for d in dw]
    if rule is not None:
        sample = StepInput(dw=dw, deltas=deltas, pres=pres, output=acts.y, label=label, step=step)
        allowed = rule(sample, allowed)
        if (
            not isinstance(allowed, list | tuple)
            or len(allowed) != len(dw)
            or any(
                np.asarray(a).dtype != bool or np.shape(a) != d.shape
                for a, d in zip(allowed, dw, strict=True)
            )
        ):
            forms = (
                [f"{np.asarray(a).dtype}{list(np.shape(a))}" for a in allowed]
                if isinstance(allowed, list | tuple)
                else type(allowed).__name__
            )
            raise ValueError(
                "a reference rule must return one boolean matrix per layer, shaped like "
                f"its weights {[list(d.shape) for d in dw]}; got {forms}"
            )
    applied = [np.where(a, d, 0.0) for a, d in zip(allowed, dw, strict=True)]
    return applied, allowed, loss_value(acts.y, target, loss)


def train(
    w1: np.ndarray,
    w2: np.ndarray,
    x_aug: np.ndarray,
    labels: np.ndarray,
    order: Sequence[int],
    *,
    lr: float = 0.01,
    rule: ReferenceRule | None = None,
    activation: str = "leaky_relu",
    loss: str = "mse",
    n_outputs: int = 10,
    keep_selections: bool = False,
    alphas: Sequence[float] = (),
) -> tuple[np.ndarray, np.ndarray, list[StepRecord]]:
    """Train on the samples ``order`` one at a time, plain synapses.

    Parameters
    ----------
    w1 : (N, n_in + 1), w2 : (n_out, N + 1)
        Initial weights (copied, float64).
    x_aug : (n, n_in + 1) augmented inputs; labels : (n,) ints
    order : sample indices, one per step
    rule : reference rule or None (plain backprop)
    alphas : exponents α of extra meters Σ|Δw|^α (``StepRecord.m_alpha``)

    Returns
    -------
    w1, w2 : final weights
    records : one :class:`StepRecord` per step
    """
    w = [np.array(w1, np.float64), np.array(w2, np.float64)]
    records = []
    for t, idx in enumerate(order):
        applied, allowed, loss_t = propose(
            w,
            x_aug[idx],
            int(labels[idx]),
            t,
            lr=lr,
            rule=rule,
            activation=activation,
            loss=loss,
            n_outputs=n_outputs,
        )
        energies = [energy_of(a) for a in applied]
        for layer in range(2):
            w[layer] = w[layer] + applied[layer]
        records.append(
            StepRecord(
                m0=[e[0] for e in energies],
                m0_potentiation=[e[1] for e in energies],
                m1=[e[2] for e in energies],
                m1_potentiation=[e[3] for e in energies],
                loss=loss_t,
                selection=allowed if keep_selections else None,
                m_alpha=[m_alpha_of(a, alphas) for a in applied],
            )
        )
    return w[0], w[1], records
