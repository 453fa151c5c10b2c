"""The host's devices as JAX sees them, set before JAX starts its backends."""

from __future__ import annotations

import os


def use_every_core() -> None:
    """One XLA CPU device per core, so a grid's runs spread over the cores (one XLA CPU device runs an
    iteration's many small ops on one thread; measured faster in benchmarks/README.md). Takes effect
    only before JAX starts its backends; the user's own XLA_FLAGS device count wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores}".strip()
