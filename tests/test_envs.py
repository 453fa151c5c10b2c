"""The batched env layer: transition pairs (s, s') are the real ones, episode statistics are honest."""

import subprocess
import sys

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pgx
import pytest

from purejaxspi.envs import UnknownEnvError, check_env_id, make_env


def drive(env, steps, seed=0):
    """Random-action rollout recording the pre-step state, action and step key of every step."""
    state, obs, mask = env.reset(jax.random.PRNGKey(seed))
    step = jax.jit(env.step)
    key = jax.random.PRNGKey(seed + 1)
    records = []
    for _ in range(steps):
        key, a_key, s_key = jax.random.split(key, 3)
        action = jax.random.randint(a_key, (env.num_envs,), 0, env.spec.num_actions)
        new_state, ts = step(state, action, s_key)
        records.append((state, obs, action, s_key, ts))
        state, obs = new_state, ts.obs
    return records


def per_env_step_keys(step_key, num_envs):
    step_key, _ = jax.random.split(step_key)
    return jax.random.split(step_key, num_envs)


def test_gymnax_cartpole_pairs_are_the_real_transitions():
    genv, params = gymnax.make("CartPole-v1")
    ref_step = jax.jit(jax.vmap(lambda k, s, a: genv.step_env(k, s, a, params)))
    env = make_env("CartPole-v1", 4)
    records = drive(env, 120)
    dones = 0
    for state, _obs, action, s_key, ts in records:
        ref_obs, _, _, ref_term, _ = ref_step(per_env_step_keys(s_key, 4), state.env_state, action)
        # s' is the library's own successor of (s, a), before any reset
        np.testing.assert_allclose(ts.next_obs, ref_obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ts.terminated, ref_term)
        for i in range(4):
            if ts.episode_done[i]:
                dones += 1
                assert np.all(np.abs(ts.obs[i]) <= 0.05)  # acting continues from a fresh reset state
                assert not np.allclose(ts.obs[i], ts.next_obs[i])
            else:
                np.testing.assert_array_equal(ts.obs[i], ts.next_obs[i])
    assert dones > 0


def test_pgx_minatar_pairs_are_the_real_transitions():
    penv = pgx.make("minatar-breakout")
    env = make_env("pgx/minatar-breakout", 3)
    ref_step = jax.jit(jax.vmap(penv.step))
    records = drive(env, 150)
    dones = 0
    for state, obs, action, s_key, ts in records:
        np.testing.assert_array_equal(obs, state.env_state.observation.astype(np.float32))
        ref = ref_step(state.env_state, action, per_env_step_keys(s_key, 3))
        np.testing.assert_array_equal(ts.next_obs, ref.observation.astype(np.float32))
        np.testing.assert_array_equal(ts.reward, ref.rewards[:, 0])
        dones += int(ts.episode_done.sum())
    assert dones > 0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "pgx/minatar-breakout", "Breakout-MinAtar"])
def test_episode_statistics_sum_the_rewards_of_finished_episodes(env_id):
    env = make_env(env_id, 3)
    records = drive(env, 400, seed=3)
    running = np.zeros(3)
    length = np.zeros(3, int)
    finished = 0
    for *_, ts in records:
        running += np.asarray(ts.reward)
        length += 1
        for i in np.nonzero(np.asarray(ts.episode_done))[0]:
            assert ts.episode_return[i] == pytest.approx(running[i], rel=1e-5)
            assert int(ts.episode_length[i]) == length[i]
            running[i], length[i] = 0.0, 0
            finished += 1
        assert not np.any(np.asarray(ts.terminated) & np.asarray(ts.truncated))
    assert finished > 0


def test_gymnax_time_limit_is_truncation_not_termination():
    env = make_env("CartPole-v1", 1)
    state, obs, _ = env.reset(jax.random.PRNGKey(0))
    # put the env one step from its 500-step limit in a balanced state
    inner = state.env_state.replace(
        time=jnp.array([499]), x=jnp.zeros(1), x_dot=jnp.zeros(1), theta=jnp.zeros(1), theta_dot=jnp.zeros(1)
    )
    state = state._replace(env_state=inner)
    _, ts = env.step(state, jnp.array([0]), jax.random.PRNGKey(1))
    assert bool(ts.truncated[0]) and not bool(ts.terminated[0]) and bool(ts.episode_done[0])


def test_a_gymnax_env_comes_without_gymnax_plotting_libraries_which_still_load_on_first_use():
    """gymnax imports seaborn and pyplot at its top for its render functions; a process that only makes
    and steps its envs does not load them (about 1.5 s of every process), and they work when used."""
    script = """
import sys
from purejaxspi.envs import make_env
make_env("Breakout-MinAtar", 2)
print(sorted(m for m in ("seaborn", "matplotlib.pyplot", "pandas", "scipy.stats") if m in sys.modules))
from gymnax.environments.misc import pong
import matplotlib.pyplot as plt
print(len(pong.sns.color_palette("husl", 3)), plt is sys.modules["matplotlib.pyplot"], callable(plt.figure))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "3 True True"]


def test_unknown_env_names_close_matches():
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        check_env_id("Cartpole-v1")


def test_without_envpool_the_pure_jax_envs_still_resolve(monkeypatch):
    """Where envpool has no wheel (and its ROM package is absent), Atari ids are simply not offered."""
    import importlib.util
    import sys

    from purejaxspi.envs import envpool as envpool_backend

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("envpool") else real_find_spec(name, *a)
    )
    monkeypatch.setitem(sys.modules, "envpool", None)
    monkeypatch.setitem(sys.modules, "envpool.registration", None)
    envpool_backend.atari_ids.cache_clear()
    try:
        assert envpool_backend.atari_ids() == ()
        assert check_env_id("Breakout-MinAtar") == "gymnax"
        with pytest.raises(UnknownEnvError, match="needs envpool"):
            check_env_id("Breakout-v5")
    finally:
        envpool_backend.atari_ids.cache_clear()  # the real ids again once envpool is back
