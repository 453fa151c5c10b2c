"""`purejaxspi envs | presets | info`: what the package offers and what this machine picks."""

from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass
class EnvsArgs:
    """List every environment id, by backend."""

    json: bool = False
    """Print a JSON object {backend: [ids]} instead of a table."""


def envs_cmd(args: EnvsArgs) -> int:
    from purejaxspi.envs import env_ids_by_backend

    ids = env_ids_by_backend()
    if args.json:
        print(json.dumps({k: list(v) for k, v in ids.items()}, indent=2))
        return 0
    for backend, names in ids.items():
        print(f"{backend} ({len(names)}):\n" + "".join(f"  {name}\n" for name in names), end="")
    return 0


@dataclasses.dataclass
class InfoArgs:
    """Show the platform, devices, package versions, envpool's XLA step and what `auto` picks on this machine."""

    json: bool = False
    """Print a JSON object instead of lines."""


def info_cmd(args: InfoArgs) -> int:
    from purejaxspi.analysis.info import format_info, machine_info

    info = machine_info()
    print(json.dumps(info, indent=2) if args.json else "\n".join(format_info(info)))
    return 0


@dataclasses.dataclass
class PresetsArgs:
    """Print the preset of every (env family, algorithm): what `train` runs where no flag overrides it."""

    json: bool = False
    """Print every setting of every preset as JSON instead of a table."""


def presets_cmd(args: PresetsArgs) -> int:
    from purejaxspi.algo.config import preset_table
    from purejaxspi.analysis.info import format_presets

    rows = preset_table()
    print(json.dumps(rows, indent=2) if args.json else "\n".join(format_presets(rows)))
    return 0
