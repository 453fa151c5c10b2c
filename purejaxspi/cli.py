"""`purejaxspi train | envs`: the command line, typed with tyro (the CLI is the documentation)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from pathlib import Path
from typing import Optional

import tyro

from purejaxspi.config import ALGOS, HPARAM_NAMES, PRESETS, Config, ConfigError, validate


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    """One line to stderr and a clean exit: bad input never ends in a traceback."""
    print(f"purejaxspi: error: {message}", file=sys.stderr)
    raise SystemExit(code)


@dataclasses.dataclass
class TrainArgs:
    """Train Deep SPI, DeepMDP or PPO on a grid of runs (hyperparameter values x seeds) in one program.

    Every hyperparameter flag takes one or more values; the grid is their product times the seeds.
    Unset values come from the preset of the env's family (vector, MinAtar, Atari).
    """

    env: str = "Breakout-MinAtar"
    """Environment id (`purejaxspi envs` lists them)."""
    algo: str = "deepspi"
    """deepspi, deepmdp or ppo."""
    seed: int = 0
    """First seed; runs use seeds seed .. seed+num_seeds-1."""
    num_seeds: int = 16
    total_timesteps: Optional[int] = None
    """Env steps per run."""
    num_envs: Optional[int] = None
    num_steps: Optional[int] = None
    """Rollout length per iteration."""
    num_minibatches: Optional[int] = None
    update_epochs: Optional[int] = None
    learning_rate: Optional[tuple[float, ...]] = None
    clip_coef: Optional[tuple[float, ...]] = None
    ent_coef: Optional[tuple[float, ...]] = None
    vf_coef: Optional[tuple[float, ...]] = None
    gamma: Optional[tuple[float, ...]] = None
    gae_lambda: Optional[tuple[float, ...]] = None
    max_grad_norm: Optional[tuple[float, ...]] = None
    reward_coef: Optional[tuple[float, ...]] = None
    """alpha_R: weight of the reward-model loss L_R."""
    transition_coef: Optional[tuple[float, ...]] = None
    """alpha_P: weight of the transition-model loss L_P."""
    density: Optional[str] = None
    """Transition density: deterministic, normal or mixture (of 5 diagonal Gaussians)."""
    lipschitz: bool = True
    """Spectral normalisation + GroupSort in the world model."""
    stochastic: bool = False
    """Atari: the stochastic ALE (sticky actions with probability 0.3, up to 60 no-op starts)."""
    chunk_iterations: int = 0
    """Iterations per compiled chunk between host updates (0: about 20 chunks per run)."""
    out: Optional[Path] = None
    """Output directory (default runs/<env>-<algo>-<time>)."""
    quiet: bool = False
    """No progress bar."""


def resolve(args: TrainArgs) -> tuple[Config, dict[str, list[float]]]:
    """Fill unset values from the family preset and validate; raises ConfigError with one line."""
    from purejaxspi.envs import UnknownEnvError, family_of

    if args.algo not in ALGOS:
        raise ConfigError(f"unknown algo {args.algo!r}; choose one of {', '.join(ALGOS)}")
    try:
        family = family_of(args.env)
    except UnknownEnvError as e:
        raise ConfigError(str(e)) from None
    if args.num_seeds <= 0:
        raise ConfigError(f"--num-seeds must be positive, got {args.num_seeds}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {args.seed}")
    if args.stochastic and family != "atari":
        raise ConfigError(f"--stochastic applies to Atari (envpool) envs only, not {args.env}")
    preset = PRESETS[family]
    pick = lambda value, default: default if value is None else value  # noqa: E731
    config = Config(
        env_id=args.env,
        algo=args.algo,
        num_envs=pick(args.num_envs, preset.num_envs),
        num_steps=pick(args.num_steps, preset.num_steps),
        num_minibatches=pick(args.num_minibatches, preset.num_minibatches),
        update_epochs=pick(args.update_epochs, preset.update_epochs),
        total_timesteps=pick(args.total_timesteps, preset.total_timesteps),
        density=pick(args.density, preset.density),
        lipschitz=args.lipschitz,
        stochastic=args.stochastic,
    )
    grid = {
        name: list(pick(getattr(args, name), (getattr(preset.hparams, name),))) for name in HPARAM_NAMES
    }
    validate(config, grid)
    if args.chunk_iterations < 0:
        raise ConfigError(f"--chunk-iterations must be non-negative, got {args.chunk_iterations}")
    return config, grid


def train_cmd(args: TrainArgs) -> int:
    try:
        config, values = resolve(args)
    except ConfigError as e:
        fail(str(e))
    out = args.out or Path("runs") / f"{config.env_id.replace('/', '_')}-{config.algo}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    from purejaxspi.session import run_training

    return run_training(config, values, args.seed, args.num_seeds, out, args.chunk_iterations, not args.quiet)


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


COMMANDS = {"train": (TrainArgs, train_cmd), "envs": (EnvsArgs, envs_cmd)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: purejaxspi {" + ",".join(COMMANDS) + "} [--help] ...")
        for name, (cls, _) in COMMANDS.items():
            print(f"  {name:8s} {cls.__doc__.splitlines()[0]}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}")
    cls, fn = COMMANDS[command]
    args = tyro.cli(cls, args=rest, prog=f"purejaxspi {command}", description=cls.__doc__)
    return fn(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
