"""Theory beside the measurements: the counting argument, power laws, extrapolation.

Three pieces, all plain NumPy (and SciPy's t distribution for intervals):

- the paper's **counting argument** for random synapse masks: the optimal plastic
  fractions ``p1`` (input→hidden) and ``p2`` (hidden→output) of a network with N hidden
  units, given the smallest network ``N_min`` that learns the task with full plasticity,
  and the number of plastic synapses, to which the energy of eq. (1) is proportional;
- **power-law fits** ``y = a·N^b`` by least squares in log-log coordinates, with
  confidence intervals on ``a`` and ``b`` and on the fitted curve;
- the **extrapolation to macaque V1** (Fig 5): the energy of unrestricted learning in a
  network with as many synapses as V1, relative to plain backprop's least
  median energy over the sizes measured.

Example
-------
>>> p1, p2 = optimal_fractions(1000, 30)
>>> float(p1), float(p2)
(0.03, 1.0)
>>> regime(10_000, 30)
array(3)
>>> law = fit_power_law([100, 1000, 10_000], [2.0, 20.0, 200.0])
>>> round(law.exponent, 6)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

N_INPUTS = 784
"""Inputs of an MNIST network (pixels)."""
N_OUTPUTS = 10
"""Outputs of an MNIST network (classes)."""

V1_NEURONS = 1.5e8
"""Neurons in macaque V1 (Vanni et al. 2020, as quoted by the paper)."""
V1_SYNAPSES_PER_NEURON = 300.0
"""Synapses per V1 neuron, as quoted by the paper."""
V1_SYNAPSES = V1_NEURONS * V1_SYNAPSES_PER_NEURON
"""Synapses in macaque V1, about 4.5·10^10."""


# --------------------------------------------------------------------------------------
# Counting argument
# --------------------------------------------------------------------------------------


def _check_counts(n_min: float, n_inputs: int, n_outputs: int) -> None:
    if not n_min > 0:
        raise ValueError(f"n_min must be > 0, got {n_min!r}")
    if n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"n_inputs and n_outputs must be >= 1, got {n_inputs!r} and {n_outputs!r}")


def regime(
    n_hidden: ArrayLike,
    n_min: float,
    *,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> np.ndarray:
    """Which regime of the counting argument a network of N hidden units is in.

    Parameters
    ----------
    n_hidden : array_like
        Hidden units N (> 0).
    n_min : float
        Smallest network that reaches the criterion with full plasticity.
    n_inputs, n_outputs : int
        Layer widths (784 and 10 for MNIST).

    Returns
    -------
    numpy.ndarray of int, same shape as ``n_hidden``
        1 for ``N ≤ N_min`` (everything plastic), 2 for
        ``N_min < N ≤ (n_inputs/n_outputs)·N_min`` (only ``p1`` reduced), 3 above
        (both reduced).
    """
    _check_counts(n_min, n_inputs, n_outputs)
    n = np.asarray(n_hidden, dtype=float)
    ratio = n_inputs / n_outputs
    return np.where(n <= n_min, 1, np.where(n <= ratio * n_min, 2, 3))


def optimal_fractions(
    n_hidden: ArrayLike,
    n_min: float,
    *,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal plastic fractions ``(p1, p2)`` of random synapse masks (the counting argument).

    Minimises the number of plastic synapses ``N·(p1·n_inputs + p2·n_outputs)``
    subject to ``p1·p2·N = N_min`` (enough plastic paths between every input and
    every output) and ``p1, p2 ≤ 1``.

    Parameters
    ----------
    n_hidden : array_like
        Hidden units N (> 0).
    n_min : float
        Smallest network that reaches the criterion with full plasticity (> 0).
    n_inputs, n_outputs : int
        Layer widths; their ratio (78.4 for MNIST) sets the boundary of regime 3.

    Returns
    -------
    p1, p2 : numpy.ndarray
        Fractions of plastic input→hidden and hidden→output synapses, shaped like
        ``n_hidden``:

        - ``N ≤ N_min``: ``p1 = p2 = 1``;
        - ``N_min ≤ N ≤ r·N_min`` (``r = n_inputs/n_outputs``): ``p1 = N_min/N``, ``p2 = 1``;
        - ``N ≥ r·N_min``: ``p1 = √(N_min·n_outputs/(n_inputs·N))``, ``p2 = r·p1``.

    Notes
    -----
    Both fractions are continuous at the two boundaries. Below ``N_min`` the constraint
    cannot be met (``p1·p2·N = N < N_min``): everything is plastic.
    """
    _check_counts(n_min, n_inputs, n_outputs)
    n = np.asarray(n_hidden, dtype=float)
    if np.any(n <= 0):
        raise ValueError(f"n_hidden must be > 0, got {n_hidden!r}")
    ratio = n_inputs / n_outputs
    p1_large = np.sqrt(n_min * n_outputs / (n_inputs * n))
    p1 = np.where(n <= n_min, 1.0, np.where(n <= ratio * n_min, n_min / n, p1_large))
    p2 = np.where(n <= ratio * n_min, 1.0, ratio * p1_large)
    return p1, p2


