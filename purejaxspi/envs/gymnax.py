"""gymnax backend: classic control, MinAtar, bsuite and misc environments with discrete actions."""

from __future__ import annotations

import importlib
import sys
import types

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


# gymnax imports these at its top for the render functions of Pong, Catch and the rooms: about 1.5 s of
# every process that makes a gymnax env (seaborn brings pandas and scipy.stats). While gymnax imports,
# each is a placeholder that imports the real module at its first attribute read.
IMPORTED_ON_FIRST_USE = ("seaborn", "matplotlib.pyplot")


class ImportedOnFirstUse(types.ModuleType):
    """A module's stand-in: the first attribute read imports the real module and reads it there."""

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def import_gymnax() -> types.ModuleType:
    """gymnax, without importing its render functions' plotting libraries until one is used."""
    if "gymnax" in sys.modules:
        return sys.modules["gymnax"]
    stand_ins = {name: ImportedOnFirstUse(name) for name in IMPORTED_ON_FIRST_USE if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("gymnax")
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def make(env_id: str, num_envs: int) -> BatchedEnv:
    gymnax = import_gymnax()
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
