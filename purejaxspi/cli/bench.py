"""`purejaxspi bench`: env steps per second of the training program for grids of runs."""

from __future__ import annotations

import dataclasses
import itertools

from purejaxspi.analysis.bench import BENCH_AXES, BenchOptions
from purejaxspi.cli import flags
from purejaxspi.cli.train import use_compilation_cache
from purejaxspi.cli.view import fail, user_message
from purejaxspi.errors import ConfigError, UserError
from purejaxspi.lifecycle.compilation_cache import CacheOptions
from purejaxspi.settings import setting


@dataclasses.dataclass(frozen=True)
class Selection:
    """Measure env steps per second of the training program for grids of runs (and sequential runs, env-only).

    Takes the train command's settings; unset values come from the env's preset.
    """

    env: str = setting("Breakout-MinAtar", "Environment id (`purejaxspi envs` lists them).")
    algo: tuple[str, ...] = setting(
        ("deepspi",), "One or more of deepspi, deepmdp, ppo (with ppo, each row reports its time per iteration vs ppo)."
    )
    settings: str | None = setting(None, "Whose preset fills every unset flag, for every algo (default: each's own).")
    quiet: bool = setting(False, "No progress bar.")


BenchArgs = flags.make_args(
    "BenchArgs",
    Selection.__doc__,
    flags.option_flags(Selection)
    + flags.option_flags(BenchOptions)
    + flags.option_flags(CacheOptions)
    + flags.config_flags(multi=BENCH_AXES),
)


def bench_plan(args):
    """The BenchPlan of the flags: one config per algo and value of each bench axis."""
    from purejaxspi.analysis.bench import make_plan

    if not args.algo:
        raise ConfigError("--algo needs at least one value")
    axes = [getattr(args, name) or (None,) for name in BENCH_AXES]
    configs, values = [], []
    for algo, *point in itertools.product(dict.fromkeys(args.algo), *map(dict.fromkeys, axes)):
        given = {name: value for name, value in zip(BENCH_AXES, point) if value is not None}
        config, algo_values = flags.resolve(args, algo=algo, **given)
        configs.append(config)
        values.append(algo_values)
    return make_plan(configs, values, flags.declared_options(BenchOptions, args))


def bench_cmd(args) -> int:
    from purejaxspi.analysis.bench import write_rows
    from purejaxspi.cli.view import bench_table, run_with_bar

    use_compilation_cache(args)
    try:
        plan = bench_plan(args)
    except UserError as e:
        fail(user_message(e))
    rows = run_with_bar(plan, f"{args.env} {','.join(args.algo)}", args.quiet)
    bench_table(rows, f"{args.env}, {plan.iterations} iterations x {plan.repeats} repeats (median)")
    if args.json:
        try:
            write_rows(rows, args.json)
        except UserError as e:
            fail(str(e))
        print(f"wrote {args.json}")
    return 0
