"""`purejaxspi eval`: episodes played by every run's newest checkpoint at once, and videos of them."""

import json

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cli, preset_values

from purejaxspi.algo.networks import Agent
from purejaxspi.algo.train import act
from purejaxspi.lifecycle.evaluate import evaluate, load_run, to_rgb


def test_greedy_is_the_argmax_of_the_masked_policy_and_sampling_follows_it():
    agent = Agent("vector", 3)
    obs = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    variables = agent.init(jax.random.PRNGKey(1), obs)
    # a large actor head so the policy is far from uniform
    variables["params"]["actor"]["kernel"] = 30.0 * variables["params"]["actor"]["kernel"]
    logits, _ = agent.apply(variables, obs)
    mask = jnp.array([[True, True, True], [True, True, False]])
    masked = jnp.where(mask, logits, -jnp.inf)
    greedy, log_probs, _ = act(agent, variables, obs, mask, jax.random.PRNGKey(2), greedy=True)
    assert greedy.tolist() == jnp.argmax(masked, axis=-1).tolist()
    np.testing.assert_allclose(jnp.exp(log_probs), jax.nn.softmax(masked, axis=-1), atol=1e-6)
    draws = jax.vmap(lambda k: act(agent, variables, obs, mask, k)[0])(jax.random.split(jax.random.PRNGKey(3), 4000))
    for env in range(2):
        frequency = np.bincount(np.asarray(draws[:, env]), minlength=3) / 4000
        np.testing.assert_allclose(frequency, jax.nn.softmax(masked[env]), atol=0.03)  # sampled in proportion
    assert not (draws[:, 1] == 2).any()  # never an illegal action


@pytest.mark.slow
def test_eval_writes_each_run_s_mean_return(trained_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    result = cli("eval", str(out), "--episodes", "3", "--greedy")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "eval.json").read_text())
    assert report["iteration"] == 12 and report["greedy"] and report["checkpoint"].endswith("checkpoints/12")
    assert [r["seed"] for r in report["runs"]] == [0, 1, 2, 3]
    for r in report["runs"]:
        assert r["episodes_finished"] == 3
        # CartPole pays 1 per step: a mean return equal to the mean length means whole first episodes were counted
        assert r["mean_return"] == r["mean_length"] and 8 <= r["mean_return"] <= 500
    assert report["mean_return_median"] == np.median([r["mean_return"] for r in report["runs"]])


@pytest.mark.slow
def test_the_vmapped_evaluation_of_a_grid_equals_each_run_evaluated_alone(trained_run, tmp_path):
    import dataclasses
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    run = load_run(out)
    together = evaluate(run, 2, greedy=False, max_steps=500)
    alone = evaluate(
        dataclasses.replace(
            run,
            grid=type(run.grid)(run.grid.runs[2:3]),
            params=jax.tree.map(lambda x: x[2:3], run.params),
            spectral=jax.tree.map(lambda x: x[2:3], run.spectral),
        ),
        2,
        greedy=False,
        max_steps=500,
    )
    assert alone["runs"][0]["mean_return"] == together["runs"][2]["mean_return"]


def test_video_needs_image_observations(trained_run):
    result = cli("eval", str(trained_run), "--video")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "image observations" in lines[0], result.stderr
    assert not (trained_run / "eval.json").exists()


@pytest.mark.slow
def test_gridworld_videos_show_one_episode_per_run(tmp_path):
    from purejaxspi.algo.config import Config
    from purejaxspi.envs import make_env
    from purejaxspi.lifecycle.evaluate import LoadedRun, record_videos
    from purejaxspi.scale.grid import grid_from_values
    from purejaxspi.scale.mapping import make_trainer

    config = Config.of(env_id="ConfoundingGrid-v0", algo="ppo", num_envs=4, num_steps=16, total_timesteps=64)
    grid = grid_from_values(preset_values("minatar"), 0, 2)
    env = make_env(config.env_id, config.env.num_envs)
    state = jax.jit(make_trainer(config, env).init)(grid.keys(), grid.hparams())
    run = LoadedRun(tmp_path, env.spec.obs_shape, config, grid, {}, state.params, state.spectral, 0, tmp_path)
    videos = record_videos(run, num_frames=40, greedy=False)
    assert [v.name for v in videos] == ["run000-seed0.gif", "run001-seed1.gif"]
    frames = iio.imread(videos[0], index=None)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and 1 <= len(frames) <= 40
    assert frames.max() == 255 and frames.min() < 100  # the agent's white pixel on the grey grid


def test_minatar_channels_become_colours():
    frames = np.zeros((1, 10, 10, 4), np.uint8)
    frames[0, 0, 0, 1] = 255
    rgb = to_rgb(frames, "minatar", pixels=20)
    assert rgb.shape == (1, 20, 20, 3)
    assert rgb[0, 0, 0].any() and not rgb[0, -1, -1].any()
