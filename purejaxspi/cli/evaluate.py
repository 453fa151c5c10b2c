"""`purejaxspi eval DIR`: play episodes with a run directory's newest checkpoint."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import tyro

from purejaxspi.cli import flags
from purejaxspi.cli.train import use_compilation_cache
from purejaxspi.errors import UserError
from purejaxspi.lifecycle.compilation_cache import CacheOptions
from purejaxspi.lifecycle.evaluate import EvalOptions


@dataclasses.dataclass
class _RunDir:
    run_dir: tyro.conf.Positional[Path]
    """A `purejaxspi train` output directory."""


EvalArgs = flags.make_args(
    "EvalArgs",
    "Play episodes with the newest checkpoint of a training run (every run at once); writes DIR/eval.json.",
    flags.option_flags(EvalOptions) + flags.option_flags(CacheOptions),
    _RunDir,
)


def eval_cmd(args) -> int:
    from rich.console import Console

    from purejaxspi.lifecycle.evaluate import evaluate_dir

    use_compilation_cache(args)
    options = flags.declared_options(EvalOptions, args)
    try:
        with Console(stderr=True).status(f"playing {options.episodes} episodes per run in {args.run_dir}"):
            report, videos, note = evaluate_dir(args.run_dir, options)
    except UserError as e:
        print(f"purejaxspi: error: {e}", file=sys.stderr, flush=True)
        os._exit(2)  # as in train: orbax's reader threads may still be winding down
    if note:
        print(f"purejaxspi: note: {note}", file=sys.stderr, flush=True)
    unfinished = sum(options.episodes - r["episodes_finished"] for r in report["runs"])
    kind = "greedy" if options.greedy else "sampled"
    print(
        f"{report['algo']} on {report['env']} at iteration {report['iteration']}: {len(report['runs'])} runs x "
        f"{options.episodes} {kind} episodes, median mean return {report['mean_return_median']}, IQM "
        f"{report['mean_return_iqm']}"
        + (f", HNS median {report['hns_median']}" if "hns_median" in report else "")
        + (f"; {unfinished} episodes unfinished after {options.max_steps} steps" if unfinished else "")
        + f"; wrote {args.run_dir / 'eval.json'}"
        + (f" and {len(videos)} videos in {videos[0].parent}" if videos else "")
    )
    return 0
