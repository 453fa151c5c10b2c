"""The GPU campaign's report: every stage's outcome and tables, as markdown for benchmarks/README.md.

    uv run python benchmarks/gpu_report.py OUT     # OUT: the folder benchmarks/gpu.sh wrote

Reads what the stages left (stages.jsonl, card.txt, info.json, bench-*.json, runs/*/summary.json and
metrics.csv, guard.txt) and writes OUT/report.md; a stage that failed or timed out appears with its
last lines instead of its table.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def fmt(x, spec=",.0f") -> str:
    return "-" if x is None else format(x, spec)


def stages_section(out: Path) -> list[str]:
    lines = ["## Stages", ""]
    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines() if line.strip()]
    lines += table(
        ["stage", "status", "seconds", "exit code"],
        [[s["stage"], s["status"], str(s["seconds"]), str(s["exit_code"])] for s in stages],
    )
    seconds = {s["stage"]: s["seconds"] for s in stages if s["status"] == "ok"}
    if "smoke" in seconds and "smoke-cached" in seconds:
        lines += [
            "",
            f"The compilation cache: the CartPole smoke train took {seconds['smoke']} s compiling its "
            f"programs and {seconds['smoke-cached']} s loading them from the cache (whole process).",
        ]
    for s in stages:
        if s["status"] != "ok":
            lines += ["", f"`{s['stage']}` {s['status']}; its last lines:", "```", *s["tail"], "```"]
    return lines + [""]


def machine_section(out: Path) -> list[str]:
    lines = ["## Machine", ""]
    card = (out / "card.txt").read_text().strip() if (out / "card.txt").exists() else "no card.txt"
    lines += ["```", card, "```"]
    info = read_json(out / "info.json")
    if info:
        devices = ", ".join(
            f"{d['kind']}" + (f" ({d['memory_bytes'] / 2**30:.0f} GiB)" if d["memory_bytes"] else "")
            for d in info["devices"]
        )
        lines += [
            "",
            f"- platform {info['platform']}: {devices}; host cores {info['host_cores']}; python {info['python']}",
            "- " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
            f"- envpool XLA step on {info['platform']}: {info['envpool_xla']['available']} "
            f"({info['envpool_xla']['detail']})",
            f"- auto: run mapping {info['auto']['run_mapping']}, conv {info['auto']['conv']}",
        ]
    return lines + [""]


def bench_section(out: Path) -> list[str]:
    lines = ["## Throughput (`purejaxspi bench`)", ""]
    header = [
        "env",
        "algo",
        "conv",
        "runs",
        "env steps/s",
        "s/iter",
        "vs ppo",
        "compile s",
        "program MB",
        "device peak MB",
    ]
    rows, conv_times = [], {}
    for name in ("cartpole", "minatar", "atari"):
        data = read_json(out / f"bench-{name}.json")
        if not data:
            rows.append([f"bench-{name}: no result (see Stages)"] + [""] * (len(header) - 1))
            continue
        for r in data:
            mb = lambda b: "-" if b is None else f"{b / 2**20:,.0f}"  # noqa: E731
            rows.append(
                [
                    r["env"],
                    r["algo"],
                    r.get("conv", "-"),
                    str(r["num_runs"]),
                    fmt(r["steps_per_second"]),
                    fmt(r["seconds_per_iteration"], ".4f"),
                    fmt(r.get("time_per_iteration_vs_ppo"), ".2f"),
                    fmt(r["compile_seconds"], ".1f"),
                    mb(r["program_bytes"]),
                    mb(r["peak_device_bytes"]),
                ]
            )
            conv_times.setdefault((r["env"], r["algo"], r["num_runs"]), {})[r.get("conv")] = r["seconds_per_iteration"]
    lines += table(header, rows)
    scaling = []
    for name in ("cartpole", "minatar", "atari"):
        for r in read_json(out / f"bench-{name}.json") or []:
            if r["num_runs"] == 16:
                one = next(
                    (
                        o
                        for o in read_json(out / f"bench-{name}.json")
                        if o["num_runs"] == 1 and o["algo"] == r["algo"] and o.get("conv") == r.get("conv")
                    ),
                    None,
                )
                if one:
                    scaling.append(
                        [
                            r["env"],
                            r["algo"],
                            r.get("conv", "-"),
                            fmt(r["steps_per_second"] / one["steps_per_second"], ".2f"),
                        ]
                    )
    if scaling:
        lines += ["", "16 runs against 1 (env steps/s ratio):", ""] + table(["env", "algo", "conv", "16 / 1"], scaling)
    picks = []
    for (env, algo, runs), times in sorted(conv_times.items()):
        if {"lax", "patches"} <= set(times):
            faster = min(("lax", "patches"), key=lambda c: times[c])
            picks.append([env, algo, str(runs), fmt(times["lax"], ".4f"), fmt(times["patches"], ".4f"), faster])
    if picks:
        lines += ["", "Convolutions (s/iter): what `auto` should pick on this platform:", ""]
        lines += table(["env", "algo", "runs", "lax", "patches", "faster"], picks)
    return lines + [""]


def last_row(metrics: Path) -> dict:
    try:
        with open(metrics) as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    return rows[-1] if rows else {}


def runs_section(out: Path, prefix: str, title: str, extra: tuple[str, ...] = ()) -> list[str]:
    lines = [f"## {title}", ""]
    header = [
        "run",
        "iterations",
        "env steps per seed",
        "median return",
        "policy loss",
        "reward loss",
        "transition loss",
        *extra,
    ]
    rows = []
    for folder in sorted((out / "runs").glob(f"{prefix}-*")):
        summary = read_json(folder / "summary.json")
        config = read_json(folder / "config.json") or {}
        last = last_row(folder / "metrics.csv")
        if not summary:
            rows.append([folder.name, "no summary (see Stages)"] + [""] * (len(header) - 2))
            continue
        done = summary.get("iterations_done", 0)
        batch = config.get("config", {}).get("num_envs", 0) * config.get("config", {}).get("num_steps", 0)
        median = summary.get("final_return_median")
        if median is None and summary.get("runs") and "latest_return" in summary["runs"][0]:
            latest = sorted(r["latest_return"] for r in summary["runs"] if r["latest_return"] is not None)
            median = latest[len(latest) // 2] if latest else None
        row = [
            folder.name,
            f"{done} of {summary.get('num_iterations')}",
            fmt(done * batch),
            fmt(median, ".2f"),
            last.get("policy_loss", "-")[:8],
            last.get("reward_loss", "-")[:8] or "-",
            last.get("transition_loss", "-")[:8] or "-",
        ]
        row += [fmt(summary.get(name), ".4f") for name in extra]
        rows.append(row)
    return lines + table(header, rows) + [""]


def guard_section(out: Path) -> list[str]:
    text = (out / "guard.txt").read_text().strip() if (out / "guard.txt").exists() else "no output"
    return ["## Memory guard", "", "```", text, "```", ""]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    dry = len(argv) > 2 and argv[1] == "--dry-run-flag" and argv[2] == "1"
    lines = ["# GPU campaign" + (" (dry run on the CPU: tiny sizes, not measurements)" if dry else ""), ""]
    lines += machine_section(out) + stages_section(out) + bench_section(out)
    lines += runs_section(out, "learn", "Learning in a fixed wall budget (Breakout-MinAtar, mixture head)")
    lines += runs_section(out, "grid", "The paper's gridworld", ("median_final_init_value", "median_final_repr_dist"))
    lines += guard_section(out)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
