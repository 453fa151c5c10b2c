"""CartPole-v1 PPO, purejaxrl's `make_train` against ours, side by side in one process, for 1 run or
`--num-seeds` runs vmapped on one device (purejaxrl's README's `jax.vmap(make_train(config))`).

purejaxrl is not a dependency: pass the path of a checkout (its `purejaxrl/ppo.py` is loaded as it is).
Two of its imports do not load against our pinned packages, so this script stands in for them with
the same computation: `wrappers` (its LogWrapper/FlattenObservationWrapper import brax and navix and
unpack the five-value `step` of gymnax < 1.0; gymnax 1.0.1 returns terminated and truncated apart,
and done is their `or`) and `distrax` (not installed; `Categorical` is sample, log-prob and entropy of a
softmax). Everything else, the network, the losses and the update loop, is purejaxrl's own code.
A second purejaxrl program swaps in our vector-env network shape (`SharedEncoderActorCritic`), to
separate the cost of the architecture from the cost of the rest of the program.

Each program is compiled first (its seconds recorded), then each compiled call (whole 500k-step runs)
is timed, alternating programs, median of the repeats. Run it on an otherwise idle machine:

    git clone https://github.com/luchris429/purejaxrl /tmp/purejaxrl
    uv run python benchmarks/vs_purejaxrl.py --purejaxrl /tmp/purejaxrl                  # 1 run
    uv run python benchmarks/vs_purejaxrl.py --purejaxrl /tmp/purejaxrl --num-seeds 16   # 16 runs

Each writes its entry (by the number of runs) into benchmarks/results/vs_purejaxrl.json.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tyro

import purejaxspi as pjs
from purejaxspi.provenance import provenance, utc_now

RESULTS = Path(__file__).parent / "results"
# purejaxrl's CartPole settings (its ppo.py `__main__`), which our vector preset shares except these
PUREJAXRL_CONFIG = {
    "LR": 2.5e-4,
    "NUM_ENVS": 4,
    "NUM_STEPS": 128,
    "TOTAL_TIMESTEPS": 5e5,
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh",
    "ENV_NAME": "CartPole-v1",
    "ANNEAL_LR": True,
    "DEBUG": False,
}


@dataclasses.dataclass
class Args:
    purejaxrl: Path  # a checkout of github.com/luchris429/purejaxrl
    repeats: int = 3
    out: Path = RESULTS / "vs_purejaxrl.json"
    total_timesteps: int = int(PUREJAXRL_CONFIG["TOTAL_TIMESTEPS"])
    """Env steps of the run both sides train (purejaxrl's own: 500k); a multiple of its 512-step batch."""
    num_seeds: int = 1
    """Runs vmapped on one device, on both sides."""


class _Wrapper:
    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)


