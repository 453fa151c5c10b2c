"""The host's devices as JAX sees them: set before JAX starts its backends, and said in one line
where a backend cannot start."""

from __future__ import annotations

import glob
import importlib.util
import os

from purejaxspi.errors import DeviceError


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


def backend_failure(error: BaseException) -> str:
    """One line for a backend jax could not start: what was asked for, what jax reported, what is
    missing for a GPU, and the fix. jax's own report can be a bare AssertionError (JAX_PLATFORMS=cuda
    where no NVIDIA GPU is visible), so the line names the facts it leaves out."""
    asked = os.environ.get("JAX_PLATFORMS", "").strip()
    reported = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    facts = []
    if any(p in asked for p in ("cuda", "gpu")):
        if not glob.glob("/dev/nvidia[0-9]*"):
            facts.append("no NVIDIA GPU is visible here")
        if not any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
            facts.append("jax's CUDA plugin is not installed")
    wanted = f"JAX_PLATFORMS={asked} asks for {asked}, which" if asked else "jax's default backend"
    return (
        f"{wanted} could not start (jax: {reported}"
        + "".join(f"; {fact}" for fact in facts)
        + "): install the GPU build with `uv sync --extra cuda`, check the driver with `nvidia-smi`, "
        "or unset JAX_PLATFORMS to run on the CPU"
    )


def available_devices() -> list:
    """Every device jax offers; DeviceError in one line (`backend_failure`) where its backend cannot start."""
    import jax

    try:
        return jax.devices()
    except Exception as e:  # jax raises RuntimeError, or AssertionError where no backend started at all
        raise DeviceError(backend_failure(e)) from None


def backend_error() -> DeviceError | None:
    """The DeviceError of a backend that cannot start, or None where jax has its devices: what the
    command line asks after an unexpected error, to say it in one line."""
    try:
        available_devices()
    except DeviceError as e:
        return e
    return None
