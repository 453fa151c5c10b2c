"""The bench command and the run mappings: every mapping trains the same runs; bench reports its rows."""

import json

import jax
import numpy as np
import pytest
from conftest import HAS_ENVPOOL, cli, needs_envpool, preset_values, run_steps

from purejaxspi.algo.config import Config
from purejaxspi.analysis.bench import add_cost_ratios
from purejaxspi.envs import make_env, steps_all_runs
from purejaxspi.errors import ConfigError
from purejaxspi.scale.grid import grid_from_values
from purejaxspi.scale.mapping import RUN_CHUNK, make_trainer, resolve_run_mapping


def train_metrics(config, grid, mapping, iterations):
    trainer = make_trainer(config, make_env(config.env_id, config.env.num_envs), mapping)
    state = jax.jit(trainer.init)(grid.keys(), grid.hparams())
    _, metrics = run_steps(trainer, state, grid.hparams(), iterations)
    return {k: np.asarray(v) for k, v in metrics.items()}


@pytest.mark.slow
def test_every_run_mapping_gives_the_metrics_of_plain_vmap():
    config = Config.of(
        env_id="CartPole-v1",
        algo="deepspi",
        num_envs=4,
        num_steps=16,
        num_minibatches=2,
        update_epochs=1,
        total_timesteps=64 * 10,
        density="normal",
    )
    values = preset_values("vector")
    values["learning_rate"] = [2.5e-3, 1e-3, 5e-4]
    grid = grid_from_values(values, 0, 2)  # 6 runs: "chunked" maps one group of RUN_CHUNK runs and a remainder
    assert grid.size % RUN_CHUNK
    reference = train_metrics(config, grid, "vmap", 2)
    assert not np.allclose(reference["total_loss"][0], reference["total_loss"][1])  # the runs differ
    for mapping in ("map", "chunked"):
        metrics = train_metrics(config, grid, mapping, 2)
        for name, expected in reference.items():
            # float rounding only: batched and unbatched matmuls may sum in another order
            np.testing.assert_allclose(metrics[name], expected, rtol=1e-5, atol=1e-6, err_msg=f"{mapping}: {name}")


def test_auto_mapping_follows_the_measurements_and_keeps_atari_on_vmap():
    assert resolve_run_mapping("auto", "atari", steps_all_runs=True, platform="cpu") == "vmap"
    assert resolve_run_mapping("auto", "minatar", platform="gpu") == "vmap"
    assert resolve_run_mapping("auto", "minatar", platform="cpu") == "map"  # measured: vmap loses there
    assert resolve_run_mapping("auto", "vector", platform="cpu") == "vmap"
    assert resolve_run_mapping("chunked", "minatar", platform="cpu") == "chunked"
    with pytest.raises(ConfigError, match="needs run mapping vmap"):
        resolve_run_mapping("map", "atari", steps_all_runs=True, platform="cpu")
    with pytest.raises(ConfigError, match="unknown run mapping"):
        resolve_run_mapping("pmap", "vector", platform="cpu")
    assert not steps_all_runs("Breakout-MinAtar")
    if HAS_ENVPOOL:
        assert steps_all_runs("Breakout-v5")


def test_cost_ratio_is_time_per_iteration_over_ppos_at_the_same_grid():
    rows = [
        {"algo": "ppo", "num_runs": 4, "run_mapping": "vmap", "seconds_per_iteration": 0.5},
        {"algo": "deepspi", "num_runs": 4, "run_mapping": "vmap", "seconds_per_iteration": 0.6},
        {"algo": "deepspi", "num_runs": 8, "run_mapping": "vmap", "seconds_per_iteration": 2.0},
    ]
    add_cost_ratios(rows)
    assert rows[0]["time_per_iteration_vs_ppo"] == 1.0
    assert rows[1]["time_per_iteration_vs_ppo"] == pytest.approx(1.2)
    assert "time_per_iteration_vs_ppo" not in rows[2]  # no ppo row at 8 runs


@pytest.mark.slow
def test_bench_writes_one_row_per_grid_size_with_sequential_and_env_only(tmp_path):
    out = tmp_path / "bench.json"
    result = cli(
        "bench",
        "--env",
        "CartPole-v1",
        "--algo",
        "ppo",
        "--num-runs",
        "1",
        "2",
        "--sequential",
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
        "--json",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["num_runs"] for r in rows] == [1, 2]
    for row in rows:
        assert row["env"] == "CartPole-v1" and row["algo"] == "ppo" and row["run_mapping"] in ("vmap", "map", "chunked")
        for key in (
            "steps_per_second",
            "sequential_steps_per_second",
            "env_only_steps_per_second",
            "compile_seconds",
            "seconds_per_iteration",
            "peak_host_bytes",
            "model_flops_per_env_step",
            "achieved_flops_per_second",
        ):
            assert row[key] > 0, key
        assert row["speedup_over_sequential"] == pytest.approx(
            row["steps_per_second"] / row["sequential_steps_per_second"]
        )
        assert row["seconds_per_iteration"] == pytest.approx(4 * 8 * row["num_runs"] / row["steps_per_second"])
    assert "CartPole-v1, 1 iterations x 1 repeats" in result.stdout  # the printed table's title


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "CartPol-v1"], "CartPole-v1"),
        (["--env", "CartPole-v1", "--num-runs", "4", "0"], "--num-runs takes positive counts"),
        (["--env", "CartPole-v1", "--algo", "ppo", "sac"], "unknown algo"),
        (["--env", "CartPole-v1", "--repeats", "0"], "--repeats must be positive"),
        (["--env", "CartPole-v1", "--run-mapping", "pmap"], "unknown run mapping 'pmap'"),
        pytest.param(["--env", "Breakout-v5", "--run-mapping", "map"], "needs run mapping vmap", marks=needs_envpool),
    ],
)
def test_bad_bench_input_exits_2_with_one_line(args, expected):
    result = cli("bench", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
