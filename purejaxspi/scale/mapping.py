"""How one run's program maps over the run axis (seeds x hyperparameter settings), inside one program.

"vmap" batches every op over runs; "map" runs them one after another (lax.map); "chunked" vmaps
groups of RUN_CHUNK runs, one group after another. All give the same results up to float rounding;
only the speed differs, and `auto` picks the one measured fastest for the platform and env family.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

from purejaxspi.algo.config import Config
from purejaxspi.algo.train import RunProgram, make_train, train_steps
from purejaxspi.envs.base import BatchedEnv
from purejaxspi.errors import ConfigError

RUN_MAPPINGS = ("auto", "vmap", "map", "chunked")
RUN_CHUNK = 4

# Measured on the 2-core CPU with 16 runs (benchmarks/README.md): vmap wins for the small MLPs of
# vector envs, but batching the conv trunk and world model over runs loses to sequential runs for
# image envs, where lax.map matches them. Accelerators batch runs best with plain vmap.
AUTO_RUN_MAPPING = {("cpu", "vector"): "vmap", ("cpu", "minatar"): "map"}


def resolve_run_mapping(
    run_mapping: str, family: str, steps_all_runs: bool = False, platform: str | None = None
) -> str:
    """The concrete mapping for "auto": the one measured fastest for the platform and observation family.

    An env whose step `steps_all_runs` (one pool for the whole grid, or for a device's slice of it)
    must see every run batched at once. Raises ConfigError.
    """
    if run_mapping not in RUN_MAPPINGS:
        raise ConfigError(
            f"unknown run mapping {run_mapping!r}; choose one of {', '.join(RUN_MAPPINGS)}", setting="run_mapping"
        )
    if steps_all_runs:
        if run_mapping not in ("auto", "vmap"):
            raise ConfigError(
                f"this env steps all runs at once and needs run mapping vmap, not {run_mapping!r}",
                setting="run_mapping",
            )
        return "vmap"
    if run_mapping != "auto":
        return run_mapping
    platform = platform or jax.default_backend()
    return AUTO_RUN_MAPPING.get((platform, family), "vmap")


def map_over_runs(fn: Callable, states, hparams, mapping: str):
    """fn(state, hp) applied to every run of states [R], hparams [R] by `mapping` ("vmap", "map", "chunked")."""
    if mapping == "vmap":
        return jax.vmap(fn)(states, hparams)
    batch_size = RUN_CHUNK if mapping == "chunked" else None
    return jax.lax.map(lambda run: fn(*run), (states, hparams), batch_size=batch_size)


def map_runs(program: RunProgram, env: BatchedEnv, run_mapping: str = "auto") -> RunProgram:
    """`program` over a run axis by `run_mapping` (RUN_MAPPINGS): init(keys [R], hparams [R]), the
    iteration over every run, and the one loop over that iteration (metrics [R, capacity]); init is
    always vmapped (it is cheap)."""
    mapping = resolve_run_mapping(run_mapping, env.spec.family, env.spec.steps_all_runs)

    def iteration(states, hparams):
        return map_over_runs(program.iteration, states, hparams, mapping)

    steps = functools.partial(train_steps, iteration)
    return program._replace(init=jax.vmap(program.init), iteration=iteration, steps=steps)


def make_trainer(config: Config, env: BatchedEnv, run_mapping: str = "auto") -> RunProgram:
    """The training program of `config` on `env` for a whole grid of runs; `run_mapping` only changes its speed."""
    return map_runs(make_train(config, env), env, run_mapping)
