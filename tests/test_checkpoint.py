"""Checkpoints: a SIGKILLed run resumes to the metrics of a run never stopped; bad checkpoints and
reused output directories are refused with one line, and nothing already written is lost."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from operator import itemgetter

import numpy as np
import pytest
from conftest import SMALL_RUN, cli

from purejaxspi.lifecycle import checkpoint

pytestmark = pytest.mark.slow  # whole programs trained, resumed or sharded


def finished_steps(run_dir):
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def rows(run_dir):
    """metrics.csv's rows by (run, iteration); their order depends on the chunking, their content must not."""
    header, *body = (run_dir / "metrics.csv").read_text().splitlines()
    return header, sorted(
        body,
        key=lambda line: tuple(int(x) for x in itemgetter(0, header.split(",").index("iteration"))(line.split(","))),
    )


def final_returns(run_dir):
    return [r["final_return"] for r in json.loads((run_dir / "summary.json").read_text())["runs"]]


def test_a_killed_run_resumes_to_the_metrics_of_an_uninterrupted_one(trained_run, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purejaxspi.cli",
            "train",
            *SMALL_RUN,
            "--chunk-iterations",
            "1",
            "--checkpoint-interval",
            "0",
            "--out",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not finished_steps(killed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    steps = finished_steps(killed)
    assert steps and steps[-1] < 12, f"the run must die between its first and last checkpoint, had {steps}"
    assert not (killed / "summary.json").exists()

    # trained_run chunked by 3 iterations, this run by 1: iterations are functions of the state alone
    result = cli("train", "--resume", str(killed), "--chunk-iterations", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert rows(killed) == rows(trained_run)
    assert final_returns(killed) == final_returns(trained_run)
    assert finished_steps(killed)[-1] == 12 and len(finished_steps(killed)) <= 3  # keeps the newest 3


def test_resuming_a_finished_run_changes_nothing(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    result = cli("train", "--resume", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (out / "metrics.csv").read_bytes() == (trained_run / "metrics.csv").read_bytes()
    # the final-window sums behind final_return come back with the checkpoint's metrics cursor
    assert final_returns(out) == final_returns(trained_run)


def test_an_existing_run_directory_is_refused_without_resume_or_overwrite(trained_run, tmp_path):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()}
    result = cli("train", *SMALL_RUN, "--out", str(trained_run))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0] and "--overwrite" in lines[0], result.stderr
    assert {p.name: p.read_bytes() for p in trained_run.iterdir() if p.is_file()} == before


def test_overwrite_replaces_the_run(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    (out / "notes.txt").write_text("mine")
    result = cli(
        "train",
        *SMALL_RUN,
        "--algo",
        "ppo",
        "--seed",
        "7",
        "--total-timesteps",
        "256",
        "--out",
        str(out),
        "--overwrite",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["config"]["algo"] == "ppo"
    assert finished_steps(out) == [2]  # the old run's checkpoints are gone
    assert (out / "notes.txt").read_text() == "mine"  # files the run did not write stay


def test_resume_with_other_settings_names_the_mismatch(trained_run):
    before = (trained_run / "metrics.csv").read_bytes()
    result = cli("train", "--resume", str(trained_run), "--total-timesteps", "4096")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "total_timesteps: 1536 vs 4096" in lines[0], result.stderr
    assert (trained_run / "metrics.csv").read_bytes() == before


def _damage(run_dir):
    """Overwrite every array data file of the newest checkpoint with garbage."""
    step = finished_steps(run_dir)[-1]
    data = [p for p in (run_dir / "checkpoints" / str(step)).rglob("*") if p.is_file() and p.parent.name == "d"]
    assert data
    for p in data:
        p.write_bytes(b"not a checkpoint" * 10)
    return step


def _write_foreign_checkpoint(run_dir):
    """A complete, readable checkpoint of some other program at a later step."""
    manager = checkpoint.open_manager(run_dir, keep=10)
    checkpoint.save(manager, 99, {"weights": np.zeros((3, 3), np.float32)}, {"iteration": np.int64(99)})
    manager.close()
    return 99


def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before_and_is_set_aside(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    step = _write_foreign_checkpoint(out)
    foreign = {
        p.relative_to(out / "checkpoints" / str(step)): p.read_bytes()
        for p in (out / "checkpoints" / str(step)).rglob("*")
        if p.is_file()
    }
    result = cli("train", "--resume", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()  # the fallback's line, then the resume's: ours alone
    assert all(line.startswith("purejaxspi: note: ") for line in lines) and len(lines) == 2, result.stderr
    assert str(out / "checkpoints" / str(step)) in lines[0], result.stderr
    assert str(out / "checkpoints" / "12") in lines[0] and "damaged-checkpoints" in lines[0]
    kept = out / "damaged-checkpoints" / str(step)  # moved, never deleted
    assert {p.relative_to(kept): p.read_bytes() for p in kept.rglob("*") if p.is_file()} == foreign


@pytest.mark.parametrize("damage", [_damage])
def test_a_corrupt_checkpoint_with_none_older_is_one_line_naming_it(trained_run, tmp_path, damage):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    step = damage(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = cli("train", "--resume", str(out), "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out / "checkpoints" / str(step)) in lines[0], result.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
