"""A real learning curve: Deep SPI on CartPole-v1, several seeds in one call, crosses 400."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a whole learning curve


def test_deepspi_learns_cartpole(tmp_path):
    out = tmp_path / "cartpole"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "purejaxspi.cli",
            "train",
            "--env",
            "CartPole-v1",
            "--algo",
            "deepspi",
            "--num-seeds",
            "4",
            "--budget",
            "preset",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    finals = [r["final_return"] for r in summary["runs"]]
    assert summary["final_return_median"] >= 400, finals
