"""The GPU campaign's report: every stage's outcome and tables, as markdown for benchmarks/README.md.

    uv run python benchmarks/gpu_report.py OUT     # OUT: the folder benchmarks/gpu.sh wrote

Reads what the stages left (stages.jsonl, card.txt, info.json, bench-*.json, vs-purejaxrl.json,
guard.txt, minatar/*.runs.jsonl) and writes OUT/report.md; a stage that failed or timed out appears with
its last lines instead of its table.
"""

from __future__ import annotations

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
    if info and info.get("error"):  # jax's backend did not start: what info could say, and why
        lines += [
            "",
            f"- no backend: {info['error']}",
            "- " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()),
        ]
    elif info:
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
            f"- auto: run mapping {info['auto']['run_mapping']}, conv {info['auto']['conv']}, "
            f"envpool interface {info['auto'].get('envpool_interface', '-')}",
        ]
        if "jax_range" in info:
            found = info["jax_range"]
            lines.append(f"- jax {found['version']}: tested range {found['tested']} (inside: {found['inside']})")
    return lines + [""]


def mb(b) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f}"


def atari_section(out: Path) -> list[str]:
    lines = ["## Atari on the GPU (Breakout-v5, `purejaxspi bench`)", ""]
    header = [
        "interface",
        "algo",
        "runs",
        "env steps/s",
        "env-only steps/s",
        "pool envs",
        "pool threads",
        "frames to device MB/s",
        "compile s",
        "device peak MB",
    ]
    rows = []
    for interface in ("xla", "callback"):
        data = read_json(out / f"bench-atari-{interface}.json")
        if not data:
            rows.append([interface, f"no result: see `atari-{interface}` in Stages"] + [""] * (len(header) - 2))
            continue
        for r in data:
            rows.append(
                [
                    r.get("envpool_interface", interface),
                    r["algo"],
                    str(r["num_runs"]),
                    fmt(r["steps_per_second"]),
                    fmt(r.get("env_only_steps_per_second")),
                    fmt(r.get("pool_envs")),
                    fmt(r.get("pool_threads")),
                    mb(r.get("host_to_device_bytes_per_second")),
                    fmt(r["compile_seconds"], ".1f"),
                    mb(r["peak_device_bytes"]),
                ]
            )
    return lines + table(header, rows) + scaling_lines(out, ("atari-xla", "atari-callback")) + [""]


def scaling_lines(out: Path, names: tuple[str, ...]) -> list[str]:
    """Env steps/s of each row with more runs against the same program's 1-run row."""
    rows = []
    for name in names:
        data = read_json(out / f"bench-{name}.json") or []
        for r in data:
            one = next(
                (o for o in data if o["num_runs"] == 1 and o["algo"] == r["algo"] and o.get("conv") == r.get("conv")),
                None,
            )
            if one and r["num_runs"] > 1:
                ratio = r["steps_per_second"] / one["steps_per_second"]
                rows.append([name, r["algo"], r.get("conv", "-"), f"{r['num_runs']} / 1", fmt(ratio, ".2f")])
    if not rows:
        return []
    return ["", "More runs against one (env steps/s ratio):", ""] + table(
        ["bench", "algo", "conv", "runs", "ratio"], rows
    )


def minatar_bench_section(out: Path) -> list[str]:
    lines = ["## The mixture head's cost and the convolutions (Breakout-MinAtar, conv trunk)", ""]
    header = [
        "algo",
        "conv",
        "runs",
        "env steps/s",
        "s/iter",
        "time vs ppo",
        "compile s",
        "program MB",
        "device peak MB",
    ]
    data = read_json(out / "bench-minatar.json")
    if not data:
        return lines + ["no result: see `bench-minatar` in Stages", ""]
    rows, conv_times = [], {}
    for r in data:
        rows.append(
            [
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
        conv_times.setdefault((r["algo"], r["num_runs"]), {})[r.get("conv")] = r["seconds_per_iteration"]
    lines += table(header, rows)
    lines += [
        "",
        "`time vs ppo`: Deep SPI's seconds per iteration (the paper's mixture head) over PPO's, same runs and conv.",
    ]
    picks = []
    for (algo, runs), times in sorted(conv_times.items()):
        if {"lax", "patches"} <= set(times):
            faster = min(("lax", "patches"), key=lambda c: times[c])
            picks.append([algo, str(runs), fmt(times["lax"], ".4f"), fmt(times["patches"], ".4f"), faster])
    if picks:
        lines += ["", "Convolutions (s/iter): what `auto` should pick on this platform:", ""]
        lines += table(["algo", "runs", "lax", "patches", "faster"], picks)
    return lines + scaling_lines(out, ("minatar",)) + [""]


def peer_section(out: Path) -> list[str]:
    lines = ["## The peer row: purejaxrl's PPO on this machine (CartPole-v1, benchmarks/vs_purejaxrl.py)", ""]
    data = read_json(out / "vs-purejaxrl.json")
    if not data:
        ran = (out / "purejaxrl.log").exists()
        return lines + ["no result: see `purejaxrl` in Stages" if ran else "not run (no --purejaxrl DIR)", ""]
    rates = data["env_steps_per_second"]
    lines += table(["program", "env steps/s"], [[name, fmt(rate)] for name, rate in rates.items()])
    lines += [
        "",
        f"ours (program) over purejaxrl: {data['ours_program_over_purejaxrl']:.2f}; {data['env_steps']:,} env steps",
    ]
    return lines + [""]


def minatar_record_section(out: Path) -> list[str]:
    lines = ["## The real-budget MinAtar benchmark (benchmarks/minatar.py)", ""]
    records = sorted((out / "minatar").glob("minatar_*.runs.jsonl"))
    if not records:
        return lines + ["no record: see `minatar` in Stages", ""]
    header = ["game", "algo", "seeds x env steps", "eval median", "env steps/s", "minutes", "device"]
    for path in records:
        rows = []
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            returns = sorted(v for v in r["final_return"] if v is not None and v == v)
            median = returns[len(returns) // 2] if returns else None
            minutes = (r["train_seconds"] + r["eval_seconds"]) / 60
            seeds = f"{r['key']['num_seeds']} x {r['key']['budget']:,}"
            rows.append(
                [r["game"], r["algo"], seeds, fmt(median, ".2f"), fmt(r["env_steps_per_second"]), fmt(minutes, ".1f"),
                 r["device"]]
            )  # fmt: skip
        lines += [
            f"`{path.name}`: {len(rows)} (game, algorithm) pairs so far. Copy it to benchmarks/results/ (the next",
            "campaign continues it) and table it with `benchmarks/minatar.py --budget N --table-only`.",
            "",
            *table(header, rows),
            "",
        ]
    return lines


def guard_section(out: Path) -> list[str]:
    text = (out / "guard.txt").read_text().strip() if (out / "guard.txt").exists() else "no output"
    return ["## Memory guard", "", "```", text, "```", ""]


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    dry = len(argv) > 2 and argv[1] == "--dry-run-flag" and argv[2] == "1"
    lines = ["# GPU campaign" + (" (dry run on the CPU: tiny sizes, not measurements)" if dry else ""), ""]
    lines += machine_section(out) + stages_section(out) + atari_section(out) + minatar_bench_section(out)
    lines += peer_section(out) + guard_section(out) + minatar_record_section(out)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
