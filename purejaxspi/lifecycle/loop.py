"""A training run's whole lifecycle on the host: `train(...)` prepares the run directory, starts the
grid fresh or from its newest checkpoint, runs the compiled chunks and writes the summary.

The program is sharded over the devices (`scale.sharding.RunLayout`; one device is the one-slice
case). Between chunks the host gathers the metrics, writes their rows (and TensorBoard / W&B scalars)
and, every `checkpoint_every` chunks, an orbax checkpoint of the whole state; a resumed run continues
from the newest checkpoint, rewriting the metrics rows of iterations after it, so a killed run ends as
if never stopped. With several processes every one runs this loop; process 0 alone writes files other
than checkpoints. Nothing here prints or exits: failures are typed errors (`purejaxspi.errors`),
progress goes to the caller's `on_progress`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from purejaxspi.algo.config import Config
from purejaxspi.errors import NonFiniteLossError, RunDirError
from purejaxspi.lifecycle import checkpoint
from purejaxspi.lifecycle.metrics import CSV_COLUMNS, MetricsLog, hns_summary_fields, write_summary
from purejaxspi.lifecycle.rundir import (
    check_out_dir, clear_run_outputs, read_record, record_mismatch, run_record, truncate_metrics,
)
from purejaxspi.scale import distributed
from purejaxspi.scale.grid import RunGrid
from purejaxspi.scale.sharding import RunLayout, make_layout, shard_trainer


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run persists itself and where else its scalars go."""

    resume: bool = False  # continue the run in `out` from its newest checkpoint
    overwrite: bool = False  # replace the outputs of a run already in `out`
    checkpoint_every: int = 1  # chunks between checkpoints; 0: only after the last chunk
    keep_checkpoints: int = 3
    chunk_iterations: int = 0  # iterations per compiled chunk (0: about 20 chunks per run)
    tensorboard: bool = False
    wandb_project: str | None = None
    num_devices: int | None = None  # shard the runs over the first N devices (default: all)


class Progress(NamedTuple):
    """What the host knows after a chunk (or, with `chunk` 0, before the first one)."""

    description: str
    chunk: int
    completed_steps: int  # env steps of all runs so far
    total_steps: int
    steps_per_second: float | None
    median_return: float | None
    notes: tuple[str, ...] = ()  # things worth telling the user (a resume, a restart of emulators)


