"""The run axis over devices and processes: a sharded grid trains as on one device, padding and resume
across device counts, two processes on localhost, envpool with one pool per device, bench per device count.

JAX reads XLA_FLAGS (the forced CPU device count) once, when it starts, so every sharded run happens in a
child process.
"""

import csv
import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import TEST_XLA_FLAGS, cli, needs_envpool

from purejaxspi.scale import distributed
from purejaxspi.scale.sharding import make_layout, pad_index, padded_size

pytestmark = pytest.mark.slow  # whole programs trained, resumed or sharded

# 2 learning rates x 4 seeds = 8 runs of a tiny CartPole Deep SPI, 10 iterations in chunks of 5
GRID = (
    "train",
    "--env",
    "CartPole-v1",
    "--algo",
    "deepspi",
    "--learning-rate",
    "0.0025",
    "0.001",
    "--num-envs",
    "4",
    "--num-steps",
    "16",
    "--num-minibatches",
    "2",
    "--update-epochs",
    "1",
    "--total-timesteps",
    "640",
    "--chunk-iterations",
    "5",
    "--checkpoint-interval",
    "0",
    "--quiet",
)

# each argument list is one `purejaxspi` command, run in turn in one process (one JAX start-up)
COMMANDS = """
import json, sys
from purejaxspi.cli import main
for argv in json.loads(sys.argv[1]):
    status = main(argv)
    if status:
        raise SystemExit(status)
"""


