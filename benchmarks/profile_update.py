"""Where one iteration of each algorithm spends its time on this machine, by part of the model.

Profiles the iteration's two hot pieces outside their loops (`train.IterationPieces`): one
minibatch gradient with its Adam step, and one acting step, over R runs mapped as the trainer maps
them (`vmap` for vector envs, one run for `map` families, whose runs take turns). Each op's time is
charged to a part (`purejaxspi.analysis.profile.PARTS`); the iteration's estimate is
epochs x minibatches x gradient step + num_steps x acting step.

    uv run python benchmarks/profile_update.py --env Breakout-MinAtar --density deterministic mixture
    uv run python benchmarks/profile_update.py --env CartPole-v1 --runs 16 --density mixture deterministic
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax

import purejaxspi as pjs
from purejaxspi.algo.train import make_train
from purejaxspi.analysis.profile import PARTS, profile_by_part
from purejaxspi.analysis.work import iteration_flops
from purejaxspi.envs import env_for
from purejaxspi.provenance import provenance, utc_now
from purejaxspi.scale.grid import grid_from_values


def program_parts(env_id: str, algo: str, density: str | None, runs: int, repeats: int) -> dict:
    overrides = {} if density is None or algo == "ppo" else {"density": density}
    config = pjs.make_config(env_id, algo, **overrides)
    env = env_for(config.env, None, (0,))
    program = make_train(config, env)
    grid = grid_from_values(pjs.hparam_values(config), 0, runs)
    hp = jax.tree.map(lambda x: x[0], grid.hparams())
    pieces = program.pieces
    state = jax.jit(program.init)(jax.random.PRNGKey(0), hp)
    state, traj = jax.jit(pieces.rollout)(state)
    adv, returns = jax.jit(pieces.advantages)(state, traj, hp)

    def batched(fn):  # R runs as one vmapped program (a map family's runs take turns: one is representative)
        if runs == 1:
            return fn
        return lambda *args: jax.vmap(fn)(*jax.tree.map(lambda x: jax.numpy.stack([x] * runs), args))

    def gradient_step(state, traj, adv, returns, hp):
        return batched(pieces.gradient_step)(state, traj, adv, returns, hp)

    def acting_step(state):
        return batched(pieces.act)(state)

    grad = profile_by_part(gradient_step, (state, traj, adv, returns, hp), repeats)
    acting = profile_by_part(acting_step, (state,), repeats)
    counts = pieces.counts
    iteration = {
        part: counts["gradient_step"] * grad.get(part, 0.0) + counts["act"] * acting.get(part, 0.0)
        for part in set(grad) | set(acting)
    }
    flops = iteration_flops(program, hp)
    return {
        "env": env_id,
        "algo": algo,
        "density": config.world_model.density if config.world_model else None,
        "runs": runs,
        "gradient_step": grad,
        "acting_step": acting,
        "iteration": iteration,
        "model_flops_per_env_step": flops["per_env_step"],
    }


def table(rows: list[dict]) -> str:
    parts = [p for p, _ in PARTS] + ["other"]
    header = "| program | grad step ms | act step ms | " + " | ".join(parts) + " | MFLOP/step |"
    lines = [header, "|" + "---|" * (len(parts) + 4)]
    for r in rows:
        total = sum(v for k, v in r["iteration"].items() if k != "wall") or 1.0
        name = r["algo"] + (f" ({r['density']})" if r["density"] else "")
        shares = [f"{100 * r['iteration'].get(p, 0.0) / total:.0f}%" for p in parts]
        lines.append(
            f"| {name} | {1e3 * r['gradient_step']['wall']:.1f} | {1e3 * r['acting_step']['wall']:.2f} | "
            + " | ".join(shares)
            + f" | {r['model_flops_per_env_step'] / 1e6:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Breakout-MinAtar")
    parser.add_argument("--algo", nargs="+", default=["ppo", "deepmdp", "deepspi"])
    parser.add_argument(
        "--density", nargs="+", default=[None], help="Deep SPI's densities to profile (default: the preset's)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="runs vmapped into one program (vector envs: 16, as train maps them)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    started, rows = utc_now(), []
    for algo in args.algo:
        for density in args.density if algo == "deepspi" else [None]:
            rows.append(program_parts(args.env, algo, density, args.runs, args.repeats))
            print(f"{algo} {density or ''}: gradient step {1e3 * rows[-1]['gradient_step']['wall']:.1f} ms", flush=True)
    print(table(rows))
    if args.json:
        made_by = provenance(started)
        args.json.write_text(json.dumps([{**row, "provenance": made_by} for row in rows], indent=1))


if __name__ == "__main__":
    main()
