"""The 784–N–10 network: parameters, forward pass, hand-written backward pass.

Every layer stores its bias as the last column of its weight matrix, and every
presynaptic activity vector is *augmented* with a constant 1 at its end, so a bias
is an ordinary synapse from an always-on input. Layer ``l`` computes
``u = W_l @ pre_l`` with ``W_l`` of shape ``(n_post, n_pre + 1)``.

The backward pass returns, per layer, the error ``delta`` (the derivative of the
loss with respect to the layer's pre-activation ``u``, shape ``(n_post,)``) and the
augmented presynaptic activity ``pre`` (shape ``(n_pre + 1,)``). Backprop proposes
the update ``Δw = −η · delta ⊗ pre`` for the layer; the plasticity rules decide
which of those synapses express it.

Example
-------
>>> import jax
>>> params = init_params(jax.random.key(0), n_hidden=100)
>>> params.hidden.shape, params.output.shape
((100, 785), (10, 101))
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

ACTIVATIONS = ("leaky_relu", "relu")
LOSSES = ("mse", "cross_entropy")
LEAK = 0.1
"""Slope of the leaky ReLU for negative inputs."""

MATMUL_PRECISION = "float32"
"""Precision of every matrix product thrifty computes: true float32 arithmetic.

JAX's own default (``jax_default_matmul_precision``) lets a GPU round float32 operands
to TensorFloat-32 (10 bits of mantissa) in its matrix units, which would make the
weights, and every energy counted from them, depend on the device. The products of
this module name this precision themselves, so they hold whether or not the caller
compiles them; :mod:`thrifty.train` compiles every program under it. On a CPU the
two are the same."""


class Params(NamedTuple):
    """Weights of the two layers, biases in the last column.

    Attributes
    ----------
    hidden : Array, shape (n_hidden, n_inputs + 1)
        Input→hidden weights; column ``n_inputs`` holds the hidden biases.
    output : Array, shape (n_outputs, n_hidden + 1)
        Hidden→output weights; column ``n_hidden`` holds the output biases.
    """

    hidden: jax.Array
    output: jax.Array


class LayerProposal(NamedTuple):
    """What backprop proposes for one layer: ``Δw = −η · delta ⊗ pre``.

    Attributes
    ----------
    delta : Array, shape (n_post,)
        Error of the postsynaptic units (dLoss/du).
    pre : Array, shape (n_pre + 1,)
        Presynaptic activity, augmented with a trailing 1 for the bias.
    """

    delta: jax.Array
    pre: jax.Array


class Proposal(NamedTuple):
    """Backprop's proposal for every layer of one sample.

    Attributes
    ----------
    layers : tuple of LayerProposal
        ``(hidden, output)``: input→hidden, then hidden→output.
    hidden_input : Array, shape (n_hidden,)
        Pre-activation ``u`` of the hidden units.
    output : Array, shape (n_outputs,)
        Network output (linear units; logits for the cross-entropy variant).
    """

    layers: tuple[LayerProposal, LayerProposal]
    hidden_input: jax.Array
    output: jax.Array


def n_synapses(params: Params) -> tuple[int, int]:
    """Number of synapses per layer, biases included: ``(N·785, 10·(N+1))``."""
    return (int(params.hidden.size), int(params.output.size))


def init_params(
    key: jax.Array,
    *,
    n_hidden: int,
    n_inputs: int = 784,
    n_outputs: int = 10,
    sigma: float = 0.01,
    dtype: jnp.dtype = jnp.float32,
) -> Params:
    """Draw initial weights i.i.d. from N(0, σ²); biases start at 0.

    Parameters
    ----------
    key : jax.Array
        PRNG key; the same key gives the same weights.
    n_hidden, n_inputs, n_outputs : int
        Layer sizes.
    sigma : float
        Standard deviation of the weights (not scaled by fan-in).
    dtype : dtype
        ``float32`` (default) or ``float64`` (needs ``jax_enable_x64``).
    """
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "dtype float64 needs JAX's x64 mode: jax.config.update('jax_enable_x64', True)"
        )
    k1, k2 = jax.random.split(key)
    w1 = sigma * jax.random.normal(k1, (n_hidden, n_inputs), dtype)
    w2 = sigma * jax.random.normal(k2, (n_outputs, n_hidden), dtype)
    return Params(
        hidden=jnp.concatenate([w1, jnp.zeros((n_hidden, 1), dtype)], axis=1),
        output=jnp.concatenate([w2, jnp.zeros((n_outputs, 1), dtype)], axis=1),
    )


def augment(x: jax.Array) -> jax.Array:
    """Append the constant bias input 1 along the last axis: (..., n) → (..., n+1)."""
    ones = jnp.ones((*x.shape[:-1], 1), x.dtype)
    return jnp.concatenate([x, ones], axis=-1)


def activate(u: jax.Array, activation: str) -> jax.Array:
    """Hidden activation g(u): leaky ReLU (slope 0.1 below 0) or ReLU."""
    if activation == "leaky_relu":
        return jnp.where(u > 0, u, LEAK * u)
    if activation == "relu":
        return jnp.where(u > 0, u, jnp.zeros_like(u))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def activate_slope(u: jax.Array, activation: str) -> jax.Array:
    """Derivative g'(u) (taken as the left value at u = 0)."""
    if activation == "leaky_relu":
        return jnp.where(u > 0, jnp.ones_like(u), jnp.full_like(u, LEAK))
    if activation == "relu":
        return jnp.where(u > 0, jnp.ones_like(u), jnp.zeros_like(u))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def output_error(output: jax.Array, target: jax.Array, loss: str) -> jax.Array:
    """dLoss/dy for one-hot ``target``: ``y − t`` (MSE) or ``softmax(y) − t``."""
    if loss == "mse":
        return output - target
    if loss == "cross_entropy":
        return jax.nn.softmax(output) - target
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def output_loss(output: jax.Array, target: jax.Array, loss: str) -> jax.Array:
    """Loss of one sample from its output: ½‖y − t‖² (MSE) or −Σ t·log softmax(y)."""
    if loss == "mse":
        return 0.5 * jnp.sum((output - target) ** 2)
    if loss == "cross_entropy":
        return -jnp.sum(target * jax.nn.log_softmax(output))
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _product(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` in :data:`MATMUL_PRECISION`."""
    return jnp.matmul(a, b, precision=MATMUL_PRECISION)


def forward(params: Params, x_aug: jax.Array, *, activation: str = "leaky_relu") -> jax.Array:
    """Network output for augmented inputs ``x_aug`` of shape (..., n_inputs + 1)."""
    hidden = activate(_product(x_aug, params.hidden.T), activation)
    return _product(augment(hidden), params.output.T)


def loss_value(
    params: Params,
    x_aug: jax.Array,
    target: jax.Array,
    *,
    activation: str = "leaky_relu",
    loss: str = "mse",
) -> jax.Array:
    """Loss of one sample: ½‖y − t‖² (MSE) or −Σ t·log softmax(y)."""
    return output_loss(forward(params, x_aug, activation=activation), target, loss)


def propose(
    params: Params | tuple[Params, ...],
    x_aug: jax.Array,
    target: jax.Array,
    *,
    activation: str = "leaky_relu",
    loss: str = "mse",
    hidden_input: jax.Array | None = None,
) -> Proposal:
    """Forward and hand-written backward pass for one sample.

    Parameters
    ----------
    params : Params, or tuple of Params
        The weights, or parts whose sum is the weights (e.g. persistent and
        transient components): each part is multiplied on its own and the
        products added, so the sum is never formed.
    x_aug : Array, shape (n_inputs + 1,)
        Augmented input.
    target : Array, shape (n_outputs,)
        One-hot target.
    hidden_input : Array of shape (n_hidden,), or None
        ``W_hidden @ x_aug`` if already computed (e.g. by a synapse model that
        skips rows it knows to be zero); None: computed from ``params``.

    Returns
    -------
    Proposal
        Per-layer errors and presynaptic activities. The gradient of
        :func:`loss_value` with respect to layer ``l`` equals
        ``outer(layers[l].delta, layers[l].pre)``.
    """
    parts = (params,) if isinstance(params, Params) else tuple(params)
    u = _sum(_product(p.hidden, x_aug) for p in parts) if hidden_input is None else hidden_input
    hidden = augment(activate(u, activation))
    y = _sum(_product(p.output, hidden) for p in parts)
    delta_out = output_error(y, target, loss)
    n_hidden = parts[0].hidden.shape[0]
    back = _sum(_product(p.output[:, :n_hidden].T, delta_out) for p in parts)
    delta_hidden = back * activate_slope(u, activation)
    return Proposal(
        layers=(LayerProposal(delta_hidden, x_aug), LayerProposal(delta_out, hidden)),
        hidden_input=u,
        output=y,
    )


def _sum(terms: Iterable[jax.Array]) -> jax.Array:
    """Sum of the arrays in ``terms`` (at least one), in order."""
    return functools.reduce(operator.add, terms)


def row_chunks(a: jax.Array, batch: int, fill: Any = 0) -> jax.Array:
    """``a`` (shape (n, ...)) as equal chunks of at most ``batch`` rows: shape
    (count, size, ...), with count = max(⌈n / batch⌉, 1) and size = ⌈n / count⌉; the
    rows after the n-th are ``fill``.

    Raises
    ------
    ValueError
        For ``batch`` < 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    n = a.shape[0]
    count = max(-(-n // batch), 1)
    size = -(-n // count)
    padding = [(0, count * size - n)] + [(0, 0)] * (a.ndim - 1)
    return jnp.pad(a, padding, constant_values=fill).reshape(count, size, *a.shape[1:])


def chunk_rows() -> int:
    """Rows per chunk of :func:`predict` and of the accuracy checks: 256 on a CPU,
    where at N = 10 000 a chunk's hidden activity (10 MB) stays in the cache while that
    of 10 000 images (400 MB) goes through main memory; 2000 elsewhere (fewer, larger
    products; not measured against other sizes on an accelerator)."""
    return 256 if jax.default_backend() == "cpu" else 2000


def chunk_classes(params: Params, chunks: jax.Array, *, activation: str) -> jax.Array:
    """Predicted class of every row of chunks of rows (count, size, n_inputs + 1) →
    (count, size) int, one chunk at a time (see :func:`row_chunks`)."""

    def classify(chunk: jax.Array) -> jax.Array:
        return jnp.argmax(forward(params, chunk, activation=activation), -1)

    return jax.lax.map(classify, chunks)


@functools.partial(jax.jit, static_argnames=("activation", "batch"))
def predict(
    params: Params, x_aug: jax.Array, *, activation: str = "leaky_relu", batch: int | None = None
) -> jax.Array:
    """Predicted class of each row of ``x_aug`` (shape (n, n_inputs + 1)) → (n,) int.

    Works through the rows in equal chunks of at most ``batch`` rows (default
    :func:`chunk_rows`; one loop over the chunks, see :func:`row_chunks`), so a large
    hidden layer needs no (n × N) intermediate. On a CPU the outputs came out
    identical, bit for bit, to those of one product over all rows wherever this was
    measured (``docs/performance.md``, "Checks"); ``tests/test_network.py`` compares
    the classes.
    """
    chunks = row_chunks(x_aug, chunk_rows() if batch is None else batch)
    return chunk_classes(params, chunks, activation=activation).reshape(-1)[: x_aug.shape[0]]
