"""A run directory on disk: its record (config.json), the refusal to clobber it, and resume bookkeeping.

Everything here is host-side and refuses rather than overwrites: a run's outputs are only removed when
the user asks for it (`--overwrite`), and metrics rows are only dropped once a checkpoint has been read.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import shutil
from pathlib import Path

from purejaxspi.errors import RunDirError

# Held (flock) by the process training into the directory; the OS releases it when that process dies.
LOCK_FILE = ".purejaxspi.lock"
# What a job could not show on a terminal or pipe that went away (lifecycle.runlog); kept across runs.
LOG_FILE = "train.log"
# Files and folders a training run writes into its directory (what `--overwrite` removes).
RUN_FILES = ("config.json", "metrics.csv", "summary.json", "eval.json")
RUN_FOLDERS = ("checkpoints", "tensorboard", "videos", "wandb")
RUN_OUTPUTS = RUN_FILES + RUN_FOLDERS


def run_record(config_dict: dict, values: dict | None, seed: int, num_seeds: int, num_runs: int, varied: list) -> dict:
    """What config.json holds: everything that decides a run's numbers, plus the grid's shape."""
    return {
        "config": config_dict,
        "hparam_values": values,
        "seed": seed,
        "num_seeds": num_seeds,
        "num_runs": num_runs,
        "varied": list(varied),
    }


def default_run_dir(env_id: str, algo: str) -> Path:
    """runs/<env>-<algo>-<time>: where a run goes when no directory is named."""
    return Path("runs") / f"{env_id.replace('/', '_')}-{algo}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def job_of(record: dict) -> dict:
    """What a saved run's command line was: env, algo, settings, seeds, every setting by name and every
    hyperparameter's values (read back through the config tree, so settings added since take their
    defaults)."""
    from purejaxspi.algo.config import Config

    config = Config.of(**record["config"]).flat()
    hparams = {name: tuple(values) for name, values in record.get("hparam_values", {}).items()}
    job = {"env": config.pop("env_id"), "seed": record.get("seed", 0), "num_seeds": record.get("num_seeds", 1)}
    return {**config, **hparams, **job}


def read_record(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunDirError(f"{path} not found; is {run_dir} a training run directory?")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise RunDirError(f"{path} has no 'config' object; not a purejaxspi run record")
    return record


def record_mismatch(saved: dict, new: dict, prefix: str = "") -> str | None:
    """The first setting that differs between two run records, as 'name: saved vs new', or None."""
    # json round-trip so tuples and lists, ints and floats compare as they would on disk
    saved, new = json.loads(json.dumps(saved)), json.loads(json.dumps(new))
    if isinstance(saved, dict) and isinstance(new, dict):
        for key in list(saved) + [k for k in new if k not in saved]:
            if key not in saved or key not in new:
                return f"{prefix}{key}: {saved.get(key, 'missing')!r} vs {new.get(key, 'missing')!r}"
            found = record_mismatch(saved[key], new[key], f"{prefix}{key}." if key != "config" else "")
            if found:
                return found
        return None
    if saved != new:
        return f"{prefix.rstrip('.')}: {saved!r} vs {new!r}"
    return None


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write a new run into a directory that already holds something."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory")
    if resume or overwrite or not out.exists() or not any(p.name not in (LOCK_FILE, LOG_FILE) for p in out.iterdir()):
        return
    found = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_FILE, LOG_FILE))
    shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
    raise RunDirError(
        f"--out {out} already holds files ({shown}); pass --resume {out} to continue that run or "
        f"--overwrite to replace it"
    )


def check_kinds(run_dir: Path, names: tuple[str, ...] = RUN_OUTPUTS) -> None:
    """Refuse a run directory where one of `names` is a folder that should be a file or the reverse
    (RunDirError naming it), before a command reads or writes anything in it."""
    for name in names:
        path = run_dir / name
        folder = name in RUN_FOLDERS
        if path.exists() and path.is_dir() != folder:
            found, wanted = ("a folder", "a file") if path.is_dir() else ("a file", "a folder")
            raise RunDirError(
                f"{path} is {found} where the run keeps {wanted}; move it aside (or put back the {wanted[2:]} "
                f"from a copy of the run) and run the command again"
            )


def clear_run_outputs(out: Path) -> None:
    """Remove what a previous run wrote (only the run's own outputs; other files stay)."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def truncate_metrics(path: Path, header: tuple[str, ...], num_iterations: int) -> int:
    """Keep the header and the rows of iterations < num_iterations (a killed run's later or partial
    rows are dropped, to be written again); returns the number of rows kept. Atomic: temp file + rename.
    """
    tmp = path.with_name(path.name + ".tmp")
    kept = 0
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        found = tuple(next(csv.reader([src.readline()]), []))
        if found and found != header:
            tmp.unlink()
            missing = [c for c in header if c not in found]
            extra = [c for c in found if c not in header]
            raise RunDirError(
                f"{path} has other columns than this version writes (missing {missing}, extra {extra}); "
                f"cannot append to it"
            )
        writer = csv.writer(dst)
        writer.writerow(header)
        column = header.index("iteration")
        for line in src:
            if not line.endswith("\n"):
                break  # a line cut off by a kill
            row = next(csv.reader([line]), [])
            if len(row) == len(header) and row[column].isdigit() and int(row[column]) < num_iterations:
                writer.writerow(row)
                kept += 1
    os.replace(tmp, path)
    return kept


def check_writable(path: Path, label: str) -> None:
    """Refuse an output file that cannot be written, before the work that produces it."""
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as e:
        raise RunDirError(f"{label} {path}: cannot write there: {e.strerror or e}") from None
    if not existed:
        path.unlink(missing_ok=True)
