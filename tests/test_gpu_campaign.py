"""`bash benchmarks/gpu.sh --dry-run`: every stage of the GPU campaign runs on the CPU at tiny sizes and the
report holds every table, so the campaign cannot rot before a GPU is lent."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import needs_envpool

pytestmark = [pytest.mark.slow, needs_envpool]  # its stages include Atari's bench

ROOT = Path(__file__).parents[1]


def test_the_campaign_dry_run_passes_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "OUT": str(out), "SYNC": "0"}
    result = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500
    )
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in stages] == [
        "info",
        "smoke",
        "smoke-cached",
        "bench-cartpole",
        "bench-minatar",
        "bench-atari",
        "learn-ppo",
        "learn-deepspi",
        "grid-ppo",
        "grid-deepmdp",
        "grid-deepspi",
        "guard",
    ]
    assert all(s["status"] == "ok" for s in stages), [s for s in stages if s["status"] != "ok"]
    report = (out / "report.md").read_text()
    for section in (
        "## Machine",
        "## Stages",
        "## Throughput",
        "Convolutions (s/iter)",
        "## Learning in a fixed wall",
        "## The paper's gridworld",
        "## Memory guard",
    ):
        assert section in report, section
    assert "no summary" not in report and "no result" not in report
    # the learning stage stopped at its time limit with a checkpoint and a partial summary
    summary = json.loads((out / "runs" / "learn-ppo" / "summary.json").read_text())
    assert summary["complete"] is False and summary["iterations_done"] > 0
    assert "GiB" in (out / "guard.txt").read_text()
