"""Facts about the host machine that several layers read."""

from __future__ import annotations


def host_available_bytes() -> int | None:
    """The host's MemAvailable, or None where /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
