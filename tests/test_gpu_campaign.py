"""`bash benchmarks/gpu.sh --dry-run`: every stage of the GPU campaign runs on the CPU at tiny sizes and the
report holds every table, so the campaign cannot rot before a GPU is lent: Atari through envpool's XLA
step and through the callback, each in its own stage; the mixture head and the convolutions; the memory
guard; the MinAtar benchmark's record. Where a package index is reachable it runs as on an offline
node: from the wheelhouse, installed with pip, no index and no dependency resolution, beside a
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
    """Where a package index is reachable: the wheelhouse's archive for this Python, and a fresh
    environment with jax alone (a GPU node's own), whose python the campaign installs the wheelhouse
    beside with pip and no index. Elsewhere the campaign runs in the project's environment."""
    if not index_reachable() or shutil.which("uv") is None:
        return [], {"SYNC": "0"}
    wheels, node = tmp_path / "wheelhouse", tmp_path / "node"
    version = PYTHON_VERSION
    made = subprocess.run(
        # XZ_LEVEL 0: the archive's path, quickly (a node is handed it at level 9)
        ["bash", "scripts/wheelhouse.sh", str(wheels)], cwd=ROOT,
        env={**os.environ, "PYTHON_VERSION": version, "XZ_LEVEL": "0"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    jax_version = importlib.metadata.version("jax")
    subprocess.run(["uv", "venv", "-q", str(node), "-p", sys.executable], check=True, timeout=300)
    jax_only = [f"jax=={jax_version}", f"jaxlib=={jax_version}", "pip"]
    python = str(node / "bin" / "python")
    subprocess.run(["uv", "pip", "install", "-q", "-p", python, *jax_only], check=True, timeout=600)
    return ["--wheelhouse", f"{wheels}.tar.xz"], {"PYTHON": python}  # the archive a node is handed


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
        "atari-xla",
        "atari-callback",
        "bench-minatar",
        "guard",
        "minatar",
    ]
    assert all(s["status"] == "ok" for s in stages), [s for s in stages if s["status"] != "ok"]
    report = (out / "report.md").read_text()
    for section in (
        "## Machine",
        "## Stages",
        "## Atari on the GPU",
        "## The mixture head's cost",
        "Convolutions (s/iter)",
        "More runs against one",
        "## The peer row",
        "## Memory guard",
        "## The real-budget MinAtar benchmark",
    ):
        assert section in report, section
    assert "no result" not in report and "no record" not in report
    # each interface in its own stage, with the pool's threads and the frames it sends to the device
    for interface in ("xla", "callback"):
        rows = json.loads((out / f"bench-atari-{interface}.json").read_text())
        assert {r["envpool_interface"] for r in rows} == {interface}
        assert all(r["pool_threads"] >= 1 and r["host_to_device_bytes_per_second"] > 0 for r in rows)
        assert all(r["env_only_steps_per_second"] > 0 for r in rows)
    # the MinAtar benchmark recorded each (game, algorithm) it finished, for a later session to table
    record = out / "minatar" / "minatar_8192.runs.jsonl"
    pairs = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["game"], r["algo"]) for r in pairs] == [("Breakout-MinAtar", a) for a in ("ppo", "deepmdp", "deepspi")]
    assert "GiB" in (out / "guard.txt").read_text()


def test_only_runs_the_named_stages_and_bad_arguments_exit_2(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "OUT": str(out), "SYNC": "0"}
    result = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--dry-run", "--only", "guard"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [json.loads(line)["stage"] for line in (out / "stages.jsonl").read_text().splitlines()]
    assert stages == ["info", "guard"]
    assert "not run (no --purejaxrl DIR)" in (out / "report.md").read_text()
    for bad in (["--purejaxrl", str(tmp_path)], ["--bogus"]):
        refused = subprocess.run(["bash", "benchmarks/gpu.sh", *bad], cwd=ROOT, capture_output=True, text=True)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
