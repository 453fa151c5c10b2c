"""The command line's flags, generated from the declarations: the config tree's settings, the
hyperparameters and the run options. A setting declared once (purejaxspi.settings) reaches its flag,
its `--help` (with each preset's default) and the resume defaults from here."""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import difflib
import re
from pathlib import Path
from typing import Annotated, Any

import tyro

from purejaxspi.algo.config import HYPERPARAMETERS, PARTS, default_text
from purejaxspi.analysis.bench import BenchOptions
from purejaxspi.analysis.figures import PlotOptions
from purejaxspi.lifecycle.evaluate import EvalOptions
from purejaxspi.lifecycle.job import Job
from purejaxspi.lifecycle.loop import RunOptions
from purejaxspi.settings import flag_name, flagged, help_of, metavar


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _preset_arg(text: str, name: str, kind: Any, choices: tuple = ()):
    """A preset-filled flag's help: each preset's default, or the smoke budget's where it sets the setting."""
    shown = metavar(kind, choices)
    return tyro.conf.arg(help=f"{text} Default: {default_text(name)}.", metavar=shown, help_behavior_hint="")


def config_flags(multi: tuple[str, ...] = ()) -> list[tuple]:
    """A flag per setting of the tree, unset (None) meaning the preset's; the `multi` settings take one
    or more values."""
    flags = []
    for part in PARTS.values():
        for field, kind in flagged(part):
            text = help_of(field)
            if kind is bool:
                text += f" ({flag(field.name)} / --no-{field.name.replace('_', '-')})"
            kind = tuple[kind, ...] if field.name in multi else kind  # type: ignore[valid-type]
            arg = _preset_arg(text, field.name, kind, field.metadata["choices"])
            annotated = Annotated[kind | None, arg]  # type: ignore[valid-type]
            flags.append((field.name, annotated, None))
    return flags


def hparam_flags() -> list[tuple]:
    """A flag per hyperparameter, taking one or more values (a grid's axis)."""
    values = tuple[float, ...] | None
    return [
        (h.name, Annotated[values, _preset_arg(f"{h.help} One or more values.", h.name, values)], None)
        for h in HYPERPARAMETERS
    ]


def option_flags(*owners: type) -> list[tuple]:
    """A flag per declared option of each owner (RunOptions, EvalOptions, ...), with its declared default;
    an option unset by default (None) says in its help what that means, so tyro's "(default: None)" goes."""

    def arg(f: dataclasses.Field, kind: Any):
        if f.default is not None:  # a switch (`--quiet` / `--no-quiet`) or a value with its default shown
            return tyro.conf.arg(help=help_of(f), metavar=None if kind is bool else metavar(kind))
        return tyro.conf.arg(help=help_of(f), metavar=metavar(kind, f.metadata["choices"]), help_behavior_hint="")

    return [(flag_name(f), Annotated[kind, arg(f, kind)], f.default) for owner in owners for f, kind in flagged(owner)]


def make_args(name: str, doc: str | None, fields: list[tuple], base: type = object) -> type:
    """A flags dataclass of the generated `fields` (positional ones come from `base`), its help `doc`."""
    cls = dataclasses.make_dataclass(name, fields, bases=(base,))
    cls.__doc__ = doc
    return cls


SETTINGS = tuple(f.name for part in PARTS.values() for f, _ in flagged(part))
# Every declared setting and option by its field name, and the flag that sets it (for error lines).
OWNERS = (*PARTS.values(), RunOptions, Job, EvalOptions, PlotOptions, BenchOptions)
FLAGS = {f.name: flag_name(f) for owner in OWNERS for f, _ in flagged(owner)}
# Preset-filled booleans, which tyro spells `--flag {None,True,False}`: the `--flag` / `--no-flag` pair too.
SWITCHES = tuple(f.name.replace("_", "-") for part in PARTS.values() for f, kind in flagged(part) if kind is bool)


def switch_pairs(argv: list[str]) -> list[str]:
    """`--flag` / `--no-flag` for the preset-filled booleans, as `--flag True` / `--flag False`."""
    out = []
    for i, arg in enumerate(argv):
        name = arg[2:]
        if name.startswith("no-") and name[3:] in SWITCHES:
            out += [f"--{name[3:]}", "False"]
        elif name in SWITCHES and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out += [arg, "True"]
        else:
            out.append(arg)
    return out


def parse(cls: type, argv: list[str], prog: str, default: Any = None) -> Any:
    """The flags of `argv`; a value tyro cannot read ends in one line naming the flag and what it expects."""
    from purejaxspi.cli.view import fail

    try:
        with _plain_value_errors(known_flags(cls)):
            return tyro.cli(cls, args=switch_pairs(argv), prog=prog, description=cls.__doc__, default=default)
    except _BadValue as e:
        fail(f"{e} (`{prog} --help`)")


