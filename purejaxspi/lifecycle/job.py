"""A training job as a command states it: the env, algorithm and settings, the seeds and where the run
goes, resolved through the presets into a Config, a grid of runs and a run directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from purejaxspi.algo.config import Config, hparam_values, make_config
from purejaxspi.errors import ConfigError
from purejaxspi.lifecycle.loop import RunOptions
from purejaxspi.lifecycle.rundir import default_run_dir
from purejaxspi.scale import distributed
from purejaxspi.scale.grid import RunGrid, grid_from_values
from purejaxspi.settings import setting


@dataclasses.dataclass(frozen=True)
class Job:
    """Train Deep SPI, DeepMDP or PPO on a grid of runs (hyperparameter values x seeds) in one program.

    Every hyperparameter flag takes one or more values; the grid is their product times the seeds.
    Unset values come from the env's preset (vector, MinAtar, Atari, the gridworld): see each flag.
    With no flags at all it runs the main job, a smoke test: the default env and algorithm's preset
    on 24,576 env steps per run (32 envs x 32 steps).
    """

    env: str = setting("Breakout-MinAtar", "Environment id (`purejaxspi envs` lists them).")
    algo: str = setting("deepspi", "deepspi, deepmdp or ppo.")
    settings: str | None = setting(
        None,
        "Whose preset fills every unset flag: deepspi, deepmdp or ppo (default: the algorithm's own, as the paper "
        "ran it). The same value for all three algorithms is the same-settings ablation; `purejaxspi presets` "
        "prints them.",
    )
    seed: int = setting(0, "First seed; runs use seeds seed .. seed+num_seeds-1.")
    num_seeds: int = setting(16, "Seeds per hyperparameter setting.")
    out: Path | None = setting(None, "Output directory (default runs/<env>-<algo>-<time>).")
    resume: Path | None = setting(
        None,
        "Continue the run in this directory from its newest checkpoint; its config.json fills every flag left unset.",
    )
    distributed: bool = setting(
        False,
        "Join other processes through jax.distributed (implied when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES or "
        "JAX_PROCESS_ID is set).",
    )


def prepare(
    job: Job, settings: dict[str, Any], hparams: dict[str, Any], options: RunOptions
) -> tuple[Config, RunGrid, RunOptions, Path]:
    """The job's Config (the preset, then `settings`), its grid (`hparams`' values x the seeds), its
    options and its run directory, every input checked first (typed errors, one line each); joins
    the other processes where the job is distributed."""
    options = dataclasses.replace(options, resume=job.resume is not None)
    options.check()
    if job.resume and job.out and job.out.resolve() != job.resume.resolve():
        raise ConfigError(f"--resume {job.resume} continues that directory; drop --out {job.out}")
    config = make_config(job.env, job.algo, settings=job.settings, **settings)
    grid = grid_from_values(hparam_values(config, **hparams), job.seed, job.num_seeds)
    if distributed.requested(job.distributed):
        distributed.initialize()
    if job.out is None and job.resume is None and distributed.process_count() > 1:
        raise ConfigError("with several processes give --out: each process would name its own default directory")
    return config, grid, options, job.resume or job.out or default_run_dir(job.env, job.algo)
