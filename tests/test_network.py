"""The hand-written backward pass equals jax.grad; shapes and initialisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thrifty import reference
from thrifty.network import (
    augment,
    forward,
    init_params,
    loss_value,
    n_synapses,
    predict,
    propose,
    row_chunks,
)
from util import dot_precisions


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_backward_equals_jax_grad(activation: str, loss: str) -> None:
    key = jax.random.key(3)
    params = init_params(key, n_hidden=17, n_inputs=30, sigma=0.3, dtype=jnp.float64)
    x = augment(jax.random.normal(jax.random.key(4), (30,), jnp.float64))
    target = jax.nn.one_hot(7, 10, dtype=jnp.float64)
    grads = jax.grad(loss_value)(params, x, target, activation=activation, loss=loss)
    proposal = propose(params, x, target, activation=activation, loss=loss)
    for g, lp in zip(grads, proposal.layers, strict=True):
        np.testing.assert_allclose(np.outer(lp.delta, lp.pre), g, rtol=1e-12, atol=1e-14)


def test_backward_equals_reference() -> None:
    params = init_params(jax.random.key(0), n_hidden=9, n_inputs=12, sigma=0.5, dtype=jnp.float64)
    x = augment(jax.random.normal(jax.random.key(1), (12,), jnp.float64))
    target = jax.nn.one_hot(2, 10, dtype=jnp.float64)
    proposal = propose(params, x, target)
    acts = reference.forward(np.asarray(params.hidden), np.asarray(params.output), np.asarray(x))
    d1, d2 = reference.backward(np.asarray(params.output), acts, np.asarray(target))
    np.testing.assert_allclose(proposal.layers[0].delta, d1, rtol=1e-12)
    np.testing.assert_allclose(proposal.layers[1].delta, d2, rtol=1e-12)
    np.testing.assert_allclose(proposal.output, acts.y, rtol=1e-12)


def test_init_shapes_sigma_and_biases() -> None:
    params = init_params(jax.random.key(0), n_hidden=400, sigma=0.01)
    assert params.hidden.shape == (400, 785)
    assert params.output.shape == (10, 401)
    assert params.hidden.dtype == jnp.float32
    assert n_synapses(params) == (400 * 785, 10 * 401)
    assert np.all(np.asarray(params.hidden[:, -1]) == 0)
    assert np.all(np.asarray(params.output[:, -1]) == 0)
    assert np.std(np.asarray(params.hidden[:, :-1])) == pytest.approx(0.01, rel=0.02)
    again = init_params(jax.random.key(0), n_hidden=400, sigma=0.01)
    assert np.array_equal(np.asarray(params.hidden), np.asarray(again.hidden))


def test_propose_with_parts_equals_propose_with_their_sum() -> None:
    """Weights given as parts (e.g. l and s), or with the hidden input computed
    beforehand, give the pass of their sum."""
    key_l, key_s, key_x = jax.random.split(jax.random.key(3), 3)
    persistent = init_params(key_l, n_hidden=7, n_inputs=5, n_outputs=3)
    transient = jax.tree.map(
        lambda w: 0.1 * w, init_params(key_s, n_hidden=7, n_inputs=5, n_outputs=3)
    )
    whole = jax.tree.map(lambda a, b: a + b, persistent, transient)
    x = augment(jax.random.normal(key_x, (5,)))
    target = jax.nn.one_hot(1, 3)
    for loss in ("mse", "cross_entropy"):
        split = propose((persistent, transient), x, target, loss=loss)
        summed = propose(whole, x, target, loss=loss)
        given = propose(whole, x, target, loss=loss, hidden_input=whole.hidden @ x)
        for a, b, c in zip(
            jax.tree.leaves(split), jax.tree.leaves(summed), jax.tree.leaves(given), strict=True
        ):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(np.asarray(c), np.asarray(b))


def test_network_products_are_true_float32_whatever_the_callers_default() -> None:
    """forward, propose, loss_value and predict name HIGHEST precision in every matrix
    product, also when a user compiles them under a lower default (a GPU's own default
    rounds float32 operands to TensorFloat-32)."""
    params = init_params(jax.random.key(0), n_hidden=8)
    x = jnp.ones((785,), jnp.float32)
    batch = jnp.ones((5, 785), jnp.float32)
    target = jnp.zeros((10,), jnp.float32)
    with jax.default_matmul_precision("bfloat16"):
        programs = {
            "forward": jax.jit(forward).lower(params, batch),
            "propose": jax.jit(propose).lower((params, params), x, target),
            "loss_value": jax.jit(loss_value).lower(params, x, target),
            "predict": jax.jit(predict, static_argnames="batch").lower(params, batch, batch=2),
        }
    for name, program in programs.items():
        precisions = dot_precisions(program)
        assert precisions, f"{name}: no matrix product found"
        assert set(precisions) == {"HIGHEST, HIGHEST"}, (name, precisions)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 700])
def test_predict_in_chunks_classifies_every_row_as_one_product_does(n: int) -> None:
    """predict works through the rows in chunks (the last one padded) and returns the
    class of every row, the one the whole set's output gives."""
    rng = np.random.default_rng(n)
    params = init_params(jax.random.key(1), n_hidden=32, sigma=0.3)
    x = jnp.asarray(rng.normal(0, 1, (n, 785)), jnp.float32)
    whole = np.asarray(jnp.argmax(forward(params, x), -1))
    for batch in (4, 8, 256):
        classes = np.asarray(predict(params, x, batch=batch))
        assert classes.shape == (n,)
        np.testing.assert_array_equal(classes, whole)
    if n >= 7:
        assert len(set(whole.tolist())) > 1  # not one class for every row


def test_row_chunks_pads_with_the_fill_into_equal_chunks() -> None:
    """700 rows in chunks of at most 256: three chunks of 234 rows, two rows of fill."""
    chunks = row_chunks(jnp.arange(700), 256, fill=-1)
    assert chunks.shape == (3, 234)
    assert np.asarray(chunks).ravel()[:700].tolist() == list(range(700))
    assert np.asarray(chunks).ravel()[700:].tolist() == [-1, -1]
    assert row_chunks(jnp.zeros((0, 5)), 256).shape == (1, 0, 5)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        row_chunks(jnp.zeros((3, 5)), 0)
