"""PPO, DeepMDP and Deep SPI on the five MinAtar games (gymnax): final returns and world-model losses.

Every (game, algorithm) pair trains all its seeds in one call of the training program, then plays
`--eval-episodes` episodes per seed with the final policy (actions sampled from it): a seed's final
return is their mean. (Freeway's episodes last 2,500 steps, longer than a CPU budget gives each of
the 32 training envs, so the training episodes alone would leave it without a score.) As each pair
finishes, one line goes to the record, `OUT/minatar_<budget>.runs.jsonl`: its seeds' returns, final
transition losses, binned learning curves and times. The tables and the figure are drawn from the
record alone: per game, the IQM of the final return over seeds with a 95% bootstrap CI; the rliable
aggregates (IQM, median, mean, optimality gap) of scores normalised per game to [random policy,
gymnax's published PPO score at 10M steps] and rliable's probability of improvement; the paper's
second claim, Deep SPI's final transition loss against DeepMDP's at the same coefficients, paired by
(game, seed) and tested with a Wilcoxon signed-rank test; and the time per game. Writes
`OUT/minatar_<budget>.json` and `.png`.

    uv run python benchmarks/minatar.py                      # CPU: 16 seeds x 65,536 steps per run
    uv run python benchmarks/minatar.py --budget 10000000 --no-table   # GPU: 10M steps, record only
    uv run python benchmarks/minatar.py --budget 10000000 --table-only # anywhere: table the record

A rerun trains only the pairs the record lacks, so several short accelerator sessions complete the
five games when each brings its record back. A finished (game, algorithm) directory under `--runs` is
read back instead of trained again, and an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import tyro

GAMES = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar")
ALGOS = ("ppo", "deepmdp", "deepspi")
# gymnax's published PPO returns after 10M env steps (its README's MinAtar table). It gives none for
# Seaquest; there the top of the range is the best final return any run of the benchmark reached.
PPO_REFERENCE_10M = {
    "Asterix-MinAtar": 15.0,
    "Breakout-MinAtar": 28.0,
    "Freeway-MinAtar": 58.0,
    "SpaceInvaders-MinAtar": 131.0,
}
# The last evaluation in the training log gymnax-blines ships beside each checkpoint
# (`agents/<game>/ppo.pkl`: seed 0, ppo.yaml's settings, the mean of 164 sampled-action episodes at
# 9,919,936 env steps). Three games are the README's number rounded; Breakout's log ends at 22.88
# (its highest evaluation 23.46), not 28.
PPO_SHIPPED_LOG_10M = {
    "Asterix-MinAtar": 14.95,
    "Breakout-MinAtar": 22.88,
    "Freeway-MinAtar": 58.80,
    "SpaceInvaders-MinAtar": 131.64,
}
# rliable hands arch a RandomState, which arch warns about on every bootstrap
warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
CPU_BUDGET = 65_536
ACCELERATOR_BUDGET = 10_000_000
RESULTS = Path(__file__).parent / "results"
CI = 0.95


def fail(message: str, code: int = 2):
    """Bad input: one line on stderr, exit code 2, nothing trained or overwritten (1: training diverged)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


@dataclasses.dataclass
class Args:
    budget: int | None = None
    """Env steps per run (default: 65,536 on a CPU, 10M on a GPU)."""
    density: str | None = None
    """Deep SPI's transition density (default: the MinAtar preset's deterministic head on a CPU, the paper's
    mixture on a GPU); DeepMDP keeps its script's deterministic head."""
    num_seeds: int = 16
    """Seeds per (game, algorithm), trained together in one call."""
    games: tuple[str, ...] = GAMES
    algos: tuple[str, ...] = ALGOS
    runs: Path = Path("runs") / "minatar"
    """Where the training directories go (one per game and algorithm, under <budget>-<density>/)."""
    out: Path = RESULTS
    """Where minatar_<budget>.json and .png go."""
    reps: int = 2000
    """Bootstrap resamples for every CI."""
    random_steps: int = 4000
    """Steps of 64 envs under a uniformly random policy, per game, for the bottom of the normalised range."""
    eval_episodes: int = 32
    """Evaluation episodes per seed with the final policy."""
    eval_max_steps: int = 10_000
    """Cap on an evaluation episode's length (Freeway's last 2,500 steps)."""
    no_table: bool = False
    """Train, evaluate and record only (an accelerator node without the analysis packages); table later
    with --table-only."""
    table_only: bool = False
    """Table and draw what the record holds (OUT/minatar_<budget>.runs.jsonl), training nothing: the
    games an accelerator recorded, read back on any machine."""


