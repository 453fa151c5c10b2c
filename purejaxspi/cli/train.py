"""`purejaxspi train`: a grid of runs (hyperparameter values x seeds) trained in one program."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from purejaxspi.algo.config import SMOKE_TEST
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
    """The flags; none at all is the main job (the smoke test), `--resume DIR` takes DIR's as defaults."""
    if not argv:
        budget = ", ".join(f"{k} {v:,}" for k, v in SMOKE_TEST.items())
        job = f"{Job.algo} on {Job.env}, {Job.num_seeds} seeds on a smoke test's budget ({budget})"
        note(f"the main job: {job}; pass flags to run the preset (`purejaxspi train --help`)")
        return dataclasses.replace(TrainArgs(), **SMOKE_TEST)
    resume = flags.resume_dir(argv)
    try:
        defaults = flags.args_from_record(TrainArgs, resume) if resume is not None else None
    except (UserError, TypeError) as e:
        fail(f"--resume {resume}: {e}")
    return flags.parse(TrainArgs, argv, "purejaxspi train", defaults)


def train_cmd(args) -> int:
    from purejaxspi.lifecycle.job import prepare
    from purejaxspi.lifecycle.loop import train
    from purejaxspi.lifecycle.report import ProgressPrinter, stopped_line, summary_line
    from purejaxspi.scale import distributed

    flags.declared_options(CacheOptions, args).enable()
    job, options = flags.declared_options(Job, args), flags.declared_options(RunOptions, args)
    try:
        config, grid, options, out = prepare(job, flags.overrides(args), flags.hparams(args), options)
    except UserError as e:
        fail(user_message(e))
    writer = distributed.is_writer()
    view, start = ProgressPrinter(not args.quiet and writer, sys.stderr if writer else None), time.perf_counter()
    try:
        summary = train(config, grid, out, options, view)
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
