"""PPO, DeepMDP and Deep SPI on the five MinAtar games (gymnax): final returns and world-model losses.

Every (game, algorithm) pair trains all its seeds in one call of the training program, then plays
`--eval-episodes` episodes per seed with the final policy (actions sampled from it): a seed's final
return is their mean. (Freeway's episodes last 2,500 steps, longer than a CPU budget gives each of
the 32 training envs, so the training episodes alone would leave it without a score.) The script
reports, per game, the IQM of the final return over seeds with a 95% bootstrap CI; the rliable
aggregates (IQM, median, mean, optimality gap) of scores normalised per game to [random policy,
gymnax's published PPO score at 10M steps]; and the paper's second claim, Deep SPI's final
transition loss against DeepMDP's at the same coefficients, paired by (game, seed) and tested with a
Wilcoxon signed-rank test. Writes `benchmarks/results/minatar_<budget>.json` and `.png`.

    uv run python benchmarks/minatar.py                      # CPU: 16 seeds x 65,536 steps per run
    uv run python benchmarks/minatar.py --budget 10000000    # GPU: the 10M-step budget

A finished (game, algorithm) directory under `--runs` is read back instead of trained again, and an
interrupted one resumes from its last checkpoint, so the command can be rerun after a stop.
"""

from __future__ import annotations

import dataclasses
import json
import math
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


def plot(results: dict, curves: dict, path: Path, reps: int):
    """Learning curves per game; normalised aggregates; transition losses of DeepMDP vs Deep SPI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from purejaxspi.analysis.plot import binned
    from purejaxspi.analysis.stats import curve_estimates

    games, algos = results["games"], results["algos"]
    colours = {a: plt.get_cmap("tab10")(i) for i, a in enumerate(ALGOS)}
    fig = plt.figure(figsize=(max(4.0 * len(games), 12.0), 8.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.0])
    axes = np.atleast_1d(top.subplots(1, len(games), squeeze=False)[0])
    for ax, game in zip(axes, games):
        drawn_any = False
        for algo in algos:
            runs = curves[game][algo]
            edges = np.linspace(0.0, max(c.steps.max() for c in runs), min(40, len(runs[0].steps)) + 1)
            matrix = np.stack([binned(c, edges) for c in runs])
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
    lines.append("| normalised IQM, all games | 0 | " + " | ".join(cells) + " | 1 |")
    return "\n".join(lines)


# ---- the whole benchmark ---------------------------------------------------------------------------


def main(args: Args) -> dict:
    import jax
    from rliable import metrics

    from purejaxspi.algo.config import ALGOS as KNOWN_ALGOS
    from purejaxspi.analysis.stats import aggregate_estimates
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

    on_cpu = jax.default_backend() == "cpu"
    budget = args.budget or (CPU_BUDGET if on_cpu else ACCELERATOR_BUDGET)
    density = args.density or (None if on_cpu else "mixture")
    start = time.perf_counter()
    summaries = {game: {} for game in args.games}
    for game in args.games:
        for algo in args.algos:
            run_dir = args.runs / f"{budget}-{density or 'preset'}" / f"{game}-{algo}"
            summaries[game][algo] = train_pair(game, algo, args, budget, density, run_dir)
            summaries[game][algo]["run_dir"] = str(run_dir)

    first = next(iter(summaries[args.games[0]].values()))
    config = json.loads((Path(first["run_dir"]) / "config.json").read_text())["config"]
    densities = {
        algo: json.loads((Path(summaries[args.games[0]][algo]["run_dir"]) / "config.json").read_text())["config"][
            "density"
        ]
        for algo in args.algos
    }
    results: dict = {
        "games": list(args.games),
        "algos": list(args.algos),
        "num_seeds": args.num_seeds,
        "budget": budget,
        "density": config["density"],
        "densities": densities,
        "backend": jax.default_backend(),
        "confidence": CI,
        "bootstrap_reps": args.reps,
        "eval_episodes": args.eval_episodes,
        "eval_max_steps": args.eval_max_steps,
        "ppo_reference_10m": PPO_REFERENCE_10M,
        "per_game": {},
    }
    curves: dict = {}
    for game in args.games:
        entry = {
            "random_return": random_policy_return(game, args.random_steps),
            "final_return": {},
            "training_final_return": {},
            "final_transition_loss": {},
            "iqm": {},
            "env_steps_per_second": {},
        }
        curves[game] = {}
        for algo in args.algos:
            summary = summaries[game][algo]
            returns = evaluate_pair(Path(summary["run_dir"]), args.eval_episodes, args.eval_max_steps)
            entry["final_return"][algo] = returns
            # the training episodes that ended in the last 10% of env steps (summary.json's final_return)
            entry["training_final_return"][algo] = [r["final_return"] for r in summary["runs"]]
            point, low, high = iqm_with_ci(np.asarray(returns), args.reps)
            entry["iqm"][algo] = {"point": point, "ci": [low, high]}
            entry["env_steps_per_second"][algo] = summary["env_steps_per_second"]
            _, curves[game][algo] = final_metric(Path(summary["run_dir"]), "episodic_return")
            if algo != "ppo":
                entry["final_transition_loss"][algo], _ = final_metric(Path(summary["run_dir"]), "transition_loss")
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
                for g in args.games
            ],
            axis=1,
        )
        for algo in args.algos
    }
    point, interval = aggregate_estimates(scores, 1.0, args.reps, 0)
    results["aggregate"] = {
        algo: {
            name: {"point": float(point[algo][k]), "ci": [float(interval[algo][0, k]), float(interval[algo][1, k])]}
            for k, name in enumerate(("IQM", "Median", "Mean", "Optimality gap"))
        }
        for algo in args.algos
    }
    if "deepspi" in args.algos and "deepmdp" in args.algos:
        spi = np.concatenate([results["per_game"][g]["final_transition_loss"]["deepspi"] for g in args.games])
        mdp = np.concatenate([results["per_game"][g]["final_transition_loss"]["deepmdp"] for g in args.games])
        results["transition_loss"] = paired_wilcoxon(spi, mdp)
        results["probability_deepspi_beats_deepmdp"] = float(
            metrics.probability_of_improvement(scores["deepspi"], scores["deepmdp"])
        )
    # training time only where this call trained; finished pairs read back cost next to nothing
    results["seconds_this_call"] = time.perf_counter() - start
    results["config"] = config

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"minatar_{budget}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, curves, stem.with_suffix(".png"), args.reps)
    print(markdown_table(results))
    if "transition_loss" in results:
        t = results["transition_loss"]
        print(
            f"final transition loss, {t['pairs']} (game, seed) pairs: median deepspi {t['median_deepspi']:.4g}, "
            f"deepmdp {t['median_deepmdp']:.4g}; deepspi lower in {t['share_deepspi_lower']:.0%}; "
            f"Wilcoxon p two-sided {t['p_two_sided']:.3g}, one-sided (deepspi lower) {t['p_deepspi_lower']:.3g}"
        )
    print(
        f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')} "
        f"in {results['seconds_this_call'] / 60:.1f} min"
    )
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
