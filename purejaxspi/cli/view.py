"""What the command line shows: one-line errors and their exit codes, progress, tables, closing lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

from purejaxspi.errors import UserError


def fail(message: str, code: int = 2) -> NoReturn:
    """One line to stderr and a clean exit: bad input never ends in a traceback."""
    print(f"purejaxspi: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def user_message(error: UserError) -> str:
    """The error's line, naming the flag where the library names a setting."""
    from purejaxspi.cli.flags import FLAGS, flag

    message = str(error)
    setting = getattr(error, "setting", None)
    if setting and message.startswith(setting):
        message = flag(FLAGS.get(setting, setting)) + message[len(setting) :]
    return message


def print_table(rows: list[list[str]]) -> None:
    """Left-aligned columns, the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ProgressView:
    """Progress of a training run: a rich bar on a terminal, plain lines (one per chunk) otherwise.

    Notes (a resume, emulators restarted) go to stderr even when the progress itself is not shown.
    """

    def __init__(self, show: bool, notes: bool = True, stream=None):
        self.show, self.notes, self.stream = show, notes, stream or sys.stdout
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, progress) -> None:
        if self.notes:
            for note in progress.notes:
                print(f"purejaxspi: note: {note}", file=sys.stderr, flush=True)
        if not self.show:
            return
        rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
        median = f"{progress.median_return:.2f}" if progress.median_return is not None else "-"
        if not self.stream.isatty():
            if progress.chunk:
                percent = 100 * progress.completed_steps / progress.total_steps
                print(
                    f"{progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps "
                    f"({percent:.0f}%), {rate} steps/s, median return {median}",
                    file=self.stream,
                    flush=True,
                )
            return
        if self.bar is None:
            self.bar = _bar(self.stream)
            self.bar.start()
            self.task = self.bar.add_task(
                progress.description, total=progress.total_steps, rate=rate, median_return=median
            )
        self.bar.update(self.task, completed=progress.completed_steps, rate=rate, median_return=median)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _bar(stream):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} env steps"),
        TextColumn("{task.fields[rate]} steps/s"),
        TextColumn("median return {task.fields[median_return]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
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


def run_with_bar(plan, description: str, quiet: bool) -> list[dict]:
    """Run a bench plan under a bar counting its compilations and timed calls."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from purejaxspi.analysis.bench import count_steps, run_bench

    columns = (
        TextColumn("[bold]bench {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("compilations and timed calls"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task(description, total=count_steps(plan))
        return run_bench(plan, lambda: progress.advance(task))


def bench_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from purejaxspi.analysis.bench import format_rows

    cells = format_rows(rows)
    table = Table(title=title)
    for name in cells[0]:
        table.add_column(name, justify="right")
    for row in cells[1:]:
        table.add_row(*row)
    Console(width=max(Console().width, 180)).print(table)  # the whole table, wrapped by the terminal if narrower
