"""What the command line shows: one-line errors and their exit codes, progress, tables."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, NoReturn

from purejaxspi.errors import UserError
from purejaxspi.lifecycle.report import progress_bar, progress_line, rate_and_median
from purejaxspi.settings import setting


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


@dataclasses.dataclass(frozen=True)
class Quiet:
    quiet: bool = setting(False, "No progress output.")


def note(text: str) -> None:
    print(f"purejaxspi: {text}", file=sys.stderr, flush=True)


class ProgressView:
    """Progress of a training run: a rich bar on a terminal, plain lines (one per chunk) otherwise.

    Notes (a resume, emulators restarted) go to stderr even when the progress itself is not shown.
    """

    def __init__(self, show: bool, notes: bool = True, stream=None):
        self.show, self.notes, self.stream = show, notes, stream or sys.stdout
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, progress) -> None:
        for text in progress.notes if self.notes else ():
            note(f"note: {text}")
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
