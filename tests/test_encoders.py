"""The encoder choice: a MinAtar frame's MLP (gymnax's PPO network) against numpy, its world model on a
flat latent, and the choices each observation family refuses."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HAS_ENVPOOL, cli

import purejaxspi as pjs
from purejaxspi.algo.networks import Agent, network_for


def numpy_policy_value(params, obs):
    """Flattened frame -> ReLU(256) -> ReLU(torso) -> logits, value: the network written out in numpy."""
    p = jax.tree.map(np.asarray, params)
    x = np.asarray(obs, np.float64).reshape(obs.shape[0], -1)
    z = np.maximum(x @ p["encoder"]["Dense_0"]["kernel"] + p["encoder"]["Dense_0"]["bias"], 0)
    h = np.maximum(z @ p["torso"]["kernel"] + p["torso"]["bias"], 0)
    return h @ p["actor"]["kernel"] + p["actor"]["bias"], (h @ p["critic"]["kernel"] + p["critic"]["bias"])[:, 0], z


def test_frame_mlp_is_two_relu_layers_on_the_flattened_frame():
    obs = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (5, 10, 10, 4)).astype(jnp.float32)
    agent = Agent("minatar", 3, network_for("minatar", "mlp"))
    params = agent.init(jax.random.PRNGKey(1), obs)["params"]
    assert params["encoder"]["Dense_0"]["kernel"].shape == (400, 256)  # gymnax-blines' 256 units
    logits, value = agent.apply({"params": params}, obs)
    want_logits, want_value, want_z = numpy_policy_value(params, obs)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(value, want_value, rtol=1e-4, atol=1e-6)
    latent = agent.apply({"params": params}, obs, method=Agent.encode)
    np.testing.assert_allclose(latent, want_z, rtol=1e-4, atol=1e-6)


def test_make_config_sizes_and_checks_the_encoder():
    config = pjs.make_config("Breakout-MinAtar", "ppo", encoder="mlp")
    assert (config.network.encoder, config.network.encoder_width) == ("mlp", 256)
    assert pjs.make_config("Breakout-MinAtar", "ppo").network.encoder == "mlp"  # the MinAtar preset's
    assert (
        pjs.make_config("Breakout-MinAtar", "ppo", encoder="conv").network.encoder_width == 16
    )  # the trunk's channels
    assert pjs.make_config("ConfoundingGrid-v0", "ppo").network.encoder_width == 16  # the gridworld keeps the trunk
    assert pjs.make_config("Breakout-MinAtar", "ppo", encoder="mlp", encoder_width=130).network.encoder_width == 130
    wrong = (("CartPole-v1", "conv"), ("Breakout-MinAtar", "nature")) + (
        (("Breakout-v5", "mlp"),) if HAS_ENVPOOL else ()
    )
    for env_id, encoder in wrong:
        with pytest.raises(pjs.ConfigError, match="does not apply"):
            pjs.make_config(env_id, "ppo", encoder=encoder)
    with pytest.raises(pjs.ConfigError, match="unknown encoder"):
        pjs.make_config("Breakout-MinAtar", "ppo", encoder="resnet")
    with pytest.raises(pjs.ConfigError, match="multiple of 4"):
        pjs.make_config("Breakout-MinAtar", "ppo", encoder="conv", encoder_width=18)


@pytest.mark.parametrize("algo", ["deepspi", "deepmdp"])
def test_world_models_train_on_the_frame_mlps_flat_latent(algo):
    """Deep SPI's Lipschitz world model and DeepMDP's plain one with its gradient penalty read z [B, 256]
    and predict z' [B, 256]; their losses on the first minibatch equal numpy's smooth-L1 on those arrays."""
    from conftest import first_batch

    from purejaxspi.algo import ppo
    from purejaxspi.algo.networks import Agent

    config = pjs.make_config(
        "Breakout-MinAtar", algo, encoder="mlp", num_envs=8, num_steps=8, total_timesteps=128, density="deterministic"
    )
    learner, state, batch, hp = first_batch(config)
    variables = {"params": state.params, "spectral": state.spectral}

    @jax.jit
    def predictions_and_terms(variables, batch, hp, key):
        (_, _, predictions), _ = learner.agent.apply(
            variables, batch["obs"], batch["action"], batch["next_obs"], key,
            method=Agent.with_world_model, mutable=["spectral"],
        )  # fmt: skip
        loss = ppo.minibatch_loss(learner.update_setup, variables["params"], variables["spectral"], batch, hp, key)
        return predictions, loss[1][0]

    predictions, terms = predictions_and_terms(variables, batch, hp, state.key)
    assert predictions.latent.shape == predictions.next_latent_pred.shape == (config.batch_size, 256)

    def smooth_l1(x):
        return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)

    reward_error = np.asarray(predictions.reward_pred) - np.asarray(batch["reward"])
    per_sample = smooth_l1(np.asarray(predictions.next_latent_pred) - np.asarray(predictions.next_latent))
    reduce = np.mean if config.world_model.transition_reduction == "mean" else np.sum
    valid = np.asarray(batch["transition_valid"], float)
    expected_p = np.sum(reduce(per_sample, axis=-1) * valid) / max(valid.sum(), 1.0)
    np.testing.assert_allclose(float(terms.world_model["reward_loss"]), np.mean(smooth_l1(reward_error)), rtol=1e-4)
    np.testing.assert_allclose(float(terms.world_model["transition_loss"]), expected_p, rtol=1e-4)
    assert expected_p > 0  # a real prediction of a real next latent


@pytest.mark.slow  # trains a whole program through the CLI
def test_the_encoder_is_a_flag(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train",
        "--env",
        "Breakout-MinAtar",
        "--algo",
        "ppo",
        "--num-seeds",
        "1",
        "--num-envs",
        "8",
        "--num-steps",
        "8",
        "--total-timesteps",
        "64",
        "--encoder",
        "mlp",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["encoder"], config["encoder_width"]) == ("mlp", 256)
    bad = cli("train", "--env", "CartPole-v1", "--encoder", "conv", "--out", str(tmp_path / "bad"), "--quiet")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "bad").exists()
