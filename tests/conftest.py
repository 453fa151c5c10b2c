"""Shared helpers and fixtures: the CLI as a subprocess, a benchmark script as a module, a preset's
hyperparameter values, and one small finished CartPole run (4 seeds) that eval, plot and resume tests
read."""

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest

# Each CLI call is a fresh Python process: let the first one cache the bytecode of jax, gymnax and the
# rest, so the others import in a second instead of recompiling every source where bytecode is off.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
# One persistent compilation cache for the whole session, shared by its CLI processes, its in-process
# tests and its workers (the first process to compile a program stores it, the others load it), in a
# folder of its own: never the user's, and empty at the start of every session so a compile-time
# regression still shows (pytest_configure). tests/test_compilation_cache.py keeps its own folder.
SESSION_CACHE_VAR = "PUREJAXSPI_TEST_SESSION_CACHE"
# XLA:CPU logs a warning line each time it loads a cached executable; the tests read stderr line by line.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
# The suite's programs are small and run a few iterations, so compiling them is most of its time: LLVM at
# optimisation level 1 instead of XLA's 3 compiles them faster, and the golden runs, recorded at level 3,
# still hold at their tolerances; the few tests that train long run somewhat slower. A level the user
# sets wins.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
# The fast tier (`-m "not slow"`) compiles lighter still: LLVM at level 0 with XLA:CPU's classic
# elemental emitters compiles a small training program about 3x faster and runs it about 5x slower,
# which suits tests that each run small programs for a few iterations (every one of them holds there).
# The whole suite stays at level 1, where the golden runs hold at their tolerances (at level 0 an Atari
# case drifts past them) and the learning curves train long.
FAST_TIER = "not slow"
FAST_TIER_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
LEVEL_GIVEN = "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")
if not LEVEL_GIVEN:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

# Atari comes through envpool, an optional dependency with wheels for some platforms only: where it is
# absent the package runs every pure-JAX env, and the tests that need Atari say so and skip.
HAS_ENVPOOL = importlib.util.find_spec("envpool") is not None
needs_envpool = pytest.mark.skipif(not HAS_ENVPOOL, reason="Atari needs envpool, which is not installed here")

# PPO on CartPole, 2 runs of 4 envs x 16 steps (64 env steps an iteration): the one small PPO program of
# the tests that need a PPO run but no particular one (they share it through the session's cache)
SMALL_PPO = ("--env", "CartPole-v1", "--algo", "ppo", "--num-seeds", "2", "--num-envs", "4", "--num-steps", "16")

SMALL_RUN = (
    "--env",
    "CartPole-v1",
    "--num-seeds",
    "4",
    "--num-envs",
    "4",
    "--num-steps",
    "32",
    "--total-timesteps",
    "1536",
    "--chunk-iterations",
    "3",
    "--quiet",
)


def cli(*args, cwd=None, env=None, timeout=600):
    """`purejaxspi ARGS` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "purejaxspi.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_script(name: str, module_name: str):
    """benchmarks/NAME.py imported as the module `module_name` (registered, as dataclasses look their
    module up by name)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class LossBatch(NamedTuple):
    """One minibatch of every input any of the three objectives reads, all [B] unless noted."""

    log_probs: Any  # [B, A]
    value: Any
    reward_pred: Any
    next_latent_pred: Any  # [B, *z]
    next_latent: Any  # [B, *z]
    action: Any
    old_log_prob: Any
    advantages: Any
    returns: Any
    reward: Any
    transition_valid: Any
    gradient_penalty: Any = None
    old_value: Any = None


