"""Config (static: changes the program), HParams (per-run floats a grid may vary) and the presets.

This module is the one place that owns presets: `make_config` applies an env's preset to a Config and
`hparam_values` to the hyperparameters, for the library and the command line alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
from flax import struct

from purejaxspi.errors import ConfigError

ALGOS = ("deepspi", "deepmdp", "ppo")


def _hparam(help: str):
    return struct.field(metadata={"help": help})


@struct.dataclass
class HParams:
    """Hyperparameters that are data: one scalar per run, vmapped along the run axis."""

    learning_rate: float = _hparam("Adam step size, annealed linearly to 0 over the run.")
    clip_coef: float = _hparam("PPO clip epsilon.")
    ent_coef: float = _hparam("Entropy bonus weight.")
    vf_coef: float = _hparam("Value loss weight.")
    gamma: float = _hparam("Discount factor.")
    gae_lambda: float = _hparam("GAE lambda.")
    max_grad_norm: float = _hparam("Global gradient-norm clip.")
    reward_coef: float = _hparam("alpha_R: weight of the reward-model loss L_R.")
    transition_coef: float = _hparam("alpha_P: weight of the transition-model loss L_P.")

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in HPARAM_NAMES}

    @staticmethod
    def stack(settings: list["HParams"]) -> "HParams":
        """Stack per-run settings into one HParams of float32 arrays [R]."""
        return HParams(
            **{n: jnp.asarray([float(getattr(s, n)) for s in settings], jnp.float32) for n in HPARAM_NAMES}
        )


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(HParams))
HPARAM_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(HParams)}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that fixes shapes or the program; changing any field recompiles.

    Build it with `make_config`, which applies the env's preset; the defaults here are the MinAtar
    preset's, for the default env.
    """

    env_id: str = "Breakout-MinAtar"
    algo: str = "deepspi"
    num_envs: int = 32
    num_steps: int = 32
    num_minibatches: int = 4
    update_epochs: int = 4
    total_timesteps: int = 24_576
    density: str = "deterministic"
    num_components: int = 5
    lipschitz: bool = True
    spectral_norm: str = "exact"  # "reference": the paper's code's estimate (lipschitz.SPECTRAL_NORMS)
    stochastic: bool = False  # Atari only: sticky actions (0.3) and up to 60 no-op starts

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)

    @property
    def world_model(self) -> bool:
        return self.algo != "ppo"


@dataclasses.dataclass(frozen=True)
class Preset:
    """Per-env defaults of the shape, budget and hyperparameters, used where nothing overrides them."""

    num_envs: int
    num_steps: int
    num_minibatches: int
    update_epochs: int
    total_timesteps: int
    hparams: HParams
    density: str = "mixture"


# The paper's optimiser and world-model settings (`deep_spi.py`'s defaults): 128 envs x 8 steps,
# lr 2.5e-4 annealed, clip 0.1, 4 epochs x 4 minibatches, alpha_R 0.01, alpha_P 0.0005.
PAPER_HPARAMS = HParams(
    learning_rate=2.5e-4, clip_coef=0.1, ent_coef=0.01, vf_coef=0.5, gamma=0.99,
    gae_lambda=0.95, max_grad_norm=0.5, reward_coef=0.01, transition_coef=0.0005,
)

PRESETS = {
    # CartPole, Acrobot, ...: small MLP, many cheap updates.
    "vector": Preset(
        num_envs=8, num_steps=128, num_minibatches=4, update_epochs=4, total_timesteps=150_000,
        hparams=PAPER_HPARAMS.replace(learning_rate=2.5e-3, clip_coef=0.2),
    ),
    # MinAtar (gymnax and pgx): small conv trunk. The budget is a CPU smoke test (the default job:
    # 16 seeds in under 2 minutes on 2 cores); pass total_timesteps for real runs. The paper's mixture
    # head over an 8x8x16 latent costs ~4x the deterministic one on a CPU; density="mixture" restores it.
    "minatar": Preset(
        num_envs=32, num_steps=32, num_minibatches=4, update_epochs=4, total_timesteps=24_576,
        density="deterministic", hparams=PAPER_HPARAMS.replace(learning_rate=1e-3, clip_coef=0.2),
    ),
    # Atari: the paper's setting.
    "atari": Preset(
        num_envs=128, num_steps=8, num_minibatches=4, update_epochs=4, total_timesteps=10_000_000,
        hparams=PAPER_HPARAMS,
    ),
    # The confounding gridworld, every rendering: the paper ran it with `deep_spi.py`'s defaults (the
    # Atari settings, the mixture head, Lipschitz world model).
    "gridworld": Preset(
        num_envs=128, num_steps=8, num_minibatches=4, update_epochs=4, total_timesteps=262_144,
        hparams=PAPER_HPARAMS,
    ),
}
PRESET_FIELDS = ("num_envs", "num_steps", "num_minibatches", "update_epochs", "total_timesteps", "density")


