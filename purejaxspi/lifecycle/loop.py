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
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxspi.algo.config import Config
from purejaxspi.errors import ConfigError, NonFiniteLossError, RunDirError, RunInterrupted, UserError
from purejaxspi.lifecycle import checkpoint, guards
from purejaxspi.lifecycle.chunks import chunk_capacity, next_chunk
from purejaxspi.lifecycle.metrics import (
    CSV_COLUMNS,
    MetricsLog,
    hns_summary_fields,
    setting_summaries,
    write_summary,
)
from purejaxspi.lifecycle.rundir import (
    check_kinds,
    check_out_dir,
    clear_run_outputs,
    read_record,
    record_mismatch,
    run_record,
    truncate_metrics,
)
from purejaxspi.provenance import provenance, utc_now
from purejaxspi.scale import distributed
from purejaxspi.scale.grid import RunGrid
from purejaxspi.scale.sharding import RunLayout, make_layout, shard
from purejaxspi.settings import check_part, setting


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run persists itself and where else its scalars go."""

    resume: bool = setting(False, "Continue the run in `out` from its newest checkpoint.", flag="")
    overwrite: bool = setting(
        False, "Replace the outputs of a run already in --out (otherwise a non-empty --out is refused)."
    )
    # A saved checkpoint's interval is at least 20 times the last save's duration, so saving stays
    # under 5% of the wall time.
    checkpoint_interval: float = setting(
        300.0,
        "Seconds between checkpoints in DIR/checkpoints (at least 20x the last save's duration; 0: after every "
        "chunk). One is always saved after the last chunk and on SIGINT / SIGTERM / SIGHUP.",
        bound="nonnegative",
    )
    checkpoint_every: int = setting(0, "Also save a checkpoint every K chunks (0: off).", bound="nonnegative")
    keep_checkpoints: int = setting(3, "How many of the newest checkpoints to keep.", bound="positive")
    chunk_iterations: int = setting(
        0,
        "Iterations per compiled chunk between host updates (0: sized by time, see --chunk-seconds).",
        bound="nonnegative",
    )
    chunk_seconds: float = setting(
        10.0,
        "With --chunk-iterations 0: the first chunk is one iteration, each later one about this many seconds "
        "(progress, checkpoints and a stop on a signal wait for the chunk in flight).",
        bound="positive",
    )
    tensorboard: bool = setting(
        False, "Also write TensorBoard event files, one sub-run per grid member, under DIR/tensorboard."
    )
    wandb_project: str | None = setting(
        None,
        "Also log to this Weights & Biases project, one W&B run per grid member (needs `uv sync --extra wandb`).",
        flag="wandb",
    )
    num_devices: int | None = setting(
        None,
        "Shard the runs over the first N devices (default: all); a grid N does not divide is padded with copies "
        "of its last run, left out of every output.",
        bound="positive",
        flag="devices",
    )
    time_limit: float | None = setting(
        None,
        "Wall-clock seconds for this call (a cluster job's limit): at the first chunk boundary past it, save a "
        "checkpoint, write summary.json for what ran and stop with the line to resume (0 or unset: no limit).",
        bound="nonnegative",
    )

    def check(self) -> None:
        """Raise ConfigError for values out of their bounds, a contradiction, or a sink not installed."""
        check_part(self)
        if self.resume and self.overwrite:
            raise RunDirError("resume and overwrite contradict each other; pick one")
        if self.wandb_project:
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise ConfigError("--wandb needs the wandb package: uv sync --extra wandb", setting="wandb_project")


class Progress(NamedTuple):
    """What the host knows after a chunk (or, with `chunk` 0, before the first one)."""

    description: str
    chunk: int
    completed_steps: int  # env steps of all runs so far
    total_steps: int
    steps_per_second: float | None  # env steps of all runs per second, as measured so far
    median_return: float | None
    notes: tuple[str, ...] = ()  # things worth telling the user (a resume, a restart of emulators)
    num_runs: int = 1


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
    return run_record(config.flat(), grid.values, grid.first_seed, grid.num_seeds, grid.size, list(grid.varied()))


def prepare_out_dir(out: Path, record: dict, options: RunOptions) -> bool:
    """Refuse an `out` that would lose another run's files or does not match the run resumed; clear
    the previous outputs on `overwrite`. Raises RunDirError before anything in `out` changes; returns
    whether `out` was created."""
    check_out_dir(out, options.resume, options.overwrite)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create the run directory {out}: {e.strerror or e}") from None
    if options.resume:
        saved = read_record(out)
        saved.pop("provenance", None)  # what made the run, not what it is
        check_kinds(out)
        # read back through the tree: a setting added after the run was written counts as its default
        saved["config"] = Config.of(**saved["config"]).flat()
        mismatch = record_mismatch(saved, record)
        if mismatch:
            raise RunDirError(f"resume {out}: the settings differ from {out / 'config.json'} in {mismatch}")
    distributed.barrier("purejaxspi: run directory checked")  # before process 0 changes anything in it
    if options.overwrite and distributed.is_writer():
        clear_run_outputs(out)
    distributed.barrier("purejaxspi: run directory ready")
    return created


@dataclasses.dataclass
class Session:
    """The program of a run, compiled ahead of time (one executable for every chunk length up to
    `capacity`), and where its outputs go."""

    config: Config
    grid: RunGrid
    layout: RunLayout
    env: Any
    init: Callable
    program: Any  # the compiled chunk: (state, hparams, count) -> (state, metrics [R, capacity])
    capacity: int
    keys: Any
    hparams: Any
    out: Path
    writer: bool
    started: str = dataclasses.field(default_factory=utc_now)  # when this process began training

    def run(self, state, count: int):
        """`count` iterations (at most `capacity`) from `state`: (state, metrics {name: [R, capacity]}),
        the rows from `count` on unwritten."""
        return self.program(state, self.hparams, np.int32(count))


def build_session(config: Config, grid: RunGrid, out: Path, options: RunOptions) -> Session:
    """The grid's layout over devices, the env and the sharded chunk program, compiled and checked
    against free memory (ResourceError) before any state is allocated."""
    from purejaxspi.envs import env_for
    from purejaxspi.scale.mapping import make_trainer

    layout = make_layout(grid.size, options.num_devices)
    env = env_for(config.env, None, tuple(r.seed for r in grid.runs), layout.local_runs())
    program = shard(make_trainer(config, env), layout)
    init = jax.jit(program.init)
    row_bytes = 4 * len(CSV_COLUMNS) * layout.padded_runs
    capacity = chunk_capacity(options.chunk_iterations, row_bytes)
    # the anneal's step is an input, so the program is the same for every budget
    keys, hparams = layout.place(grid.keys()), layout.place(grid.hparams().anneal_over(config.num_iterations))
    abstract = jax.eval_shape(init, keys, hparams)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=layout.sharding), abstract)
    chunk = jax.jit(program.steps, static_argnums=3, donate_argnums=0)
    count = jax.ShapeDtypeStruct((), np.int32)
    program = chunk.lower(abstract, hparams, count, capacity).compile()
    local = [d for d in layout.mesh.devices.flat if d.process_index == jax.process_index()]
    guards.check_memory(program, grid.size, local)
    return Session(config, grid, layout, env, init, program, capacity, keys, hparams, out, distributed.is_writer())


class Start(NamedTuple):
    state: Any
    log: MetricsLog
    iteration: int
    timed_steps: float
    timed_seconds: float
    notes: tuple[str, ...]


def init_or_restore(session: Session, resume: bool) -> Start:
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
    start_iteration = restored.iteration if restored else 0
    append = resume and metrics_path.is_file()
    if append and session.writer:
        truncate_metrics(metrics_path, CSV_COLUMNS, start_iteration)
    # every process keeps the accumulators (they go into checkpoints); process 0 writes the rows
    log = MetricsLog(metrics_path if session.writer else Path(os.devnull), config, grid, append=append)
    notes: tuple[str, ...]
    if not restored:
        notes = (
            (f"no checkpoint in {checkpoint.checkpoint_dir(out)} yet; starting {out} from iteration 0",)
            if resume
            else ()
        )
        return Start(session.init(session.keys, session.hparams), log, 0, 0.0, 0.0, notes)
    iteration, timed_steps, timed_seconds = checkpoint.restore_log_cursor(log, restored.cursor)
    state = layout.place(restored.state)
    notes = (f"resuming {out} at iteration {start_iteration} of {config.num_iterations} ({restored.path})",)
    if restored.note():
        moved = checkpoint.set_aside(out, restored) if session.writer else None
        notes = (f"{restored.note()}{f'; {moved}' if moved else ''}",) + notes
    if session.env.spec.steps_all_runs:
        fresh = session.init(session.keys, session.hparams)
        state = state._replace(env_state=fresh.env_state, obs=fresh.obs, action_mask=fresh.action_mask)
        notes = notes[:-1] + (
            f"resumed {out} at iteration {start_iteration}; {config.env_id} keeps its emulator state "
            f"outside the checkpoint, so every env starts a new episode (parameters, optimiser, "
            f"keys restored)",
        )
    return Start(state, log, iteration, timed_steps, timed_seconds, notes)


@dataclasses.dataclass
class ChunkClock:
    """The run's pace: every chunk after the first is timed (the first, one iteration, pays the first
    call's costs, so it alone stands for the pace only until a second chunk ends)."""

    steps_per_iteration: int
    steps: float = 0.0  # env steps of all runs in the timed chunks
    seconds: float = 0.0
    first: tuple[float, float] | None = None  # (env steps, seconds) of the first chunk
    latest: float | None = None  # seconds an iteration took in the latest chunk

    def add(self, length: int, seconds: float) -> None:
        steps = length * self.steps_per_iteration
        if self.first is None:
            self.first = (steps, seconds)
        else:
            self.steps, self.seconds = self.steps + steps, self.seconds + seconds
        self.latest = seconds / length

    def so_far(self) -> tuple[float, float]:
        """(env steps, seconds) timed so far: the chunks after the first, or the first alone."""
        if self.seconds > 0 or self.first is None:
            return self.steps, self.seconds
        return self.first

    def rate(self) -> float | None:
        steps, seconds = self.so_far()
        return steps / seconds if steps > 0 and seconds > 0 else None


