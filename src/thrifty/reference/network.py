"""Reference forward and backward pass (NumPy, float64, dense).

Weights use the same layout as :mod:`thrifty.network`: ``W1`` of shape
(N, n_in + 1) and ``W2`` of shape (n_out, N + 1), biases in the last column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _g(u: np.ndarray, activation: str) -> np.ndarray:
    if activation == "leaky_relu":
        return np.where(u > 0, u, 0.1 * u)
    if activation == "relu":
        return np.maximum(u, 0.0)
    raise ValueError(f"unknown activation {activation!r}")


def _g_prime(u: np.ndarray, activation: str) -> np.ndarray:
    if activation == "leaky_relu":
        return np.where(u > 0, 1.0, 0.1)
    if activation == "relu":
        return np.where(u > 0, 1.0, 0.0)
    raise ValueError(f"unknown activation {activation!r}")


@dataclass
class Activations:
    """Forward pass of one sample.

    Attributes
    ----------
    x : (n_in + 1,) augmented input
    u : (N,) hidden pre-activation
    a : (N + 1,) augmented hidden activity
    y : (n_out,) output
    """

    x: np.ndarray
    u: np.ndarray
    a: np.ndarray
    y: np.ndarray


def forward(
    w1: np.ndarray, w2: np.ndarray, x_aug: np.ndarray, activation: str = "leaky_relu"
) -> Activations:
    """Forward pass: ``u = W1 x``, ``a = [g(u), 1]``, ``y = W2 a``."""
    x = np.asarray(x_aug, np.float64)
    u = np.asarray(w1, np.float64) @ x
    a = np.append(_g(u, activation), 1.0)
    y = np.asarray(w2, np.float64) @ a
    return Activations(x, u, a, y)


def loss_value(y: np.ndarray, target: np.ndarray, loss: str = "mse") -> float:
    """½‖y − t‖², or the cross-entropy of softmax(y)."""
    if loss == "mse":
        return float(0.5 * np.sum((y - target) ** 2))
    z = y - y.max()
    return float(-np.sum(target * (z - np.log(np.exp(z).sum()))))


def backward(
    w2: np.ndarray,
    acts: Activations,
    target: np.ndarray,
    activation: str = "leaky_relu",
    loss: str = "mse",
) -> tuple[np.ndarray, np.ndarray]:
    """Errors ``(delta_hidden (N,), delta_output (n_out,))`` = dLoss/du of each layer."""
    if loss == "mse":
        d2 = acts.y - target
    else:
        z = np.exp(acts.y - acts.y.max())
        d2 = z / z.sum() - target
    n = acts.u.shape[0]
    d1 = (np.asarray(w2, np.float64)[:, :n].T @ d2) * _g_prime(acts.u, activation)
    return d1, d2
