"""envpool backend: Atari games through envpool's XLA interface, one pool for a whole grid of runs (per device).

The trainer vmaps every run's `reset`/`step` over the run axis, but envpool's XLA calls have no
batching rule and the pool is one stateful object. So each pool call is a
`jax.custom_batching.custom_vmap` function whose rule flattens the runs' `[R, N]` actions into one
`[R * N]` batch, calls the pool once, and reshapes the outputs back to `[R, N, ...]`. The pool's
handle rides in every run's state (a copy per run under vmap); the rule uses one copy.

Sharded over devices (`local_runs`), each device of this process gets a pool of its own runs only,
and the rule sees just that device's runs. envpool bakes a pool's identity into each of its XLA
calls, while the devices run one SPMD program; so every pool call branches (`lax.switch`) on the
device's index along the mesh axis and reaches the pool of the device it runs on.

Seeding: environment j of the run with seed s is seeded with `s * num_envs + j` (envpool accepts one
seed per environment), so a run meets the same games alone and inside any grid.

Reset: envpool's XLA interface has only send/recv, so `reset` (run once, in the trainer's `init`)
resets every emulator through a host callback and receives the first frames with the XLA recv; the
returned handle orders the two. Calling it again resets all the pool's games.

Episode boundaries: envpool resets an environment on the step *after* it ends (a life for learning,
or the whole game); that step ignores the action and returns the reset frame, so it is marked
`transition_valid=False`. Learning sees episodic lives and clipped rewards; the reported
`episode_return` is the unclipped score of the whole game (all lives), `episode_length` envpool's
own count of steps in that game.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from purejaxspi.envs.base import BatchedEnv, EnvSpec, LocalRuns, Timestep
from purejaxspi.envs.config import ENVPOOL_INTERFACES
from purejaxspi.host import host_available_bytes

# The paper's Atari preprocessing (envpool's defaults give 84x84 grey, 4 stacked frames, frame-skip 4,
# fire on reset and the 27,000-step (108k-frame) time limit).
DETERMINISTIC = {"episodic_life": True, "reward_clip": True, "noop_max": 30, "repeat_action_probability": 0.0}
# `--stochastic`: the paper's stochastic ALE (sticky actions and longer random no-op starts).
STOCHASTIC = {**DETERMINISTIC, "noop_max": 60, "repeat_action_probability": 0.3}


@functools.cache
def atari_ids() -> tuple[str, ...]:
    """Every Atari id envpool registers (`Breakout-v5`, ...), read from its ROM folder.

    Listing the ROMs avoids importing envpool (seconds) just to validate an env id; the names follow
    envpool's rule (`space_invaders.bin` -> `SpaceInvaders-v5`), which tests check against its registry.
    """
    spec = importlib.util.find_spec("envpool_assets")
    roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    for root in roots:
        rom_dir = os.path.join(root, "atari", "roms")
        if os.path.isdir(rom_dir):
            games = sorted(f.removesuffix(".bin") for f in os.listdir(rom_dir) if f.endswith(".bin"))
            return tuple("".join(part.capitalize() for part in g.split("_")) + "-v5" for g in games)
    try:
        from envpool.registration import registry
    except ImportError:  # envpool not installed: the pure-JAX envs still work
        return ()
    return tuple(sorted(k for k, v in registry.specs.items() if v[0] == "envpool.atari"))


def env_seeds(run_seeds: tuple[int, ...], num_envs: int) -> list[int]:
    """One seed per pool environment: run r's env j gets `run_seeds[r] * num_envs + j`."""
    return [int(s) * num_envs + j for s in run_seeds for j in range(num_envs)]


def check_seeds(run_seeds: tuple[int, ...], num_envs: int) -> None:
    """envpool takes int32 seeds: refuse runs whose env seeds overflow (ConfigError, one line)."""
    from purejaxspi.errors import ConfigError

    if run_seeds and (max(run_seeds) + 1) * num_envs > 2**31:
        raise ConfigError(
            f"seed {max(run_seeds)} is too large: Atari env seeds (seed * num_envs + j) must fit in int32",
            setting="seed",
        )


# Host memory one Atari environment of a pool takes (emulator, frame stack, buffers): 1.2-1.3 MiB measured
# for Breakout and Pong with envpool 1.2.5; the guard counts this much.
POOL_BYTES_PER_ENV = 3 * 2**19


