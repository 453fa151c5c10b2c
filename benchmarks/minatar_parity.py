"""Our PPO against gymnax's published PPO on MinAtar, one ingredient at a time.

gymnax-blines' `agents/<game>/ppo.yaml` trains 64 envs x 128 steps, 8 minibatches x 4 epochs, Adam
at a constant 5e-4 (its linear "warm-up" schedule runs from lr_begin to lr_end, both 5e-4), gamma
0.999, lambda 0.95, clip 0.2 (the value loss clipped too), entropy 0.01, value 0.5, grad-norm 0.5, on
separate actor and critic MLPs of 2 x 256 ReLU units over the flattened frame, and reports the mean
return of 164 episodes of the final policy with sampled actions after 10M env steps (gymnax's README:
Breakout 28, Asterix 15, Freeway 58, SpaceInvaders 131; the training logs shipped beside the
checkpoints end at 22.88, 14.95, 58.80 and 131.64). Each variant here changes one ingredient of a
recipe (theirs, or our MinAtar preset), trains all its seeds in one call, and reports the final
policy's evaluation (sampled actions, as theirs) beside the return of the training episodes of the
run's last 10%.

    uv run python benchmarks/minatar_parity.py                                  # every variant, Breakout
    uv run python benchmarks/minatar_parity.py --variants blines blines-mlp     # some
    uv run python benchmarks/minatar_parity.py --game Asterix-MinAtar --variants blines --num-seeds 2 --budget 10000000

A finished variant is kept in `benchmarks/results/minatar_parity.json` (its per-seed scores and its
binned learning curves) and read back from there, so the figure and the table are redrawn without
the run directories; an interrupted variant resumes from its run directory's last checkpoint.
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

sys.path.insert(0, str(Path(__file__).parent))
import minatar as base  # noqa: E402  (the MinAtar benchmark's evaluation, CI and progress lines)

from purejaxspi.provenance import provenance, utc_now  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "minatar_parity.json"
# gymnax-blines' PPO recipe as our flags: the shape and the optimiser of its ppo.yaml, through our conv trunk.
BLINES_SHAPE = {
    "num_envs": 64,
    "num_steps": 128,
    "num_minibatches": 8,
    "update_epochs": 4,
    "anneal_lr": False,
    "clip_value_loss": True,
    "encoder": "conv",
}
BLINES_HPARAMS = {
    "learning_rate": 5e-4,
    "gamma": 0.999,
    "gae_lambda": 0.95,
    "clip_coef": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}
# Our earlier MinAtar preset for PPO (sized for a CPU smoke test), as explicit flags.
OLD_PRESET_SHAPE = {
    "num_envs": 8,
    "num_steps": 128,
    "num_minibatches": 4,
    "update_epochs": 4,
    "anneal_lr": True,
    "clip_value_loss": False,
    "encoder": "conv",
}
OLD_PRESET_HPARAMS = {
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_coef": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}


@dataclasses.dataclass(frozen=True)
class Variant:
    what: str
    config: dict  # Config overrides
    hparams: dict  # hyperparameter overrides
    base: str | None = None  # the variant this one changes one ingredient of (None: a recipe of its own)


def blines(what: str, config: dict | None = None, hparams: dict | None = None, base: str = "blines") -> Variant:
    """gymnax-blines' recipe with one ingredient changed."""
    return Variant(what, {**BLINES_SHAPE, **(config or {})}, {**BLINES_HPARAMS, **(hparams or {})}, base)


def of_preset(what: str, config: dict | None = None, hparams: dict | None = None) -> Variant:
    """Our MinAtar preset (whatever make_config gives now) with one ingredient changed."""
    return Variant(what, config or {}, hparams or {}, "preset")


