"""`purejaxspi train | eval | plot | envs | bench`: the command line, typed with tyro (the CLI is the documentation).

A thin layer over the library: it parses flags, calls the API, renders progress, and turns the
library's typed errors into one line and exit code 2 (1 for a diverged run).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import tyro

from purejaxspi.algo.config import (
    ALGOS,
    HPARAM_HELP,
    HPARAM_NAMES,
    PRESETS,
    Config,
    hparam_values,
    make_config,
)
from purejaxspi.errors import ConfigError, NonFiniteLossError, RunInterrupted, UserError


def fail(message: str, code: int = 2) -> NoReturn:  # noqa: F821
    """One line to stderr and a clean exit: bad input never ends in a traceback."""
    print(f"purejaxspi: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_writable(path: Path, flag_name: str) -> None:
    """Refuse an output file that cannot be written, before the work that produces it (one line, exit 2)."""
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        fail(f"{flag_name} {path}: cannot write there: {e.strerror or e}")
    if not existed:
        path.unlink(missing_ok=True)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def user_message(error: UserError) -> str:
    """The error's line, naming the flag where the library names a setting."""
    message = str(error)
    setting = getattr(error, "setting", None)
    if setting and message.startswith(setting):
        message = flag(setting) + message[len(setting) :]
    return message


def _by_preset(value_of) -> str:
    """A preset-driven default as help text: one value, or the value of each (env family, algorithm)."""
    show = lambda p: f"{value_of(p):g}" if isinstance(value_of(p), float) else str(value_of(p))  # noqa: E731
    shown = {key: show(p) for key, p in PRESETS.items()}
    if len(set(shown.values())) == 1:
        return f"{next(iter(shown.values()))} for every env and algorithm"
    families = dict.fromkeys(family for family, _ in PRESETS)
    parts = []
    for family in families:
        per_algo = {algo: value for (f, algo), value in shown.items() if f == family}
        if len(set(per_algo.values())) == 1:
            parts.append(f"{family} {next(iter(per_algo.values()))}")
        else:
            parts.append(f"{family} " + ", ".join(f"{value} ({algo})" for algo, value in per_algo.items()))
    return "; ".join(parts)


def _preset_help(text: str, value_of):
    """Help naming what a preset-driven flag becomes per (env family, algorithm) preset."""
    return tyro.conf.arg(
        help=f"{text} Default: {_by_preset(value_of)}.",
        help_behavior_hint="(default: the preset of the env family and algorithm)",
    )