def chunk_plan(num_iterations: int, chunk_iterations: int, start: int = 0) -> list[int]:
    """Chunk lengths covering iterations [start, num_iterations): equal chunks and at most one shorter remainder.

    The chunk size depends on the whole run's length, so a resumed run chunks the way it began.
    """
    size = chunk_iterations or max(1, math.ceil(num_iterations / 20))
    remaining = num_iterations - start
    if remaining <= 0:
        return []
    size = min(size, remaining)
    plan = [size] * (remaining // size)
    if remaining % size:
        plan.append(remaining % size)
    return plan


def first_nonfinite(metrics: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """(run, chunk-relative iteration) of the first non-finite loss, or None."""
    bad = ~np.isfinite(metrics["total_loss"])
    if not bad.any():
        return None
    runs, iters = np.nonzero(bad)
    i = int(np.argmin(iters))
    return int(runs[i]), int(iters[i])


def training_record(config: Config, grid: RunGrid) -> dict:
    """config.json's content for this run (compared key by key on resume)."""
    return run_record(dataclasses.asdict(config), grid.values, grid.first_seed, grid.num_seeds, grid.size,
                      list(grid.varied()))


def prepare_out_dir(out: Path, record: dict, options: RunOptions) -> None:
    """Refuse an `out` that would lose another run's files or does not match the run resumed; clear
    the previous outputs on `overwrite`. Raises RunDirError before anything in `out` changes."""
    if options.resume and options.overwrite:
        raise RunDirError("resume and overwrite contradict each other; pick one")
    check_out_dir(out, options.resume, options.overwrite)
    if options.resume:
        saved = read_record(out)
        # a setting added to Config after the run was written counts as its default
        saved["config"] = {**dataclasses.asdict(Config()), **saved["config"]}
        mismatch = record_mismatch(saved, record)
        if mismatch:
            raise RunDirError(f"resume {out}: the settings differ from {out / 'config.json'} in {mismatch}")
    distributed.barrier("purejaxspi: run directory checked")  # before process 0 changes anything in it
    if options.overwrite and distributed.is_writer():
        clear_run_outputs(out)
    distributed.barrier("purejaxspi: run directory ready")


class Session(NamedTuple):
    """The compiled program of a run and where its outputs go."""

    config: Config
    grid: RunGrid
    layout: RunLayout
    env: Any
    init: Callable
    train_chunk: Callable
    keys: Any
    hparams: Any
    out: Path
    writer: bool


def build_session(config: Config, grid: RunGrid, out: Path, num_devices: int | None) -> Session:
    """The grid's layout over devices, the env and the jitted, sharded program."""
    from purejaxspi.envs import make_env
    from purejaxspi.scale.mapping import make_trainer

    layout = make_layout(grid.size, num_devices)
    env = make_env(config.env_id, config.num_envs, tuple(r.seed for r in grid.runs), config.stochastic,
                   layout.local_runs())
    trainer = shard_trainer(make_trainer(config, env), layout)
    init = jax.jit(trainer.init)
    train_chunk = jax.jit(trainer.train_chunk, static_argnums=2, donate_argnums=0)
    keys, hparams = layout.place(grid.keys()), layout.place(grid.hparams())
    return Session(config, grid, layout, env, init, train_chunk, keys, hparams, out, distributed.is_writer())


class Start(NamedTuple):
    state: Any
    log: MetricsLog
    iteration: int
    timed_steps: float
    timed_seconds: float
    notes: tuple[str, ...]


def init_or_restore(session: Session, record: dict, resume: bool) -> Start:
    """A fresh state, or the newest checkpoint's (raising CheckpointError when it does not fit)."""
    config, grid, layout, out = session.config, session.grid, session.layout, session.out
    metrics_path = out / "metrics.csv"
    restored = None
    if resume:
        padded = jax.eval_shape(session.init, session.keys, session.hparams)
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct((grid.size,) + x.shape[1:], x.dtype), padded)
        scratch_log = MetricsLog(Path(os.devnull), config, grid)  # the accumulators' shapes, no file
        scratch_log.close()
        restored = checkpoint.restore_latest(out, template, checkpoint.cursor(scratch_log))
    out.mkdir(parents=True, exist_ok=True)
    if not resume and session.writer:
        (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    start_iteration = restored.iteration if restored else 0
    append = resume and metrics_path.is_file()
    if append and session.writer:
        truncate_metrics(metrics_path, CSV_COLUMNS, start_iteration)
    # every process keeps the accumulators (they go into checkpoints); process 0 writes the rows
    log = MetricsLog(metrics_path if session.writer else Path(os.devnull), config, grid, append=append)
    if not restored:
        notes = (f"no checkpoint in {checkpoint.checkpoint_dir(out)} yet; starting {out} from iteration 0",) if resume else ()
        return Start(session.init(session.keys, session.hparams), log, 0, 0.0, 0.0, notes)
    iteration, timed_steps, timed_seconds = checkpoint.restore_log_cursor(log, restored.cursor)
    state = layout.place(restored.state)
    notes = (f"resuming {out} at iteration {start_iteration} of {config.num_iterations} ({restored.path})",)
    if session.env.spec.external_state:
        fresh = session.init(session.keys, session.hparams)
        state = state._replace(env_state=fresh.env_state, obs=fresh.obs, action_mask=fresh.action_mask)
        notes = (f"resumed {out} at iteration {start_iteration}; {config.env_id} keeps its emulator state outside "
                 f"the checkpoint, so every env starts a new episode (parameters, optimiser, keys restored)",)
    return Start(state, log, iteration, timed_steps, timed_seconds, notes)


def run_chunks(session: Session, start: Start, options: RunOptions, sinks: list,
               on_progress: Callable[[Progress], None]) -> tuple[float, float, tuple[int, int] | None]:
    """Train the remaining chunks; returns (timed steps, timed seconds, (run, iteration) of a non-finite loss or None)."""
    config, grid, layout = session.config, session.grid, session.layout
    manager = checkpoint.open_manager(session.out, keep=options.keep_checkpoints)
    plan = chunk_plan(config.num_iterations, options.chunk_iterations, start.iteration)
    steps_per_iteration = config.batch_size * grid.size
    description = f"{config.algo} {config.env_id} x{grid.size}" + (
        f" on {layout.num_devices} devices" * (layout.num_devices > 1))
    total = config.num_iterations * steps_per_iteration
    state, log, iteration = start.state, start.log, start.iteration
    timed_steps, timed_seconds = start.timed_steps, start.timed_seconds
    on_progress(Progress(description, 0, iteration * steps_per_iteration, total, None, None, start.notes))
    failure = None
    try:
        for index, chunk_len in enumerate(plan):
            t0 = time.perf_counter()
            state, metrics = session.train_chunk(state, session.hparams, chunk_len)
            metrics = layout.gather(metrics)  # [R, chunk_len] on every process, padding dropped
            elapsed = time.perf_counter() - t0
            steps = chunk_len * steps_per_iteration
            if index > 0 or len(plan) == 1:  # the first chunk of a process includes compilation
                timed_steps += steps
                timed_seconds += elapsed
            bad = first_nonfinite(metrics)
            log.write_chunk(metrics, iteration, None if bad is None else bad[1] + 1)
            for sink in sinks:
                sink.update()
            if bad is not None:
                failure = (bad[0], iteration + bad[1])
                break
            iteration += chunk_len
            last = index == len(plan) - 1
            if last or (options.checkpoint_every and (index + 1) % options.checkpoint_every == 0):
                cursor = checkpoint.cursor(log, iteration, timed_steps, timed_seconds)
                checkpoint.save(manager, iteration, layout.unpad(state), cursor)
            finite = log.latest_return[~np.isnan(log.latest_return)]
            on_progress(Progress(
                description, index + 1, iteration * steps_per_iteration, total,
                timed_steps / timed_seconds if timed_seconds else steps / elapsed,
                float(np.median(finite)) if finite.size else None,
            ))
    finally:
        manager.close()
    return timed_steps, timed_seconds, failure


def finish(session: Session, log: MetricsLog, steps_per_second: float) -> dict:
    """Write summary.json (process 0) and return it."""
    config, grid = session.config, session.grid
    hns_per_run, hns_extra = hns_summary_fields(config.env_id, log.final_returns())
    return write_summary(
        session.out / "summary.json" if session.writer else None, config, grid, log.final_returns(),
        steps_per_second, {**log.probe_summary(), **hns_extra}, hns_per_run,
    )


def train(
    config: Config,
    grid: RunGrid,
    out: Path | str,
    options: RunOptions = RunOptions(),
    on_progress: Callable[[Progress], None] | None = None,
) -> dict:
    """Train the grid of runs (`scale.grid.make_grid`) into `out` and return its summary (summary.json).

    Writes config.json, metrics.csv (chunk by chunk), checkpoints and summary.json into `out`;
    `options` sets resume, overwrite, checkpointing, sinks and devices; `on_progress` is called
    before the first chunk and after each one.

    Raises RunDirError / CheckpointError / DeviceError (one line) before anything in `out` changes,
    and NonFiniteLossError (after writing the metrics so far and the summary) if training diverges.
    """
    out = Path(out)
    on_progress = on_progress or (lambda progress: None)
    record = training_record(config, grid)
    make_layout(1, options.num_devices)  # the device count is possible (DeviceError)
    prepare_out_dir(out, record, options)
    session = build_session(config, grid, out, options.num_devices)
    start = init_or_restore(session, record, options.resume)
    purge_step = start.iteration * config.batch_size if options.resume else None
    sinks = open_sinks(out, session.grid, record, options, purge_step) if session.writer else []
    wall = time.perf_counter()
    try:
        timed_steps, timed_seconds, failure = run_chunks(session, start, options, sinks, on_progress)
    finally:
        for sink in sinks:
            sink.close()
        start.log.close()
    wall = time.perf_counter() - wall
    total = config.num_iterations * config.batch_size * session.grid.size
    sps = timed_steps / timed_seconds if timed_seconds else total / max(wall, 1e-9)
    summary = finish(session, start.log, sps)
    if failure is not None:
        run, iteration = failure
        raise NonFiniteLossError(run, session.grid.runs[run].seed, iteration, out / "metrics.csv")
    return summary


def open_sinks(out: Path, grid, record: dict, options: RunOptions, purge_step: int | None) -> list:
    """TensorBoard / W&B writers, each reading the rows appended to metrics.csv from now on."""
    from purejaxspi.lifecycle.sinks import CsvTail, TensorBoardLog, WandbLog

    sinks = []
    if options.tensorboard:
        sinks.append(TensorBoardLog(out, grid, CsvTail(out / "metrics.csv", CSV_COLUMNS), purge_step))
    if options.wandb_project:
        tail = CsvTail(out / "metrics.csv", CSV_COLUMNS)
        sinks.append(WandbLog(out, grid, tail, options.wandb_project, record, options.resume))
    return sinks