VARIANTS = {
    "preset": Variant(
        "our MinAtar preset for the algorithm (PPO: gymnax-blines' recipe with the frame MLP at lr 1e-3)", {}, {}
    ),
    "old-preset": Variant(
        "our earlier MinAtar preset (8 x 128, lr 1e-3 annealed, gamma 0.99, conv trunk)",
        OLD_PRESET_SHAPE,
        OLD_PRESET_HPARAMS,
    ),
    "blines": Variant("gymnax-blines' recipe through our conv trunk", BLINES_SHAPE, BLINES_HPARAMS),
    "blines-mlp": blines(
        "gymnax-blines' recipe with the frame MLP (2 x 256 ReLU on the flattened frame)", {"encoder": "mlp"}
    ),
    "blines-mlp-ours": blines(
        "the frame MLP with our conventions: the lr annealed linearly to 0, the value loss unclipped",
        {"anneal_lr": True, "clip_value_loss": False, "encoder": "mlp"},
        base="blines-mlp",
    ),
    "blines-mlp-lr1e-3": blines(
        "gymnax-blines' recipe with the frame MLP at lr 1e-3 (their shipped ppo0.001 run's)",
        {"encoder": "mlp"},
        {"learning_rate": 1e-3},
        base="blines-mlp",
    ),
    "blines-mlp-ours-lr1e-3": blines(
        "the frame MLP with our conventions at lr 1e-3 (annealed linearly to 0)",
        {"anneal_lr": True, "clip_value_loss": False, "encoder": "mlp"},
        {"learning_rate": 1e-3},
        base="blines-mlp-ours",
    ),
    "blines-gamma0.99": blines("gymnax-blines' recipe, gamma 0.99", hparams={"gamma": 0.99}),
    "blines-anneal": blines("gymnax-blines' recipe, lr 5e-4 annealed linearly to 0", {"anneal_lr": True}),
    "blines-32x32": blines("gymnax-blines' recipe, 32 envs x 32 steps", {"num_envs": 32, "num_steps": 32}),
    "blines-128x8": blines(
        "gymnax-blines' recipe, 128 envs x 8 steps (the paper's shape)", {"num_envs": 128, "num_steps": 8}
    ),
    "blines-unclipped-value": blines(
        "gymnax-blines' recipe, the value loss unclipped (as the paper's scripts)", {"clip_value_loss": False}
    ),
    "preset-128x8": of_preset(
        "the preset, 128 envs x 8 steps (Deep SPI's shape in the paper)", {"num_envs": 128, "num_steps": 8}
    ),
    "preset-128x8-4mb": of_preset(
        "the preset in deep_spi.py's batch shape: 128 envs x 8 steps, 4 minibatches of 256",
        {"num_envs": 128, "num_steps": 8, "num_minibatches": 4},
    ),
    "preset-32x32": of_preset(
        "the preset, 32 envs x 32 steps (our earlier CPU-sized shape)", {"num_envs": 32, "num_steps": 32}
    ),
    "preset-gamma0.99": of_preset("the preset, gamma 0.99", hparams={"gamma": 0.99}),
    "preset-anneal": of_preset("the preset, lr 1e-3 annealed linearly to 0", {"anneal_lr": True}),
    "preset-terminate": of_preset(
        "the preset with gymnax-blines' time-limit rule: the bootstrap zeroed at the 1,000-step limit",
        {"truncation": "terminate"},
    ),
}


# The variants that are each algorithm's MinAtar preset (PPO's was measured as blines-mlp-lr1e-3; a test
# holds the two equal).
PRESET_NAMES = {"ppo": ("preset", "blines-mlp-lr1e-3"), "deepmdp": ("preset",), "deepspi": ("preset",)}
ALGO_ORDER = ("ppo", "deepmdp", "deepspi")


