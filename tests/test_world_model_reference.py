"""The transition model as it is computed (patches, the taken action's kernel contracted first) against
the paper's network written with lax: every action's output by `lax.conv` with feature groups or one
dense layer, the taken action's picked by indexing. Outputs, samples (the same noise draws), the
transition loss and its gradients must agree to float rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxspi.algo import objectives
from purejaxspi.algo.world_model import CHANNELS_PER_GROUP, TransitionModel, clipped_normal, gaussian_params

NUM_ACTIONS, NUM_COMPONENTS = 3, 5


def take(x, action):
    return x[jnp.arange(x.shape[0]), action]


def reference_conv(params, z, action, density):
    """The conv transition network, plainly: [B, H, W, C] -> (mean, std [B, K, H, W, C], logits [B, K])."""
    batch, height, width, channels = z.shape
    groups, k = channels // CHANNELS_PER_GROUP, NUM_COMPONENTS if density == "mixture" else 1
    per_component = 1 if density == "deterministic" else 2
    conv = lambda x, w, g=1: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g
    )
    first = params["LipschitzConv_0"]
    h = jax.nn.relu(conv(z, first["kernel"]) + first["bias"])
    kernel, bias = params["GroupedActionConv_0"]["kernel"]["kernel"], params["GroupedActionConv_0"]["kernel"]["bias"]
    cin = h.shape[-1] // groups
    hwio = jnp.concatenate([kernel[g].reshape(2, 2, cin, -1) for g in range(groups)], axis=-1)
    full = conv(h, hwio, groups).reshape(batch, height, width, groups, -1) + bias  # every action, [B, H, W, G, A F]
    chosen = take(jnp.moveaxis(full.reshape(batch, height, width, groups, NUM_ACTIONS, -1), 4, 1), action)
    # features of a group and action: (mean | scale, component, channel of the group)
    chosen = chosen.reshape(batch, height, width, groups, per_component, k, channels // groups)
    parts = [
        jnp.moveaxis(chosen[:, :, :, :, i], 4, 1).reshape(batch, k, height, width, channels)
        for i in range(per_component)
    ]
    mean, std = gaussian_params(*parts) if per_component == 2 else (parts[0], jnp.zeros_like(parts[0]))
    logits = jnp.zeros((batch, 1))
    if density == "mixture":
        dense = params["LipschitzDense_0"]
        logits = take((h.reshape(batch, -1) @ dense["kernel"] + dense["bias"]).reshape(batch, NUM_ACTIONS, k), action)
    return mean, std, logits


def reference_flat(params, z, action, density):
    batch, dims = z.shape
    k, per_component = (NUM_COMPONENTS if density == "mixture" else 1), (1 if density == "deterministic" else 2)
    h = z
    for i in range(2):
        h = jax.nn.relu(h @ params[f"LipschitzDense_{i}"]["kernel"] + params[f"LipschitzDense_{i}"]["bias"])
    out = h @ params["LipschitzDense_2"]["kernel"] + params["LipschitzDense_2"]["bias"]
    chosen = take(out.reshape(batch, NUM_ACTIONS, k, per_component, dims), action)
    parts = [chosen[:, :, i] for i in range(per_component)]
    mean, std = gaussian_params(*parts) if per_component == 2 else (parts[0], jnp.zeros_like(parts[0]))
    logits = jnp.zeros((batch, 1))
    if density == "mixture":
        dense = params["LipschitzDense_3"]
        logits = take((h @ dense["kernel"] + dense["bias"]).reshape(batch, NUM_ACTIONS, k), action)
    return mean, std, logits


def reference_sample(mean, std, logits, eps):
    weights = jax.nn.softmax(logits, axis=-1).reshape(logits.shape + (1,) * (mean.ndim - 2))
    return jnp.sum(weights * (mean + std * eps), axis=1)


@pytest.mark.parametrize("density", ["deterministic", "normal", "mixture"])
@pytest.mark.parametrize("latent_shape", [(6, 5, 16), (8,)], ids=["conv", "flat"])
def test_transition_model_equals_the_plain_network(latent_shape, density):
    batch = 7
    key = jax.random.PRNGKey(0)
    z = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(1), (batch, *latent_shape)))
    target = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(2), (batch, *latent_shape)))
    action = jnp.array([0, 1, 2, 2, 1, 0, 1])
    model = TransitionModel(NUM_ACTIONS, density, NUM_COMPONENTS, hidden=16, lipschitz=False)
    params = model.init(jax.random.PRNGKey(3), z, action)["params"]
    params = jax.tree.map(
        lambda p: p + 0.2 * jax.random.normal(jax.random.PRNGKey(4), p.shape), params
    )  # non-zero biases
    reference = reference_conv if len(latent_shape) == 3 else reference_flat
    reduction = "mean" if density == "deterministic" else "sum"
    valid = jnp.ones((batch,))

    mean, std, logits = reference(params, z, action, density)
    out = jax.jit(model.apply)({"params": params}, z, action)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.std, std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, logits, rtol=1e-5, atol=1e-5)

    def model_loss(params):
        sample = model.apply({"params": params}, z, action, key, method=TransitionModel.sample)
        return jnp.mean(objectives.transition_loss(sample, target, valid, reduction)), sample

    def reference_loss(params):
        mean, std, logits = reference(params, z, action, density)
        eps = clipped_normal(key, mean.shape) if density != "deterministic" else 0.0
        sample = reference_sample(mean, std, logits, eps)
        return jnp.mean(objectives.transition_loss(sample, target, valid, reduction)), sample

    (loss, sample), grads = jax.jit(jax.value_and_grad(model_loss, has_aux=True))(params)
    (expected_loss, expected_sample), expected_grads = jax.jit(jax.value_and_grad(reference_loss, has_aux=True))(params)
    np.testing.assert_allclose(sample, expected_sample, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    assert float(loss) > 0
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(jnp.abs(want).max())))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
