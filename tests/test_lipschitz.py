"""Spectral normalisation gives a weight of spectral norm 1 and a convolution of operator norm 1;
GroupSort is a 1-Lipschitz pair sort."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxspi.algo.conv import conv2d
from purejaxspi.algo.lipschitz import (
    LipschitzConv,
    LipschitzDense,
    group_sort,
    power_iteration,
    reference_sigma,
)


def normalised_matrix(module, x, steps):
    variables = module.init(jax.random.PRNGKey(0), x)
    # scale the raw weight so its norm is far from 1: the normalisation must undo it
    variables = {**variables, "params": jax.tree.map(lambda p: 7.0 * p + 0.3, variables["params"])}
    for _ in range(steps):
        _, updates = module.apply(variables, x, mutable=["spectral"])
        variables = {**variables, **updates}
    kernel = variables["params"]["kernel"]
    matrix = kernel.reshape(-1, kernel.shape[-1])
    _, _, sigma = power_iteration(matrix, variables["spectral"]["u"], 1)
    return np.asarray(matrix / sigma)


def test_dense_spectral_norm_is_one():
    m = normalised_matrix(LipschitzDense(48), jnp.ones((3, 32)), steps=100)
    assert abs(np.linalg.svd(m, compute_uv=False)[0] - 1.0) < 1e-2


def operator_matrix(linear, in_shape):
    """The dense matrix [out, in] of a linear map on arrays of `in_shape`, column by column."""
    basis = jnp.eye(int(np.prod(in_shape))).reshape(-1, *in_shape)
    return np.asarray(jax.jit(jax.vmap(lambda e: linear(e).ravel()))(basis)).T


def trained_spectral_state(module, x, steps, *inputs):
    variables = module.init(jax.random.PRNGKey(0), x, *inputs)
    variables = {**variables, "params": jax.tree.map(lambda p: 7.0 * p + 0.3, variables["params"])}
    refresh = jax.jit(lambda v: {**v, **module.apply(v, x, *inputs, mutable=["spectral"])[1]})
    for _ in range(steps):
        variables = refresh(variables)
    return variables


@pytest.mark.parametrize("in_shape, features", [((6, 6, 8), 24), ((5, 7, 16), 8), ((8, 8, 32), 32)])
def test_exact_conv_is_one_lipschitz_as_an_operator(in_shape, features):
    """The operator norm of the normalised convolution (its full matrix's top singular value, numpy) is 1:
    dividing by the reshaped kernel matrix's norm instead leaves SAME 2x2 convolutions above 1."""
    layer = LipschitzConv(features)
    x = jax.random.normal(jax.random.PRNGKey(2), (2, *in_shape))
    variables = trained_spectral_state(layer, x, 100)
    no_bias = {**variables, "params": {**variables["params"], "bias": jnp.zeros((features,))}}
    top = np.linalg.svd(operator_matrix(lambda u: layer.apply(no_bias, u[None])[0], in_shape), compute_uv=False)[0]
    assert 1.0 - 1e-2 < top <= 1.0 + 1e-3
    kernel = variables["params"]["kernel"]
    matrix_norm = np.linalg.svd(np.asarray(kernel.reshape(-1, features)), compute_uv=False)[0]
    per_matrix = operator_matrix(lambda u: conv2d(u[None], kernel / matrix_norm, 1, "SAME")[0], in_shape)
    assert np.linalg.svd(per_matrix, compute_uv=False)[0] > 1.0 + 1e-2  # the matrix bound is not the operator's
    # and on random inputs: |f(x) - f(y)| <= |x - y|
    apply = jax.jit(layer.apply)
    for seed in range(8):
        a, b = jax.random.normal(jax.random.PRNGKey(10 + seed), (2, 1, *in_shape))
        gap = np.linalg.norm(apply(variables, a) - apply(variables, b))
        assert gap <= (1.0 + 1e-3) * float(jnp.linalg.norm(a - b))


def test_grouped_action_conv_is_one_lipschitz_for_every_action():
    """The transition network's last layer: each action's slice, as an operator of the hidden map, has norm <= 1."""
    from purejaxspi.algo.world_model import GroupedActionConv

    num_actions, groups, features, in_shape = 3, 4, 6, (5, 5, 16)  # [H, W, Cin]
    layer = GroupedActionConv(num_actions, groups, features)
    h = jax.random.normal(jax.random.PRNGKey(0), (2, *in_shape))
    variables = trained_spectral_state(layer, h, 100, jnp.array([0, 1]))
    params = variables["params"]["kernel"]
    no_bias = {**variables, "params": {"kernel": {**params, "bias": jnp.zeros_like(params["bias"])}}}
    tops = []
    for a in range(num_actions):
        action = jnp.array([a])
        matrix = operator_matrix(lambda u, action=action: layer.apply(no_bias, u[None], action)[0], in_shape)
        tops.append(np.linalg.svd(matrix, compute_uv=False)[0])
    assert max(tops) <= 1.0 + 1e-3 and max(tops) > 0.5, tops


def test_forward_uses_the_normalised_weight():
    layer = LipschitzDense(16)
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 16))
    variables = layer.init(jax.random.PRNGKey(0), x)
    variables = {**variables, "params": {**variables["params"], "kernel": 5.0 * variables["params"]["kernel"]}}
    for _ in range(50):
        _, upd = layer.apply(variables, x, mutable=["spectral"])
        variables = {**variables, **upd}
    y = layer.apply(variables, x)
    # orthogonal kernel x5, normalised back to an isometry: output norm equals input norm
    np.testing.assert_allclose(jnp.linalg.norm(y), jnp.linalg.norm(x), rtol=1e-3)


