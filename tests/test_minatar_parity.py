"""benchmarks/minatar_parity.py: the variants are gymnax-blines' recipe with one ingredient changed, and
a tiny end-to-end call writes, then reads back, its per-seed records."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "minatar_parity.py"


@pytest.fixture(scope="module")
def parity():
    return load_script("minatar_parity", "minatar_parity_benchmark")


def test_each_ablation_changes_one_ingredient_of_its_base(parity):
    recipe = parity.VARIANTS["blines"]
    assert recipe.config == parity.BLINES_SHAPE and recipe.hparams == parity.BLINES_HPARAMS
    # a rollout shape (with or without its minibatch count); our two conventions
    pairs = ({"num_envs", "num_steps"}, {"num_envs", "num_steps", "num_minibatches"}, {"anneal_lr", "clip_value_loss"})
    for name, variant in parity.VARIANTS.items():
        if variant.base is None:
            continue
        base = parity.VARIANTS[variant.base]
        changed = {k for k in set(variant.config) | set(base.config) if variant.config.get(k) != base.config.get(k)}
        changed |= {
            k for k in set(variant.hparams) | set(base.hparams) if variant.hparams.get(k) != base.hparams.get(k)
        }
        assert changed and (len(changed) == 1 or changed in pairs), (name, changed)


def test_the_preset_is_a_measured_recipe(parity):
    """PPO's MinAtar preset is gymnax-blines' recipe with the frame MLP at lr 1e-3 (their ppo0.001 run's)."""
    args = parity.Args(budget=10_000_000)
    (preset, preset_grid), (recipe, recipe_grid) = (
        parity.config_and_grid(args, name) for name in ("preset", "blines-mlp-lr1e-3")
    )
    assert preset == recipe and preset_grid.values == recipe_grid.values


def test_the_figure_sets_each_algorithms_preset_side_by_side(parity):
    def entry(algo, variant, budget=10_000_000, game="Breakout-MinAtar"):
        return {"game": game, "algo": algo, "variant": variant, "budget": budget}

    entries = [
        entry("ppo", "blines-mlp"),
        entry("ppo", "blines-mlp-lr1e-3"),
        entry("deepspi", "preset"),
        entry("deepmdp", "preset"),
        entry("deepspi", "preset", budget=5_000_000),
        entry("ppo", "blines-mlp-lr1e-3", game="Freeway-MinAtar"),
    ]
    rows = [(game, title, labels) for game, title, _, labels in parity.panels_of(entries)]
    assert rows == [
        ("Breakout-MinAtar", "deepspi at 5M", ["preset"]),
        ("Breakout-MinAtar", "ppo at 10M", ["blines-mlp", "blines-mlp-lr1e-3"]),
        ("Breakout-MinAtar", "the preset at 10M, per algorithm", ["ppo", "deepmdp", "deepspi"]),
        ("Freeway-MinAtar", "ppo at 10M", ["blines-mlp-lr1e-3"]),
    ]


def test_first_reached_is_the_first_bin_at_the_threshold(parity):
    steps = np.array([10.0, 20.0, 30.0, 40.0])
    assert parity.first_reached(steps, np.array([np.nan, 5.0, 9.0, 3.0]), 9.0) == 30.0
    assert parity.first_reached(steps, np.array([1.0, 2.0, np.nan, 3.0]), 9.0) is None


def run(*flags):
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, timeout=900)


@pytest.mark.slow  # trains and evaluates two variants' programs
def test_a_tiny_parity_run_writes_and_reads_back(tmp_path):
    out = tmp_path / "parity.json"
    flags = (
        "--variants",
        "preset",
        "blines-mlp",
        "--num-seeds",
        "2",
        "--budget",
        "8192",
        "--eval-episodes",
        "2",
        "--eval-max-steps",
        "200",
        "--reps",
        "100",
        "--bins",
        "4",
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(out),
    )
    first = run(*flags)
    assert first.returncode == 0, first.stderr
    entries = json.loads(out.read_text())["entries"]
    assert sorted(entries) == ["Breakout-MinAtar/ppo/blines-mlp/8192x2", "Breakout-MinAtar/ppo/preset/8192x2"]
    mlp = entries["Breakout-MinAtar/ppo/blines-mlp/8192x2"]
    assert (mlp["config"]["encoder"], mlp["config"]["num_envs"], mlp["config"]["anneal_lr"]) == ("mlp", 64, False)
    assert mlp["hparams"]["gamma"] == pytest.approx(0.999) and mlp["hparams"]["learning_rate"] == pytest.approx(5e-4)
    assert len(mlp["eval_return"]) == 2 and len(mlp["curves"]) == 2 and len(mlp["curves"][0]) == 4
    assert out.with_suffix(".png").stat().st_size > 10_000
    again = run(*flags)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished earlier") == 2 and "env steps," not in again.stdout  # nothing trained
    # two more seeds of one variant in another call join the first two in one entry of four
    more = run(*flags[:1], "blines-mlp", *flags[3:], "--first-seed", "2")
    assert more.returncode == 0, more.stderr
    entries = json.loads(out.read_text())["entries"]
    block, whole = (
        entries["Breakout-MinAtar/ppo/blines-mlp/8192x2+2"],
        entries["Breakout-MinAtar/ppo/blines-mlp/8192x4"],
    )
    assert block["seeds"] == [2, 3] and whole["seeds"] == [0, 1, 2, 3]
    assert whole["eval_return"] == mlp["eval_return"] + block["eval_return"] and len(whole["curves"]) == 4
    assert whole["eval_iqm"]["ci"][0] <= whole["eval_iqm"]["point"] <= whole["eval_iqm"]["ci"][1]
    bad = run("--variants", "nope", "--out", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()
