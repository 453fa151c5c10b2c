"""PPO, DeepMDP and Deep SPI on the confounding gridworld: does the policy find the top star's bonus?

Each algorithm trains 16 seeds in one vmapped call on ConfoundingGrid-v0. The program evaluates the
network's policy exactly every iteration (`init_value`, V(I) on the tabular model) and measures how
far apart the encoder keeps the two look-alike star states (`repr_dist`). Writes
`benchmarks/results/confounding.json` and a plot of init_value over env steps.

    uv run python benchmarks/confounding.py --quick    # 8 seeds x 49k steps, under 10 minutes on 2 cores
    uv run python benchmarks/confounding.py            # 16 seeds x 131k steps
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import tyro

from purejaxspi.envs import confounding
from purejaxspi.session import run_training

ALGOS = ("ppo", "deepmdp", "deepspi")
RESULTS = Path(__file__).parent / "results"


@dataclasses.dataclass
class Args:
    quick: bool = False
    """CPU-sized version: 8 seeds x 49,152 env steps per algorithm (under 10 minutes on 2 cores)."""
    num_seeds: int = 0
    """Seeds per algorithm (0: 8 with --quick, 16 otherwise)."""
    total_timesteps: int = 0
    """Env steps per run (0: 49,152 with --quick, 131,072 otherwise)."""
    env: str = "ConfoundingGrid-v0"
    """ConfoundingGrid-v0 (compact frames) or ConfoundingGrid-v0-84 (the paper's 84x84)."""
    out: Path = RESULTS
    """Where confounding.json and confounding.png go."""
    runs: Path = Path("runs") / "confounding"
    """Where the three training directories (metrics.csv, summary.json) go."""


def exact_values() -> dict[str, float]:
    """V(I) of the three reference policies, recomputed from the env's tables."""
    t = confounding.tables()
    num_states = t["P"].shape[0]

    def value_of(up_at: list[int]) -> float:
        pi = np.zeros((num_states, confounding.NUM_ACTIONS))
        pi[:, confounding.RIGHT] = 1.0
        for s in up_at:
            pi[s] = np.eye(confounding.NUM_ACTIONS)[confounding.UP]
        return float(confounding.policy_value(t["P"], t["R"], t["terminal"], pi)[t["start"]])

    return {
        "always_right": value_of([]),
        "up_at_both_stars": value_of([t["top_star"], t["bottom_star"]]),
        "optimal": value_of([t["top_star"]]),
    }


def read_curve(metrics_csv: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [I], values [runs, I]) of one metrics.csv column."""
    with open(metrics_csv) as f:
        rows = list(csv.DictReader(f))
    runs = sorted({int(r["run"]) for r in rows})
    steps = sorted({int(r["env_steps"]) for r in rows})
    values = np.full((len(runs), len(steps)), np.nan)
    step_index = {s: i for i, s in enumerate(steps)}
    for r in rows:
        if r[column] != "":
            values[int(r["run"]), step_index[int(r["env_steps"])]] = float(r[column])
    return np.asarray(steps), values


def spi_diagnostics(metrics_csv: Path) -> dict[str, float]:
    """How far each algorithm's updates stray from the old policy, over all runs and iterations."""
    _, ratio_max = read_curve(metrics_csv, "ratio_max")
    _, outside = read_curve(metrics_csv, "ratio_outside")
    _, condition = read_curve(metrics_csv, "spi_condition")
    return {
        "median_ratio_max": float(np.nanmedian(ratio_max)),
        "max_ratio_max": float(np.nanmax(ratio_max)),
        "median_ratio_outside": float(np.nanmedian(outside)),
        "spi_condition_share": float(np.nanmean(condition)),
    }


def plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], references: dict[str, float], path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo, (steps, values) in curves.items():
        q25, median, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
        (line,) = ax.plot(steps, median, label=f"{algo} (median)")
        ax.fill_between(steps, q25, q75, color=line.get_color(), alpha=0.2)
    styles = {"optimal": ":", "always_right": "--", "up_at_both_stars": "-."}
    for name, value in references.items():
        ax.axhline(value, color="grey", linestyle=styles[name], linewidth=1, label=f"{name.replace('_', ' ')} ({value:.2f})")
    ax.set_xlabel("env steps per run")
    ax.set_ylabel("exact V(I) of the policy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> dict:
    from purejaxspi.cli import TrainArgs, resolve

    total = args.total_timesteps or (49_152 if args.quick else 131_072)
    num_seeds = args.num_seeds or (8 if args.quick else 16)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"env": args.env, "num_seeds": num_seeds, "total_timesteps": total, "exact": exact_values()}
    curves = {}
    for algo in ALGOS:
        config, values = resolve(TrainArgs(env=args.env, algo=algo, num_seeds=num_seeds, total_timesteps=total))
        run_dir = args.runs / f"{algo}-{time.strftime('%Y%m%d-%H%M%S')}"
        start = time.perf_counter()
        status = run_training(config, values, 0, num_seeds, run_dir, show_progress=True)
        if status:
            raise SystemExit(status)
        summary = json.loads((run_dir / "summary.json").read_text())
        results[algo] = {
            "final_init_value": summary["final_init_value"],
            "final_repr_dist": summary["final_repr_dist"],
            "median_final_init_value": summary["median_final_init_value"],
            "median_final_repr_dist": summary["median_final_repr_dist"],
            "final_return": [run["final_return"] for run in summary["runs"]],
            "env_steps_per_second": summary["env_steps_per_second"],
            "wall_seconds": time.perf_counter() - start,
            **spi_diagnostics(run_dir / "metrics.csv"),
        }
        curves[algo] = read_curve(run_dir / "metrics.csv", "init_value")
    results["config"] = dataclasses.asdict(config)
    (args.out / "confounding.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(curves, results["exact"], args.out / "confounding.png",
         f"{args.env}: {num_seeds} seeds per algorithm, median and quartiles")
    for algo in ALGOS:
        print(f"{algo:8s} median final V(I) {results[algo]['median_final_init_value']:.3f}  "
              f"median repr_dist {results[algo]['median_final_repr_dist']:.3f}  "
              f"max ratio {results[algo]['max_ratio_max']:.2f}  "
              f"SPI condition held in {100 * results[algo]['spi_condition_share']:.0f}% of updates")
    print(f"wrote {args.out / 'confounding.json'} and {args.out / 'confounding.png'}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