def check_pool_memory(total_envs: int) -> None:
    """Refuse pools larger than the host's free memory (ResourceError, one line) before envpool allocates them."""
    from purejaxspi.errors import ResourceError

    need, free = total_envs * POOL_BYTES_PER_ENV, host_available_bytes()
    if free is not None and need > free:
        raise ResourceError(
            f"{total_envs:,} Atari environments need about {need / 2**30:.1f} GiB of host memory but "
            f"{free / 2**30:.1f} GiB is free; use fewer --num-envs or runs"
        )


def pool_threads(pool_envs: int) -> int:
    """The threads a pool of `pool_envs` steps with: make_pool leaves num_threads at 0, for which
    envpool takes min(batch size, the host's hardware threads) (envpool/core/async_envpool.h)."""
    return min(pool_envs, os.cpu_count() or 1)


def make_pool(
    env_id: str,
    run_seeds: tuple[int, ...],
    num_envs: int,
    stochastic: bool = False,
    reward_clip: bool = True,
    episodic_life: bool = True,
):
    """The host-side envpool pool of `len(run_seeds) * num_envs` Atari environments (sync mode)."""
    import envpool

    seeds = env_seeds(run_seeds, num_envs)
    options = {
        **(STOCHASTIC if stochastic else DETERMINISTIC),
        "reward_clip": reward_clip,
        "episodic_life": episodic_life,
    }
    return envpool.make(env_id, env_type="gymnasium", num_envs=len(seeds), batch_size=len(seeds), seed=seeds, **options)


class PoolStep(NamedTuple):
    """What the pool hands back for each environment (leading axis: envs)."""

    obs: jax.Array  # [84, 84, 4] uint8, channels last
    reward: jax.Array  # clipped, for learning
    raw_reward: jax.Array  # the game's score change
    terminated: jax.Array  # a life lost or the game over (episodic life)
    truncated: jax.Array  # the time limit
    game_over: jax.Array
    elapsed_step: jax.Array  # steps in the current game (envpool's count)


class EnvpoolState(NamedTuple):
    handle: jax.Array  # the pool's handle bytes; the same in every run
    running_return: jax.Array  # [N] unclipped score of the game so far
    resetting: jax.Array  # [N] the last step ended a life or game: this step is envpool's reset


def _pool_step(recv_output) -> PoolStep:
    obs, reward, terminated, truncated, info = recv_output
    return PoolStep(
        obs=jnp.transpose(obs, (0, 2, 3, 1)),
        reward=reward.astype(jnp.float32),
        raw_reward=info["reward"].astype(jnp.float32),
        terminated=terminated,
        truncated=truncated,
        game_over=info["terminated"].astype(bool),
        elapsed_step=info["elapsed_step"].astype(jnp.int32),
    )


def pool_calls(pool):
    """`reset()` and `step(handle, action [B])` of one pool of B environments, as traceable calls."""
    handle0, recv, send, _ = pool.xla()
    handle_shape = jax.ShapeDtypeStruct(handle0.shape, handle0.dtype)

    def host_reset():
        # Once per training program (in `init`), not on the hot path: reset every env on the host;
        # the frames come back through the XLA recv below, ordered after this by the handle.
        pool.async_reset()
        return handle0

    def reset():
        handle = io_callback(host_reset, handle_shape)
        handle, out = recv(handle)
        return handle, _pool_step(out)

    def step(handle, action):
        handle, out = recv(send(handle, action.astype(jnp.int32)))
        return handle, _pool_step(out)

    return reset, step


# The fields of envpool's info that the env reads, and their dtypes as the pool hands them back.
INFO_FIELDS = {"reward": np.float32, "terminated": np.int32, "elapsed_step": np.int32}