# ---- measuring -------------------------------------------------------------------------------------


def random_policy_return(env_id: str, num_steps: int, num_envs: int = 64, seed: int = 0) -> float:
    """Mean return of the episodes a uniformly random policy finishes (the normalised range's zero)."""
    import jax

    from purejaxspi.analysis.bench import random_rollout
    from purejaxspi.envs import make_env

    play = jax.jit(random_rollout(make_env(env_id, num_envs), num_steps))
    _, returns, episodes = play(jax.random.PRNGKey(seed)[None])
    if float(episodes[0]) == 0:
        fail(f"{env_id}: no random episode finished in {num_steps} steps; raise --random-steps")
    return float(returns[0]) / float(episodes[0])


def train_pair(game: str, algo: str, args: Args, budget: int, density: str | None, run_dir: Path) -> dict:
    """Train (or read back, or resume) all seeds of one (game, algorithm); returns its summary.json."""
    import purejaxspi as pjs
    from purejaxspi.lifecycle.loop import training_record

    # the density is Deep SPI's choice; DeepMDP's plain world model is deterministic, as its script's
    overrides = {"density": density} if density and algo != "deepmdp" else {}
    try:
        config = pjs.make_config(game, algo, total_timesteps=budget, **overrides)
        grid = pjs.make_grid(config, num_seeds=args.num_seeds)
    except pjs.UserError as e:
        fail(str(e))
    record = training_record(config, grid)
    saved = run_dir / "config.json"
    if saved.is_file():
        previous = json.loads(saved.read_text())
        # a setting added to Config after the run was written counts as its default (as train --resume does)
        previous["config"] = pjs.Config.of(**previous.get("config", {})).flat()
        if any(previous.get(k) != v for k, v in record.items()):
            fail(f"{run_dir} holds a different run; pass another --runs")
        if (run_dir / "summary.json").is_file():
            print(f"{game} {algo}: finished earlier, read from {run_dir}")
            return json.loads((run_dir / "summary.json").read_text())
    head = config.world_model.density if config.world_model else "no"
    print(f"{game} {algo}: {args.num_seeds} seeds x {budget:,} env steps ({head} transition head)")
    options = pjs.RunOptions(resume=saved.is_file(), checkpoint_every=4, keep_checkpoints=1)
    try:
        return pjs.train(config, grid, run_dir, options, on_progress=progress_lines)
    except pjs.UserError as e:
        fail(str(e))
    except pjs.NonFiniteLossError as e:
        fail(str(e), code=1)


def progress_lines(progress) -> None:
    """One line per chunk of a training run."""
    for note in progress.notes:
        print(note)
    if progress.chunk:
        rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
        print(
            f"  {progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps, "
            f"{rate} steps/s",
            flush=True,
        )


def evaluate_pair(run_dir: Path, episodes: int, max_steps: int) -> list[float]:
    """Mean return per seed of `episodes` episodes of the final policy (DIR/eval.json, reused if it matches)."""
    from purejaxspi.lifecycle.evaluate import EvalError, evaluate, load_run

    saved = run_dir / "eval.json"
    report = json.loads(saved.read_text()) if saved.is_file() else {}
    if (report.get("episodes"), report.get("max_steps"), report.get("greedy"), report.get("seed")) != (
        episodes,
        max_steps,
        False,
        0,
    ):
        try:
            report = evaluate(load_run(run_dir), episodes, False, max_steps, 0)
        except EvalError as e:
            fail(str(e))
    return [math.nan if r["mean_return"] is None else r["mean_return"] for r in report["runs"]]


# ---- statistics ------------------------------------------------------------------------------------


