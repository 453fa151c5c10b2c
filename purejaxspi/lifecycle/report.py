"""What a run reports in words: the progress line of a log, the progress bar on a terminal, and the
closing lines. `ProgressPrinter` writes progress to the streams its caller hands it (the command
line's stdout and stderr); the rest returns text."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def rate_and_median(progress) -> tuple[str, str]:
    rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
    median = f"{progress.median_return:.2f}" if progress.median_return is not None else "-"
    return rate, median


def progress_line(progress) -> str:
    """One chunk's plain line (a log file's progress)."""
    rate, median = rate_and_median(progress)
    percent = 100 * progress.completed_steps / progress.total_steps
    return (
        f"{progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps "
        f"({percent:.0f}%), {rate} steps/s, median return {median}"
    )


def progress_bar(console: Any = None) -> Progress:
    """A rich progress bar over env steps (all runs together), with steps/s and the median return."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} env steps"),
        TextColumn("{task.fields[rate]} steps/s"),
        TextColumn("median return {task.fields[median_return]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def summary_line(summary: dict, wall: float, out: Path) -> str:
    """The closing line of a training run, its numbers rounded for reading."""

    def num(x):
        return "-" if x is None else f"{x:.2f}"

    extra = ""
    if summary.get("median_final_init_value") is not None:
        extra = f", median final V(I) {num(summary['median_final_init_value'])}"
    settings = [s for s in summary.get("settings", []) if s["final_return_iqm"] is not None]
    if len(settings) > 1:  # a sweep: name its best setting
        best = max(settings, key=lambda s: s["final_return_iqm"])
        values = " ".join(f"{k}={v:g}" for k, v in best["hparams"].items())
        extra += f"; best of {len(summary['settings'])} settings: {values} (IQM {num(best['final_return_iqm'])})"
    return (
        f"{summary['algo']} on {summary['env']}: {len(summary['runs'])} runs, median final return "
        f"{num(summary['final_return_median'])}, IQM {num(summary['final_return_iqm'])}{extra}, "
        f"{summary['env_steps_per_second']:,.0f} env steps/s, {wall:.0f}s wall; outputs in {out}"
    )


def stopped_line(summary: dict, time_limit: float, out: Path) -> str:
    """The closing line of a run stopped at its time limit."""
    return (
        f"stopped at the time limit ({time_limit:g} s) after iteration {summary['iterations_done']} of "
        f"{summary['num_iterations']}, checkpoint saved; continue with `purejaxspi train --resume {out}`"
    )


def eval_line(report: dict, episodes: int, greedy: bool, max_steps: int, run_dir: Path, videos: list[Path]) -> str:
    """The closing line of an evaluation."""
    unfinished = sum(episodes - r["episodes_finished"] for r in report["runs"])
    kind = "greedy" if greedy else "sampled"
    return (
        f"{report['algo']} on {report['env']} at iteration {report['iteration']}: {len(report['runs'])} runs x "
        f"{episodes} {kind} episodes, median mean return {report['mean_return_median']}, IQM "
        f"{report['mean_return_iqm']}"
        + (f", HNS median {report['hns_median']}" if "hns_median" in report else "")
        + (f"; {unfinished} episodes unfinished after {max_steps} steps" if unfinished else "")
        + f"; wrote {run_dir / 'eval.json'}"
        + (f" and {len(videos)} videos in {videos[0].parent}" if videos else "")
    )


class ProgressPrinter:
    """A run's progress on `stream`: a rich bar on a terminal, plain lines (one per chunk) otherwise;
    notes (a resume, emulators restarted) go to `notes` (stderr) even when progress is not shown."""

    def __init__(self, show: bool, notes: Any = sys.stderr, stream: Any = None):
        self.show, self.notes, self.stream = show, notes, stream or sys.stdout
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, progress) -> None:
        for text in progress.notes if self.notes else ():
            print(f"purejaxspi: note: {text}", file=self.notes, flush=True)
        if not self.show:
            return
        if not self.stream.isatty():
            if progress.chunk:
                print(progress_line(progress), file=self.stream, flush=True)
            return
        rate, median = rate_and_median(progress)
        if self.bar is None:
            from rich.console import Console

            self.bar = progress_bar(Console(file=self.stream))
            self.bar.start()
            self.task = self.bar.add_task(
                progress.description, total=progress.total_steps, rate=rate, median_return=median
            )
        self.bar.update(self.task, completed=progress.completed_steps, rate=rate, median_return=median)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
