"""One training session on the host: build the program, run it chunk by chunk, write the outputs."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

from purejaxspi import hns
from purejaxspi.config import Config
from purejaxspi.logging import MetricsLog, progress_bar, write_summary
from purejaxspi.runs import make_grid


def chunk_plan(num_iterations: int, chunk_iterations: int) -> list[int]:
    """Chunk lengths covering num_iterations: equal chunks and at most one shorter remainder."""
    size = chunk_iterations or max(1, math.ceil(num_iterations / 20))
    size = min(size, num_iterations)
    plan = [size] * (num_iterations // size)
    if num_iterations % size:
        plan.append(num_iterations % size)
    return plan


def first_nonfinite(metrics: dict[str, np.ndarray]) -> tuple[int, int] | None:
    """(run, chunk-relative iteration) of the first non-finite loss, or None."""
    bad = ~np.isfinite(metrics["total_loss"])
    if not bad.any():
        return None
    runs, iters = np.nonzero(bad)
    i = int(np.argmin(iters))
    return int(runs[i]), int(iters[i])


def run_training(
    config: Config,
    values: dict[str, list[float]],
    first_seed: int,
    num_seeds: int,
    out: Path,
    chunk_iterations: int = 0,
    show_progress: bool = True,
) -> int:
    from purejaxspi.envs import make_env
    from purejaxspi.train import make_train

    grid = make_grid(values, first_seed, num_seeds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps(
            {"config": dataclasses.asdict(config), "hparam_values": values, "seed": first_seed,
             "num_seeds": num_seeds, "num_runs": grid.size, "varied": list(grid.varied())},
            indent=2,
        )
        + "\n"
    )
    env = make_env(config.env_id, config.num_envs, tuple(r.seed for r in grid.runs), config.stochastic)
    trainer = make_train(config, env)
    hparams = grid.hparams()
    init = jax.jit(trainer.init)
    train_chunk = jax.jit(trainer.train_chunk, static_argnums=2, donate_argnums=0)

    log = MetricsLog(out / "metrics.csv", config, grid)
    plan = chunk_plan(config.num_iterations, chunk_iterations)
    total_steps = config.num_iterations * config.batch_size * grid.size
    status = 0
    start = time.perf_counter()
    timed_steps, timed_seconds = 0, 0.0
    with progress_bar() as progress:
        task = progress.add_task(
            f"{config.algo} {config.env_id} x{grid.size}", total=total_steps, rate="-", median_return="-",
            visible=show_progress,
        )
        if not show_progress:
            progress.stop()
        state = init(grid.keys(), hparams)
        iteration = 0
        for chunk_len in plan:
            t0 = time.perf_counter()
            state, metrics = train_chunk(state, hparams, chunk_len)
            metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
            elapsed = time.perf_counter() - t0
            steps = chunk_len * config.batch_size * grid.size
            if iteration > 0 or len(plan) == 1:  # the first chunk includes compilation
                timed_steps += steps
                timed_seconds += elapsed
            bad = first_nonfinite(metrics)
            log.write_chunk(metrics, iteration, None if bad is None else bad[1] + 1)
            if bad is not None:
                run, it = bad
                print(
                    f"purejaxspi: error: non-finite loss in run {run} (seed {grid.runs[run].seed}) at "
                    f"iteration {iteration + it}; metrics so far are in {out / 'metrics.csv'}",
                    file=sys.stderr,
                )
                status = 1
                break
            iteration += chunk_len
            finite = log.latest_return[~np.isnan(log.latest_return)]
            progress.update(
                task,
                advance=steps,
                rate=f"{(timed_steps / timed_seconds) if timed_seconds else steps / elapsed:,.0f}",
                median_return=f"{np.median(finite):.2f}" if finite.size else "-",
            )
    log.close()
    wall = time.perf_counter() - start
    sps = timed_steps / timed_seconds if timed_seconds else total_steps / wall
    hns_per_run, hns_extra = hns.summary_fields(config.env_id, log.final_returns())
    summary = write_summary(
        out / "summary.json", config, grid, log.final_returns(), sps, hns_extra, hns_per_run
    )
    if status == 0 and show_progress:
        print(
            f"{config.algo} on {config.env_id}: {grid.size} runs, median final return "
            f"{summary['final_return_median']}, IQM {summary['final_return_iqm']}, "
            f"{sps:,.0f} env steps/s, {wall:.0f}s wall; outputs in {out}"
        )
    return status
