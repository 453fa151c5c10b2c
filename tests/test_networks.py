"""The world model's subtle pieces against plain references: action slicing, grouped convolutions,
one-hot selection, and the noise generator's distribution."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from purejaxspi.algo.world_model import (
    GroupedActionConv,
    TransitionModel,
    WorldModelConfig,
    clipped_normal,
    select_action,
)


def grouped_conv_reference(h, kernel, bias, groups):
    """All actions' outputs of the grouped 2x2 SAME conv by lax.conv with feature_group_count."""
    g, p, out = kernel.shape
    cin = h.shape[-1] // groups
    hwio = jnp.concatenate([kernel[i].reshape(2, 2, cin, out) for i in range(g)], axis=-1)
    y = jax.lax.conv_general_dilated(
        h, hwio, (1, 1), ((0, 1), (0, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups
    )
    return y.reshape(*y.shape[:3], g, out) + bias


@pytest.mark.parametrize("spectral", [False, True])
def test_action_sliced_grouped_conv_equals_slicing_the_full_output(spectral):
    batch, groups, actions, features = 6, 4, 3, 10
    h = jax.random.normal(jax.random.PRNGKey(0), (batch, 5, 7, 8))
    action = jnp.array([0, 1, 2, 2, 1, 0])
    layer = GroupedActionConv(actions, groups, features, spectral=spectral)
    variables = layer.init(jax.random.PRNGKey(1), h, action)
    variables = {
        **variables,
        "params": jax.tree.map(
            lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(2), p.shape), variables["params"]
        ),
    }
    apply = lambda v: layer.apply(v, h, action)  # noqa: E731
    out = apply(variables)
    kernel, bias = variables["params"]["kernel"]["kernel"], variables["params"]["kernel"]["bias"]
    if spectral:  # each group's kernel divided by the norm of its whole convolution as an operator on [5, 7, 2]
        cin = h.shape[-1] // groups
        basis = jnp.eye(5 * 7 * cin).reshape(-1, 1, 5, 7, cin)
        sigmas = np.array(
            [
                np.linalg.svd(
                    np.asarray(jax.vmap(lambda e, k=k: grouped_conv_reference(e, k[None], 0.0, 1).ravel())(basis)),
                    compute_uv=False,
                )[0]
                for k in kernel
            ]
        )
        u = variables["spectral"]["kernel"]["u"]
        refresh = jax.jit(
            lambda u: layer.apply({**variables, "spectral": {"kernel": {"u": u}}}, h, action, mutable=["spectral"])[1][
                "spectral"
            ]["kernel"]["u"]
        )
        for _ in range(200):  # converge the persistent vectors, as training does
            u = refresh(u)
        out = apply({**variables, "spectral": {"kernel": {"u": u}}})
        kernel = kernel / sigmas[:, None, None]
    full = grouped_conv_reference(h, kernel, bias, groups).reshape(batch, 5, 7, groups, actions, features)
    expected = jnp.moveaxis(full, 4, 1)[jnp.arange(batch), action]  # [B, H, W, G, F]
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=1e-3)  # power iteration: converged to ~1e-3


def test_transition_model_output_layout():
    """A [H, W, C] latent gives per-component means [B, K, H, W, C], and the paper's positive stds."""
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 6, 16))
    model = TransitionModel(num_actions=4, density="mixture", num_components=5)
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), z, jnp.zeros(3, jnp.int32))
    out = jax.jit(model.apply)(variables, z, jnp.array([0, 1, 3]))
    assert out.mean.shape == out.std.shape == (3, 5, 4, 6, 16) and out.logits.shape == (3, 5)
    assert float(out.std.min()) > 0
    # the hidden layer has twice the latent's channels; the last layer one kernel per 4 latent channels
    assert variables["params"]["LipschitzConv_0"]["kernel"].shape == (2, 2, 16, 32)
    assert variables["params"]["GroupedActionConv_0"]["kernel"]["kernel"].shape == (4, 4 * 8, 4 * 5 * 2 * 4)


def test_select_action_is_indexing():
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 4, 3, 2))
    action = jnp.array([3, 0, 1, 2, 2, 0, 3])
    np.testing.assert_array_equal(select_action(x, action, 4), x[jnp.arange(7), action])


