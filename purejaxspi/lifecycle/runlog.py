"""A training job's words outlive its terminal: output that cannot stop the job.

A closed pipe (`train ... | head`, a `tee`, notebook or ssh session that died) or a hung-up terminal
makes every write to stdout or stderr fail; a job that let that error through would be abandoned
half-way with nothing saved. `Lasting` wraps each stream: the first write that fails points the
stream's descriptor at /dev/null (so writes from C code and the interpreter's last flush cannot fail
either), and what follows goes to the run directory's log, DIR/train.log, once the directory is
known. A log holds lines: a progress bar's redraws (carriage returns, escape codes) are dropped."""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from purejaxspi.lifecycle.rundir import LOG_FILE


def _redraw(text: str) -> bool:
    return "\x1b" in text or "\r" in text


class Lasting(io.TextIOBase):
    """A text stream whose writes never raise: after the first failure they go to `log` (or nowhere)."""

    def __init__(self, inner: Any, name: str, on_lost: Callable[[Lasting], None] | None = None):
        self.inner, self.stream_name, self.on_lost = inner, name, on_lost
        self.lost: str | None = None  # why the stream went, once it has
        self.log: Path | None = None
        self._told_log = False
        self._lock = threading.RLock()  # the signal thread writes too

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def isatty(self) -> bool:
        return self.lost is None and self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:  # type: ignore[override]
        with self._lock:
            if self.lost is None:
                try:
                    self.inner.write(text)
                    self.inner.flush()
                    return len(text)
                except (OSError, ValueError) as e:  # ValueError: the stream was closed under us
                    self._lose(e)
            self._to_log(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self.lost is None:
                try:
                    self.inner.flush()
                except (OSError, ValueError) as e:
                    self._lose(e)

    def _lose(self, error: BaseException) -> None:
        self.lost = getattr(error, "strerror", None) or str(error) or type(error).__name__
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.inner.fileno())
            os.close(null)
        with contextlib.suppress(OSError, ValueError):
            self.inner.flush()  # what it still holds goes to /dev/null now, not at exit
        if self.on_lost:
            self.on_lost(self)

    def follow(self, log: Path | None) -> None:
        """Send what this stream cannot show to `log` from now on."""
        with self._lock:
            self.log = log
            if self.lost is not None:
                self._to_log("")

    def _to_log(self, text: str) -> None:
        if self.log is None or _redraw(text):
            return
        with contextlib.suppress(OSError), open(self.log, "a") as f:
            if not self._told_log:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                f.write(f"purejaxspi: {self.stream_name} went away ({self.lost}) by {stamp}; its lines follow\n")
                self._told_log = True
            f.write(text)


class Streams:
    """stdout and stderr as `Lasting` streams for as long as the block runs; the one that goes says so
    on the other (where that one still shows) and in the log."""

    def __init__(self):
        self.out = Lasting(sys.stdout, "stdout", self._lost)
        self.err = Lasting(sys.stderr, "stderr", self._lost)
        self.log: Path | None = None

    def _lost(self, stream: Lasting) -> None:
        if stream is self.out and self.err.lost is None:
            where = f"its lines go to {self.log}" if self.log else "its lines are dropped"
            self.err.write(f"purejaxspi: note: stdout went away ({stream.lost}); training goes on, {where}\n")

    def follow(self, run_dir: Path) -> None:
        """Lines neither stream can show go to `run_dir`/train.log from now on."""
        self.log = run_dir / LOG_FILE
        self.out.follow(self.log)
        self.err.follow(self.log)

    def __enter__(self) -> Streams:
        self._previous = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err  # type: ignore[assignment]
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self._previous
