"""`purejaxspi plot`: learning curves per setting and rliable aggregates, from any metrics.csv column."""

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import cli

from purejaxspi.analysis.plot import RunCurve, binned, label_groups


def test_binned_curves_average_within_bins_and_carry_the_last_value_forward():
    curve = RunCurve(
        "E", {}, 0, np.array([10.0, 20, 30, 40, 50, 60]), np.array([1.0, 3, np.nan, np.nan, 5, np.nan]), np.ones(6)
    )
    edges = np.array([0.0, 20, 40, 60])
    np.testing.assert_allclose(binned(curve, edges), [2.0, 2.0, 5.0])


def test_groups_are_named_by_what_differs():
    curves = [
        RunCurve("E", {"algo": "ppo", "hp_learning_rate": lr, "num_envs": 4}, s, np.ones(1), np.ones(1), np.ones(1))
        for lr in (0.001, 0.003)
        for s in (0, 1)
    ]
    assert label_groups(curves) == ["ppo learning_rate=0.001", "ppo learning_rate=0.003"]


def test_two_algorithms_presets_are_named_by_the_algorithm_alone():
    """Presets differ in many settings at once; the names say only what tells the groups apart."""

    def run(algo, seed, **settings):
        return RunCurve("E", {"algo": algo, **settings}, seed, np.ones(1), np.ones(1), np.ones(1))

    deepspi = {"num_envs": 128, "num_steps": 8, "reward_coef": 0.1, "hp_learning_rate": 0.001}
    ppo = {"num_envs": 8, "num_steps": 128, "reward_coef": 0.0, "hp_learning_rate": 0.001}
    curves = [run("deepspi", s, **deepspi) for s in (0, 1)] + [run("ppo", s, **ppo) for s in (0, 1)]
    assert label_groups(curves) == ["deepspi", "ppo"]
    # a learning-rate sweep inside each algorithm: the rate joins, the preset's co-varying settings do not
    swept = curves + [run("ppo", 0, **{**ppo, "hp_learning_rate": 0.003})]
    assert label_groups(swept) == ["deepspi learning_rate=0.001", "ppo learning_rate=0.001", "ppo learning_rate=0.003"]


def test_final_score_weights_iterations_by_their_episodes_as_the_summary_does():
    # 20 iterations of 10 steps: the final window is the last two; 3 episodes of mean 1, then 1 of mean 5
    steps = np.arange(1, 21) * 10.0
    values = np.full(20, 7.0)
    values[-2:] = [1.0, 5.0]
    episodes = np.ones(20)
    episodes[-2:] = [3, 1]
    curve = RunCurve("E", {}, 0, steps, values, episodes)
    assert curve.final() == (3 * 1.0 + 1 * 5.0) / 4


def _as_other_algo(src, dst, algo, shift):
    """A copy of a run relabelled as another algorithm, its returns shifted by `shift`."""
    shutil.copytree(src, dst)
    record = json.loads((dst / "config.json").read_text())
    record["config"]["algo"] = algo
    (dst / "config.json").write_text(json.dumps(record))
    rows = list(csv.reader((src / "metrics.csv").read_text().splitlines()))
    column = rows[0].index("episodic_return")
    for row in rows[1:]:
        if row[column]:
            row[column] = repr(float(row[column]) + shift)
    with open(dst / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.slow
def test_plot_draws_curves_and_aggregates_for_two_algorithms(trained_run, tmp_path):
    _as_other_algo(trained_run, tmp_path / "better", "deepmdp", 1000.0)
    out = tmp_path / "new" / "folder" / "fig.png"  # made, as train --out makes its own
    result = cli("plot", str(trained_run), str(tmp_path / "better"), "--out", str(out), "--reps", "300")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 20_000 and out.read_bytes()[:4] == b"\x89PNG"
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert set(numbers["groups"]) == {"deepspi", "deepmdp"}
    assert numbers["groups"]["deepspi"]["CartPole-v1"]["seeds"] == [0, 1, 2, 3]
    for group, stats in numbers["aggregates"].items():
        for name in ("IQM", "Median", "Mean", "Optimality gap"):
            low, high = stats[name]["ci"]
            assert low <= stats[name]["point"] <= high, (group, name)
    assert numbers["aggregates"]["deepmdp"]["IQM"]["point"] == pytest.approx(
        numbers["aggregates"]["deepspi"]["IQM"]["point"] + 1000.0
    )
    # every shifted seed beats every original seed
    assert numbers["probability_of_improvement"]["deepspi  >  deepmdp"]["point"] == 0.0
    named = tmp_path / "named.png"
    args = ("plot", str(trained_run), str(tmp_path / "better"), "--reps", "100", "--out", str(named))
    assert cli(*args, "--labels", "ours", "shifted").returncode == 0
    assert set(json.loads(named.with_suffix(".json").read_text())["groups"]) == {"ours", "shifted"}
    one = cli(*args, "--labels", "ours")
    assert one.returncode == 2 and "--labels gives 1 names for 2 settings" in one.stderr


@pytest.mark.slow
def test_any_metrics_column_can_be_plotted_and_unknown_ones_are_refused(trained_run, tmp_path):
    result = cli(
        "plot",
        str(trained_run),
        "--metric",
        "entropy",
        "--aggregate",
        "mean",
        "--reps",
        "200",
        "--out",
        str(tmp_path / "entropy.png"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "entropy.json").read_text())["metric"] == "entropy"
    result = cli("plot", str(trained_run), "--metric", "episodic_retrun", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no column 'episodic_retrun'" in lines[0] and "episodic_return" in lines[0]


def test_bootstrap_intervals_are_reproducible_for_a_seed():
    """rliable resamples with numpy's global generator; the plot's seed must still fix every interval."""
    import numpy as np

    from purejaxspi.analysis.stats import aggregate_estimates, curve_estimates

    scores = {"a": np.random.default_rng(0).normal(size=(16, 3)), "b": np.random.default_rng(1).normal(size=(16, 3))}
    first, again = aggregate_estimates(scores, 1.0, 300, 7), aggregate_estimates(scores, 1.0, 300, 7)
    for group in scores:
        np.testing.assert_array_equal(first[1][group], again[1][group])
    np.random.seed(123)  # the caller's global state neither changes the result nor is changed by it
    np.testing.assert_array_equal(
        curve_estimates(scores["a"], "iqm", 300, 7)[1], curve_estimates(scores["a"], "iqm", 300, 7)[1]
    )
    assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)
