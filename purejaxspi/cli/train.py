"""`purejaxspi train`: a grid of runs (hyperparameter values x seeds) trained in one program."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from purejaxspi.algo.config import SMOKE_TEST
from purejaxspi.cli import flags
from purejaxspi.cli.view import ProgressView, fail, summary_line, user_message
from purejaxspi.errors import ConfigError, NonFiniteLossError, RunInterrupted, UserError
from purejaxspi.lifecycle.compilation_cache import CacheOptions
from purejaxspi.lifecycle.loop import RunOptions
from purejaxspi.lifecycle.rundir import default_run_dir
from purejaxspi.settings import setting


@dataclasses.dataclass(frozen=True)
class Selection:
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
    quiet: bool = setting(False, "No progress output.")
    resume: Path | None = setting(
        None,
        "Continue the run in this directory from its newest checkpoint; its config.json fills every flag left unset.",
    )
    distributed: bool = setting(
        False,
        "Join other processes through jax.distributed (implied when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES or "
        "JAX_PROCESS_ID is set).",
    )


TrainArgs = flags.make_args(
    "TrainArgs",
    Selection.__doc__,
    flags.option_flags(Selection)
    + flags.config_flags()
    + flags.hparam_flags()
    + flags.option_flags(RunOptions)
    + flags.option_flags(CacheOptions),
)


def parse_train(argv: list[str]):
    if not argv:
        print(
            f"purejaxspi: the main job: {Selection.algo} on {Selection.env}, {Selection.num_seeds} seeds on a smoke "
            f"test's budget ({', '.join(f'{k} {v:,}' for k, v in SMOKE_TEST.items())}); pass flags to run the "
            "preset (`purejaxspi train --help`)",
            file=sys.stderr,
        )
        return dataclasses.replace(TrainArgs(), **SMOKE_TEST)
    resume = flags.resume_dir(argv)
    defaults = None
    if resume is not None:
        from purejaxspi.lifecycle.rundir import read_record

        try:
            defaults = flags.args_from_record(TrainArgs, read_record(resume))
        except (UserError, TypeError) as e:
            fail(f"--resume {resume}: {e}")
    return flags.parse(TrainArgs, argv, "purejaxspi train", defaults)


def use_compilation_cache(args) -> None:
    from purejaxspi.lifecycle import compilation_cache

    compilation_cache.enable(wanted=getattr(args, "compilation_cache", None))


def prepare(args):
    """The run's Config, hyperparameter values, options and directory; fails with one line on bad input."""
    from purejaxspi.scale import distributed

    try:
        options = flags.declared_options(RunOptions, args, resume=bool(args.resume))
        options.check()
        if args.resume and args.out and args.out.resolve() != args.resume.resolve():
            raise ConfigError(f"--resume {args.resume} continues that directory; drop --out {args.out}")
        config, values = flags.resolve(args)
        if distributed.requested(args.distributed):
            distributed.initialize()
    except UserError as e:
        fail(user_message(e))
    if args.out is None and args.resume is None and distributed.process_count() > 1:
        fail("with several processes give --out: each process would name its own default directory")
    out = args.resume or args.out or default_run_dir(args.env, args.algo)
    return config, values, options, out


def train_cmd(args) -> int:
    use_compilation_cache(args)
    config, values, options, out = prepare(args)
    from purejaxspi.lifecycle.loop import train
    from purejaxspi.scale import distributed
    from purejaxspi.scale.grid import grid_from_values

    writer = distributed.is_writer()
    view = ProgressView(not args.quiet and writer, notes=writer)
    start = time.perf_counter()
    try:
        summary = train(config, grid_from_values(values, args.seed, args.num_seeds), out, options, view)
    except UserError as e:
        view.close()
        print(f"purejaxspi: error: {user_message(e)}", file=sys.stderr, flush=True)
        os._exit(2)  # orbax's reader threads may still be winding down; their shutdown noise is not the error
    except (NonFiniteLossError, RunInterrupted) as e:
        view.close()
        if writer:
            label = "error: " if isinstance(e, NonFiniteLossError) else ""
            print(f"purejaxspi: {label}{e}", file=sys.stderr, flush=True)
        return 1 if isinstance(e, NonFiniteLossError) else 128 + e.signum
    view.close()
    if not summary.get("complete", True) and writer:
        print(
            f"purejaxspi: stopped at the time limit ({options.time_limit:g} s) after iteration "
            f"{summary['iterations_done']} of {summary['num_iterations']}, checkpoint saved; continue with "
            f"`purejaxspi train --resume {out}`",
            file=sys.stderr,
            flush=True,
        )
    elif not args.quiet and writer:
        print(summary_line(summary, time.perf_counter() - start, out))
    return 0
