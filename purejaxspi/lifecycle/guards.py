"""What keeps a run's outputs safe from the machine and the user: one writer per run directory, a
memory check before anything is allocated, disk-full errors that say what survived, and SIGINT /
SIGTERM / SIGHUP turned into a checkpoint at the next chunk boundary."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from purejaxspi.errors import DiskFullError, ResourceError, RunDirError
from purejaxspi.host import host_available_bytes
from purejaxspi.lifecycle.rundir import LOCK_FILE

# A signal again within this time is the same one delivered twice, not a second request: a closing
# terminal or a scheduler signals the whole process group, and `uv run` forwards the same signal to us.
SAME_SIGNAL_SECONDS = 0.3
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "File too large")


@contextlib.contextmanager
def run_dir_lock(out: Path, enabled: bool = True):
    """Hold an exclusive lock on `out` while a run writes it; a second writer gets RunDirError.

    flock is released by the OS when the process dies, so a killed run never leaves a stale lock.
    """
    if not enabled:
        yield
        return
    import fcntl

    path = out / LOCK_FILE
    handle = open(path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the handle)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(
            f"{out} is being written by another train process ({holder}); wait for it or pick another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()


def is_disk_full(error: BaseException) -> bool:
    """Whether an error (or one it wraps, as orbax and tensorstore do) is a full disk or a size limit."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return True
        if any(text in str(error) for text in _DISK_FULL_TEXT):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def disk_full_as(what: str, out: Path, iteration: int | None):
    """Turn a full disk while writing `what` into DiskFullError naming what is intact and how to go on."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        saved = f"the checkpoint at iteration {iteration} is intact" if iteration else "no checkpoint was saved yet"
        raise DiskFullError(
            f"no space left writing {what} in {out} ({saved}); free space, then "
            f"`purejaxspi train --resume {out}` continues"
        ) from None


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a job: Ctrl-C, a scheduler's preemption, and the terminal or ssh session
    going away (SIGHUP), except where the job was started to outlive its terminal (`nohup` ignores SIGHUP)."""
    hangup = signal.getsignal(signal.SIGHUP) != signal.SIG_IGN
    return (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hangup else ())


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP (`stop_signals`) while a run is prepared and trained.

    The first is recorded (`signum`) for the loop to stop at the next chunk boundary with a checkpoint,
    and `announce`d at once: a thread reads each signal from the interpreter's wakeup pipe, so the line
    comes even while the main thread waits on a compile or the device, where Python's own handlers
    would wait with it. A second signal (more than SAME_SIGNAL_SECONDS later) stops at once: with
    `exit_now` the thread calls it with 128 + the signal (the last checkpoint stays intact, as saves
    are atomic); without it the main thread gets a KeyboardInterrupt when it next runs Python, as an
    interactive session expects.

    `expect(seconds)` states when the chunk in flight should end, and `saved(iteration)` the newest
    checkpoint; the announcements say both.
    """

    def __init__(
        self,
        out: Path,
        announce: Callable[[str], None] | None = None,
        exit_now: Callable[[int], None] | None = None,
    ):
        self.out, self.announce, self.exit_now = out, announce, exit_now
        self.signum: int | None = None
        self.received_at = 0.0
        self.deadline: float | None = None  # time.monotonic() when the chunk in flight should end
        self.checkpoint: int | None = None  # the iteration of the newest checkpoint
        self._previous: dict = {}
        self._pipe: tuple[int, int] | None = None
        self._wakeup = -1

    def expect(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def saved(self, iteration: int) -> None:
        self.checkpoint = iteration

    def first_words(self, signum: int) -> str:
        name = signal.Signals(signum).name
        again = "a second Ctrl-C" if signum == signal.SIGINT else f"a second {name}"
        if self.deadline is None:
            return f"{name}: stopping before training starts (nothing trained yet); {again} stops now"
        left = max(0.0, self.deadline - time.monotonic())
        return (
            f"{name}: stopping after the chunk in flight (about {left:.0f} s), then saving a checkpoint; "
            f"{again} stops now"
        )

    def last_words(self, signum: int) -> str:
        name = signal.Signals(signum).name
        kept = (
            f"the checkpoint at iteration {self.checkpoint} is intact"
            if self.checkpoint
            else "no checkpoint yet, so it starts from iteration 0"
        )
        return f"{name} again: stopped now; {kept}: `purejaxspi train --resume {self.out}` continues"

    def _received(self, signum: int) -> None:
        if self.signum is None:
            self.signum, self.received_at = signum, time.monotonic()
            if self.announce:
                self.announce(self.first_words(signum))
            return
        if time.monotonic() - self.received_at < SAME_SIGNAL_SECONDS:
            return
        if self.exit_now:
            if self.announce:
                self.announce(self.last_words(signum))
            self.exit_now(128 + signum)

    def _handle(self, signum, frame):
        if self._pipe is not None:  # the thread answered it already
            return
        repeated = self.signum is not None and time.monotonic() - self.received_at >= SAME_SIGNAL_SECONDS
        if repeated and not self.exit_now:
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self._received(signum)

    def _watch(self, read_end: int) -> None:
        while True:
            try:
                data = os.read(read_end, 16)
            except OSError:
                data = b""
            if not data:
                os.close(read_end)
                return
            for signum in data:
                if signum in self._previous:
                    self._received(signum)

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in stop_signals():
            self._previous[signum] = signal.signal(signum, self._handle)
        if self.announce or self.exit_now:
            read_end, write_end = os.pipe()
            os.set_blocking(write_end, False)
            self._pipe = (read_end, write_end)
            self._wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            threading.Thread(target=self._watch, args=(read_end,), daemon=True, name="purejaxspi-signals").start()
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._pipe is not None:
            signal.set_wakeup_fd(self._wakeup)
            os.close(self._pipe[1])  # the thread reads end-of-file and ends
            self._pipe = None
        return False


def available_bytes(device) -> int | None:
    """Free memory for `device`: the accelerator's allocator headroom, or the host's MemAvailable."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return host_available_bytes()


def program_bytes(compiled) -> int | None:
    """Peak memory of a compiled program per device: its arguments, outputs and scratch, less donated
    buffers; None where the backend does not report it."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return None
    if analysis is None:
        return None
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def check_memory(compiled, num_runs: int, devices: list) -> None:
    """Refuse a program that cannot fit: ResourceError naming both figures and what to change."""
    need = program_bytes(compiled)
    if need is None or not devices:
        return
    host = devices[0].platform == "cpu"
    # CPU devices share the host's memory: every local device's program counts against it
    need_total = need * (len(devices) if host else 1)
    free = available_bytes(devices[0])
    if free is None or need_total <= free:
        return
    where = "free host memory" if host else f"free on {devices[0].device_kind}"
    raise ResourceError(
        f"the training program of {num_runs} runs needs {need_total / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is "
        f"{where}; use fewer runs (--num-seeds, fewer hyperparameter values) or spread them over more devices "
        f"(--devices)"
    )
