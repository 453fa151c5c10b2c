"""Spectral normalisation gives a weight of spectral norm 1; GroupSort is a 1-Lipschitz pair sort."""

import jax
import jax.numpy as jnp
import numpy as np

from purejaxspi.lipschitz import LipschitzConv, LipschitzDense, group_sort, power_iteration
from purejaxspi.patches import conv2d


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


def test_conv_spectral_norm_is_one():
    m = normalised_matrix(LipschitzConv(24), jnp.ones((2, 6, 6, 8)), steps=100)
    assert abs(np.linalg.svd(m, compute_uv=False)[0] - 1.0) < 1e-2


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
