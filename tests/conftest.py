"""Shared fixtures: one small finished CartPole run (4 seeds) that eval, plot and resume tests read."""

import subprocess
import sys

import pytest

SMALL_RUN = ("--env", "CartPole-v1", "--num-seeds", "4", "--num-envs", "4", "--num-steps", "32",
             "--total-timesteps", "1536", "--chunk-iterations", "3", "--quiet")


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "purejaxspi.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished 12-iteration run; tests copy it before changing anything in it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = cli("train", *SMALL_RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out