def child_env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    return {**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {TEST_XLA_FLAGS}", **extra}


def run_commands(devices: int, *commands, timeout=300):
    result = subprocess.run(
        [sys.executable, "-c", COMMANDS, json.dumps([list(c) for c in commands])],
        env=child_env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics_by_run(run_dir):
    """metrics.csv as {(seed, learning rate, iteration): {column: float}}."""
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    to_float = lambda v: float(v) if v != "" else math.nan  # noqa: E731
    return {
        (r["seed"], r["hp_learning_rate"], int(r["iteration"])): {k: to_float(v) for k, v in r.items()} for r in rows
    }


def assert_same_metrics(got, expected, rtol=1e-4):
    for key, row in got.items():
        for name, value in row.items():
            if name == "run":  # a run's index depends on the grid it is in, not its metrics
                continue
            np.testing.assert_allclose(value, expected[key][name], rtol=rtol, atol=1e-6, err_msg=f"{key} {name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_padding_repeats_the_last_run_to_a_multiple_of_the_device_count():
    assert padded_size(8, 4) == 8 and padded_size(6, 4) == 8 and padded_size(1, 4) == 4 and padded_size(5, 1) == 5
    assert pad_index(6, 4).tolist() == [0, 1, 2, 3, 4, 5, 5, 5]
    layout = make_layout(3)  # this process's one CPU device
    assert layout.padded_runs == 3 and layout.local_runs().runs == ((0, 1, 2),)
    placed = layout.place({"x": np.arange(3.0)})
    np.testing.assert_array_equal(layout.gather(placed)["x"], np.arange(3.0))


def test_distributed_settings_come_from_the_usual_variables():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert distributed.requested(False, env) and not distributed.requested(False, {})
    assert distributed.settings(env) == {"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}
    with pytest.raises(distributed.DistributedError, match="JAX_PROCESS_ID"):
        distributed.settings({**env, "JAX_PROCESS_ID": "2"})


@pytest.fixture(scope="module")
def one_and_four_devices(tmp_path_factory):
    """The 8-run grid trained on one device and sharded over four, in one child process."""
    root = tmp_path_factory.mktemp("sharded")
    run_commands(
        4,
        (*GRID, "--num-seeds", "4", "--devices", "1", "--out", str(root / "one")),
        (*GRID, "--num-seeds", "4", "--devices", "4", "--out", str(root / "four")),
        ("eval", str(root / "four"), "--episodes", "1"),
    )  # a sharded checkpoint, read back whole
    return root / "one", root / "four"


def test_eight_runs_sharded_over_four_devices_train_as_on_one(one_and_four_devices):
    one, four = one_and_four_devices
    expected, got = metrics_by_run(one), metrics_by_run(four)
    assert len(got) == len(expected) == 8 * 10
    assert_same_metrics(got, expected)
    runs = json.loads((four / "summary.json").read_text())["runs"]
    assert [r["run"] for r in runs] == list(range(8))
    assert sorted(p.name for p in (four / "checkpoints").iterdir()) == ["10", "5"]
    assert len(json.loads((four / "eval.json").read_text())["runs"]) == 8


def test_a_padded_grid_checkpoints_its_own_runs_and_resumes_on_another_device_count(one_and_four_devices, tmp_path):
    one, _ = one_and_four_devices
    padded, resumed = tmp_path / "padded", tmp_path / "resumed"
    # 6 runs on 4 devices (padded to 8); then a copy cut back to its first checkpoint resumes on 2 devices (3 each)
    script = f"""
import shutil, sys
from purejaxspi.cli import main
assert main({list(GRID) + ["--num-seeds", "3", "--devices", "4", "--out", str(padded)]!r}) == 0
shutil.copytree({str(padded)!r}, {str(resumed)!r})
shutil.rmtree({str(resumed / "checkpoints" / "10")!r})
raise SystemExit(main(["train", "--resume", {str(resumed)!r}, "--devices", "2", "--quiet"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], env=child_env(4), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = metrics_by_run(one)
    got = metrics_by_run(padded)
    assert len(got) == 6 * 10  # no rows for the padding
    assert_same_metrics(got, expected)  # a run is the same in any grid, on any device count
    assert_same_metrics(metrics_by_run(resumed), got)
    summary = json.loads((padded / "summary.json").read_text())
    assert len(summary["runs"]) == 6


def test_two_processes_on_localhost_train_the_grid_as_one_process(one_and_four_devices, tmp_path):
    one, _ = one_and_four_devices
    out = tmp_path / "two"
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "purejaxspi.cli", *GRID, "--num-seeds", "4", "--out", str(out)],
            env=child_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    # 2 processes x 2 devices: each device trains 2 of the 8 runs; process 0 writes every run's rows
    assert_same_metrics(metrics_by_run(out), metrics_by_run(one))
    assert len(metrics_by_run(out)) == 8 * 10
    assert len(json.loads((out / "summary.json").read_text())["runs"]) == 8
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["10", "5"]


ATARI = """
import jax, numpy as np
from purejaxspi.envs import envpool as atari, make_env
from purejaxspi.scale.sharding import make_layout

seeds, num_envs, steps = (4, 9, 2), 2, 40
actions = np.random.default_rng(0).integers(0, 4, size=(steps, 3, num_envs)).astype(np.int32)  # [T, runs, N]
layout = make_layout(len(seeds), 2)  # 3 runs over 2 devices: 2 slots each, the last a copy of run 2
assert layout.local_runs().runs == ((0, 1), (2, 2))
env = make_env("Breakout-v5", num_envs, seeds, local_runs=layout.local_runs())

# one device's runs: actions [runs, T, N] -> first frames [runs, ...], timesteps [runs, T, ...]
def rollout(keys, actions):
    state, obs, _ = jax.vmap(env.reset)(keys)
    step = lambda state, action: jax.vmap(env.step)(state, action, keys)
    timesteps = jax.lax.scan(step, state, actions.swapaxes(0, 1))[1]
    return obs, jax.tree.map(lambda x: x.swapaxes(0, 1), timesteps)

sharded = jax.jit(layout.shard(rollout))
keys = layout.place(jax.random.split(jax.random.PRNGKey(0), 3))
reset_obs, ts = sharded(keys, layout.place(actions.swapaxes(0, 1)[:3]))
reset_obs = layout.gather(reset_obs)
frames, rewards = np.asarray(ts.obs).swapaxes(0, 1), np.asarray(ts.reward).swapaxes(0, 1)
# the same three runs' games in one pool, stepped directly with the real runs' actions
reference = atari.make_pool("Breakout-v5", seeds, num_envs)
ref_obs, _ = reference.reset()
channels_last = lambda x: np.asarray(x).transpose(0, 2, 3, 1)
np.testing.assert_array_equal(reset_obs.reshape(-1, 84, 84, 4), channels_last(ref_obs))
for t in range(steps):
    obs, reward, *_ = reference.step(actions[t].reshape(-1))
    np.testing.assert_array_equal(frames[t, :3].reshape(-1, 84, 84, 4), channels_last(obs))
    np.testing.assert_array_equal(rewards[t, :3].reshape(-1), reward)
np.testing.assert_array_equal(frames[:, 3], frames[:, 2])  # the padding slot replays run 2's games
print("frames", frames.shape)
"""


@needs_envpool
def test_atari_runs_sharded_over_two_devices_step_one_pool_per_device():
    # each device's pool holds its own 2 slots' games; together they play what one pool of the 3 runs plays
    result = subprocess.run(
        [sys.executable, "-c", ATARI], env=child_env(2), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames (40, 4, 2, 84, 84, 4)" in result.stdout


def test_bench_reports_throughput_per_device_count(tmp_path):
    out = tmp_path / "bench.json"
    run_commands(
        2,
        (
            "bench",
            "--env",
            "CartPole-v1",
            "--algo",
            "ppo",
            "--num-runs",
            "4",
            "--devices",
            "1",
            "2",
            "--num-envs",
            "4",
            "--num-steps",
            "8",
            "--num-minibatches",
            "2",
            "--update-epochs",
            "1",
            "--iterations",
            "1",
            "--repeats",
            "1",
            "--no-env-only",
            "--json",
            str(out),
            "--quiet",
        ),
    )
    rows = json.loads(out.read_text())
    assert [(r["num_runs"], r["devices"]) for r in rows] == [(4, 1), (4, 2)]
    assert rows[0]["speedup_over_one_device"] == 1.0
    assert rows[1]["speedup_over_one_device"] == pytest.approx(
        rows[1]["steps_per_second"] / rows[0]["steps_per_second"]
    )
    assert all(r["steps_per_second"] > 0 for r in rows)


@pytest.mark.parametrize(
    "args, env, expected",
    [
        (("train", "--env", "CartPole-v1", "--devices", "512"), {}, "--devices 512: only"),
        (("train", "--env", "CartPole-v1", "--devices", "0"), {}, "--devices must be positive"),
        (("train", "--env", "CartPole-v1"), {"JAX_PROCESS_ID": "one"}, "JAX_PROCESS_ID must be a non-negative integer"),
        (("train", "--env", "CartPole-v1", "--distributed"), {}, "cannot join the processes"),
        (("bench", "--env", "CartPole-v1", "--devices", "1", "512"), {}, "--devices 512: only"),
    ],
)
def test_impossible_device_counts_exit_2_with_one_line(tmp_path, args, env, expected):
    environ = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS and k != "XLA_FLAGS"}
    result = cli(*args, "--out" if args[0] == "train" else "--json", str(tmp_path / "out"), env={**environ, **env})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
