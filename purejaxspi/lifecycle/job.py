"""A training job as a command states it: the env, algorithm and settings, the seeds and where the run
goes, resolved through the presets into a Config, a grid of runs and a run directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

from purejaxspi.algo.config import BUDGETS, Config, budget_name, budget_settings, hparam_values, make_config
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
    Each run trains the smoke budget (24,576 env steps, 32 envs x 32 steps: a minute on a 2-core CPU)
    unless --budget preset or --total-timesteps says otherwise; output flags never change what trains.
    SIGTERM, SIGHUP or Ctrl-C: the chunk in flight (seconds) ends, a checkpoint is saved, exit 128 +
    signal; a second Ctrl-C stops at once, keeping the last checkpoint; --resume DIR continues. Lines
    a closed pipe or terminal cannot show go to DIR/train.log; the run goes on.
    """

    env: str = setting("Breakout-MinAtar", "Environment id (`purejaxspi envs` lists them).")
    algo: str = setting("deepspi", "deepspi, deepmdp or ppo.")
    budget: str | None = setting(
        None,
        "How long each run trains: smoke (the default: 24,576 env steps on 32 envs x 32 steps, a check that "
        "everything runs) or preset (the preset's budget and batch shape, e.g. 10M env steps on MinAtar: hours on "
        "a CPU). --total-timesteps N instead trains N env steps per run on the preset's batch shape.",
        choices=BUDGETS,
    )
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
    dry_run: bool = setting(
        False,
        "Check the command and print its plan (runs, env steps, batch shape, devices, the state's memory), then "
        "stop: nothing is compiled or written.",
    )


class Prepared(NamedTuple):
    """A job resolved: what trains, how, where, and where its budget came from (in words)."""

    config: Config
    grid: RunGrid
    options: RunOptions
    out: Path
    budget: str | None  # None for a resumed run, whose budget is its own


def prepare(job: Job, settings: dict[str, Any], hparams: dict[str, Any], options: RunOptions) -> Prepared:
    """The job's Config (the preset, the budget, then `settings`), its grid (`hparams`' values x the
    seeds), its options and its run directory, every input checked first (typed errors, one line
    each); joins the other processes where the job is distributed."""
    options = dataclasses.replace(options, resume=job.resume is not None)
    options.check()
    if job.resume and job.out and job.out.resolve() != job.resume.resolve():
        raise ConfigError(f"--resume {job.resume} continues that directory; drop --out {job.out}")
    preset_steps = make_config(job.env, job.algo, settings=job.settings).run.total_timesteps
    budget = None if job.resume else budget_name(job.budget, settings, preset_steps)
    config = make_config(job.env, job.algo, settings=job.settings, **budget_settings(job.budget, settings))
    grid = grid_from_values(hparam_values(config, **hparams), job.seed, job.num_seeds)
    if distributed.requested(job.distributed):
        distributed.initialize()
    if job.out is None and job.resume is None and distributed.process_count() > 1:
        raise ConfigError("with several processes give --out: each process would name its own default directory")
    return Prepared(config, grid, options, job.resume or job.out or default_run_dir(job.env, job.algo), budget)


def plan_lines(job: Prepared) -> list[str]:
    """What a job would train and where, without compiling or writing anything (`train --dry-run`); raises
    the errors training would raise first (an occupied --out, a record that does not match, a device count
    the machine lacks)."""
    import jax
    import numpy as np

    from purejaxspi.envs import check_run_seeds, env_for
    from purejaxspi.lifecycle import checkpoint
    from purejaxspi.lifecycle.rundir import check_kinds, check_out_dir, read_record
    from purejaxspi.scale.mapping import make_trainer
    from purejaxspi.scale.sharding import make_layout

    config, grid, options, out = job.config, job.grid, job.options, job.out
    check_run_seeds(config.env_id, tuple(r.seed for r in grid.runs), config.env.num_envs)
    check_out_dir(out, options.resume, options.overwrite)
    if options.resume:
        read_record(out)
        check_kinds(out)
    layout = make_layout(grid.size, options.num_devices)
    env = env_for(config.env, None, tuple(r.seed for r in grid.runs))
    state = jax.eval_shape(make_trainer(config, env).init, grid.keys(), grid.hparams())
    state_bytes = sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(state))
    devices = list(layout.mesh.devices.flat)
    kind = devices[0].platform + (
        f" ({devices[0].device_kind})" if devices[0].device_kind != devices[0].platform else ""
    )
    settings = grid.size // grid.num_seeds
    steps = checkpoint.all_steps(out) if options.resume else []
    start = f"resumes at iteration {steps[0]}" if steps else ("starts from iteration 0" if options.resume else "new")
    varied = ", ".join(f"{name} {list(values)}" for name, values in (grid.values or {}).items() if len(values) > 1)
    return [
        f"{config.algo} on {config.env_id}: {grid.size} runs ({settings} setting{'s' * (settings > 1)} x "
        f"{grid.num_seeds} seeds{'; ' + varied if varied else ''}) x {config.num_iterations * config.batch_size:,} "
        f"env steps ({job.budget or 'its own budget'})",
        f"batch: {config.env.num_envs} envs x {config.ppo.num_steps} steps = {config.batch_size:,} env steps an "
        f"iteration, {config.num_iterations:,} iterations, {config.ppo.num_minibatches} minibatches x "
        f"{config.ppo.update_epochs} epochs",
        f"devices: {layout.padded_runs // len(devices)} run(s) on each of {len(devices)} {kind} device(s)",
        f"memory: {state_bytes / 2**20:,.1f} MiB of training state for all runs; the compiled program adds its "
        f"rollout and scratch, checked against free memory before training",
        f"out: {out} ({start}); --dry-run: nothing compiled or written",
    ]