@dataclasses.dataclass
class _TrainFlags:
    """Train Deep SPI, DeepMDP or PPO on a grid of runs (hyperparameter values x seeds) in one program.

    Every hyperparameter flag takes one or more values; the grid is their product times the seeds.
    Unset values come from the env's preset (vector, MinAtar, Atari, the gridworld): see each flag.
    With no flags at all it runs the main job, a smoke test: the default env and algorithm's preset
    on 24,576 env steps per run (32 envs x 32 steps).
    """

    env: str = "Breakout-MinAtar"
    """Environment id (`purejaxspi envs` lists them)."""
    algo: str = "deepspi"
    """deepspi, deepmdp or ppo."""
    settings: str | None = None
    """Whose preset fills every unset flag: deepspi, deepmdp or ppo (default: the algorithm's own, as the paper ran it). The same value for all three algorithms is the same-settings ablation; `purejaxspi presets` prints them."""
    seed: int = 0
    """First seed; runs use seeds seed .. seed+num_seeds-1."""
    num_seeds: int = 16
    total_timesteps: Annotated[int | None, _preset_help("Env steps per run.", lambda p: p.total_timesteps)] = None
    num_envs: Annotated[int | None, _preset_help("Envs per run.", lambda p: p.num_envs)] = None
    num_steps: Annotated[int | None, _preset_help("Rollout length per iteration.", lambda p: p.num_steps)] = None
    num_minibatches: Annotated[int | None, _preset_help("Minibatches per epoch.", lambda p: p.num_minibatches)] = None
    update_epochs: Annotated[int | None, _preset_help("Epochs per iteration.", lambda p: p.update_epochs)] = None
    density: Annotated[
        str | None,
        _preset_help(
            "Transition density: deterministic, normal or mixture (of 5 diagonal Gaussians).", lambda p: p.density
        ),
    ] = None
    lipschitz: Annotated[
        bool | None,
        _preset_help(
            "The paper's Lipschitz world model (spectral normalisation + GroupSort); False: deep_mdp_ppo.py's plain "
            "networks with the gradient penalty.",
            lambda p: p.lipschitz,
        ),
    ] = None
    spectral_norm: Annotated[
        str | None,
        _preset_help(
            "How spectral normalisation estimates sigma: exact (each layer 1-Lipschitz as an operator, convolutions "
            "included) or reference (the paper's code: divides by about sigma^2 of the kernel matrix, so a layer's norm "
            "is about 1/sigma).",
            lambda p: p.spectral_norm,
        ),
    ] = None
    stochastic: bool = False
    """Atari: the stochastic ALE (sticky actions with probability 0.3, up to 60 no-op starts)."""
    reward_clip: bool = True
    """Atari: learn from rewards clipped to [-1, 1] (scores are reported unclipped)."""
    episodic_life: bool = True
    """Atari: a lost life ends the learning episode (the game's score still counts whole games)."""
    anneal_lr: Annotated[
        bool | None,
        _preset_help(
            "Anneal the learning rate linearly to 0 over the run (False, or --no-anneal-lr: constant).",
            lambda p: p.anneal_lr,
        ),
    ] = None
    norm_adv: bool = True
    """Normalise the advantages per minibatch."""
    clip_value_loss: Annotated[
        bool | None,
        _preset_help(
            "Clip the value loss around the rollout's values by --clip-coef, as gymnax's published PPO does (the "
            "paper's scripts do not); a bare --clip-value-loss is True, --no-clip-value-loss False.",
            lambda p: p.clip_value_loss,
        ),
    ] = None
    target_kl: float = 0.0
    """Skip an iteration's remaining update epochs once an epoch ends with its last minibatch's approximate KL above this (CleanRL's rule; 0: never)."""
    num_components: int = 5
    """Gaussians in the mixture transition density."""
    conv: str = "auto"
    """Convolutions as lax (cuDNN on a GPU) or patches (patches @ matrix); auto: the platform's measured choice (`purejaxspi info` shows it)."""
    torso_width: Annotated[int | None, _preset_help("Units of the policy/value torso.", lambda p: "the family's")] = (
        None
    )
    encoder_width: Annotated[
        int | None,
        _preset_help(
            "Encoder width: MLP units (vector envs, 64), conv channels (MinAtar, 16) or a MinAtar frame MLP's units "
            "(256); the Nature CNN's is fixed.",
            lambda p: "the family's",
        ),
    ] = None
    encoder: str = "auto"
    """The encoder: auto (the preset's: an MLP on vectors, the frame MLP on MinAtar, the small conv trunk on the gridworld's compact frames, the Nature CNN on Atari), or on MinAtar-sized images conv or mlp (one ReLU layer on the flattened frame, gymnax's PPO network with the torso)."""
    chunk_iterations: int = 0
    """Iterations per compiled chunk between host updates (0: a twentieth of the run, then about --chunk-seconds each)."""
    chunk_seconds: float = 10.0
    """With --chunk-iterations 0: the rest of the run is re-cut to chunks of about this many seconds when the first chunk took over twice as long, or under a tenth as long with the rest long enough to repay a compile."""
    out: Path | None = None
    """Output directory (default runs/<env>-<algo>-<time>)."""
    quiet: bool = False
    """No progress output."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint; its config.json fills every flag left unset."""
    overwrite: bool = False
    """Replace the outputs of a run already in --out (otherwise a non-empty --out is refused)."""
    checkpoint_interval: float = 300.0
    """Seconds between checkpoints in DIR/checkpoints (at least 20x the last save's duration; 0: after every chunk). One is always saved after the last chunk and on SIGINT / SIGTERM."""
    checkpoint_every: int = 0
    """Also save a checkpoint every K chunks (0: off)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    time_limit: float = 0.0
    """Wall-clock seconds for this call (a cluster job's limit): at the first chunk boundary past it, save a checkpoint, write summary.json for what ran and exit 0 with the line to resume (0: no limit)."""
    tensorboard: bool = False
    """Also write TensorBoard event files, one sub-run per grid member, under DIR/tensorboard."""
    wandb: str | None = None
    """Also log to this Weights & Biases project, one W&B run per grid member (needs `uv sync --extra wandb`)."""
    devices: int | None = None
    """Shard the runs over the first N devices (default: all); a grid N does not divide is padded with copies of its last run, left out of every output."""
    compilation_cache: bool | None = None
    """Keep compiled programs in JAX's persistent cache, so a rerun of the same program skips compiling (default: on for accelerators, off on CPUs; PUREJAXSPI_COMPILATION_CACHE names its folder, default ~/.cache/purejaxspi/jax, or turns it off)."""
    distributed: bool = False
    """Join other processes through jax.distributed (implied when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES or JAX_PROCESS_ID is set)."""


# One flag per hyperparameter, taking one or more values: made from HParams so the names live there.
TrainArgs = dataclasses.make_dataclass(
    "TrainArgs",
    [
        (
            name,
            Annotated[
                tuple[float, ...] | None,
                _preset_help(
                    HPARAM_HELP[name] + " One or more values.", lambda p, n=name: float(getattr(p.hparams, n))
                ),
            ],
            dataclasses.field(default=None),
        )
        for name in HPARAM_NAMES
    ],
    bases=(_TrainFlags,),
)
TrainArgs.__doc__ = _TrainFlags.__doc__
# Flags the preset fills where they are left unset (None).
SHAPE_FLAGS = (
    "total_timesteps",
    "num_envs",
    "num_steps",
    "num_minibatches",
    "update_epochs",
    "density",
    "lipschitz",
    "spectral_norm",
    "torso_width",
    "encoder_width",
    "anneal_lr",
    "clip_value_loss",
)
# Config switches every command line sets (their defaults are Config's).
SWITCH_FLAGS = (
    "stochastic",
    "reward_clip",
    "episodic_life",
    "norm_adv",
    "target_kl",
    "num_components",
    "conv",
    "encoder",
)
# Preset-filled booleans, which tyro spells `--flag {True,False}`: the `--flag` / `--no-flag` pair too.
PRESET_SWITCHES = ("anneal-lr", "clip-value-loss", "lipschitz")


def switch_pairs(argv: list[str]) -> list[str]:
    """`--flag` / `--no-flag` for the preset-filled booleans, as `--flag True` / `--flag False`."""
    out = []
    for i, arg in enumerate(argv):
        name = arg[2:]
        if name.startswith("no-") and name[3:] in PRESET_SWITCHES:
            out += [f"--{name[3:]}", "False"]
        elif name in PRESET_SWITCHES and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out += [arg, "True"]
        else:
            out.append(arg)
    return out


def resolve(args) -> tuple[Config, dict[str, list[float]]]:
    """The Config and hyperparameter values of TrainArgs or BenchArgs, through the library's presets."""
    if args.algo not in ALGOS:
        raise ConfigError(f"unknown algo {args.algo!r}; choose one of {', '.join(ALGOS)}", setting="algo")
    overrides = {name: getattr(args, name) for name in SHAPE_FLAGS if getattr(args, name, None) is not None}
    overrides.update({name: getattr(args, name) for name in SWITCH_FLAGS if hasattr(args, name)})
    config = make_config(args.env, args.algo, settings=args.settings, **overrides)
    values = hparam_values(config, **{name: getattr(args, name, None) for name in HPARAM_NAMES})
    return config, values


def check_train_flags(args) -> None:
    """The train command's own flags (the library checks the config, grid and run directory)."""
    if args.num_seeds <= 0:
        raise ConfigError(f"num_seeds must be positive, got {args.num_seeds}", setting="num_seeds")
    if args.seed < 0:
        raise ConfigError(f"seed must be non-negative, got {args.seed}", setting="seed")
    for name in ("chunk_iterations", "checkpoint_every", "checkpoint_interval", "time_limit"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{name} must be non-negative, got {getattr(args, name)}", setting=name)
    if not args.chunk_seconds > 0:
        raise ConfigError(f"chunk_seconds must be positive, got {args.chunk_seconds}", setting="chunk_seconds")
    if args.keep_checkpoints <= 0:
        raise ConfigError(f"keep_checkpoints must be positive, got {args.keep_checkpoints}", setting="keep_checkpoints")
    if args.devices is not None and args.devices <= 0:
        raise ConfigError(f"devices must be positive, got {args.devices}", setting="devices")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pick one")
    if args.resume and args.out and args.out.resolve() != args.resume.resolve():
        raise ConfigError(f"--resume {args.resume} continues that directory; drop --out {args.out}")
    if args.wandb:
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("--wandb needs the wandb package: uv sync --extra wandb")


def args_from_record(record: dict):
    """TrainArgs holding a saved run's settings: the defaults of `train --resume DIR`."""
    names = {f.name for f in dataclasses.fields(TrainArgs)}
    config = record["config"]
    saved = {name: value for name, value in config.items() if name in names}
    saved.update({name: tuple(v) for name, v in record.get("hparam_values", {}).items() if name in names})
    saved.update(env=config.get("env_id"), seed=record.get("seed", 0), num_seeds=record.get("num_seeds", 1))
    return dataclasses.replace(TrainArgs(), **saved)


def _resume_dir(argv: list[str]) -> Path | None:
    """The directory given to --resume, read before the full parse so its config can supply defaults."""
    for i, arg in enumerate(argv):
        if arg == "--resume" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--resume="):
            return Path(arg.split("=", 1)[1])
    return None


# `purejaxspi train` with no flags: the default env and algorithm's preset on a CPU smoke test's budget
# (16 seeds in a few minutes on 2 cores); the preset itself is sized for real runs (10M env steps).
MAIN_JOB = {"total_timesteps": 24_576, "num_envs": 32, "num_steps": 32}


def parse_train(argv: list[str]):
    if not argv:
        print(
            f"purejaxspi: the main job: {_TrainFlags.algo} on {_TrainFlags.env}, {_TrainFlags.num_seeds} seeds of "
            f"{MAIN_JOB['total_timesteps']:,} env steps ({MAIN_JOB['num_envs']} envs x {MAIN_JOB['num_steps']} "
            f"steps), a smoke test; pass flags to run the preset (`purejaxspi train --help`)",
            file=sys.stderr,
        )
        return dataclasses.replace(TrainArgs(), **MAIN_JOB)
    argv = switch_pairs(argv)
    resume = _resume_dir(argv)
    if resume is None:
        return tyro.cli(TrainArgs, args=argv, prog="purejaxspi train", description=TrainArgs.__doc__)
    from purejaxspi.lifecycle.rundir import read_record

    try:
        defaults = args_from_record(read_record(resume))
    except (UserError, TypeError) as e:
        fail(f"--resume {resume}: {e}")
    return tyro.cli(TrainArgs, args=argv, prog="purejaxspi train", description=TrainArgs.__doc__, default=defaults)


class ProgressView:
    """Progress of a training run: a rich bar on a terminal, plain lines (one per chunk) otherwise.

    Notes (a resume, emulators restarted) go to stderr even when the progress itself is not shown.
    """

    def __init__(self, show: bool, notes: bool = True, stream=None):
        self.show, self.notes, self.stream = show, notes, stream or sys.stdout
        self.bar = self.task = None

    def __call__(self, progress) -> None:
        if self.notes:
            for note in progress.notes:
                print(f"purejaxspi: note: {note}", file=sys.stderr, flush=True)
        if not self.show:
            return
        rate = f"{progress.steps_per_second:,.0f}" if progress.steps_per_second else "-"
        median = f"{progress.median_return:.2f}" if progress.median_return is not None else "-"
        if not self.stream.isatty():
            if progress.chunk:
                percent = 100 * progress.completed_steps / progress.total_steps
                print(
                    f"{progress.description}: {progress.completed_steps:,}/{progress.total_steps:,} env steps "
                    f"({percent:.0f}%), {rate} steps/s, median return {median}",
                    file=self.stream,
                    flush=True,
                )
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} env steps"),
                TextColumn("{task.fields[rate]} steps/s"),
                TextColumn("median return {task.fields[median_return]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self.bar.start()
            self.task = self.bar.add_task(
                progress.description, total=progress.total_steps, rate=rate, median_return=median
            )
        self.bar.update(self.task, completed=progress.completed_steps, rate=rate, median_return=median)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def use_compilation_cache(args) -> None:
    from purejaxspi.lifecycle import compilation_cache

    compilation_cache.enable(wanted=getattr(args, "compilation_cache", None))


def train_cmd(args) -> int:
    use_compilation_cache(args)
    try:
        check_train_flags(args)
        config, values = resolve(args)
    except UserError as e:
        fail(user_message(e))
    from purejaxspi.lifecycle.loop import RunOptions, train
    from purejaxspi.scale import distributed
    from purejaxspi.scale.grid import grid_from_values
    from purejaxspi.scale.sharding import make_layout

    try:
        if distributed.requested(args.distributed):
            distributed.initialize()
        make_layout(1, args.devices)  # the device count is possible here
    except UserError as e:
        fail(user_message(e))
    out = (
        args.resume
        or args.out
        or Path("runs") / f"{config.env_id.replace('/', '_')}-{config.algo}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    if args.out is None and args.resume is None and distributed.process_count() > 1:
        fail("with several processes give --out: each process would name its own default directory")
    options = RunOptions(
        resume=bool(args.resume),
        overwrite=args.overwrite,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        chunk_iterations=args.chunk_iterations,
        chunk_seconds=args.chunk_seconds,
        tensorboard=args.tensorboard,
        wandb_project=args.wandb,
        num_devices=args.devices,
        time_limit=args.time_limit or None,
    )
    view = ProgressView(not args.quiet and distributed.is_writer(), notes=distributed.is_writer())
    start = time.perf_counter()
    try:
        grid = grid_from_values(values, args.seed, args.num_seeds)
        summary = train(config, grid, out, options, view)
    except UserError as e:
        view.close()
        print(f"purejaxspi: error: {user_message(e)}", file=sys.stderr, flush=True)
        os._exit(2)  # orbax's reader threads may still be winding down; their shutdown noise is not the error
    except NonFiniteLossError as e:
        view.close()
        if distributed.is_writer():
            print(f"purejaxspi: error: {e}", file=sys.stderr, flush=True)
        return 1
    except RunInterrupted as e:
        view.close()
        if distributed.is_writer():
            print(f"purejaxspi: {e}", file=sys.stderr, flush=True)
        return 128 + e.signum
    view.close()
    if not summary.get("complete", True) and distributed.is_writer():
        print(
            f"purejaxspi: stopped at the time limit ({args.time_limit:g} s) after iteration "
            f"{summary['iterations_done']} of {summary['num_iterations']}, checkpoint saved; continue with "
            f"`purejaxspi train --resume {out}`",
            file=sys.stderr,
            flush=True,
        )
        return 0
    if not args.quiet and distributed.is_writer():
        print(summary_line(summary, time.perf_counter() - start, out))
    return 0


def summary_line(summary: dict, wall: float, out: Path) -> str:
    """The closing line of a training run, its numbers rounded for reading."""

    def num(x):
        return "-" if x is None else f"{x:.2f}"

    extra = ""
    if summary.get("median_final_init_value") is not None:
        extra = f", median final V(I) {num(summary['median_final_init_value'])}"
    settings = [s for s in summary.get("settings", []) if s["final_return_iqm"] is not None]
    if len(settings) > 1:  # a sweep: name its best setting
        best = max(settings, key=lambda s: s["final_return_iqm"])
        values = " ".join(f"{k}={v:g}" for k, v in best["hparams"].items())
        extra += f"; best of {len(summary['settings'])} settings: {values} (IQM {num(best['final_return_iqm'])})"
    return (
        f"{summary['algo']} on {summary['env']}: {len(summary['runs'])} runs, median final return "
        f"{num(summary['final_return_median'])}, IQM {num(summary['final_return_iqm'])}{extra}, "
        f"{summary['env_steps_per_second']:,.0f} env steps/s, {wall:.0f}s wall; outputs in {out}"
    )


@dataclasses.dataclass
class EnvsArgs:
    """List every environment id, by backend."""

    json: bool = False
    """Print a JSON object {backend: [ids]} instead of a table."""


def envs_cmd(args: EnvsArgs) -> int:
    from purejaxspi.envs import env_ids_by_backend

    ids = env_ids_by_backend()
    if args.json:
        print(json.dumps({k: list(v) for k, v in ids.items()}, indent=2))
        return 0
    for backend, names in ids.items():
        print(f"{backend} ({len(names)}):")
        for name in names:
            print(f"  {name}")
    return 0


@dataclasses.dataclass
class InfoArgs:
    """Show the platform, devices, package versions, envpool's XLA step and what `auto` picks on this machine."""

    json: bool = False
    """Print a JSON object instead of lines."""


def info_cmd(args: InfoArgs) -> int:
    from purejaxspi.analysis.info import format_info, machine_info

    info = machine_info()
    print(json.dumps(info, indent=2) if args.json else "\n".join(format_info(info)))
    return 0


@dataclasses.dataclass
class PresetsArgs:
    """Print the preset of every (env family, algorithm): what `train` runs where no flag overrides it."""

    json: bool = False
    """Print the rows as JSON instead of a table."""


PRESET_COLUMNS = (
    ("family", "family"),
    ("algo", "algo"),
    ("num_envs", "envs"),
    ("num_steps", "steps"),
    ("num_minibatches", "mb"),
    ("update_epochs", "epochs"),
    ("total_timesteps", "budget"),
    ("learning_rate", "lr"),
    ("anneal_lr", "anneal"),
    ("clip_coef", "clip"),
    ("clip_value_loss", "clip_V"),
    ("gamma", "gamma"),
    ("reward_coef", "alpha_R"),
    ("transition_coef", "alpha_P"),
    ("gradient_penalty", "lambda_GP"),
    ("density", "density"),
    ("lipschitz", "lipschitz"),
    ("spectral_norm", "spectral"),
    ("encoder", "encoder"),
)


def presets_cmd(args: PresetsArgs) -> int:
    from purejaxspi.algo.config import preset_table

    rows = preset_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[title for _, title in PRESET_COLUMNS]] + [[show(r[name]) for name, _ in PRESET_COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(PRESET_COLUMNS))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(
        "Every preset: ent 0.01, vf 0.5, lambda 0.95, grad-norm 0.5. lambda_GP applies to the plain world model "
        "(lipschitz False) only; encoder auto is the family's (vector MLP, MinAtar-sized conv trunk, Nature CNN)."
    )
    return 0


@dataclasses.dataclass
class EvalArgs:
    """Play episodes with the newest checkpoint of a training run (every run at once); writes DIR/eval.json."""

    run_dir: tyro.conf.Positional[Path]
    """A `purejaxspi train` output directory."""
    episodes: int = 10
    """Episodes per run (played in parallel, one per env)."""
    greedy: bool = False
    """Act by the argmax of the policy instead of sampling from it."""
    max_steps: int = 27_000
    """Steps after which unfinished episodes are left out (and counted as unfinished)."""
    seed: int = 0
    """Evaluation seed (combined with each run's own seed)."""
    video: bool = False
    """Also write one episode per run to DIR/videos/ (image observations: MinAtar, Atari, the gridworld)."""
    video_steps: int = 1000
    """Longest video, in env steps."""
    video_format: str = "gif"
    """gif, or mp4 where imageio has an ffmpeg plugin."""
    compilation_cache: bool | None = None
    """Keep the compiled evaluation program in JAX's persistent cache (default as for train: see train --help)."""


def eval_cmd(args: EvalArgs) -> int:
    use_compilation_cache(args)
    for name in ("episodes", "max_steps", "video_steps"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.video_format not in ("gif", "mp4"):
        fail(f"--video-format must be gif or mp4, got {args.video_format!r}")
    if args.video and args.video_format == "mp4":
        import importlib.util

        if not any(importlib.util.find_spec(m) for m in ("imageio_ffmpeg", "av")):
            fail("--video-format mp4 needs an imageio ffmpeg plugin (pip install imageio-ffmpeg); gif needs none")
    from rich.console import Console

    from purejaxspi.lifecycle.evaluate import (
        check_video,
        evaluate,
        load_run,
        record_videos,
    )
    from purejaxspi.lifecycle.rundir import read_record

    try:
        read_record(args.run_dir)
        with Console(stderr=True).status(f"playing {args.episodes} episodes per run in {args.run_dir}"):
            run = load_run(args.run_dir)
            if run.note:
                print(f"purejaxspi: note: {run.note}", file=sys.stderr, flush=True)
            if args.video:
                check_video(run)
            report = evaluate(run, args.episodes, args.greedy, args.max_steps, args.seed)
            videos = (
                record_videos(run, args.video_steps, args.greedy, args.video_format, args.seed) if args.video else []
            )
    except UserError as e:
        print(f"purejaxspi: error: {e}", file=sys.stderr, flush=True)
        os._exit(2)  # as in train: orbax's reader threads may still be winding down
    except OSError as e:  # eval.json or a video that cannot be written (a full disk, a read-only run directory)
        print(
            f"purejaxspi: error: cannot write the evaluation's outputs in {args.run_dir}: "
            f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(2)
    unfinished = sum(args.episodes - r["episodes_finished"] for r in report["runs"])
    print(
        f"{report['algo']} on {report['env']} at iteration {report['iteration']}: {len(report['runs'])} runs x "
        f"{args.episodes} {'greedy' if args.greedy else 'sampled'} episodes, median mean return "
        f"{report['mean_return_median']}, IQM {report['mean_return_iqm']}"
        + (f", HNS median {report['hns_median']}" if "hns_median" in report else "")
        + (f"; {unfinished} episodes unfinished after {args.max_steps} steps" if unfinished else "")
        + f"; wrote {args.run_dir / 'eval.json'}"
        + (f" and {len(videos)} videos in {videos[0].parent}" if videos else "")
    )
    return 0


@dataclasses.dataclass
class PlotArgs:
    """Learning curves (IQM or mean over seeds, bootstrap band) and rliable aggregates of training runs."""

    run_dirs: tyro.conf.Positional[tuple[Path, ...]]
    """One or more `purejaxspi train` output directories."""
    out: Path = Path("plot.png")
    """The figure; its numbers go to the same name with .json."""
    metric: str = "episodic_return"
    """Any metrics.csv column."""
    aggregate: str = "iqm"
    """iqm or mean across seeds, for the curves."""
    bins: int = 50
    """Env-step bins along the x axis."""
    reps: int = 2000
    """Bootstrap resamples for the confidence intervals."""
    gap_threshold: float | None = None
    """Optimality-gap target (default 1 for normalised scores, else the best final score plotted)."""
    seed: int = 0
    """Bootstrap seed."""
    heatmap: tuple[str, str] | None = None
    """X Y: a sweep over two hyperparameters (e.g. reward_coef transition_coef): one heatmap per env of the
    final metric (IQM or mean over seeds, CI in each cell), and the curves of the best cell, of the cell
    where both are 0 and of the --highlight cells."""
    highlight: tuple[float, ...] = ()
    """With --heatmap: X Y values of cells whose curves are drawn too (pairs, e.g. 0.01 0.0005)."""


def plot_cmd(args: PlotArgs) -> int:
    if args.aggregate not in ("iqm", "mean"):
        fail(f"--aggregate must be iqm or mean, got {args.aggregate!r}")
    if args.bins <= 0 or args.reps <= 0:
        fail("--bins and --reps must be positive")
    if args.out.suffix.lower() not in (".png", ".pdf", ".svg"):
        fail(f"--out {args.out}: use a .png, .pdf or .svg file name")
    check_writable(args.out, "--out")
    check_writable(args.out.with_suffix(".json"), "--out")
    if len(args.highlight) % 2:
        fail("--highlight takes pairs of values (X Y), one pair per cell")
    if args.highlight and args.heatmap is None:
        fail("--highlight needs --heatmap X Y")
    from purejaxspi.analysis.plot import plot
    from purejaxspi.analysis.sweep import heatmap

    try:
        if args.heatmap is not None:
            pairs = list(zip(args.highlight[::2], args.highlight[1::2]))
            sweep = heatmap(
                list(args.run_dirs),
                args.out,
                *args.heatmap,
                args.metric,
                args.aggregate,
                args.bins,
                args.reps,
                args.seed,
                pairs,
            )
        else:
            summary = plot(
                list(args.run_dirs),
                args.out,
                args.metric,
                args.aggregate,
                args.bins,
                args.reps,
                args.seed,
                args.gap_threshold,
            )
    except UserError as e:
        fail(str(e))
    except OSError as e:
        fail(f"--out {args.out}: cannot write the plot: {e.strerror or e}")
    if args.heatmap is not None:
        cells = sum(len(p["cells"]) for p in sweep["panels"])
        print(
            f"{cells} cells in {len(sweep['panels'])} heatmap(s): wrote {args.out} and {args.out.with_suffix('.json')}"
        )
        return 0
    print(
        f"{len(summary['groups'])} settings over {len(summary['envs'])} env(s): wrote {args.out} and "
        f"{args.out.with_suffix('.json')}"
    )
    return 0


@dataclasses.dataclass
class BenchArgs:
    """Measure env steps per second of the training program for grids of runs (and sequential runs, env-only).

    Takes the train command's shape flags; unset values come from the env's preset.
    """

    env: str = "Breakout-MinAtar"
    """Environment id (`purejaxspi envs` lists them)."""
    algo: tuple[str, ...] = ("deepspi",)
    """One or more of deepspi, deepmdp, ppo (with ppo, each row reports its time per iteration vs ppo)."""
    num_runs: tuple[int, ...] = (1, 4, 16)
    """Grid sizes to measure (seeds 0 .. R-1)."""
    sequential: bool = False
    """Also time the same runs trained one after another with the 1-run program."""
    iterations: int = 2
    """Training iterations per timed call."""
    repeats: int = 3
    """Timed calls per measurement; the median is reported."""
    run_mapping: tuple[str, ...] = ("auto",)
    """How the program maps over runs, one or more of: auto (the measured best for the platform and env family), vmap, map, chunked."""
    devices: tuple[int, ...] = ()
    """Device counts to shard each grid over, e.g. 1 2 4 (default: every device); the first D devices take the runs."""
    env_only: bool = True
    """Also measure the env-only ceiling (random actions through the same env layer)."""
    model_flops: bool = True
    """Also count each algo's model FLOPs per env step (XLA's cost analysis) and the FLOP/s achieved."""
    json: Path | None = None
    """Write the rows to this JSON file."""
    num_envs: int | None = None
    num_steps: int | None = None
    num_minibatches: int | None = None
    update_epochs: int | None = None
    density: str | None = None
    total_timesteps: int | None = None
    lipschitz: bool | None = None
    spectral_norm: str | None = None
    settings: str | None = None
    """Whose preset fills every unset flag, for every algo (default: each algorithm's own)."""
    torso_width: int | None = None
    encoder_width: int | None = None
    encoder: str = "auto"
    stochastic: bool = False
    reward_clip: bool = True
    episodic_life: bool = True
    anneal_lr: bool | None = None
    norm_adv: bool = True
    clip_value_loss: bool | None = None
    target_kl: float = 0.0
    num_components: int = 5
    conv: tuple[str, ...] = ("auto",)
    """Convolution implementations to measure, one or more of auto, lax, patches (one row each)."""
    compilation_cache: bool | None = None
    """Keep compiled programs in JAX's persistent cache, so a rerun of the same program skips compiling (default: on for accelerators, off on CPUs; PUREJAXSPI_COMPILATION_CACHE names its folder, default ~/.cache/purejaxspi/jax, or turns it off)."""
    quiet: bool = False
    """No progress bar."""


def bench_plan(args: BenchArgs):
    """The BenchPlan of the command line; raises ConfigError with one line for bad input."""
    from purejaxspi.analysis.bench import BenchPlan
    from purejaxspi.envs import family_of, traits
    from purejaxspi.scale.mapping import RUN_MAPPINGS, resolve_run_mapping

    if not args.algo:
        raise ConfigError("--algo needs at least one value")
    if not args.num_runs or any(r <= 0 for r in args.num_runs):
        raise ConfigError(f"--num-runs takes positive grid sizes, got {list(args.num_runs)}")
    for name in ("iterations", "repeats"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(args, name)}")
    for mapping in args.run_mapping:
        if mapping not in RUN_MAPPINGS:
            raise ConfigError(f"unknown --run-mapping {mapping!r}; choose one of {', '.join(RUN_MAPPINGS)}")
    if not args.run_mapping:
        raise ConfigError("--run-mapping needs at least one value")
    if any(d <= 0 for d in args.devices):
        raise ConfigError(f"--devices takes positive device counts, got {list(args.devices)}")
    configs, values = [], []
    if not args.conv:
        raise ConfigError("--conv needs at least one value")
    for algo in dict.fromkeys(args.algo):
        for conv in dict.fromkeys(args.conv):
            config, algo_values = resolve(dataclasses.replace(args, algo=algo, conv=conv))
            configs.append(config)
            values.append(algo_values)
    for mapping in args.run_mapping:
        resolve_run_mapping(mapping, family_of(args.env), traits(args.env)["vmap_only"])
    from purejaxspi.scale.sharding import make_layout

    devices = tuple(dict.fromkeys(args.devices)) or (None,)
    for count in devices:
        if count is not None:
            make_layout(count, count)  # DeviceError when the machine has fewer
    return BenchPlan(
        tuple(configs),
        tuple(values),
        tuple(args.num_runs),
        args.iterations,
        args.repeats,
        args.sequential,
        args.env_only,
        tuple(dict.fromkeys(args.run_mapping)),
        devices=devices,
        model_flops=args.model_flops,
    )


def bench_cmd(args: BenchArgs) -> int:
    use_compilation_cache(args)
    try:
        plan = bench_plan(args)
    except UserError as e:
        fail(user_message(e))
    if args.json:
        check_writable(args.json, "--json")
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from purejaxspi.analysis.bench import count_steps, format_rows, run_bench

    columns = (
        TextColumn("[bold]bench {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("compilations and timed calls"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=args.quiet) as progress:
        task = progress.add_task(f"{args.env} {','.join(args.algo)}", total=count_steps(plan))
        rows = run_bench(plan, lambda: progress.advance(task))
    console = Console(width=max(Console().width, 180))  # the whole table, wrapped by the terminal if narrower
    cells = format_rows(rows)
    table = Table(title=f"{args.env}, {plan.iterations} iterations x {plan.repeats} repeats (median)")
    for name in cells[0]:
        table.add_column(name, justify="right")
    for row in cells[1:]:
        table.add_row(*row)
    console.print(table)
    if args.json:
        try:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        except OSError as e:
            fail(f"--json {args.json}: cannot write the rows: {e.strerror or e}")
        console.print(f"wrote {args.json}")
    return 0


COMMANDS = {
    "train": (TrainArgs, train_cmd),
    "eval": (EvalArgs, eval_cmd),
    "plot": (PlotArgs, plot_cmd),
    "envs": (EnvsArgs, envs_cmd),
    "presets": (PresetsArgs, presets_cmd),
    "info": (InfoArgs, info_cmd),
    "bench": (BenchArgs, bench_cmd),
}


def use_every_core() -> None:
    """One XLA CPU device per core, so a grid's runs spread over the cores (one XLA CPU device runs an
    iteration's many small ops on one thread; measured faster in benchmarks/README.md). Takes effect
    only before JAX starts its backends; the user's own XLA_FLAGS device count wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cores}".strip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("train", "bench", "info"):
        use_every_core()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: purejaxspi {" + ",".join(COMMANDS) + "} [--help] ...")
        for name, (cls, _) in COMMANDS.items():
            print(f"  {name:8s} {cls.__doc__.splitlines()[0]}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}")
    cls, fn = COMMANDS[command]
    if cls is TrainArgs:
        args = parse_train(rest)
    else:
        args = tyro.cli(cls, args=switch_pairs(rest), prog=f"purejaxspi {command}", description=cls.__doc__)
    try:
        return fn(args) or 0
    except BrokenPipeError:  # the reader of our output left (`purejaxspi envs | head`): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
