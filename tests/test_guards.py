"""Failures a user can cause end in one line with nothing already written lost: signals (SIGTERM, SIGHUP,
Ctrl-C), a second writer, a grid too large for memory, a full disk; and a run is the same when run again."""

import json
import random
import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import SMALL_PPO, SMALL_RUN, cli

import purejaxspi as pjs
from purejaxspi.lifecycle.metrics import CSV_COLUMNS

pytestmark = pytest.mark.slow  # whole programs trained, interrupted and resumed

# long enough (3,000 one-iteration chunks) for a signal to land mid-run; cheap in larger chunks
ITERATIONS = 3000
LONG_RUN = (*SMALL_PPO, "--total-timesteps", str(ITERATIONS * 64), "--chunk-iterations", "1", "--quiet")


def rows_of(run_dir):
    return sorted((run_dir / "metrics.csv").read_text().splitlines()[1:])


def iterations_written(run_dir):
    path = run_dir / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) // 2 if path.is_file() else 0


def start(out, *extra, flags=LONG_RUN, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "purejaxspi.cli", "train", *flags, "--out", str(out), *extra],
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
    acknowledged, stopped = err.strip().splitlines()  # at once, then when the checkpoint is saved
    assert "stopping after the chunk in flight" in acknowledged
    assert "checkpoint saved" in stopped and "--resume" in stopped
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


# A multi-chunk run of about 10-20 s on the 2-core CPU, in chunks of about half a second.
GRACE_RUN = (*SMALL_PPO, "--total-timesteps", str(400 * 64), "--chunk-seconds", "0.5", "--quiet")
GRACE_SECONDS = 30  # a scheduler's grace between SIGTERM and SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """GRACE_RUN never stopped, and its wall time."""
    out = tmp_path_factory.mktemp("whole") / "run"
    began = time.monotonic()
    assert cli("train", *GRACE_RUN, "--out", str(out)).returncode == 0
    return out, time.monotonic() - began


# SIGTERM: a scheduler's preemption. SIGHUP: the terminal or ssh session going away, which reaches a
# job run through `uv run` twice at once (from the process group, and forwarded by uv): one stop.
@pytest.mark.parametrize("signum, copies", [(signal.SIGTERM, 1), (signal.SIGHUP, 2)], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_at_a_random_moment_then_sigkill_after_the_grace_resumes_to_the_uninterrupted_run(
    uninterrupted, tmp_path, signum, copies
):
    whole, whole_seconds = uninterrupted
    moment = random.uniform(0.0, 0.9 * whole_seconds)
    out = tmp_path / "stopped"
    proc = start(out, flags=GRACE_RUN)
    time.sleep(moment)
    for _ in range(copies):
        proc.send_signal(signum)
        time.sleep(0.005)
    name = signal.Signals(signum).name
    try:
        _, err = proc.communicate(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running {GRACE_SECONDS} s after {name} at {moment:.1f} s: {err}")
    context = f"{name} at {moment:.1f} s of {whole_seconds:.1f} s: {err}"
    assert proc.returncode in (0, 128 + signum), context
    assert "Traceback" not in err and "again" not in err, context
    if proc.returncode:
        # a signal before the run directory was made leaves nothing: the job is started again
        again = ("--resume", str(out)) if (out / "config.json").is_file() else (*GRACE_RUN, "--out", str(out))
        resumed = cli("train", *again, "--quiet")
        assert resumed.returncode == 0, (context, resumed.stderr)
    assert rows_of(out) == rows_of(whole), context


def test_a_second_ctrl_c_stops_at_once_in_one_line_keeping_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    # 100 iterations of about 0.1 s and chunks of 20 s: the chunk after the first (compiling) one holds all
    # the rest, which the first stop would wait for
    args = ("--env", "CartPole-v1", "--algo", "ppo", "--num-seeds", "2", "--num-envs", "64", "--num-steps", "128")
    budget = ("--total-timesteps", str(64 * 128 * 100), "--chunk-seconds", "20", "--checkpoint-every", "1")
    cmd = [sys.executable, "-m", "purejaxspi.cli", "train", *args, *budget, "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(proc, out, iterations=1)  # the first chunk (one iteration) is written and saved
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 5, err
    assert proc.returncode == 128 + signal.SIGINT, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 2, err
    assert "stopping after the chunk in flight" in lines[0] and "a second Ctrl-C stops now" in lines[0]
    assert "SIGINT again: stopped now" in lines[1] and "--resume" in lines[1]
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and f"checkpoint at iteration {saved[-1]} is intact" in lines[1]
    resumed = cli("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "summary.json").read_text())["complete"]


def test_ctrl_c_while_compiling_leaves_a_directory_resume_starts_from_iteration_0(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    deadline = time.monotonic() + 120
    while not (out / "config.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # config.json comes before the compile, so this lands in it (or just before)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err
    assert "stopping before training starts" in err and "before training;" in err, err
    assert not (out / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (out / "checkpoints").iterdir())
    resumed = cli("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert iterations_written(out) == ITERATIONS


def test_the_first_progress_line_of_an_hours_long_run_comes_within_a_minute(tmp_path):
    """Deep SPI on the MinAtar preset's real budget (8 runs x 10M env steps: about 2.4 hours on this CPU)
    prints its plan at once, its time estimate and first progress line within a minute, and stops on
    SIGTERM."""
    began = time.monotonic()
    args = ("train", "--budget", "preset", "--num-seeds", "8", "--out", str(tmp_path / "run"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "purejaxspi.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    plan = proc.stdout.readline()
    first = proc.stdout.readline()  # the estimate after the first chunk
    progress = proc.stdout.readline()
    seconds = time.monotonic() - began
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "8 runs x 9,994,240 env steps (the preset's budget)" in plan, (plan, err)
    assert "to go at" in first and "elapsed" in progress and "ETA" in progress, (first, progress, err)
    assert seconds < 60, (seconds, first)
    assert proc.returncode == 128 + signal.SIGTERM, err
