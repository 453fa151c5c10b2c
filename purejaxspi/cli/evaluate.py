"""`purejaxspi eval DIR`: play episodes with a run directory's newest checkpoint."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import tyro

from purejaxspi.cli import flags
from purejaxspi.cli.view import note
from purejaxspi.errors import UserError
from purejaxspi.lifecycle.compilation_cache import CacheOptions
from purejaxspi.lifecycle.evaluate import EvalOptions


@dataclasses.dataclass
class _RunDir:
    run_dir: tyro.conf.Positional[Path]
    """A `purejaxspi train` output directory."""


EvalArgs = flags.make_args("EvalArgs", EvalOptions.__doc__, flags.option_flags(EvalOptions, CacheOptions), _RunDir)


def eval_cmd(args) -> int:
    from rich.console import Console

    from purejaxspi.lifecycle.evaluate import evaluate_dir
    from purejaxspi.lifecycle.report import eval_line

    flags.declared_options(CacheOptions, args).enable()
    o = flags.declared_options(EvalOptions, args)
    try:
        with Console(stderr=True).status(f"playing {o.episodes} episodes per run in {args.run_dir}"):
            report, videos, message = evaluate_dir(args.run_dir, o)
    except UserError as e:
        note(f"error: {e}")
        os._exit(2)  # as in train: orbax's reader threads may still be winding down
    if message:
        note(f"note: {message}")
    print(eval_line(report, o.episodes, o.greedy, o.max_steps, args.run_dir, videos))
    return 0
