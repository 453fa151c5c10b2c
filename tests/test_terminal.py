"""When the terminal goes away or the accelerator is missing: a job whose output pipe closes runs to its
end (its lines in DIR/train.log), a backend that cannot start is one line from every command, and a
damaged run directory is one line from the command that reads it."""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import cli

# PPO on CartPole in one-iteration chunks: a progress line every iteration, so output follows the close
PIPED_RUN = (
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
    str(24 * 64),
    "--chunk-iterations",
    "1",
)


@pytest.mark.slow
@pytest.mark.parametrize("both", [False, True], ids=["stdout | head -1", "2>&1 | head -1"])
def test_a_closed_output_pipe_does_not_stop_the_job(tmp_path, both):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "purejaxspi.cli", "train", *PIPED_RUN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if both else subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "compiling" in proc.stdout.readline()  # the plan line, then the reader leaves
    proc.stdout.close()
    proc.wait(timeout=600)
    err = "" if both else proc.stderr.read()
    assert proc.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["iterations_done"] == 24
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2 * 24
    log = (out / "train.log").read_text()
    assert "stdout went away (Broken pipe)" in log and f"outputs in {out}" in log.splitlines()[-1], log
    assert "\x1b" not in log and "Traceback" not in log + err
    if not both:  # stderr still shows: it says where the lines went, once
        note = f"stdout went away (Broken pipe); training goes on, its lines go to {out / 'train.log'}"
        assert err.strip() == f"purejaxspi: note: {note}", err


GPU_HERE = bool(glob.glob("/dev/nvidia[0-9]*"))


