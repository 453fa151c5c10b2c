"""Repack envpool's wheels with their Atari parts only, for an offline wheelhouse (scripts/wheelhouse.sh).

envpool's wheel is about 50 MB and envpool-assets' about 60 MB, most of it MuJoCo, ViZDoom, Procgen
and other suites this package never loads. The repacked wheels keep the Atari environments and ROMs,
the Python layer and the shared libraries; envpool's entry point registers Atari alone, and its
metadata drops the dependencies only the other suites need (MuJoCo's asset packages, glfw, protobuf
stubs). Usage: python scripts/repack_envpool.py WHEEL... (each rewritten in place).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

KEEP_SUITES = ("atari",)
DROPPED_REQUIREMENTS = ("envpool-assets-mujoco", "glfw", "types-protobuf")
PACKAGES = ("envpool", "envpool_assets")


def kept(name: str) -> bool:
    parts = name.split("/")
    if parts[0] not in PACKAGES or len(parts) < 3:
        return True  # top-level modules, envpool.libs, the dist-info
    return parts[1] in KEEP_SUITES or parts[1] == "python" or "." in parts[1]


def entry_point(text: str) -> str:
    """envpool/entry.py with the registration imports of the dropped suites removed."""
    lines = text.splitlines(keepends=True)
    return "".join(
        line
        for line in lines
        if not (line.strip().startswith(("import envpool.", "from envpool.")) and "atari" not in line)
    )


def metadata(text: str) -> str:
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not (line.startswith("Requires-Dist:") and any(d in line for d in DROPPED_REQUIREMENTS))
    )


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def repack(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as source:
        files = {i.filename: source.read(i) for i in source.infolist() if kept(i.filename) and not i.is_dir()}
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    for name in files:
        if name == "envpool/entry.py":
            files[name] = entry_point(files[name].decode()).encode()
        elif name.endswith(".dist-info/METADATA"):
            files[name] = metadata(files[name].decode()).encode()
    files[record] = "".join(record_line(n, d) for n, d in files.items() if n != record).encode() + (
        f"{record},,\n".encode()
    )
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in files.items():
            target.writestr(name, data)
    tmp.replace(wheel)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        repack(Path(path))
        print(f"{path}: {Path(path).stat().st_size / 1e6:.1f} MB, Atari only")
