"""What made a record: the package's version and commit, its dependencies' versions, the machine, the
command line and the times. config.json, summary.json, eval.json and every record the benchmarks write
carry it, so a number can be traced to the code and the device that produced it."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from purejaxspi.host import cpu_model

# The dependencies whose versions decide a run's numbers or speed.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "envpool", "gymnax", "pgx")


def package_version() -> str:
    """purejaxspi's version, declared once in pyproject.toml and read from the installed metadata."""
    try:
        return importlib.metadata.version("purejaxspi")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def package_versions() -> dict[str, str | None]:
    """Each of PACKAGES' installed version, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: Path = Path(__file__).parent) -> dict:
    """The commit of the checkout the package runs from and whether tracked files differ from it;
    {"commit": "not a checkout", "dirty": None} for an installed wheel."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "not a checkout", "dirty": None}
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def device_facts() -> dict:
    """The platform, the first device's kind and the device count jax sees (all processes)."""
    import jax

    devices = jax.devices()
    return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "device_count": len(devices)}


def command_line() -> str | None:
    """The command as typed: the program's name (`purejaxspi` for `python -m purejaxspi`) and its arguments."""
    if not sys.argv or not sys.argv[0]:
        return None
    name = Path(sys.argv[0]).name
    return shlex.join(["purejaxspi" if name == "__main__.py" else name, *sys.argv[1:]])


def provenance(started: str | None = None, ended: bool = True, devices: bool = True) -> dict:
    """The record of what made a result: `started` (utc_now() when the work began) and, with `ended`,
    now as its end. `devices=False` leaves jax's devices out (where no backend starts)."""
    return {
        "purejaxspi": package_version(),
        **git_state(),
        "python": platform.python_version(),
        "packages": package_versions(),
        **(device_facts() if devices else {}),
        "cpu": cpu_model(),
        "host_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "command": command_line(),
        "started_utc": started,
        "ended_utc": utc_now() if ended else None,
    }


def describe(record: dict) -> str:
    """One line naming the code and the machine of a record's provenance."""
    commit = record.get("commit") or "unknown commit"
    short = commit[:10] if record.get("dirty") is not None else commit
    dirty = " with uncommitted changes" if record.get("dirty") else ""
    device = f"{record.get('device_count', '?')} x {record.get('device_kind', '?')}" if "device_kind" in record else ""
    jax_version = (record.get("packages") or {}).get("jax") or "-"
    return f"purejaxspi {record.get('purejaxspi')} ({short}{dirty}), jax {jax_version}" + (
        f", {device}" if device else ""
    )