def preset_name(env_id: str) -> str:
    """Which preset an env id takes: the gridworld's own, else its observation family's."""
    from purejaxspi.envs import family_of
    from purejaxspi.envs.confounding import CONFOUNDING_IDS

    return "gridworld" if env_id in CONFOUNDING_IDS else family_of(env_id)


def make_config(env_id: str, algo: str = "deepspi", **overrides) -> Config:
    """A validated Config for `env_id` and `algo`: the env's preset, then `overrides` (Config fields).

    Raises ConfigError (UnknownEnvError for an unknown env id) with one line.
    """
    from purejaxspi.envs import family_of

    settable = {f.name for f in dataclasses.fields(Config)} - {"env_id", "algo"}
    unknown = sorted(set(overrides) - settable)
    if unknown:
        hint = " (hyperparameters go to hparam_values or make_grid)" if set(unknown) & set(HPARAM_NAMES) else ""
        raise ConfigError(f"unknown setting {unknown[0]!r}{hint}", setting=unknown[0])
    preset = PRESETS[preset_name(env_id)]
    shape = {name: getattr(preset, name) for name in PRESET_FIELDS}
    config = Config(env_id=env_id, algo=algo, **{**shape, **overrides})
    if config.stochastic and family_of(env_id) != "atari":
        raise ConfigError(f"stochastic applies to Atari (envpool) envs only, not {env_id}", setting="stochastic")
    validate_config(config)
    return config


def preset_hparams(env_id: str) -> HParams:
    """The hyperparameters of `env_id`'s preset."""
    return PRESETS[preset_name(env_id)].hparams


def hparam_values(env_id: str, **values: float | Sequence[float]) -> dict[str, list[float]]:
    """Every hyperparameter's list of values, validated: those given (a number or several), the
    preset's for the rest. Their product times the seeds is a grid of runs (`scale.grid`)."""
    unknown = sorted(set(values) - set(HPARAM_NAMES))
    if unknown:
        raise ConfigError(f"unknown hyperparameter {unknown[0]!r}; choose from {', '.join(HPARAM_NAMES)}",
                          setting=unknown[0])
    base = preset_hparams(env_id)
    grid = {}
    for name in HPARAM_NAMES:
        given = values.get(name)
        if given is None:
            grid[name] = [float(getattr(base, name))]
        else:
            grid[name] = [float(v) for v in given] if isinstance(given, Sequence) else [float(given)]
    validate_hparams(grid)
    return grid


def validate_config(config: Config) -> None:
    """Raise ConfigError for impossible shapes or unknown choices."""
    from purejaxspi.algo.lipschitz import SPECTRAL_NORMS
    from purejaxspi.algo.networks import DENSITIES

    choices = {"algo": ALGOS, "density": DENSITIES, "spectral_norm": SPECTRAL_NORMS}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(f"unknown {name} {getattr(config, name)!r}; choose one of {', '.join(allowed)}",
                              setting=name)
    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "total_timesteps", "num_components"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}", setting=name)
    if config.batch_size % config.num_minibatches:
        raise ConfigError(
            f"batch num_envs*num_steps = {config.batch_size} is not divisible by num_minibatches "
            f"{config.num_minibatches}", setting="num_minibatches",
        )
    if config.total_timesteps < config.batch_size:
        raise ConfigError(
            f"total_timesteps {config.total_timesteps} is less than one iteration "
            f"(num_envs*num_steps = {config.batch_size})", setting="total_timesteps",
        )


def validate_hparams(values: Mapping[str, Sequence[float]]) -> None:
    """Raise ConfigError for empty, non-finite, negative or out-of-range hyperparameter values."""
    for name, given in values.items():
        if not given:
            raise ConfigError(f"{name} needs at least one value", setting=name)
        for v in given:
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name} must be finite and non-negative, got {v}", setting=name)
        if name in ("gamma", "gae_lambda") and any(v > 1 for v in given):
            raise ConfigError(f"{name} must lie in [0, 1], got {list(given)}", setting=name)
        if name in ("learning_rate", "max_grad_norm") and any(v == 0 for v in given):
            raise ConfigError(f"{name} must be positive, got {list(given)}", setting=name)
