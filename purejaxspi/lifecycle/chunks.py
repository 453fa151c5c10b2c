"""How a run is cut into chunks: the first by count, the rest by time.

A chunk is one call of a compiled program (one executable per chunk length). The host writes metrics,
reports progress, checkpoints and answers SIGINT / SIGTERM only between chunks, so a chunk should last
seconds, not hours; but a new chunk length costs a compile, so the first chunk's length (a twentieth
of the run) is kept unless its measured time is far from the target. Iterations are functions of the
state alone, so the chunking never changes a run's metrics.
"""

from __future__ import annotations

import math

FIRST_CHUNK_FRACTION = 20  # the first chunk is a twentieth of the run (or the user's fixed length)
TOO_LONG = 2.0  # re-cut when the first chunk took over twice the target ...
TOO_SHORT = 0.1  # ... or under a tenth of it,
COMPILES_WORTH = 30.0  # and then only when the rest of the run lasts 30 compiles or more


def chunk_plan(num_iterations: int, chunk_iterations: int, start: int = 0) -> list[int]:
    """Chunk lengths covering iterations [start, num_iterations): equal chunks and at most one shorter remainder.

    `chunk_iterations` 0 takes a twentieth of the whole run, so a resumed run starts the way it began.
    """
    size = chunk_iterations or max(1, math.ceil(num_iterations / FIRST_CHUNK_FRACTION))
    remaining = num_iterations - start
    if remaining <= 0:
        return []
    size = min(size, remaining)
    plan = [size] * (remaining // size)
    if remaining % size:
        plan.append(remaining % size)
    return plan


def timed_chunk_size(length: int, seconds: float, target_seconds: float, remaining: int, compile_seconds: float) -> int:
    """The chunk length for the `remaining` iterations of a run whose chunk of `length` ran in `seconds`.

    About `target_seconds` per chunk when the measured chunk was over twice as long (progress, signals
    and checkpoints would wait for it), or under a tenth as long with enough run left to repay the
    compile of the longer chunk; otherwise `length` itself, which is compiled already.
    """
    if remaining <= 0 or length <= 0 or seconds <= 0 or target_seconds <= 0:
        return length
    per_iteration = seconds / length
    size = max(1, min(remaining, int(target_seconds / per_iteration)))
    too_long = seconds > TOO_LONG * target_seconds
    too_short = seconds < TOO_SHORT * target_seconds and remaining * per_iteration > COMPILES_WORTH * compile_seconds
    return size if too_long or too_short else length
