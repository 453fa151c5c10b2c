"""One training session on the host: build the program, run it chunk by chunk, write the outputs.

The program is sharded over the devices (`sharding.RunLayout`; one device is the one-slice case).
Between chunks the host gathers the metrics, writes their rows (and TensorBoard / W&B scalars) and,
every `checkpoint_every` chunks, an orbax checkpoint of the whole state; `resume` continues from the
newest checkpoint, rewriting the metrics rows of iterations after it, so a killed run ends as if never
stopped. With several processes every one runs this loop; process 0 alone writes files other than
checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from purejaxspi import checkpoint
from purejaxspi import hns
from purejaxspi.config import Config
from purejaxspi.distributed import is_writer
from purejaxspi.logging import CSV_COLUMNS, MetricsLog, progress_bar, write_summary
from purejaxspi.rundir import run_record, truncate_metrics
from purejaxspi.runs import make_grid
from purejaxspi.sharding import make_layout, shard_trainer

# Backends whose env state lives outside JAX (an emulator): a checkpoint cannot hold it.
EXTERNAL_STATE_BACKENDS = ("envpool",)


@dataclasses.dataclass(frozen=True)
class Lifecycle:
    """How a session persists itself: checkpoints, resume, and where else its scalars go."""

    resume: bool = False
    checkpoint_every: int = 1  # chunks between checkpoints; 0: only after the last chunk
    keep_checkpoints: int = 3
    tensorboard: bool = False
    wandb_project: str | None = None


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


def training_record(config: Config, values: dict[str, list[float]], first_seed: int, num_seeds: int) -> dict:
    """config.json's content for this command line (compared key by key on resume)."""
    grid = make_grid(values, first_seed, num_seeds)
    return run_record(dataclasses.asdict(config), values, first_seed, num_seeds, grid.size, list(grid.varied()))


def _cursor_template(log: MetricsLog) -> dict[str, np.ndarray]:
    return {"iteration": np.int64(0), "timed_steps": np.float64(0), "timed_seconds": np.float64(0),
            **checkpoint.log_cursor(log)}


