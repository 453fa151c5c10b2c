"""benchmarks/minatar.py: its statistics against numpy/scipy, and one tiny end-to-end call."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script
from scipy.stats import trim_mean, wilcoxon

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "minatar.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("minatar", "minatar_benchmark")


def test_iqm_and_its_bootstrap_interval(bench):
    scores = np.random.default_rng(0).normal(10.0, 3.0, size=16)
    point, low, high = bench.iqm_with_ci(scores, reps=500)
    assert point == pytest.approx(trim_mean(scores, 0.25))
    assert low < point < high
    assert low > scores.min() and high < scores.max()
    assert bench.iqm_with_ci(scores, reps=500) == (point, low, high)  # the same seed, the same interval


def test_normalise_maps_random_to_zero_and_reference_to_one(bench):
    np.testing.assert_allclose(bench.normalise([2.0, 30.0, 16.0], 2.0, 30.0), [0.0, 1.0, 0.5])


def test_paired_wilcoxon_matches_scipy_and_drops_unfinished_pairs(bench):
    rng = np.random.default_rng(1)
    mdp = rng.uniform(1.0, 2.0, size=20)
    spi = mdp - rng.uniform(0.0, 0.3, size=20)
    spi[3] = np.nan
    out = bench.paired_wilcoxon(spi, mdp)
    keep = np.isfinite(spi)
    assert out["pairs"] == 19
    assert out["share_deepspi_lower"] == 1.0
    assert out["p_two_sided"] == pytest.approx(wilcoxon(spi[keep], mdp[keep]).pvalue)
    assert out["p_deepspi_lower"] < 0.001


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_end_to_end_writes_results_and_reads_finished_runs_back(tmp_path):
    args = (
        "--games",
        "Breakout-MinAtar",
        "--algos",
        "deepmdp",
        "deepspi",
        "--num-seeds",
        "2",
        "--budget",
        "8192",
        "--reps",
        "100",
        "--random-steps",
        "1500",
        "--eval-episodes",
        "4",
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
    )
    first = run_script(*args)
    assert first.returncode == 0, first.stderr
    results = json.loads((tmp_path / "out" / "minatar_8192.json").read_text())
    assert (tmp_path / "out" / "minatar_8192.png").stat().st_size > 10_000
    game = results["per_game"]["Breakout-MinAtar"]
    assert len(game["final_return"]["deepspi"]) == 2
    # a seed's final return is its evaluation's mean over the final policy's episodes
    evaluation = json.loads((tmp_path / "runs" / "8192-preset" / "Breakout-MinAtar-deepspi" / "eval.json").read_text())
    assert evaluation["episodes"] == 4 and evaluation["iteration"] == 1
    assert game["final_return"]["deepspi"] == [run["mean_return"] for run in evaluation["runs"]]
    assert len(game["training_final_return"]["deepspi"]) == 2
    assert len(game["final_transition_loss"]["deepmdp"]) == 2
    assert results["transition_loss"]["pairs"] == 2
    assert game["normaliser"]["high"] == 28.0 and 0.0 < game["normaliser"]["low"] < 28.0
    # the aggregate is rliable's IQM of the per-seed normalised scores (one game: their trimmed mean)
    low = game["normaliser"]["low"]
    scores = (np.asarray(game["final_return"]["deepspi"]) - low) / (28.0 - low)
    assert np.all(np.isfinite(scores))
    assert results["aggregate"]["deepspi"]["IQM"]["point"] == pytest.approx(trim_mean(scores, 0.25))

    metrics_csv = tmp_path / "runs" / "8192-preset" / "Breakout-MinAtar-deepspi" / "metrics.csv"
    written = metrics_csv.stat().st_mtime_ns
    again = run_script(*args)
    assert again.returncode == 0, again.stderr
    assert "finished earlier" in again.stdout
    assert metrics_csv.stat().st_mtime_ns == written
    assert json.loads((tmp_path / "out" / "minatar_8192.json").read_text())["per_game"] == results["per_game"]


def test_bad_game_exits_2_with_one_line(tmp_path):
    result = run_script("--games", "CartPole-v1", "--runs", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: CartPole-v1 is not a MinAtar game"]
