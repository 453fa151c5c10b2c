"""The model's FLOPs per env step, from XLA's cost analysis of the iteration's pieces, against a count by
hand of the networks' multiply-adds; and the profile's charging of ops to the model's parts."""

import numpy as np

import purejaxspi as pjs
from purejaxspi.algo.config import HParams
from purejaxspi.algo.train import make_train
from purejaxspi.analysis.profile import part_of
from purejaxspi.analysis.work import iteration_flops
from purejaxspi.envs import env_for


def one_run_flops(algo, **overrides):
    config = pjs.make_config("CartPole-v1", algo, **overrides)
    program = make_train(config, env_for(config.env, None, (0,)))
    hp = HParams(**{name: values[0] for name, values in pjs.hparam_values(config).items()})
    return config, iteration_flops(program, hp)


def test_ppo_flops_match_the_networks_multiply_adds():
    """CartPole's PPO: obs 4 -> 64 -> 64 (encoder), a 64-unit actor torso and critic torso, 2 logits, 1 value.
    Acting is one forward pass per env; a gradient step about three (forward, and backward's two
    products per layer) on the minibatch; XLA adds the elementwise ops on top of the 2 x MACs."""
    config, flops = one_run_flops("ppo")
    macs = 4 * 64 + 64 * 64 + 64 * 64 + 64 * 2 + 64 * 64 + 64 * 1
    forward = 2 * macs
    act = flops["act"] / (config.ppo.num_steps * config.env.num_envs)
    assert forward <= act <= 1.5 * forward, (act, forward)
    steps = config.ppo.update_epochs * config.ppo.num_minibatches
    gradient = flops["gradient_step"] / (steps * config.minibatch_size)
    assert 2.5 * forward <= gradient <= 4.0 * forward, (gradient, forward)
    assert flops["per_env_step"] * config.batch_size == flops["total"]
    assert np.isclose(flops["total"], flops["act"] + flops["advantages"] + flops["gradient_step"])


def test_the_world_model_adds_its_work_and_the_mixture_more():
    _, ppo = one_run_flops("ppo")
    _, deterministic = one_run_flops("deepspi", density="deterministic")
    _, mixture = one_run_flops("deepspi", density="mixture")
    # acting is the same network: per env step the same work (Deep SPI's 128 x 8 rollout, PPO's 8 x 128)
    np.testing.assert_allclose(deterministic["act"], ppo["act"], rtol=0.05)
    assert ppo["per_env_step"] < deterministic["per_env_step"] < mixture["per_env_step"]
    # the mixture's output layer: 64 -> 2 actions x 5 components x (mean, scale) x 64, about 164k MACs a sample
    extra = (mixture["gradient_step"] - deterministic["gradient_step"]) / (16 * 256)
    assert extra > 3 * 2 * 64 * (2 * 5 * 2 * 64 - 2 * 64) * 0.9


def test_ops_are_charged_to_the_part_their_path_names():
    assert (
        part_of("jit(step)/transpose(jvp(Agent.with_world_model))/reward_model/LipschitzDense_0/dot_general")
        == "reward model"
    )
    assert (
        part_of(
            "jit(step)/jvp(Agent.with_world_model)/transition_model.sample/transition_model.components/"
            "GroupedActionConv_0/kernel/power_iteration/mul"
        )
        == "spectral norm"
    )
    assert (
        part_of("jit(step)/jvp(Agent.with_world_model)/transition_model.sample/mixture_sample/add") == "mixture sample"
    )
    assert part_of("jit(step)/jvp(Agent)/Agent._policy_value/tanh") == "policy and value"
    assert part_of("jit(step)/optimizer/add") == "optimizer"
    assert part_of("jit(step)/jvp(Agent)/encoderless/add") == "other"
    assert part_of("") == "other"
