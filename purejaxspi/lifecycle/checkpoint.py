"""Checkpoints of the whole training state with orbax: `DIR/checkpoints/<iteration>/`.

A checkpoint holds the vmapped RunState of every run of the grid (parameters, optimiser state, env
state, obs, PRNG keys, iteration counter) and the host's metrics cursor (the MetricsLog accumulators and
the timing totals). Sharded arrays are saved as they lie, each process writing its devices' shards;
the runs that pad a grid to the device count are never saved, so any device count can resume it. The
step number is the count of finished iterations. orbax writes each step into a temporary folder and
renames it once complete, so a run killed mid-save keeps its previous checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxspi.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
# What orbax needs to read a step's arrays back: without it a restore fails with a message about types.
STATE_METADATA = "default/_METADATA"


class Restored(NamedTuple):
    iteration: int
    state: Any
    cursor: dict[str, np.ndarray]
    path: Path
    skipped: tuple[tuple[Path, str], ...] = ()  # newer checkpoints that did not restore: (folder, why)

    def note(self) -> str | None:
        """One line naming the damaged newer checkpoints passed over, or None."""
        if not self.skipped:
            return None
        why = "; ".join(reason for _, reason in self.skipped)
        return f"{len(self.skipped)} newer checkpoint(s) did not restore ({why}); used {self.path}"


DAMAGED_DIR = "damaged-checkpoints"


def set_aside(run_dir: Path, restored: Restored) -> str | None:
    """Move the damaged checkpoints newer than the one restored to DIR/damaged-checkpoints/ (kept, never
    deleted), so that training on can save those steps again; returns a line saying so, or None."""
    if not restored.skipped:
        return None
    target = run_dir / DAMAGED_DIR
    target.mkdir(exist_ok=True)
    for folder, _ in restored.skipped:
        destination = target / folder.name
        suffix = 0
        while destination.exists():
            suffix += 1
            destination = target / f"{folder.name}.{suffix}"
        folder.rename(destination)
    return f"moved the damaged checkpoint(s) to {target}"


def checkpoint_dir(run_dir: Path) -> Path:
    return (run_dir / CHECKPOINT_DIR).absolute()


def open_manager(run_dir: Path, keep: int = 3, create: bool = True):
    """An orbax CheckpointManager over DIR/checkpoints, keeping the newest `keep` steps, saving synchronously.

    Opening it reads every step's metadata; its warnings about a damaged one are held back (restoring
    that step says what is wrong, in one line, and a step whose bookkeeping file alone is gone restores)."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
    with _logs_held(keep=False):
        return ocp.CheckpointManager(checkpoint_dir(run_dir), options=options)


def save(manager, iteration: int, state, cursor: dict[str, np.ndarray]) -> None:
    """Save step `iteration` and wait for it. A failed save (a full disk) leaves the previous steps as
    they were; the tracebacks orbax's worker threads print as they wind down are held back then."""
    import orbax.checkpoint as ocp

    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held), _logs_held():
            manager.save(iteration, args=ocp.args.StandardSave({"state": state, "cursor": cursor}), force=True)
            manager.wait_until_finished()
    except Exception:
        with contextlib.redirect_stderr(held), _logs_held(keep=False):
            with contextlib.suppress(Exception):
                manager.close()
            time.sleep(0.5)  # let the failed save's other writes finish into `held`
        raise
    sys.stderr.write(held.getvalue())


@contextlib.contextmanager
def _logs_held(keep: bool = True):
    """Hold the log records orbax's threads emit (absl ERRORs of every failed write); re-emit them when
    `keep` and the block succeeded."""
    import logging

    records = []

    class Hold(logging.Handler):
        def emit(self, record):
            records.append(record)

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = [Hold()]
    absl = logging.getLogger("absl")
    absl_handlers, absl_propagate = absl.handlers[:], absl.propagate
    absl.handlers, absl.propagate = [], True
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        root.handlers, root.level = handlers, level
        absl.handlers, absl.propagate = absl_handlers, absl_propagate
        if keep and not failed:
            for record in records:
                logging.getLogger(record.name).handle(record)


