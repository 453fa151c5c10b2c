"""The switches a CleanRL user reaches for: each in the config and the command line, each doing what it says."""

import functools

import jax
import numpy as np
import pytest
from conftest import algo_loss, cli, needs_envpool
from test_objectives import HP, hand_terms, tiny_inputs

import purejaxspi as pjs
from purejaxspi.algo import objectives


@functools.cache  # the default run serves two tests
def run_metrics(**overrides):
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=16, total_timesteps=64 * 4, **overrides)
    grid = pjs.make_grid(config)
    program = pjs.make_train(config, pjs.make_env(config.env_id, config.env.num_envs))
    _, metrics = jax.jit(program.train)(grid.keys()[0], jax.tree.map(lambda x: x[0], grid.hparams()))
    return {k: np.asarray(v) for k, v in metrics.items()}


def test_learning_rate_annealing_on_and_off():
    annealed, constant = run_metrics()["learning_rate"], run_metrics(anneal_lr=False)["learning_rate"]
    np.testing.assert_allclose(annealed, 2.5e-3 * (1 - np.arange(4) / 4), rtol=1e-6)
    np.testing.assert_allclose(constant, [2.5e-3] * 4, rtol=1e-6)


def test_the_anneal_as_an_input_gives_the_floats_of_the_configs_constant():
    """`train` gives the anneal's step with the hyperparameters, so that one program serves every
    budget: at every iteration of runs of several lengths, the same float32 rates as the config's own."""
    from purejaxspi.algo import ppo, train

    for iterations in (3, 12, 160, 610, 4882):
        config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=16, total_timesteps=64 * iterations)
        setup = train.make_learner(config, pjs.make_env(config.env_id, 4)).update_setup
        hp = jax.tree.map(lambda x: x[0], pjs.make_grid(config).hparams())

        @jax.jit  # the iteration traced, as the state carries it (a constant one would be folded)
        def rates(hp, iteration, setup=setup):
            return jax.vmap(lambda i: ppo.learning_rate_at(setup, i, hp))(iteration)

        @jax.jit  # the division the program computed before the step became an input
        def divided(hp, iteration, iterations=iterations):
            return jax.vmap(lambda i: hp.learning_rate * (1.0 - i / iterations))(iteration)

        iteration = np.arange(iterations, dtype=np.int32)
        from_config, as_input = rates(hp, iteration), rates(hp.anneal_over(iterations), iteration)
        np.testing.assert_array_equal(from_config, as_input)
        np.testing.assert_array_equal(divided(hp, iteration), as_input)  # old runs resume to the same floats
        np.testing.assert_allclose(as_input, 2.5e-3 * (1 - np.arange(iterations) / iterations), rtol=1e-6, atol=1e-9)


def test_target_kl_stops_the_remaining_epochs():
    assert run_metrics()["update_epochs_run"].tolist() == [4.0] * 4
    assert run_metrics(target_kl=1e-9)["update_epochs_run"].tolist() == [1.0] * 4  # every first epoch moves the policy


def test_advantage_normalisation_off_uses_the_raw_advantages():
    x = tiny_inputs()
    raw = algo_loss("ppo", x, HP, norm_adv=False)
    normalised = algo_loss("ppo", x._replace(advantages=objectives.normalize(x.advantages)), HP, norm_adv=False)
    np.testing.assert_allclose(normalised.total, hand_terms(x, "ppo")[0], rtol=1e-5)
    assert float(raw.policy_loss) != pytest.approx(float(normalised.policy_loss))


@needs_envpool
def test_atari_reward_clip_and_episodic_life_reach_the_pool():
    from purejaxspi.envs.envpool import make_pool

    pool = make_pool("Breakout-v5", (0,), 2, reward_clip=False, episodic_life=False)
    assert pool.config["reward_clip"] is False and pool.config["episodic_life"] is False
    assert make_pool("Breakout-v5", (0,), 2).config["reward_clip"] is True
    with pytest.raises(pjs.ConfigError, match="Atari"):
        pjs.make_config("CartPole-v1", "ppo", episodic_life=False)