def iqm_with_ci(scores: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float, float]:
    """IQM over seeds and its 95% percentile-bootstrap CI (rliable; one task, so plain resampling)."""
    from rliable import library as rly
    from rliable import metrics

    from purejaxspi.analysis.stats import seeded_bootstrap

    with seeded_bootstrap(seed) as random_state:
        point, interval = rly.get_interval_estimates(
            {"x": np.asarray(scores, float)[:, None]},
            lambda s: np.array([metrics.aggregate_iqm(s)]),
            reps=reps,
            confidence_interval_size=CI,
            random_state=random_state,
        )
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def normalise(returns: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [random policy, reference] to [0, 1]."""
    return (np.asarray(returns, float) - low) / (high - low)


def paired_wilcoxon(deepspi: np.ndarray, deepmdp: np.ndarray) -> dict:
    """Wilcoxon signed-rank test of paired final transition losses (Deep SPI minus DeepMDP)."""
    from scipy.stats import wilcoxon

    deepspi, deepmdp = np.asarray(deepspi, float), np.asarray(deepmdp, float)
    keep = np.isfinite(deepspi) & np.isfinite(deepmdp)
    deepspi, deepmdp = deepspi[keep], deepmdp[keep]
    difference = deepspi - deepmdp
    return {
        "pairs": int(keep.sum()),
        "median_deepspi": float(np.median(deepspi)),
        "median_deepmdp": float(np.median(deepmdp)),
        "median_difference": float(np.median(difference)),
        "share_deepspi_lower": float(np.mean(difference < 0)),
        "p_two_sided": float(wilcoxon(deepspi, deepmdp, alternative="two-sided").pvalue),
        "p_deepspi_lower": float(wilcoxon(deepspi, deepmdp, alternative="less").pvalue),
    }


def final_metric(run_dir: Path, metric: str) -> tuple[list[float], list]:
    """Per run, the metric's mean over the last 10% of env steps; and the runs' curves."""
    from purejaxspi.analysis.plot import read_run_dir

    curves = read_run_dir(run_dir, metric)
    return [c.final() for c in curves], curves


# ---- the figure ------------------------------------------------------------------------------------


def plot(results: dict, records: dict, path: Path, reps: int):
    """Learning curves per game; normalised aggregates; transition losses of DeepMDP vs Deep SPI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from purejaxspi.analysis.stats import curve_estimates

    games, algos = results["games"], results["algos"]
    colours = {a: plt.get_cmap("tab10")(i) for i, a in enumerate(ALGOS)}
    fig = plt.figure(figsize=(max(4.0 * len(games), 12.0), 8.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.0])
    axes = np.atleast_1d(top.subplots(1, len(games), squeeze=False)[0])
    for ax, game in zip(axes, games):
        drawn_any = False
        for algo in algos:
            curve = records[game, algo]["curve"]
            edges = np.asarray(curve["edges"])
            matrix = np.array([[np.nan if v is None else v for v in row] for row in curve["returns"]])
            drawn = ~np.isnan(matrix).any(axis=0)
            if not drawn.any():
                continue
            drawn_any = True
            centres = ((edges[:-1] + edges[1:]) / 2)[drawn]
            point, interval = curve_estimates(matrix[:, drawn], "iqm", reps, 0)
            ax.plot(centres, point, color=colours[algo], label=algo, lw=1.6)
            ax.fill_between(centres, interval[0], interval[1], color=colours[algo], alpha=0.2, lw=0)
        for j, algo in enumerate(algos):  # the final policy's evaluation, IQM and CI over seeds
            final = results["per_game"][game]["iqm"][algo]
            x = results["budget"] * (1.02 + 0.02 * j)
            ax.errorbar(
                [x],
                [final["point"]],
                yerr=[[final["point"] - final["ci"][0]], [final["ci"][1] - final["point"]]],
                fmt="D",
                ms=4,
                color=colours[algo],
                capsize=2,
                label="final policy (eval)" if j == 0 else None,
            )
        ax.axhline(results["per_game"][game]["random_return"], color="grey", ls=":", lw=1, label="random policy")
        if not drawn_any:
            ax.text(
                0.45,
                0.9,
                "no training episode ended\nwithin the budget",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="grey",
            )
        ax.set_title(game, fontsize=10)
        ax.set_xlim(0, results["budget"] * (1.04 + 0.02 * len(algos)))
        ax.set_xlabel("env steps per run")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    axes[0].set_ylabel(f"return: training episodes, then the final policy\n(IQM over seeds, {CI:.0%} CI)")
    axes[0].legend(fontsize=8)

    ax_agg, ax_loss = bottom.subplots(1, 2)
    aggregate = results["aggregate"]
    names = ("IQM", "Median", "Mean")
    for k, name in enumerate(names):
        for j, algo in enumerate(algos):
            entry = aggregate[algo][name]
            y = k * (len(algos) + 1) + j
            ax_agg.barh(
                y,
                entry["ci"][1] - entry["ci"][0],
                left=entry["ci"][0],
                height=0.7,
                color=colours[algo],
                alpha=0.75,
                label=algo if k == 0 else None,
            )
            ax_agg.plot([entry["point"]] * 2, [y - 0.35, y + 0.35], color="black", lw=1.5)
    ax_agg.set_yticks([k * (len(algos) + 1) + (len(algos) - 1) / 2 for k in range(len(names))], names)
    ax_agg.invert_yaxis()
    ax_agg.set_xlabel("normalised final return (0: random policy, 1: gymnax PPO at 10M steps)")
    ax_agg.set_title(f"Aggregates over {len(games)} games\n{CI:.0%} stratified bootstrap CIs", fontsize=10)
    ax_agg.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=len(algos), frameon=False)
    ax_agg.grid(axis="x", alpha=0.3)

    if "transition_loss" in results:
        markers = "osD^v"
        for g, game in enumerate(games):
            pair = results["per_game"][game]
            if "deepspi" in pair["final_transition_loss"] and "deepmdp" in pair["final_transition_loss"]:
                ax_loss.scatter(
                    pair["final_transition_loss"]["deepmdp"],
                    pair["final_transition_loss"]["deepspi"],
                    marker=markers[g % len(markers)],
                    s=22,
                    alpha=0.75,
                    label=game,
                )
        lo, hi = ax_loss.get_xlim()
        lo, hi = min(lo, ax_loss.get_ylim()[0]), max(hi, ax_loss.get_ylim()[1])
        ax_loss.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        ax_loss.set_xscale("log")
        ax_loss.set_yscale("log")
        test = results["transition_loss"]
        ax_loss.set_title(
            f"Final transition loss per (game, seed)\nDeep SPI lower in "
            f"{test['share_deepspi_lower']:.0%} of {test['pairs']} pairs, "
            f"Wilcoxon p = {test['p_two_sided']:.2g}",
            fontsize=10,
        )
        ax_loss.set_xlabel("DeepMDP")
        ax_loss.set_ylabel("Deep SPI")
        ax_loss.legend(fontsize=8)
        ax_loss.grid(alpha=0.3)
    else:
        ax_loss.set_axis_off()
    fig.suptitle(
        f"MinAtar (gymnax): {results['num_seeds']} seeds x {results['budget']:,} env steps per run, "
        f"{results['density']} transition head"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    """The per-game table for benchmarks/README.md."""
    algos = results["algos"]
    head = "| game | random | " + " | ".join(f"{a} IQM [95% CI]" for a in algos) + " | gymnax PPO @10M |"
    lines = [head, "|" + "---|" * (len(algos) + 3)]
    for game in results["games"]:
        g = results["per_game"][game]
        cells = [f"{g['iqm'][a]['point']:.2f} [{g['iqm'][a]['ci'][0]:.2f}, {g['iqm'][a]['ci'][1]:.2f}]" for a in algos]
        ref = PPO_REFERENCE_10M.get(game)
        lines.append(
            f"| {game} | {g['random_return']:.2f} | " + " | ".join(cells) + f" | {ref if ref is not None else 'n/a'} |"
        )
    agg = results["aggregate"]
    cells = [
        f"{agg[a]['IQM']['point']:.3f} [{agg[a]['IQM']['ci'][0]:.3f}, {agg[a]['IQM']['ci'][1]:.3f}]" for a in algos
    ]
    lines.append(f"| normalised IQM, {len(results['games'])} games | 0 | " + " | ".join(cells) + " | 1 |")
    return "\n".join(lines)


# ---- the record: one line per (game, algorithm), appended as each finishes -------------------------


def record_path(out: Path, budget: int) -> Path:
    return out / f"minatar_{budget}.runs.jsonl"


def read_records(path: Path) -> dict[tuple[str, str], dict]:
    """The record's lines by (game, algorithm); a later line for the same pair replaces an earlier one."""
    records: dict[tuple[str, str], dict] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: that pair runs again
                print(f"{path}:{number}: an unreadable line, left out")
                continue
            records[record["game"], record["algo"]] = record
    return records


def setting_key(args: Args, budget: int, density: str | None) -> dict:
    """What makes two records comparable: a record holds one key."""
    return {
        "budget": budget,
        "num_seeds": args.num_seeds,
        "density": density or "preset",
        "eval_episodes": args.eval_episodes,
        "eval_max_steps": args.eval_max_steps,
    }


def binned_curves(curves: list, bins: int = 40) -> dict:
    """Each seed's training return in env-step bins (NaN where no episode had ended yet), small enough to
    travel in the record, so a figure can be drawn where the run directories are not."""
    from purejaxspi.analysis.plot import binned

    edges = np.linspace(0.0, max(c.steps.max() for c in curves), min(bins, len(curves[0].steps)) + 1)
    matrix = np.stack([binned(c, edges) for c in curves])
    return {"edges": edges.tolist(), "returns": [[None if np.isnan(v) else float(v) for v in row] for row in matrix]}


def measure_pair(game: str, algo: str, args: Args, key: dict, random_return: float, runs: Path) -> dict:
    """Train (or read back, or resume) one (game, algorithm), evaluate its final policies; its record line."""
    import jax

    from purejaxspi.provenance import provenance, utc_now

    density = None if key["density"] == "preset" else key["density"]
    run_dir = runs / f"{key['budget']}-{key['density']}" / f"{game}-{algo}"
    began, started = time.perf_counter(), utc_now()
    summary = train_pair(game, algo, args, key["budget"], density, run_dir)
    trained = time.perf_counter()
    returns = evaluate_pair(run_dir, args.eval_episodes, args.eval_max_steps)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    _, curves = final_metric(run_dir, "episodic_return")
    return {
        "game": game,
        "algo": algo,
        "key": key,
        "transition_density": config["density"] if algo != "ppo" else None,
        "random_return": random_return,
        "final_return": returns,
        # the training episodes that ended in the last 10% of env steps (summary.json's final_return)
        "training_final_return": [r["final_return"] for r in summary["runs"]],
        "final_transition_loss": final_metric(run_dir, "transition_loss")[0] if algo != "ppo" else None,
        "env_steps_per_second": summary["env_steps_per_second"],
        # wall time of this call (compile, training, evaluation); a pair read back from its directory
        # costs next to nothing, so env_steps_per_second is the comparable figure
        "train_seconds": trained - began,
        "eval_seconds": time.perf_counter() - trained,
        "device": f"{jax.default_backend()}: {jax.devices()[0].device_kind} x{jax.device_count()}",
        "curve": binned_curves(curves),
        "config": config,
        "run_dir": str(run_dir),
        "provenance": provenance(started),
    }


def append_record(path: Path, record: dict) -> None:
    """One line, on a line of its own even after a line a kill cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as f:
        f.write(("\n" if cut else "") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---- tables from the record ------------------------------------------------------------------------


def tabulate(records: dict[tuple[str, str], dict], games: list[str], algos: list[str], reps: int) -> dict:
    """Per-game IQMs with CIs, rliable's aggregates and probabilities of improvement, final transition
    losses and times, from the record's lines alone (no run directory is read)."""
    from rliable import library as rly
    from rliable import metrics

    from purejaxspi.analysis.stats import aggregate_estimates, seeded_bootstrap

    first = records[games[0], algos[0]]
    results: dict = {
        "games": games,
        "algos": algos,
        "num_seeds": first["key"]["num_seeds"],
        "budget": first["key"]["budget"],
        "density": first["key"]["density"],
        "densities": {a: records[games[0], a]["transition_density"] for a in algos},
        "devices": sorted({r["device"] for r in records.values()}),
        "confidence": CI,
        "bootstrap_reps": reps,
        "eval_episodes": first["key"]["eval_episodes"],
        "eval_max_steps": first["key"]["eval_max_steps"],
        "ppo_reference_10m": PPO_REFERENCE_10M,
        "per_game": {},
    }
    for game in games:
        pairs = {a: records[game, a] for a in algos}
        entry: dict = {
            "random_return": pairs[algos[0]]["random_return"],
            "final_return": {a: [math.nan if v is None else v for v in r["final_return"]] for a, r in pairs.items()},
            "training_final_return": {a: r["training_final_return"] for a, r in pairs.items()},
            "final_transition_loss": {
                a: r["final_transition_loss"] for a, r in pairs.items() if r["final_transition_loss"] is not None
            },
            "env_steps_per_second": {a: r["env_steps_per_second"] for a, r in pairs.items()},
            "seconds": {a: r["train_seconds"] + r["eval_seconds"] for a, r in pairs.items()},
            "iqm": {},
        }
        for algo in algos:
            point, low, high = iqm_with_ci(np.asarray(entry["final_return"][algo]), reps)
            entry["iqm"][algo] = {"point": point, "ci": [low, high]}
        observed_best = max(np.nanmax(v) for v in entry["final_return"].values())
        entry["normaliser"] = {
            "low": entry["random_return"],
            "high": PPO_REFERENCE_10M.get(game, float(observed_best)),
            "high_source": "gymnax PPO at 10M steps"
            if game in PPO_REFERENCE_10M
            else "best final return in this benchmark",
        }
        results["per_game"][game] = entry

    scores = {
        algo: np.stack(
            [
                normalise(
                    results["per_game"][g]["final_return"][algo],
                    results["per_game"][g]["normaliser"]["low"],
                    results["per_game"][g]["normaliser"]["high"],
                )
                for g in games
            ],
            axis=1,
        )
        for algo in algos
    }
    point, interval = aggregate_estimates(scores, 1.0, reps, 0)
    results["aggregate"] = {
        algo: {
            name: {"point": float(point[algo][k]), "ci": [float(interval[algo][0, k]), float(interval[algo][1, k])]}
            for k, name in enumerate(("IQM", "Median", "Mean", "Optimality gap"))
        }
        for algo in algos
    }
    # P(X > Y): the chance a run of X beats a run of Y on a random game, with its stratified bootstrap CI
    compared = {
        f"{x},{y}": (scores[x], scores[y])
        for x, y in (("deepspi", "deepmdp"), ("deepspi", "ppo"))
        if x in scores and y in scores
    }
    if compared:
        with seeded_bootstrap(0) as random_state:
            point, interval = rly.get_interval_estimates(
                compared, metrics.probability_of_improvement, reps=reps, random_state=random_state
            )
        results["probability_of_improvement"] = {
            k: {"point": float(np.ravel(point[k])[0]), "ci": np.ravel(interval[k]).astype(float).tolist()}
            for k in compared
        }
    if "deepspi" in algos and "deepmdp" in algos:
        spi = np.concatenate([results["per_game"][g]["final_transition_loss"]["deepspi"] for g in games])
        mdp = np.concatenate([results["per_game"][g]["final_transition_loss"]["deepmdp"] for g in games])
        results["transition_loss"] = paired_wilcoxon(spi, mdp)
        results["probability_deepspi_beats_deepmdp"] = results["probability_of_improvement"]["deepspi,deepmdp"]["point"]
    results["config"] = first["config"]
    return results


def times_table(results: dict) -> str:
    """Time and final transition loss per (game, algorithm), for benchmarks/README.md."""
    lines = [
        "| game | algo | env steps/s | minutes (compile, training, evaluation) | final L_P (median over seeds) |",
        "|---|---|---|---|---|",
    ]
    for game in results["games"]:
        g = results["per_game"][game]
        for algo in results["algos"]:
            loss = g["final_transition_loss"].get(algo)
            cell = f"{np.nanmedian(loss):.4g}" if loss else "-"
            lines.append(
                f"| {game} | {algo} | {g['env_steps_per_second'][algo]:,.0f} | {g['seconds'][algo] / 60:.1f} | {cell} |"
            )
    return "\n".join(lines)


# ---- the whole benchmark ---------------------------------------------------------------------------


def check_args(args: Args) -> None:
    from purejaxspi.algo.config import ALGOS as KNOWN_ALGOS
    from purejaxspi.envs import UnknownEnvError, check_env_id, family_of

    for game in args.games:
        try:
            check_env_id(game)
        except UnknownEnvError as e:
            fail(str(e))
        if family_of(game) != "minatar":
            fail(f"{game} is not a MinAtar game")
    for algo in args.algos:
        if algo not in KNOWN_ALGOS:
            fail(f"unknown algo {algo!r}; choose from {', '.join(KNOWN_ALGOS)}")
    if args.eval_episodes < 1 or args.eval_max_steps < 1:
        fail("--eval-episodes and --eval-max-steps must be positive")
    if args.num_seeds < 2:
        fail("--num-seeds must be at least 2 for confidence intervals")
    if args.table_only and args.no_table:
        fail("--table-only and --no-table leave nothing to do; give one")


def train_all(args: Args, path: Path, budget: int, density: str | None) -> dict[tuple[str, str], dict]:
    """Every (game, algorithm) the record lacks, game by game, each appended as it finishes."""
    key = setting_key(args, budget, density)
    records = read_records(path)
    for (game, algo), record in records.items():
        if record["key"] != key:
            fail(f"{path} holds {game} {algo} under other settings ({record['key']}); pass another --out")
    for game in args.games:
        random_return = None
        for algo in args.algos:
            if (game, algo) in records:
                print(f"{game} {algo}: in {path}")
                continue
            if random_return is None:
                random_return = random_policy_return(game, args.random_steps)
            records[game, algo] = measure_pair(game, algo, args, key, random_return, args.runs)
            append_record(path, records[game, algo])
            print(f"{game} {algo}: appended to {path}", flush=True)
    return records


def main(args: Args) -> dict | None:
    import jax

    check_args(args)
    on_cpu = jax.default_backend() == "cpu"
    budget = args.budget or (CPU_BUDGET if on_cpu else ACCELERATOR_BUDGET)
    path = record_path(args.out, budget)
    start = time.perf_counter()
    if args.table_only:
        records = read_records(path)
        if not records:
            fail(f"{path} holds no results; train first (without --table-only)")
        if len({json.dumps(r["key"], sort_keys=True) for r in records.values()}) > 1:
            fail(f"{path} holds results under more than one setting")
    else:
        density = args.density or (None if on_cpu else "mixture")
        records = train_all(args, path, budget, density)
        if args.no_table:
            print(f"trained and recorded in {path} in {(time.perf_counter() - start) / 60:.1f} min")
            return None
    games = [g for g in args.games if all((g, a) in records for a in args.algos)]
    missing = [g for g in args.games if g not in games]
    if not games:
        fail(f"no game in {path} has all of {', '.join(args.algos)}; missing: {', '.join(missing)}")
    results = tabulate(records, games, list(args.algos), args.reps)
    results["missing_games"] = missing
    results["seconds_this_call"] = time.perf_counter() - start

    stem = args.out / f"minatar_{budget}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, records, stem.with_suffix(".png"), args.reps)
    print(markdown_table(results))
    print()
    print(times_table(results))
    if "probability_of_improvement" in results:
        for pair, p in results["probability_of_improvement"].items():
            x, y = pair.split(",")
            print(f"P({x} > {y}) = {p['point']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]")
    if "transition_loss" in results:
        t = results["transition_loss"]
        print(
            f"final transition loss, {t['pairs']} (game, seed) pairs: median deepspi {t['median_deepspi']:.4g}, "
            f"deepmdp {t['median_deepmdp']:.4g}; deepspi lower in {t['share_deepspi_lower']:.0%}; "
            f"Wilcoxon p two-sided {t['p_two_sided']:.3g}, one-sided (deepspi lower) {t['p_deepspi_lower']:.3g}"
        )
    if missing:
        print(f"not yet in {path} for every algorithm: {', '.join(missing)} (rerun to train them)")
    print(
        f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')} "
        f"in {results['seconds_this_call'] / 60:.1f} min"
    )
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