@dataclasses.dataclass
class ChunkReader:
    """Brings each chunk's metrics to the host, writes them, and reports progress."""

    session: Session
    log: MetricsLog
    sinks: list
    on_progress: Callable[[Progress], None]
    clock: ChunkClock
    description: str

    def progress(self, chunk: int, done: int, notes: tuple[str, ...] = ()) -> None:
        finite = self.log.latest_return[~np.isnan(self.log.latest_return)]
        per_iteration = self.clock.steps_per_iteration
        self.on_progress(
            Progress(
                self.description,
                chunk,
                done * per_iteration,
                self.session.config.num_iterations * per_iteration,
                self.clock.rate(),
                float(np.median(finite)) if finite.size else None,
                notes,
                self.session.grid.size,
            )
        )

    def read(self, metrics, first_iteration: int, length: int, saved_iteration: int) -> tuple[int, int] | None:
        """Write a chunk's rows (up to a non-finite loss); returns that loss's (run, iteration)."""
        rows = self.session.layout.gather(metrics)  # [R, capacity] on every process, padding dropped
        rows = {name: values[:, :length] for name, values in rows.items()}
        bad = first_nonfinite(rows)
        with guards.disk_full_as("metrics.csv", self.session.out, saved_iteration):
            written = self.log.write_chunk(rows, first_iteration, None if bad is None else bad[1] + 1)
            for sink in self.sinks:
                sink.update(written)
        return None if bad is None else (bad[0], first_iteration + bad[1])


