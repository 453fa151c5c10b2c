"""Short runs of every family x algorithm, recorded as a golden file that the code must keep reproducing.

`uv run python tests/golden.py` rewrites tests/data/golden.json; tests/test_golden.py reruns every case
and compares each metric of each iteration of each run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

GOLDEN = Path(__file__).parent / "data" / "golden.json"
ITERATIONS = 2
SMALL = dict(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=2, total_timesteps=64)

# (name, env id, algo, Config overrides, hyperparameter values, seeds, run mapping)
CASES = [
    ("vector-deepspi", "CartPole-v1", "deepspi", {}, {}, 1, "vmap"),
    ("vector-deepmdp", "CartPole-v1", "deepmdp", {}, {}, 1, "vmap"),
    ("vector-ppo", "CartPole-v1", "ppo", {}, {}, 1, "vmap"),
    ("vector-mixture", "CartPole-v1", "deepspi", {"density": "mixture"}, {}, 1, "vmap"),
    ("minatar-mlp-deepspi", "Breakout-MinAtar", "deepspi", {"encoder": "mlp"}, {}, 1, "vmap"),
    ("minatar-mlp-deepmdp", "Breakout-MinAtar", "deepmdp", {"encoder": "mlp"}, {}, 1, "vmap"),
    ("minatar-mlp-ppo", "Breakout-MinAtar", "ppo", {"encoder": "mlp", "clip_value_loss": True}, {}, 1, "vmap"),
    (
        "minatar-conv-deepspi-mixture",
        "Breakout-MinAtar",
        "deepspi",
        {"encoder": "conv", "density": "mixture", "spectral_norm": "reference"},
        {},
        1,
        "vmap",
    ),
    ("minatar-conv-deepmdp", "Breakout-MinAtar", "deepmdp", {"encoder": "conv"}, {}, 1, "vmap"),
    (
        "minatar-conv-normal-kl",
        "Breakout-MinAtar",
        "deepspi",
        {"encoder": "conv", "density": "normal", "target_kl": 0.001, "anneal_lr": True},
        {},
        1,
        "vmap",
    ),
    ("pgx-deepspi", "pgx/minatar-breakout", "deepspi", {}, {}, 1, "vmap"),
    ("gridworld-deepspi", "ConfoundingGrid-v0", "deepspi", {}, {}, 1, "vmap"),
    ("gridworld-ppo", "ConfoundingGrid-v0", "ppo", {}, {}, 1, "vmap"),
    ("atari-deepspi", "Breakout-v5", "deepspi", {}, {}, 1, "vmap"),
    ("atari-ppo", "Breakout-v5", "ppo", {"stochastic": True}, {}, 1, "vmap"),
    (
        "grid-vector-deepspi",
        "CartPole-v1",
        "deepspi",
        {},
        {"learning_rate": [2.5e-3, 1e-3], "reward_coef": [0.01, 1.0]},
        2,
        "vmap",
    ),
]


def run_case(env_id, algo, overrides, values, num_seeds, mapping) -> dict[str, list]:
    """Every metric of every run and iteration [R][T] of one short run of the case."""
    from purejaxspi import make_config, make_env, make_grid, make_trainer

    config = make_config(env_id, algo, **{**SMALL, **overrides})
    trainer = make_trainer(config, make_env(env_id, SMALL["num_envs"]), mapping)
    grid = make_grid(config, num_seeds=num_seeds, **values)
    hparams = grid.hparams().anneal_over(config.num_iterations)  # as `train` gives them
    state = jax.jit(trainer.init)(grid.keys(), hparams)
    # through the one loop `train` runs, its count traced
    steps = jax.jit(trainer.steps, static_argnums=3)
    _, metrics = steps(state, hparams, np.int32(ITERATIONS), ITERATIONS)
    return {name: np.asarray(value, np.float64).tolist() for name, value in sorted(metrics.items())}


def record(names: list[str]) -> None:
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    for name, *case in CASES:
        if names and name not in names:
            continue
        print(name, flush=True)
        golden[name] = run_case(*case)
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    record(sys.argv[1:])