@dataclasses.dataclass
class Args:
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Which variants to train (or read back): see VARIANTS."""
    game: str = "Breakout-MinAtar"
    algo: str = "ppo"
    """ppo, deepmdp or deepspi (the world-model algorithms keep their coefficients and world model)."""
    num_seeds: int = 4
    """Seeds per variant, trained together in one call."""
    first_seed: int = 0
    """The first of the seeds; a block of seeds that starts where a stored block of the same variant ends
    is merged with it into one entry (e.g. `--num-seeds 2 --first-seed 2` beside seeds 0-1 gives 4)."""
    budget: int = 5_000_000
    """Env steps per run."""
    runs: Path = Path("runs") / "minatar_parity"
    out: Path = RESULTS
    eval_episodes: int = 32
    """Evaluation episodes per seed with the final policy (sampled actions)."""
    eval_max_steps: int = 10_000
    reps: int = 2000
    """Bootstrap resamples for every CI."""
    bins: int = 50
    """Env-step bins of the stored learning curves."""
    anchor: float | None = None
    """The return to reach (default: gymnax's published PPO score for the game, if any)."""


def key_of(game: str, algo: str, variant: str, budget: int, num_seeds: int, first_seed: int = 0) -> str:
    """An entry's name; seeds that do not start at 0 are named by their first one (`10000000x2+2`)."""
    return f"{game}/{algo}/{variant}/{budget}x{num_seeds}" + (f"+{first_seed}" if first_seed else "")


def config_and_grid(args: Args, name: str):
    """The variant's Config and grid of seeds; bad input exits with one line."""
    import purejaxspi as pjs

    variant = VARIANTS[name]
    try:
        config = pjs.make_config(args.game, args.algo, total_timesteps=args.budget, **variant.config)
        return config, pjs.make_grid(config, num_seeds=args.num_seeds, first_seed=args.first_seed, **variant.hparams)
    except pjs.UserError as e:
        base.fail(str(e))


def stale(entry: dict, args: Args, name: str) -> bool:
    """Whether a stored entry was trained with other settings than the variant now names."""
    config, grid = config_and_grid(args, name)
    now = config.flat()
    hparams = {k: v[0] for k, v in grid.values.items()}
    return any(entry["config"].get(k, v) != v for k, v in now.items()) or any(
        not math.isclose(entry["hparams"][k], v, rel_tol=1e-6) for k, v in hparams.items()
    )


def train_variant(args: Args, name: str, run_dir: Path) -> tuple[dict, float]:
    """Train (or resume) all seeds of one variant in one call; its summary.json and the seconds spent."""
    import purejaxspi as pjs
    from purejaxspi.errors import RunInterrupted

    config, grid = config_and_grid(args, name)
    resume = (run_dir / "config.json").is_file()
    print(
        f"{name}: {args.game} {args.algo}, {args.num_seeds} seeds x {args.budget:,} env steps "
        f"({config.env.num_envs} envs x {config.ppo.num_steps} steps){' (resumed)' if resume else ''}",
        flush=True,
    )
    options = pjs.RunOptions(resume=resume, checkpoint_every=4, keep_checkpoints=1)
    start = time.perf_counter()
    try:
        summary = pjs.train(config, grid, run_dir, options, on_progress=base.progress_lines)
    except pjs.UserError as e:
        base.fail(str(e))
    except pjs.NonFiniteLossError as e:
        base.fail(str(e), code=1)
    except RunInterrupted as e:  # a checkpoint is saved: the same command resumes the variant
        print(
            f"{name}: stopped at iteration {e.iteration}, checkpoint saved; rerun the command to resume",
            file=sys.stderr,
        )
        raise SystemExit(128 + e.signum) from None
    return summary, time.perf_counter() - start


def first_reached(steps: np.ndarray, values: np.ndarray, threshold: float) -> float | None:
    """The first bin centre whose value reaches `threshold` (None: never)."""
    above = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= threshold)
    return float(steps[above[0]]) if above.size else None


