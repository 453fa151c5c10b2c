"""Which jax the package runs on: the range pyproject declares, read back from the installed package's
metadata so that it is stated once, and whether the jax in use lies inside it; and the optional
packages a command needs, asked for by name before it starts.

The lock pins the jax the tests run on; an accelerator node often brings its own, newer one. Outside
the range the package may still work, so it says so in one line instead of failing somewhere deep.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from purejaxspi.errors import MissingPackageError


class JaxRange(NamedTuple):
    version: str | None  # the jax installed, None where it is not
    tested: str | None  # the declared range, e.g. ">=0.9.2,<0.12"; None where the metadata is not installed
    inside: bool | None  # None where either is unknown


def declared_range(requirements: list[str] | None, name: str = "jax") -> str | None:
    """The version range `requirements` (a package's Requires-Dist lines) give `name`, ignoring extras."""
    for line in requirements or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name == name and requirement.marker is None:
            return str(requirement.specifier) or None
    return None


def in_range(version: str | None, tested: str | None) -> bool | None:
    """Whether `version` satisfies the range `tested`; None where either is unknown or unreadable."""
    if not version or not tested:
        return None
    try:
        return Requirement(f"jax{tested}").specifier.contains(Version(version), prereleases=True)
    except (InvalidRequirement, InvalidVersion):
        return None


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def jax_range() -> JaxRange:
    """The installed jax against the range this package declares."""
    try:
        requirements = metadata.requires("purejaxspi")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        requirements = None
    version, tested = installed("jax"), declared_range(requirements)
    return JaxRange(version, tested, in_range(version, tested))


def warning_line(found: JaxRange) -> str | None:
    """One line for a jax outside the tested range (None inside it, or where that is unknown)."""
    if found.inside is not False:
        return None
    return (
        f"jax {found.version} is outside the range this package is tested on ({found.tested}); it may work, "
        f"and an error deep inside jax is the likely sign that it does not"
    )


def require(purpose: str, *modules: str) -> None:
    """Raise MissingPackageError naming every module of `modules` that cannot be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingPackageError(
            f"{purpose} needs {' and '.join(missing)}, which this environment lacks (an offline node's wheelhouse "
            f"leaves the analysis packages out): pip install {' '.join(missing)}, or run it where the run "
            f"directory is copied back"
        )