class _BadValue(Exception):
    pass


def known_flags(cls: type) -> list[str]:
    """Every flag of a flags dataclass, the `--no-` spelling of its switches too."""
    names = [f.name.replace("_", "-") for f in dataclasses.fields(cls)]
    return [f"--{n}" for n in names] + [f"--no-{n}" for n in names if n in SWITCHES]


def expected(metavar: str) -> str:
    """What a flag takes, from tyro's metavar without the optional's `{None}|` and the brackets."""
    text = re.sub(r"^\{None\}\||\|\{None\}$", "", metavar)
    for left, right in ("{}", "[]"):
        if text.startswith(left) and text.endswith(right):
            text = text[1:-1]
    return text


def bad_value_line(flag: str, metavar: str, message: str) -> str:
    """`--flag expects WHAT, got: VALUES` from tyro's instantiation message."""
    given = re.search(r"from (\[.*?\])\.", message) or re.search(r"'([^']*)'", message)
    if given is None:
        return f"{flag} expects {expected(metavar)}"
    try:
        values = ast.literal_eval(given.group(1))
    except (ValueError, SyntaxError):
        values = given.group(1)
    shown = " ".join(values) if isinstance(values, list) else str(values)
    return f"{flag} expects {expected(metavar)}, got: {shown}"


@contextlib.contextmanager
def _plain_value_errors(known: list[str]):
    """tyro's box for a value it cannot read names the union's types and markup: one line instead, through
    tyro's private parse-error hook (tyro._errors); without it, tyro's own box stands."""
    errors = getattr(tyro, "_errors", None)
    if errors is None or not hasattr(errors, "on_parse_error"):
        yield
        return

    def hook(event):
        if isinstance(event, errors.UnrecognizedArgs):
            raise _BadValue(unknown_line(event.tokens, known))
        argument = getattr(event, "argument", None)
        if argument is None:
            return
        lowered = argument.lowered
        flag = "/".join(lowered.name_or_flags) or str(lowered.metavar)
        if isinstance(event, errors.InstantiationFailure):
            raise _BadValue(bad_value_line(flag, str(lowered.metavar), event.message))
        if isinstance(event, errors.InvalidChoice):
            raise _BadValue(choice_line(flag, event.choices, event.value))
        if isinstance(event, errors.BadValue):
            got = f", got: {event.offending_value}" if event.offending_value else ", got nothing"
            raise _BadValue(f"{flag} expects {expected(str(lowered.metavar))}{got}")

    with errors.on_parse_error(hook):
        yield


def choice_line(flag: str, choices: tuple[str, ...], value: str) -> str:
    """`--flag expects one of A, B, got: V`; a preset-filled boolean's unset (None) is no choice to offer."""
    if flag[2:] in SWITCHES:
        return f"{flag} expects True or False (or {flag} / --no-{flag[2:]}), got: {value}"
    return f"{flag} expects one of {', '.join(sorted(c for c in choices if c != 'None'))}, got: {value}"


def unknown_line(tokens: list[str], known: list[str]) -> str:
    """The options not understood, each with the nearest known flag where one is near."""
    options = [t for t in tokens if t.startswith("-")]
    if not options:
        return "unexpected argument " + " ".join(tokens)
    words = []
    for token in options:
        near = difflib.get_close_matches(token.split("=")[0], known, n=1)
        words.append(f"{token} (did you mean {near[0]}?)" if near else token)
    return "unrecognized option " + ", ".join(words)


def overrides(args: Any) -> dict[str, Any]:
    """The settings the flags give (those left unset take the preset's)."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None}


def hparams(args: Any) -> dict[str, Any]:
    """The hyperparameters' values the flags give (None: the preset's)."""
    return {h.name: getattr(args, h.name, None) for h in HYPERPARAMETERS}


def declared_options(owner: type, args: Any, **given: Any) -> Any:
    """The `owner` options (RunOptions, EvalOptions, ...) the flags give; `given` sets the rest."""
    fields = {f.name: getattr(args, flag_name(f)) for f, _ in flagged(owner)}
    return owner(**fields, **given)


def args_from_record(cls: type, run_dir: Path) -> Any:
    """Flags holding a saved run's job: the defaults of `train --resume DIR`."""
    from purejaxspi.lifecycle.rundir import job_of, read_record

    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(), **{name: v for name, v in job_of(read_record(run_dir)).items() if name in names})


def resume_dir(argv: list[str]) -> Path | None:
    """The directory given to --resume, read before the full parse so its config can supply defaults."""
    reader = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    reader.add_argument("--resume", type=Path)
    return reader.parse_known_args(argv)[0].resume
