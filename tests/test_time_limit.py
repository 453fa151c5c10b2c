"""`train --time-limit`: a cluster job's wall-clock limit ends the run at a chunk boundary, checkpointed,
with a summary of what ran; `--resume` finishes it as if it had never stopped."""

import json

import pytest
from conftest import cli
from test_guards import ITERATIONS, LONG_RUN, rows_of

pytestmark = pytest.mark.slow


def test_a_time_limit_stops_at_a_chunk_boundary_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    result = cli("train", *LONG_RUN, "--time-limit", "8", "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped at the time limit" in lines[0] and f"--resume {out}" in lines[0]
    summary = json.loads((out / "summary.json").read_text())
    done = summary["iterations_done"]
    assert summary["complete"] is False and 0 < done < ITERATIONS and summary["num_iterations"] == ITERATIONS
    saved = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    assert saved[-1] == done and len(rows_of(out)) == 2 * done
    resumed = cli("train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["iterations_done"] == ITERATIONS
    assert len(rows_of(out)) == 2 * ITERATIONS


def test_a_negative_time_limit_is_refused(tmp_path):
    result = cli("train", "--env", "CartPole-v1", "--time-limit", "-1", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "--time-limit must be finite and non-negative" in result.stderr
