"""How much the host costs a run: `train`'s steady-state env steps/s against `bench`'s for the same program.

`bench` times the compiled training program alone (iterations per call, median of repeats); `train`
adds everything around it: metrics to the host, CSV rows, progress, checkpoints. `train` leaves out
its first chunk (one iteration) and `bench` its compile, so both time the same iterations: the rest of
the run, in one call for `bench`. Run it on an otherwise idle machine.

    uv run python benchmarks/host_overhead.py            # writes benchmarks/results/host_overhead.json
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import tyro

import purejaxspi as pjs
from purejaxspi.algo.config import hparam_values
from purejaxspi.analysis.bench import BenchPlan, run_bench
from purejaxspi.provenance import provenance, utc_now

RESULTS = Path(__file__).parent / "results"
# (env, algo, shape overrides, runs, env steps per run): CartPole as purejaxrl's PPO runs it (4 x 128,
# 500k steps); the 16-run grids shorter, so the whole benchmark takes minutes on 2 cores.
CASES = [
    ("CartPole-v1", "ppo", {"num_envs": 4, "num_steps": 128}, 1, 500_000),
    ("CartPole-v1", "ppo", {"num_envs": 4, "num_steps": 128}, 16, 131_072),
    ("Breakout-MinAtar", "ppo", {}, 1, 65_536),
    ("Breakout-MinAtar", "ppo", {}, 16, 32_768),
]


@dataclasses.dataclass
class Args:
    out: Path = RESULTS / "host_overhead.json"


def measure(env_id: str, algo: str, shape: dict, steps: int, runs: int) -> dict:
    config = pjs.make_config(env_id, algo, total_timesteps=steps, **shape)
    grid = pjs.make_grid(config, num_seeds=runs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = pjs.train(config, grid, Path(tmp) / "run")
        wall = time.perf_counter() - start
    rest = max(1, config.num_iterations - 1)  # the iterations train times: all after its first
    plan = BenchPlan(
        (config,), (hparam_values(config),), (runs,), iterations=rest, repeats=3, env_only=False, devices=(None,)
    )
    (row,) = run_bench(plan)
    return {
        "env": env_id,
        "algo": algo,
        "num_runs": runs,
        "num_envs": config.env.num_envs,
        "num_steps": config.ppo.num_steps,
        "steps_per_run": steps,
        "bench_steps_per_second": row["steps_per_second"],
        "train_steps_per_second": summary["env_steps_per_second"],
        "train_over_bench": summary["env_steps_per_second"] / row["steps_per_second"],
        "train_wall_seconds": wall,
        "run_mapping": row["run_mapping"],
        "devices": row["devices"],
    }


def main(args: Args) -> list[dict]:
    started, rows = utc_now(), []
    for env_id, algo, shape, runs, steps in CASES:
        rows.append(measure(env_id, algo, shape, steps, runs))
        r = rows[-1]
        print(
            f"{env_id:18s} {algo} x{runs:<3d} bench {r['bench_steps_per_second']:>10,.0f}  train "
            f"{r['train_steps_per_second']:>10,.0f}  train/bench {r['train_over_bench']:.2f}  "
            f"({r['train_wall_seconds']:.0f} s wall, {r['devices']} device(s), {r['run_mapping']})",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    made_by = provenance(started)
    rows = [{**row, "provenance": made_by} for row in rows]
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args))
