"""Sweeps as part of the tool: cells of two hyperparameters (plot --heatmap), per-setting IQMs in
summary.json, and the size of the world-model terms against the advantage in metrics.csv."""

import csv
import json

import numpy as np
import pytest
from conftest import cli, load_script
from scipy.stats import trim_mean

from purejaxspi.analysis.plot import RunCurve
from purejaxspi.analysis.sweep import sweep_panels
from purejaxspi.errors import PlotError
from purejaxspi.lifecycle import metrics


def test_the_summarys_trim_mean_is_scipys_to_the_bit():
    rng = np.random.default_rng(0)
    for shape, axis in (((7,), 0), ((16,), 0), ((4, 33), 0), ((2000, 5), 1), ((1,), 0)):
        values = rng.normal(size=shape) * 100
        np.testing.assert_array_equal(metrics.trim_mean(values, 0.25, axis), trim_mean(values, 0.25, axis))


SWEEP = (
    "train",
    "--env",
    "CartPole-v1",
    "--algo",
    "deepspi",
    "--density",
    "deterministic",
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
    "--reward-coef",
    "0",
    "0.5",
    "--transition-coef",
    "0",
    "2",
)


def _curve(algo, x, y, seed, final):
    steps = np.arange(1, 11) * 10.0
    return RunCurve(
        "E",
        {"algo": algo, "hp_reward_coef": x, "hp_transition_coef": y, "hp_gamma": 0.99},
        seed,
        steps,
        np.full(10, final),
        np.ones(10),
    )


def test_cells_group_seeds_by_the_two_values_and_panels_by_everything_else():
    rng = np.random.default_rng(0)
    finals = {
        (algo, x, y, s): float(rng.normal())
        for algo in ("deepspi", "deepmdp")
        for x in (0.0, 1.0)
        for y in (0.0, 0.5, 2.0)
        for s in range(5)
    }
    curves = [_curve(*key, value) for key, value in finals.items()]
    panels = sweep_panels(curves, "reward_coef", "hp_transition_coef", reps=200)
    assert sorted(p.group for p in panels) == ["deepmdp", "deepspi"]
    for panel in panels:
        assert panel.x_values == [0.0, 1.0] and panel.y_values == [0.0, 0.5, 2.0]
        for (x, y), cell in panel.cells.items():
            seeds = [finals[panel.group, x, y, s] for s in range(5)]
            assert sorted(c.seed for c in cell.curves) == list(range(5))
            assert cell.point == pytest.approx(trim_mean(seeds, 0.25))
            assert cell.ci[0] <= cell.point <= cell.ci[1]
        best = panel.best()
        assert best.point == max(c.point for c in panel.cells.values())


def test_the_mean_over_the_run_weighs_every_logged_iteration_alike():
    values = np.array([0.0, np.nan, 2.0, 4.0, 10.0])
    curve = RunCurve("CartPole-v1", {}, 0, np.arange(1, 6) * 100.0, values, np.array([1, 0, 5, 1, 1.0]))
    assert curve.mean_over_run() == pytest.approx(np.nanmean(values))
    assert curve.final() == 10.0 and np.isnan(
        RunCurve("e", {}, 0, np.ones(2), np.full(2, np.nan), np.ones(2)).mean_over_run()
    )


def test_a_name_that_is_not_a_hyperparameter_lists_the_choices():
    curves = [_curve("ppo", 0.0, 0.0, 0, 1.0)]
    with pytest.raises(PlotError, match="choose from gamma, reward_coef, transition_coef"):
        sweep_panels(curves, "reward_cof", "transition_coef")
    with pytest.raises(PlotError, match="two different"):
        sweep_panels(curves, "reward_coef", "reward_coef")


