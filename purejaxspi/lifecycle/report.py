"""What a run reports in words: the progress line of a log, the progress bar on a terminal, and the
closing lines. `ProgressPrinter` writes progress to the streams its caller hands it (the command
line's stdout and stderr); the rest returns text."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn


def duration(seconds: float | None) -> str:
    """H:MM:SS (M:SS under an hour; days spelled out), or "-" when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-"
    whole = int(round(seconds))
    days, whole = divmod(whole, 86_400)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes}:{secs:02d}"
    return f"{days} d {clock}" if days else clock


def eta_seconds(progress) -> float | None:
    """Seconds left at the pace measured so far."""
    if not progress.steps_per_second:
        return None
    return (progress.total_steps - progress.completed_steps) / progress.steps_per_second


def steps_per_run(progress) -> str:
    runs = max(1, progress.num_runs)
    return f"{progress.completed_steps // runs:,}/{progress.total_steps // runs:,} env steps per run"


def progress_line(progress, elapsed: float) -> str:
    """One chunk's plain line (a log file's progress): elapsed time, env steps per run and in all,
    the pace (env steps of all runs per second), the time left and the median return."""
    rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
    median = f"{progress.median_return:.2f}" if progress.median_return is not None else "-"
    percent = 100 * progress.completed_steps / max(1, progress.total_steps)
    return (
        f"{progress.description}: {duration(elapsed)} elapsed, {steps_per_run(progress)} "
        f"({progress.completed_steps:,} in all, {percent:.0f}%), {rate} steps/s, "
        f"ETA {duration(eta_seconds(progress))}, median return {median}"
    )


def plan_line(config, num_runs: int, budget: str | None, out: Path) -> str:
    """What a run will train, said before it compiles: runs, env steps per run and the budget's origin."""
    origin = f" ({budget})" if budget else ""
    return (
        f"{config.algo} on {config.env_id}: {num_runs} runs x {config.num_iterations * config.batch_size:,} env "
        f"steps{origin} into {out}; compiling"
    )


def estimate_line(progress, elapsed: float) -> str:
    """The wall time a run will take, once its first chunk is timed."""
    rate = progress.steps_per_second
    return (
        f"first chunk done after {duration(elapsed)}: about {duration(eta_seconds(progress))} to go at "
        f"{rate:,.0f} env steps/s (all runs)"
    )


def progress_bar(console: Any = None) -> Progress:
    """A rich progress bar with the time left first, so a narrow terminal keeps it."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=12),
        TextColumn("{task.percentage:>3.0f}% ETA {task.fields[eta]} ({task.fields[elapsed]} elapsed)"),
        TextColumn("{task.fields[steps]} env steps/run, {task.fields[rate]} steps/s, return {task.fields[median]}"),
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
    """A run's progress on `stream` (stdout): a rich bar on a terminal, plain lines (one per chunk)
    otherwise, and in words what will train and, once the first chunk is timed, how long it will take;
    notes (a resume, emulators restarted) go to `notes` (stderr) even when progress is not shown."""

    def __init__(self, show: bool, notes: Any = sys.stderr, stream: Any = None):
        self.show, self.notes, self.stream = show, notes, stream or sys.stdout
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None

    def note(self, text: str) -> None:
        if self.notes:
            print(f"purejaxspi: {text}", file=self.notes, flush=True)

    def say(self, text: str) -> None:
        """A line of progress in words (what will train, the time it will take), with the progress."""
        if self.show:
            target = self.bar.console if self.bar is not None else None
            if target is not None:
                target.print(f"purejaxspi: {text}", markup=False, highlight=False)
            else:
                print(f"purejaxspi: {text}", file=self.stream, flush=True)

    def __call__(self, progress) -> None:
        for text in progress.notes:
            self.note(f"note: {text}")
        if not self.show:
            return
        if self.bar is not None and not self.stream.isatty():  # the terminal went away: plain lines from now on
            self.close()
        elapsed = time.monotonic() - self.started
        if progress.chunk == 1 and progress.completed_steps < progress.total_steps and progress.steps_per_second:
            self.say(estimate_line(progress, elapsed))
        if not self.stream.isatty():
            if progress.chunk:
                print(progress_line(progress, elapsed), file=self.stream, flush=True)
            return
        fields = {
            "eta": duration(eta_seconds(progress)),
            "elapsed": duration(elapsed),
            "steps": f"{progress.completed_steps // max(1, progress.num_runs):,}",
            "rate": f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-",
            "median": f"{progress.median_return:.2f}" if progress.median_return is not None else "-",
        }
        if self.bar is None:
            from rich.console import Console

            self.bar = progress_bar(Console(file=self.stream))
            self.bar.start()
            self.task = self.bar.add_task(progress.description, total=progress.total_steps, **fields)
        self.bar.update(self.task, completed=progress.completed_steps, **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
