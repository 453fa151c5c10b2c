"""How much world model does Deep SPI need? alpha_R x alpha_P grids, each env's whole grid in one program.

For each study (an env and an algorithm) the grid of alpha_R x alpha_P values times the seeds is one
call of `train` (runs = cells x seeds), so alpha_R = alpha_P = 0 (PPO's objective: U = A) is a cell of
the same program as the paper's alphas. Per cell the script reports the final score (IQM over seeds,
95% bootstrap CI), the mean over the run (how fast it learned, where the finals reach a cap), the
final L_R and L_P, how large the world-model terms are against the advantage
(`world_model_share`: mean(alpha_R L_R + alpha_P L_P) / mean|A|, A the normalised advantages; for
DeepMDP the same terms sit outside the clip), the SPI diagnostics (clip fraction, ratio range) and,
on the gridworld, the steps until V(I) leaves the always-RIGHT plateau and reaches the optimum and
the final repr_dist between the stars. The heatmaps and the curves of the best, the paper's and the
alpha = 0 cell are `purejaxspi plot --heatmap reward_coef transition_coef`.

    uv run python benchmarks/sensitivity.py --quick      # 3 x 3 alphas x 2 seeds on CartPole and the gridworld
    uv run python benchmarks/sensitivity.py              # the full study (hours on the CPU; resumable)
    uv run python benchmarks/sensitivity.py --studies cartpole gridworld

A finished study directory under `--runs` is read back instead of trained again, and an interrupted
one resumes from its last checkpoint. Writes `benchmarks/results/sensitivity[_quick].json`, and
`sensitivity[_quick]_<study>.png` (heatmap and curves) per study, and on the gridworld
`sensitivity[_quick]_<study>_repr_dist.png` (the same for the distance between the stars' latents).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import tyro

from purejaxspi.provenance import provenance, utc_now

RESULTS = Path(__file__).parent / "results"
PAPER = (0.01, 0.0005)  # deep_spi.py's alpha_R, alpha_P
# Each axis: 0, the paper's value, then two steps of 100x, from negligible to dominant against the
# normalised advantage (|A| ~ 0.8). L_P reduced by the mean (the deterministic head) is the summed one
# divided by the latent's size (256 entries from MinAtar's frame MLP, 1,024 from the gridworld's conv
# trunk), so its axis steps by 1,000x; the measured world_model_share of each cell says where
# "dominant" begins.
ALPHA_R = (0.0, 0.01, 1.0, 100.0)
ALPHA_P_SUM = (0.0, 0.0005, 0.05, 5.0)  # the mixture head (CartPole's vector preset)
ALPHA_P_MEAN = (0.0, 0.0005, 0.5, 500.0)
# The gridworld's preset head is the mixture, which costs about 2.3x the deterministic head's time there
# on a CPU (359 against 825 env steps/s, benchmarks/results/confounding*.json): the CPU studies take
# the deterministic head (L_P the mean, as deep_spi.py reduces it) and the reference's spectral estimate.
GRIDWORLD_CPU = (("density", "deterministic"), ("spectral_norm", "reference"))
# V(I) on the gridworld: always RIGHT is worth 4.80 (the plateau sits at about 4.5 with exploration)
# and the optimum 8.01.
LEFT_PLATEAU = 5.5
NEAR_OPTIMUM = 7.5


@dataclasses.dataclass(frozen=True)
class Study:
    """One env and algorithm: its grid trained in one call."""

    name: str
    env: str
    algo: str
    alpha_p: tuple[float, ...]
    total_timesteps: int
    quick_timesteps: int
    what: str
    score: str = "episodic_return"  # the heatmap's metric
    settings: tuple[tuple[str, object], ...] = ()  # Config overrides beyond the preset

    @property
    def gridworld(self) -> bool:
        return self.env.startswith("ConfoundingGrid")


STUDIES = (
    Study(
        "cartpole",
        "CartPole-v1",
        "deepspi",
        ALPHA_P_SUM,
        150_000,
        40_960,
        "the cheap sanity cell: the vector preset (mixture head)",
    ),
    Study(
        "gridworld",
        "ConfoundingGrid-v0",
        "deepspi",
        ALPHA_P_MEAN,
        65_536,
        32_768,
        "the reference rendering (all algorithms reach the optimum)",
        "init_value",
        GRIDWORLD_CPU,
    ),
    Study(
        "gridworld-deepmdp",
        "ConfoundingGrid-v0",
        "deepmdp",
        ALPHA_P_MEAN,
        65_536,
        32_768,
        "the same cells with the terms outside the clip (deep_spi.py --deep_mdp)",
        "init_value",
        GRIDWORLD_CPU,
    ),
    Study(
        "gridworld-marker",
        "ConfoundingGrid-v0-marker",
        "deepspi",
        ALPHA_P_MEAN,
        131_072,
        32_768,
        "the one-pixel marker rendering, where PPO sits on the plateau for ~70k steps",
        "init_value",
        GRIDWORLD_CPU,
    ),
    Study(
        "gridworld-marker-deepmdp",
        "ConfoundingGrid-v0-marker",
        "deepmdp",
        ALPHA_P_MEAN,
        131_072,
        32_768,
        "the marker rendering, terms outside the clip",
        "init_value",
        GRIDWORLD_CPU,
    ),
    # The MinAtar preset trains 8,192 env steps an iteration; 1,048,576 steps (128 iterations) is a
    # tenth of its budget, by which the fastest of PPO's four preset seeds on Breakout has passed 27
    # (at 0.7M; benchmarks/README.md, the parity section).
    Study(
        "breakout",
        "Breakout-MinAtar",
        "deepspi",
        ALPHA_P_MEAN,
        1_048_576,
        131_072,
        "the MinAtar preset (deterministic head, L_P the mean, the frame MLP) at a tenth of its budget",
    ),
    Study(
        "spaceinvaders",
        "SpaceInvaders-MinAtar",
        "deepspi",
        ALPHA_P_MEAN,
        1_048_576,
        131_072,
        "a second MinAtar game at the same budget",
    ),
)
QUICK_STUDIES = ("cartpole", "gridworld")
DIAGNOSTICS = ("reward_loss", "transition_loss", "world_model_share", "clip_fraction", "ratio_min", "ratio_max")


@dataclasses.dataclass
class Args:
    quick: bool = False
    """A reduced study: CartPole and the reference gridworld (Deep SPI), 3 x 3 alphas x 2 seeds, short runs."""
    studies: tuple[str, ...] = ()
    """Which studies (default: all, or the quick ones with --quick)."""
    num_seeds: int = 0
    """Seeds per cell (0: 2 with --quick, 4 otherwise)."""
    total_timesteps: int = 0
    """Env steps per run (0: each study's budget, or its quick budget with --quick)."""
    runs: Path = Path("runs") / "sensitivity"
    """Where the training directories go (and are read back from)."""
    out: Path = RESULTS
    """Where sensitivity[_quick].json and the plots go."""
    reps: int = 2000
    """Bootstrap resamples for every CI."""


def fail(message: str, code: int = 2):
    """Bad input: one line on stderr, exit code 2, nothing trained or overwritten (1: training diverged)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def axes_of(study: Study, quick: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The alpha_R and alpha_P values: all four each, or 0, the paper's and the dominant end with --quick."""
    if quick:
        return (ALPHA_R[0], ALPHA_R[1], ALPHA_R[-1]), (study.alpha_p[0], study.alpha_p[1], study.alpha_p[-1])
    return ALPHA_R, study.alpha_p


def train_study(study: Study, quick: bool, num_seeds: int, run_dir: Path, budget: int = 0) -> tuple[dict, float]:
    """Train (or read back, or resume) one study's whole grid in one call; its summary and the seconds spent."""
    import purejaxspi as pjs
    from purejaxspi.lifecycle.loop import training_record

    alpha_r, alpha_p = axes_of(study, quick)
    budget = budget or (study.quick_timesteps if quick else study.total_timesteps)
    try:
        config = pjs.make_config(study.env, study.algo, total_timesteps=budget, **dict(study.settings))
        grid = pjs.make_grid(config, num_seeds=num_seeds, reward_coef=list(alpha_r), transition_coef=list(alpha_p))
    except pjs.UserError as e:
        fail(str(e))
    saved = run_dir / "config.json"
    if saved.is_file():
        previous = json.loads(saved.read_text())
        previous["config"] = pjs.Config.of(**previous.get("config", {})).flat()
        if any(previous.get(k) != v for k, v in training_record(config, grid).items()):
            fail(f"{run_dir} holds a different run; pass another --runs")
        if (run_dir / "summary.json").is_file():
            print(f"{study.name}: finished earlier, read from {run_dir}")
            return json.loads((run_dir / "summary.json").read_text()), 0.0
    print(
        f"{study.name}: {study.env} {study.algo}, {len(alpha_r)} x {len(alpha_p)} alphas x {num_seeds} seeds "
        f"= {grid.size} runs x {budget:,} env steps, one program",
        flush=True,
    )
    options = pjs.RunOptions(resume=saved.is_file(), checkpoint_every=4, keep_checkpoints=1)
    start = time.perf_counter()
    try:
        summary = pjs.train(config, grid, run_dir, options, on_progress=progress_lines)
    except pjs.UserError as e:
        fail(str(e))
    except pjs.NonFiniteLossError as e:
        fail(str(e), code=1)
    return summary, time.perf_counter() - start


def progress_lines(progress) -> None:
    for note in progress.notes:
        print(note)
    if progress.chunk:
        rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
        print(
            f"  {progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps, "
            f"{rate} steps/s",
            flush=True,
        )


def first_crossing(curve, threshold: float) -> float:
    """The env steps at which the run's metric first reaches `threshold` (NaN: never)."""
    above = np.flatnonzero(np.nan_to_num(curve.values, nan=-np.inf) >= threshold)
    return float(curve.steps[above[0]]) if above.size else math.nan


def cell_table(study: Study, run_dir: Path, reps: int) -> list[dict]:
    """One row per (alpha_R, alpha_P): the score with its CI, the diagnostics' medians over seeds and,
    on the gridworld, the steps to leave the plateau and to near the optimum."""
    from purejaxspi.analysis.plot import read_run_dir
    from purejaxspi.analysis.sweep import sweep_panels
    from purejaxspi.lifecycle.metrics import iqm, iqm_interval

    def cells(metric: str):
        (panel,) = sweep_panels(read_run_dir(run_dir, metric), "reward_coef", "transition_coef", "iqm", reps)
        return panel.cells

    rows = {}
    for key, cell in cells(study.score).items():
        rows[key] = {
            "reward_coef": key[0],
            "transition_coef": key[1],
            "seeds": len(cell.curves),
            "score": {
                "metric": study.score,
                "iqm": cell.point,
                "ci": list(cell.ci),
                "per_seed": [round(float(v), 4) for v in cell.finals()],
            },
        }
        speed = np.asarray([c.mean_over_run() for c in cell.curves])
        speed = speed[np.isfinite(speed)]
        if speed.size:
            rows[key]["mean_over_run"] = {"iqm": iqm(speed), "ci": list(iqm_interval(speed, reps, 0))}
        if study.gridworld:
            for name, threshold in (("steps_to_leave_plateau", LEFT_PLATEAU), ("steps_to_near_optimum", NEAR_OPTIMUM)):
                steps = np.asarray([first_crossing(c, threshold) for c in cell.curves])
                rows[key][name] = {"median": _median(steps), "never": int(np.isnan(steps).sum())}
    for metric in DIAGNOSTICS + (("repr_dist",) if study.gridworld else ()):
        for key, cell in cells(metric).items():
            rows[key][f"final_{metric}"] = _median(cell.finals())
    return [rows[k] for k in sorted(rows)]


def _median(values) -> float | None:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def _estimate(entry: dict | None, num) -> str:
    return "-" if not entry else f"{num(entry['iqm'])} [{num(entry['ci'][0])}, {num(entry['ci'][1])}]"


def markdown(study: Study, rows: list[dict]) -> str:
    """The study's cells as a markdown table."""
    gridworld = study.gridworld
    head = [
        "alpha_R",
        "alpha_P",
        f"{study.score} IQM [95% CI]",
        "mean over run",
        "L_R",
        "L_P",
        "share of |A|",
        "clip frac",
        "ratio range",
    ] + ([f"V(I) {LEFT_PLATEAU:g} at", f"V(I) {NEAR_OPTIMUM:g} at", "repr_dist"] if gridworld else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(x, fmt=".3g"):
        return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)

    for r in rows:
        s = r["score"]
        cells = [
            f"{r['reward_coef']:g}",
            f"{r['transition_coef']:g}",
            f"{num(s['iqm'])} [{num(s['ci'][0])}, {num(s['ci'][1])}]",
            _estimate(r.get("mean_over_run"), num),
            num(r["final_reward_loss"]),
            num(r["final_transition_loss"]),
            num(r["final_world_model_share"]),
            num(r["final_clip_fraction"], ".3f"),
            f"{num(r['final_ratio_min'], '.2f')}-{num(r['final_ratio_max'], '.2f')}",
        ]
        if gridworld:
            for name in ("steps_to_leave_plateau", "steps_to_near_optimum"):
                entry = r[name]
                never = f" ({entry['never']} never)" if entry["never"] else ""
                cells.append(f"{num(entry['median'], ',.0f')}{never}")
            cells.append(num(r["final_repr_dist"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args: Args) -> dict:
    from purejaxspi.analysis.sweep import heatmap

    started = utc_now()
    known = {s.name: s for s in STUDIES}
    names = args.studies or (QUICK_STUDIES if args.quick else tuple(known))
    for name in names:
        if name not in known:
            fail(f"unknown study {name!r}; choose from {', '.join(known)}")
    num_seeds = args.num_seeds or (2 if args.quick else 4)
    if num_seeds < 2:
        fail("--num-seeds must be at least 2 for confidence intervals")
    if args.total_timesteps < 0 or args.reps < 1:
        fail("--total-timesteps must be non-negative and --reps positive")
    suffix = "_quick" if args.quick else ""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"sensitivity{suffix}"
    results = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").is_file() else {}
    results.update(
        {"paper_alphas": list(PAPER), "num_seeds": num_seeds, "confidence": 0.95, "bootstrap_reps": args.reps}
    )
    results.setdefault("studies", {})
    start = time.perf_counter()
    for name in names:
        study = known[name]
        run_dir = args.runs / f"{name}{suffix}"
        summary, seconds = train_study(study, args.quick, num_seeds, run_dir, args.total_timesteps)
        rows = cell_table(study, run_dir, args.reps)
        alpha_r, alpha_p = axes_of(study, args.quick)
        record = json.loads((run_dir / "config.json").read_text())
        previous = results["studies"].get(name, {})
        results["studies"][name] = {
            "env": study.env,
            "algo": study.algo,
            "what": study.what,
            "score": study.score,
            "alpha_r": list(alpha_r),
            "alpha_p": list(alpha_p),
            "config": record["config"],
            "env_steps_per_run": record["config"]["total_timesteps"],
            "runs": len(summary["runs"]),
            "env_steps_per_second": summary["env_steps_per_second"],
            "train_seconds": round(seconds, 1) if seconds else previous.get("train_seconds"),
            "cells": rows,
        }
        # a study read back keeps the record of the call that trained it (its machine, its provenance)
        kept = ("host", "host_wall_seconds", "provenance")
        results["studies"][name].update(
            {k: previous[k] for k in kept if k in previous} if not seconds else {"provenance": provenance(started)}
        )
        for metric in (study.score,) + (("repr_dist",) if study.gridworld else ()):
            suffix_metric = "" if metric == study.score else f"_{metric}"
            heatmap(
                [run_dir],
                Path(f"{stem}_{name}{suffix_metric}.png"),
                "reward_coef",
                "transition_coef",
                metric,
                reps=args.reps,
                highlight=[PAPER],
            )
        print(f"\n{name}: {study.env} {study.algo} ({study.what})")
        print(markdown(study, rows), flush=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {stem.with_suffix('.json')} and its plots in {(time.perf_counter() - start) / 60:.1f} min")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
