"""The run axis over devices and hosts: a one-axis mesh named "runs", each device training its slice of runs.

Runs never exchange data, so the training program is `shard_map`ped over the mesh with no collective
inside an iteration; within its slice each device maps the runs as on one device (vmap, lax.map or
chunked). The host gathers metrics, and checkpoints the state, only between chunks.

A grid whose size the device count does not divide is padded with copies of its last run (same seed,
same hyperparameters, so the copies train exactly like it); the copies are dropped from every metrics
row, summary and checkpoint. A checkpoint therefore holds the grid's R runs whatever the device count,
and a run may resume on another number of devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxspi.envs.base import LocalRuns
from purejaxspi.errors import DeviceError
from purejaxspi.scale.devices import available_devices

RUN_AXIS = "runs"


def padded_size(num_runs: int, num_devices: int) -> int:
    """The smallest multiple of `num_devices` that holds `num_runs` runs."""
    return -(-num_runs // num_devices) * num_devices


def pad_index(num_runs: int, num_devices: int) -> np.ndarray:
    """For each padded slot, the real run it trains: 0 .. R-1, then R-1 repeated."""
    return np.minimum(np.arange(padded_size(num_runs, num_devices)), num_runs - 1)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """`num_runs` runs over the devices of `mesh`, padded to `padded_runs`, `runs_per_device` each."""

    num_runs: int
    mesh: Mesh

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    @property
    def padded_runs(self) -> int:
        return padded_size(self.num_runs, self.num_devices)

    @property
    def runs_per_device(self) -> int:
        return self.padded_runs // self.num_devices

    @property
    def sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(RUN_AXIS))

    def shard(self, fn: Callable) -> Callable:
        """fn over [runs_per_device] leading axes -> the same over [padded_runs], one slice per device."""
        spec = PartitionSpec(RUN_AXIS)
        return jax.shard_map(fn, mesh=self.mesh, in_specs=spec, out_specs=spec, check_vma=False)

    def place(self, tree: Any) -> Any:
        """Host arrays [R, ...] -> global arrays [padded_runs, ...], each device holding its runs."""
        index = pad_index(self.num_runs, self.num_devices)

        def put(x):
            padded = np.asarray(x)[index]
            return jax.make_array_from_callback(padded.shape, self.sharding, lambda i: padded[i])

        return jax.tree.map(put, tree)

    def gather(self, tree: Any) -> Any:
        """Global arrays [padded_runs, ...] -> numpy [R, ...] on every process, padding dropped."""
        from jax.experimental import multihost_utils

        def get(x):
            if getattr(x, "is_fully_addressable", True):
                return np.asarray(x)[: self.num_runs]
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))[: self.num_runs]

        return jax.tree.map(get, tree)

    def unpad(self, tree: Any) -> Any:
        """Global arrays [padded_runs, ...] -> [R, ...] still on the devices (what a checkpoint holds).

        Without padding that is the state as it lies; with padding R runs no longer split evenly, so
        every device holds all R for the moment of the save.
        """
        if self.padded_runs == self.num_runs:
            return tree
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return jax.jit(lambda t: jax.tree.map(lambda x: x[: self.num_runs], t), out_shardings=replicated)(tree)

    def local_runs(self) -> LocalRuns:
        """The runs of each of this process's devices, in mesh order."""
        index = pad_index(self.num_runs, self.num_devices)
        k = self.runs_per_device
        positions = tuple(i for i, d in enumerate(self.mesh.devices.flat) if d.process_index == jax.process_index())
        runs = tuple(tuple(int(r) for r in index[p * k : (p + 1) * k]) for p in positions)
        return LocalRuns(RUN_AXIS, self.num_devices, positions, runs)


def make_layout(num_runs: int, num_devices: int | None = None) -> RunLayout:
    """The grid's runs over the first `num_devices` devices (default: every device of every process;
    for a single process on CPU devices, at most one device per run).

    Several processes (jax.distributed) must use all their devices: a device left out would leave its
    process with no runs.
    """
    devices = available_devices()
    if num_devices is None:
        # every device; on a CPU (one device per core) no more devices than runs, so none idles on padding
        alone = jax.process_count() == 1 and devices[0].platform == "cpu"
        num_devices = min(len(devices), num_runs) if alone else len(devices)
    if num_devices <= 0:
        raise DeviceError(f"--devices must be positive, got {num_devices}")
    if num_devices > len(devices):
        raise DeviceError(
            f"--devices {num_devices}: only {len(devices)} {jax.default_backend()} device(s) here"
            + (
                " (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N)"
                if devices[0].platform == "cpu"
                else ""
            )
        )
    if jax.process_count() > 1 and num_devices != len(devices):
        raise DeviceError(
            f"--devices {num_devices}: with {jax.process_count()} processes every one of the {len(devices)} "
            "devices takes runs"
        )
    return RunLayout(num_runs, Mesh(np.asarray(devices[:num_devices]), (RUN_AXIS,)))


def shard(program, layout: RunLayout):
    """A program mapped over runs (`scale.mapping.map_runs`) whose functions take the layout's padded run
    axis, each device training its slice; inside a slice the program's own run mapping (vmap, lax.map,
    chunked) applies to the local runs. Arguments come from `layout.place`; jit the functions as usual."""

    def steps(states, hparams, count, capacity: int):
        return layout.shard(lambda s, h: program.steps(s, h, count, capacity))(states, hparams)

    iteration = layout.shard(program.iteration)
    return program._replace(init=layout.shard(program.init), iteration=iteration, steps=steps)
