"""The paper's confounding gridworld: PPO, DeepMDP and Deep SPI, and the ablations that explain them.

Every run trains all its seeds in one call. The program evaluates the updated network's policy exactly
on the env's tables every iteration (`init_value`, V(I)) and measures how far apart the encoder keeps
the two look-alike star states (`repr_dist`, the mean over latent entries of the squared difference).
The paper reports PPO converging to V(I) ~ 4.80 (always RIGHT) with the stars merged, and Deep SPI
reaching ~ 8.01 (optimal) with them apart.

    uv run python benchmarks/confounding.py --quick        # 3 algorithms x 4 seeds, under 15 min on 2 cores
    uv run python benchmarks/confounding.py                # 3 algorithms x 8 seeds, the paper's settings
    uv run python benchmarks/confounding.py --ablations    # + the variants of ABLATIONS
    uv run python benchmarks/confounding.py --env ConfoundingGrid-v0-84   # the paper's frames (a GPU job)

Runs already finished in `--runs` are read back, not retrained. Writes `confounding.json`,
`confounding.png` (V(I) and repr_dist against env steps, median and quartiles) and, with
`--ablations`, `confounding_ablations.{json,png}` into `--out`.
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
from purejaxspi.provenance import provenance, utc_now

ALGOS = ("ppo", "deepmdp", "deepspi")
RESULTS = Path(__file__).parent / "results"
COMPACT = "ConfoundingGrid-v0"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One training call: an algorithm under the gridworld preset, with flags that change it."""

    name: str
    algo: str
    what: str
    env: str = COMPACT
    flags: tuple[tuple[str, object], ...] = ()


# The paper's settings (the gridworld preset: deep_spi.py's defaults) with the paper's code's spectral
# estimate; PPO is the same with no world model.
def main_variants(env: str, density: str | None) -> list[Variant]:
    extra = (("density", density),) if density else ()
    return [
        Variant(algo, algo, "the paper's settings", env, (("spectral_norm", "reference"),) + extra) for algo in ALGOS
    ]


# What each ablation changes from the main runs (compact frames, 4 seeds).
ABLATIONS = [
    Variant(
        "ppo-long", "ppo", "PPO for 262,144 steps: does its curve stay flat?", flags=(("total_timesteps", 262_144),)
    ),
    Variant(
        "ablate-ppo-marker",
        "ppo",
        "the earlier rendering: one-pixel agent, star brighter than the corridor",
        env="ConfoundingGrid-v0-marker",
    ),
    Variant(
        "ablate-ppo-minatar-settings",
        "ppo",
        "the MinAtar optimiser (lr 1e-3, clip 0.2) with the earlier MinAtar shape, 32 x 32",
        flags=(("learning_rate", (1e-3,)), ("clip_coef", (0.2,)), ("num_envs", 32), ("num_steps", 32)),
    ),
    Variant(
        "ablate-deepspi-det-reference",
        "deepspi",
        "deterministic head, the reference's spectral estimate",
        flags=(("density", "deterministic"), ("spectral_norm", "reference")),
    ),
    Variant(
        "ablate-deepspi-det-exact",
        "deepspi",
        "deterministic head, exact spectral normalisation",
        flags=(("density", "deterministic"), ("spectral_norm", "exact")),
    ),
    Variant(
        "ablate-deepspi-det-none",
        "deepspi",
        "deterministic head, no Lipschitz constraint (deep_mdp_ppo.py's plain networks and gradient penalty)",
        flags=(("density", "deterministic"), ("lipschitz", False)),
    ),
    Variant(
        "ppo84",
        "ppo",
        "the paper's 84 x 84 frames through the Nature CNN (2 seeds)",
        env="ConfoundingGrid-v0-84",
        flags=(("num_seeds", 2),),
    ),
    Variant(
        "ablate-ppo-marker-long",
        "ppo",
        "the earlier rendering, 262,144 steps: does PPO leave the plateau?",
        env="ConfoundingGrid-v0-marker",
        flags=(("total_timesteps", 262_144),),
    ),
    Variant(
        "ablate-deepspi-marker-det-reference",
        "deepspi",
        "the earlier rendering; deterministic head, the reference's estimate",
        env="ConfoundingGrid-v0-marker",
        flags=(("density", "deterministic"), ("spectral_norm", "reference")),
    ),
    Variant(
        "ablate-deepspi-marker-det-reference-long",
        "deepspi",
        "the earlier rendering, 262,144 steps; deterministic head, the reference's estimate",
        env="ConfoundingGrid-v0-marker",
        flags=(("density", "deterministic"), ("spectral_norm", "reference"), ("total_timesteps", 262_144)),
    ),
]


@dataclasses.dataclass
class Args:
    quick: bool = False
    """CPU-sized: 4 seeds x 65,536 steps per algorithm, deterministic transition head (under 15 minutes)."""
    ablations: bool = False
    """Also run (or read back) the ablations and write their table and plot."""
    num_seeds: int = 0
    """Seeds per algorithm (0: 4 with --quick, 8 otherwise)."""
    total_timesteps: int = 65_536
    """Env steps per run (PPO's V(I) is flat from about 60k steps on the compact frames)."""
    env: str = COMPACT
    """ConfoundingGrid-v0 (compact frames, MinAtar trunk) or ConfoundingGrid-v0-84 (the paper's frames, Nature CNN)."""
    out: Path = RESULTS
    """Where the JSON files and plots go."""
    runs: Path = Path("runs") / "confounding"
    """Where the training directories go (and are read back from)."""


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


