"""The model's work per env step: FLOPs of one training iteration, read from XLA's cost analysis.

A scanned loop's body is counted once by XLA, so the iteration is costed piece by piece outside its
loops (`train.IterationPieces`): one acting step (times num_steps), the V(s') pass and GAE (once;
GAE's scan body counts once, a few elementwise ops against a network pass), one minibatch gradient
with its Adam step (times epochs x minibatches). The env's own step is not counted: these are the
model's FLOPs, the same on every backend, so a time ratio can be read against a work ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from purejaxspi.algo.train import RunProgram


def piece_flops(fn: Callable, *args: Any) -> float:
    """FLOPs XLA counts for one call of `fn` on (abstract) `args`: the cost analysis of the lowered
    module (no compilation; the backend's compiled analysis where the lowered one reports none)."""
    lowered = jax.jit(fn).lower(*args)
    analysis = _flops_of(lowered.cost_analysis())
    return analysis if analysis is not None else _flops_of(lowered.compile().cost_analysis()) or float("nan")


def _flops_of(analysis) -> float | None:
    if isinstance(analysis, (list, tuple)):  # older jaxlibs: one dict per computation
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return None if flops is None else float(flops)


def iteration_flops(program: RunProgram, hp: Any) -> dict[str, float]:
    """{piece: FLOPs per iteration of one run (cost x count)}, plus "total" and "per_env_step".

    `hp` is one run's HParams (scalars). Nothing runs: states and rollouts are abstract shapes.
    """
    pieces = program.pieces
    state = jax.eval_shape(program.init, jax.random.PRNGKey(0), hp)
    _, traj = jax.eval_shape(pieces.rollout, state)
    adv, returns = jax.eval_shape(pieces.advantages, state, traj, hp)
    costs = {
        "act": piece_flops(pieces.act, state),
        "advantages": piece_flops(pieces.advantages, state, traj, hp),
        "gradient_step": piece_flops(pieces.gradient_step, state, traj, adv, returns, hp),
    }
    flops = {name: cost * pieces.counts[name] for name, cost in costs.items()}
    flops["total"] = sum(flops.values())
    flops["per_env_step"] = flops["total"] / program.config.batch_size
    return flops
