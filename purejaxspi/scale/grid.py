"""The grid of runs: every combination of hyperparameter values x seeds, flattened to one run axis."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from purejaxspi.algo.config import HPARAM_NAMES, Config, HParams, hparam_values
from purejaxspi.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Run:
    index: int
    seed: int
    hparams: HParams  # plain floats


@dataclasses.dataclass(frozen=True)
class RunGrid:
    """R runs: run r = setting (r // num_seeds) with seed first_seed + (r % num_seeds).

    `values` holds every hyperparameter's list of values, whose product the settings are (None for a
    hand-picked selection of runs, which can be evaluated but not recorded as a training run).
    """

    runs: tuple[Run, ...]
    values: dict[str, list[float]] | None = None
    first_seed: int = 0
    num_seeds: int = 1

    @property
    def size(self) -> int:
        return len(self.runs)

    def keys(self) -> jax.Array:
        """One PRNG key per run, from its seed alone, so a run is the same in any grid."""
        return jax.vmap(jax.random.PRNGKey)(jnp.asarray([r.seed for r in self.runs], jnp.uint32))

    def hparams(self) -> HParams:
        return HParams.stack([r.hparams for r in self.runs])

    def varied(self) -> tuple[str, ...]:
        """Names of hyperparameters that take more than one value in the grid."""
        return tuple(n for n in HPARAM_NAMES if len({getattr(r.hparams, n) for r in self.runs}) > 1)


def grid_from_values(values: dict[str, list[float]], first_seed: int = 0, num_seeds: int = 1) -> RunGrid:
    """Cartesian product of every hyperparameter's value list (in HPARAM_NAMES order) x seeds."""
    missing = [n for n in HPARAM_NAMES if n not in values]
    if missing:
        raise ConfigError(
            f"no values for {', '.join(missing)}; hparam_values() fills them from the preset", setting=missing[0]
        )
    if num_seeds <= 0:
        raise ConfigError(f"num_seeds must be positive, got {num_seeds}", setting="num_seeds")
    if first_seed < 0:
        raise ConfigError(f"seed must be non-negative, got {first_seed}", setting="seed")
    lists = [list(values[n]) for n in HPARAM_NAMES]
    runs: list[Run] = []
    for setting in itertools.product(*lists):
        hp = HParams(**dict(zip(HPARAM_NAMES, (float(v) for v in setting))))
        for s in range(num_seeds):
            runs.append(Run(len(runs), first_seed + s, hp))
    return RunGrid(tuple(runs), {n: list(values[n]) for n in HPARAM_NAMES}, first_seed, num_seeds)


def make_grid(config: Config, num_seeds: int = 1, first_seed: int = 0, **values: float | Sequence[float]) -> RunGrid:
    """The runs of `config`: seeds first_seed .. first_seed + num_seeds - 1 times every combination of the
    hyperparameter values given (a number or several each); the rest take the env's preset values."""
    return grid_from_values(hparam_values(config, **values), first_seed, num_seeds)
