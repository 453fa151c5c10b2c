"""Several processes, one training program: JAX's distributed runtime, joined from the usual variables.

Every process runs the same command; `jax.distributed.initialize` connects them through a coordinator
(JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a cluster JAX detects on its
own, such as SLURM). Their devices then form one mesh and the grid's runs spread over all of them.
Process 0 gathers every run's metrics and writes the run directory; all processes write their shards of
each checkpoint into it, so it must lie on a filesystem they share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from purejaxspi.errors import DistributedError

ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def requested(flag: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Join a group of processes: asked for by the flag, or implied by the coordinator's variables."""
    return flag or any(environ.get(name) for name in ENV_VARS)


def settings(environ: Mapping[str, str] = os.environ) -> dict:
    """initialize()'s arguments from the variables; those unset are left to JAX's cluster detection."""
    kwargs: dict[str, Any] = {}
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        kwargs["coordinator_address"] = environ["JAX_COORDINATOR_ADDRESS"]
    for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        value = environ.get(name)
        if value:
            if not value.isdigit():
                raise DistributedError(f"{name} must be a non-negative integer, got {value!r}")
            kwargs[key] = int(value)
    if "num_processes" in kwargs and "process_id" in kwargs and kwargs["process_id"] >= kwargs["num_processes"]:
        raise DistributedError(
            f"JAX_PROCESS_ID {kwargs['process_id']} is not below JAX_NUM_PROCESSES {kwargs['num_processes']}"
        )
    return kwargs


def initialize(environ: Mapping[str, str] = os.environ) -> None:
    """Join the group (before anything else touches a JAX backend). CPU processes talk through gloo."""
    kwargs = settings(environ)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:200]
        raise DistributedError(f"cannot join the processes ({', '.join(ENV_VARS)}): {detail}") from None


def process_count() -> int:
    return jax.process_count()


def is_writer() -> bool:
    """Whether this process writes the run directory's files (process 0 does; the others only checkpoint)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (a no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(value: int) -> int:
    """Process 0's `value` on every process (a decision that must not differ between processes)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))
