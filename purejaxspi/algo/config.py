"""Config (static: changes the program), HParams (per-run floats a grid may vary) and the presets.

This module is the one place that owns presets. A preset belongs to an (env family, algorithm) pair,
because the paper ran its three algorithms with three scripts and three settings: Deep SPI with
`deep_spi.py`, DeepMDP with `deep_mdp_ppo.py`, PPO with CleanRL's `ppo_atari_envpool_xla_jax_scan.py`.
`make_config` applies the preset of `settings` (by default the algorithm's own) to a Config and
`hparam_values` to the hyperparameters, for the library and the command line alike; running one
algorithm under another's settings (`settings="deepspi"` for all three) is the one-switch ablation.
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

    learning_rate: float = _hparam("Adam step size (annealed linearly to 0 over the run where anneal_lr is on).")
    clip_coef: float = _hparam("PPO clip epsilon.")
    ent_coef: float = _hparam("Entropy bonus weight.")
    vf_coef: float = _hparam("Value loss weight.")
    gamma: float = _hparam("Discount factor.")
    gae_lambda: float = _hparam("GAE lambda.")
    max_grad_norm: float = _hparam("Global gradient-norm clip.")
    reward_coef: float = _hparam("alpha_R: weight of the reward-model loss L_R.")
    transition_coef: float = _hparam("alpha_P: weight of the transition-model loss L_P.")
    gradient_penalty: float = _hparam(
        "lambda_GP: weight of DeepMDP's gradient penalty E||grad_z f||^2 on the plain (non-Lipschitz) world "
        "model's reward and transition networks; the Lipschitz world model is constrained by construction and "
        "takes none."
    )

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in HPARAM_NAMES}

    @staticmethod
    def stack(settings: list[HParams]) -> HParams:
        """Stack per-run settings into one HParams of float32 arrays [R]."""
        return HParams(**{n: jnp.asarray([float(getattr(s, n)) for s in settings], jnp.float32) for n in HPARAM_NAMES})


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(HParams))
HPARAM_HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(HParams)}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that fixes shapes or the program; changing any field recompiles.

    Build it with `make_config`, which applies the preset of (env family, settings); the defaults here
    are the shape of Deep SPI's MinAtar preset, for the default env and algorithm, with the family's
    own encoder and the paper's scripts' conventions (the learning rate annealed, the value loss
    unclipped), which a record written before those fields existed ran with.
    """

    env_id: str = "Breakout-MinAtar"
    algo: str = "deepspi"
    settings: str = "deepspi"  # whose preset gave the defaults: the algorithm's own, or another's (ablation)
    num_envs: int = 64
    num_steps: int = 128
    num_minibatches: int = 8
    update_epochs: int = 4
    total_timesteps: int = 10_000_000
    density: str = "deterministic"
    num_components: int = 5
    lipschitz: bool = True  # the paper's Lipschitz world model; False: deep_mdp_ppo.py's plain networks
    spectral_norm: str = "exact"  # "reference": the paper's code's estimate (lipschitz.SPECTRAL_NORMS)
    stochastic: bool = False  # Atari only: sticky actions (0.3) and up to 60 no-op starts
    reward_clip: bool = True  # Atari only: learn from rewards clipped to [-1, 1] (scores stay unclipped)
    episodic_life: bool = True  # Atari only: a lost life ends the learning episode (GAE's trace, V's bootstrap)
    anneal_lr: bool = True  # the learning rate falls linearly to 0 over the run; False: constant
    norm_adv: bool = True  # normalise the advantages per minibatch
    clip_value_loss: bool = (
        False  # clip the value loss as PPO clips the ratio (gymnax-blines' PPO; the paper's scripts do not)
    )
    conv: str = (
        "auto"  # convolutions as "lax" (cuDNN) or "patches" @ matrix; "auto": the platform's (algo.conv.AUTO_CONV)
    )
    target_kl: float = (
        0.0  # skip an iteration's remaining epochs once an epoch ends above this approximate KL (0: never)
    )
    torso_width: int = 256  # the policy/value torso's units (the family's default: vector 64, MinAtar 256, Atari 512)
    encoder_width: int = 16  # the encoder's width: vector MLP units (64), MinAtar conv channels (16) or frame-MLP units (256); Atari's is fixed
    encoder: str = "auto"  # "auto" (the family's first: MinAtar's trunk), or on MinAtar-sized images "conv" (the small trunk) or "mlp" (the flattened frame's); make_config turns "auto" into the preset's

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

    @property
    def early_stop(self) -> bool:
        """Whether the update carries the target-KL stop (static, so runs without one pay nothing)."""
        return self.target_kl > 0 and self.update_epochs > 1

    @property
    def gradient_penalty(self) -> bool:
        """Whether the loss carries DeepMDP's gradient penalty: a plain world model only."""
        return self.world_model and not self.lipschitz

    @property
    def transition_reduction(self) -> str:
        """How L_P reduces over latent entries, as `deep_spi.py` and `deep_mdp_ppo.py` do: the mean for the
        deterministic head, the sum for the sampled heads."""
        return "mean" if self.density == "deterministic" else "sum"