@dataclasses.dataclass
class Saver:
    """Checkpoints at chunk boundaries: when due by interval or count, and always when asked."""

    session: Session
    options: RunOptions
    start: Start
    manager: Any
    stop: guards.StopSignals
    saved_iteration: int
    last_save: float
    save_seconds: float = 0.0

    def due(self, chunks_done: int) -> bool:
        """Whether the boundary after `chunks_done` chunks takes a checkpoint by interval or count."""
        options = self.options
        interval = max(options.checkpoint_interval, 20 * self.save_seconds)
        every = options.checkpoint_every and chunks_done % options.checkpoint_every == 0
        return bool(every) or time.monotonic() - self.last_save >= interval

    def save(self, state, iteration: int, clock: ChunkClock) -> None:
        steps, seconds = clock.steps, clock.seconds
        start = self.start
        cursor = checkpoint.cursor(start.log, iteration, start.timed_steps + steps, start.timed_seconds + seconds)
        began = time.monotonic()
        with guards.disk_full_as("a checkpoint", self.session.out, self.saved_iteration):
            checkpoint.save(self.manager, iteration, self.session.layout.unpad(state), cursor)
        self.saved_iteration, self.last_save, self.save_seconds = iteration, time.monotonic(), time.monotonic() - began
        self.stop.saved(iteration)


