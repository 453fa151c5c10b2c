"""How long the README's commands take on this machine, each as a whole process (set-up, compiles and
outputs included), and the test suite's time.

    uv run python benchmarks/timings.py             # the README's training commands and its API example
    uv run python benchmarks/timings.py --suite     # also `uv run pytest --durations=15` (the whole suite)
                                                    # and its fast tier (`-m "not slow"`)
    uv run python benchmarks/timings.py --suite-only  # the suite alone, the commands' rows kept as they are

Writes benchmarks/results/timings.json (each command's seconds, the suite's and the fast tier's closing
lines and slowest tests, the provenance), from which benchmarks/tables.py draws the README's timings table.
Measure on an idle machine: a command timed beside other work is slower.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tyro

from purejaxspi.provenance import provenance, utc_now

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results" / "timings.json"
# (what, the arguments after `purejaxspi`): each command as the README gives it, into a fresh folder
COMMANDS = (
    ("the main job", ("train",)),
    (
        "CartPole, the preset's budget, 8 seeds",
        ("train", "--env", "CartPole-v1", "--num-seeds", "8", "--budget", "preset"),
    ),
    (
        "a grid of 16 runs (2 x 2 alphas x 4 seeds)",
        ("train", "--reward-coef", "0", "0.01", "--transition-coef", "0", "0.5", "--num-seeds", "4"),
    ),
    (
        "Atari (Breakout-v5), 2 seeds x 4,096 steps",
        (
            "train",
            "--env",
            "Breakout-v5",
            "--num-seeds",
            "2",
            "--num-envs",
            "8",
            "--num-steps",
            "8",
            "--total-timesteps",
            "4096",
        ),
    ),
)


@dataclasses.dataclass
class Args:
    suite: bool = False
    """Also time the whole test suite (`uv run pytest --durations=15`), then its fast tier."""
    suite_only: bool = False
    """Time the suite and its fast tier alone; the record's command rows stay as they were measured."""
    out: Path = RESULTS


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"timings.py: {' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - began, done.stdout


def api_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S).group(1)


FAST_TIER = "not slow"  # the marker expression README gives for the edit-test loop


def time_suite(marker: str | None = None) -> dict:
    """The suite (or the tests `marker` selects) as README runs it: its seconds, closing line and slowest tests."""
    started, began = utc_now(), time.perf_counter()
    argv = [sys.executable, "-m", "pytest", "--durations=15", "-q", *(["-m", marker] if marker else [])]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    lines = done.stdout.splitlines()
    closing = next((line.strip("= ") for line in reversed(lines) if " passed" in line or " failed" in line), "")
    slowest = [line for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown) ", line)][:15]
    return {
        "seconds": seconds,
        "exit_code": done.returncode,
        "closing_line": closing,
        "slowest": slowest,
        "failed": [line.split(" - ")[0] for line in lines if line.startswith("FAILED ")],
        "provenance": provenance(started),
    }


def main(args: Args) -> dict:
    if args.suite_only:
        result = json.loads(args.out.read_text()) if args.out.is_file() else {"commands": []}
        return write(args.out, {**result, "suite": time_suite(), "fast_tier": time_suite(FAST_TIER)})
    started, rows = utc_now(), []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (what, command) in enumerate(COMMANDS):
            argv = [sys.executable, "-m", "purejaxspi.cli", *command, "--out", str(Path(tmp) / f"run{i}"), "--quiet"]
            seconds, _ = timed(argv, Path(tmp))
            rows.append({"what": what, "command": "uv run purejaxspi " + " ".join(command), "seconds": seconds})
            print(f"{what}: {seconds:.1f} s", flush=True)
        seconds, _ = timed([sys.executable, "-c", api_example()], Path(tmp))
        rows.append({"what": "the README's API example", "command": "python (README's example)", "seconds": seconds})
        print(f"the API example: {seconds:.1f} s", flush=True)
    result = {"commands": rows, "provenance": provenance(started)}
    if args.suite:
        result["suite"], result["fast_tier"] = time_suite(), time_suite(FAST_TIER)
    return write(args.out, result)


def write(out: Path, result: dict) -> dict:
    for key in ("suite", "fast_tier"):
        if key in result:
            print(f"{key}: {result[key]['seconds'] / 60:.1f} min, {result[key]['closing_line']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
