"""The trained agents of a run directory, in plain JAX: every run's parameters, its policy, its evaluation.

`train` returns summary.json's numbers; this is how a user gets the agents themselves back (the
newest checkpoint, which `train` always writes after its last chunk).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from purejaxspi.algo.config import Config
from purejaxspi.algo.networks import Agent
from purejaxspi.algo.train import act
from purejaxspi.scale.grid import RunGrid


@dataclasses.dataclass(frozen=True)
class TrainedAgents:
    """The R runs of one run directory: `params` and `spectral` carry a leading run axis [R, ...]."""

    run_dir: Path
    config: Config
    grid: RunGrid
    params: Any
    spectral: Any
    iteration: int  # training iterations done at the checkpoint
    network: Agent  # the flax module: `network.apply(agents.variables(i), obs)` -> (logits, value)

    def variables(self, run: int) -> dict:
        """Run `run`'s flax variables (no run axis)."""

        def pick(tree):
            return jax.tree.map(lambda x: x[run], tree)

        return {"params": pick(self.params), "spectral": pick(self.spectral)}

    def policy(self, run: int = 0, greedy: bool = False) -> Callable[..., jax.Array]:
        """Run `run`'s policy as a pure function: `policy(obs [N, *obs], key, action_mask=None) -> action [N]`
        (sampled, or the most probable action with `greedy`); jit it as you like."""
        if not 0 <= run < self.grid.size:
            from purejaxspi.errors import EvalError

            raise EvalError(f"run {run} is not in this grid of {self.grid.size} runs")
        variables = self.variables(run)

        def policy(obs, key, action_mask=None):
            mask = jnp.ones((obs.shape[0], self.network.num_actions), bool) if action_mask is None else action_mask
            return act(self.network, variables, obs, mask, key, greedy)[0]

        return policy

    def evaluate(self, episodes: int = 32, greedy: bool = False, max_steps: int = 27_000, seed: int = 0) -> dict:
        """Play `episodes` episodes with every run's policy (all runs in one program); returns what
        `purejaxspi eval` writes to eval.json, without writing it."""
        from purejaxspi.lifecycle.evaluate import LoadedRun, evaluate

        run = LoadedRun(
            self.run_dir, (), self.config, self.grid, {}, self.params, self.spectral, self.iteration, self.run_dir
        )
        return evaluate(run, episodes, greedy, max_steps, seed, write=False)


def load_agents(run_dir: str | Path) -> TrainedAgents:
    """The agents of a `train` output directory, from its newest checkpoint. Raises EvalError (a
    UserError) when the directory holds no run or no checkpoint."""
    from purejaxspi.envs import env_for
    from purejaxspi.lifecycle.evaluate import load_run
    from purejaxspi.scale.mapping import make_trainer

    run = load_run(Path(run_dir))
    network = make_trainer(run.config, env_for(run.config.env, 1, tuple(r.seed for r in run.grid.runs))).agent
    return TrainedAgents(run.run_dir, run.config, run.grid, run.params, run.spectral, run.iteration, network)