def run_chunks(
    session: Session,
    start: Start,
    options: RunOptions,
    sinks: list,
    on_progress: Callable[[Progress], None],
    stop: guards.StopSignals,
    deadline: float | None = None,
) -> tuple[float, float, tuple[int, int] | None, int]:
    """Train the rest of the run chunk by chunk; returns (timed steps, timed seconds, (run, iteration)
    of a non-finite loss or None, iterations done). Past `deadline` (time.monotonic()) it checkpoints at
    the next chunk boundary and returns early.

    After each chunk the host writes its metrics, reports progress and, when due, saves a checkpoint;
    chunks are sized by the pace of the one before (`chunks.next_chunk`). Raises RunInterrupted after
    the checkpoint of the boundary that follows a SIGINT / SIGTERM / SIGHUP (`stop`), or at once when one came
    before the first chunk.
    """
    config = session.config
    clock = ChunkClock(config.batch_size * session.grid.size)
    reader = ChunkReader(session, start.log, sinks, on_progress, clock, describe(session))
    reader.progress(0, start.iteration, start.notes)
    state, iteration, failure, chunk = start.state, start.iteration, None, 0
    manager = checkpoint.open_manager(session.out, keep=options.keep_checkpoints)
    saver = Saver(session, options, start, manager, stop, start.iteration, time.monotonic())
    stop.saved(start.iteration)
    try:
        while iteration < config.num_iterations:
            if stop.signum is not None:
                raise RunInterrupted(stop.signum, iteration, session.out, saved=False)
            length = next_chunk(
                config.num_iterations - iteration,
                session.capacity,
                options.chunk_iterations,
                clock.latest,
                options.chunk_seconds,
            )
            stop.expect(length * clock.latest if clock.latest else options.chunk_seconds)
            began = time.perf_counter()
            state, metrics = session.run(state, length)
            failure = reader.read(metrics, iteration, length, saver.saved_iteration)  # waits for the chunk
            clock.add(length, time.perf_counter() - began)
            iteration, chunk = iteration + length, chunk + 1
            reader.progress(chunk, iteration)
            if failure is not None:
                break
            last = iteration >= config.num_iterations
            timed_out = deadline is not None and time.monotonic() >= deadline and not last
            if last or stop.signum is not None or timed_out or saver.due(chunk):
                saver.save(state, iteration, clock)
            if stop.signum is not None and not last:
                raise RunInterrupted(stop.signum, iteration, session.out)
            if distributed.agree(int(timed_out)):  # every process stops at the same boundary
                break
    finally:
        stop.expect(None)
        manager.close()
    return start.timed_steps + clock.so_far()[0], start.timed_seconds + clock.so_far()[1], failure, iteration


def describe(session: Session) -> str:
    """The progress line's name of the run: algorithm, env, runs and devices."""
    devices = session.layout.num_devices
    name = f"{session.config.algo} {session.config.env_id} x{session.grid.size}"
    return name + (f" on {devices} devices" if devices > 1 else "")


def finish(session: Session, log: MetricsLog, steps_per_second: float, iterations_done: int) -> dict:
    """Write summary.json (process 0) and return it; a run stopped at its time limit says so
    ("complete": false, its iterations) and gives each run's latest episodic return."""
    config, grid = session.config, session.grid
    hns_per_run, hns_extra = hns_summary_fields(config.env_id, log.final_returns())
    complete = iterations_done >= config.num_iterations
    extra: dict[str, Any] = {
        "complete": complete,
        "iterations_done": iterations_done,
        "num_iterations": config.num_iterations,
    }
    if not complete:
        hns_per_run = {**hns_per_run, "latest_return": [None if np.isnan(x) else float(x) for x in log.latest_return]}
    probes = {name: values for name, values in log.latest_probe.items() if not np.isnan(values).all()}
    extra["settings"] = setting_summaries(grid, log.final_returns(), probes)
    return write_summary(
        session.out / "summary.json" if session.writer else None,
        config,
        grid,
        log.final_returns(),
        steps_per_second,
        {**log.probe_summary(), **hns_extra, **extra, "provenance": provenance(session.started)},
        hns_per_run,
    )


