"""The persistent compilation cache: the first run fills it, a rerun of the same program finds every
program there (nothing new is written) and trains the same, a run of another budget and chunk length
too; off, it is left alone."""

import csv
import os

import pytest
from conftest import cli

pytestmark = pytest.mark.slow

RUN = (
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
    "640",
    "--chunk-iterations",
    "5",
    "--quiet",
)


def entries(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_rerun_compiles_nothing_new_and_trains_the_same(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PUREJAXSPI_COMPILATION_CACHE": str(cache)}
    first = cli("train", *RUN, "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    filled = entries(cache)
    assert filled, "the first run cached its programs"
    second = cli("train", *RUN, "--out", str(tmp_path / "b"), env=env)
    assert second.returncode == 0, second.stderr
    assert entries(cache) == filled  # every program was found, none compiled anew
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
    # twice the budget in chunks of 3: the same programs (the anneal's step is an input, the metrics
    # rows a fixed buffer), annealed over the new length
    other = {"640": "1280", "5": "3"}
    longer = cli("train", *(other.get(a, a) for a in RUN), "--out", str(tmp_path / "long"), env=env)
    assert longer.returncode == 0, longer.stderr
    assert entries(cache) == filled
    with open(tmp_path / "long" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 20
    for row in rows:
        annealed = float(row["hp_learning_rate"]) * (1 - int(row["iteration"]) / 20)
        assert float(row["learning_rate"]) == pytest.approx(annealed, rel=1e-6)
    off = cli("train", *RUN, "--num-seeds", "3", "--compilation-cache", "False", "--out", str(tmp_path / "c"), env=env)
    assert off.returncode == 0 and entries(cache) == filled
