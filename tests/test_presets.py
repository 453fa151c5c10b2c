"""Each algorithm's Atari preset is its script's defaults in the authors' repository
(`florentdelgrange/deepspi`): `deep_spi.py`, `deep_mdp_ppo.py` and CleanRL's
`ppo_atari_envpool_xla_jax_scan.py`, read from their `Args` dataclasses; the one-switch ablation runs
an algorithm under another's settings."""

import pytest
from conftest import needs_envpool

import purejaxspi as pjs
from purejaxspi.algo.config import HPARAM_NAMES, PRESETS, preset_table
from purejaxspi.algo.world_model import WorldModelConfig

# Written from the three scripts' Args (total_timesteps, learning_rate with anneal_lr, num_envs,
# num_steps, num_minibatches, update_epochs, clip_coef, ent_coef, vf_coef, max_grad_norm, gamma,
# gae_lambda, reward_loss_coef, transition_loss_coef, lambda_gp, transition_density, lipschitz_nets).
# deep_spi.py zeroes lambda_gp when lipschitz_nets is on, as our Lipschitz world model takes none.
SCRIPTS = {
    "deepspi": dict(
        total_timesteps=10_000_000,
        learning_rate=2.5e-4,
        num_envs=128,
        num_steps=8,
        num_minibatches=4,
        update_epochs=4,
        clip_coef=0.1,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
        reward_coef=0.01,
        transition_coef=0.0005,
        gradient_penalty=0.01,
        density="mixture",
        lipschitz=True,
    ),
    "deepmdp": dict(
        total_timesteps=10_000_000,
        learning_rate=2.5e-4,
        num_envs=64,
        num_steps=16,
        num_minibatches=4,
        update_epochs=4,
        clip_coef=0.1,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
        reward_coef=1.0,
        transition_coef=1.0,
        gradient_penalty=0.01,
        density="deterministic",
        lipschitz=False,
    ),
    "ppo": dict(
        total_timesteps=10_000_000,
        learning_rate=2.5e-4,
        num_envs=8,
        num_steps=128,
        num_minibatches=4,
        update_epochs=4,
        clip_coef=0.1,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
    ),
}


@needs_envpool
@pytest.mark.parametrize("algo", list(SCRIPTS))
def test_atari_presets_are_the_authors_scripts(algo):
    config = pjs.make_config("Breakout-v5", algo)
    values = {n: v[0] for n, v in pjs.hparam_values(config).items()}
    got = {**config.flat(), **values}
    for name, expected in SCRIPTS[algo].items():
        assert got[name] == pytest.approx(expected), name
    assert config.algo == config.settings == algo
    world_model = config.world_model
    assert (world_model is None) == (algo == "ppo")  # CleanRL's PPO has no world model
    if algo == "deepspi":
        assert not world_model.has_gradient_penalty  # computed for the plain world model only
        assert world_model.spectral_norm == "reference"  # the estimate the paper's numbers were obtained with
        assert world_model.transition_reduction == "sum"  # the mixture head's
    if algo == "deepmdp":
        assert world_model.has_gradient_penalty and world_model.transition_reduction == "mean"  # the deterministic head


@needs_envpool
def test_the_same_settings_ablation_is_one_switch():
    """All three under Deep SPI's settings: only where the world model's loss enters differs."""
    configs = {a: pjs.make_config("Breakout-v5", a, settings="deepspi") for a in SCRIPTS}
    assert {(c.env.num_envs, c.ppo.num_steps) for c in configs.values()} == {(128, 8)}
    world_models = {configs[a].world_model for a in ("deepspi", "deepmdp")}
    assert world_models == {WorldModelConfig(density="mixture", lipschitz=True, spectral_norm="reference")}
    assert configs["ppo"].world_model is None
    values = [pjs.hparam_values(c) for c in configs.values()]
    assert all(v == values[0] for v in values)
    assert configs["deepmdp"].settings == "deepspi" and not configs["deepmdp"].world_model.has_gradient_penalty
    with pytest.raises(pjs.ConfigError, match="unknown settings"):
        pjs.make_config("Breakout-v5", "ppo", settings="cleanrl")


def test_every_family_keeps_the_scripts_relation():
    """Per family the three algorithms share the optimiser and the batch, and keep the scripts' shapes and
    world models; the gridworld, which only `deep_spi.py` has, runs all three with its settings."""
    for family in ("atari", "minatar", "vector"):
        p = {a: PRESETS[family, a] for a in SCRIPTS}
        # MinAtar: gymnax-blines' shape for all three (the shape its published PPO learns with)
        shapes = [(64, 128)] * 3 if family == "minatar" else [(128, 8), (64, 16), (8, 128)]
        assert [(p[a].config.env.num_envs, p[a].config.ppo.num_steps) for a in SCRIPTS] == shapes
        for name in ("learning_rate", "clip_coef", "gamma", "gae_lambda", "ent_coef", "vf_coef"):
            assert len({getattr(p[a].hparams, name) for a in SCRIPTS}) == 1, (family, name)
        assert not p["deepmdp"].config.world_model.lipschitz and p["deepmdp"].hparams.reward_coef == 1.0
        assert p["deepspi"].hparams.transition_coef == 0.0005 and p["ppo"].hparams.reward_coef == 0.0
    grid = {a: PRESETS["gridworld", a].config for a in SCRIPTS}
    shapes = {(g.env.num_envs, g.ppo.num_steps, g.world_model.density, g.world_model.lipschitz) for g in grid.values()}
    assert shapes == {(128, 8, "mixture", True)}
    assert PRESETS["gridworld", "deepmdp"].hparams.reward_coef == 0.01  # deep_spi.py --deep_mdp keeps its coefficients
    rows = preset_table()
    assert len(rows) == 12 and set(HPARAM_NAMES) <= set(rows[0])


def test_the_plain_world_model_has_the_deterministic_head_only():
    with pytest.raises(pjs.ConfigError, match="deterministic head only"):
        pjs.make_config("Breakout-MinAtar", "deepmdp", density="mixture")
    config = pjs.make_config("Breakout-MinAtar", "deepmdp", lipschitz=True, density="mixture")
    assert config.world_model.density == "mixture"