def plastic_synapses(
    n_hidden: ArrayLike,
    n_min: float,
    *,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> np.ndarray:
    """Number of plastic synapses at the optimal fractions, ``N·(p1·n_inputs + p2·n_outputs)``.

    In the three regimes this is ``N·(n_inputs + n_outputs)``,
    ``N_min·n_inputs + N·n_outputs`` and ``2·√(N_min·n_inputs·n_outputs·N)``
    (794·N, 784·N_min + 10·N and 2·√(7840·N_min·N) for MNIST). Biases are not counted,
    as in the paper.
    """
    n = np.asarray(n_hidden, dtype=float)
    p1, p2 = optimal_fractions(n, n_min, n_inputs=n_inputs, n_outputs=n_outputs)
    return n * (p1 * n_inputs + p2 * n_outputs)


def plastic_synapses_by_layer(
    n_hidden: ArrayLike,
    n_min: float,
    *,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Plastic synapses per layer at the optimal fractions: ``(N·p1·n_in, N·p2·n_out)``."""
    n = np.asarray(n_hidden, dtype=float)
    p1, p2 = optimal_fractions(n, n_min, n_inputs=n_inputs, n_outputs=n_outputs)
    return n * p1 * n_inputs, n * p2 * n_outputs


def mask_energy(
    n_hidden: ArrayLike,
    n_min: float,
    *,
    n_ref: float,
    energy_ref: float,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> np.ndarray:
    """Energy of learning with optimal random synapse masks, eq. (1) of the paper.

    The energy is taken proportional to the number of plastic synapses
    (:func:`plastic_synapses`); the constant is fixed by one measured point
    ``energy(n_ref) = energy_ref``.

    Parameters
    ----------
    n_hidden : array_like
        Where to evaluate, hidden units.
    n_min : float
        Measured smallest network that reaches the criterion.
    n_ref, energy_ref : float
        The network size at which the constant is fitted and the energy measured there
        (same units as the result: updates for M0, weight units for M1).

    Returns
    -------
    numpy.ndarray
        Energy, shaped like ``n_hidden``.
    """
    scale = energy_ref / float(
        plastic_synapses(n_ref, n_min, n_inputs=n_inputs, n_outputs=n_outputs)
    )
    return scale * plastic_synapses(n_hidden, n_min, n_inputs=n_inputs, n_outputs=n_outputs)


def smallest_converging(
    n_hidden: Sequence[float] | np.ndarray,
    converged: Sequence[bool] | np.ndarray,
    *,
    quorum: float = 0.5,
) -> float | None:
    """Estimate ``N_min``: the smallest N at which at least ``quorum`` of the runs converged.

    Parameters
    ----------
    n_hidden : sequence of float
        Network size of each run (several runs per size: seeds).
    converged : sequence of bool
        Whether each run reached the criterion.
    quorum : float
        Fraction of a size's runs that must converge, in (0, 1].

    Returns
    -------
    float or None
        The smallest such size, or None when no size qualifies. The resolution is that
        of the grid of sizes run.

    Notes
    -----
    Sizes above the estimate are not required to converge: a single lucky large
    network does not lower the estimate, but one unlucky seed at a larger size does
    not raise it either.
    """
    if not 0 < quorum <= 1:
        raise ValueError(f"quorum must be in (0, 1], got {quorum!r}")
    n = np.asarray(n_hidden, dtype=float)
    ok = np.asarray(converged, dtype=bool)
    if n.shape != ok.shape:
        raise ValueError("n_hidden and converged must have the same length")
    for size in np.unique(n):
        share = ok[n == size].mean()
        if share >= quorum - 1e-12:
            return float(size)
    return None


# --------------------------------------------------------------------------------------
# Power laws
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLaw:
    """A fitted power law ``y = prefactor · x^exponent``.

    Attributes
    ----------
    prefactor, exponent : float
        ``a`` and ``b``.
    prefactor_ci, exponent_ci : tuple of float
        Confidence intervals at ``level`` (nan when there are too few points).
    level : float
        Confidence level of the intervals, e.g. 0.95.
    n_points : int
        Number of points fitted.
    x_range : tuple of float
        Smallest and largest x fitted.
    residual_std : float
        Standard deviation of the residuals of log10(y) (nan for two points).
    covariance : tuple of tuple of float
        2×2 covariance of (log10 a, b).
    """

    prefactor: float
    exponent: float
    prefactor_ci: tuple[float, float]
    exponent_ci: tuple[float, float]
    level: float
    n_points: int
    x_range: tuple[float, float]
    residual_std: float
    covariance: tuple[tuple[float, float], tuple[float, float]]

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """The fitted curve at ``x``."""
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def interval(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Confidence band of the fitted curve (the mean law, not single runs) at ``x``."""
        lx = np.log10(np.asarray(x, dtype=float))
        cov = np.asarray(self.covariance)
        var = cov[0, 0] + 2 * lx * cov[0, 1] + lx**2 * cov[1, 1]
        dof = self.n_points - 2
        if dof < 1 or not np.all(np.isfinite(var)):
            nan = np.full_like(lx, np.nan)
            return nan, nan
        t = stats.t.ppf(0.5 + self.level / 2, dof)
        centre = math.log10(self.prefactor) + self.exponent * lx
        half = t * np.sqrt(np.maximum(var, 0.0))
        return 10 ** (centre - half), 10 ** (centre + half)

    def describe(self, digits: int = 2) -> str:
        """``b = 0.52 [0.45, 0.60]`` style text of the exponent and its interval."""
        lo, hi = self.exponent_ci
        ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) else " [n/a]"
        return f"{self.exponent:.{digits}f}{ci}"


def fit_power_law(x: ArrayLike, y: ArrayLike, *, level: float = 0.95) -> PowerLaw:
    """Least-squares fit of ``log10 y = log10 a + b·log10 x``.

    Parameters
    ----------
    x, y : array_like
        Positive, finite values; non-positive or non-finite pairs are dropped. Pass
        several values per x (seeds) to let their scatter enter the intervals.
    level : float
        Confidence level of the intervals (Student t with n − 2 degrees of freedom).

    Returns
    -------
    PowerLaw

    Raises
    ------
    ValueError
        With fewer than two usable points or fewer than two distinct x.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0) & (ya > 0)
    lx, ly = np.log10(xa[keep]), np.log10(ya[keep])
    if lx.size < 2 or np.unique(lx).size < 2:
        raise ValueError("a power-law fit needs at least two points at two distinct x")
    design = np.column_stack([np.ones_like(lx), lx])
    coef, *_ = np.linalg.lstsq(design, ly, rcond=None)
    resid = ly - design @ coef
    dof = lx.size - 2
    nan2 = (math.nan, math.nan)
    if dof >= 1:
        s2 = float(resid @ resid) / dof
        cov = s2 * np.linalg.inv(design.T @ design)
        t = float(stats.t.ppf(0.5 + level / 2, dof))
        se = np.sqrt(np.diag(cov))
        b_ci = (float(coef[1] - t * se[1]), float(coef[1] + t * se[1]))
        a_ci = (float(10 ** (coef[0] - t * se[0])), float(10 ** (coef[0] + t * se[0])))
        resid_std = math.sqrt(s2)
    else:
        cov = np.full((2, 2), np.nan)
        a_ci, b_ci, resid_std = nan2, nan2, math.nan
    return PowerLaw(
        prefactor=float(10 ** coef[0]),
        exponent=float(coef[1]),
        prefactor_ci=a_ci,
        exponent_ci=b_ci,
        level=level,
        n_points=int(lx.size),
        x_range=(float(10 ** lx.min()), float(10 ** lx.max())),
        residual_std=resid_std,
        covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
    )


# --------------------------------------------------------------------------------------
# Extrapolation to macaque V1 (Fig 5)
# --------------------------------------------------------------------------------------


def synapses_of(
    n_hidden: ArrayLike, *, n_inputs: int = N_INPUTS, n_outputs: int = N_OUTPUTS
) -> np.ndarray:
    """Synapses of a network with N hidden units, ``N·(n_inputs + n_outputs)`` (no biases)."""
    return np.asarray(n_hidden, dtype=float) * (n_inputs + n_outputs)


def hidden_units_for(
    synapses: ArrayLike, *, n_inputs: int = N_INPUTS, n_outputs: int = N_OUTPUTS
) -> np.ndarray:
    """The N whose network has this many synapses: ``synapses / (n_inputs + n_outputs)``.

    Notes
    -----
    Decision: a brain area is mapped onto the one-hidden-layer network by its number of
    synapses, not its number of neurons, because energy is paid per synapse and in the
    network every synapse touches a hidden unit. V1's 4.5·10^10 synapses give
    N ≈ 5.7·10^7 hidden units (794 synapses each).
    """
    return np.asarray(synapses, dtype=float) / (n_inputs + n_outputs)


@dataclass(frozen=True)
class Extrapolation:
    """Energy of unrestricted learning at a target size, relative to a least energy.

    Attributes
    ----------
    n_hidden : float
        Network size the target maps to.
    synapses : float
        The target's synapses.
    energy : float
        The fitted law at ``n_hidden``.
    energy_ci : tuple of float
        Confidence band of the law there.
    minimum : float
        The normaliser: Fig 5 takes plain backprop's least median energy over N (the
        minimum of Fig 1b).
    ratio, ratio_ci : float, tuple of float
        ``energy / minimum`` and its band.
    """

    n_hidden: float
    synapses: float
    energy: float
    energy_ci: tuple[float, float]
    minimum: float
    ratio: float
    ratio_ci: tuple[float, float]


def extrapolate(
    law: PowerLaw,
    minimum: float,
    *,
    synapses: float = V1_SYNAPSES,
    n_inputs: int = N_INPUTS,
    n_outputs: int = N_OUTPUTS,
) -> Extrapolation:
    """Extrapolate a fitted energy law to a network with ``synapses`` synapses.

    Parameters
    ----------
    law : PowerLaw
        Energy of unrestricted learning against hidden units N.
    minimum : float
        The normaliser, in the law's units: Fig 5 takes plain backprop's least median
        energy over N, which a network restricted to a well-sized subnet spends at any
        size (with a subnet the energy no longer grows with N).
    synapses : float
        Synapses of the target (default macaque V1, 4.5·10^10).

    Returns
    -------
    Extrapolation
        The ratio of unrestricted to minimal energy (the paper quotes about 700 for M1).
    """
    if not minimum > 0:
        raise ValueError(f"minimum must be > 0, got {minimum!r}")
    n = float(hidden_units_for(synapses, n_inputs=n_inputs, n_outputs=n_outputs))
    energy = float(law(n))
    lo, hi = law.interval(n)
    return Extrapolation(
        n_hidden=n,
        synapses=float(synapses),
        energy=energy,
        energy_ci=(float(lo), float(hi)),
        minimum=float(minimum),
        ratio=energy / minimum,
        ratio_ci=(float(lo) / minimum, float(hi) / minimum),
    )
