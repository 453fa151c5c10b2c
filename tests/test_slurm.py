"""The SLURM job template's body, run on the CPU under the variables SLURM sets: a fresh job trains into
its run directory with a time limit taken from the job's end, a requeued one resumes it, and one with
too little time left does not start."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains a small run twice through the template

ROOT = Path(__file__).parents[1]
ARGS = "--env CartPole-v1 --algo ppo --num-seeds 2 --num-envs 4 --num-steps 16 --total-timesteps 1024"


def sbatch(out: Path, seconds_left: int) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "test",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_END_TIME": str(int(time.time()) + seconds_left),
        "OUT": str(out),
        "ARGS": ARGS,
        "PUREJAXSPI": f"{sys.executable} -m purejaxspi.cli",
    }
    return subprocess.run(
        ["bash", "scripts/slurm/train.sbatch"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_job_trains_with_its_time_limit_and_a_requeued_one_resumes(tmp_path):
    out = tmp_path / "run"
    first = sbatch(out, 1000)
    assert first.returncode == 0, first.stderr
    launched = re.search(r"purejaxspi\.sbatch: train (.*) --out (\S+) --time-limit (\d+)", first.stderr)
    assert launched and launched.group(2) == str(out), first.stderr
    assert 600 <= int(launched.group(3)) <= 700  # the job's end less the 300 s margin
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    again = sbatch(out, 1000)  # requeued: the same job id finds its run
    assert again.returncode == 0, again.stderr
    assert f"train --resume {out} --time-limit" in again.stderr


def test_a_job_with_too_little_time_left_does_not_start(tmp_path):
    result = sbatch(tmp_path / "run", 320)
    assert result.returncode == 0 and "not starting" in result.stderr
    assert not (tmp_path / "run").exists()
