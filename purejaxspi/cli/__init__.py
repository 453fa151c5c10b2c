"""`purejaxspi train | eval | plot | envs | presets | info | bench`: the command line, typed with tyro.

A thin layer: flags generated from the library's declarations (cli.flags), the API called, and the
library's typed errors turned into one line and exit code 2 (1 for a diverged run; cli.view)."""

from __future__ import annotations

import os
import sys


def commands() -> dict:
    from purejaxspi.cli import bench, evaluate, info, plot, train

    return {
        "train": (train.TrainArgs, train.train_cmd),
        "eval": (evaluate.EvalArgs, evaluate.eval_cmd),
        "plot": (plot.PlotArgs, plot.plot_cmd),
        "envs": (info.EnvsArgs, info.envs_cmd),
        "presets": (info.PresetsArgs, info.presets_cmd),
        "info": (info.InfoArgs, info.info_cmd),
        "bench": (bench.BenchArgs, bench.bench_cmd),
    }


def main(argv: list[str] | None = None) -> int:
    from purejaxspi.cli.view import interrupts_end_in_one_line

    # without `argv` it is this process's own command line, and the process ends with the command
    with interrupts_end_in_one_line(then_ignore=argv is None):
        return run_command(sys.argv[1:] if argv is None else argv)


def run_command(argv: list[str]) -> int:
    if argv and argv[0] in ("-V", "--version"):
        from purejaxspi.provenance import package_version

        print(f"purejaxspi {package_version()}")
        return 0
    if argv and argv[0] in ("train", "bench", "info"):
        from purejaxspi.scale.devices import use_every_core

        use_every_core()
    if argv and argv[0] in ("train", "bench", "eval"):
        from purejaxspi.versions import jax_range, warning_line

        if line := warning_line(jax_range()):
            print(f"purejaxspi: warning: {line}", file=sys.stderr)
    from purejaxspi.cli import flags, train
    from purejaxspi.cli.view import fail, user_message
    from purejaxspi.errors import UserError

    table = commands()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: purejaxspi {" + ",".join(table) + "} [--help] ...   or   purejaxspi --version")
        for name, (cls, _) in table.items():
            print(f"  {name:8s} {cls.__doc__.splitlines()[0]}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in table:
        fail(f"unknown command {command!r}; choose one of {', '.join(table)}")
    cls, fn = table[command]
    args = train.parse_train(rest) if command == "train" else flags.parse(cls, rest, f"purejaxspi {command}")
    try:
        return fn(args) or 0
    except UserError as e:
        fail(user_message(e))
    except BrokenPipeError:  # the reader of our output left (`purejaxspi envs | head`): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:  # jax's backend failing to start surfaces wherever a device is first touched
        from purejaxspi.scale.devices import backend_error

        if (error := backend_error()) is None:
            raise
        fail(str(error))