def run_training(
    config: Config,
    values: dict[str, list[float]],
    first_seed: int,
    num_seeds: int,
    out: Path,
    chunk_iterations: int = 0,
    show_progress: bool = True,
    lifecycle: Lifecycle = Lifecycle(),
    num_devices: int | None = None,
) -> int:
    """Train the grid into `out` over `num_devices` devices (default all); raises checkpoint.CheckpointError /
    rundir.RunDirError / sharding.DeviceError (one line) on resume or device problems."""
    from purejaxspi.envs import make_env
    from purejaxspi.train import make_train

    grid = make_grid(values, first_seed, num_seeds)
    layout = make_layout(grid.size, num_devices)
    record = training_record(config, values, first_seed, num_seeds)
    env = make_env(config.env_id, config.num_envs, tuple(r.seed for r in grid.runs), config.stochastic,
                   layout.local_runs())
    trainer = shard_trainer(make_train(config, env), layout)
    keys, hparams = layout.place(grid.keys()), layout.place(grid.hparams())
    init = jax.jit(trainer.init)
    train_chunk = jax.jit(trainer.train_chunk, static_argnums=2, donate_argnums=0)
    writer = is_writer()
    show_progress = show_progress and writer
    metrics_path = out / "metrics.csv"

    # ---- the starting point: a fresh state, or the newest checkpoint -------------------------------
    restored = None
    if lifecycle.resume:
        padded = jax.eval_shape(trainer.init, keys, hparams)
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct((grid.size,) + x.shape[1:], x.dtype), padded)
        scratch_log = MetricsLog(Path(os.devnull), config, grid)  # the accumulators' shapes, no file
        scratch_log.close()
        restored = checkpoint.restore_latest(out, template, _cursor_template(scratch_log))
    out.mkdir(parents=True, exist_ok=True)
    if not lifecycle.resume and writer:
        (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    start_iteration = restored.iteration if restored else 0
    append = lifecycle.resume and metrics_path.is_file()
    if append and writer:
        truncate_metrics(metrics_path, CSV_COLUMNS, start_iteration)
    # every process keeps the accumulators (they go into checkpoints); process 0 writes the rows
    log = MetricsLog(metrics_path if writer else Path(os.devnull), config, grid, append=append)
    timed_steps, timed_seconds = 0.0, 0.0
    if restored:
        checkpoint.restore_log_cursor(log, restored.cursor)
        timed_steps, timed_seconds = float(restored.cursor["timed_steps"]), float(restored.cursor["timed_seconds"])
        state = layout.place(restored.state)
        if env.spec.backend in EXTERNAL_STATE_BACKENDS:
            fresh = init(keys, hparams)
            state = state._replace(env_state=fresh.env_state, obs=fresh.obs, action_mask=fresh.action_mask)
            if writer:
                print(
                    f"purejaxspi: note: resumed {out} at iteration {start_iteration}; {env.spec.backend} emulator "
                    f"state is not checkpointed, so every env starts a new episode (parameters, optimiser, keys restored)",
                    file=sys.stderr,
                )
        elif show_progress:
            print(f"resuming {out} at iteration {start_iteration} of {config.num_iterations} ({restored.path})")
    else:
        state = init(keys, hparams)
        if lifecycle.resume and show_progress:
            print(f"no checkpoint in {checkpoint.checkpoint_dir(out)} yet; starting {out} from iteration 0")

    purge_step = start_iteration * config.batch_size if lifecycle.resume else None
    sinks = _open_sinks(out, grid, record, lifecycle, purge_step) if writer else []
    manager = checkpoint.open_manager(out, keep=lifecycle.keep_checkpoints)
    plan = chunk_plan(config.num_iterations, chunk_iterations, start_iteration)
    total_steps = config.num_iterations * config.batch_size * grid.size
    status = 0
    start = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(
            f"{config.algo} {config.env_id} x{grid.size}" + (f" on {layout.num_devices} devices" * (layout.num_devices > 1)),
            total=total_steps, rate="-", median_return="-",
            visible=show_progress, completed=start_iteration * config.batch_size * grid.size,
        )
        if not show_progress:
            progress.stop()
        iteration = start_iteration
        for index, chunk_len in enumerate(plan):
            t0 = time.perf_counter()
            state, metrics = train_chunk(state, hparams, chunk_len)
            metrics = layout.gather(metrics)  # [R, chunk_len] on every process, padding dropped
            elapsed = time.perf_counter() - t0
            steps = chunk_len * config.batch_size * grid.size
            if index > 0 or len(plan) == 1:  # the first chunk of a process includes compilation
                timed_steps += steps
                timed_seconds += elapsed
            bad = first_nonfinite(metrics)
            log.write_chunk(metrics, iteration, None if bad is None else bad[1] + 1)
            for sink in sinks:
                sink.update()
            if bad is not None:
                run, it = bad
                if writer:
                    print(
                        f"purejaxspi: error: non-finite loss in run {run} (seed {grid.runs[run].seed}) at "
                        f"iteration {iteration + it}; metrics so far are in {metrics_path}",
                        file=sys.stderr,
                    )
                status = 1
                break
            iteration += chunk_len
            last = index == len(plan) - 1
            if last or (lifecycle.checkpoint_every and (index + 1) % lifecycle.checkpoint_every == 0):
                cursor = {"iteration": np.int64(iteration), "timed_steps": np.float64(timed_steps),
                          "timed_seconds": np.float64(timed_seconds), **checkpoint.log_cursor(log)}
                checkpoint.save(manager, iteration, layout.unpad(state), cursor)
            finite = log.latest_return[~np.isnan(log.latest_return)]
            progress.update(
                task,
                advance=steps,
                rate=f"{(timed_steps / timed_seconds) if timed_seconds else steps / elapsed:,.0f}",
                median_return=f"{np.median(finite):.2f}" if finite.size else "-",
            )
    manager.close()
    for sink in sinks:
        sink.close()
    log.close()
    wall = time.perf_counter() - start
    sps = timed_steps / timed_seconds if timed_seconds else total_steps / max(wall, 1e-9)
    if not writer:
        return status
    hns_per_run, hns_extra = hns.summary_fields(config.env_id, log.final_returns())
    summary = write_summary(
        out / "summary.json", config, grid, log.final_returns(), sps, {**log.probe_summary(), **hns_extra}, hns_per_run
    )
    if status == 0 and show_progress:
        print(
            f"{config.algo} on {config.env_id}: {grid.size} runs, median final return "
            f"{summary['final_return_median']}, IQM {summary['final_return_iqm']}, "
            f"{sps:,.0f} env steps/s, {wall:.0f}s wall; outputs in {out}"
        )
    return status


def _open_sinks(out: Path, grid, record: dict, lifecycle: Lifecycle, purge_step: int | None) -> list:
    """TensorBoard / W&B writers, each reading the rows appended to metrics.csv from now on."""
    from purejaxspi.tensorboard import CsvTail, TensorBoardLog, WandbLog

    sinks = []
    if lifecycle.tensorboard:
        sinks.append(TensorBoardLog(out, grid, CsvTail(out / "metrics.csv", CSV_COLUMNS), purge_step))
    if lifecycle.wandb_project:
        tail = CsvTail(out / "metrics.csv", CSV_COLUMNS)
        sinks.append(WandbLog(out, grid, tail, lifecycle.wandb_project, record, lifecycle.resume))
    return sinks