def callback_calls(pool):
    """`reset()` and `step(handle, action [B])` of one pool through its Python `send` / `recv`, one host
    round trip a step (as envpool's XLA handler makes on an accelerator anyway). The handle is a
    counter threaded through the calls, so each waits for the one before it."""
    num_envs = pool.config["num_envs"]
    space = pool.observation_space
    outputs = (
        jax.ShapeDtypeStruct((), np.int32),
        (
            jax.ShapeDtypeStruct((num_envs, *space.shape), space.dtype),
            jax.ShapeDtypeStruct((num_envs,), np.float32),
            jax.ShapeDtypeStruct((num_envs,), np.bool_),
            jax.ShapeDtypeStruct((num_envs,), np.bool_),
            {name: jax.ShapeDtypeStruct((num_envs,), dtype) for name, dtype in INFO_FIELDS.items()},
        ),
    )

    def received(handle):
        obs, reward, terminated, truncated, info = pool.recv()
        info = {name: np.asarray(info[name], dtype) for name, dtype in INFO_FIELDS.items()}
        arrays = (np.asarray(obs), np.asarray(reward, np.float32), np.asarray(terminated, bool))
        return np.int32(handle + 1), (*arrays, np.asarray(truncated, bool), info)

    def host_reset():
        pool.async_reset()
        return received(0)

    def host_step(handle, action):
        pool.send(np.asarray(action, np.int32))
        return received(int(handle))

    def reset():
        handle, out = io_callback(host_reset, outputs)
        return handle, _pool_step(out)

    def step(handle, action):
        handle, out = io_callback(host_step, outputs, handle, action.astype(jnp.int32))
        return handle, _pool_step(out)

    return reset, step


def resolve_interface(interface: str, platform: str | None = None) -> str:
    """The pool's interface for "auto": envpool's XLA step on a CPU, where it is tested; the Python
    callback elsewhere, until the XLA step is verified there (envpool's GPU handler aborted with recent
    jax upstream). Raises ConfigError for an unknown name."""
    if interface not in ENVPOOL_INTERFACES:
        from purejaxspi.errors import ConfigError

        raise ConfigError(
            f"unknown envpool interface {interface!r}; choose one of {', '.join(ENVPOOL_INTERFACES)}",
            setting="envpool_interface",
        )
    if interface != "auto":
        return interface
    return "xla" if (platform or jax.default_backend()) == "cpu" else "callback"


def on_this_device(calls: dict[int, tuple], which: int, axis_name: str | None, axis_size: int):
    """Call number `which` of the pool of the device running the program.

    The program is one SPMD program for every device, and each envpool call names its own pool; so
    with several devices the call branches on the device's index along `axis_name` (inside
    `shard_map`). Branches for other processes' devices reuse a local pool and never run.
    """
    if axis_size == 1:
        return next(iter(calls.values()))[which]
    fallback = next(iter(calls.values()))
    branches = [calls.get(p, fallback)[which] for p in range(axis_size)]

    def call(*args):
        return jax.lax.switch(jax.lax.axis_index(axis_name), branches, *args)

    return call


def refuse_unbatched(num_runs: int) -> None:
    """Unbatched, one run's actions would drive every run's environments: fail when such a call runs.
    (custom_vmap traces this path for its shapes even under vmap, so it cannot refuse at trace time.)"""
    if num_runs == 1:
        return

    def refuse():
        from purejaxspi.errors import ConfigError

        raise ConfigError(
            f"this Atari env's pool serves {num_runs} runs: map the program over them with "
            f"jax.vmap (pjs.make_trainer does), or make the env for one run"
        )

    io_callback(refuse, None, ordered=True)


