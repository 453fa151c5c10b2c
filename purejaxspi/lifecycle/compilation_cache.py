"""JAX's persistent compilation cache: a second run of the same program loads it instead of compiling.

For the command line (`train`, `bench`, `eval`) it is on by default on accelerators, in
`$XDG_CACHE_HOME/purejaxspi/jax` (`~/.cache/purejaxspi/jax`), and off on CPUs: XLA:CPU executables are
compiled for the host's instruction set, and loading one logs an error line (a feature-list mismatch
warning, with a SIGILL caution for other machines sharing the folder). `PUREJAXSPI_COMPILATION_CACHE`
names a folder (on, on any platform) or turns it off with 0 / off / false; `--compilation-cache True` /
`--compilation-cache False` decide for one command. Programs that call back into the host (envpool's
reset) are not cached by JAX.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from purejaxspi.settings import setting

ENV_VAR = "PUREJAXSPI_COMPILATION_CACHE"
OFF = ("0", "off", "false", "no")
# Programs compiling faster than this are not worth a cache entry.
MIN_COMPILE_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class CacheOptions:
    compilation_cache: bool | None = setting(
        None,
        "Keep compiled programs in JAX's persistent cache, so a rerun of the same program skips compiling "
        "(default: on for accelerators, off on CPUs; PUREJAXSPI_COMPILATION_CACHE names its folder, default "
        "~/.cache/purejaxspi/jax, or turns it off).",
    )

    def enable(self) -> Path | None:
        return enable(wanted=self.compilation_cache)


def default_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "purejaxspi" / "jax"


ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")


def accelerator_expected() -> bool:
    """Whether JAX will run on an accelerator, read without starting its backends (a command may still
    have to call jax.distributed.initialize first): an accelerator plugin installed, not forced to CPU."""
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    return any(importlib.util.find_spec(name) is not None for name in ACCELERATOR_PLUGINS)


def cache_dir(platform: str, wanted: bool | None = None) -> Path | None:
    """Where the cache lives for `platform` under the current environment, or None when it is off.
    `wanted` (a command's flag) decides over the platform's default; the variable's folder or "off"
    decides over both."""
    setting = os.environ.get(ENV_VAR)
    if setting is not None and setting.strip().lower() in OFF:
        return None
    if setting:
        return Path(setting) if wanted is not False else None
    on = platform != "cpu" if wanted is None else wanted
    return default_dir() if on else None


def enable(path: Path | str | None = None, wanted: bool | None = None) -> Path | None:
    """Turn the cache on at `path` (default: `cache_dir` for the platform JAX will use); returns the folder,
    or None when off or the folder cannot be made (then every program compiles, as without a cache).
    Starts no JAX backend."""
    import jax

    platform = "gpu" if accelerator_expected() else "cpu"
    folder = Path(path) if path is not None else cache_dir(platform, wanted)
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
