"""`purejaxspi plot`: what to draw from run directories, checked, and the figure it draws (learning
curves and aggregates, or a sweep's heatmaps)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from purejaxspi.errors import PlotError
from purejaxspi.lifecycle.rundir import check_writable
from purejaxspi.settings import check_part, setting
from purejaxspi.versions import require

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


@dataclasses.dataclass(frozen=True)
class PlotOptions:
    """Learning curves (IQM or mean over seeds, bootstrap band) and rliable aggregates of training runs."""

    out: Path = setting(Path("plot.png"), "The figure; its numbers go to the same name with .json.")
    metric: str = setting("episodic_return", "Any metrics.csv column.")
    aggregate: str = setting("iqm", "iqm or mean across seeds, for the curves.", choices=("iqm", "mean"))
    bins: int = setting(50, "Env-step bins along the x axis.", bound="positive")
    reps: int = setting(2000, "Bootstrap resamples for the confidence intervals.", bound="positive")
    gap_threshold: float | None = setting(
        None, "Optimality-gap target (default 1 for normalised scores, else the best final score plotted)."
    )
    seed: int = setting(0, "Bootstrap seed.", bound="nonnegative")
    heatmap: tuple[str, str] | None = setting(
        None,
        "X Y: a sweep over two hyperparameters (e.g. reward_coef transition_coef): one heatmap per env of the "
        "final metric (IQM or mean over seeds, CI in each cell), and the curves of the best cell, of the cell "
        "where both are 0 and of the --highlight cells.",
    )
    highlight: tuple[float, ...] = setting(
        (), "With --heatmap: X Y values of cells whose curves are drawn too (pairs, e.g. 0.01 0.0005)."
    )
    labels: tuple[str, ...] = setting(
        (),
        "Legend names of the compared settings, in the order the run directories first show them (default: the "
        "algorithm and the fewest settings that tell them apart).",
    )

    def check(self) -> None:
        check_part(self)
        if self.out.suffix.lower() not in FIGURE_SUFFIXES:
            raise PlotError(f"--out {self.out}: use a .png, .pdf or .svg file name")
        if len(self.highlight) % 2:
            raise PlotError("--highlight takes pairs of values (X Y), one pair per cell")
        if self.highlight and self.heatmap is None:
            raise PlotError("--highlight needs --heatmap X Y")
        if self.labels and self.heatmap is not None:
            raise PlotError("--labels names the compared settings of a plot; a heatmap names its cells by X and Y")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PlotError(f"--out {self.out}: cannot create its folder: {e.strerror or e}") from None
        for path in (self.out, self.out.with_suffix(".json")):
            check_writable(path, "--out")


def draw(run_dirs: list[Path], options: PlotOptions) -> str:
    """Draw the figure and its numbers; returns a line saying what was drawn. Raises PlotError."""
    from purejaxspi.analysis.plot import plot
    from purejaxspi.analysis.sweep import heatmap

    options.check()
    require("plot", "matplotlib", "rliable")
    if not run_dirs:
        raise PlotError("give one or more `purejaxspi train` output directories to plot")
    o, written = options, f"wrote {options.out} and {options.out.with_suffix('.json')}"
    try:
        if o.heatmap is not None:
            pairs = list(zip(o.highlight[::2], o.highlight[1::2]))
            sweep = heatmap(run_dirs, o.out, *o.heatmap, o.metric, o.aggregate, o.bins, o.reps, o.seed, pairs)
            cells = sum(len(p["cells"]) for p in sweep["panels"])
            return f"{cells} cells in {len(sweep['panels'])} heatmap(s): {written}"
        summary = plot(run_dirs, o.out, o.metric, o.aggregate, o.bins, o.reps, o.seed, o.gap_threshold, o.labels)
    except OSError as e:
        raise PlotError(f"--out {o.out}: cannot write the plot: {e.strerror or e}") from None
    return f"{len(summary['groups'])} settings over {len(summary['envs'])} env(s): {written}"