class FlattenObservationWrapper(_Wrapper):
    """CartPole's observations are already flat; the wrapper only has to exist."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class LogEnvState:
    env_state: object
    episode_returns: jax.Array
    episode_lengths: jax.Array
    returned_episode_returns: jax.Array
    returned_episode_lengths: jax.Array
    timestep: jax.Array


class LogWrapper(_Wrapper):
    """Episode returns and lengths in `info`, over gymnax 1.0.1's six-value step."""

    def reset(self, key, params=None):
        obs, env_state = self._env.reset(key, params)
        zero = jnp.zeros((), jnp.float32)
        return obs, LogEnvState(env_state, zero, zero, zero, zero, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params=None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        ret, length = state.episode_returns + reward, state.episode_lengths + 1
        state = LogEnvState(
            env_state,
            ret * (1 - done),
            length * (1 - done),
            state.returned_episode_returns * (1 - done) + ret * done,
            state.returned_episode_lengths * (1 - done) + length * done,
            state.timestep + 1,
        )
        info = {
            "returned_episode_returns": state.returned_episode_returns,
            "returned_episode_lengths": state.returned_episode_lengths,
            "timestep": state.timestep,
            "returned_episode": done,
        }
        return obs, state, reward, done, info


class Categorical:
    def __init__(self, logits):
        self.logits = jax.nn.log_softmax(logits)

    def sample(self, seed):
        return jax.random.categorical(seed, self.logits)

    def log_prob(self, value):
        return jnp.take_along_axis(self.logits, value[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self):
        return -jnp.sum(jnp.exp(self.logits) * self.logits, axis=-1)


class SharedEncoderActorCritic(nn.Module):
    """purejaxrl's ActorCritic reshaped as our vector-env agent: a shared 2 x 64 tanh encoder (the latent the
    world model reads), then a 64-unit tanh layer per head; three 64 x 64 layers per forward against two."""

    action_dim: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        def dense(features, gain):
            return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)

        z = nn.tanh(dense(64, np.sqrt(2))(nn.tanh(dense(64, np.sqrt(2))(x))))
        logits = dense(self.action_dim, 0.01)(nn.tanh(dense(64, np.sqrt(2))(z)))
        value = dense(1, 1.0)(nn.tanh(dense(64, np.sqrt(2))(z)))
        return Categorical(logits), jnp.squeeze(value, axis=-1)


def load_purejaxrl(checkout: Path):
    """purejaxrl's ppo.py as a module, with the two stand-ins above importable under their names."""
    source = checkout / "purejaxrl" / "ppo.py"
    if not source.is_file():
        raise SystemExit(f"error: {source} not found; pass --purejaxrl the root of a purejaxrl checkout")
    sys.modules["wrappers"] = types.SimpleNamespace(
        LogWrapper=LogWrapper, FlattenObservationWrapper=FlattenObservationWrapper
    )
    sys.modules["distrax"] = types.SimpleNamespace(Categorical=Categorical)
    spec = importlib.util.spec_from_file_location("purejaxrl_ppo", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(call) -> float:
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


def compiled(fn, *args) -> tuple:
    """(fn jitted and compiled for args, seconds the lowering and compile took)."""
    start = time.perf_counter()
    program = jax.jit(fn).lower(*args).compile()
    return program, time.perf_counter() - start


def read_entries(path: Path) -> dict:
    """The record's entries by number of runs; a record from before `--num-seeds` is the 1-run entry."""
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    return record.get("entries", {"1": record})


def main(args: Args) -> dict:
    started = utc_now()
    ppo = load_purejaxrl(args.purejaxrl)
    their_config = {**PUREJAXRL_CONFIG, "TOTAL_TIMESTEPS": args.total_timesteps}
    their_keys = jax.random.split(jax.random.PRNGKey(0), args.num_seeds)
    theirs, their_compile = compiled(jax.vmap(ppo.make_train(their_config)), their_keys)
    ppo.ActorCritic = SharedEncoderActorCritic  # make_train reads the module's global when called
    theirs_shared, their_shared_compile = compiled(jax.vmap(ppo.make_train(their_config)), their_keys)
    their_steps = args.total_timesteps // 512 * 512

    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=128, total_timesteps=their_steps)
    grid = pjs.make_grid(config, num_seeds=args.num_seeds, learning_rate=[PUREJAXRL_CONFIG["LR"]])
    program = pjs.make_train(config, pjs.make_env(config.env.env_id, config.env.num_envs))
    keys, hparams = grid.keys(), grid.hparams()
    ours, our_compile = compiled(jax.vmap(program.train), keys, hparams)

    seconds: dict[str, list[float]] = {
        "purejaxrl": [],
        "purejaxrl_our_network": [],
        "ours_program": [],
        "ours_train": [],
    }
    train_rates = []
    for _ in range(args.repeats):
        seconds["purejaxrl"].append(timed(lambda: theirs(their_keys)))
        seconds["purejaxrl_our_network"].append(timed(lambda: theirs_shared(their_keys)))
        seconds["ours_program"].append(timed(lambda: ours(keys, hparams)))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = pjs.train(config, grid, Path(tmp) / "run")
            seconds["ours_train"].append(time.perf_counter() - start)
        train_rates.append(summary["env_steps_per_second"])  # steady state, the compiling chunk left out
    # ours_train's wall time includes its compile and the run directory; its steady rate does not
    all_steps = their_steps * args.num_seeds
    rates = {name: all_steps / statistics.median(values) for name, values in seconds.items()}
    train_rate = rates["ours_train_steady"] = statistics.median(train_rates)
    entry = {
        "num_seeds": args.num_seeds,
        "env_steps_per_run": their_steps,
        "seconds": seconds,
        "env_steps_per_second": rates,
        "compile_seconds": {
            "purejaxrl": their_compile,
            "purejaxrl_our_network": their_shared_compile,
            "ours_program": our_compile,
        },
        "ours_program_over_purejaxrl": rates["ours_program"] / rates["purejaxrl"],
        "ours_program_over_purejaxrl_our_network": rates["ours_program"] / rates["purejaxrl_our_network"],
        "ours_train_steady_over_purejaxrl": train_rate / rates["purejaxrl"],
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "provenance": provenance(started),
    }
    for name, rate in rates.items():
        print(f"{name:22s} {rate:>10,.0f} env steps/s (all {args.num_seeds} runs)")
    entries = {**read_entries(args.out), str(args.num_seeds): entry}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"entries": dict(sorted(entries.items(), key=lambda e: int(e[0])))}, indent=2) + "\n"
    )
    print(f"wrote the {args.num_seeds}-run entry of {args.out}")
    return entry


if __name__ == "__main__":
    main(tyro.cli(Args))
