"""JAX's persistent compilation cache: a second run of the same program loads it instead of compiling.

On by default for the command line (`train`, `bench`, `eval`), in `$XDG_CACHE_HOME/purejaxspi/jax`
(`~/.cache/purejaxspi/jax`); `PUREJAXSPI_COMPILATION_CACHE` names another folder, or turns it off with
0 / off / false; the commands' `--no-compilation-cache` turns it off too. Programs that call back into
the host (envpool's reset) are not cached by JAX.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PUREJAXSPI_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")
# Programs compiling faster than this are not worth a cache entry.
MIN_COMPILE_SECONDS = 0.5


def default_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "purejaxspi" / "jax"


def cache_dir() -> Path | None:
    """Where the cache lives under the current environment, or None when it is turned off."""
    setting = os.environ.get(ENV_VAR)
    if setting is not None and setting.strip().lower() in OFF:
        return None
    return Path(setting) if setting else default_dir()


def enable(path: Path | str | None = None) -> Path | None:
    """Turn the cache on at `path` (default: `cache_dir()`); returns the folder, or None when turned off
    or the folder cannot be made (then every program compiles, as without a cache)."""
    import jax

    folder = Path(path) if path is not None else cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
