"""The one functional, batched environment interface every backend implements.

A backend supplies single-environment pure functions with no auto-reset (`reset_one`, `step_one`);
`make_batched_env` vmaps them over `num_envs`, adds auto-reset, keeps the true next observation
(`next_obs`, the frame before the reset) and tracks the return and length of episodes that finish.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Timestep(NamedTuple):
    """What one batched env step hands back; every field has a leading `[N]` env axis.

    `obs` is what the agent acts on next (the reset frame after an episode ends); `next_obs` is the
    true successor `s'` of the transition just taken, used by the world model. `transition_valid` is
    False where `(s, s')` is not a real transition (backends that reset one step late).
    `episode_done` marks episodes that finished on this step (for Atari: the whole game, all lives),
    with their undiscounted `episode_return` and `episode_length`.
    """

    obs: jax.Array
    action_mask: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    transition_valid: jax.Array
    episode_done: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


class LocalRuns(NamedTuple):
    """The runs each device of this process trains, for backends that keep one host object per device.

    `positions[i]` is the device's index along RUN_AXIS (of `axis_size` in all processes) and
    `runs[i]` the grid indices of its runs, padding included.
    """

    axis_name: str | None
    axis_size: int
    positions: tuple[int, ...]
    runs: tuple[tuple[int, ...], ...]


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that shape the network and the program."""

    env_id: str
    backend: str
    family: str  # "vector", "minatar" (any H x W x C image) or "atari": picks the encoder and the preset
    obs_shape: tuple[int, ...]
    num_actions: int
    # The env is a host-side pool stepped once for all runs (envpool's emulators behind a custom_vmap
    # rule): the program must vmap over runs, never loop over them, and a checkpoint cannot hold the
    # env's state, so a resumed run starts new episodes.
    steps_all_runs: bool = False
    # Steps before the time limit truncates an episode, where known: a truncation comes at most once per
    # env in that many steps, so GAE computes V of the final frames of those alone (None: of every step).
    time_limit: int | None = None
    # The next observation is the true successor even where an episode ended (the env resets one step
    # late, as envpool does): V(s') is the next step's V everywhere.
    resets_late: bool = False


# probe(action_probs: obs [B, *obs] -> pi [B, A], encode: obs [B, *obs] -> z [B, *z]) -> {name: scalar}
Probe = Callable[[Callable[[jax.Array], jax.Array], Callable[[jax.Array], jax.Array]], dict[str, jax.Array]]


@dataclasses.dataclass(frozen=True)
class BatchedEnv:
    """A batch of `num_envs` environments as two pure functions.

    reset(key) -> (state, obs [N, *obs_shape], action_mask [N, A])
    step(state, action [N], key) -> (state, Timestep)
    probe(action_probs, encode) -> {name: scalar}, or None: exact diagnostics of the current network
        that an env with a known model can compute inside the program (see `Probe`).
    """

    spec: EnvSpec
    num_envs: int
    reset: Callable[[jax.Array], tuple[Any, jax.Array, jax.Array]]
    step: Callable[[Any, jax.Array, jax.Array], tuple[Any, Timestep]]
    probe: Probe | None = None


class EpisodeStats(NamedTuple):
    running_return: jax.Array
    running_length: jax.Array


class AutoResetState(NamedTuple):
    env_state: Any
    stats: EpisodeStats


def make_batched_env(
    spec: EnvSpec,
    num_envs: int,
    reset_one: Callable[[jax.Array], tuple[Any, jax.Array, jax.Array]],
    step_one: Callable[[jax.Array, Any, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]],
    probe: Probe | None = None,
) -> BatchedEnv:
    """Batch single-env pure functions and add auto-reset plus honest episode statistics.

    reset_one(key) -> (state, obs, action_mask)
    step_one(key, state, action) -> (state, obs, action_mask, reward, terminated, truncated)
    """

    def reset(key):
        states, obs, masks = jax.vmap(reset_one)(jax.random.split(key, num_envs))
        zeros = jnp.zeros((num_envs,), jnp.float32)
        stats = EpisodeStats(zeros, jnp.zeros((num_envs,), jnp.int32))
        return AutoResetState(states, stats), obs.astype(jnp.float32), masks

    def step(state: AutoResetState, action, key):
        step_key, reset_key = jax.random.split(key)
        stepped, next_obs, next_mask, reward, terminated, truncated = jax.vmap(step_one)(
            jax.random.split(step_key, num_envs), state.env_state, action
        )
        reward = reward.astype(jnp.float32)
        truncated = jnp.logical_and(truncated, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        fresh, reset_obs, reset_mask = jax.vmap(reset_one)(jax.random.split(reset_key, num_envs))

        def pick(reset_leaf, step_leaf):
            cond = done.reshape(done.shape + (1,) * (step_leaf.ndim - 1))
            return jnp.where(cond, reset_leaf, step_leaf)

        env_state = jax.tree.map(pick, fresh, stepped)
        next_obs = next_obs.astype(jnp.float32)
        obs = pick(reset_obs.astype(jnp.float32), next_obs)
        mask = pick(reset_mask, next_mask)

        ep_return = state.stats.running_return + reward
        ep_length = state.stats.running_length + 1
        stats = EpisodeStats(jnp.where(done, 0.0, ep_return), jnp.where(done, 0, ep_length))
        timestep = Timestep(
            obs=obs,
            action_mask=mask,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=next_obs,
            transition_valid=jnp.ones_like(done),
            episode_done=done,
            episode_return=ep_return,
            episode_length=ep_length,
        )
        return AutoResetState(env_state, stats), timestep

    return BatchedEnv(spec=spec, num_envs=num_envs, reset=reset, step=step, probe=probe)
