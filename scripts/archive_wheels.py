"""One archive of a wheelhouse for a node that takes uploads of a limited size (scripts/wheelhouse.sh).

A wheel is a zip whose members are each deflated, so an archive of wheels cannot compress further.
Stored uncompressed instead (the same files, the same RECORD hashes, installed by pip the same way),
the wheels' contents reach xz whole: the CPython 3.11 wheelhouse is 71 MiB as wheels and 46 MiB as
this archive at xz -9. Usage: python scripts/archive_wheels.py DIR ARCHIVE.tar.xz [LEVEL]
"""

from __future__ import annotations

import io
import lzma
import sys
import tarfile
import zipfile
from pathlib import Path


def stored(wheel: Path) -> bytes:
    """The wheel rewritten with every member stored, not deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            info.compress_type = zipfile.ZIP_STORED
            target.writestr(info, data)
    return out.getvalue()


def main(folder: Path, archive: Path, level: int = 9) -> None:
    wheels = sorted(folder.glob("*.whl"))
    with lzma.open(archive, "wb", preset=level) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for wheel in wheels:
            data = stored(wheel)
            member = tarfile.TarInfo(wheel.name)
            member.size, member.mtime, member.mode = len(data), int(wheel.stat().st_mtime), 0o644
            tar.addfile(member, io.BytesIO(data))
    print(f"{archive}: {len(wheels)} wheels, {archive.stat().st_size / 2**20:.1f} MiB (xz -{level})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *(int(a) for a in sys.argv[3:4]))