def train_variant(variant: Variant, num_seeds: int, total_timesteps: int, run_dir: Path) -> float:
    """Train one variant into `run_dir` unless it finished there already; returns the wall seconds spent."""
    import purejaxspi as pjs
    from purejaxspi.algo.config import HPARAM_NAMES

    if (run_dir / "summary.json").exists():
        return 0.0
    settings = {"total_timesteps": total_timesteps, "num_seeds": num_seeds, **dict(variant.flags)}
    seeds = settings.pop("num_seeds")
    hparams = {name: settings.pop(name) for name in HPARAM_NAMES if name in settings}
    config = pjs.make_config(variant.env, variant.algo, **settings)
    grid = pjs.make_grid(config, num_seeds=seeds, **hparams)
    start = time.perf_counter()
    pjs.train(config, grid, run_dir, on_progress=progress_lines)
    return time.perf_counter() - start


def progress_lines(progress) -> None:
    """One line per tenth of a training run."""
    if progress.chunk and progress.chunk % 2 == 0:
        rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
        print(
            f"  {progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps, "
            f"{rate} steps/s",
            flush=True,
        )


def summarise(variant: Variant, run_dir: Path) -> dict:
    """Final V(I) and repr_dist per seed, their medians, and the run's settings and speed."""
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "config.json").read_text())
    steps, values = read_curve(run_dir / "metrics.csv", "init_value")
    _, dist = read_curve(run_dir / "metrics.csv", "repr_dist")
    return {
        "name": variant.name,
        "algo": variant.algo,
        "what": variant.what,
        "env": variant.env,
        "config": record["config"],
        "hparams": record.get("hparam_values"),
        "num_seeds": values.shape[0],
        "env_steps": int(steps[-1]),
        "final_init_value": [round(float(v), 4) for v in values[:, -1]],
        "median_final_init_value": float(np.median(values[:, -1])),
        "median_final_repr_dist": float(np.median(dist[:, -1])),
        "median_initial_repr_dist": float(np.median(dist[:, 0])),
        "median_init_value_at_32k": float(np.median(values[:, min(np.searchsorted(steps, 32_768), len(steps) - 1)])),
        "env_steps_per_second": summary["env_steps_per_second"],
    }


def plot(curves: dict[str, Path], references: dict[str, float], path: Path, title: str) -> None:
    """V(I) and repr_dist against env steps, one line (median) and band (quartiles) per run directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_v, ax_d) = plt.subplots(1, 2, figsize=(13, 4.8))
    for name, run_dir in curves.items():
        for ax, column in ((ax_v, "init_value"), (ax_d, "repr_dist")):
            steps, values = read_curve(run_dir / "metrics.csv", column)
            q25, median, q75 = np.nanpercentile(values, [25, 50, 75], axis=0)
            (line,) = ax.plot(steps, median, label=f"{name} ({values.shape[0]} seeds)")
            ax.fill_between(steps, q25, q75, color=line.get_color(), alpha=0.2)
    styles = {"optimal": ":", "always_right": "--", "up_at_both_stars": "-."}
    for name, value in references.items():
        ax_v.axhline(
            value, color="grey", linestyle=styles[name], linewidth=1, label=f"{name.replace('_', ' ')} ({value:.2f})"
        )
    ax_v.set_ylabel("exact V(I) of the policy")
    ax_d.set_ylabel("repr_dist: mean squared latent difference of the stars")
    ax_d.set_yscale("log")
    for ax in (ax_v, ax_d):
        ax.set_xlabel("env steps per run")
        ax.grid(alpha=0.3)
    ax_v.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> dict:
    started = utc_now()
    num_seeds = args.num_seeds or (4 if args.quick else 8)
    density = "deterministic" if args.quick else None
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    results: dict = {
        "env": args.env,
        "num_seeds": num_seeds,
        "total_timesteps": args.total_timesteps,
        "exact": exact_values(),
        "runs": [],
    }
    curves = {}
    for variant in main_variants(args.env, density):
        run_dir = args.runs / f"{variant.name}{suffix}"
        wall = train_variant(variant, num_seeds, args.total_timesteps, run_dir)
        results["runs"].append({**summarise(variant, run_dir), "wall_seconds": round(wall, 1)})
        curves[variant.algo] = run_dir
    name = f"confounding{suffix}"
    results["provenance"] = provenance(started)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(
        curves,
        results["exact"],
        args.out / f"{name}.png",
        f"{args.env}: the paper's settings, {num_seeds} seeds, median and quartiles",
    )
    for run in results["runs"]:
        print(
            f"{run['algo']:8s} median final V(I) {run['median_final_init_value']:.3f}  "
            f"repr_dist {run['median_initial_repr_dist']:.4f} -> {run['median_final_repr_dist']:.4f}"
        )
    if args.ablations:
        table = []
        ablation_curves = {}
        for variant in ABLATIONS:
            run_dir = args.runs / variant.name
            wall = train_variant(variant, 4, args.total_timesteps, run_dir)
            table.append({**summarise(variant, run_dir), "wall_seconds": round(wall, 1)})
            ablation_curves[variant.name] = run_dir
            print(f"{variant.name:30s} median final V(I) {table[-1]['median_final_init_value']:.3f}")
        made_by = provenance(started)
        table = [{**row, "provenance": made_by} for row in table]
        (args.out / "confounding_ablations.json").write_text(json.dumps(table, indent=2) + "\n")
        plot(
            ablation_curves,
            results["exact"],
            args.out / "confounding_ablations.png",
            "Ablations (compact frames unless named), median and quartiles",
        )
    print(f"wrote {args.out / (name + '.json')} and its plot")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
