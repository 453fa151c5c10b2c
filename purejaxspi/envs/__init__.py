"""Environment registry: every id by backend, and `make_env(id, num_envs, run_seeds)`."""

from __future__ import annotations

import difflib

from purejaxspi.envs.base import BatchedEnv, EnvSpec, Timestep
from purejaxspi.envs.config import EnvConfig
from purejaxspi.envs.confounding import CONFOUNDING_IDS
from purejaxspi.envs.custom import EnvDef, registered, registered_ids
from purejaxspi.envs.envpool import atari_ids
from purejaxspi.envs.gymnax import GYMNAX_IDS
from purejaxspi.envs.pgx import PGX_IDS
from purejaxspi.errors import UnknownEnvError


def env_ids_by_backend() -> dict[str, tuple[str, ...]]:
    """Every id by backend; "custom" holds the envs registered in this process (`register_env`)."""
    builtin = {"gymnax": GYMNAX_IDS, "pgx": PGX_IDS, "grid": CONFOUNDING_IDS, "envpool": atari_ids()}
    return {**builtin, "custom": registered_ids()} if registered_ids() else builtin


def register_env(env: EnvDef) -> str:
    """Make a user's env (a pjs.EnvDef) usable under its id wherever an env id is accepted; returns the id."""
    from purejaxspi.envs import custom

    builtin = tuple(i for backend, ids in env_ids_by_backend().items() if backend != "custom" for i in ids)
    return custom.register_env(env, builtin)


def env_id_of(env: str | EnvDef) -> str:
    """An env id, registering an EnvDef given in its place."""
    return register_env(env) if isinstance(env, EnvDef) else env


def all_env_ids() -> tuple[str, ...]:
    return tuple(i for ids in env_ids_by_backend().values() for i in ids)


def check_env_id(env_id: str) -> str:
    """Return the backend of `env_id`, or raise UnknownEnvError naming close matches."""
    for backend, ids in env_ids_by_backend().items():
        if env_id in ids:
            return backend
    if env_id.endswith("-v5") and not atari_ids():
        raise UnknownEnvError(
            f"{env_id!r} looks like an Atari id, and Atari needs envpool, which is not installed here"
        )
    close = difflib.get_close_matches(env_id, all_env_ids(), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `purejaxspi envs` for the list"
    raise UnknownEnvError(f"unknown env id {env_id!r}{hint}")


def make_env(
    env_id: str,
    num_envs: int,
    run_seeds: tuple[int, ...] = (0,),
    local_runs=None,
    **options,
) -> BatchedEnv:
    """`num_envs` environments per run. The pure-JAX backends seed from each run's key and ignore
    `run_seeds` and `local_runs`; a backend whose spec `steps_all_runs` (envpool's Atari) builds one
    pool for the grid whose runs have `run_seeds`, in run order (with `local_runs`, a base.LocalRuns, one
    pool per device of this process for that device's runs). `options` are the env part's backend
    options (envs.config.EnvConfig.options: Atari's sticky actions, reward clipping, episodic lives)."""
    env_id = env_id_of(env_id)
    backend = check_env_id(env_id)
    if backend == "custom":
        return registered(env_id).make(num_envs)
    if backend == "envpool":
        from purejaxspi.envs import envpool

        return envpool.make(env_id, num_envs, tuple(run_seeds), local_runs, **options)
    if backend == "gymnax":
        from purejaxspi.envs import gymnax

        return gymnax.make(env_id, num_envs)
    if backend == "grid":
        from purejaxspi.envs import confounding

        return confounding.make(env_id, num_envs)
    from purejaxspi.envs import pgx

    return pgx.make(env_id, num_envs)


def env_for(
    env: EnvConfig, num_envs: int | None = None, run_seeds: tuple[int, ...] = (0,), local_runs=None
) -> BatchedEnv:
    """The envs of a config's env part, `num_envs` per run (default the part's)."""
    count = env.num_envs if num_envs is None else num_envs
    return make_env(env.env_id, count, run_seeds, local_runs, **env.options())


__all__ = [
    "BatchedEnv",
    "EnvSpec",
    "Timestep",
    "EnvDef",
    "register_env",
    "make_env",
    "env_for",
    "EnvConfig",
    "check_env_id",
    "all_env_ids",
    "env_ids_by_backend",
    "UnknownEnvError",
]


# The backends whose envs are host-side pools stepped once for all runs (EnvSpec.steps_all_runs).
POOLED_BACKENDS = ("envpool",)


def steps_all_runs(env_id: str) -> bool:
    """EnvSpec.steps_all_runs of `env_id`, known without building the env."""
    return check_env_id(env_id) in POOLED_BACKENDS


def check_run_seeds(env_id: str, run_seeds: tuple[int, ...], num_envs: int) -> None:
    """Refuse run seeds the env's backend cannot take (ConfigError), before anything is built."""
    if check_env_id(env_id) == "envpool":
        from purejaxspi.envs.envpool import check_seeds

        check_seeds(run_seeds, num_envs)


def family_of(env_id: str) -> str:
    """The observation family of an env id (vector, minatar, atari), without building the env."""
    backend = check_env_id(env_id)
    if backend == "custom":
        return registered(env_id).family
    if backend == "envpool":
        return "atari"
    if backend == "pgx":
        return "minatar"
    if backend == "grid":
        from purejaxspi.envs.confounding import RENDER

        return RENDER[env_id].family
    from purejaxspi.envs.gymnax import family

    return family(env_id)