@dataclasses.dataclass(frozen=True)
class Preset:
    """Defaults of one (env family, algorithm): shape, budget, world model and hyperparameters, used where
    nothing overrides them."""

    num_envs: int
    num_steps: int
    num_minibatches: int
    update_epochs: int
    total_timesteps: int
    hparams: HParams
    density: str = "mixture"
    lipschitz: bool = True
    spectral_norm: str = "exact"
    encoder: str = "auto"  # what an "auto" encoder becomes: "auto" (the family's), or a named one
    anneal_lr: bool = True  # the paper's scripts anneal the learning rate linearly to 0
    clip_value_loss: bool = False  # ... and leave the value loss unclipped


# The optimiser shared by the paper's three scripts: lr 2.5e-4 annealed, clip 0.1, 4 epochs x 4
# minibatches, entropy 0.01, value 0.5, grad-norm 0.5, gamma 0.99, lambda 0.95; their gradient-penalty
# default 0.01 (which `deep_spi.py` drops with its Lipschitz networks).
_OPTIMISER = HParams(
    learning_rate=2.5e-4,
    clip_coef=0.1,
    ent_coef=0.01,
    vf_coef=0.5,
    gamma=0.99,
    gae_lambda=0.95,
    max_grad_norm=0.5,
    reward_coef=0.0,
    transition_coef=0.0,
    gradient_penalty=0.01,
)
# `deep_spi.py`: alpha_R 0.01, alpha_P 0.0005, inside the clipped objective.
DEEPSPI_HPARAMS = _OPTIMISER.replace(reward_coef=0.01, transition_coef=0.0005)
# `deep_mdp_ppo.py`: both coefficients 1.0, outside the clip, with the gradient penalty.
DEEPMDP_HPARAMS = _OPTIMISER.replace(reward_coef=1.0, transition_coef=1.0)
# CleanRL's PPO: no world model, so no coefficients.
PPO_HPARAMS = _OPTIMISER
# Kept for callers of the earlier name: Deep SPI's settings.
PAPER_HPARAMS = DEEPSPI_HPARAMS

# The three scripts' rollout shapes (one batch of 1,024 samples each) and world models.
_SHAPES = {"deepspi": (128, 8), "deepmdp": (64, 16), "ppo": (8, 128)}
_WORLD_MODELS = {  # density, lipschitz, spectral estimate
    "deepspi": ("mixture", True, "reference"),  # the paper's numbers were obtained with its own estimate
    "deepmdp": ("deterministic", False, "exact"),  # plain networks + gradient penalty
    "ppo": ("mixture", True, "reference"),  # none is used; Deep SPI's, for another algorithm under these settings
}
_HPARAMS = {"deepspi": DEEPSPI_HPARAMS, "deepmdp": DEEPMDP_HPARAMS, "ppo": PPO_HPARAMS}


def _family_presets(
    total_timesteps: int,
    optimiser: dict,
    deepspi_density: str | None = None,
    spectral_norm: str | None = None,
    shapes: Mapping[str, tuple[int, int]] = _SHAPES,
    world_models: Mapping[str, tuple] = _WORLD_MODELS,
    hparams: Mapping[str, HParams] = _HPARAMS,
    num_minibatches: int = 4,
    encoder: str = "auto",
    anneal_lr: bool = True,
    clip_value_loss: bool = False,
) -> dict[str, Preset]:
    """The three algorithms' presets for one env family: the scripts' relation (shapes, world models,
    coefficients) with the family's budget and optimiser overrides, held the same for all three."""
    presets = {}
    for algo in ALGOS:
        density, lipschitz, estimate = world_models[algo]
        if algo != "deepmdp":
            density = deepspi_density or density
            estimate = spectral_norm or estimate
        num_envs, num_steps = shapes[algo]
        presets[algo] = Preset(
            num_envs,
            num_steps,
            num_minibatches,
            4,
            total_timesteps,
            hparams[algo].replace(**optimiser),
            density,
            lipschitz,
            estimate,
            encoder,
            anneal_lr,
            clip_value_loss,
        )
    return presets


