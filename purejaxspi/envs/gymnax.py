"""gymnax backend: classic control, MinAtar, bsuite and misc environments with discrete actions."""

from __future__ import annotations

import jax.numpy as jnp

from purejaxspi.envs.base import BatchedEnv, EnvSpec, make_batched_env

# Discrete-action gymnax environments whose observations are arrays (vector or image).
GYMNAX_IDS = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Seaquest-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "Pong-misc",
)
# Those whose observations are H x W x C images: they take the conv trunk; the rest are vectors.
IMAGE_IDS = frozenset(i for i in GYMNAX_IDS if i.endswith("-MinAtar")) | {"Pong-misc"}


def family(env_id: str) -> str:
    return "minatar" if env_id in IMAGE_IDS else "vector"


def make(env_id: str, num_envs: int) -> BatchedEnv:
    import gymnax

    env, params = gymnax.make(env_id)
    obs_shape = tuple(env.observation_space(params).shape)
    time_limit = int(params.max_steps_in_episode)  # gymnax's is_truncated: state.time >= it
    spec = EnvSpec(env_id, "gymnax", family(env_id), obs_shape, int(env.num_actions), time_limit=time_limit)
    all_legal = jnp.ones((spec.num_actions,), bool)

    def reset_one(key):
        obs, state = env.reset_env(key, params)
        return state, obs, all_legal

    def step_one(key, state, action):
        # step_env does not auto-reset; the time limit is gymnax's truncation, kept apart.
        obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
        truncated = env.is_truncated(state, params)
        return state, obs, all_legal, reward, jnp.asarray(terminated, bool), jnp.asarray(truncated, bool)

    return make_batched_env(spec, num_envs, reset_one, step_one)
