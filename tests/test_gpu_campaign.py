"""`bash benchmarks/gpu.sh --dry-run`: every stage of the GPU campaign runs on the CPU at tiny sizes and the
report holds every table, so the campaign cannot rot before a GPU is lent. Where a package index is
reachable it runs as on an offline node: from the wheelhouse, installed with pip and no index beside a
jax-only environment."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import needs_envpool

pytestmark = [pytest.mark.slow, needs_envpool]  # its stages include Atari's bench

ROOT = Path(__file__).parents[1]
PYTHON_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def index_reachable(url: str = "https://pypi.org/simple/tyro/") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except OSError:
        return False


def offline_node(tmp_path: Path) -> tuple[list[str], dict]:
    """Where a package index is reachable: the wheelhouse for this Python, and a fresh environment with
    jax alone (a GPU node's own), whose python the campaign installs the wheelhouse beside with pip and
    no index. Elsewhere the campaign runs in the project's environment."""
    if not index_reachable() or shutil.which("uv") is None:
        return [], {"SYNC": "0"}
    wheels, node = tmp_path / "wheelhouse", tmp_path / "node"
    version = PYTHON_VERSION
    made = subprocess.run(
        ["bash", "scripts/wheelhouse.sh", str(wheels)], cwd=ROOT, env={**os.environ, "PYTHON_VERSION": version},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    jax_version = importlib.metadata.version("jax")
    subprocess.run(["uv", "venv", "-q", str(node), "-p", sys.executable], check=True, timeout=300)
    jax_only = [f"jax=={jax_version}", f"jaxlib=={jax_version}", "pip"]
    python = str(node / "bin" / "python")
    subprocess.run(["uv", "pip", "install", "-q", "-p", python, *jax_only], check=True, timeout=600)
    return ["--wheelhouse", str(wheels)], {"PYTHON": python}


def test_the_campaign_dry_run_passes_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / "gpu"
    extra, node_env = offline_node(tmp_path)
    env = {**os.environ, "OUT": str(out), **node_env}
    result = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--dry-run", *extra], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [json.loads(line) for line in (out / "stages.jsonl").read_text().splitlines()]
    if extra:  # the wheelhouse went in with pip and no index, beside the node's jax
        assert stages.pop(0)["stage"] == "setup"
        assert not (out / "site" / "lib" / f"python{PYTHON_VERSION}" / "site-packages" / "jax").exists()
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
