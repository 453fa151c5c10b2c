"""`purejaxspi train`: a grid of runs (hyperparameter values x seeds) trained in one program."""

from __future__ import annotations

import os
import sys
import time

from purejaxspi.cli import flags
from purejaxspi.cli.view import Quiet, fail, note, user_message
from purejaxspi.errors import NonFiniteLossError, RunInterrupted, UserError
from purejaxspi.lifecycle.compilation_cache import CacheOptions
from purejaxspi.lifecycle.job import Job
from purejaxspi.lifecycle.loop import RunOptions

OPTIONS = (Job, Quiet, RunOptions, CacheOptions)
TrainArgs = flags.make_args(
    "TrainArgs", Job.__doc__, flags.option_flags(*OPTIONS) + flags.config_flags() + flags.hparam_flags()
)


def parse_train(argv: list[str]):
    """The flags (with none, the main job: the default env and algorithm on the smoke budget);
    `--resume DIR` takes DIR's as defaults."""
    resume = flags.resume_dir(argv)
    try:
        defaults = flags.args_from_record(TrainArgs, resume) if resume is not None else None
    except (UserError, TypeError) as e:
        fail(f"--resume {resume}: {e}")
    return flags.parse(TrainArgs, argv, "purejaxspi train", defaults)


def stop_now(code: int) -> None:
    """A second signal: the line is out; leave the terminal usable and end the process."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[?25h\n")  # the progress bar hides the cursor
        sys.stdout.flush()
    os._exit(code)


def train_cmd(args) -> int:
    """The job, its words going to the run directory's train.log where the terminal or pipe goes away."""
    from purejaxspi.lifecycle.runlog import Streams

    with Streams() as streams:
        return train_job(args, streams)


def train_job(args, streams) -> int:
    from purejaxspi.lifecycle.job import plan_lines, prepare
    from purejaxspi.lifecycle.loop import train
    from purejaxspi.lifecycle.report import ProgressPrinter, plan_line, stopped_line, summary_line
    from purejaxspi.scale import distributed

    flags.declared_options(CacheOptions, args).enable()
    job, options = flags.declared_options(Job, args), flags.declared_options(RunOptions, args)
    prepared = prepare(job, flags.overrides(args), flags.hparams(args), options)
    if job.dry_run:
        print("\n".join(plan_lines(prepared)))
        return 0
    config, grid, options, out, budget = prepared
    writer = distributed.is_writer()
    if writer:
        streams.follow(out)
    view, start = ProgressPrinter(not args.quiet and writer, sys.stderr if writer else None), time.perf_counter()
    view.say(("resuming " if job.resume else "training ") + plan_line(config, grid.size, budget, out))
    try:
        summary = train(config, grid, out, options, view, on_signal=note if writer else None, exit_now=stop_now)
    except UserError as e:
        view.close()
        note(f"error: {user_message(e)}")
        os._exit(2)  # orbax's reader threads may still be winding down; their shutdown noise is not the error
    except (NonFiniteLossError, RunInterrupted) as e:
        view.close()
        diverged = isinstance(e, NonFiniteLossError)
        if writer:
            note(f"{'error: ' if diverged else ''}{e}")
        return 1 if diverged else 128 + getattr(e, "signum", 0)
    view.close()
    if not summary.get("complete", True) and writer:
        note(stopped_line(summary, options.time_limit or 0.0, out))
    elif not args.quiet and writer:
        print(summary_line(summary, time.perf_counter() - start, out))
    return 0
