"""What the command line shows of its own: one-line errors and their exit codes, notes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from typing import NoReturn

from purejaxspi.errors import UserError
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


@contextlib.contextmanager
def interrupts_end_in_one_line(then_ignore: bool = False):
    """SIGINT / SIGTERM / SIGHUP outside training (imports, parsing, evaluation, plots) end the process at
    once in one line, exit 128 + signal, no traceback; training answers them itself (lifecycle.guards).

    `then_ignore`: the process ends with the command, whose outputs are written by then, so a signal
    during the interpreter's exit is ignored rather than reporting a finished job as killed."""
    from purejaxspi.lifecycle.guards import stop_signals

    def stop(signum, frame):
        with contextlib.suppress(OSError, ValueError):  # a hung-up terminal takes the line with it
            print(f"purejaxspi: stopped by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if then_ignore else handler)
