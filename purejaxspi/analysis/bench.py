"""Throughput of the training program: env steps per second for grids of runs, timed on the host.

Each program is compiled ahead of time (its compile time is reported), then called `repeats` times
from the same starting state, each call ending in `jax.block_until_ready`; the median call counts.
The programs of one grid size are called in turn, so they share the machine's load alike. Per grid
size R:
- the training program over R runs (its `steps`, the loop `train` runs, `iterations` iterations), sharded
  over each device count D asked for (the first D devices; R padded to a multiple of D, as `train`
  does; throughput counts the R real runs only);
- with `sequential`, the 1-run training program called for each of the R runs in turn;
- the env-only ceiling: the same env layer stepped with uniformly random legal actions, no network.

Each algo's row also carries the model's work (`analysis.work`): FLOPs per env step from XLA's cost
analysis, the FLOP/s achieved, and against ppo its FLOP ratio beside its time ratio.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxspi.algo.config import Config
from purejaxspi.algo.conv import resolve_conv
from purejaxspi.errors import ConfigError, RunDirError
from purejaxspi.lifecycle.guards import program_bytes
from purejaxspi.lifecycle.rundir import check_writable
from purejaxspi.scale.grid import RunGrid, grid_from_values
from purejaxspi.scale.sharding import RunLayout, make_layout, shard
from purejaxspi.settings import check_part, setting


@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled program, ready to time: `call()` runs it once to completion."""

    call: Callable[[], Any]
    env_steps: int  # env steps one call takes, all runs together
    compile_seconds: float
    program_bytes: int | None  # arguments + outputs + scratch of the compiled program, where reported
    env: Any = None  # kept alive with the program: envpool's compiled steps hold a raw handle to its pool


def compile_program(fn: Callable, calls: list[tuple], env_steps: int, env: Any = None) -> Program:
    """Compile `fn` ahead of time (timed); one call of the Program applies it to each argument tuple in turn."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*calls[0]).compile()
    compile_seconds = time.perf_counter() - start

    def call():
        for args in calls:
            jax.block_until_ready(compiled(*args))

    return Program(call, env_steps, compile_seconds, program_bytes(compiled), env)


def time_interleaved(programs: list[Program], repeats: int, on_call: Callable[[], Any] = lambda: None) -> list[float]:
    """Median seconds per call of each program, calling them in turn `repeats` times.

    Interleaving exposes every program to the same background load, so their ratios stay fair
    on a shared machine.
    """
    for program in programs:
        program.call()  # warm-up: the first call of a fresh executable pays one-off costs
    seconds: list[list[float]] = [[] for _ in programs]
    for _ in range(repeats):
        for i, program in enumerate(programs):
            start = time.perf_counter()
            program.call()
            seconds[i].append(time.perf_counter() - start)
            on_call()
    return [statistics.median(s) for s in seconds]


def random_rollout(env, num_steps: int) -> Callable:
    """keys [R] -> (summed rewards, summed returns of finished episodes, finished episodes), each [R]:
    `num_steps` steps of every run's envs under uniformly random legal actions."""

    def one_run(key):
        key, reset_key = jax.random.split(key)
        state, _, action_mask = env.reset(reset_key)

        def step(carry, _):
            state, action_mask, key = carry
            key, action_key, step_key = jax.random.split(key, 3)
            action = jax.random.categorical(action_key, jnp.where(action_mask, 0.0, -jnp.inf))
            state, ts = env.step(state, action, step_key)
            done = ts.episode_done.astype(jnp.float32)
            return (state, ts.action_mask, key), (ts.reward.sum(), jnp.sum(done * ts.episode_return), done.sum())

        _, sums = jax.lax.scan(step, (state, action_mask, key), None, num_steps)
        return tuple(x.sum() for x in sums)

    return jax.vmap(one_run)