def train(
    config: Config,
    grid: RunGrid,
    out: Path | str,
    options: RunOptions = RunOptions(),
    on_progress: Callable[[Progress], None] | None = None,
    on_signal: Callable[[str], None] | None = None,
    exit_now: Callable[[int], None] | None = None,
) -> dict:
    """Train the grid of runs (`scale.grid.make_grid`) into `out` and return its summary (summary.json).

    Writes config.json, metrics.csv (chunk by chunk), checkpoints and summary.json into `out`;
    `options` sets resume, overwrite, checkpointing, sinks and devices; `on_progress` is called
    before the first chunk and after each one. A first SIGINT / SIGTERM / SIGHUP ends the chunk in flight and
    raises RunInterrupted after a checkpoint; `on_signal` hears each signal at once, in words, and
    `exit_now(code)` (if given) ends the process on a second one (guards.StopSignals).

    Raises RunDirError / CheckpointError / DeviceError / ResourceError (one line) leaving `out` as it
    was, and NonFiniteLossError (after writing the metrics so far and the summary) if training diverges.
    """
    out = Path(out)
    options.check()
    deadline = time.monotonic() + options.time_limit if options.time_limit else None
    on_progress = on_progress or (lambda progress: None)
    from purejaxspi.envs import check_run_seeds

    check_run_seeds(config.env_id, tuple(r.seed for r in grid.runs), config.env.num_envs)
    record = training_record(config, grid)
    make_layout(1, options.num_devices)  # the device count is possible (DeviceError)
    with guards.StopSignals(out, on_signal, exit_now) as stop:
        created = prepare_out_dir(out, record, options)
        try:
            with guards.run_dir_lock(out, enabled=distributed.is_writer()):
                session, start = open_run(config, grid, out, record, options)
                summary, failure = train_session(session, start, record, options, on_progress, stop, deadline)
        except UserError:
            if created and not any(out.iterdir()):
                out.rmdir()
            raise
    if failure is not None:
        run, iteration = failure
        raise NonFiniteLossError(run, session.grid.runs[run].seed, iteration, out / "metrics.csv")
    return summary


def open_run(config: Config, grid: RunGrid, out: Path, record: dict, options: RunOptions) -> tuple[Session, Start]:
    """config.json first (a signal from here on leaves a directory `--resume` continues), then the
    compiled program and the starting state; a fresh run's config.json goes again if either fails."""
    fresh = not options.resume and distributed.is_writer()
    if fresh:
        with guards.disk_full_as("config.json", out, None):
            made_by = provenance(started=utc_now(), ended=False)
            (out / "config.json").write_text(json.dumps({**record, "provenance": made_by}, indent=2) + "\n")
    try:
        session = build_session(config, grid, out, options)
        with guards.disk_full_as("metrics.csv", out, None):
            return session, init_or_restore(session, options.resume)
    except UserError:
        if fresh:
            (out / "config.json").unlink(missing_ok=True)
        raise


def train_session(
    session: Session,
    start: Start,
    record: dict,
    options: RunOptions,
    on_progress: Callable[[Progress], None],
    stop: guards.StopSignals,
    deadline: float | None,
) -> tuple[dict, tuple[int, int] | None]:
    """The chunks from `start`, then summary.json: (the summary, a non-finite loss's (run, iteration) or None)."""
    config, out = session.config, session.out
    purge_step = start.iteration * config.batch_size if options.resume else None
    sinks = open_sinks(out, session.grid, record, options, purge_step) if session.writer else []
    wall = time.perf_counter()
    try:
        timed_steps, timed_seconds, failure, done = run_chunks(
            session, start, options, sinks, on_progress, stop, deadline
        )
    finally:
        for sink in sinks:
            sink.close()
        start.log.close()
    wall = time.perf_counter() - wall
    total = config.num_iterations * config.batch_size * session.grid.size
    sps = timed_steps / timed_seconds if timed_seconds else total / max(wall, 1e-9)
    with guards.disk_full_as("summary.json", out, done if failure is None else None):
        return finish(session, start.log, sps, done), failure


def open_sinks(out: Path, grid, record: dict, options: RunOptions, purge_step: int | None) -> list:
    """TensorBoard / W&B writers, each given the rows written to metrics.csv from now on."""
    from purejaxspi.lifecycle.sinks import TensorBoardLog, WandbLog

    sinks: list[Any] = []
    if options.tensorboard:
        sinks.append(TensorBoardLog(out, grid, CSV_COLUMNS, purge_step))
    if options.wandb_project:
        sinks.append(WandbLog(out, grid, CSV_COLUMNS, options.wandb_project, record, options.resume))
    return sinks
