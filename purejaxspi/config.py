"""Config (static: changes the program) and HParams (per-run floats a grid may vary), plus presets."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
from flax import struct

ALGOS = ("deepspi", "deepmdp", "ppo")
HPARAM_NAMES = (
    "learning_rate",
    "clip_coef",
    "ent_coef",
    "vf_coef",
    "gamma",
    "gae_lambda",
    "max_grad_norm",
    "reward_coef",
    "transition_coef",
)


@struct.dataclass
class HParams:
    """Hyperparameters that are data: one scalar per run, vmapped along the run axis."""

    learning_rate: float
    clip_coef: float
    ent_coef: float
    vf_coef: float
    gamma: float
    gae_lambda: float
    max_grad_norm: float
    reward_coef: float  # alpha_R
    transition_coef: float  # alpha_P

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in HPARAM_NAMES}

    @staticmethod
    def stack(settings: list["HParams"]) -> "HParams":
        """Stack per-run settings into one HParams of float32 arrays [R]."""
        return HParams(
            **{n: jnp.asarray([float(getattr(s, n)) for s in settings], jnp.float32) for n in HPARAM_NAMES}
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that fixes shapes or the program; changing any field recompiles."""

    env_id: str = "Breakout-MinAtar"
    algo: str = "deepspi"
    num_envs: int = 64
    num_steps: int = 32
    num_minibatches: int = 4
    update_epochs: int = 4
    total_timesteps: int = 2_000_000
    density: str = "mixture"
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
    """Per-family defaults, used where the command line leaves a value unset."""

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


GRIDWORLD_TIMESTEPS = 262_144

PRESETS = {
    # CartPole, Acrobot, ...: small MLP, many cheap updates.
    "vector": Preset(
        num_envs=8,
        num_steps=128,
        num_minibatches=4,
        update_epochs=4,
        total_timesteps=150_000,
        hparams=HParams(
            learning_rate=2.5e-3, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5, gamma=0.99,
            gae_lambda=0.95, max_grad_norm=0.5, reward_coef=0.01, transition_coef=0.0005,
        ),
    ),
    # MinAtar (gymnax and pgx): small conv trunk. The budget is a CPU smoke test (the default job:
    # 16 seeds in under 2 minutes on 2 cores); pass --total-timesteps for real runs.
    "minatar": Preset(
        num_envs=32,
        num_steps=32,
        num_minibatches=4,
        update_epochs=4,
        total_timesteps=24_576,
        # The paper's mixture head over an 8x8x16 latent costs ~4x the deterministic one on a CPU;
        # `--density mixture` restores it.
        density="deterministic",
        hparams=HParams(
            learning_rate=1e-3, clip_coef=0.2, ent_coef=0.01, vf_coef=0.5, gamma=0.99,
            gae_lambda=0.95, max_grad_norm=0.5, reward_coef=0.01, transition_coef=0.0005,
        ),
    ),
    # Atari: the paper's setting.
    "atari": Preset(
        num_envs=128, num_steps=8, num_minibatches=4, update_epochs=4, total_timesteps=10_000_000,
        hparams=PAPER_HPARAMS,
    ),
    # The confounding gridworld, every rendering: the paper ran it with `deep_spi.py`'s defaults (the
    # Atari settings, the mixture head, Lipschitz world model); the budget lets PPO's V(I) flatten.
    "gridworld": Preset(
        num_envs=128, num_steps=8, num_minibatches=4, update_epochs=4, total_timesteps=GRIDWORLD_TIMESTEPS,
        hparams=PAPER_HPARAMS,
    ),
}


def preset_for(env_id: str, family: str) -> Preset:
    """The preset an env id takes: the gridworld's own, else its observation family's."""
    from purejaxspi.envs.confounding import CONFOUNDING_IDS

    return PRESETS["gridworld" if env_id in CONFOUNDING_IDS else family]


class ConfigError(ValueError):
    """Bad input, reported as one line before anything compiles."""


def validate(config: Config, hparam_grid: dict[str, list[float]]) -> None:
    """Raise ConfigError for impossible shapes, unknown choices, or bad coefficients."""
    from purejaxspi.lipschitz import SPECTRAL_NORMS
    from purejaxspi.networks import DENSITIES

    if config.spectral_norm not in SPECTRAL_NORMS:
        raise ConfigError(
            f"unknown spectral norm {config.spectral_norm!r}; choose one of {', '.join(SPECTRAL_NORMS)}"
        )
    if config.algo not in ALGOS:
        raise ConfigError(f"unknown algo {config.algo!r}; choose one of {', '.join(ALGOS)}")
    if config.density not in DENSITIES:
        raise ConfigError(f"unknown density {config.density!r}; choose one of {', '.join(DENSITIES)}")
    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "total_timesteps", "num_components"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    if config.batch_size % config.num_minibatches:
        raise ConfigError(
            f"batch num_envs*num_steps = {config.batch_size} is not divisible by "
            f"--num-minibatches {config.num_minibatches}"
        )
    if config.total_timesteps < config.batch_size:
        raise ConfigError(
            f"--total-timesteps {config.total_timesteps} is less than one iteration "
            f"(num_envs*num_steps = {config.batch_size})"
        )
    for name, values in hparam_grid.items():
        flag = "--" + name.replace("_", "-")
        if not values:
            raise ConfigError(f"{flag} needs at least one value")
        for v in values:
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{flag} must be finite and non-negative, got {v}")
        if name in ("gamma", "gae_lambda") and any(v > 1 for v in values):
            raise ConfigError(f"{flag} must lie in [0, 1], got {values}")
        if name in ("learning_rate", "max_grad_norm") and any(v == 0 for v in values):
            raise ConfigError(f"{flag} must be positive, got {values}")
