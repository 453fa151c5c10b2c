"""The command line's flags, generated from the declarations: the config tree's settings, the
hyperparameters and the run options. A setting declared once (purejaxspi.settings) reaches its flag,
its `--help` (with each preset's default) and the resume defaults from here."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import tyro

from purejaxspi.algo.config import (
    HYPERPARAMETERS,
    PARTS,
    PRESETS,
    Config,
    hparam_values,
    make_config,
)
from purejaxspi.lifecycle.loop import RunOptions
from purejaxspi.settings import fields_of, flag_of, help_of


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _declared(owner) -> list[tuple[dataclasses.Field, Any]]:
    """(field, its type) of every setting of `owner` that has a flag."""
    hints = typing.get_type_hints(owner)
    return [(f, hints[f.name]) for f in fields_of(owner) if flag_of(f)]


def _flag_name(field: dataclasses.Field) -> str:
    return flag_of(field) or field.name


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def by_preset(name: str) -> str:
    """A preset-filled default as help text: one value, or the value of each (env family, algorithm)."""
    values = {key: {**p.config.flat(), **p.hparams.as_dict()}[name] for key, p in PRESETS.items()}
    shown = {key: _show(v) for key, v in values.items()}
    if len(set(shown.values())) == 1:
        return f"{next(iter(shown.values()))} for every env and algorithm"
    parts = []
    for family in dict.fromkeys(family for family, _ in PRESETS):
        per_algo = {algo: value for (f, algo), value in shown.items() if f == family}
        if len(set(per_algo.values())) == 1:
            parts.append(f"{family} {next(iter(per_algo.values()))}")
        else:
            parts.append(f"{family} " + ", ".join(f"{value} ({algo})" for algo, value in per_algo.items()))
    return "; ".join(parts)


def _preset_arg(text: str, name: str):
    hint = "(default: the preset of the env family and algorithm)"
    return tyro.conf.arg(help=f"{text} Default: {by_preset(name)}.", help_behavior_hint=hint)


def config_flags(multi: tuple[str, ...] = ()) -> list[tuple]:
    """A flag per setting of the tree, unset (None) meaning the preset's; the `multi` settings take one
    or more values."""
    flags = []
    for part in PARTS.values():
        for field, kind in _declared(part):
            text = help_of(field)
            if kind is bool:
                text += f" ({flag(field.name)} / --no-{field.name.replace('_', '-')})"
            kind = tuple[kind, ...] if field.name in multi else kind  # type: ignore[valid-type]
            annotated = Annotated[Optional[kind], _preset_arg(text, field.name)]  # type: ignore[valid-type]  # noqa: UP045
            flags.append((field.name, annotated, dataclasses.field(default=None)))
    return flags


def hparam_flags() -> list[tuple]:
    """A flag per hyperparameter, taking one or more values (a grid's axis)."""
    flags = []
    for h in HYPERPARAMETERS:
        arg = _preset_arg(h.help + " One or more values.", h.name)
        flags.append((h.name, Annotated[Optional[tuple[float, ...]], arg], dataclasses.field(default=None)))  # noqa: UP045
    return flags


def option_flags(owner: type = RunOptions) -> list[tuple]:
    """A flag per declared option of `owner` (RunOptions, EvalOptions, ...), under its flag name, with
    its declared default."""
    flags = []
    for field, kind in _declared(owner):
        flags.append((_flag_name(field), Annotated[kind, tyro.conf.arg(help=help_of(field))], field.default))
    return flags


def make_args(name: str, doc: str | None, fields: list[tuple], base: type = object) -> type:
    """A flags dataclass of the generated `fields` (positional ones come from `base`), its help `doc`."""
    cls = dataclasses.make_dataclass(name, fields, bases=(base,))
    cls.__doc__ = doc
    return cls


# The config tree's settings that have flags.
SETTINGS = tuple(f.name for part in PARTS.values() for f, _ in _declared(part))
# The settings and run options by their field names, and the flags that set them.
FLAGS = {f.name: _flag_name(f) for owner in (*PARTS.values(), RunOptions) for f, _ in _declared(owner)}
# Preset-filled booleans, which tyro spells `--flag {None,True,False}`: the `--flag` / `--no-flag` pair too.
SWITCHES = tuple(f.name.replace("_", "-") for part in PARTS.values() for f, kind in _declared(part) if kind is bool)


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
    return tyro.cli(cls, args=switch_pairs(argv), prog=prog, description=cls.__doc__, default=default)


def overrides(args: Any) -> dict[str, Any]:
    """The settings the flags give (those left unset take the preset's)."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None}


def resolve(args: Any, **given: Any) -> tuple[Config, dict[str, list[float]]]:
    """The Config and hyperparameter values of the flags, through the library's presets; `given`
    replaces flags (a bench axis's value)."""
    args = dataclasses.replace(args, **given)
    config = make_config(args.env, args.algo, settings=args.settings, **overrides(args))
    values = hparam_values(config, **{h.name: getattr(args, h.name, None) for h in HYPERPARAMETERS})
    return config, values


def declared_options(owner: type, args: Any, **given: Any) -> Any:
    """The `owner` options (RunOptions, EvalOptions, ...) the flags give; `given` sets the rest."""
    fields = {f.name: getattr(args, _flag_name(f)) for f, _ in _declared(owner)}
    return owner(**fields, **given)


def args_from_record(cls: type, record: dict) -> Any:
    """Flags holding a saved run's job: the defaults of `train --resume DIR`."""
    from purejaxspi.lifecycle.rundir import job_of

    names = {f.name for f in dataclasses.fields(cls)}
    return dataclasses.replace(cls(), **{name: v for name, v in job_of(record).items() if name in names})


def resume_dir(argv: list[str]) -> Path | None:
    """The directory given to --resume, read before the full parse so its config can supply defaults."""
    for i, arg in enumerate(argv):
        if arg == "--resume" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--resume="):
            return Path(arg.split("=", 1)[1])
    return None
