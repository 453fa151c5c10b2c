"""Real learning curves: Deep SPI on CartPole-v1 crosses 400; PPO on Breakout-MinAtar leaves the random
policy far behind within 500k steps. Several seeds in one call each, thresholds from measured spreads."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a whole learning curve


def trained(out, *flags) -> dict:
    """`purejaxspi train FLAGS --out OUT --quiet` in its own process; the run's summary.json."""
    result = subprocess.run(
        [sys.executable, "-m", "purejaxspi.cli", "train", *flags, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "summary.json").read_text())


def test_deepspi_learns_cartpole(tmp_path):
    summary = trained(tmp_path, "--env", "CartPole-v1", "--algo", "deepspi", "--num-seeds", "4", "--budget", "preset")
    finals = [r["final_return"] for r in summary["runs"]]
    assert summary["final_return_median"] >= 400, finals


# PPO's MinAtar preset (gymnax-blines' recipe at lr 1e-3, constant, so the first 500k steps of a 10M run)
# on Breakout-MinAtar: 8 seeds measured at this budget ended at 12.4-23.7 (median 18.3; the random
# policy scores 0.41, the first iteration about 3.8). Each of 4 seeds must pass 8, their median 12.
MINATAR_STEPS = 500_000


def test_ppo_learns_breakout_minatar(tmp_path):
    flags = ("--env", "Breakout-MinAtar", "--algo", "ppo", "--num-seeds", "4", "--total-timesteps", str(MINATAR_STEPS))
    summary = trained(tmp_path, *flags)
    finals = [r["final_return"] for r in summary["runs"]]
    assert min(finals) >= 8 and summary["final_return_median"] >= 12, finals