def all_steps(run_dir: Path) -> list[int]:
    """Every complete checkpoint's iteration, newest first (orbax's complaints about damaged ones held back:
    restoring them says what is wrong, in one line)."""
    folder = checkpoint_dir(run_dir)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} is a file where the run keeps its checkpoints' folder; move it aside")
    if not folder.is_dir():
        return []
    with contextlib.redirect_stderr(io.StringIO()), _logs_held(keep=False):
        manager = open_manager(run_dir, create=False)
        try:
            return sorted(manager.all_steps(), reverse=True)
        finally:
            manager.close()


def restore_latest(run_dir: Path, state_template, cursor_template: dict[str, np.ndarray]) -> Restored | None:
    """Read the newest checkpoint that restores into host (numpy) arrays of the templates' shapes (arrays
    or ShapeDtypeStructs); newer ones that fail are named in `Restored.skipped`.

    The state comes back whole on every process, whatever devices wrote it; the caller lays it out
    over its own devices (`sharding.RunLayout.place`). Returns None when there is no checkpoint yet;
    raises CheckpointError (naming the newest) when none restores or fits this program (other shapes,
    another network).
    """
    steps = all_steps(run_dir)
    if not steps:
        return None
    abstract = jax.tree.map(
        lambda x: np.zeros(np.shape(x), x.dtype), {"state": state_template, "cursor": cursor_template}
    )
    failures = []
    for step in steps:
        path = checkpoint_dir(run_dir) / str(step)
        try:
            if not (path / STATE_METADATA).is_file():
                raise CheckpointError(f"cannot restore checkpoint {path}: its metadata ({STATE_METADATA}) is missing")
            restored = _restore_step(run_dir, step, abstract)
            _check_shapes(path, abstract, restored)
        except CheckpointError as e:
            failures.append((path, e))
            continue
        cursor = {k: np.asarray(v) for k, v in restored["cursor"].items()}
        return Restored(step, restored["state"], cursor, path, tuple((p, str(e)) for p, e in failures))
    raise failures[0][1]


def _restore_step(run_dir: Path, step: int, abstract):
    """One checkpoint, or CheckpointError in one line. A failing read makes orbax's remaining reader
    callbacks print tracebacks and absl log ERRORs: both are held back, and shown only on success."""
    import orbax.checkpoint as ocp

    path = checkpoint_dir(run_dir) / str(step)
    held, failure = io.StringIO(), None
    with contextlib.redirect_stderr(held), _logs_held(keep=False):
        manager = open_manager(run_dir, create=False)  # it reads every step's metadata, damaged ones too
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises many types (ValueError, KeyError, tensorstore errors, ...)
            failure = e
            time.sleep(0.5)  # let the other reads of the failed restore finish into `held`
        finally:
            manager.close()
    if failure is not None:
        detail = " ".join(str(failure).split()).split(" See full TensorStore details")[0][:200]
        raise CheckpointError(f"cannot restore checkpoint {path}: {detail or type(failure).__name__}")
    sys.stderr.write(held.getvalue())
    return restored


def _check_shapes(path: Path, abstract, restored) -> None:
    """orbax may restore an array of another shape without complaint; a resumed run must not."""
    want = jax.tree_util.tree_flatten_with_path(abstract)[0]
    got = jax.tree.leaves(restored)
    for (key, spec), leaf in zip(want, got):
        if tuple(np.shape(leaf)) != tuple(spec.shape):
            name = jax.tree_util.keystr(key)
            raise CheckpointError(
                f"checkpoint {path} does not fit this run: {name} has shape {np.shape(leaf)}, expected {spec.shape}"
            )


def cursor(log, iteration: int = 0, timed_steps: float = 0.0, timed_seconds: float = 0.0) -> dict[str, Any]:
    """The host's part of a checkpoint: iterations done, timing totals and the MetricsLog's accumulators.

    With the defaults it is the template a restore reads into.
    """
    return {
        "iteration": np.int64(iteration),
        "timed_steps": np.float64(timed_steps),
        "timed_seconds": np.float64(timed_seconds),
        **{f"log.{name}": value.copy() for name, value in log.accumulators().items()},
    }


def restore_log_cursor(log, cursor: dict[str, np.ndarray]) -> tuple[int, float, float]:
    """Put accumulators saved by `cursor` back into a fresh MetricsLog of the same grid; returns
    (iteration, timed_steps, timed_seconds)."""
    log.restore({key.removeprefix("log."): np.asarray(v) for key, v in cursor.items() if key.startswith("log.")})
    return int(cursor["iteration"]), float(cursor["timed_steps"]), float(cursor["timed_seconds"])
