"""Every record names what made it: the package's version (declared once), the commit, the dependencies'
versions, the device, the command and the times; records written before provenance still resume."""

import importlib.metadata
import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest
from conftest import cli

import purejaxspi
from purejaxspi.provenance import describe, git_state, provenance

ROOT = Path(__file__).parents[1]


def test_the_version_is_declared_once_and_printed():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert purejaxspi.__version__ == importlib.metadata.version("purejaxspi") == declared
    result = cli("--version")
    assert result.returncode == 0 and result.stdout == f"purejaxspi {declared}\n", result
    assert f"purejaxspi {declared} (" in cli("info").stdout.splitlines()[0]
    cited = re.search(r"^version: (\S+)$", (ROOT / "CITATION.cff").read_text(), re.M)
    assert cited and cited.group(1) == declared, "CITATION.cff cites another version than pyproject.toml declares"


def test_the_commit_is_this_checkouts_or_says_it_is_none(tmp_path):
    state = git_state()
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and isinstance(state["dirty"], bool)
    assert git_state(tmp_path) == {"commit": "not a checkout", "dirty": None}


def test_a_provenance_names_code_dependencies_device_and_times():
    made_by = provenance(started="2026-01-01T00:00:00Z")
    assert made_by["purejaxspi"] == purejaxspi.__version__
    assert made_by["packages"]["jax"] == importlib.metadata.version("jax")
    assert made_by["platform"] == "cpu" and made_by["device_count"] >= 1
    assert made_by["started_utc"] == "2026-01-01T00:00:00Z" and made_by["ended_utc"].endswith("Z")
    assert f"jax {made_by['packages']['jax']}" in describe(made_by) and made_by["commit"][:10] in describe(made_by)


def check_provenance(record, command_word):
    made_by = record["provenance"]
    assert made_by["purejaxspi"] == purejaxspi.__version__ and re.fullmatch(r"[0-9a-f]{40}", made_by["commit"])
    assert made_by["packages"]["jax"] and made_by["platform"] == "cpu" and made_by["device_kind"]
    assert command_word in made_by["command"] and made_by["started_utc"]


@pytest.mark.slow
def test_a_runs_records_carry_their_provenance_and_older_records_still_resume(trained_run, tmp_path):
    config = json.loads((trained_run / "config.json").read_text())
    check_provenance(config, "purejaxspi train")
    assert config["provenance"]["ended_utc"] is None  # written before training
    summary = json.loads((trained_run / "summary.json").read_text())
    check_provenance(summary, "purejaxspi train")
    assert summary["provenance"]["ended_utc"] >= summary["provenance"]["started_utc"]
    # a run directory written before runs recorded their provenance
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    del config["provenance"]
    (run / "config.json").write_text(json.dumps(config))
    (run / "summary.json").unlink()
    resumed = cli("train", "--resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    check_provenance(json.loads((run / "summary.json").read_text()), "--resume")
    evaluated = cli("eval", str(run), "--episodes", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    check_provenance(json.loads((run / "eval.json").read_text()), "purejaxspi eval")