def peak_host_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def peak_device_bytes() -> int | None:
    """The device allocator's peak, where the backend reports one (GPUs; not the CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else int(peak)


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """What to measure: every grid size x algo x run mapping x device count, `iterations` per timed call,
    `repeats` calls."""

    configs: tuple[Config, ...]  # one per algo, same env (each algo's own preset, or one shared settings)
    values: tuple[dict[str, list[float]], ...]  # per config: one value per hyperparameter
    num_runs: tuple[int, ...]
    iterations: int = 2
    repeats: int = 3
    sequential: bool = False
    env_only: bool = True
    run_mappings: tuple[str, ...] = ("auto",)
    first_seed: int = 0
    devices: tuple[int | None, ...] = (1,)  # None: train's default for the grid (scale.sharding.make_layout)
    model_flops: bool = True  # count each algo's FLOPs per env step (XLA cost analysis of the iteration's pieces)


# Settings of the config tree that the bench measures one row per value of (`--conv lax patches`).
BENCH_AXES = ("conv",)


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """Measure env steps per second of the training program for grids of runs (and sequential runs, env-only).

    Takes the train command's settings; unset values come from the env's preset.
    """

    env: str = setting("Breakout-MinAtar", "Environment id (`purejaxspi envs` lists them).")
    algos: tuple[str, ...] = setting(
        ("deepspi",),
        "One or more of deepspi, deepmdp, ppo (with ppo, each row reports its time per iteration vs ppo).",
        flag="algo",
    )
    settings: str | None = setting(None, "Whose preset fills every unset flag, for every algo (default: each's own).")
    num_runs: tuple[int, ...] = setting((1, 4, 16), "Grid sizes to measure (seeds 0 .. R-1).")
    sequential: bool = setting(False, "Also time the same runs trained one after another with the 1-run program.")
    iterations: int = setting(2, "Training iterations per timed call.", bound="positive")
    repeats: int = setting(3, "Timed calls per measurement; the median is reported.", bound="positive")
    run_mapping: tuple[str, ...] = setting(
        ("auto",),
        "How the program maps over runs, one or more of: auto (the measured best for the platform and env "
        "family), vmap, map, chunked.",
    )
    devices: tuple[int, ...] = setting(
        (),
        "Device counts to shard each grid over, e.g. 1 2 4 (default: every device); the first D devices take the runs.",
    )
    env_only: bool = setting(True, "Also measure the env-only ceiling (random actions through the same env layer).")
    model_flops: bool = setting(
        True, "Also count each algo's model FLOPs per env step (XLA's cost analysis) and the FLOP/s achieved."
    )
    json: Path | None = setting(None, "Write the rows to this JSON file.")

    def check(self, env_id: str) -> None:
        """Raise ConfigError (or DeviceError) for what cannot be measured here."""
        from purejaxspi.envs import family_of, steps_all_runs
        from purejaxspi.scale.mapping import resolve_run_mapping

        check_part(self)
        for name in ("algos", "num_runs", "run_mapping"):
            if not getattr(self, name):
                raise ConfigError(f"{name} needs at least one value", setting=name)
        for name in ("num_runs", "devices"):
            if any(count <= 0 for count in getattr(self, name)):
                raise ConfigError(f"{name} takes positive counts, got {list(getattr(self, name))}", setting=name)
        for mapping in self.run_mapping:
            resolve_run_mapping(mapping, family_of(env_id), steps_all_runs(env_id))
        for count in self.devices:
            make_layout(count, count)  # DeviceError when the machine has fewer
        if self.json is not None:
            check_writable(self.json, "--json")


def make_plan(options: BenchOptions, overrides: dict[str, Any]) -> BenchPlan:
    """The plan of measuring each algorithm with every value of each bench axis (`overrides` holds the
    axes' tuples and the other settings given), under `options`; every config takes its preset's
    hyperparameters."""
    from purejaxspi.algo.config import hparam_values, make_config

    options.check(options.env)
    axes = [overrides.pop(name, None) or (None,) for name in BENCH_AXES]
    configs, values = [], []
    for algo, *point in itertools.product(dict.fromkeys(options.algos), *map(dict.fromkeys, axes)):
        given = {name: value for name, value in zip(BENCH_AXES, point) if value is not None}
        configs.append(make_config(options.env, algo, settings=options.settings, **overrides, **given))
        values.append(hparam_values(configs[-1]))
    return BenchPlan(
        tuple(configs),
        tuple(values),
        tuple(options.num_runs),
        options.iterations,
        options.repeats,
        options.sequential,
        options.env_only,
        tuple(dict.fromkeys(options.run_mapping)),
        devices=tuple(dict.fromkeys(options.devices)) or (None,),
        model_flops=options.model_flops,
    )


def write_rows(rows: list[dict], path: Path, started: str | None = None) -> None:
    """The rows as JSON, each naming what made it (purejaxspi.provenance)."""
    from purejaxspi.provenance import provenance

    made_by = provenance(started)
    try:
        path.write_text(json.dumps([{**row, "provenance": made_by} for row in rows], indent=2) + "\n")
    except OSError as e:
        raise RunDirError(f"--json {path}: cannot write the rows: {e.strerror or e}") from None


def training_program(
    config: Config, grid: RunGrid, iterations: int, run_mapping: str, num_devices: int | None = 1
) -> tuple[Program, str]:
    """`iterations` training iterations of the whole grid in one program sharded over the first
    `num_devices` devices; also the run mapping each device applies to its runs."""
    from purejaxspi.envs import env_for
    from purejaxspi.scale.mapping import make_trainer, resolve_run_mapping

    layout = make_layout(grid.size, num_devices)
    env = env_for(config.env, None, tuple(r.seed for r in grid.runs), layout.local_runs())
    program = shard(make_trainer(config, env, run_mapping), layout)
    hparams = layout.place(grid.hparams())
    state = jax.block_until_ready(jax.jit(program.init)(layout.place(grid.keys()), hparams))

    def chunk(s, h, count):
        return program.steps(s, h, count, iterations)

    steps = iterations * config.batch_size * grid.size
    mapping = resolve_run_mapping(run_mapping, env.spec.family, env.spec.steps_all_runs)
    return compile_program(chunk, [(state, hparams, np.int32(iterations))], steps, env), mapping


def sequential_program(config: Config, grid: RunGrid, iterations: int) -> Program:
    """The grid's runs trained one after another, each by the same compiled 1-run program."""
    from purejaxspi.envs import env_for
    from purejaxspi.scale.mapping import make_trainer

    env = env_for(config.env, None, (grid.runs[0].seed,))
    program = make_trainer(config, env, "vmap")
    init = jax.jit(program.init)
    keys, hparams = grid.keys(), grid.hparams()
    calls = []
    for r in range(grid.size):
        hp = jax.tree.map(lambda x, r=r: x[r : r + 1], hparams)
        calls.append((jax.block_until_ready(init(keys[r : r + 1], hp)), hp, np.int32(iterations)))

    def chunk(s, h, count):
        return program.steps(s, h, count, iterations)

    return compile_program(chunk, calls, iterations * config.batch_size * grid.size, env)


def model_flops_per_env_step(config: Config, grid: RunGrid) -> float:
    """The model's FLOPs per env step of `config` (one run's iteration, the grid's first setting)."""
    from purejaxspi.algo.train import make_train
    from purejaxspi.analysis.work import iteration_flops
    from purejaxspi.envs import env_for

    env = env_for(config.env, None, (grid.runs[0].seed,))
    hp = jax.tree.map(lambda x: x[0], grid.hparams())
    return iteration_flops(make_train(config, env), hp)["per_env_step"]


def host_pool_row(config: Config, layout: RunLayout, obs_shape: tuple[int, ...], steps_per_second: float) -> dict:
    """What a host-side pool (envpool's Atari) costs the host: its interface, its threads and the
    uint8 frames it copies to the device per second (each device's pool holds its runs' envs)."""
    import math

    from purejaxspi.envs.envpool import pool_threads, resolve_interface

    pool_envs = layout.runs_per_device * config.env.num_envs
    return {
        "envpool_interface": resolve_interface(config.env.envpool_interface, jax.default_backend()),
        "pool_envs": pool_envs,
        "pool_threads": pool_threads(pool_envs),
        "host_to_device_bytes_per_second": math.prod(obs_shape) * steps_per_second,
    }


def env_only_program(config: Config, grid: RunGrid, iterations: int) -> Program:
    """The env-only ceiling: as many random-action env steps as `iterations` training iterations take."""
    from purejaxspi.envs import env_for

    env = env_for(config.env, None, tuple(r.seed for r in grid.runs))
    steps = iterations * config.batch_size * grid.size
    return compile_program(random_rollout(env, iterations * config.ppo.num_steps), [(grid.keys(),)], steps, env)


def run_bench(plan: BenchPlan, on_step: Callable[[], Any] = lambda: None) -> list[dict]:
    """One row per (num_runs, algo, run mapping, devices): throughput, compile time, memory, the env-only ceiling.

    For each grid size every program is compiled first, then all are timed in turn (`time_interleaved`).
    `on_step()` is called after each compilation and each timed call (a progress bar's hook).
    """
    rows = []
    flops = {}  # per config, not per grid size: one run's work per env step
    if plan.model_flops:
        for config, values in zip(plan.configs, plan.values):
            flops[config.algo, config.network.conv] = model_flops_per_env_step(
                config, grid_from_values(values, plan.first_seed, 1)
            )
    for num_runs in plan.num_runs:
        programs, mappings = compile_programs(plan, num_runs, on_step)
        seconds = dict(zip(programs, time_interleaved(list(programs.values()), plan.repeats, on_step)))
        rate: dict[Any, float] = {name: programs[name].env_steps / seconds[name] for name in programs}
        for config in plan.configs:
            for mapping, devices in itertools.product(plan.run_mappings, plan.devices):
                key = config.algo, config.network.conv, mapping, devices
                row: dict[str, Any] = {
                    "env": config.env_id,
                    "algo": config.algo,
                    "conv": resolve_conv(config.network.conv, jax.default_backend()),
                    "num_runs": num_runs,
                    "devices": make_layout(num_runs, devices).num_devices,
                    "run_mapping": mappings[key],
                    "steps_per_second": rate[key],
                    "seconds_per_iteration": seconds[key] / plan.iterations,
                    "compile_seconds": programs[key].compile_seconds,
                    "program_bytes": programs[key].program_bytes,
                    "peak_host_bytes": peak_host_bytes(),
                    "peak_device_bytes": peak_device_bytes(),
                    "env_only_steps_per_second": rate.get("env_only"),
                }
                env = programs[key].env
                if env.spec.steps_all_runs:  # a host pool: its frames cross to the device every env step
                    row.update(host_pool_row(config, make_layout(num_runs, devices), env.spec.obs_shape, rate[key]))
                if (config.algo, config.network.conv) in flops:
                    row["model_flops_per_env_step"] = flops[config.algo, config.network.conv]
                    row["achieved_flops_per_second"] = row["model_flops_per_env_step"] * row["steps_per_second"]
                if plan.sequential:
                    row["sequential_steps_per_second"] = rate[config.algo, config.network.conv, "sequential"]
                    row["speedup_over_sequential"] = row["steps_per_second"] / row["sequential_steps_per_second"]
                rows.append(row)
    add_cost_ratios(rows)
    add_device_scaling(rows)
    return rows


def compile_programs(plan: BenchPlan, num_runs: int, on_step: Callable[[], Any]) -> tuple[dict, dict]:
    """Every program the plan times at `num_runs` runs, compiled: ({key: Program}, {key: run mapping}),
    keyed (algo, conv, mapping, devices), (algo, conv, "sequential") and "env_only"."""
    grids = [grid_from_values(values, plan.first_seed, num_runs) for values in plan.values]
    programs: dict[Any, Program] = {}
    mappings: dict[Any, str] = {}
    if plan.env_only:
        programs["env_only"] = env_only_program(plan.configs[0], grids[0], plan.iterations)
        on_step()
    for config, grid in zip(plan.configs, grids):
        for mapping in plan.run_mappings:
            for devices in plan.devices:
                key = config.algo, config.network.conv, mapping, devices
                programs[key], mappings[key] = training_program(config, grid, plan.iterations, mapping, devices)
                on_step()
        if plan.sequential:
            programs[config.algo, config.network.conv, "sequential"] = sequential_program(config, grid, plan.iterations)
            on_step()
    return programs, mappings


def count_steps(plan: BenchPlan) -> int:
    """How many times run_bench calls `on_step`: compilations plus timed calls."""
    per_grid = len(plan.configs) * (len(plan.run_mappings) * len(plan.devices) + plan.sequential) + plan.env_only
    return len(plan.num_runs) * per_grid * (1 + plan.repeats)


def add_cost_ratios(rows: list[dict]) -> None:
    """Time per iteration and FLOPs per env step relative to ppo's at the same grid size, run mapping
    and device count (where ppo was measured), and the time ratio over the FLOP ratio."""

    def key(r):
        return (r["num_runs"], r["run_mapping"], r.get("devices", 1), r.get("conv"))

    ppo = {key(r): r for r in rows if r["algo"] == "ppo"}
    for row in rows:
        if key(row) not in ppo:
            continue
        base = ppo[key(row)]
        row["time_per_iteration_vs_ppo"] = row["seconds_per_iteration"] / base["seconds_per_iteration"]
        if "model_flops_per_env_step" in row and "model_flops_per_env_step" in base:
            # per iteration: FLOPs per env step x the iteration's env steps (each algo's own batch)
            work = row["model_flops_per_env_step"] * row["steps_per_second"] * row["seconds_per_iteration"]
            base_work = base["model_flops_per_env_step"] * base["steps_per_second"] * base["seconds_per_iteration"]
            row["flops_per_iteration_vs_ppo"] = work / base_work
            row["time_over_flop_ratio"] = row["time_per_iteration_vs_ppo"] / row["flops_per_iteration_vs_ppo"]


def add_device_scaling(rows: list[dict]) -> None:
    """Throughput relative to one device's for the same grid, algo and run mapping (where one device was measured)."""

    def key(r):
        return (r["num_runs"], r["algo"], r["run_mapping"], r.get("conv"))

    one = {key(r): r["steps_per_second"] for r in rows if r.get("devices", 1) == 1}
    for row in rows:
        if key(row) in one:
            row["speedup_over_one_device"] = row["steps_per_second"] / one[key(row)]


def _scaled(x: float | None, unit: float) -> float | None:
    return None if x is None else x / unit


def _mb(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:,.0f}"


def format_rows(rows: list[dict]) -> list[list[str]]:
    """The printed table's cells, one list per row (header first)."""
    header = [
        "algo",
        "conv",
        "runs",
        "devices",
        "mapping",
        "env steps/s",
        "vs 1 device",
        "sequential",
        "grid/seq",
        "s/iter",
        "vs ppo",
        "MFLOP/step",
        "GFLOP/s",
        "FLOPs vs ppo",
        "compile s",
        "program MB",
        "host peak MB",
        "device peak MB",
        "env-only steps/s",
    ]

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    cells = [header]
    for r in rows:
        cells.append(
            [
                r["algo"],
                r.get("conv", "-"),
                str(r["num_runs"]),
                str(r.get("devices", 1)),
                r["run_mapping"],
                fmt(r["steps_per_second"], ",.0f"),
                fmt(r.get("speedup_over_one_device"), ".2f"),
                fmt(r.get("sequential_steps_per_second"), ",.0f"),
                fmt(r.get("speedup_over_sequential"), ".2f"),
                fmt(r["seconds_per_iteration"], ".3f"),
                fmt(r.get("time_per_iteration_vs_ppo"), ".2f"),
                fmt(_scaled(r.get("model_flops_per_env_step"), 1e6), ".2f"),
                fmt(_scaled(r.get("achieved_flops_per_second"), 1e9), ".1f"),
                fmt(r.get("flops_per_iteration_vs_ppo"), ".2f"),
                fmt(r["compile_seconds"], ".1f"),
                _mb(r["program_bytes"]),
                _mb(r["peak_host_bytes"]),
                _mb(r["peak_device_bytes"]),
                fmt(r["env_only_steps_per_second"], ",.0f"),
            ]
        )
    return cells


def bench_progress(console: Any = None, disable: bool = False):
    """A rich bar counting a bench's compilations and timed calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]bench {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("compilations and timed calls"),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
    )


def rows_table(rows: list[dict], title: str):
    """The rows as a rich table (format_rows' cells, right-aligned)."""
    from rich.table import Table

    cells = format_rows(rows)
    table = Table(title=title)
    for name in cells[0]:
        table.add_column(name, justify="right")
    for row in cells[1:]:
        table.add_row(*row)
    return table
