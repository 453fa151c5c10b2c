"""What each of the world model's computational choices saves: Deep SPI's training program with the
package's choice against its alternative, compiled side by side and timed interleaved in one process,
with the FLOPs XLA counts for each (what a GPU pays for).

- `last layer`: the transition network's last layer read at the taken action only (its kernel contracted
  with the one-hot action first, `world_model.taken_action_patches_matmul`) against every action's
  output computed and the taken one indexed, as the paper's network computes it;
- `noise`: JAX's generator, clip(N(0, 1), -1, 1) as the paper draws it (`world_model.clipped_normal`),
  against a counter hash with an inverse-CDF polynomial (cheaper per number on a CPU than Threefry).

A choice stays in the package where it saves at least 15% of the time or of the FLOPs. Run it on an
otherwise idle machine:

    uv run python benchmarks/world_model_choices.py     # writes benchmarks/results/world_model_choices.json
    uv run python benchmarks/world_model_choices.py --envs CartPole-v1 --choices noise --num-runs 16 --iterations 10

Each row is kept in the record, with what made it, until a run measures the same (env, choice, runs).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import purejaxspi as pjs
from purejaxspi.algo import world_model
from purejaxspi.analysis.bench import model_flops_per_env_step, time_interleaved, training_program
from purejaxspi.provenance import provenance, utc_now

RESULTS = Path(__file__).parent / "results"
# (env, settings): the presets whose transition network reads a conv latent with a sampled density, and
# CartPole's, whose mixture head samples on a flat latent
CASES = {
    "Breakout-MinAtar": {"encoder": "conv", "density": "mixture", "num_envs": 64, "num_steps": 128},
    "Breakout-v5": {},
    "CartPole-v1": {},
}
FLAT_LATENT = {"CartPole-v1"}  # no last layer's choice: it is the conv latent's
# Iterations a timed call runs: CartPole's take milliseconds, and a call of two would time the call's own
# overhead as much as the program
ITERATIONS = {"CartPole-v1": 50}


def every_action(patches, kernel, bias, action):
    """The last layer as the paper computes it: every action's output [B, A, H, W, G, F], then indexed."""
    full = jnp.moveaxis(jnp.einsum("bhwgp,gpaf->bhwgaf", patches, kernel) + bias[None, None, None], 4, 1)
    return full[jnp.arange(full.shape[0]), action]


# sqrt(2) erfinv(y) = y P(y^2) on |y| <= erf(1/sqrt 2), least-squares coefficients, max error 2e-8
_POLY = (1.2533139202720749, 0.32813903047513304, 0.17973959777589305, 0.1308926957539347,
         0.03447908440808669, 0.28584135967728225, -0.359990242961805, 0.4249965378427962)  # fmt: skip
_ERF_ONE_OVER_SQRT2 = 0.6826894921370859


def hashed_clipped_normal(key, shape):
    """clip(N(0, 1), -1, 1) from a 32-bit counter hash of (a few Threefry bits, index) and the inverse
    normal CDF's central part as a polynomial of the clipped uniform."""
    seed = jax.random.bits(key, (2,), jnp.uint32)
    x = jax.lax.iota(jnp.uint32, math.prod(shape)) * jnp.uint32(0x9E3779B9) + seed[0]
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
    x = x ^ (x >> 16) ^ seed[1]
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    u = ((x >> 8).astype(jnp.float32) + 0.5).reshape(shape) * (1.0 / (1 << 24))
    y = jnp.clip(2.0 * u - 1.0, -_ERF_ONE_OVER_SQRT2, _ERF_ONE_OVER_SQRT2)
    poly = _POLY[-1]
    for coef in reversed(_POLY[:-1]):
        poly = poly * y * y + coef
    return jnp.clip(y * poly, -1.0, 1.0)


# choice -> (the module attribute it replaces, the package's function, the alternative)
CHOICES = {
    "last layer": ("taken_action_patches_matmul", world_model.taken_action_patches_matmul, every_action),
    "noise": ("clipped_normal", world_model.clipped_normal, hashed_clipped_normal),
}


@dataclasses.dataclass
class Args:
    envs: tuple[str, ...] = tuple(CASES)
    choices: tuple[str, ...] = tuple(CHOICES)
    iterations: int | None = None  # per timed call (default: ITERATIONS's, else 2)
    repeats: int = 3
    num_runs: int = 1  # runs of one program (seeds vmapped on one device)
    out: Path = RESULTS / "world_model_choices.json"


def measure(env_id: str, choice: str, iterations: int | None, repeats: int, num_runs: int) -> dict:
    iterations = iterations or ITERATIONS.get(env_id, 2)
    attribute, package, alternative = CHOICES[choice]
    config = pjs.make_config(env_id, "deepspi", **CASES[env_id])
    grid = pjs.make_grid(config, num_seeds=num_runs)
    programs, flops = [], []
    try:
        for function in (package, alternative):
            setattr(world_model, attribute, function)
            programs.append(training_program(config, grid, iterations, "auto")[0])
            flops.append(model_flops_per_env_step(config, pjs.make_grid(config, num_seeds=1)))
    finally:
        setattr(world_model, attribute, package)
    seconds = time_interleaved(programs, repeats)
    row = {
        "env": env_id,
        "choice": choice,
        "settings": CASES[env_id],
        "num_runs": num_runs,
        "iterations_per_call": iterations,
        "env_steps_per_call": programs[0].env_steps,
        "seconds_per_call": {"package": seconds[0], "alternative": seconds[1]},
        "flops_per_env_step": {"package": flops[0], "alternative": flops[1]},
        "time_saved": 1.0 - seconds[0] / seconds[1],
        "flops_saved": 1.0 - flops[0] / flops[1],
    }
    print(
        f"{env_id} {choice}, {num_runs} run(s): saves {row['time_saved']:.1%} of the time, "
        f"{row['flops_saved']:.1%} of the FLOPs"
    )
    return row


def key(row: dict) -> tuple:
    return row["env"], row["choice"], row["num_runs"]


def main(args: Args) -> None:
    kept = []
    if args.out.is_file():
        old = json.loads(args.out.read_text())  # rows of a record written whole carry its provenance
        kept = [{"num_runs": 1, "provenance": old.get("provenance"), **row} for row in old["rows"]]
    rows = []
    for env in args.envs:
        for choice in args.choices:
            if choice != "last layer" or env not in FLAT_LATENT:
                started = utc_now()
                row = measure(env, choice, args.iterations, args.repeats, args.num_runs)
                rows.append({**row, "provenance": provenance(started)})
    measured = {key(row) for row in rows}
    rows = [row for row in kept if key(row) not in measured] + rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda row: (list(CASES).index(row["env"]), row["num_runs"], row["choice"]))
    record = {"rows": rows}
    args.out.write_text(json.dumps(record, indent=1, default=lambda x: np.asarray(x).tolist()) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
