"""The time limit's rule in GAE: `bootstrap` (the default) values a truncated step's successor,
`terminate` (gymnax-blines' and the paper's scripts' rule) zeroes it as at a termination; both cut the
lambda-trace. Checked against a numpy GAE on a rollout that holds both kinds of episode end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxspi as pjs
from purejaxspi.algo.networks import policy_value
from purejaxspi.algo.train import variables_of

TIME_LIMIT = 3


def clock_reset(key):
    del key
    return jnp.int32(0), jax.nn.one_hot(0, TIME_LIMIT + 1), jnp.ones((2,), bool)


def clock_step(key, steps, action):
    """Reward 1 a step; action 0 at the second step terminates, the third step truncates."""
    del key
    steps = steps + 1
    terminated = (steps == 2) & (action == 0)
    return steps, jax.nn.one_hot(steps, TIME_LIMIT + 1), jnp.ones((2,), bool), 1.0 + 0.0 * steps, terminated, steps >= 3


CLOCK = pjs.EnvDef("Clock-v0", "vector", (TIME_LIMIT + 1,), 2, clock_reset, clock_step)
# the same env with its time limit declared: GAE values the final frames of its truncations alone
TIMED_CLOCK = pjs.EnvDef("Clock-v1", "vector", (TIME_LIMIT + 1,), 2, clock_reset, clock_step, time_limit=TIME_LIMIT)


def numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam, rule):
    cut = terminated | truncated if rule == "terminate" else terminated
    done = terminated | truncated
    advantages, following = np.zeros_like(rewards), np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_values[t] * (1 - cut[t]) - values[t]
        following = delta + gamma * lam * (1 - done[t]) * following
        advantages[t] = following
    return advantages


def rollout_advantages(truncation, clock=CLOCK):
    config = pjs.make_config(clock, "ppo", num_envs=8, num_steps=12, total_timesteps=96, truncation=truncation)
    env = pjs.make_env(clock, config.env.num_envs)
    program = pjs.make_train(config, env)
    hp = jax.tree.map(lambda x: x[0], pjs.make_grid(config).hparams())
    state = program.init(jax.random.PRNGKey(3), hp)
    state, traj = program.pieces.rollout(state)
    adv, returns = program.pieces.advantages(state, traj, hp)
    ts = traj.timestep
    _, next_values = policy_value(program.agent, variables_of(state), ts.next_obs.reshape(-1, TIME_LIMIT + 1))
    arrays = [np.asarray(x, np.float64) for x in (ts.reward, traj.value, next_values.reshape(ts.reward.shape))]
    flags = [np.asarray(x, bool) for x in (ts.terminated, ts.truncated)]
    return np.asarray(adv), np.asarray(returns), arrays, flags, hp


@pytest.mark.parametrize("clock", [CLOCK, TIMED_CLOCK], ids=["every-successor", "final-frames"])
@pytest.mark.parametrize("truncation", ["bootstrap", "terminate"])
def test_gae_follows_the_time_limit_rule(truncation, clock):
    adv, returns, (rewards, values, next_values), (terminated, truncated), hp = rollout_advantages(truncation, clock)
    assert terminated.any() and truncated.any()  # both kinds of episode end are in the rollout
    expected = numpy_gae(rewards, values, next_values, terminated, truncated, hp.gamma, hp.gae_lambda, truncation)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-5, atol=1e-5)


def test_at_a_truncated_step_the_terminate_rule_drops_the_discounted_successor_value():
    bootstrap, _, (_, _, next_values), (terminated, truncated), hp = rollout_advantages("bootstrap")
    terminate, *_ = rollout_advantages("terminate")
    # at a truncated step the difference is gamma * V(s'), the value the terminate rule drops
    np.testing.assert_allclose((bootstrap - terminate)[truncated], hp.gamma * next_values[truncated], rtol=1e-5)
    # a step whose episode ends by termination, with no time limit between, is the same under both
    last = terminated.shape[0] - 1
    ends_terminated = terminated[last - 1] & ~truncated[last]  # the last-but-one step terminated
    np.testing.assert_allclose(bootstrap[last - 1][ends_terminated], terminate[last - 1][ends_terminated], rtol=1e-6)


def test_an_unknown_rule_is_refused():
    with pytest.raises(pjs.ConfigError, match="truncation"):
        pjs.make_config("CartPole-v1", truncation="ignore")
