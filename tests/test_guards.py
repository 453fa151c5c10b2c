"""Failures a user can cause end in one line with nothing already written lost: signals, a second
writer, a grid too large for memory, a full disk; and a run is the same when run again."""

import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import SMALL_RUN, cli

import purejaxspi as pjs
from purejaxspi.lifecycle.metrics import CSV_COLUMNS

pytestmark = pytest.mark.slow  # whole programs trained, interrupted and resumed

# long enough (3,000 one-iteration chunks) for a signal to land mid-run; cheap in larger chunks
ITERATIONS = 3000
LONG_RUN = (
    "--env",
    "CartPole-v1",
    "--algo",
    "ppo",
    "--num-seeds",
    "2",
    "--num-envs",
    "4",
    "--num-steps",
    "16",
    "--total-timesteps",
    str(ITERATIONS * 64),
    "--chunk-iterations",
    "1",
    "--quiet",
)


def rows_of(run_dir):
    return sorted((run_dir / "metrics.csv").read_text().splitlines()[1:])


def iterations_written(run_dir):
    path = run_dir / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) // 2 if path.is_file() else 0


def start(out, *extra, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "purejaxspi.cli", "train", *LONG_RUN, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for_rows(proc, out, iterations=3, timeout=300):
    deadline = time.monotonic() + timeout
    while iterations_written(out) < iterations and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()


def stop_with(signum, out):
    """Start a long run, refuse a second writer while it runs, stop it with `signum` (SIGINT takes the
    same handler); returns the iteration of its checkpoint."""
    proc = start(out)
    wait_for_rows(proc, out)
    config = pjs.make_config("CartPole-v1", "ppo", num_envs=4, num_steps=16, total_timesteps=ITERATIONS * 64)
    with pytest.raises(pjs.RunDirError, match="being written by another train process"):
        pjs.train(config, pjs.make_grid(config, num_seeds=2), out, pjs.RunOptions(resume=True))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err
    assert len(err.strip().splitlines()) == 1 and "checkpoint saved" in err and "--resume" in err
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and 3 <= saved[-1] < ITERATIONS
    assert not (out / "summary.json").exists()
    return saved[-1]


def test_sigterm_saves_a_checkpoint_at_the_next_chunk_and_resume_finishes_the_run(tmp_path):
    out = tmp_path / "stopped"
    stopped_at = stop_with(signal.SIGTERM, out)
    # every row up to the checkpoint is kept; resume writes the rest, each (run, iteration) once
    assert iterations_written(out) >= stopped_at
    assert cli("train", "--resume", str(out), "--quiet").returncode == 0
    run, iteration = CSV_COLUMNS.index("run"), CSV_COLUMNS.index("iteration")
    keys = [(line.split(",")[run], line.split(",")[iteration]) for line in rows_of(out)]
    assert len(keys) == len(set(keys)) == 2 * ITERATIONS
    assert (out / "summary.json").is_file()


def test_a_grid_too_large_for_memory_is_refused_before_anything_is_allocated(tmp_path):
    out = tmp_path / "huge"
    result = cli("train", "--env", "CartPole-v1", "--num-seeds", "100000", "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "GiB" in lines[0] and "--num-seeds" in lines[0] and "--devices" in lines[0]
    assert not (out / "metrics.csv").exists()


# A process under a file-size limit must not write bytecode: a cache file cut short by the limit would
# break that module's import for every later process.
NO_BYTECODE = {**__import__("os").environ, "PYTHONDONTWRITEBYTECODE": "1"}


def limit_file_size(size):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.parametrize("limit, what", [(12_000, "metrics.csv"), (200_000, "a checkpoint")])
def test_a_full_disk_ends_in_one_line_and_resume_continues(tmp_path, limit, what):
    out = tmp_path / "run"
    # ppo: what is written and when does not depend on the algorithm, and it compiles in half the time
    result = subprocess.run(
        [sys.executable, "-m", "purejaxspi.cli", "train", *SMALL_RUN, "--algo", "ppo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit_file_size(limit),
        env=NO_BYTECODE,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no space left writing {what}" in lines[0] and "--resume" in lines[0], result.stderr
    assert (out / "config.json").is_file()
    resumed = cli("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "summary.json").is_file()


def test_the_same_command_twice_writes_bitwise_identical_metrics(tmp_path):
    args = (
        "--env",
        "CartPole-v1",
        "--num-seeds",
        "2",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--total-timesteps",
        "1024",
        "--quiet",
    )
    for name in ("a", "b"):
        assert cli("train", *args, "--out", str(tmp_path / name)).returncode == 0
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
