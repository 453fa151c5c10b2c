"""benchmarks/minatar.py: its statistics against numpy/scipy, and one tiny end-to-end call."""

import json
import shutil
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
def test_the_record_is_appended_pair_by_pair_and_tabled_without_the_run_directories(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = (
        *("--games", "Breakout-MinAtar", "--algos", "deepmdp", "deepspi", "--num-seeds", "2", "--budget", "8192"),
        *("--reps", "100", "--random-steps", "1500", "--eval-episodes", "4", "--runs", str(runs), "--out", str(out)),
    )
    # an accelerator's session: train, evaluate and record, without the analysis packages' tables
    first = run_script(*args, "--no-table")
    assert first.returncode == 0, first.stderr
    assert not (out / "minatar_8192.json").exists()
    lines = [json.loads(line) for line in (out / "minatar_8192.runs.jsonl").read_text().splitlines()]
    assert [(r["game"], r["algo"]) for r in lines] == [("Breakout-MinAtar", "deepmdp"), ("Breakout-MinAtar", "deepspi")]
    # a seed's final return is its evaluation's mean over the final policy's episodes
    evaluation = json.loads((runs / "8192-preset" / "Breakout-MinAtar-deepspi" / "eval.json").read_text())
    assert evaluation["episodes"] == 4 and evaluation["iteration"] == 1
    assert lines[1]["final_return"] == [run["mean_return"] for run in evaluation["runs"]]
    assert len(lines[1]["curve"]["returns"]) == 2 and len(lines[0]["final_transition_loss"]) == 2

    # another machine: the run directories are gone, the record alone is tabled
    shutil.rmtree(runs)
    tabled = run_script(*args, "--table-only")
    assert tabled.returncode == 0, tabled.stderr
    assert not runs.exists()
    results = json.loads((out / "minatar_8192.json").read_text())
    assert (out / "minatar_8192.png").stat().st_size > 10_000
    game = results["per_game"]["Breakout-MinAtar"]
    assert game["final_return"]["deepspi"] == lines[1]["final_return"]
    assert game["final_transition_loss"]["deepmdp"] == lines[0]["final_transition_loss"]
    assert results["transition_loss"]["pairs"] == 2 and results["missing_games"] == []
    assert game["normaliser"]["high"] == 28.0 and 0.0 < game["normaliser"]["low"] < 28.0
    # the aggregate is rliable's IQM of the per-seed normalised scores (one game: their trimmed mean)
    low = game["normaliser"]["low"]
    scores = (np.asarray(game["final_return"]["deepspi"]) - low) / (28.0 - low)
    assert np.all(np.isfinite(scores))
    assert results["aggregate"]["deepspi"]["IQM"]["point"] == pytest.approx(trim_mean(scores, 0.25))
    # P(deepspi > deepmdp) on one game: the share of (deepspi seed, deepmdp seed) pairs it wins, ties half
    spi, mdp = np.asarray(game["final_return"]["deepspi"]), np.asarray(game["final_return"]["deepmdp"])
    wins = (spi[:, None] > mdp[None, :]).mean() + 0.5 * (spi[:, None] == mdp[None, :]).mean()
    assert results["probability_of_improvement"]["deepspi,deepmdp"]["point"] == pytest.approx(wins)
    assert "| Breakout-MinAtar | deepspi |" in tabled.stdout and "P(deepspi > deepmdp)" in tabled.stdout

    # a rerun trains nothing the record holds
    again = run_script(*args)
    assert again.returncode == 0, again.stderr
    assert f"Breakout-MinAtar deepspi: in {out / 'minatar_8192.runs.jsonl'}" in again.stdout
    assert not runs.exists()
    assert json.loads((out / "minatar_8192.json").read_text())["per_game"] == results["per_game"]


def test_a_cut_line_is_left_out_and_a_record_of_other_settings_refused(bench, tmp_path, capsys):
    path = tmp_path / "minatar_8192.runs.jsonl"
    line = {"game": "Breakout-MinAtar", "algo": "ppo", "key": {"budget": 8192}}
    path.write_text(json.dumps(line) + "\n" + json.dumps(line)[:20])  # a kill cut the second line short
    assert list(bench.read_records(path)) == [("Breakout-MinAtar", "ppo")]
    assert "unreadable line" in capsys.readouterr().out
    bench.append_record(path, {**line, "algo": "deepspi"})  # the next pair still gets a line of its own
    assert list(bench.read_records(path)) == [("Breakout-MinAtar", "ppo"), ("Breakout-MinAtar", "deepspi")]
    capsys.readouterr()
    args = bench.Args(games=("Breakout-MinAtar",), algos=("ppo",), out=tmp_path)
    with pytest.raises(SystemExit) as e:
        bench.train_all(args, path, 8192, None)
    assert e.value.code == 2 and "under other settings" in capsys.readouterr().err


def test_bad_game_exits_2_with_one_line(tmp_path):
    result = run_script("--games", "CartPole-v1", "--runs", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: CartPole-v1 is not a MinAtar game"]