def pool_functions(
    pools: dict[int, object],
    num_runs: int,
    num_envs: int,
    axis_name: str | None = None,
    axis_size: int = 1,
    interface: str = "xla",
):
    """`reset_pool(key)` and `step_pool(handle, action)` for one run, batched over runs by custom_vmap.

    `pools` maps a device's index along `axis_name` to the pool of its `num_runs` runs (one entry,
    index 0, without sharding). Called under vmap over those runs, each call reaches the device's
    pool once with all num_runs * N environments. Called without vmap, the pool must serve one run
    (ConfigError otherwise: one run's actions cannot drive the others' environments).
    """
    make_calls = callback_calls if interface == "callback" else pool_calls
    calls = {position: make_calls(pool) for position, pool in pools.items()}
    flat_reset = on_this_device(calls, 0, axis_name, axis_size)
    flat_step = on_this_device(calls, 1, axis_name, axis_size)

    def per_run(axis_size, outputs):
        if axis_size != num_runs:
            raise ValueError(f"this envpool pool serves {num_runs} runs but is vmapped over {axis_size}")
        handle, step = outputs
        step = jax.tree.map(lambda x: x.reshape((axis_size, num_envs) + x.shape[1:]), step)
        return (handle, step), (False, jax.tree.map(lambda _: True, step))

    def first_run(outputs):
        handle, step = outputs
        return handle, jax.tree.map(lambda x: x[:num_envs], step)

    @jax.custom_batching.custom_vmap
    def reset_pool(key):
        del key  # envpool seeds its environments when the pool is made
        refuse_unbatched(num_runs)
        return first_run(flat_reset())

    @reset_pool.def_vmap
    def _reset_rule(axis_size, in_batched, key):
        del in_batched, key
        return per_run(axis_size, flat_reset())

    @jax.custom_batching.custom_vmap
    def step_pool(handle, action):
        refuse_unbatched(num_runs)
        return first_run(flat_step(handle, action))

    @step_pool.def_vmap
    def _step_rule(axis_size, in_batched, handle, action):
        handle_batched, action_batched = in_batched
        if handle_batched:
            handle = handle[0]  # every run carries the same handle
        if not action_batched:
            action = jnp.broadcast_to(action, (axis_size,) + action.shape)
        return per_run(axis_size, flat_step(handle, action.reshape(-1)))

    return reset_pool, step_pool


def after_step(state: EnvpoolState, handle, out: PoolStep, action_mask) -> tuple[EnvpoolState, Timestep]:
    """The pool's step as the program sees it: learning's episode ends at a lost life (episodic life),
    the reported one at the game's end; the step after either is envpool's reset, no real transition."""
    episode_done = out.game_over | out.truncated
    episode_return = state.running_return + out.raw_reward
    terminated = out.terminated & ~out.truncated
    timestep = Timestep(
        obs=out.obs,
        action_mask=action_mask,
        reward=out.reward,
        terminated=terminated,
        truncated=out.truncated,
        next_obs=out.obs,
        transition_valid=~state.resetting,
        episode_done=episode_done,
        episode_return=episode_return,
        episode_length=out.elapsed_step,
    )
    new_state = EnvpoolState(
        handle=handle,
        running_return=jnp.where(episode_done, 0.0, episode_return),
        resetting=terminated | out.truncated,
    )
    return new_state, timestep


def make(
    env_id: str,
    num_envs: int,
    run_seeds: tuple[int, ...] = (0,),
    local_runs: LocalRuns | None = None,
    stochastic: bool = False,
    reward_clip: bool = True,
    episodic_life: bool = True,
    interface: str = "auto",
) -> BatchedEnv:
    """A BatchedEnv of `num_envs` Atari games per run, for the grid whose runs have `run_seeds` (in order).

    With `local_runs` (a grid sharded over devices) each of this process's devices gets a pool of its
    own runs' environments, and the env serves the program `shard_map`ped over that layout.
    """
    if local_runs is None:
        local_runs = LocalRuns(None, 1, (0,), (tuple(range(len(run_seeds))),))
    check_pool_memory(num_envs * sum(len(runs) for runs in local_runs.runs))
    pools = {
        position: make_pool(env_id, tuple(run_seeds[r] for r in runs), num_envs, stochastic, reward_clip, episodic_life)
        for position, runs in zip(local_runs.positions, local_runs.runs)
    }
    runs_per_pool = len(local_runs.runs[0])
    num_actions = int(next(iter(pools.values())).action_space.n)
    spec = EnvSpec(env_id, "envpool", "atari", (84, 84, 4), num_actions, steps_all_runs=True, resets_late=True)
    interface = resolve_interface(interface)
    reset_pool, step_pool = pool_functions(
        pools, runs_per_pool, num_envs, local_runs.axis_name, local_runs.axis_size, interface
    )
    all_legal = jnp.ones((num_envs, num_actions), bool)

    def reset(key):
        handle, out = reset_pool(key)
        state = EnvpoolState(handle, jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), bool))
        return state, out.obs, all_legal

    def step(state: EnvpoolState, action, key):
        del key  # the pool's environments carry their own seeded randomness
        handle, out = step_pool(state.handle, action)
        return after_step(state, handle, out, all_legal)

    return BatchedEnv(spec=spec, num_envs=num_envs, reset=reset, step=step)
