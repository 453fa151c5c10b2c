"""`purejaxspi plot DIR...`: learning curves and aggregates, or a sweep's heatmaps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro

from purejaxspi.analysis.figures import PlotOptions
from purejaxspi.cli import flags


@dataclasses.dataclass
class _RunDirs:
    run_dirs: tyro.conf.Positional[tuple[Path, ...]]
    """One or more `purejaxspi train` output directories."""


PlotArgs = flags.make_args("PlotArgs", PlotOptions.__doc__, flags.option_flags(PlotOptions), _RunDirs)


def plot_cmd(args) -> int:
    from purejaxspi.analysis.figures import draw

    print(draw(list(args.run_dirs), flags.declared_options(PlotOptions, args)))
    return 0
