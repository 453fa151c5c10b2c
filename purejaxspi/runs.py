"""The grid of runs: every combination of hyperparameter values x seeds, flattened to one run axis."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp

from purejaxspi.config import HPARAM_NAMES, HParams


@dataclasses.dataclass(frozen=True)
class Run:
    index: int
    seed: int
    hparams: HParams  # plain floats


@dataclasses.dataclass(frozen=True)
class RunGrid:
    """R runs: run r = setting (r // num_seeds) with seed first_seed + (r % num_seeds)."""

    runs: tuple[Run, ...]

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
        return tuple(
            n for n in HPARAM_NAMES if len({getattr(r.hparams, n) for r in self.runs}) > 1
        )


def make_grid(values: dict[str, list[float]], first_seed: int, num_seeds: int) -> RunGrid:
    """Cartesian product of the per-hyperparameter value lists (in HPARAM_NAMES order) x seeds."""
    lists = [list(values[n]) for n in HPARAM_NAMES]
    runs = []
    for setting in itertools.product(*lists):
        hp = HParams(**dict(zip(HPARAM_NAMES, (float(v) for v in setting))))
        for s in range(num_seeds):
            runs.append(Run(len(runs), first_seed + s, hp))
    return RunGrid(tuple(runs))
