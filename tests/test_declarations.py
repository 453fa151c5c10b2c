"""One place per fact: a setting or hyperparameter declared once, beside its owner, reaches the command
line, `--help`, the presets table, config.json and the resume check with no other edit."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import purejaxspi
from purejaxspi.algo.config import HPARAM_NAMES, SETTING_NAMES

PACKAGE = Path(purejaxspi.__file__).parent
# The one edit a developer makes: a setting of PPO's part and a hyperparameter beside it.
NEW_SETTING = '    value_scale: int = setting(7, "A new setting of the update.", bound="positive")\n'
NEW_HYPERPARAMETER = '    Hyperparameter("new_coef", "A new coefficient.", 0.25),\n'


def package_with_the_new_declarations(root: Path) -> Path:
    copy = root / "purejaxspi"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    ppo = copy / "algo" / "ppo.py"
    text = ppo.read_text()
    anchor = "    @property\n    def early_stop(self)"
    assert anchor in text and "HYPERPARAMETERS = (\n" in text
    text = text.replace(anchor, NEW_SETTING + "\n" + anchor, 1)
    ppo.write_text(text.replace("HYPERPARAMETERS = (\n", "HYPERPARAMETERS = (\n" + NEW_HYPERPARAMETER, 1))
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(  # from `root`, so that its copy of the package is the one imported
        [sys.executable, "-m", "purejaxspi.cli", *args], capture_output=True, text=True, env=env, timeout=600, cwd=root
    )


@pytest.mark.slow  # trains a whole program through the CLI
def test_a_new_setting_and_hyperparameter_reach_every_place_from_one_declaration(tmp_path):
    root = package_with_the_new_declarations(tmp_path / "pkg")
    # --help, with the presets' defaults
    help_text = run(root, "train", "--help").stdout
    assert "--value-scale" in help_text and "A new setting of the update." in help_text
    assert "--new-coef" in help_text and "A new coefficient. One or more values." in help_text
    # the presets table
    rows = json.loads(run(root, "presets", "--json").stdout)
    assert {(r["value_scale"], r["new_coef"]) for r in rows} == {(7, 0.25)}
    # the command line, its checks, and config.json
    small = ("--env", "CartPole-v1", "--num-seeds", "1", "--num-envs", "4", "--num-steps", "8")
    out = tmp_path / "run"
    refused = run(root, "train", *small, "--total-timesteps", "64", "--value-scale", "0", "--out", str(out))
    assert refused.returncode == 2 and "--value-scale must be positive" in refused.stderr
    given = ("--value-scale", "3", "--new-coef", "0.5", "0.75", "--chunk-iterations", "1", "--quiet")
    trained = run(root, "train", *small, "--total-timesteps", "64", *given, "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["value_scale"] == 3 and record["hparam_values"]["new_coef"] == [0.5, 0.75]
    # the resume check: the saved value fills the flag, another value is refused
    clash = run(root, "train", "--resume", str(out), "--value-scale", "4", "--quiet")
    assert clash.returncode == 2 and "value_scale: 3 vs 4" in clash.stderr
    same = run(root, "train", "--resume", str(out), "--quiet")
    assert same.returncode == 0, same.stderr


def test_the_command_line_names_no_setting():
    """The CLI's source is generic over the declarations: no setting or hyperparameter by name."""
    names = set(SETTING_NAMES) | set(HPARAM_NAMES)
    for path in (PACKAGE / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        found = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
        found |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in names}
        assert not found, f"{path.name} names {sorted(found)}"


def test_a_misspelt_bound_is_refused_where_it_is_declared():
    import pytest

    from purejaxspi.settings import Hyperparameter, setting

    with pytest.raises(ValueError, match="unknown bound 'postive'"):
        setting(1, "A setting.", bound="postive")
    with pytest.raises(ValueError, match="unknown bound 'unitary'"):
        Hyperparameter("coef", "A coefficient.", 0.5, bound="unitary")
