"""`purejaxspi bench`: env steps per second of the training program for grids of runs."""

from __future__ import annotations

from purejaxspi.analysis.bench import BENCH_AXES, BenchOptions
from purejaxspi.cli import flags
from purejaxspi.cli.view import Quiet
from purejaxspi.lifecycle.compilation_cache import CacheOptions

BenchArgs = flags.make_args(
    "BenchArgs",
    BenchOptions.__doc__,
    flags.option_flags(BenchOptions, Quiet, CacheOptions) + flags.config_flags(multi=BENCH_AXES),
)


def bench_cmd(args) -> int:
    from rich.console import Console

    from purejaxspi.analysis.bench import bench_progress, count_steps, make_plan, rows_table, run_bench, write_rows
    from purejaxspi.provenance import utc_now

    started = utc_now()
    flags.declared_options(CacheOptions, args).enable()
    options = flags.declared_options(BenchOptions, args)
    plan = make_plan(options, flags.overrides(args))
    with bench_progress(Console(stderr=True), args.quiet) as progress:
        task = progress.add_task(f"{options.env} {','.join(options.algos)}", total=count_steps(plan))
        rows = run_bench(plan, lambda: progress.advance(task))
    title = f"{options.env}, {plan.iterations} iterations x {plan.repeats} repeats (median)"
    Console(width=max(Console().width, 180)).print(rows_table(rows, title))  # wrapped by the terminal if narrower
    if args.json:
        write_rows(rows, args.json, started)
        print(f"wrote {args.json}")
    return 0
