"""`purejaxspi envs | presets | info`: what the package offers and what this machine picks."""

from __future__ import annotations

import dataclasses
import json

from purejaxspi.cli import flags
from purejaxspi.cli.view import fail
from purejaxspi.settings import setting


@dataclasses.dataclass(frozen=True)
class AsJson:
    json: bool = setting(False, "Print JSON instead of text.")


EnvsArgs = flags.make_args("EnvsArgs", "List every environment id, by backend.", flags.option_flags(AsJson))
INFO = "Show the platform, devices, package versions, envpool's XLA step and what `auto` picks on this machine."
InfoArgs = flags.make_args("InfoArgs", INFO, flags.option_flags(AsJson))
PRESETS = "Print the preset of every (env family, algorithm): what `train` runs where no flag overrides it."
PresetsArgs = flags.make_args("PresetsArgs", PRESETS, flags.option_flags(AsJson))


def envs_cmd(args) -> int:
    from purejaxspi.envs import env_ids_by_backend

    ids = env_ids_by_backend()
    if args.json:
        print(json.dumps({k: list(v) for k, v in ids.items()}, indent=2))
        return 0
    for backend, names in ids.items():
        print(f"{backend} ({len(names)}):\n" + "".join(f"  {name}\n" for name in names), end="")
    return 0


def info_cmd(args) -> int:
    from purejaxspi.analysis.info import format_info, machine_info

    info = machine_info()
    print(json.dumps(info, indent=2) if args.json else "\n".join(format_info(info)), flush=True)
    if info.get("error"):
        fail(info["error"])
    return 0


def presets_cmd(args) -> int:
    from purejaxspi.algo.config import preset_table
    from purejaxspi.analysis.info import format_presets

    rows = preset_table()
    print(json.dumps(rows, indent=2) if args.json else "\n".join(format_presets(rows)))
    return 0
