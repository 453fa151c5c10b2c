"""More failures a user can cause, each ending in one line (exit 2) with nothing written lost: an Atari pool
too large for memory, outputs that cannot be written, a damaged newest checkpoint (an older one is used),
a reader that leaves the pipe."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import SMALL_RUN, cli, needs_envpool
from test_guards import NO_BYTECODE, limit_file_size


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr)
    return lines[0]


@needs_envpool
def test_an_atari_pool_too_large_for_memory_is_refused_before_it_is_made(tmp_path):
    line = one_line(
        cli(
            "train",
            "--env",
            "Breakout-v5",
            "--num-envs",
            "1000000",
            "--budget",
            "preset",
            "--num-seeds",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        )
    )
    assert "GiB of host memory" in line and "--num-envs" in line
    assert not (tmp_path / "run" / "config.json").exists()


def test_unwritable_outputs_are_refused_before_the_work(trained_run, tmp_path):
    assert "cannot write there" in one_line(cli("plot", str(trained_run), "--out", "/proc/x.png"))
    line = one_line(
        cli(
            "bench", "--env", "CartPole-v1", "--algo", "ppo", "--num-runs", "1", "--json", "/proc/bench.json", "--quiet"
        )
    )
    assert "--json /proc/bench.json" in line


def test_envs_into_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "purejaxspi.cli", "envs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b"", err


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory):
    """A finished run with checkpoints after iterations 6, 9 and 12 (one per chunk, the newest 3 kept)."""
    out = tmp_path_factory.mktemp("checkpointed") / "run"
    result = cli("train", *SMALL_RUN, "--algo", "ppo", "--checkpoint-every", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == [6, 9, 12]
    return out


def damage_newest(run_dir, into):
    run = into / "run"
    shutil.copytree(run_dir, run)
    newest = run / "checkpoints" / "12"
    for path in newest.rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"\0" * 16)  # the arrays' bytes overwritten
    return run


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(checkpointed_run, tmp_path):
    run = damage_newest(checkpointed_run, tmp_path)
    result = cli("eval", str(run), "--episodes", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not restore" in lines[0] and str(run / "checkpoints" / "9") in lines[0], (
        result.stderr
    )
    assert json.loads((run / "eval.json").read_text())["iteration"] == 9
    # train --resume continues from the intact checkpoint and finishes the run
    (run / "summary.json").unlink()
    resumed = cli("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert "did not restore" in resumed.stderr and "ERROR" not in resumed.stderr
    assert (run / "summary.json").is_file()


@pytest.mark.slow
def test_eval_and_its_videos_into_a_full_disk_end_in_one_line(tmp_path):
    run = tmp_path / "run"
    trained = cli(
        "train",
        "--env",
        "Breakout-MinAtar",
        "--algo",
        "ppo",
        "--num-seeds",
        "1",
        "--num-envs",
        "4",
        "--num-steps",
        "8",
        "--total-timesteps",
        "64",
        "--out",
        str(run),
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr
    video = ("--video", "--video-steps", "60")

    def evaluate(limit, *extra):
        return subprocess.run(
            [sys.executable, "-m", "purejaxspi.cli", "eval", str(run), "--episodes", "2", *extra],
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=None if limit is None else limit_file_size(limit),
            env=NO_BYTECODE,
        )

    # the sizes of the whole outputs size the second limit: room for eval.json, not for the GIF
    assert evaluate(None, *video).returncode == 0
    report_size = (run / "eval.json").stat().st_size
    (gif,) = (run / "videos").iterdir()
    gif_size = gif.stat().st_size
    assert report_size < gif_size
    for limit, extra in ((0, ()), ((report_size + gif_size) // 2, video)):
        assert "cannot write the evaluation's outputs" in one_line(evaluate(limit, *extra))
    assert (run / "eval.json").stat().st_size == report_size and gif.stat().st_size < gif_size
