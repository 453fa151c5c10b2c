"""A user's own environment: single-env pure functions, registered under an id every command accepts.

What an env must provide (one environment, no auto-reset; `make_batched_env` batches it, resets
finished episodes and keeps the true successor):

- `reset(key) -> (state, obs, action_mask)`: `obs` of `obs_shape` (floats), `action_mask` [A] bool;
- `step(key, state, action) -> (state, obs, action_mask, reward, terminated, truncated)`: `obs` is the
  true successor s' of the transition (even when the episode ends there); `terminated` ends the episode
  with no bootstrap, `truncated` (a time limit) ends it and bootstraps from V(s');
- `family`: "vector" (flat observations, the MLP encoder) or "minatar" (H x W x C images, the small conv
  trunk), which picks the network and the preset;
- optionally `time_limit`: the fewest steps from an episode's start to its truncation; GAE then values
  the final frames of truncations alone instead of every step's successor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from purejaxspi.envs.base import BatchedEnv, EnvSpec, make_batched_env
from purejaxspi.errors import ConfigError

FAMILIES = ("vector", "minatar")


@dataclasses.dataclass(frozen=True)
class EnvDef:
    """A user-defined env (see the module docstring for what `reset` and `step` must return)."""

    env_id: str
    family: str
    obs_shape: tuple[int, ...]
    num_actions: int
    reset: Callable[[jax.Array], tuple[Any, jax.Array, jax.Array]]
    step: Callable[[jax.Array, Any, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]]
    time_limit: int | None = None

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec(
            self.env_id, "custom", self.family, tuple(self.obs_shape), self.num_actions, time_limit=self.time_limit
        )

    def make(self, num_envs: int) -> BatchedEnv:
        return make_batched_env(self.spec, num_envs, self.reset, self.step)


_REGISTERED: dict[str, EnvDef] = {}


def registered_ids() -> tuple[str, ...]:
    return tuple(_REGISTERED)


def registered(env_id: str) -> EnvDef:
    return _REGISTERED[env_id]


def register_env(env: EnvDef, builtin_ids: tuple[str, ...] = ()) -> str:
    """Check `env` against its declared shapes (ConfigError, one line) and make its id usable by
    `make_config`, `make_env` and `train` in this process; returns the id."""
    if not isinstance(env, EnvDef):
        raise ConfigError(f"an env must be a pjs.EnvDef, got {type(env).__name__}", setting="env_id")
    if env.env_id in builtin_ids:
        raise ConfigError(f"env id {env.env_id!r} is a built-in env's; pick another name", setting="env_id")
    if env.family not in FAMILIES:
        raise ConfigError(f"env family must be one of {', '.join(FAMILIES)}, got {env.family!r}", setting="env_id")
    if env.num_actions < 1:
        raise ConfigError(f"num_actions must be positive, got {env.num_actions}", setting="env_id")
    if env.family == "minatar" and len(env.obs_shape) != 3:
        raise ConfigError(
            f"a minatar-family env has [H, W, C] observations, got shape {tuple(env.obs_shape)}", setting="env_id"
        )
    try:
        state, obs, mask = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        _, next_obs, next_mask, reward, terminated, truncated = jax.eval_shape(
            env.step, jax.random.PRNGKey(0), state, jnp.int32(0)
        )
    except Exception as e:  # the user's code: name what broke, in one line
        raise ConfigError(
            f"env {env.env_id!r}: reset/step cannot be traced: {type(e).__name__}: {e}".splitlines()[0],
            setting="env_id",
        ) from None
    for what, got, want in (
        ("reset's obs", obs.shape, tuple(env.obs_shape)),
        ("step's obs", next_obs.shape, tuple(env.obs_shape)),
        ("reset's action_mask", mask.shape, (env.num_actions,)),
        ("step's action_mask", next_mask.shape, (env.num_actions,)),
        ("step's reward", reward.shape, ()),
        ("step's terminated", terminated.shape, ()),
        ("step's truncated", truncated.shape, ()),
    ):
        if tuple(got) != want:
            raise ConfigError(f"env {env.env_id!r}: {what} has shape {tuple(got)}, expected {want}", setting="env_id")
    _REGISTERED[env.env_id] = env
    return env.env_id
