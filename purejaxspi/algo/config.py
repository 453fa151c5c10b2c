"""The config tree (static: changes the program), HParams (per-run floats a grid may vary) and the presets.

Each part of the tree is declared by the module that reads it: the env (envs.config), the network
(algo.networks), the world model, or none for PPO (algo.world_model), PPO's update (algo.ppo) and the
run's budget (here). HParams is generated from the hyperparameters declared beside those parts.

A preset belongs to an (env family, algorithm) pair, because the paper ran its three algorithms with
three scripts and three settings: Deep SPI with `deep_spi.py`, DeepMDP with `deep_mdp_ppo.py`, PPO with
CleanRL's `ppo_atari_envpool_xla_jax_scan.py`. `make_config` applies the preset of `settings` (by
default the algorithm's own) and `hparam_values` its hyperparameters, for the library and the command
line alike; running one algorithm under another's settings (`settings="deepspi"` for all three) is
the one-switch ablation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxspi.algo import ppo, world_model
from purejaxspi.algo.networks import ENCODER_CHOICES, NetworkConfig, network_for
from purejaxspi.algo.world_model import WorldModelConfig
from purejaxspi.envs.config import EnvConfig
from purejaxspi.errors import ConfigError
from purejaxspi.settings import Hyperparameter, check_part, check_value, fields_of, leaves, setting, title_of

ALGOS = ("deepspi", "deepmdp", "ppo")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    total_timesteps: int = setting(10_000_000, "Env steps per run.", bound="positive", title="budget")


# The parts of the tree, in the order config.json, the flags and the presets table list them.
PARTS = {
    "env": EnvConfig,
    "ppo": ppo.PPOConfig,
    "network": NetworkConfig,
    "world_model": WorldModelConfig,
    "run": RunConfig,
}
HYPERPARAMETERS: tuple[Hyperparameter, ...] = ppo.HYPERPARAMETERS + world_model.HYPERPARAMETERS


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that fixes shapes or the program; changing any setting recompiles.

    Build it with `make_config`, which applies the preset of (env family, settings). `world_model` is
    None for PPO. The defaults are each setting's declared default, with the paper's scripts' conventions
    (the learning rate annealed, the value loss unclipped): a base that every preset overrides in part and
    none equals, and what a record written before a setting existed ran with.
    """

    algo: str = "deepspi"
    settings: str = "deepspi"  # whose preset gave the defaults: the algorithm's own, or another's (ablation)
    env: EnvConfig = EnvConfig()
    ppo: ppo.PPOConfig = ppo.PPOConfig()
    network: NetworkConfig = NetworkConfig()
    world_model: WorldModelConfig | None = WorldModelConfig()
    run: RunConfig = RunConfig()

    @property
    def env_id(self) -> str:
        return self.env.env_id

    @property
    def batch_size(self) -> int:
        return self.env.num_envs * self.ppo.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.ppo.num_minibatches

    @property
    def num_iterations(self) -> int:
        return max(1, self.run.total_timesteps // self.batch_size)

    def parts(self) -> dict[str, Any]:
        """The parts present ({name: part}); PPO's has no world model."""
        return {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}

    def flat(self) -> dict[str, Any]:
        """Every setting by its (unique) name: what config.json records and the resume check compares."""
        flat: dict[str, Any] = {"algo": self.algo, "settings": self.settings}
        for part in self.parts().values():
            flat.update(leaves(part))
        return flat

    @classmethod
    def of(cls, **flat: Any) -> Config:
        """A Config from settings by name (the form of `flat()` and of config.json); unnamed settings
        take their declared defaults, names of no setting are ignored (a record's removed settings)."""
        algo = flat.get("algo", cls.algo)
        parts = _parts_of(flat)
        if algo not in world_model.PLACEMENTS:
            parts["world_model"] = None
        return cls(algo=algo, settings=flat.get("settings", algo), **parts)


def _parts_of(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Every part of the tree, from the settings `flat` names and the rest's defaults."""
    return {
        name: part(**{f.name: flat[f.name] for f in fields_of(part) if f.name in flat}) for name, part in PARTS.items()
    }


SETTING_NAMES = tuple(f.name for part in PARTS.values() for f in fields_of(part))


def _hparams_class():
    """HParams, generated from HYPERPARAMETERS: one float per run, a pytree mapped along the run axis.

    Beside them, `anneal_step`: the learning rate's linear anneal per iteration (1 / num_iterations) as a
    value of the program's input, so that one compiled program serves every budget (`anneal_over`);
    None, as `stack` leaves it, anneals over the config's run length, a constant of the program."""

    def as_dict(self) -> dict[str, float]:
        return {h.name: getattr(self, h.name) for h in HYPERPARAMETERS}

    def stack(settings: list) -> Any:
        """Stack per-run settings into one HParams of float32 arrays [R]."""
        return HParams(
            **{h.name: jnp.asarray([float(getattr(s, h.name)) for s in settings], jnp.float32) for h in HYPERPARAMETERS}
        )

    def anneal_over(self, num_iterations: int) -> Any:
        """These hyperparameters with the anneal's step for a run of `num_iterations`, one per run."""
        step = np.float32(1) / np.float32(num_iterations)
        return self.replace(anneal_step=jnp.full(jnp.shape(self.learning_rate), step, jnp.float32))

    namespace = {
        "__annotations__": {**{h.name: float for h in HYPERPARAMETERS}, "anneal_step": Any},
        **{h.name: struct.field(default=h.default, metadata={"help": h.help}) for h in HYPERPARAMETERS},
        "anneal_step": struct.field(default=None),
        "__module__": __name__,
        "__doc__": _hparams_class.__doc__,
        "as_dict": as_dict,
        "stack": staticmethod(stack),
        "anneal_over": anneal_over,
    }
    cls = type("HParams", (), namespace)
    return struct.dataclass(cls)


if TYPE_CHECKING:
    HParams = Any
else:
    HParams = _hparams_class()
HPARAM_NAMES = tuple(h.name for h in HYPERPARAMETERS)


class Preset(NamedTuple):
    """The defaults of one (env family, settings): a value of the tree (with the settings' world model,
    which an algorithm without one drops) and the hyperparameters."""

    config: Config
    hparams: Any


# `deep_spi.py`: alpha_R 0.01, alpha_P 0.0005, inside the clipped objective. `deep_mdp_ppo.py`: both
# coefficients 1.0, outside the clip, with the gradient penalty. CleanRL's PPO: no world model.
_COEFFICIENTS = {
    "deepspi": dict(reward_coef=0.01, transition_coef=0.0005),
    "deepmdp": dict(reward_coef=1.0, transition_coef=1.0),
    "ppo": {},
}
# The three scripts' rollout shapes (one batch of 1,024 samples each) and world models.
_SHAPES = {"deepspi": (128, 8), "deepmdp": (64, 16), "ppo": (8, 128)}
_WORLD_MODELS = {
    # the paper's numbers were obtained with its own spectral estimate
    "deepspi": dict(density="mixture", lipschitz=True, spectral_norm="reference"),
    # plain networks + gradient penalty
    "deepmdp": dict(density="deterministic", lipschitz=False, spectral_norm="exact"),
    # none is used; Deep SPI's, for another algorithm under these settings
    "ppo": dict(density="mixture", lipschitz=True, spectral_norm="reference"),
}
# The family whose network widths a preset table row shows (the gridworld's compact frames are MinAtar's).
_WIDTHS_OF = {"atari": "atari", "gridworld": "minatar", "minatar": "minatar", "vector": "vector"}


def _family_presets(
    family: str,
    total_timesteps: int,
    optimiser: Mapping | None = None,
    shapes: Mapping[str, tuple[int, int]] = _SHAPES,
    world_models: Mapping[str, Mapping] = _WORLD_MODELS,
    coefficients: Mapping[str, Mapping] = _COEFFICIENTS,
    **shared: Any,
) -> dict[str, Preset]:
    """The three algorithms' presets for one env family: the scripts' relation (shapes, world models,
    coefficients) with the family's budget, optimiser and `shared` settings, held the same for all three.
    `deepspi_world_model` overrides the world model of Deep SPI's and PPO's settings."""
    deepspi_world_model = shared.pop("deepspi_world_model", {})
    presets = {}
    for algo in ALGOS:
        num_envs, num_steps = shapes[algo]
        wm = {**world_models[algo], **(deepspi_world_model if algo != "deepmdp" else {})}
        static = dict(num_envs=num_envs, num_steps=num_steps, num_minibatches=4, update_epochs=4, **wm)
        static.update(total_timesteps=total_timesteps, **shared)
        encoder = static.pop("encoder", "auto")
        network = network_for(_WIDTHS_OF[family], encoder)
        config = Config(algo=algo, settings=algo, **_parts_of({**static, **dataclasses.asdict(network)}))
        hparams = HParams(**{**coefficients[algo], **(optimiser or {})})  # the declared defaults for the rest
        presets[algo] = Preset(config, hparams)
    return presets


_FAMILY_PRESETS = {
    # Atari: each algorithm as its script runs it.
    "atari": _family_presets("atari", 10_000_000),
    # The confounding gridworld, every rendering: only `deep_spi.py` has the env, so the paper's PPO there
    # is that script with both coefficients at 0, and DeepMDP its `--deep_mdp` switch: Deep SPI's shape
    # and world model for all three.
    "gridworld": _family_presets(
        "gridworld",
        262_144,
        shapes={a: _SHAPES["deepspi"] for a in ALGOS},
        world_models={a: _WORLD_MODELS["deepspi"] for a in ALGOS},
        coefficients={**_COEFFICIENTS, "deepmdp": _COEFFICIENTS["deepspi"]},
    ),
    # MinAtar (gymnax and pgx), for real budgets: gymnax-blines' PPO recipe (64 envs x 128 steps, 8
    # minibatches x 4 epochs, a constant learning rate, gamma 0.999, clip 0.2 on the ratio and on the
    # value loss; its 2 x 256 MLP on the flattened frame as the encoder, whose 256 units are the world
    # model's latent) at lr 1e-3, its shipped ppo0.001 run's, for all three algorithms
    # (benchmarks/README.md, "MinAtar PPO against gymnax's published PPO"). The CPU smoke test (the
    # default job, the tests) passes its own budget. Deep SPI takes the deterministic head (at the
    # paper's alphas its world-model terms are a few ten-thousandths of the unit-variance advantage,
    # so pass reward_coef / transition_coef to make them count) and our exact spectral normalisation,
    # since no paper number is to be matched.
    "minatar": _family_presets(
        "minatar",
        10_000_000,
        {"learning_rate": 1e-3, "clip_coef": 0.2, "gamma": 0.999},
        shapes={a: (64, 128) for a in ALGOS},
        deepspi_world_model=dict(density="deterministic", spectral_norm="exact"),
        num_minibatches=8,
        encoder="mlp",
        anneal_lr=False,
        clip_value_loss=True,
    ),
    # CartPole, Acrobot, ...: small MLP, many cheap updates, the same relation.
    "vector": _family_presets(
        "vector",
        150_000,
        {"learning_rate": 2.5e-3, "clip_coef": 0.2},
        deepspi_world_model=dict(spectral_norm="exact"),
    ),
}
PRESETS: dict[tuple[str, str], Preset] = {
    (family, algo): preset for family, presets in _FAMILY_PRESETS.items() for algo, preset in presets.items()
}


# The smoke budget, the command line's default: the preset on a budget that 16 seeds train in about a
# minute on a 2-core CPU; the presets themselves are sized for real runs (hours there).
SMOKE_TEST = {"total_timesteps": 24_576, "num_envs": 32, "num_steps": 32}
BUDGETS = ("smoke", "preset")


def budget_settings(budget: str | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with the budget's: "smoke" (the default) fills SMOKE_TEST's settings left unset,
    "preset" keeps the preset's; an explicit total_timesteps is the budget itself (with the preset's
    batch shape) and excludes a named one."""
    if budget is not None and budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}", setting="budget")
    if "total_timesteps" in settings:
        if budget is not None:
            raise ConfigError(
                "budget and --total-timesteps both set how long each run trains; give one", setting="budget"
            )
        return dict(settings)
    if budget == "preset":
        return dict(settings)
    return {**SMOKE_TEST, **settings}


def default_text(name: str) -> str:
    """A setting's default as `train` applies it, in words: the smoke budget's value for the settings it
    sets, each preset's otherwise (and under --budget preset; the batch shape under --total-timesteps too)."""
    if name not in SMOKE_TEST:
        return preset_defaults(name)
    also = "" if name == "total_timesteps" else " or --total-timesteps"
    return f"{SMOKE_TEST[name]:,} (the smoke budget); with --budget preset{also}: {preset_defaults(name)}"


def budget_name(budget: str | None, settings: Mapping[str, Any], preset_steps: int) -> str:
    """Where a run's budget came from, in words (the line printed before it trains)."""
    if "total_timesteps" in settings:
        return "--total-timesteps"
    if budget == "preset":
        return "the preset's budget"
    return f"the smoke budget; `--budget preset` trains the preset's {preset_steps:,}"


def preset_name(env_id: str) -> str:
    """Which preset an env id takes: the gridworld's own, else its observation family's."""
    from purejaxspi.envs import family_of
    from purejaxspi.envs.confounding import CONFOUNDING_IDS

    return "gridworld" if env_id in CONFOUNDING_IDS else family_of(env_id)


def preset_of(env_id: str, settings: str = "deepspi") -> Preset:
    """The preset of (the env's family, `settings`): the defaults `settings`' script runs with."""
    check_value("settings", settings, None, ALGOS)
    return PRESETS[(preset_name(env_id), settings)]


def make_config(env_id, algo: str = "deepspi", settings: str | None = None, **overrides) -> Config:
    """A validated Config for `env_id` (an id, or a pjs.EnvDef, which is registered under its id) and
    `algo`: the preset of (env family, `settings`), then `overrides` (settings by name). `settings`
    defaults to `algo`, so each algorithm runs as the paper ran it; another algorithm's name runs it
    under that one's settings (the same-settings ablation). An algorithm without a world model (PPO)
    checks the world model's settings and ignores them, so one command line serves all three.

    Raises ConfigError (UnknownEnvError for an unknown env id) with one line.
    """
    from purejaxspi.envs import env_id_of, family_of

    env_id = env_id_of(env_id)
    unknown = sorted(set(overrides) - (set(SETTING_NAMES) - {"env_id"}))
    if unknown:
        hint = " (hyperparameters go to hparam_values or make_grid)" if set(unknown) & set(HPARAM_NAMES) else ""
        raise ConfigError(f"unknown setting {unknown[0]!r}{hint}", setting=unknown[0])
    check_value("algo", algo, None, ALGOS)
    settings = algo if settings is None else settings
    preset, family = preset_of(env_id, settings), family_of(env_id)
    if algo not in world_model.PLACEMENTS:  # checked, then dropped: one command line serves all three
        given = {k: v for k, v in overrides.items() if k in {f.name for f in fields_of(WorldModelConfig)}}
        check_part(WorldModelConfig(**given))
        overrides = applicable(algo, overrides)
    flat = {**preset.config.flat(), "env_id": env_id}
    encoder = overrides.get("encoder", "auto")
    if encoder == "auto":
        encoder = preset.config.network.encoder
    widths = {name: overrides[name] for name in ("torso_width", "encoder_width") if name in overrides}
    check_value("encoder", encoder, None, ENCODER_CHOICES)
    flat.update(dataclasses.asdict(network_for(family, encoder, **widths)))
    flat.update({k: v for k, v in overrides.items() if k not in ("encoder", "torso_width", "encoder_width")})
    config = Config.of(**{**flat, "algo": algo, "settings": settings})
    validate_config(config, family)
    return config


def applicable(algo: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` without the settings of parts `algo` has none of (the world model's for PPO)."""
    absent = set() if algo in world_model.PLACEMENTS else {f.name for f in fields_of(WorldModelConfig)}
    return {name: value for name, value in overrides.items() if name not in absent}


def validate_config(config: Config, family: str | None = None) -> None:
    """Raise ConfigError for unknown choices, values out of their bounds, or impossible shapes; with the
    env's `family`, for settings that do not apply to it."""
    check_value("algo", config.algo, None, ALGOS)
    check_value("settings", config.settings, None, ALGOS)
    for part in config.parts().values():
        check_part(part, family, config.env_id)
    if family is not None:
        config.network.check(family, config.env_id)
    if config.world_model is not None:
        config.world_model.check()
    if config.batch_size % config.ppo.num_minibatches:
        raise ConfigError(
            f"batch num_envs*num_steps = {config.batch_size} is not divisible by num_minibatches "
            f"{config.ppo.num_minibatches}",
            setting="num_minibatches",
        )
    if config.run.total_timesteps < config.batch_size:
        raise ConfigError(
            f"total_timesteps {config.run.total_timesteps} is less than one iteration "
            f"(num_envs*num_steps = {config.batch_size})",
            setting="total_timesteps",
        )


def preset_hparams(env_id: str, settings: str = "deepspi") -> Any:
    """The hyperparameters of the preset of (`env_id`'s family, `settings`)."""
    return preset_of(env_id, settings).hparams


def hparam_values(config: Config | str, **values: float | Sequence[float] | None) -> dict[str, list[float]]:
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


def validate_hparams(values: Mapping[str, Sequence[float]]) -> None:
    """Raise ConfigError for empty lists or values outside their declared bounds."""
    bounds = {h.name: h.bound for h in HYPERPARAMETERS}
    for name, given in values.items():
        if not given:
            raise ConfigError(f"{name} needs at least one value", setting=name)
        for value in given:
            check_value(name, value, bounds[name])


def preset_table() -> list[dict]:
    """One row per (env family, algorithm): every setting of its preset (the world model's too) and its
    hyperparameters."""
    rows = []
    for (family, algo), preset in PRESETS.items():
        flat = {k: v for k, v in preset.config.flat().items() if k not in ("algo", "settings", "env_id")}
        rows.append({"family": family, "algo": algo, **flat, **preset.hparams.as_dict()})
    return rows


def preset_defaults(name: str) -> str:
    """What the presets set a setting or hyperparameter to, as text: one value, or each (env family,
    algorithm)'s."""

    def show(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    shown = {key: show({**p.config.flat(), **p.hparams.as_dict()}[name]) for key, p in PRESETS.items()}
    if len(set(shown.values())) == 1:
        return f"{next(iter(shown.values()))} for every env and algorithm"
    parts = []
    for family in dict.fromkeys(family for family, _ in PRESETS):
        per_algo = {algo: value for (f, algo), value in shown.items() if f == family}
        if len(set(per_algo.values())) == 1:
            parts.append(f"{family} {next(iter(per_algo.values()))}")
        else:
            parts.append(f"{family} " + ", ".join(f"{value} ({algo})" for algo, value in per_algo.items()))
    return "; ".join(parts)


def titles() -> dict[str, str]:
    """Every setting's and hyperparameter's short title (its presets-table column)."""
    found = {f.name: title_of(f) for part in PARTS.values() for f in fields_of(part)}
    return {**found, **{h.name: h.title or h.name for h in HYPERPARAMETERS}}
