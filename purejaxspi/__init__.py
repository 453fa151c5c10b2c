"""purejaxspi: Deep SPI, PPO and DeepMDP as one jitted JAX training program, mapped over a grid of runs.

The public API, for notebooks and scripts (the command line is a thin layer over it):

    import purejaxspi as pjs

    config = pjs.make_config("CartPole-v1", "deepspi", total_timesteps=20_480)   # (family, algo) preset + overrides
    grid = pjs.make_grid(config, num_seeds=4, learning_rate=[1e-3, 2.5e-3])      # 2 settings x 4 seeds
    summary = pjs.train(config, grid, "runs/cartpole")                           # the whole run lifecycle
    agents = pjs.load_agents("runs/cartpole")        # every run's parameters, policy(obs, key), evaluate()

    env = pjs.make_env(config.env_id, config.env.num_envs)
    program = pjs.make_train(config, env)            # one run's pure functions: vmap / jit them yourself
    state, metrics = jax.jit(jax.vmap(program.train))(grid.keys(), grid.hparams())

Names are loaded on first use, so `import purejaxspi` stays cheap.
"""

from __future__ import annotations

import importlib

from purejaxspi.provenance import package_version

__version__ = package_version()  # declared once, in pyproject.toml

_EXPORTS = {
    # the algorithm: configuration and presets, one run's training program
    "Config": "purejaxspi.algo.config",
    "HParams": "purejaxspi.algo.config",
    "EnvConfig": "purejaxspi.envs.config",
    "PPOConfig": "purejaxspi.algo.ppo",
    "NetworkConfig": "purejaxspi.algo.networks",
    "WorldModelConfig": "purejaxspi.algo.world_model",
    "RunConfig": "purejaxspi.algo.config",
    "make_config": "purejaxspi.algo.config",
    "hparam_values": "purejaxspi.algo.config",
    "preset_hparams": "purejaxspi.algo.config",
    "preset_table": "purejaxspi.algo.config",
    "make_train": "purejaxspi.algo.train",
    "RunProgram": "purejaxspi.algo.train",
    "RunState": "purejaxspi.algo.train",
    # environments
    "make_env": "purejaxspi.envs",
    "all_env_ids": "purejaxspi.envs",
    "EnvDef": "purejaxspi.envs",
    "register_env": "purejaxspi.envs",
    "BatchedEnv": "purejaxspi.envs",
    "EnvSpec": "purejaxspi.envs",
    "Timestep": "purejaxspi.envs",
    # scale-out: the grid of runs and the program mapped over it
    "make_grid": "purejaxspi.scale.grid",
    "RunGrid": "purejaxspi.scale.grid",
    "make_trainer": "purejaxspi.scale.mapping",
    # the run lifecycle
    "train": "purejaxspi.lifecycle.loop",
    "RunOptions": "purejaxspi.lifecycle.loop",
    "Progress": "purejaxspi.lifecycle.loop",
    "load_agents": "purejaxspi.lifecycle.agents",
    "TrainedAgents": "purejaxspi.lifecycle.agents",
    # errors
    "UserError": "purejaxspi.errors",
    "ConfigError": "purejaxspi.errors",
    "UnknownEnvError": "purejaxspi.errors",
    "RunDirError": "purejaxspi.errors",
    "CheckpointError": "purejaxspi.errors",
    "DeviceError": "purejaxspi.errors",
    "NonFiniteLossError": "purejaxspi.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'purejaxspi' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
