"""The transition model as it is computed (patches, the taken action's kernel contracted first) against
the paper's network as written (`world_model.transition_as_written`: every action's output by `lax.conv`
with feature groups or one dense layer, the taken action's picked by indexing). Outputs, samples (the
same noise draws), the transition loss and its gradients must agree to float rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxspi.algo import objectives
from purejaxspi.algo.world_model import TransitionModel, clipped_normal, transition_as_written

NUM_ACTIONS, NUM_COMPONENTS = 3, 5


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

    def reference(params, z, action, density):
        return tuple(transition_as_written(params, z, action, model))

    reduction = "mean" if density == "deterministic" else "sum"
    valid = jnp.ones((batch,))

    def model_loss(params):
        sample = model.apply({"params": params}, z, action, key, method=TransitionModel.sample)
        return jnp.mean(objectives.transition_loss(sample, target, valid, reduction)), sample

    def reference_loss(params):
        mean, std, logits = reference(params, z, action, density)
        eps = clipped_normal(key, mean.shape) if density != "deterministic" else 0.0
        sample = reference_sample(mean, std, logits, eps)
        return jnp.mean(objectives.transition_loss(sample, target, valid, reduction)), sample

    @jax.jit  # one program for both networks: op by op, their many small ops cost more than compiling them
    def both(params):
        outputs = model.apply({"params": params}, z, action), reference(params, z, action, density)
        losses = (jax.value_and_grad(f, has_aux=True)(params) for f in (model_loss, reference_loss))
        return outputs, tuple(losses)

    (out, (mean, std, logits)), losses = both(params)
    ((loss, sample), grads), ((expected_loss, expected_sample), expected_grads) = losses
    np.testing.assert_allclose(out.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.std, std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sample, expected_sample, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    assert float(loss) > 0
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(jnp.abs(want).max())))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
