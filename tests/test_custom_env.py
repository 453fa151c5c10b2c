"""A user's own env enters through the public API: defined here, trained by `pjs.train`, its agents
loaded back and acting; the switches a CleanRL user expects change what they say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import needs_envpool

import purejaxspi as pjs

LENGTH = 6  # cells of the corridor; the goal is the last one


def corridor_reset(key):
    del key
    return jnp.int32(0), jax.nn.one_hot(0, LENGTH), jnp.ones((2,), bool)


def corridor_step(key, position, action):
    """Action 1 moves right, 0 left; reaching the end pays 1 and terminates; 20 steps truncate."""
    del key
    position = jnp.clip(position + 2 * action - 1, 0, LENGTH - 1)
    at_goal = position == LENGTH - 1
    return position, jax.nn.one_hot(position, LENGTH), jnp.ones((2,), bool), at_goal.astype(jnp.float32), at_goal, False


CORRIDOR = pjs.EnvDef("Corridor-v0", "vector", (LENGTH,), 2, corridor_reset, corridor_step)


@pytest.mark.slow
def test_a_custom_env_trains_and_its_agent_acts(tmp_path):
    config = pjs.make_config(CORRIDOR, "ppo", num_envs=8, num_steps=16, total_timesteps=8 * 16 * 40)
    assert config.env_id == "Corridor-v0" and config.network.torso_width == 64  # the vector family's preset and network
    grid = pjs.make_grid(config, num_seeds=2)
    summary = pjs.train(config, grid, tmp_path / "run")
    agents = pjs.load_agents(tmp_path / "run")
    assert agents.grid.size == 2 and agents.iteration == config.num_iterations
    # the greedy policy walks right from every cell: the shortest path to the goal
    obs = jax.nn.one_hot(jnp.arange(LENGTH - 1), LENGTH)
    for run in range(2):
        actions = agents.policy(run, greedy=True)(obs, jax.random.PRNGKey(0))
        assert np.asarray(actions).tolist() == [1] * (LENGTH - 1), (run, actions)
    report = agents.evaluate(episodes=4, greedy=True)
    assert [r["mean_length"] for r in report["runs"]] == [LENGTH - 1] * 2
    assert summary["final_return_median"] == 1.0


def test_bad_custom_envs_are_refused_in_one_line():
    wrong_obs = pjs.EnvDef("Corridor-bad", "vector", (LENGTH + 1,), 2, corridor_reset, corridor_step)
    with pytest.raises(pjs.ConfigError, match="reset's obs has shape"):
        pjs.make_config(wrong_obs, "ppo")
    with pytest.raises(pjs.ConfigError, match="built-in"):
        pjs.make_config(pjs.EnvDef("CartPole-v1", "vector", (LENGTH,), 2, corridor_reset, corridor_step))
    with pytest.raises(pjs.ConfigError, match="family"):
        pjs.make_config(pjs.EnvDef("Corridor-3d", "voxels", (LENGTH,), 2, corridor_reset, corridor_step))


@needs_envpool
def test_an_atari_program_called_without_vmap_is_refused():
    """One pool serving 2 runs cannot be stepped by one run's actions."""
    config = pjs.make_config("Breakout-v5", "ppo", num_envs=2, num_steps=2, total_timesteps=4)
    env = pjs.make_env(config.env_id, config.env.num_envs, run_seeds=(0, 1))
    program = pjs.make_train(config, env)
    grid = pjs.make_grid(config, num_seeds=2)
    # the refusal runs on the host when the unbatched call executes; JAX hands it back wrapped
    with pytest.raises(Exception, match="serves 2 runs: map the program over them with jax.vmap"):
        jax.block_until_ready(jax.jit(program.init)(grid.keys()[0], jax.tree.map(lambda x: x[0], grid.hparams())))
    # mapped over the runs, as make_trainer does, the same program runs
    jax.block_until_ready(jax.jit(jax.vmap(program.init))(grid.keys(), grid.hparams()))