def measure(args: Args, name: str, run_dir: Path, summary: dict, seconds: float) -> dict:
    """A finished variant's record: per-seed scores (evaluation and training), their IQMs with CIs, the
    binned per-seed learning curves, and the time it took."""
    from purejaxspi.analysis.plot import binned, read_run_dir

    evaluated = base.evaluate_pair(run_dir, args.eval_episodes, args.eval_max_steps)
    training = [r["final_return"] for r in summary["runs"]]
    curves = read_run_dir(run_dir, "episodic_return")
    edges = np.linspace(0.0, float(args.budget), args.bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    matrix = np.stack([binned(c, edges) for c in curves])
    record = json.loads((run_dir / "config.json").read_text())
    anchor = args.anchor if args.anchor is not None else base.PPO_REFERENCE_10M.get(args.game)

    def iqm(values):
        return iqm_entry(values, args.reps)

    return {
        "game": args.game,
        "algo": args.algo,
        "variant": name,
        "what": VARIANTS[name].what,
        "budget": args.budget,
        "num_seeds": args.num_seeds,
        "seeds": [args.first_seed + i for i in range(args.num_seeds)],
        "config": record["config"],
        "hparams": {k: v[0] for k, v in record["hparam_values"].items()},
        "eval_return": [round(float(v), 3) for v in evaluated],
        "eval_iqm": iqm(evaluated),
        "training_return": [None if v is None or not math.isfinite(v) else round(float(v), 3) for v in training],
        "training_iqm": iqm([np.nan if v is None else v for v in training]),
        "curve_steps": centres.tolist(),
        "curves": [[None if not np.isfinite(v) else round(float(v), 3) for v in row] for row in matrix],
        "anchor": anchor,
        "shipped_log": base.PPO_SHIPPED_LOG_10M.get(args.game),
        "steps_to_anchor": ([first_reached(centres, row, anchor - 1.0) for row in matrix] if anchor else None),
        "train_seconds": round(seconds, 1),
        "env_steps_per_second": summary["env_steps_per_second"],
        "eval_episodes": args.eval_episodes,
    }


def iqm_entry(values, reps: int) -> dict | None:
    """The IQM over seeds with its 95% bootstrap CI, or None below two finite seeds."""
    values = np.asarray([np.nan if v is None else v for v in values], float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    point, low, high = base.iqm_with_ci(values, reps)
    return {"point": point, "ci": [low, high]}


def same_settings(earlier: dict, later: dict) -> bool:
    """Whether two entries trained the same config and hyperparameters (a setting added since the
    earlier one was recorded counts as its default, as `stale` reads it)."""
    config = all(earlier["config"].get(k, v) == v for k, v in later["config"].items())
    return config and all(math.isclose(earlier["hparams"][k], v, rel_tol=1e-6) for k, v in later["hparams"].items())


def merge_blocks(entries: dict, reps: int) -> list[str]:
    """Join blocks of seeds of one variant trained in separate calls (`--first-seed`) into the entry of
    all their seeds, its IQMs and CIs computed anew; returns the keys added."""
    added = []
    for key, later in list(entries.items()):
        if "+" not in key:
            continue
        stem, first = key.rsplit("+", 1)
        head, count = stem.rsplit("x", 1)
        earlier = entries.get(f"{head}x{first}")
        whole = f"{head}x{int(first) + int(count)}"
        if (
            earlier is None
            or whole in entries
            or not same_settings(earlier, later)
            or earlier.get("seeds", list(range(int(first)))) != list(range(int(first)))
        ):
            continue
        joined = {**earlier, "num_seeds": earlier["num_seeds"] + later["num_seeds"]}
        joined["seeds"] = list(range(joined["num_seeds"]))
        for name in ("eval_return", "training_return", "curves", "steps_to_anchor"):
            joined[name] = (earlier[name] or []) + (later[name] or []) if earlier[name] is not None else None
        joined["eval_iqm"] = iqm_entry(joined["eval_return"], reps)
        joined["training_iqm"] = iqm_entry(joined["training_return"], reps)
        joined["train_seconds"] = round(earlier["train_seconds"] + later["train_seconds"], 1)
        joined["env_steps_per_second"] = None  # two calls on other grids: each block keeps its own
        joined["merged_from"] = [f"{head}x{first}", key]
        joined["provenance"] = later.get("provenance")  # the code of the later block; the earlier's stays in its entry
        entries[whole] = joined
        added.append(whole)
    return added


def panels_of(entries: list[dict]) -> list[tuple[str, str, list[dict], list[str]]]:
    """(game, title, members, labels) per figure row: each (game, budget, algorithm)'s variants and,
    where more than one algorithm ran a game's preset at one budget, the algorithms side by side
    (which then replaces the rows that would hold a world-model algorithm's preset alone)."""
    rows = []
    for game, budget in sorted({(e["game"], e["budget"]) for e in entries}):
        here = [e for e in entries if (e["game"], e["budget"]) == (game, budget)]
        presets = {e["algo"]: e for e in here if e["variant"] in PRESET_NAMES[e["algo"]]}
        together = len(presets) > 1
        for algo in ALGO_ORDER:
            members = [e for e in here if e["algo"] == algo]
            if members and not (together and algo != "ppo" and all(e is presets.get(algo) for e in members)):
                rows.append((game, f"{algo} at {budget / 1e6:g}M", members, [e["variant"] for e in members]))
        if together:
            algos = [a for a in ALGO_ORDER if a in presets]
            rows.append((game, f"the preset at {budget / 1e6:g}M, per algorithm", [presets[a] for a in algos], algos))
    return rows


def plot(entries: list[dict], path: Path, reps: int) -> None:
    """Per row of `panels_of`: every member's IQM learning curve with its band, and the final policy's
    evaluation per seed beside the anchor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from purejaxspi.analysis.stats import curve_estimates

    panels = panels_of(entries)
    fig, axes = plt.subplots(
        len(panels),
        2,
        figsize=(13, 4.2 * len(panels)),
        squeeze=False,
        gridspec_kw={"width_ratios": [2.2, 1]},
        layout="constrained",
    )
    for (ax_curve, ax_final), (game, title, members, labels) in zip(axes, panels):
        colours = plt.get_cmap("tab10")
        for i, (e, label) in enumerate(zip(members, labels)):
            matrix = np.asarray([[np.nan if v is None else v for v in row] for row in e["curves"]], float)
            steps = np.asarray(e["curve_steps"])
            drawn = ~np.isnan(matrix).any(axis=0)
            if drawn.any():
                point, interval = curve_estimates(matrix[:, drawn], "iqm", reps, 0)
                ax_curve.plot(steps[drawn], point, color=colours(i), lw=1.5, label=label)
                ax_curve.fill_between(steps[drawn], interval[0], interval[1], color=colours(i), alpha=0.15, lw=0)
            scores = np.asarray(e["eval_return"], float)
            ax_final.scatter(
                scores,
                np.full(scores.shape, i) + np.linspace(-0.15, 0.15, len(scores)),
                color=colours(i),
                s=14,
                alpha=0.8,
            )
            if e["eval_iqm"]:
                low, high = e["eval_iqm"]["ci"]
                ax_final.plot([low, high], [i, i], color=colours(i), lw=3, alpha=0.5)
                ax_final.plot([e["eval_iqm"]["point"]] * 2, [i - 0.3, i + 0.3], color="black", lw=1.5)
        anchor, shipped = members[0]["anchor"], base.PPO_SHIPPED_LOG_10M.get(game)
        for ax in (ax_curve, ax_final):
            line = ax.axhline if ax is ax_curve else ax.axvline
            if anchor:
                line(anchor, color="grey", ls="--", lw=1, label="gymnax README @10M" if ax is ax_curve else None)
            if shipped:
                line(
                    shipped,
                    color="grey",
                    ls=":",
                    lw=1,
                    label="gymnax-blines' shipped log @9.9M" if ax is ax_curve else None,
                )
            ax.grid(alpha=0.3)
        seeds = "/".join(sorted({str(e["num_seeds"]) for e in members}))
        ax_curve.set_title(f"{game} {title}: training episodes (IQM over {seeds} seeds, 95% CI)", fontsize=10)
        ax_curve.set_xlabel("env steps per run")
        ax_curve.set_ylabel("episodic return")
        ax_curve.legend(fontsize=8)
        ax_curve.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
        ax_final.set_yticks(range(len(members)), labels, fontsize=8)
        ax_final.invert_yaxis()
        ax_final.set_xlabel(
            f"final policy's return ({members[0]['eval_episodes']} sampled episodes a seed)", fontsize=9
        )
        ax_final.set_title("per seed; bar: IQM's 95% CI", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def anchors(game: str) -> str:
    """gymnax's README number and the last evaluation of gymnax-blines' shipped log, where they exist."""
    readme, log = base.PPO_REFERENCE_10M.get(game), base.PPO_SHIPPED_LOG_10M.get(game)
    return "-" if readme is None else f"{readme:g} / {log:.2f}"


def rate(entry: dict) -> str:
    """A call's env steps per second; an entry joined from two calls names each block's."""
    if entry["env_steps_per_second"] is not None:
        return f"{entry['env_steps_per_second']:,.0f}"
    return "-" if "merged_from" not in entry else "per block"


def markdown(entries: list[dict]) -> str:
    def cell(x):
        return "-" if not x else f"{x['point']:.1f} [{x['ci'][0]:.1f}, {x['ci'][1]:.1f}]"

    lines = [
        "| game | algo | variant | env steps x seeds | eval IQM [95% CI] | eval per seed | training IQM | "
        "steps to anchor-1 (per seed) | gymnax README / shipped log | steps/s |",
        "|" + "---|" * 10,
    ]
    for e in entries:
        per_seed = ", ".join(f"{v:.1f}" for v in e["eval_return"])
        reach = (
            "-"
            if not e["steps_to_anchor"]
            else ", ".join("never" if s is None else f"{s / 1e6:.1f}M" for s in e["steps_to_anchor"])
        )
        lines.append(
            f"| {e['game']} | {e['algo']} | {e['variant']} | {e['budget'] / 1e6:g}M x {e['num_seeds']} | "
            f"{cell(e['eval_iqm'])} | {per_seed} | {cell(e['training_iqm'])} | {reach} | "
            f"{anchors(e['game'])} | {rate(e)} |"
        )
    return "\n".join(lines)


def main(args: Args) -> dict:
    from purejaxspi.envs import UnknownEnvError, check_env_id, family_of

    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        base.fail(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    try:
        check_env_id(args.game)
    except UnknownEnvError as e:
        base.fail(str(e))
    if family_of(args.game) != "minatar":
        base.fail(f"{args.game} is not a MinAtar game")
    if args.num_seeds < 2:
        base.fail("--num-seeds must be at least 2 for confidence intervals")
    if args.budget <= 0 or args.bins < 2 or args.eval_episodes < 1:
        base.fail("--budget and --eval-episodes must be positive and --bins at least 2")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"entries": {}}
    for name in args.variants:
        key = key_of(args.game, args.algo, name, args.budget, args.num_seeds, args.first_seed)
        if key in results["entries"]:
            if stale(results["entries"][key], args, name):
                base.fail(
                    f"{key} in {args.out} was trained with other settings than {name} has now; "
                    f"remove that entry or pass another --out"
                )
            print(f"{name}: finished earlier, read from {args.out}")
            continue
        run_dir = args.runs / key.replace("/", "-")
        started = utc_now()
        summary, seconds = train_variant(args, name, run_dir)
        results["entries"][key] = {**measure(args, name, run_dir, summary, seconds), "provenance": provenance(started)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")  # after every variant: a stop loses one at most
        print(markdown([results["entries"][key]]), flush=True)
    for key in merge_blocks(results["entries"], args.reps):
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"{key}: the blocks {' and '.join(results['entries'][key]['merged_from'])} joined", flush=True)
    merged = {part for e in results["entries"].values() for part in e.get("merged_from", ())}
    entries = [e for k, e in results["entries"].items() if k not in merged and "+" not in k]
    if entries:
        plot(entries, args.out.with_suffix(".png"), args.reps)
        print(markdown(entries))
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return results


if __name__ == "__main__":
    main(tyro.cli(Args))