def test_world_model_share_is_the_weighted_losses_over_the_mean_absolute_advantage():
    import jax.numpy as jnp
    from conftest import LossBatch, algo_loss

    from purejaxspi.algo.config import PRESETS

    rng = np.random.default_rng(1)
    b, z = 8, 6
    x = LossBatch(
        log_probs=jnp.log(jnp.full((b, 2), 0.5)),
        value=jnp.zeros(b),
        reward_pred=jnp.asarray(rng.normal(size=b)),
        next_latent_pred=jnp.asarray(rng.normal(size=(b, z))),
        next_latent=jnp.asarray(rng.normal(size=(b, z))),
        action=jnp.zeros(b, jnp.int32),
        old_log_prob=jnp.log(jnp.full(b, 0.5)),
        advantages=jnp.asarray(rng.normal(size=b) * 3.0 + 1.0),
        returns=jnp.zeros(b),
        reward=jnp.asarray(rng.normal(size=b)),
        transition_valid=jnp.ones(b, bool),
    )
    hp = PRESETS["atari", "deepspi"].hparams.replace(reward_coef=0.3, transition_coef=0.05)
    terms = algo_loss("deepspi", x, hp, "sum")
    a = np.asarray(x.advantages)
    a = (a - a.mean()) / (a.std() + 1e-8)

    def huber(d):
        return np.where(np.abs(d) < 1, 0.5 * d**2, np.abs(d) - 0.5)

    l_r = huber(np.asarray(x.reward_pred) - np.asarray(x.reward))
    l_p = huber(np.asarray(x.next_latent_pred) - np.asarray(x.next_latent)).sum(-1)
    assert float(terms.advantage_abs) == pytest.approx(np.abs(a).mean(), rel=1e-5)
    assert float(terms.world_model["world_model_share"]) == pytest.approx(
        (0.3 * l_r + 0.05 * l_p).mean() / np.abs(a).mean(), rel=1e-5
    )
    assert (
        float(
            algo_loss("deepspi", x, hp.replace(reward_coef=0.0, transition_coef=0.0)).world_model["world_model_share"]
        )
        == 0.0
    )


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    result = cli(*SWEEP, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.mark.slow
def test_a_sweep_summarises_each_setting_and_names_the_best(sweep_run):
    out, stdout = sweep_run
    summary = json.loads((out / "summary.json").read_text())
    settings = summary["settings"]
    assert [s["hparams"] for s in settings] == [
        {"reward_coef": r, "transition_coef": p} for r in (0.0, 0.5) for p in (0.0, 2.0)
    ]
    for setting in settings:
        finals = [summary["runs"][r]["final_return"] for r in setting["runs"]]
        assert setting["seeds"] == [0, 1] and len(finals) == 2
        assert setting["final_return_iqm"] == pytest.approx(trim_mean(finals, 0.25))
        assert setting["final_return_ci"][0] <= setting["final_return_iqm"] <= setting["final_return_ci"][1]
    best = max(settings, key=lambda s: s["final_return_iqm"])
    assert f"best of 4 settings: reward_coef={best['hparams']['reward_coef']:g}" in stdout

    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    for row in rows:
        share, r, p = float(row["world_model_share"]), float(row["hp_reward_coef"]), float(row["hp_transition_coef"])
        assert float(row["advantage_abs"]) > 0
        assert (share == 0.0) == (r == 0.0 and p == 0.0)
        # the iteration's mean of per-minibatch ratios: near the ratio of the iteration's mean terms
        expected = (r * float(row["reward_loss"]) + p * float(row["transition_loss"])) / float(row["advantage_abs"])
        assert share == pytest.approx(expected, rel=0.25)


@pytest.mark.slow
def test_plot_heatmap_draws_each_cell_from_its_seeds_and_refuses_bad_names(sweep_run, tmp_path):
    out, _ = sweep_run
    fig = tmp_path / "heat.png"
    result = cli(
        "plot",
        str(out),
        "--heatmap",
        "reward_coef",
        "transition_coef",
        "--highlight",
        "0.5",
        "2",
        "--reps",
        "200",
        "--out",
        str(fig),
    )
    assert result.returncode == 0, result.stderr
    assert fig.read_bytes()[:4] == b"\x89PNG" and fig.stat().st_size > 20_000
    numbers = json.loads(fig.with_suffix(".json").read_text())
    (panel,) = numbers["panels"]
    assert panel["x_values"] == [0.0, 0.5] and panel["y_values"] == [0.0, 2.0]
    summary = json.loads((out / "summary.json").read_text())
    by_setting = {(s["hparams"]["reward_coef"], s["hparams"]["transition_coef"]): s for s in summary["settings"]}
    for cell in panel["cells"]:
        # the heatmap's final score is summary.json's: the same final window of the same episodes
        setting = by_setting[cell["x"], cell["y"]]
        finals = [summary["runs"][r]["final_return"] for r in setting["runs"]]
        np.testing.assert_allclose(cell["final"], finals, rtol=1e-6)
        assert cell["point"] == pytest.approx(setting["final_return_iqm"], rel=1e-6)
    assert {(c["x"], c["y"]) for c in panel["curves"]} >= {(0.0, 0.0), (0.5, 2.0)}

    bad = cli("plot", str(out), "--heatmap", "reward_coef", "clip", "--out", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "choose from" in bad.stderr
    odd = cli(
        "plot",
        str(out),
        "--heatmap",
        "reward_coef",
        "transition_coef",
        "--highlight",
        "0.5",
        "--out",
        str(tmp_path / "y.png"),
    )
    assert odd.returncode == 2 and "pairs" in odd.stderr


@pytest.fixture(scope="module")
def study():
    return load_script("sensitivity", "sensitivity_benchmark")


def test_every_study_spans_zero_the_papers_alphas_and_a_dominant_end(study):
    for s in study.STUDIES:
        alpha_r, alpha_p = study.axes_of(s, quick=False)
        assert len(alpha_r) >= 4 and len(alpha_p) >= 4
        assert alpha_r[0] == alpha_p[0] == 0.0 and (alpha_r[1], alpha_p[1]) == study.PAPER
        assert alpha_r[-1] >= 100 * alpha_r[1] and alpha_p[-1] >= 1000 * alpha_p[1]
        quick_r, quick_p = study.axes_of(s, quick=True)
        assert (0.0, study.PAPER[0]) == quick_r[:2] and quick_p[:2] == (0.0, study.PAPER[1])
    assert set(study.QUICK_STUDIES) <= {s.name for s in study.STUDIES}


@pytest.mark.slow
def test_the_study_trains_one_grid_reads_it_back_and_tables_its_cells(study, tmp_path):
    args = study.Args(
        quick=True, studies=("gridworld",), total_timesteps=2048, reps=100, runs=tmp_path / "runs", out=tmp_path / "out"
    )
    first = study.main(args)
    cells = first["studies"]["gridworld"]["cells"]
    assert len(cells) == 9 and {c["seeds"] for c in cells} == {2}
    assert first["studies"]["gridworld"]["runs"] == 18
    zero = next(c for c in cells if c["reward_coef"] == 0 and c["transition_coef"] == 0)
    low, high = zero["mean_over_run"]["ci"]
    assert low <= zero["mean_over_run"]["iqm"] <= high
    assert zero["final_world_model_share"] == 0.0 and zero["final_repr_dist"] > 0
    assert all(np.isfinite(c["score"]["iqm"]) for c in cells)
    assert (tmp_path / "out" / "sensitivity_quick_gridworld.png").stat().st_size > 20_000
    drawn = json.loads((tmp_path / "out" / "sensitivity_quick_gridworld_repr_dist.json").read_text())
    assert drawn["metric"] == "repr_dist" and len(drawn["panels"][0]["cells"]) == 9
    again = study.main(args)  # read back, not trained again
    assert again["studies"]["gridworld"]["cells"] == cells
    assert again["studies"]["gridworld"]["train_seconds"] == first["studies"]["gridworld"]["train_seconds"]
