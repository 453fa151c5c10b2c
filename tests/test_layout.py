"""The package reads as its architecture: every import points down the layers, never up."""

import ast
from pathlib import Path

import pytest

import purejaxspi

PACKAGE = Path(purejaxspi.__file__).parent
# errors, settings, host, versions <- envs <- algo <- scale <- lifecycle <- analysis <- cli
# (envs beside, under, the algorithm)
LAYERS = {
    "errors": 0,
    "settings": 0,
    "host": 0,
    "versions": 0,
    "provenance": 0,
    "data": 0,
    "envs": 1,
    "algo": 2,
    "scale": 3,
    "lifecycle": 4,
    "analysis": 5,
    "cli": 6,
    "__main__": 6,  # `python -m purejaxspi`: the command line
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if parts[0] == "purejaxspi" and len(parts) > 1 else None


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "purejaxspi")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_imports_point_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = "purejaxspi." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        own = layer_of(module)
        if own is None:  # the package's __init__: the public API re-exports every layer
            continue
        for imported in imports_of(path):
            other = layer_of(imported)
            if other is not None and other > own:
                upward.append(f"{module} imports {imported}")
    assert not upward, "\n".join(sorted(upward))


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        assert parts == ("__init__.py",) or Path(parts[0]).stem in LAYERS, path


def test_the_public_api_resolves():
    """Each public name is the package's own object of that name (not a stand-in), and an unknown one
    is an AttributeError."""
    import inspect

    for name in purejaxspi.__all__:
        obj = getattr(purejaxspi, name)
        module = inspect.getmodule(obj)
        assert module is not None and module.__name__.startswith("purejaxspi."), name
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__name__ == name and getattr(module, name) is obj, name
    assert sorted(set(purejaxspi.__all__)) == sorted(purejaxspi.__all__)
    with pytest.raises(AttributeError):
        purejaxspi.no_such_name  # noqa: B018


def test_no_function_is_longer_than_a_screen():
    """Long functions doing several jobs are where changes go wrong: none over 80 lines."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long, long


def test_the_command_line_stays_a_thin_layer():
    """Flags come from the declarations and checks from the library: the CLI (flags; every parse error,
    unknown flags included, in one line; signals outside training; `train --dry-run`; the closing lines) is at
    most 610 lines."""
    lines = sum(len(path.read_text().splitlines()) for path in (PACKAGE / "cli").glob("*.py"))
    assert lines <= 610, lines
