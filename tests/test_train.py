"""The training program: a run is the same alone as inside any grid; learning on CartPole."""

import jax
import numpy as np
import pytest
from conftest import preset_values, run_steps

from purejaxspi.algo.config import Config
from purejaxspi.envs import make_env
from purejaxspi.scale.grid import grid_from_values
from purejaxspi.scale.mapping import make_trainer


def grid_values(**overrides):
    return preset_values("vector", **overrides)


def run_grid(config, values, first_seed, num_seeds, iterations, mapping="auto"):
    trainer = make_trainer(config, make_env(config.env_id, config.env.num_envs), mapping)
    grid = grid_from_values(values, first_seed, num_seeds)
    state = jax.jit(trainer.init)(grid.keys(), grid.hparams())
    _, metrics = run_steps(trainer, state, grid.hparams(), iterations)
    return grid, {k: np.asarray(v) for k, v in metrics.items()}


@pytest.mark.parametrize(
    "env_id, family, mapping, algo",
    [
        ("CartPole-v1", "vector", "vmap", "deepspi"),
        ("Breakout-MinAtar", "minatar", "map", "deepspi"),
        ("CartPole-v1", "vector", "vmap", "deepmdp"),
    ],
)
@pytest.mark.slow
def test_a_run_alone_equals_the_same_run_inside_a_grid(env_id, family, mapping, algo):
    """lax.map runs each run's own program: equal to float rounding (the exactly normalised convolutions'
    power iteration compiles to other roundings inside the map's body than alone).
    vmap batches the runs' matmuls, which may sum in another order: equal to float rounding. DeepMDP runs its plain
    world model with the gradient penalty (a gradient inside the loss)."""
    world_model = dict(density="mixture") if algo == "deepspi" else dict(density="deterministic", lipschitz=False)
    config = Config.of(
        env_id=env_id,
        algo=algo,
        num_envs=4,
        num_steps=16,
        num_minibatches=2,
        update_epochs=2,
        total_timesteps=64 * 20,
        **world_model,
    )
    grid, together = run_grid(
        config, grid_values(learning_rate=[2.5e-3, 1e-3], reward_coef=[0.01, 0.1]), 0, 2, 5, mapping
    )
    target = next(
        r for r in grid.runs if r.seed == 1 and r.hparams.learning_rate == 1e-3 and r.hparams.reward_coef == 0.1
    )
    _, alone = run_grid(config, grid_values(learning_rate=[1e-3], reward_coef=[0.1]), 1, 1, 5, mapping)
    names = ("total_loss", "policy_loss", "value_loss", "reward_loss", "transition_loss", "entropy", "ratio_max")
    if config.world_model.has_gradient_penalty:
        names += ("gradient_penalty",)
        assert (together["gradient_penalty"] > 0).all()
    for name in names:
        if mapping == "map":  # XLA compiles the conv power iteration in the map's body as alone: float rounding
            np.testing.assert_allclose(together[name][target.index], alone[name][0], rtol=1e-5, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_allclose(together[name][target.index], alone[name][0], rtol=1e-4, atol=1e-6, err_msg=name)
    # and the grid's runs genuinely differ from one another
    assert not np.allclose(together["total_loss"][0], together["total_loss"][target.index])
    # the SPI condition of each update: its largest importance ratio below 1 / gamma
    gamma = np.asarray(grid.hparams().gamma)[:, None]
    np.testing.assert_array_equal(together["spi_condition"], together["ratio_max"] < 1.0 / gamma)


@pytest.mark.slow
def test_ppo_ignores_the_world_model_and_deepspi_with_zero_alphas_learns_the_same_policy():
    config = Config.of(
        env_id="CartPole-v1",
        algo="ppo",
        num_envs=4,
        num_steps=16,
        num_minibatches=2,
        update_epochs=2,
        total_timesteps=64 * 10,
    )
    _, ppo = run_grid(config, grid_values(), 0, 1, 3)
    import dataclasses

    _, spi = run_grid(
        dataclasses.replace(config, algo="deepspi"), grid_values(reward_coef=[0.0], transition_coef=[0.0]), 0, 1, 3
    )
    # same init key, same rollouts, same policy gradient: the policy metrics agree
    for name in ("policy_loss", "entropy", "approx_kl", "episode_return_sum"):
        np.testing.assert_allclose(ppo[name], spi[name], rtol=1e-4, atol=1e-6, err_msg=name)
