"""Collect an Atari suite's summary.json files into one table of final returns and human-normalised scores.

    uv run python scripts/atari_table.py runs/atari            # prints a Markdown table
    uv run python scripts/atari_table.py runs/atari --csv t.csv

One row per game: each algorithm's median final return over seeds and its median HNS; the last rows
aggregate over games (median and IQM of the per-game median HNS).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from purejaxspi.envs.scores import human_normalised
from purejaxspi.lifecycle.metrics import iqm


def load(root: Path) -> dict[tuple[str, str], dict]:
    """{(game, algo): summary} for every finished run directory under root."""
    found = {}
    for path in sorted(root.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        found[(summary["env"], summary["algo"])] = summary
    return found


def median_hns(game: str, summary: dict) -> float:
    scores = [human_normalised(game, r["final_return"]) for r in summary["runs"] if r["final_return"] is not None]
    scores = [s for s in scores if s is not None]
    return float(np.median(scores)) if scores else math.nan


def table(found: dict[tuple[str, str], dict]) -> tuple[list[str], list[list]]:
    games = sorted({g for g, _ in found})
    algos = [a for a in ("ppo", "deepmdp", "deepspi") if any(a == b for _, b in found)]
    header = ["game"] + [f"{a} {col}" for a in algos for col in ("return", "hns")]
    rows, per_algo_hns = [], {a: [] for a in algos}
    for game in games:
        row = [game]
        for algo in algos:
            summary = found.get((game, algo))
            ret = summary["final_return_median"] if summary else None
            hns = median_hns(game, summary) if summary else math.nan
            per_algo_hns[algo].append(hns)
            row += [math.nan if ret is None else ret, hns]
        rows.append(row)
    for name, stat in (("median HNS", np.nanmedian), ("IQM HNS", iqm)):
        row = [name]
        for algo in algos:
            values = np.asarray(per_algo_hns[algo], float)
            row += ["", stat(values) if np.isfinite(values).any() else math.nan]
        rows.append(row)
    return header, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the suite's output folder (one sub-folder per game and algorithm)")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    found = load(args.root)
    if not found:
        print(f"atari_table: error: no */summary.json under {args.root}", file=sys.stderr)
        return 2
    header, rows = table(found)
    fmt = lambda v: v if isinstance(v, str) else ("" if math.isnan(v) else f"{v:.3g}")  # noqa: E731
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(fmt(v) for v in row) + " |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            csv.writer(f).writerows([header] + [[fmt(v) for v in row] for row in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
