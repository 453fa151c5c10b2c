"""Environment registry: every id by backend, and `make_env(id, num_envs, run_seeds)`."""

from __future__ import annotations

import difflib

from purejaxspi.envs.base import BatchedEnv, EnvSpec, Timestep
from purejaxspi.envs.confounding import CONFOUNDING_IDS
from purejaxspi.envs.envpool import atari_ids
from purejaxspi.envs.gymnax import GYMNAX_IDS
from purejaxspi.envs.pgx import PGX_IDS
from purejaxspi.errors import UnknownEnvError


def env_ids_by_backend() -> dict[str, tuple[str, ...]]:
    return {"gymnax": GYMNAX_IDS, "pgx": PGX_IDS, "grid": CONFOUNDING_IDS, "envpool": atari_ids()}


def all_env_ids() -> tuple[str, ...]:
    return tuple(i for ids in env_ids_by_backend().values() for i in ids)




def check_env_id(env_id: str) -> str:
    """Return the backend of `env_id`, or raise UnknownEnvError naming close matches."""
    for backend, ids in env_ids_by_backend().items():
        if env_id in ids:
            return backend
    close = difflib.get_close_matches(env_id, all_env_ids(), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `purejaxspi envs` for the list"
    raise UnknownEnvError(f"unknown env id {env_id!r}{hint}")


def make_env(env_id: str, num_envs: int, run_seeds: tuple[int, ...] = (0,), stochastic: bool = False,
             local_runs=None) -> BatchedEnv:
    """`num_envs` environments per run. The pure-JAX backends seed from each run's key and ignore
    `run_seeds` and `local_runs`; envpool (Atari) builds one pool for the grid whose runs have
    `run_seeds`, in run order (with `local_runs`, a base.LocalRuns, one pool per device of this
    process for that device's runs), and `stochastic` selects the sticky-action ALE."""
    backend = check_env_id(env_id)
    if backend == "envpool":
        from purejaxspi.envs import envpool

        return envpool.make(env_id, num_envs, tuple(run_seeds), stochastic, local_runs)
    if backend == "gymnax":
        from purejaxspi.envs import gymnax

        return gymnax.make(env_id, num_envs)
    if backend == "grid":
        from purejaxspi.envs import confounding

        return confounding.make(env_id, num_envs)
    from purejaxspi.envs import pgx

    return pgx.make(env_id, num_envs)


__all__ = ["BatchedEnv", "EnvSpec", "Timestep", "make_env", "check_env_id", "all_env_ids", "env_ids_by_backend", "UnknownEnvError"]


# What a backend's envs tell the program and the host loop (EnvSpec's trait fields): envpool keeps its
# emulators outside JAX and steps every run of the grid in one pool.
BACKEND_TRAITS = {"envpool": {"external_state": True, "vmap_only": True}}


def traits(env_id: str) -> dict[str, bool]:
    """The EnvSpec trait fields of `env_id`, known without building the env."""
    return {"external_state": False, "vmap_only": False, **BACKEND_TRAITS.get(check_env_id(env_id), {})}


def check_run_seeds(env_id: str, run_seeds: tuple[int, ...], num_envs: int) -> None:
    """Refuse run seeds the env's backend cannot take (ConfigError), before anything is built."""
    if check_env_id(env_id) == "envpool":
        from purejaxspi.envs.envpool import check_seeds

        check_seeds(run_seeds, num_envs)


def family_of(env_id: str) -> str:
    """The observation family of an env id (vector, minatar, atari), without building the env."""
    backend = check_env_id(env_id)
    if backend == "envpool":
        return "atari"
    if backend == "pgx":
        return "minatar"
    if backend == "grid":
        from purejaxspi.envs.confounding import RENDER

        return RENDER[env_id].family
    from purejaxspi.envs.gymnax import family

    return family(env_id)