_FAMILY_PRESETS = {
    # Atari: each algorithm as its script runs it.
    "atari": _family_presets(10_000_000, {}),
    # The confounding gridworld, every rendering: only `deep_spi.py` has the env, so the paper's PPO there
    # is that script with both coefficients at 0, and DeepMDP its `--deep_mdp` switch: Deep SPI's shape
    # and world model for all three.
    "gridworld": _family_presets(
        262_144,
        {},
        shapes={a: _SHAPES["deepspi"] for a in ALGOS},
        world_models={a: _WORLD_MODELS["deepspi"] for a in ALGOS},
        hparams={**_HPARAMS, "deepmdp": DEEPSPI_HPARAMS},
    ),
    # MinAtar (gymnax and pgx), for real budgets: gymnax-blines' PPO recipe (64 envs x 128 steps, 8
    # minibatches x 4 epochs, a constant learning rate, gamma 0.999, clip 0.2 on the ratio and on the
    # value loss; its 2 x 256 MLP on the flattened frame as the encoder, whose 256 units are the world
    # model's latent) at lr 1e-3, its shipped ppo0.001 run's, for all three algorithms. On
    # Breakout-MinAtar at 10M env steps its PPO passes gymnax's published 28 in every seed, where lr
    # 5e-4 ends at their shipped log's 23 and our earlier 8 x 128 conv preset stalled near 11
    # (benchmarks/README.md, "MinAtar PPO against gymnax's published PPO"). The CPU smoke test (the
    # default job, the tests) passes its own budget. Deep SPI takes the deterministic head (at the
    # paper's alphas its world-model terms are a few ten-thousandths of the unit-variance advantage,
    # so pass reward_coef / transition_coef to make them count) and our exact spectral normalisation,
    # since no paper number is to be matched.
    "minatar": _family_presets(
        10_000_000,
        {"learning_rate": 1e-3, "clip_coef": 0.2, "gamma": 0.999},
        deepspi_density="deterministic",
        spectral_norm="exact",
        shapes={a: (64, 128) for a in ALGOS},
        num_minibatches=8,
        encoder="mlp",
        anneal_lr=False,
        clip_value_loss=True,
    ),
    # CartPole, Acrobot, ...: small MLP, many cheap updates, the same relation.
    "vector": _family_presets(150_000, {"learning_rate": 2.5e-3, "clip_coef": 0.2}, spectral_norm="exact"),
}
PRESETS: dict[tuple[str, str], Preset] = {
    (family, algo): preset for family, presets in _FAMILY_PRESETS.items() for algo, preset in presets.items()
}
PRESET_FIELDS = (
    "num_envs",
    "num_steps",
    "num_minibatches",
    "update_epochs",
    "total_timesteps",
    "density",
    "lipschitz",
    "spectral_norm",
    "encoder",
    "anneal_lr",
    "clip_value_loss",
)
ATARI_ONLY = ("stochastic", "reward_clip", "episodic_life")


def preset_name(env_id: str) -> str:
    """Which preset an env id takes: the gridworld's own, else its observation family's."""
    from purejaxspi.envs import family_of
    from purejaxspi.envs.confounding import CONFOUNDING_IDS

    return "gridworld" if env_id in CONFOUNDING_IDS else family_of(env_id)


def preset_of(env_id: str, settings: str = "deepspi") -> Preset:
    """The preset of (the env's family, `settings`): the defaults `settings`' script runs with."""
    if settings not in ALGOS:
        raise ConfigError(f"unknown settings {settings!r}; choose one of {', '.join(ALGOS)}", setting="settings")
    return PRESETS[(preset_name(env_id), settings)]


