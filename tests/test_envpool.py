"""The envpool (Atari) backend on real Breakout-v5: the custom_vmap rule, seeding, episode accounting, training."""

import csv
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import needs_envpool, preset_values, run_steps

from purejaxspi.algo.config import Config
from purejaxspi.envs import check_env_id, env_ids_by_backend, family_of, make_env
from purejaxspi.envs import envpool as atari
from purejaxspi.envs import scores as hns
from purejaxspi.errors import ConfigError
from purejaxspi.lifecycle.metrics import hns_summary_fields
from purejaxspi.scale.grid import grid_from_values
from purejaxspi.scale.mapping import make_trainer

pytestmark = needs_envpool

GAME = "Breakout-v5"


def scripted_actions(steps, shape, seed=0, num_actions=4):
    return np.random.default_rng(seed).integers(0, num_actions, size=(steps,) + shape).astype(np.int32)


def vmapped_rollout(env, actions):
    """Reset and step `env` for every run of its grid through vmap (as the trainer does), inside one scan."""
    num_runs = actions.shape[1]

    def rollout(keys, actions):
        state, obs, _ = jax.vmap(env.reset)(keys)

        def step(state, action):
            return jax.vmap(env.step)(state, action, keys)

        return obs, jax.lax.scan(step, state, actions)[1]

    return jax.jit(rollout)(jax.random.split(jax.random.PRNGKey(0), num_runs), actions)


def test_every_atari_game_envpool_lists_is_an_env_id():
    from envpool.registration import registry

    listed = sorted(k for k, v in registry.specs.items() if v[0] == "envpool.atari")
    assert list(env_ids_by_backend()["envpool"]) == listed
    assert {"Breakout-v5", "Pong-v5", "MontezumaRevenge-v5", "SpaceInvaders-v5"} <= set(listed)
    assert check_env_id("Pong-v5") == "envpool" and family_of("Pong-v5") == "atari"


def test_custom_vmap_rule_returns_what_the_pool_returns_for_the_flattened_actions():
    num_runs, num_envs, steps = 2, 3, 150
    env = make_env(GAME, num_envs, run_seeds=(5, 2))
    actions = scripted_actions(steps, (num_runs, num_envs))
    reset_obs, ts = vmapped_rollout(env, actions)

    reference = atari.make_pool(GAME, (5, 2), num_envs)
    ref_obs, _ = reference.reset()
    channels_last = lambda x: np.asarray(x).transpose(0, 2, 3, 1)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(reset_obs).reshape(-1, 84, 84, 4), channels_last(ref_obs))
    for t in range(steps):
        obs, reward, terminated, truncated, info = reference.step(actions[t].reshape(-1))
        np.testing.assert_array_equal(np.asarray(ts.obs[t]).reshape(-1, 84, 84, 4), channels_last(obs))
        np.testing.assert_array_equal(np.asarray(ts.reward[t]).reshape(-1), reward)
        np.testing.assert_array_equal(np.asarray(ts.terminated[t]).reshape(-1), terminated)
        np.testing.assert_array_equal(np.asarray(ts.truncated[t]).reshape(-1), truncated)
        np.testing.assert_array_equal(np.asarray(ts.episode_length[t]).reshape(-1), info["elapsed_step"])
    assert ts.obs.dtype == jnp.uint8 and ts.obs.shape == (steps, num_runs, num_envs, 84, 84, 4)
    assert np.asarray(ts.terminated).any()  # lives were lost, so the reset path was exercised


def test_a_runs_environments_are_the_same_alone_and_inside_a_grid():
    num_envs, steps = 2, 60
    grid_actions = scripted_actions(steps, (3, num_envs))
    _, in_grid = vmapped_rollout(make_env(GAME, num_envs, run_seeds=(0, 7, 1)), grid_actions)
    # the run with seed 7, alone, stepped without vmap (a single-run pool takes the plain call)
    alone = make_env(GAME, num_envs, run_seeds=(7,))
    state, obs, _ = jax.jit(alone.reset)(jax.random.PRNGKey(0))
    step = jax.jit(alone.step)
    for t in range(steps):
        state, ts = step(state, grid_actions[t, 1], jax.random.PRNGKey(t))
        np.testing.assert_array_equal(ts.obs, in_grid.obs[t, 1])
        np.testing.assert_array_equal(ts.reward, in_grid.reward[t, 1])
    # and different seeds meet different games
    assert not np.array_equal(in_grid.obs[:, 0], in_grid.obs[:, 1])


