"""Reference rules: dense boolean selection matrices, written out plainly.

A reference rule is a function
``select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]`` that
returns, per layer, the boolean matrix of synapses it allows; ``current`` is what
the rules before it in a :func:`chain` allowed. Random draws (masks, subnets) are
given explicitly, so the reference and the fast path can be fed the same ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass
class StepInput:
    """What a rule sees at one step.

    Attributes
    ----------
    dw : list of (n_post, n_pre + 1) float64 arrays
        The proposed updates ``−η · delta ⊗ pre`` of each layer (not masked by the
        rules before in a chain: their selection is ``current``).
    deltas : list of (n_post,) arrays
    pres : list of (n_pre + 1,) arrays
        Presynaptic activities, bias 1 last.
    output : (n_out,) network output
    label : int
    step : int
    """

    dw: list[np.ndarray]
    deltas: list[np.ndarray]
    pres: list[np.ndarray]
    output: np.ndarray
    label: int
    step: int


ReferenceRule = Callable[[StepInput, list[np.ndarray]], list[np.ndarray]]


def count_of(fraction: float, size: int) -> int:
    """``round(fraction · size)`` with halves rounded up, at least 1.

    The product of the float64 ``fraction`` and ``size`` is taken exactly; one that falls
    short of a half by no more than ``(x + 32) · 2**-53`` (the rounding of a decimal
    fraction to float64) counts as the half (0.145 · 100 → 15), as decimal fractions
    are meant.
    """
    x = Fraction(float(fraction)) * int(size)
    whole = math.floor(x)
    up = x - whole >= Fraction(1, 2) - (x + 32) / 2**53
    return max(whole + int(up), 1)


def _all(step: StepInput) -> list[np.ndarray]:
    return [np.ones(d.shape, bool) for d in step.dw]


def chain(rules: Sequence[ReferenceRule]) -> ReferenceRule:
    """Apply rules in order; each sees what the previous ones allowed; results intersect."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        for rule in rules:
            allowed = rule(step, current)
            current = [c & a for c, a in zip(current, allowed, strict=True)]
        return current

    return select


def synapse_mask(masks: Sequence[np.ndarray]) -> ReferenceRule:
    """Fixed synapse masks, one boolean matrix per layer."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(m, bool).copy() for m in masks]

    return select


def neuron_mask(units: np.ndarray) -> ReferenceRule:
    """Only the incoming synapses of hidden units with ``units[i]`` plastic."""
    units = np.asarray(units, bool)

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        out[0][~units, :] = False
        return out

    return select


def subnet(units: np.ndarray) -> ReferenceRule:
    """Incoming and outgoing synapses of the subnet units; output biases stay plastic."""
    units = np.asarray(units, bool)

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        out[0][~units, :] = False
        out[1][:, : units.size][:, ~units] = False
        return out

    return select


def top_k(fraction: float, per: str = "layer") -> ReferenceRule:
    """The largest |Δw| of the input→hidden layer among the currently allowed synapses.

    per="layer": ``k = round(p · #allowed)`` entries of the whole matrix, by sorting.
    per="neuron": for each unit, the ``round(p · #allowed synapses of the unit)`` inputs
    with the largest |Δw_ij| in its row (computed row by row). Ties go to the lower
    index (row-major), as a stable sort orders them. A zero update is never selected:
    when fewer than k are non-zero, only those are.
    """

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        allowed = current[0]
        mag = np.abs(step.dw[0])
        if per == "layer":
            k = count_of(fraction, int(allowed.sum()))
            flat = np.where(allowed, mag, -1.0).ravel()
            idx = np.argsort(-flat, kind="stable")[:k]
            keep = np.zeros(flat.size, bool)
            keep[idx] = flat[idx] > 0
            out[0] = keep.reshape(mag.shape)
            return out
        keep = np.zeros(mag.shape, bool)
        for i in range(mag.shape[0]):
            k = count_of(fraction, int(allowed[i].sum()))
            # rank inputs by |x_j| (the row's |Δw| up to the factor |delta_i|)
            row = np.where(allowed[i], np.abs(step.pres[0]), -1.0)
            keep[i, np.argsort(-row, kind="stable")[:k]] = True
        out[0] = keep & (mag > 0)
        return out

    return select


def neuron_select(fraction: float, by: str = "error") -> ReferenceRule:
    """Hidden units with the largest |error| or |activity| (among allowed units)."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        n = step.deltas[0].shape[0]
        units_allowed = current[0].any(axis=1)
        score = np.abs(step.deltas[0]) if by == "error" else np.abs(step.pres[1][:n])
        score = np.where(units_allowed, score, -1.0)
        k = count_of(fraction, int(units_allowed.sum()))
        keep = np.zeros(n, bool)
        keep[np.argsort(-score, kind="stable")[:k]] = True
        out[0][~keep, :] = False
        return out

    return select


def per_step_mask(masks: Callable[[int], np.ndarray]) -> ReferenceRule:
    """Neuron mask that changes every step: ``masks(step)`` gives the (N,) units."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        return neuron_mask(masks(step.step))(step, current)

    return select


def class_neuron_mask(masks: np.ndarray) -> ReferenceRule:
    """One neuron mask per class: ``masks`` of shape (n_classes, N)."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        return neuron_mask(masks[step.label])(step, current)

    return select


def frozen_input() -> ReferenceRule:
    """Input→hidden layer frozen."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        out[0][:] = False
        return out

    return select


def lazy() -> ReferenceRule:
    """No update at all when the sample is already classified correctly."""

    def select(step: StepInput, current: list[np.ndarray]) -> list[np.ndarray]:
        out = _all(step)
        if int(np.argmax(step.output)) == step.label:
            out = [np.zeros_like(o) for o in out]
        return out

    return select