def algo_loss(algo: str, x: LossBatch, hp, reduction: str = "sum", norm_adv: bool = True):
    """`algo`'s loss terms on the batch as the training program composes them: PPO's objective, with the
    world model's terms inside U (Deep SPI) or beside the surrogate (DeepMDP)."""
    from purejaxspi.algo import objectives
    from purejaxspi.algo.world_model import PLACEMENTS

    policy = objectives.PolicyInputs(
        x.log_probs, x.value, x.action, x.old_log_prob, x.advantages, x.returns, x.old_value
    )
    if algo == "ppo":
        return objectives.loss(policy, hp, norm_adv)
    inputs = objectives.WorldModelInputs(
        x.reward_pred, x.reward, x.next_latent_pred, x.next_latent, x.transition_valid, x.gradient_penalty
    )
    terms = objectives.world_model_terms(inputs, hp, reduction)
    return objectives.loss(policy, hp, norm_adv, terms, PLACEMENTS[algo])


def run_steps(program, state, hparams, iterations: int):
    """`iterations` iterations of a grid's program from `state` through its one loop, as `train` runs
    it (the count traced): (state, metrics {name: [R, iterations]})."""
    import jax
    import numpy as np

    return jax.jit(program.steps, static_argnums=3)(state, hparams, np.int32(iterations), iterations)


def preset_values(family: str, algo: str = "deepspi", **overrides) -> dict[str, list[float]]:
    """Every hyperparameter's one value from the preset of (family, algo), family one of "vector",
    "minatar", "atari", "gridworld", with overrides."""
    from purejaxspi.algo.config import PRESETS

    return {**{k: [v] for k, v in PRESETS[family, algo].hparams.as_dict().items()}, **overrides}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, worker_id):
    """A finished 12-iteration run, trained once for the session: the first worker to ask trains it in
    the folder the workers share, the others wait for it. Tests copy it before changing anything in it."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # pytest-xdist: each worker's folder lies in the session's
        shared = shared.parent
    out = shared / "trained-run"
    with open(shared / "trained-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out / "summary.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            result = cli("train", *SMALL_RUN, "--out", str(out))
            assert result.returncode == 0, result.stderr
    return out


def pytest_collection_modifyitems(items):
    """Slow tests first, so the workers share them out and the suite does not end on one of them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class FirstBatch(NamedTuple):
    learner: Any
    state: Any  # after the rollout
    batch: dict  # the rollout as the update's batch
    hp: Any


def first_batch(config, seed: int = 0) -> FirstBatch:
    """One run's first rollout of `config` as the update sees it: the state and the flat batch."""
    import jax

    import purejaxspi as pjs
    from purejaxspi.algo import train

    learner = train.make_learner(config, pjs.make_env(config.env_id, config.env.num_envs))
    hp = jax.tree.map(lambda x: x[0], pjs.make_grid(config).hparams())

    @jax.jit  # one program: op by op, each of the rollout's and the network's small ops compiles alone
    def rollout_batch(key, hp):
        state, traj = train.rollout(learner, train.init_run(learner, key, hp))
        adv, returns = train.advantages(learner, state, traj, hp)
        return state, train.flat_batch(learner, traj, adv, returns)

    state, batch = rollout_batch(jax.random.PRNGKey(seed), hp)
    return FirstBatch(learner, state, batch, hp)


def pytest_configure(config):
    if config.option.markexpr == FAST_TIER and not LEVEL_GIVEN:  # before JAX starts its backend
        os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(TEST_XLA_FLAGS, FAST_TIER_XLA_FLAGS)
    from purejaxspi.lifecycle import compilation_cache

    if SESSION_CACHE_VAR not in os.environ:  # the controlling process; xdist's workers inherit the folder
        os.environ[SESSION_CACHE_VAR] = tempfile.mkdtemp(prefix="purejaxspi-tests-jax-")
    os.environ["PUREJAXSPI_COMPILATION_CACHE"] = os.environ[SESSION_CACHE_VAR]
    compilation_cache.enable(os.environ[SESSION_CACHE_VAR])


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controlling process made the folder; it removes it
        shutil.rmtree(os.environ.get(SESSION_CACHE_VAR, ""), ignore_errors=True)
