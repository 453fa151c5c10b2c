"""How a setting is declared: once, beside the module that uses it, with its help, choices and bounds.

A part of the config tree is a frozen dataclass whose fields are made by `setting(...)`; the
hyperparameters a grid may vary are `Hyperparameter`s listed beside the part that reads them. The
command line, `--help`, the presets table, config.json and the resume check are all generated from
these declarations (algo.config assembles the tree, the cli generates the flags), so a new setting is one line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from purejaxspi.errors import ConfigError

# Bounds a setting or hyperparameter may declare (checked by `check_value`).
BOUNDS = ("positive", "nonnegative", "unit")


def check_bound(bound: str | None) -> None:
    """A declaration's bound is one `check_value` knows: a misspelt one would check nothing."""
    if bound is not None and bound not in BOUNDS:
        raise ValueError(f"unknown bound {bound!r}; declare one of {', '.join(BOUNDS)}")


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple = (),
    bound: str | None = None,
    families: tuple[str, ...] = (),
    title: str | None = None,
    flag: str | None = None,
) -> Any:
    """A field of a config part: its default, the help text the CLI shows, the allowed `choices` or
    `bound` ("positive", "nonnegative"), the env `families` it applies to (empty: all), its short
    `title` in the presets table (default: its name) and its command-line `flag` (default: its name;
    "" for none)."""
    check_bound(bound)
    metadata = {"help": help, "choices": choices, "bound": bound, "families": families, "title": title}
    metadata["flag"] = flag
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """A float the grid may vary per run (one value per run, mapped along the run axis).

    `default` is its value wherever a preset sets none; `bound` is "nonnegative" (the default),
    "positive" or "unit" ([0, 1]); `title` is its column in the presets table."""

    name: str
    help: str
    default: float
    bound: str = "nonnegative"
    title: str | None = None

    def __post_init__(self) -> None:
        check_bound(self.bound)


def fields_of(part) -> tuple[dataclasses.Field, ...]:
    """The declared settings of a part (class or instance)."""
    return tuple(f for f in dataclasses.fields(part) if "help" in f.metadata)


def leaves(part) -> Iterator[tuple[str, Any]]:
    """(name, value) of every setting of a part instance."""
    for f in fields_of(part):
        yield f.name, getattr(part, f.name)


def check_value(name: str, value: Any, bound: str | None, choices: tuple = ()) -> None:
    """Raise ConfigError (naming `name`) for a value outside its choices or bound."""
    if choices and value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}", setting=name)
    if bound is None or value is None or isinstance(value, bool):
        return
    finite = not (isinstance(value, float) and not math.isfinite(value))
    if bound == "positive" and not (finite and value > 0):
        raise ConfigError(f"{name} must be {'' if finite else 'finite and '}positive, got {value}", setting=name)
    if bound in ("nonnegative", "unit") and not (finite and value >= 0):
        raise ConfigError(f"{name} must be finite and non-negative, got {value}", setting=name)
    if bound == "unit" and value > 1:
        raise ConfigError(f"{name} must lie in [0, 1], got {value}", setting=name)


def check_part(part, family: str | None = None, env_id: str = "") -> None:
    """Check every setting of a part against its declaration; with `family`, refuse a setting changed
    from its default in a family it does not apply to."""
    for f in fields_of(part):
        value = getattr(part, f.name)
        check_value(f.name, value, f.metadata["bound"], f.metadata["choices"])
        families = f.metadata["families"]
        if family is not None and families and family not in families and value != f.default:
            names = " and ".join(name.capitalize() for name in families)
            raise ConfigError(f"{f.name} applies to {names} envs only, not {env_id or family}", setting=f.name)


def help_of(field: dataclasses.Field) -> str:
    return field.metadata["help"]


def title_of(field: dataclasses.Field) -> str:
    return field.metadata["title"] or field.name


def flagged(owner) -> list[tuple[dataclasses.Field, Any]]:
    """(field, its type) of every setting of `owner` that has a command-line flag."""
    hints = typing.get_type_hints(owner)
    return [(f, hints[f.name]) for f in fields_of(owner) if flag_of(f)]


def flag_name(field: dataclasses.Field) -> str:
    """The flag's name of a setting that has one."""
    return flag_of(field) or field.name


def flag_of(field: dataclasses.Field) -> str | None:
    """The command-line name of a setting (None where it has no flag)."""
    flag = field.metadata["flag"]
    return field.name if flag is None else (flag or None)


UNIONS = (typing.Union, types.UnionType)
METAVARS = {int: "INT", float: "FLOAT", str: "STR", Path: "PATH"}


def metavar(kind: Any, choices: tuple = ()) -> str | None:
    """What a setting's flag takes, as its help shows it: the kind without the unset (None) that only means
    "the preset's" or "not given", and a setting's choices where it declares them."""
    kinds = [k for k in typing.get_args(kind) if k is not type(None)] if typing.get_origin(kind) in UNIONS else [kind]
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    if kind is bool:
        return "{True,False}"
    if typing.get_origin(kind) is tuple:
        items = [metavar(k) for k in typing.get_args(kind) if k is not Ellipsis]
        if None in items:
            return None
        return f"{items[0]} [{items[0]} ...]" if Ellipsis in typing.get_args(kind) else " ".join(map(str, items))
    return "{" + ",".join(map(str, choices)) + "}" if choices else METAVARS.get(kind)