def test_spectral_vectors_only_update_when_mutable():
    layer = LipschitzDense(8)
    x = jnp.ones((2, 5))
    variables = layer.init(jax.random.PRNGKey(0), x)
    kernel = jax.random.normal(jax.random.PRNGKey(3), (5, 8))
    variables = {**variables, "params": {**variables["params"], "kernel": kernel}}
    _, upd = layer.apply(variables, x, mutable=["spectral"])
    assert not np.allclose(upd["spectral"]["u"], variables["spectral"]["u"])
    # not mutable (evaluation, acting): no write is attempted (flax refuses one to an immutable collection),
    # and the output divides by the estimate from the stored vector, so it moves when that vector does
    before = layer.apply(variables, x)
    after = layer.apply({**variables, **upd}, x)
    assert not np.allclose(before, after)


def test_group_sort_sorts_pairs_and_preserves_norm():
    x = jnp.array([[3.0, -1.0, 0.5, 2.0]])
    np.testing.assert_array_equal(group_sort(x), [[-1.0, 3.0, 0.5, 2.0]])
    v = jax.random.normal(jax.random.PRNGKey(0), (5, 64))
    np.testing.assert_allclose(jnp.linalg.norm(group_sort(v), axis=-1), jnp.linalg.norm(v, axis=-1), rtol=1e-6)


def test_conv_as_patches_matches_lax_conv():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 11, 11, 3))
    k = jax.random.normal(jax.random.PRNGKey(1), (4, 4, 3, 5))
    for stride, padding in [(1, "VALID"), (2, "VALID"), (1, "SAME"), (3, "SAME")]:
        ref = jax.lax.conv_general_dilated(x, k, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(conv2d(x, k, stride, padding), ref, rtol=1e-4, atol=1e-4)


def matrix_with_spectrum(shape, singular_values, seed=0):
    u, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(shape[0], shape[0])))
    v, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(shape[1], shape[1])))
    s = np.zeros(shape)
    s[np.arange(len(singular_values)), np.arange(len(singular_values))] = singular_values
    return jnp.asarray(u @ s @ v.T, jnp.float32)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (256, 8)])
def test_reference_estimate_reads_sigma_squared(shape):
    """The paper's code's estimate: ||W^T u||^2 ~ sigma^2, so W / estimate has norm ~ 1 / sigma."""
    sigma = 2.5
    w = matrix_with_spectrum(shape, [sigma] + [0.25] * (min(shape) - 1))
    estimate = float(reference_sigma(w))  # its two power iterations
    assert estimate == pytest.approx(sigma**2, rel=0.05)
    top = np.linalg.svd(np.asarray(w) / estimate, compute_uv=False)[0]
    assert top == pytest.approx(1.0 / sigma, rel=0.05)
    # converged, on any matrix, it is exactly sigma^2
    w = jax.random.normal(jax.random.PRNGKey(shape[0]), shape)
    sigma = np.linalg.svd(np.asarray(w), compute_uv=False)[0]
    assert float(reference_sigma(w, num_iterations=200)) == pytest.approx(sigma**2, rel=1e-3)


def test_reference_layer_steepens_as_the_weight_shrinks():
    layer = LipschitzDense(16, spectral_norm="reference")
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32))
    variables = layer.init(jax.random.PRNGKey(0), x)
    assert "spectral" not in variables  # no persistent vector: a fixed start each call
    small = {"params": jax.tree.map(lambda p: 0.1 * p, variables["params"])}
    y, y_small = layer.apply(variables, x), layer.apply(small, x)
    # W / sigma(W)^2 scales as 1 / c when W scales by c: the outputs grow tenfold
    np.testing.assert_allclose(np.asarray(y_small), 10.0 * np.asarray(y), rtol=1e-4, atol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2))(variables["params"])
    assert np.isfinite(np.asarray(grads["kernel"])).all()


def test_exact_layer_is_scale_free():
    layer = LipschitzDense(16)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32))
    variables = layer.init(jax.random.PRNGKey(0), x)
    scaled = {**variables, "params": jax.tree.map(lambda p: 0.1 * p, variables["params"])}
    # the persistent u is converged at init (orthogonal kernel), so scaling W leaves W / sigma unchanged
    np.testing.assert_allclose(layer.apply(scaled, x), layer.apply(variables, x), rtol=1e-3, atol=1e-5)
