"""What the persistent compilation cache saves a whole `purejaxspi train` process on this machine: the
same command run with an empty cache folder (cold) and again with the folder it filled (warm).

    uv run python benchmarks/compilation_cache.py                  # 3 repeats of the 2-seed main job
    uv run python benchmarks/compilation_cache.py --repeats 1

Writes benchmarks/results/compilation_cache.json (each repeat's seconds, the medians, the provenance).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tyro

from purejaxspi.provenance import provenance, utc_now

RESULTS = Path(__file__).parent / "results" / "compilation_cache.json"
COMMAND = ("train", "--num-seeds", "2", "--quiet")  # the main job's program (Deep SPI, Breakout-MinAtar), 2 seeds


@dataclasses.dataclass
class Args:
    repeats: int = 3
    out: Path = RESULTS


def timed(cache: Path, out: Path) -> float:
    env = {**os.environ, "PUREJAXSPI_COMPILATION_CACHE": str(cache)}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "purejaxspi.cli", *COMMAND, "--out", str(out)], env=env, check=True)
    return time.perf_counter() - began


def main(args: Args) -> dict:
    started, cold, warm = utc_now(), [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cold.append(timed(Path(tmp) / "cache", Path(tmp) / "cold"))
            warm.append(timed(Path(tmp) / "cache", Path(tmp) / "warm"))
        print(f"cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s", flush=True)
    result = {
        "command": "PUREJAXSPI_COMPILATION_CACHE=DIR uv run purejaxspi " + shlex.join(COMMAND),
        "cold_seconds": cold,
        "warm_seconds": warm,
        "cold_median_seconds": statistics.median(cold),
        "warm_median_seconds": statistics.median(warm),
        "provenance": provenance(started),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
