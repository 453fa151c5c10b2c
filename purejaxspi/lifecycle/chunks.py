"""How a run is cut into chunks: by time, from the first iteration.

A chunk is one call of the run's compiled program, whose loop runs a given count of iterations (at
most its capacity): one executable serves every chunk length. The host writes metrics, reports
progress, checkpoints and answers SIGINT / SIGTERM / SIGHUP only between chunks, so the first chunk is one
iteration (progress and a state worth saving within seconds of the compile) and each later one is
sized by the pace of the one before to last about `--chunk-seconds`. Iterations are functions of the
state alone, so the chunking never changes a run's metrics.
"""

from __future__ import annotations

# The metrics rows a chunk returns (every run, every iteration) are sized for its capacity; this bounds
# them, and so the longest chunk of runs whose iterations take microseconds.
METRICS_BUFFER_BYTES = 16 * 2**20


def chunk_capacity(chunk_iterations: int, row_bytes: int) -> int:
    """The most iterations a chunk runs: what the metrics buffer holds at `row_bytes` an iteration, or a
    fixed `chunk_iterations` beyond it. Neither the run's budget nor a fixed chunk within the buffer
    changes it, so the runs of one config and grid size share one program whatever their length and
    chunking (with the compilation cache on, a change of either compiles nothing)."""
    return max(1, chunk_iterations, METRICS_BUFFER_BYTES // max(1, row_bytes))


def next_chunk(
    remaining: int, capacity: int, fixed: int, seconds_per_iteration: float | None, target_seconds: float
) -> int:
    """The length of the next chunk of a run with `remaining` iterations: a `fixed` length where one is
    given (at most the capacity); otherwise one iteration until a pace is measured, then about
    `target_seconds` of work."""
    if remaining <= 0:
        return 0
    if fixed:
        return min(fixed, capacity, remaining)
    if seconds_per_iteration is None:
        return 1
    if seconds_per_iteration <= 0:
        return min(capacity, remaining)
    return max(1, min(remaining, capacity, int(target_seconds / seconds_per_iteration)))