def make_config(env_id, algo: str = "deepspi", settings: str | None = None, **overrides) -> Config:
    """A validated Config for `env_id` (an id, or a pjs.EnvDef, which is registered under its id) and
    `algo`: the preset of (env family, `settings`), then `overrides` (Config fields). `settings` defaults to `algo`, so each algorithm runs as the paper ran
    it; another algorithm's name runs it under that one's settings (the same-settings ablation).

    Raises ConfigError (UnknownEnvError for an unknown env id) with one line.
    """
    from purejaxspi.algo.networks import ENCODER_CHOICES, ENCODERS, NETWORK_WIDTHS, default_encoder_width, encoder_of
    from purejaxspi.envs import env_id_of, family_of

    env_id = env_id_of(env_id)
    settable = {f.name for f in dataclasses.fields(Config)} - {"env_id", "algo", "settings"}
    unknown = sorted(set(overrides) - settable)
    if unknown:
        hint = " (hyperparameters go to hparam_values or make_grid)" if set(unknown) & set(HPARAM_NAMES) else ""
        raise ConfigError(f"unknown setting {unknown[0]!r}{hint}", setting=unknown[0])
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo {algo!r}; choose one of {', '.join(ALGOS)}", setting="algo")
    settings = algo if settings is None else settings
    preset = preset_of(env_id, settings)
    family = family_of(env_id)
    shape = {name: getattr(preset, name) for name in PRESET_FIELDS}
    encoder = overrides.get("encoder", "auto")
    if encoder == "auto":
        encoder = overrides["encoder"] = preset.encoder
    if encoder not in ENCODER_CHOICES:
        raise ConfigError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODER_CHOICES)}", setting="encoder")
    if encoder != "auto" and encoder not in ENCODERS[family]:
        raise ConfigError(
            f"encoder {encoder!r} does not apply to {env_id} ({family} observations); choose "
            f"auto or {', '.join(ENCODERS[family])}",
            setting="encoder",
        )
    shape.update(torso_width=NETWORK_WIDTHS[family][0], encoder_width=default_encoder_width(family, encoder))
    config = Config(env_id=env_id, algo=algo, settings=settings, **{**shape, **overrides})
    defaults = Config()
    for name in ATARI_ONLY:
        if family != "atari" and getattr(config, name) != getattr(defaults, name):
            raise ConfigError(f"{name} applies to Atari (envpool) envs only, not {env_id}", setting=name)
    if not (math.isfinite(config.target_kl) and config.target_kl >= 0):
        raise ConfigError(f"target_kl must be finite and non-negative, got {config.target_kl}", setting="target_kl")
    if encoder_of(family, config.encoder) == "conv" and config.encoder_width % 4:
        raise ConfigError(
            f"encoder_width must be a multiple of 4 (the transition network's feature groups), "
            f"got {config.encoder_width}",
            setting="encoder_width",
        )
    if family == "atari" and config.encoder_width != NETWORK_WIDTHS[family][1]:
        raise ConfigError(
            f"encoder_width: the Nature CNN's is fixed ({NETWORK_WIDTHS[family][1]} channels)", setting="encoder_width"
        )
    validate_config(config)
    return config


def preset_hparams(env_id: str, settings: str = "deepspi") -> HParams:
    """The hyperparameters of the preset of (`env_id`'s family, `settings`)."""
    return preset_of(env_id, settings).hparams


def hparam_values(config: Config | str, **values: float | Sequence[float]) -> dict[str, list[float]]:
    """Every hyperparameter's list of values, validated: those given (a number or several), the
    preset's for the rest (the preset of `config`'s env and settings; an env id alone takes Deep SPI's).
    Their product times the seeds is a grid of runs (`scale.grid`)."""
    unknown = sorted(set(values) - set(HPARAM_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter {unknown[0]!r}; choose from {', '.join(HPARAM_NAMES)}", setting=unknown[0]
        )
    base = preset_hparams(config) if isinstance(config, str) else preset_hparams(config.env_id, config.settings)
    grid = {}
    for name in HPARAM_NAMES:
        given = values.get(name)
        if given is None:
            grid[name] = [float(getattr(base, name))]
        else:
            grid[name] = [float(v) for v in given] if isinstance(given, Sequence) else [float(given)]
    validate_hparams(grid)
    return grid


def preset_table() -> list[dict]:
    """One row per (env family, algorithm): the preset's shape, world model and hyperparameters."""
    rows = []
    for (family, algo), p in PRESETS.items():
        row = {"family": family, "algo": algo, **{name: getattr(p, name) for name in PRESET_FIELDS}}
        rows.append({**row, **p.hparams.as_dict()})
    return rows


def validate_config(config: Config) -> None:
    """Raise ConfigError for impossible shapes or unknown choices."""
    from purejaxspi.algo.conv import CONV_IMPLS
    from purejaxspi.algo.lipschitz import SPECTRAL_NORMS
    from purejaxspi.algo.networks import DENSITIES, ENCODER_CHOICES

    choices = {
        "algo": ALGOS,
        "settings": ALGOS,
        "density": DENSITIES,
        "spectral_norm": SPECTRAL_NORMS,
        "conv": CONV_IMPLS,
        "encoder": ENCODER_CHOICES,
    }
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(
                f"unknown {name} {getattr(config, name)!r}; choose one of {', '.join(allowed)}", setting=name
            )
    for name in (
        "num_envs",
        "num_steps",
        "num_minibatches",
        "update_epochs",
        "total_timesteps",
        "num_components",
        "torso_width",
        "encoder_width",
    ):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}", setting=name)
    if config.batch_size % config.num_minibatches:
        raise ConfigError(
            f"batch num_envs*num_steps = {config.batch_size} is not divisible by num_minibatches "
            f"{config.num_minibatches}",
            setting="num_minibatches",
        )
    if config.world_model and not config.lipschitz and config.density != "deterministic":
        raise ConfigError(
            f"the plain world model (lipschitz off, deep_mdp_ppo.py's networks) has the deterministic head only, "
            f"not {config.density!r}",
            setting="density",
        )
    if config.total_timesteps < config.batch_size:
        raise ConfigError(
            f"total_timesteps {config.total_timesteps} is less than one iteration "
            f"(num_envs*num_steps = {config.batch_size})",
            setting="total_timesteps",
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
