"""What keeps a run's outputs safe from the machine and the user: one writer per run directory, a
memory check before anything is allocated, disk-full errors that say what survived, and SIGINT /
SIGTERM turned into a checkpoint at the next chunk boundary."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from pathlib import Path

from purejaxspi.errors import DiskFullError, ResourceError, RunDirError
from purejaxspi.host import host_available_bytes
from purejaxspi.lifecycle.rundir import LOCK_FILE

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


class StopSignals:
    """Within the block, the first SIGINT or SIGTERM is recorded (`signum`) instead of killing the
    process, so the loop can checkpoint at the next chunk boundary; a second one interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
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
        f"{where}; use fewer runs (--num-seeds, fewer hyperparameter values), spread them over more devices "
        f"(--devices), or shorten --chunk-iterations"
    )