# SpaceInvaders scores 5 to 30 points an alien, so its game score and its clipped sum differ.
@pytest.mark.slow
@pytest.mark.parametrize("game, steps", [(GAME, 700), ("SpaceInvaders-v5", 650)])
def test_episode_accounting_matches_envpools_own_info_over_whole_games(game, steps):
    num_envs = 2
    env = make_env(game, num_envs, run_seeds=(3,))
    reference = atari.make_pool(game, (3,), num_envs)
    reference.reset()
    actions = scripted_actions(steps, (num_envs,), seed=1, num_actions=env.spec.num_actions)
    state, obs, _ = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    score, clipped_sum, finished = np.zeros(num_envs), np.zeros(num_envs), []
    previous_done = np.zeros(num_envs, bool)
    lives_lost_mid_game = 0
    for t in range(steps):
        state, ts = step(state, actions[t], jax.random.PRNGKey(t))
        _, reward, terminated, truncated, info = reference.step(actions[t])
        score += info["reward"]
        clipped_sum += np.asarray(ts.reward)
        np.testing.assert_array_equal(ts.terminated, terminated & ~truncated)  # a life lost ends learning's episode
        np.testing.assert_array_equal(ts.reward, np.sign(info["reward"]))  # learning sees clipped rewards
        np.testing.assert_array_equal(ts.next_obs, ts.obs)
        # the step after an end of life or game is envpool's reset: no real (s, a, s') transition
        np.testing.assert_array_equal(ts.transition_valid, ~previous_done)
        game_over = (info["terminated"] == 1) | truncated
        np.testing.assert_array_equal(ts.episode_done, game_over)
        lives_lost_mid_game += int(np.sum(terminated & ~game_over))
        for i in np.nonzero(game_over)[0]:
            assert float(ts.episode_return[i]) == pytest.approx(score[i])  # unclipped, all lives
            assert int(ts.episode_length[i]) == info["elapsed_step"][i]
            assert info["lives"][i] == 0 or truncated[i]
            finished.append((score[i], clipped_sum[i]))
            score[i] = clipped_sum[i] = 0.0
        previous_done = terminated | truncated
    assert len(finished) >= 2 and lives_lost_mid_game >= 4  # whole games, each of several lives
    assert any(game_score > 0 for game_score, _ in finished)
    if game == "SpaceInvaders-v5":
        assert all(game_score > clipped for game_score, clipped in finished)


def test_the_nature_cnn_reads_real_frames_into_the_7x7x64_latent_of_the_world_model():
    from purejaxspi.algo.networks import Agent
    from purejaxspi.algo.world_model import WorldModelConfig

    env = make_env(GAME, 3)
    _, frames, _ = env.reset(jax.random.PRNGKey(0))
    assert frames.dtype == jnp.uint8 and frames.shape == (3, 84, 84, 4) and int(frames.max()) > 0
    key, action = jax.random.PRNGKey(1), jnp.array([0, 1, 3])
    agent = Agent("atari", env.spec.num_actions, world_model=WorldModelConfig(density="mixture"))
    variables = jax.jit(lambda k, x, a: agent.init(k, x, a, k, method=Agent.init_all))(key, frames, action)
    logits, value, out = jax.jit(lambda v, x, a, k: agent.apply(v, x, a, x, k, method=Agent.with_world_model))(
        variables, frames, action, key
    )
    assert out.next_latent.shape == out.next_latent_pred.shape == (3, 7, 7, 64)
    assert variables["params"]["torso"]["kernel"].shape == (7 * 7 * 64, 512)
    assert logits.shape == (3, 4) and np.all(np.isfinite(value))
    # the encoder scales frames by 1/255: a white frame's first-layer input is 1, not 255
    white = jnp.full((1, 84, 84, 4), 255, jnp.uint8)
    latent = jax.jit(lambda v, x: agent.apply(v, x, method=lambda m, x: m.encoder(x)))(variables, white)
    assert float(jnp.max(latent)) < 50.0


def test_human_normalised_scores_come_from_the_shipped_table():
    assert len(hns.reference_scores()) == 57
    assert hns.human_normalised("Breakout-v5", 1.7) == pytest.approx(0.0)
    assert hns.human_normalised("Breakout-v5", 30.5) == pytest.approx(1.0)
    per_run, extra = hns_summary_fields("Pong-v5", np.array([-20.7, 14.6, np.nan, -3.05]))
    assert per_run["final_hns"][:2] == pytest.approx([0.0, 1.0]) and per_run["final_hns"][2] is None
    assert extra["final_hns_median"] == pytest.approx(0.5)
    assert hns_summary_fields("Adventure-v5", np.array([1.0])) == ({}, {})  # not one of the 57


def grid_values(**overrides):
    return preset_values("atari", **overrides)


def run_grid(config, values, first_seed, num_seeds, iterations):
    grid = grid_from_values(values, first_seed, num_seeds)
    env = make_env(config.env_id, config.env.num_envs, tuple(r.seed for r in grid.runs))
    trainer = make_trainer(config, env)
    state = jax.jit(trainer.init)(grid.keys(), grid.hparams())
    _, metrics = run_steps(trainer, state, grid.hparams(), iterations)
    return grid, {k: np.asarray(v) for k, v in metrics.items()}


