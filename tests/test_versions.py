"""The jax range is declared once (pyproject) and read back: `info` names the jax in use and whether it
is inside; a jax outside it gets one line of warning; a missing optional package is named in one line."""

import json

import pytest
from conftest import cli

from purejaxspi.errors import MissingPackageError
from purejaxspi.versions import JaxRange, declared_range, in_range, jax_range, require, warning_line

REQUIRES = ["jax<0.12,>=0.9.2", 'jax[cuda12]<0.12,>=0.9.2; extra == "cuda"', "flax==0.12.6"]


def test_the_range_is_read_from_the_requirements():
    assert declared_range(REQUIRES) == "<0.12,>=0.9.2"
    assert declared_range(["flax==0.12.6"]) is None and declared_range(None) is None


@pytest.mark.parametrize(
    "version, inside", [("0.9.2", True), ("0.11.2", True), ("0.12.0", False), ("0.8.1", False), (None, None)]
)
def test_versions_inside_and_outside_the_range(version, inside):
    assert in_range(version, "<0.12,>=0.9.2") is inside


def test_a_jax_outside_the_range_gets_one_line():
    assert warning_line(JaxRange("0.9.2", "<0.12,>=0.9.2", True)) is None
    assert warning_line(JaxRange("0.9.2", None, None)) is None
    line = warning_line(JaxRange("0.13.0", "<0.12,>=0.9.2", False))
    assert line is not None and "jax 0.13.0" in line and "<0.12,>=0.9.2" in line and "\n" not in line


def test_this_installation_is_inside_its_declared_range():
    found = jax_range()
    assert found.tested is not None and found.inside is True, found


def test_info_names_the_jax_and_its_range():
    info = json.loads(cli("info", "--json").stdout)
    assert info["jax_range"]["version"] == info["packages"]["jax"] and info["jax_range"]["inside"] is True
    assert "tested range" in cli("info").stdout


def test_a_missing_optional_package_is_named_in_one_line():
    require("plot", "json")  # present: nothing raised
    with pytest.raises(MissingPackageError) as e:
        require("plot", "json", "no_such_package_abc", "no_such_package_xyz")
    message = str(e.value)
    assert message.startswith("plot needs no_such_package_abc and no_such_package_xyz,") and "\n" not in message
    assert "pip install no_such_package_abc no_such_package_xyz" in message and " json" not in message