@pytest.mark.slow  # trains a whole program through the CLI
def test_the_switches_are_flags(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train",
        "--env",
        "CartPole-v1",
        "--algo",
        "deepspi",
        "--num-seeds",
        "1",
        "--num-envs",
        "4",
        "--num-steps",
        "16",
        "--total-timesteps",
        "128",
        "--no-anneal-lr",
        "--no-norm-adv",
        "--target-kl",
        "0.02",
        "--clip-value-loss",
        "--num-components",
        "3",
        "--torso-width",
        "32",
        "--encoder-width",
        "48",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    import json

    config = json.loads((out / "config.json").read_text())["config"]
    assert (
        config["anneal_lr"],
        config["norm_adv"],
        config["target_kl"],
        config["num_components"],
        config["torso_width"],
        config["encoder_width"],
        config["clip_value_loss"],
    ) == (False, False, 0.02, 3, 32, 48, True)
    help_text = cli("train", "--help").stdout
    for flag in (
        "--no-anneal-lr",
        "--no-norm-adv",
        "--target-kl",
        "--no-reward-clip",
        "--no-episodic-life",
        "--num-components",
        "--torso-width",
        "--encoder-width",
        "--settings",
        "--clip-value-loss",
        "--encoder {auto,mlp,conv,nature}",
    ):
        assert flag in help_text, flag


def test_the_clipped_value_loss_changes_the_update_only_when_on():
    """Against numpy on the first minibatch: off, 0.5 E[(V - R)^2] whatever the rollout's values; on, the
    clipped form around them (gymnax-blines' and CleanRL's rule)."""
    from conftest import first_batch

    from purejaxspi.algo import ppo, train
    from purejaxspi.algo.networks import policy_value

    def value_losses(config, shifts):
        """(value loss, V, batch, hp) on the first minibatch for each shift of the rollout's values."""
        learner, state, batch, hp = first_batch(config)

        @jax.jit
        def value_loss_and_values(batch):
            terms, _ = ppo.minibatch_loss(learner.update_setup, state.params, state.spectral, batch, hp, state.key)[1]
            return terms.value_loss, policy_value(learner.agent, train.variables_of(state), batch["obs"])[1]

        for shift in shifts:
            moved = {**batch, "value": batch["value"] + shift} if "value" in batch else batch  # moved away
            loss, value = value_loss_and_values(moved)
            yield float(loss), np.asarray(value), moved, hp

    base = dict(num_envs=4, num_steps=16, total_timesteps=64)
    off = pjs.make_config("CartPole-v1", "ppo", **base)
    on = pjs.make_config("CartPole-v1", "ppo", clip_value_loss=True, **base)
    ((loss, value, batch, _),) = value_losses(off, [0.0])
    returns = np.asarray(batch["returns"])
    np.testing.assert_allclose(loss, 0.5 * np.mean((value - returns) ** 2), rtol=1e-5)
    assert "value" not in batch  # off: the rollout's values are not even carried
    # returns lie above the values here: old values moved down make the clip bind
    for loss, value, batch, hp in value_losses(on, [0.0, -1.0]):
        old = np.asarray(batch["value"])
        clipped = old + np.clip(value - old, -hp.clip_coef, hp.clip_coef)
        expected = 0.5 * np.mean(np.maximum((value - returns) ** 2, (clipped - returns) ** 2))
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert loss > 0.5 * np.mean((value - returns) ** 2) * 1.01  # moved values: the clipped term binds


def resolve(args):
    """The Config the parsed flags train."""
    from purejaxspi.cli import flags

    return pjs.make_config(args.env, args.algo, settings=args.settings, **flags.overrides(args)), None


def test_preset_switches_follow_the_preset_unless_given():
    """anneal_lr and clip_value_loss are preset fields: MinAtar's preset (gymnax's recipe) keeps the rate constant
    and clips the value loss, the others anneal and do not; `--flag` / `--no-flag` override either."""
    from purejaxspi.cli.train import parse_train

    def switches(*argv):
        config, _ = resolve(parse_train(list(argv)))
        return config.ppo.anneal_lr, config.ppo.clip_value_loss

    assert switches("--env", "Breakout-MinAtar") == (False, True)
    assert switches("--env", "CartPole-v1") == (True, False)
    assert switches("--env", "Breakout-MinAtar", "--anneal-lr", "--no-clip-value-loss") == (True, False)
    assert switches("--env", "CartPole-v1", "--anneal-lr", "False", "--clip-value-loss") == (False, True)


def planned(*argv):
    """What `purejaxspi train ARGV` would train: its Config and number of runs."""
    from purejaxspi.cli import flags
    from purejaxspi.cli.train import RunOptions, parse_train
    from purejaxspi.lifecycle.job import Job, prepare

    args = parse_train(list(argv))
    job, options = flags.declared_options(Job, args), flags.declared_options(RunOptions, args)
    prepared = prepare(job, flags.overrides(args), flags.hparams(args), options)
    return prepared.config, prepared.grid.size


def test_output_flags_never_change_what_trains_and_the_budget_is_asked_for_by_name(tmp_path):
    from purejaxspi.algo.config import SMOKE_TEST

    main_job = planned()
    smoke = (SMOKE_TEST["total_timesteps"], SMOKE_TEST["num_envs"], SMOKE_TEST["num_steps"])
    assert (main_job[0].run.total_timesteps, main_job[0].env.num_envs, main_job[0].ppo.num_steps) == smoke
    for outputs in (["--out", str(tmp_path / "x")], ["--quiet"], ["--tensorboard"], ["--budget", "smoke"]):
        assert planned(*outputs) == main_job, outputs
    preset, runs = planned("--budget", "preset")
    assert preset == pjs.make_config("Breakout-MinAtar") and runs == main_job[1]
    assert preset.run.total_timesteps == 10_000_000
    # --total-timesteps is the budget on the preset's batch shape
    given, _ = planned("--total-timesteps", "50000")
    assert given == pjs.make_config("Breakout-MinAtar", total_timesteps=50_000)
    # an explicit batch shape stays on the smoke budget
    shaped, _ = planned("--num-envs", "8")
    assert (shaped.run.total_timesteps, shaped.env.num_envs) == (SMOKE_TEST["total_timesteps"], 8)