@pytest.mark.slow
def test_an_atari_run_alone_equals_the_same_run_inside_a_grid():
    config = Config.of(
        env_id=GAME, algo="deepspi", num_envs=4, num_steps=8, num_minibatches=2, update_epochs=2, total_timesteps=32 * 3
    )
    grid, together = run_grid(config, grid_values(reward_coef=[0.01, 0.1]), 0, 2, 3)
    target = next(r for r in grid.runs if r.seed == 1 and r.hparams.reward_coef == 0.1)
    _, alone = run_grid(config, grid_values(reward_coef=[0.1]), 1, 1, 3)
    for name in ("total_loss", "policy_loss", "value_loss", "reward_loss", "transition_loss", "entropy", "ratio_max"):
        np.testing.assert_allclose(together[name][target.index], alone[name][0], rtol=1e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(together["total_loss"][0], together["total_loss"][target.index])


@pytest.mark.slow
def test_train_cli_on_breakout_writes_metrics_for_both_runs_and_hns(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "purejaxspi.cli",
            "train",
            "--env",
            GAME,
            "--algo",
            "deepspi",
            "--num-seeds",
            "2",
            "--num-envs",
            "4",
            "--num-steps",
            "8",
            "--num-minibatches",
            "2",
            "--update-epochs",
            "1",
            "--total-timesteps",
            "64",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert sorted((r["run"], r["iteration"]) for r in rows) == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    assert all(r["transition_loss"] and np.isfinite(float(r["transition_loss"])) for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert "final_hns_median" in summary and "final_hns_iqm" in summary
    assert all("final_hns" in run for run in summary["runs"])
    assert json.loads((out / "config.json").read_text())["config"]["stochastic"] is False


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "CartPole-v1", "--stochastic"], "--stochastic applies to Atari"),
        (["--env", GAME, "--seed", "300000000"], "must fit in int32"),
    ],
)
def test_bad_atari_input_exits_2_with_one_line(args, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "purejaxspi.cli", "train", *args, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_stochastic_pool_uses_sticky_actions_and_longer_noop_starts():
    config = atari.make_pool(GAME, (0,), 1, stochastic=True).config
    assert config["repeat_action_probability"] == pytest.approx(0.3) and config["noop_max"] == 60
    config = atari.make_pool(GAME, (0,), 1).config
    assert config["repeat_action_probability"] == 0.0 and config["noop_max"] == 30
    assert config["episodic_life"] and config["reward_clip"] and config["stack_num"] == 4
    assert config["frame_skip"] == 4 and config["img_height"] == config["img_width"] == 84 and config["gray_scale"]


def play(interface: str, seeds=(3, 8), num_envs=3, steps=60):
    """The games a grid's pool plays under fixed random actions, vmapped over its runs, through `interface`."""
    env = make_env(GAME, num_envs, seeds, interface=interface)
    actions = np.random.default_rng(0).integers(0, env.spec.num_actions, size=(steps, len(seeds), num_envs))
    keys = jax.random.split(jax.random.PRNGKey(0), len(seeds))

    @jax.jit
    def run(keys, actions):
        state, obs, _ = jax.vmap(env.reset)(keys)

        def one(state, action):
            state, ts = jax.vmap(env.step)(state, action, keys)
            return state, (ts.obs, ts.reward, ts.terminated, ts.truncated, ts.episode_done, ts.episode_return)

        return obs, jax.lax.scan(one, state, jnp.asarray(actions, jnp.int32))[1]

    first, trajectory = run(keys, actions)
    return [np.asarray(first)] + [np.asarray(x) for x in trajectory]


def test_the_callback_interface_plays_the_same_games_as_the_xla_step():
    """The pool's Python send/recv through an io_callback, against envpool's XLA step: the same frames,
    rewards and episode ends for the same actions (2 runs x 3 envs, 60 steps, lives lost on the way)."""
    xla, callback = play("xla"), play("callback")
    assert int(xla[3].sum()) > 0  # some life or game ended, so the resets are compared too
    for a, b in zip(xla, callback):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="unknown envpool interface"):
        make_env(GAME, 2, interface="grpc")


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "deepspi"])
def test_training_through_the_callback_interface_equals_the_xla_step(algo):
    """Breakout-v5, 2 runs, 3 iterations: every metric the same through either interface."""
    metrics = {}
    for interface in ("xla", "callback"):
        config = Config.of(
            env_id=GAME, algo=algo, num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1,
            total_timesteps=32 * 3, envpool_interface=interface,
        )  # fmt: skip
        grid = grid_from_values(grid_values(), 0, 2)
        env = make_env(GAME, 4, tuple(r.seed for r in grid.runs), **config.env.options())
        trainer = make_trainer(config, env)
        state = jax.jit(trainer.init)(grid.keys(), grid.hparams())
        _, out = run_steps(trainer, state, grid.hparams(), 3)
        metrics[interface] = {k: np.asarray(v) for k, v in out.items()}
    for name, values in metrics["xla"].items():
        np.testing.assert_array_equal(values, metrics["callback"][name], err_msg=f"{algo} {name}")
