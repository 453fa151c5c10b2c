"""The README's Python API example runs as written; config and grid behave as documented."""

import re
from pathlib import Path

import pytest
from conftest import HAS_ENVPOOL

import purejaxspi as pjs
from purejaxspi.algo.config import PRESETS

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_the_readme_api_example_runs_as_written(tmp_path, monkeypatch, capsys):
    example = re.search(r"<!-- api-example -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    # 6 runs x (4096 steps / (8 envs x 128 steps) = 4 iterations)
    assert printed[-1] == "(6, 4)"
    assert printed[-2] == "(2,) 4"  # run 3's greedy actions for 2 envs; its 4 evaluation episodes all ended
    assert printed[-3].endswith("[0.001, 0.001, 0.001, 0.0025, 0.0025, 0.0025]")
    assert (tmp_path / "runs" / "api-example" / "summary.json").is_file()


def test_make_config_applies_the_env_s_preset_then_the_overrides():
    config = pjs.make_config("ConfoundingGrid-v0", "ppo", total_timesteps=8192)
    grid_preset = PRESETS["gridworld", "ppo"].config
    assert (config.env.num_envs, config.ppo.num_steps) == (grid_preset.env.num_envs, grid_preset.ppo.num_steps)
    assert config.world_model is None  # PPO has none
    assert config.run.total_timesteps == 8192 and config.algo == "ppo"
    minatar = pjs.make_config("Breakout-MinAtar")
    # the defaults are the default env's preset but for what a record written before those settings
    # existed ran with: the family's encoder (MinAtar's conv trunk), the lr annealed, the value unclipped
    legacy = dict(encoder="auto", encoder_width=16, anneal_lr=True, clip_value_loss=False)
    assert pjs.Config.of(**{**minatar.flat(), **legacy}) == pjs.Config()
    network, ppo = minatar.network, minatar.ppo
    assert (network.encoder, network.encoder_width, ppo.anneal_lr, ppo.clip_value_loss) == ("mlp", 256, False, True)
    if HAS_ENVPOOL:
        assert pjs.make_config("Breakout-v5").env.num_envs == PRESETS["atari", "deepspi"].config.env.num_envs
    # a record's settings by name give the Config back
    assert pjs.Config.of(**minatar.flat()) == minatar


@pytest.mark.parametrize(
    "env_id, algo, overrides, message",
    [
        ("CartPole-v1", "deepspi", {"learning_rate": 1e-3}, "hyperparameters go to"),
        ("CartPole-v1", "deepspi", {"num_env": 4}, "unknown setting 'num_env'"),
        ("CartPole-v1", "sac", {}, "unknown algo"),
        ("CartPole-v1", "deepspi", {"spectral_norm": "power"}, "unknown spectral_norm"),
        ("CartPole-v1", "deepspi", {"stochastic": True}, "Atari"),
        ("CartPole-v1", "deepspi", {"num_envs": 3, "num_steps": 5}, "not divisible"),
        ("CartPole-v1", "ppo", {"density": "beta"}, "unknown density"),  # checked, though PPO has no world model
        ("Cartpole-v1", "deepspi", {}, "did you mean CartPole-v1"),
    ],
)
def test_make_config_refuses_bad_input_with_a_typed_error(env_id, algo, overrides, message):
    with pytest.raises(pjs.ConfigError, match=message):
        pjs.make_config(env_id, algo, **overrides)


def test_make_grid_takes_any_subset_of_hyperparameters():
    config = pjs.make_config("CartPole-v1")
    grid = pjs.make_grid(config, num_seeds=2, first_seed=5, clip_coef=[0.1, 0.3], reward_coef=0.1)
    assert grid.size == 4 and grid.varied() == ("clip_coef",)
    assert [r.seed for r in grid.runs] == [5, 6, 5, 6]
    preset = PRESETS["vector", "deepspi"].hparams
    for run in grid.runs:
        assert run.hparams.learning_rate == preset.learning_rate and run.hparams.reward_coef == 0.1
    assert grid.keys().shape[0] == 4 and grid.hparams().clip_coef.tolist() == pytest.approx([0.1, 0.1, 0.3, 0.3])
    with pytest.raises(pjs.ConfigError, match="unknown hyperparameter 'lr'"):
        pjs.make_grid(config, lr=1e-3)
    with pytest.raises(pjs.ConfigError, match="gamma must lie in"):
        pjs.make_grid(config, gamma=[0.9, 1.5])
    with pytest.raises(pjs.ConfigError, match="num_seeds must be positive"):
        pjs.make_grid(config, num_seeds=0)


def test_train_raises_instead_of_printing(tmp_path, capsys):
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=8, total_timesteps=64)
    grid = pjs.make_grid(config)
    (tmp_path / "keep.txt").write_text("someone else's file")
    with pytest.raises(pjs.RunDirError, match="already holds files"):
        pjs.train(config, grid, tmp_path)
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "keep.txt").read_text() == "someone else's file"


def test_an_out_dir_that_cannot_be_created_is_a_run_dir_error(tmp_path):
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=8, total_timesteps=64)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(pjs.RunDirError, match="cannot create the run directory"):
        pjs.train(config, pjs.make_grid(config), tmp_path / "a-file" / "run")
