"""Where a compiled program spends its time, by the part of the model each op belongs to.

`jax.profiler` records one event per executed HLO op (its name is the instruction's); the compiled
module's text maps each instruction to the `op_name` JAX gave it, which carries the Flax module path
and `jax.named_scope`s (forward and backward alike: `transpose(jvp(...))/reward_model/...`). Each op is
charged to the first part whose name appears in that path (`PARTS`), else to "other".
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

# (part, the names in an op's path that place it there), first match wins: the spectral power
# iterations and the mixture sample sit inside the world model's modules, so they come first.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spectral norm", ("power_iteration", "reference_sigma")),
    ("mixture sample", ("mixture_sample",)),
    ("gradient penalty", ("gradient_penalty",)),
    ("transition model", ("transition_model",)),
    ("reward model", ("reward_model",)),
    ("encoder", ("encoder",)),
    ("policy and value", ("_policy_value", "torso", "actor", "critic")),
    ("losses", ("losses",)),
    ("optimizer", ("optimizer",)),
)

_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{[^}]*op_name="([^"]*)"')


def op_paths(hlo_text: str) -> dict[str, str]:
    """{instruction name: its op_name path} for every instruction of a compiled module's text."""
    paths: dict[str, str] = {}
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if match:
            paths.setdefault(match.group(1), match.group(2))
    return paths


def part_of(path: str, parts: Sequence[tuple[str, Sequence[str]]] = PARTS) -> str:
    """The first part whose names occur as a component of `path` (module names may carry a suffix)."""
    components = re.split(r"[/().]", path)
    for part, names in parts:
        if any(c == n or c.startswith(n + "_") or c.startswith(n + ".") for c in components for n in names):
            return part
    return "other"


def _op_events(trace_dir: pathlib.Path, module_prefix: str) -> list[tuple[str, float]]:
    """(HLO op, seconds) of every op event of modules whose name starts with `module_prefix`."""
    events = []
    for path in trace_dir.rglob("perfetto_trace.json.gz"):
        with gzip.open(path) as f:
            data = json.load(f)
        for event in data if isinstance(data, list) else data.get("traceEvents", []):
            args = event.get("args") or {}
            if (
                event.get("ph") == "X"
                and "hlo_op" in args
                and str(args.get("hlo_module", "")).startswith(module_prefix)
            ):
                events.append((args["hlo_op"], event["dur"] * 1e-6))
    return events


def profile_by_part(
    fn: Callable, args: tuple[Any, ...], repeats: int = 5, parts: Sequence[tuple[str, Sequence[str]]] = PARTS
) -> dict[str, float]:
    """Seconds per call of the jitted `fn(*args)` charged to each part, plus "wall" (median call).

    Op events can overlap on a multi-threaded backend, so the parts' sum can exceed the wall time;
    read them as shares of the op time.
    """
    name = getattr(fn, "__name__", "fn")
    compiled = jax.jit(fn).lower(*args).compile()
    paths = op_paths(compiled.as_text() or "")
    jax.block_until_ready(compiled(*args))
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        try:
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(compiled(*args))
                walls.append(time.perf_counter() - start)
        finally:
            jax.profiler.stop_trace()
        events = _op_events(pathlib.Path(tmp), f"jit_{name}")
    seconds: dict[str, float] = collections.defaultdict(float)
    for op, duration in events:
        seconds[part_of(paths.get(op, ""), parts)] += duration / repeats
    seconds["wall"] = sorted(walls)[len(walls) // 2]
    return dict(seconds)
