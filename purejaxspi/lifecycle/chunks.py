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


def chunk_capacity(num_iterations: int, chunk_iterations: int, row_bytes: int) -> int:
    """The most iterations a chunk runs: the fixed `chunk_iterations`, or (0) what the metrics buffer
    holds at `row_bytes` an iteration; never more than the power of two at or above the run's length, so
    that runs of different budgets share a few programs (a change of budget mostly compiles nothing)."""
    run_rows = 1 << (max(1, num_iterations) - 1).bit_length()
    if chunk_iterations:
        return max(1, min(chunk_iterations, run_rows))
    return max(1, min(run_rows, METRICS_BUFFER_BYTES // max(1, row_bytes)))


def next_chunk(
    remaining: int, capacity: int, fixed: bool, seconds_per_iteration: float | None, target_seconds: float
) -> int:
    """The length of the next chunk of a run with `remaining` iterations: the capacity when the length
    is `fixed`; otherwise one iteration until a pace is measured, then about `target_seconds` of work."""
    if remaining <= 0:
        return 0
    if fixed:
        return min(capacity, remaining)
    if seconds_per_iteration is None:
        return 1
    if seconds_per_iteration <= 0:
        return min(capacity, remaining)
    return max(1, min(remaining, capacity, int(target_seconds / seconds_per_iteration)))
