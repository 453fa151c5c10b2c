"""`purejaxspi info`: what this machine gives a run, and what `auto` picks on it (the GPU campaign's stage 0)."""

from __future__ import annotations

import os
import platform as host_platform

FAMILIES = ("vector", "minatar", "atari")


def device_rows() -> list[dict]:
    import jax

    rows = []
    for device in jax.devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        rows.append(
            {
                "id": device.id,
                "platform": device.platform,
                "kind": device.device_kind,
                "process": device.process_index,
                "memory_bytes": int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None,
            }
        )
    return rows


def envpool_xla(platform: str) -> dict:
    """Whether envpool's XLA step has an FFI target for `platform` (read from a one-env pool's capsules)."""
    try:
        import envpool

        pool = envpool.make("Breakout-v5", env_type="gymnasium", num_envs=1, batch_size=1)
        capsules = {name: caps for name, (_, _, caps) in pool._xla()}  # type: ignore[attr-defined]
    except Exception as e:  # envpool missing or unusable here: say so, do not fail the report
        return {"available": False, "detail": f"{type(e).__name__}: {e}".splitlines()[0]}
    index = 1 if platform == "gpu" else 0
    available = all(caps[index] is not None for caps in capsules.values())
    platforms = "gpu and cpu" if all(c[1] is not None for c in capsules.values()) else "cpu"
    return {
        "available": available if platform in ("cpu", "gpu") else False,
        "detail": f"FFI targets for {', '.join(sorted(capsules))} on {platforms}",
    }


def machine_info() -> dict:
    """Platform and devices, package versions, host cores, envpool's XLA step, and `auto`'s choices;
    where jax's backend cannot start, what is known without it and the `error` in one line."""
    import jax

    from purejaxspi.algo.conv import resolve_conv
    from purejaxspi.envs.envpool import resolve_interface
    from purejaxspi.host import cpu_model
    from purejaxspi.lifecycle import compilation_cache
    from purejaxspi.provenance import git_state, package_version, package_versions
    from purejaxspi.scale.devices import backend_error
    from purejaxspi.scale.mapping import resolve_run_mapping
    from purejaxspi.versions import jax_range

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    host = {
        "purejaxspi": package_version(),
        **git_state(),
        "python": host_platform.python_version(),
        "cpu": cpu_model(),
        "packages": package_versions(),
        "jax_range": jax_range()._asdict(),
        "host_cores": cores,
    }
    if (error := backend_error()) is not None:
        return {"platform": None, "devices": [], **host, "error": str(error)}
    backend = jax.default_backend()
    cache = compilation_cache.cache_dir(backend)
    return {
        "platform": backend,
        "devices": device_rows(),
        **host,
        "envpool_xla": envpool_xla(backend),
        "auto": {
            "run_mapping": {family: resolve_run_mapping("auto", family, family == "atari") for family in FAMILIES},
            "conv": resolve_conv("auto", backend),
            "envpool_interface": resolve_interface("auto", backend),
        },
        "compilation_cache": str(cache) if cache else None,
    }


def format_info(info: dict) -> list[str]:
    """The report's lines; those that need a working backend are left out where it did not start."""
    checkout = f"commit {info['commit'][:10]}{' with uncommitted changes' if info['dirty'] else ''}"
    lines = [
        f"purejaxspi {info['purejaxspi']} ({checkout if info['dirty'] is not None else info['commit']})",
        f"platform: {info['platform'] or 'none started'} ({len(info['devices'])} devices), host: "
        f"{info['host_cores']} cores ({info['cpu']}), python {info['python']}",
    ]
    for d in info["devices"]:
        memory = f", {d['memory_bytes'] / 2**30:.1f} GiB" if d["memory_bytes"] else ""
        lines.append(f"  device {d['id']}: {d['kind']} ({d['platform']}, process {d['process']}{memory})")
    lines.append("packages: " + ", ".join(f"{k} {v or '-'}" for k, v in info["packages"].items()))
    found = info["jax_range"]
    verdict = {True: "inside", False: "OUTSIDE", None: "unknown"}[found["inside"]]
    lines.append(f"jax {found['version'] or '-'}: tested range {found['tested'] or 'unknown'} ({verdict})")
    if info.get("error"):
        return lines
    xla = info["envpool_xla"]
    lines.append(f"envpool XLA step on {info['platform']}: {'yes' if xla['available'] else 'no'} ({xla['detail']})")
    auto = info["auto"]
    lines.append(
        "auto run mapping: "
        + ", ".join(f"{k} {v}" for k, v in auto["run_mapping"].items())
        + f"; auto conv: {auto['conv']}; auto envpool interface: {auto['envpool_interface']}"
    )
    lines.append(f"compilation cache: {info['compilation_cache'] or 'off'}")
    return lines


def format_presets(rows: list[dict]) -> list[str]:
    """The presets table's lines: a column for each setting the presets differ in, then one line for
    what every preset shares."""
    from purejaxspi.algo.config import titles

    def show(value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    names = {**titles(), "family": "family", "algo": "algo"}
    varied = [n for n in rows[0] if len({show(r[n]) for r in rows}) > 1]
    cells = [[names[n] for n in varied]] + [[show(r[n]) for n in varied] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(varied))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    same = ", ".join(f"{names[n]} {show(rows[0][n])}" for n in rows[0] if n not in varied)
    return lines + [f"Every preset: {same}. A world model's settings apply to deepspi and deepmdp only."]