def test_clipped_normal_is_a_normal_clipped_to_one_and_keyed():
    draws = np.asarray(clipped_normal(jax.random.PRNGKey(0), (200_000,)))
    reference = np.clip(np.random.default_rng(0).standard_normal(200_000), -1.0, 1.0)
    assert draws.min() == -1.0 and draws.max() == 1.0
    assert stats.ks_2samp(draws, reference).pvalue > 1e-3
    tails = stats.norm.cdf(-1.0)  # each end holds P(N < -1) of the mass
    assert abs(np.mean(draws == -1.0) - tails) < 0.005 and abs(np.mean(draws == 1.0) - tails) < 0.005
    inner = draws[np.abs(draws) < 1.0]
    assert stats.kstest(inner, stats.truncnorm(-1.0, 1.0).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(draws, np.asarray(clipped_normal(jax.random.PRNGKey(0), (200_000,))))
    other = np.asarray(clipped_normal(jax.random.PRNGKey(1), (200_000,)))
    assert abs(np.corrcoef(draws, other)[0, 1]) < 0.01


def test_deepmdp_gradient_penalty_reads_each_samples_input_gradient():
    """The plain world model's penalty: the batch sum's gradient w.r.t. z is every sample's own input
    gradient (the paper's code takes them one sample at a time), and the reward network's is
    W1 (relu'(z W1 + b1) * W2[:, a]) in numpy."""
    from purejaxspi.algo import objectives
    from purejaxspi.algo.networks import Agent, network_for

    agent = Agent("minatar", 3, network_for("minatar", "conv"), WorldModelConfig("deterministic", lipschitz=False))
    obs = jax.random.uniform(jax.random.PRNGKey(0), (5, 8, 8, 4))
    action = jnp.array([0, 1, 2, 1, 0])
    variables = jax.jit(lambda k1, k2: agent.init(k1, obs, action, k2, method=Agent.init_all))(
        jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    )
    z = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(3), (5, 6, 6, 16)))
    sums = lambda z, a: agent.apply(variables, z, a, method=Agent.world_model_sums)  # noqa: E731

    def input_gradients(part, z, action):
        """Network `part`'s input gradients: of the batch sum, and of every sample on its own."""
        alone = jax.vmap(lambda zi, ai: jax.grad(lambda zi: sums(zi[None], ai[None])[part])(zi))(z, action)
        return jax.grad(lambda z: sums(z, action)[part])(z), alone

    @jax.jit
    def batched_and_alone(z, action):
        return [input_gradients(part, z, action) for part in (0, 1)]

    for batched, alone in batched_and_alone(z, action):
        np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)
    reward = variables["params"]["reward_model"]
    w1, b1 = np.asarray(reward["Dense_0"]["kernel"]), np.asarray(reward["Dense_0"]["bias"])
    w2 = np.asarray(reward["Dense_1"]["kernel"])
    flat = np.asarray(z).reshape(5, -1)
    expected = np.stack([w1 @ ((flat[i] @ w1 + b1 > 0) * w2[:, a]) for i, a in enumerate(np.asarray(action))])
    grads = batched_and_alone(z, action)[0][0]
    np.testing.assert_allclose(np.asarray(grads).reshape(5, -1), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(objectives.squared_slope(grads), np.mean(np.sum(expected**2, -1)), rtol=1e-4)


@pytest.mark.parametrize(
    "family, obs_shape", [("minatar", (10, 10, 4)), pytest.param("atari", (84, 84, 4), marks=pytest.mark.slow)]
)
def test_lax_and_patches_convolutions_give_the_same_agent(family, obs_shape):
    """`conv` lax (cuDNN on a GPU) and patches (CPU) are one network: the same outputs, losses' inputs and
    gradients to float rounding, from the same parameters."""
    from purejaxspi.algo.networks import Agent, network_for

    obs = jax.random.uniform(jax.random.PRNGKey(0), (3, *obs_shape)) * (255.0 if family == "atari" else 1.0)
    action, key = jnp.array([0, 1, 2]), jax.random.PRNGKey(1)
    world_model = WorldModelConfig(density="mixture")
    agents = {impl: Agent(family, 4, network_for(family, conv=impl), world_model) for impl in ("lax", "patches")}
    variables = jax.jit(lambda k: agents["patches"].init(k, obs, action, k, method=Agent.init_all))(key)

    def outputs(impl, params):
        return agents[impl].apply({**variables, "params": params}, obs, action, obs, key, method=Agent.with_world_model)

    def scalar(impl, params):
        logits, value, pred = outputs(impl, params)
        return jnp.sum(logits) + jnp.sum(value) + jnp.sum(pred.reward_pred) + jnp.sum(pred.next_latent_pred**2)

    # jitted, one program an impl: run op by op, the mixture head's many small ops cost more than compiling them
    def outputs_and_grads(impl, params):
        return outputs(impl, params), jax.grad(functools.partial(scalar, impl))(params)

    (outs, grads), (patch_outs, patch_grads) = (
        jax.jit(outputs_and_grads, static_argnums=0)(impl, variables["params"]) for impl in ("lax", "patches")
    )
    for a, b in zip(jax.tree.leaves(outs), jax.tree.leaves(patch_outs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(patch_grads)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)