@pytest.mark.skipif(GPU_HERE, reason="JAX_PLATFORMS=cuda may start here: the test needs a machine without CUDA")
def test_a_missing_accelerator_is_one_line_from_every_command(trained_run, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cuda"}
    info = cli("info", env=env)
    assert info.returncode == 2, info.stderr
    version, platform = info.stdout.splitlines()[:2]  # and what it can say without a backend
    assert version.startswith("purejaxspi ") and platform.startswith("platform: none started")
    assert "packages: jax" in info.stdout
    (line,) = info.stderr.strip().splitlines()
    for words in ("JAX_PLATFORMS=cuda", "no NVIDIA GPU is visible", "uv sync --extra cuda", "nvidia-smi", "unset"):
        assert words in line, line
    as_json = cli("info", "--json", env=env)
    assert as_json.returncode == 2 and line.endswith(json.loads(as_json.stdout)["error"])
    for command in (("train", "--out", str(tmp_path / "run")), ("eval", str(trained_run), "--episodes", "1")):
        result = cli(*command, env=env)
        text = (result.stdout + result.stderr).strip()
        assert result.returncode == 2 and len(text.splitlines()) <= 3 and line in text, text
        assert "Traceback" not in text
    assert not (tmp_path / "run").exists()


def make_checkpoints_a_file(run):
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").write_text("")


def make_metrics_a_folder(run):
    (run / "metrics.csv").unlink()
    (run / "metrics.csv").mkdir()


def drop_state_metadata(run):
    (run / "checkpoints" / "12" / "default" / "_METADATA").unlink()


# (damage, what train --resume, eval and plot each say: a phrase of their one line, or None for success)
DAMAGES = {
    "checkpoints a file": (
        make_checkpoints_a_file,
        ("checkpoints is a file where the run keeps a folder", "checkpoints is a file", None),
    ),
    "metrics.csv a folder": (
        make_metrics_a_folder,
        ("metrics.csv is a folder where the run keeps a file", None, "metrics.csv is a folder"),
    ),
    "a checkpoint without its metadata": (
        drop_state_metadata,
        ("its metadata (default/_METADATA) is missing", "its metadata (default/_METADATA) is missing", None),
    ),
}
COMMANDS = {
    "train --resume": lambda run: ("train", "--resume", str(run), "--quiet"),
    "eval": lambda run: ("eval", str(run), "--episodes", "1"),
    "plot": lambda run: ("plot", str(run), "--out", str(run / "curves.png")),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_directory_is_one_line_and_loses_nothing(trained_run, tmp_path, damage):
    make_damage, expected = DAMAGES[damage]
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    make_damage(run)
    rows = (run / "metrics.csv").read_text() if (run / "metrics.csv").is_file() else None
    for (name, command), phrase in zip(COMMANDS.items(), expected):
        result = cli(*command(run))
        if phrase is None:  # the damage is in what this command does not read
            assert result.returncode == 0, (name, result.stderr)
            continue
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and phrase in lines[0], (name, result.stderr)
    if rows is not None:
        assert (run / "metrics.csv").read_text() == rows


@pytest.mark.slow
def test_a_checkpoint_missing_only_its_bookkeeping_file_resumes_quietly(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "checkpoints" / "12" / "_CHECKPOINT_METADATA").unlink()
    (run / "summary.json").unlink()
    result = cli("train", "--resume", str(run), "--quiet")
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr
    assert (run / "summary.json").is_file()


def test_a_stream_whose_reader_left_sends_its_lines_to_the_log_and_never_raises(tmp_path):
    """What `train ... | head -1` does to stdout, in one process: the write that fails, and every later
    one, land in the log (a progress bar's redraws excepted); the descriptor then points at /dev/null."""
    from purejaxspi.lifecycle.runlog import Lasting

    read_end, write_end = os.pipe()
    inner = os.fdopen(write_end, "w")
    lost = []
    stream = Lasting(inner, "stdout", on_lost=lost.append)
    stream.follow(tmp_path / "train.log")
    stream.write("first line\n")
    assert os.read(read_end, 100) == b"first line\n"
    os.close(read_end)  # the reader leaves
    stream.write("second line\n")
    stream.write("\r\x1b[2K a bar's frame")
    print("third line", file=stream, flush=True)
    assert lost == [stream] and stream.lost == "Broken pipe" and not stream.isatty()
    log = (tmp_path / "train.log").read_text().splitlines()
    assert log[0].startswith("purejaxspi: stdout went away (Broken pipe) by ") and log[1:] == [
        "second line",
        "third line",
    ]
    assert os.path.samestat(os.fstat(inner.fileno()), os.stat(os.devnull))
    inner.close()


def test_the_same_signal_twice_at_once_is_one_stop_and_a_later_one_stops_now(tmp_path):
    """A closing terminal reaches a `uv run` job twice (the process group's SIGHUP and uv's forward):
    one stop; a signal after SAME_SIGNAL_SECONDS is the user's second and ends the job at once."""
    import signal

    from purejaxspi.lifecycle.guards import stop_signals

    # as in a terminal, whatever started the suite (under nohup SIGHUP would be ignored)
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        assert signal.SIGHUP in stop_signals()
        same_signal_twice_then_later(tmp_path)
    finally:
        signal.signal(signal.SIGHUP, previous)


def same_signal_twice_then_later(tmp_path):
    import signal
    import time

    from purejaxspi.lifecycle.guards import SAME_SIGNAL_SECONDS, StopSignals

    heard, ended = [], []
    with StopSignals(tmp_path, heard.append, ended.append) as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert stop.signum == signal.SIGHUP and len(heard) == 1 and not ended, heard
        assert "SIGHUP: stopping" in heard[0] and "a second SIGHUP stops now" in heard[0]
        time.sleep(SAME_SIGNAL_SECONDS)
        os.kill(os.getpid(), signal.SIGHUP)
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ended == [128 + signal.SIGHUP] and "SIGHUP again: stopped now" in heard[1]


def test_a_job_started_under_nohup_keeps_ignoring_sighup():
    import signal

    from purejaxspi.lifecycle.guards import stop_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in stop_signals() and signal.SIGTERM in stop_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)


AFTER_THE_COMMAND = """
import signal, sys
from purejaxspi.cli import main
given = sys.argv[1] == "given"
sys.argv = ["purejaxspi", "--version"]
stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
before = [signal.getsignal(s) for s in stops]
code = main(["--version"]) if given else main()
after = [signal.getsignal(s) for s in stops]
print(code, "restored" if after == before else "ignored" if after == [signal.SIG_IGN] * 3 else after)
"""


def test_a_stop_signal_while_a_finished_command_exits_is_ignored_and_an_in_process_call_restores_the_handlers():
    """The process's own command line: once the command returns its outputs are written, and a scheduler's
    SIGTERM during the interpreter's exit must not report the finished job as killed. `main(argv)` called
    in a Python session leaves the session's handlers as they were."""
    own, given = (
        subprocess.run([sys.executable, "-c", AFTER_THE_COMMAND, how], capture_output=True, text=True, timeout=120)
        for how in ("own", "given")
    )
    assert own.stdout.splitlines()[-1] == "0 ignored", own.stderr
    assert given.stdout.splitlines()[-1] == "0 restored", given.stderr
