"""pgx backend: single-agent pgx games (2048 and pgx's MinAtar), ids `pgx/<name>`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejaxspi.envs.base import BatchedEnv, EnvSpec, make_batched_env

PGX_IDS = (
    "pgx/2048",
    "pgx/minatar-asterix",
    "pgx/minatar-breakout",
    "pgx/minatar-freeway",
    "pgx/minatar-seaquest",
    "pgx/minatar-space_invaders",
)

# pgx's MinAtar games may never terminate; cut episodes (as truncation) at this length.
MAX_EPISODE_STEPS = 10_000


def make(env_id: str, num_envs: int) -> BatchedEnv:
    import pgx

    name = env_id.removeprefix("pgx/")
    env = pgx.make(name)
    probe = env.init(jax.random.PRNGKey(0))
    obs_shape = tuple(probe.observation.shape)
    spec = EnvSpec(env_id, "pgx", "minatar", obs_shape, int(env.num_actions))

    def reset_one(key):
        state = env.init(key)
        return state, state.observation, state.legal_action_mask

    def step_one(key, state, action):
        state = env.step(state, action, key)
        truncated = jnp.logical_or(state.truncated, state._step_count >= MAX_EPISODE_STEPS)
        return (
            state,
            state.observation,
            state.legal_action_mask,
            state.rewards[0],
            state.terminated,
            truncated,
        )

    return make_batched_env(spec, num_envs, reset_one, step_one)
