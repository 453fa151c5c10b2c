"""The command line: bad input exits 2 with one line before compiling; a small run writes its outputs."""

import csv
import json
import os

import pytest
from conftest import HAS_ENVPOOL, cli

from purejaxspi.lifecycle.metrics import CSV_COLUMNS


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "Cartpole-v1"], "CartPole-v1"),
        (["--env", "Breakout-Minatar"], "Breakout-MinAtar"),
        (["--algo", "sac"], "unknown algo"),
        (["--env", "CartPole-v1", "--num-envs", "3", "--num-steps", "5", "--num-minibatches", "4"], "not divisible"),
        (["--env", "CartPole-v1", "--num-envs", "0"], "--num-envs must be positive"),
        (["--env", "CartPole-v1", "--update-epochs", "-1"], "--update-epochs must be positive"),
        (["--env", "CartPole-v1", "--reward-coef", "0.1", "-0.5"], "--reward-coef must be finite and non-negative"),
        (["--env", "CartPole-v1", "--transition-coef", "nan"], "--transition-coef must be finite"),
        (["--env", "CartPole-v1", "--learning-rate", "inf"], "--learning-rate must be finite"),
        (["--env", "CartPole-v1", "--gamma", "1.5"], "--gamma must lie in [0, 1]"),
        (["--env", "CartPole-v1", "--num-seeds", "0"], "--num-seeds must be positive"),
        (["--env", "CartPole-v1", "--density", "beta"], "unknown density"),
        (["--env", "CartPole-v1", "--chunk-seconds", "0"], "--chunk-seconds must be positive"),
        (["--env", "CartPole-v1", "--settings", "cleanrl"], "unknown settings"),
        (["--env", "CartPole-v1", "--algo", "deepmdp", "--density", "mixture"], "deterministic head only"),
        (["--env", "CartPole-v1", "--gradient-penalty", "-1"], "--gradient-penalty must be finite and non-negative"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, expected, tmp_path):
    result = cli("train", *args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written or compiled


def test_envs_lists_every_backend():
    result = cli("envs", "--json")
    ids = json.loads(result.stdout)
    assert "CartPole-v1" in ids["gymnax"] and "Breakout-MinAtar" in ids["gymnax"]
    assert "pgx/2048" in ids["pgx"] and "pgx/minatar-breakout" in ids["pgx"]


def test_presets_prints_every_family_and_algorithm():
    rows = json.loads(cli("presets", "--json").stdout)
    assert {(r["family"], r["algo"]) for r in rows} == {
        (f, a) for f in ("atari", "gridworld", "minatar", "vector") for a in ("deepspi", "deepmdp", "ppo")
    }
    table = cli("presets").stdout.splitlines()
    assert table[0].split()[:4] == ["family", "algo", "envs", "steps"] and len(table) == 14


def test_info_reports_the_machine_and_what_auto_picks():
    info = json.loads(cli("info", "--json").stdout)
    assert info["platform"] == "cpu" and len(info["devices"]) == info["host_cores"]  # one CPU device per core, as train
    assert info["packages"]["jax"] and bool(info["packages"]["envpool"]) == HAS_ENVPOOL
    assert info["envpool_xla"]["available"] is HAS_ENVPOOL
    run_mapping = {"vector": "vmap", "minatar": "map", "atari": "vmap"}
    assert info["auto"] == {"run_mapping": run_mapping, "conv": "patches", "envpool_interface": "xla"}
    assert info["compilation_cache"] == os.environ["PUREJAXSPI_COMPILATION_CACHE"]  # the session's folder
    assert cli("info").stdout.splitlines()[1].startswith("platform: cpu")


@pytest.mark.parametrize(
    "args, expected",
    [
        (("train", "--num-seeds", "x"), "--num-seeds expects INT, got: x"),
        (("train", "--learning-rate", "fast"), "--learning-rate expects FLOAT [FLOAT ...], got: fast"),
        (("train", "--budget", "forever"), "unknown budget 'forever'; choose one of smoke, preset"),
        (("train", "--budget", "preset", "--total-timesteps", "1000"), "--budget and --total-timesteps both"),
        (("eval", "runs/none", "--episodes", "many"), "--episodes expects INT, got: many"),
        (("plot", "runs/none", "--heatmap", "learning_rate"), "--heatmap expects STR STR, got: learning_rate"),
        (("plot", "runs/none", "--bins", "1.5"), "--bins expects INT, got: 1.5"),
        (("plot",), "give one or more `purejaxspi train` output directories"),
        (("bench", "--num-runs", "some"), "--num-runs expects INT [INT ...], got: some"),
        (("bench", "--iterations", "-"), "--iterations expects INT"),
        (("presets", "--json", "1"), "unexpected argument 1"),
        (("envs", "--family", "x", "y"), "unrecognized option --family"),
        (("train", "--lipschitz", "maybe"), "--lipschitz expects True or False (or --lipschitz / --no-lipschitz)"),
        (("train", "--num-seeds"), "--num-seeds expects INT, got nothing"),
        (("train", "--nm-seeds", "4"), "unrecognized option --nm-seeds (did you mean --num-seeds?)"),
        (("eval", "runs/none", "--greedy", "maybe"), "unexpected argument maybe"),
    ],
)
def test_usage_errors_are_short_and_plain_for_every_command(args, expected):
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    text = result.stderr.strip()
    assert expected.lower() in text.lower(), text
    assert len(text.splitlines()) == 1, text
    for noise in ("Traceback", "[bold]", "{None}", "no type matching", "NoneType", "'None'"):
        assert noise not in text, text


def test_unknown_command_exits_2():
    result = cli("fly")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_writes_config_metrics_and_summary(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train",
        "--env",
        "CartPole-v1",
        "--num-seeds",
        "2",
        "--learning-rate",
        "0.001",
        "0.003",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--total-timesteps",
        "1280",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["num_runs"] == 4 and config["varied"] == ["learning_rate"]
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 4 * 10  # one row per run per iteration
    assert {r["run"] for r in rows} == {"0", "1", "2", "3"}
    assert {(r["seed"], r["hp_learning_rate"]) for r in rows} == {
        ("0", "0.001"),
        ("1", "0.001"),
        ("0", "0.003"),
        ("1", "0.003"),
    }
    lr = [float(r["learning_rate"]) for r in rows if r["run"] == "0"]
    assert lr[0] == pytest.approx(0.001) and lr[-1] < lr[0]  # annealed per run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "CartPole-v1" and summary["algo"] == "deepspi"
    assert [r["run"] for r in summary["runs"]] == [0, 1, 2, 3]
    for key in ("final_return_median", "final_return_iqm", "env_steps_per_second"):
        assert key in summary
    # final_return: mean return of episodes that ended in the last 10% of the run's env steps
    last = [r for r in rows if r["run"] == "1" and int(r["env_steps"]) > 0.9 * 1280]
    total = sum(float(r["episodic_return"]) * int(r["episodes"]) for r in last if r["episodes"] != "0")
    count = sum(int(r["episodes"]) for r in last)
    assert summary["runs"][1]["final_return"] == pytest.approx(total / count, rel=1e-5)


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_metrics(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "train",
        "--env",
        "CartPole-v1",
        "--num-seeds",
        "1",
        "--learning-rate",
        "1e30",
        "--max-grad-norm",
        "1e30",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--total-timesteps",
        "2560",
        "--chunk-iterations",
        "2",
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 1
    assert "non-finite loss in run 0" in result.stderr and "iteration" in result.stderr
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert 0 < len(rows) < 20


def test_a_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    grid = ("--env", "CartPole-v1", "--num-seeds", "3", "--learning-rate", "1e-3", "2e-3", "--out", str(out))
    result = cli("train", *grid, "--dry-run")
    assert result.returncode == 0, result.stderr
    what, batch, devices, memory, where = result.stdout.splitlines()
    assert "6 runs (2 settings x 3 seeds; learning_rate [0.001, 0.002]) x 24,576 env steps (the smoke budget" in what
    assert batch.startswith("batch: 32 envs x 32 steps = 1,024 env steps an iteration, 24 iterations")
    assert "cpu device(s)" in devices and "MiB of training state" in memory
    assert where == f"out: {out} (new); --dry-run: nothing compiled or written" and not out.exists()
    out.mkdir()
    (out / "metrics.csv").write_text("")
    refused = cli("train", *grid, "--dry-run")
    assert refused.returncode == 2 and "already holds files" in refused.stderr, refused.stderr
