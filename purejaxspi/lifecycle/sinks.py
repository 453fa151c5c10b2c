"""TensorBoard (tensorboardX) and optional Weights & Biases logging, fed from metrics.csv.

The sinks read the rows the MetricsLog has just appended, so they log exactly the CSV's columns,
whatever they are, with env steps as the step. One TensorBoard sub-run (and one W&B run) per grid member.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from purejaxspi.scale.grid import RunGrid

# Columns that identify a row rather than measure something.
ID_COLUMNS = ("run", "seed", "iteration", "env_steps")


class CsvTail:
    """Reads the complete rows appended to a CSV file (with the given header) since the last call."""

    def __init__(self, path: Path, header: tuple[str, ...]):
        self.path = path
        self.header = list(header)
        self.offset = path.stat().st_size if path.exists() else 0

    def new_rows(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as f:
            f.seek(self.offset)
            lines = []
            while (line := f.readline()).endswith("\n"):
                lines.append(line)
                self.offset = f.tell()
        rows = [row for row in csv.reader(lines) if row != self.header]
        return [dict(zip(self.header, row)) for row in rows]


def scalar_columns(header: list[str]) -> list[str]:
    """Every measured column: not an id, not a run's fixed hyperparameter setting."""
    return [c for c in header if c not in ID_COLUMNS and not c.startswith("hp_")]


def run_names(grid: RunGrid) -> list[str]:
    """`run003-seed1-learning_rate=0.001`: the index, seed and the hyperparameters the grid varies."""
    varied = grid.varied()
    names = []
    for run in grid.runs:
        hp = run.hparams.as_dict()
        name = f"run{run.index:03d}-seed{run.seed}"
        names.append(name + "".join(f"-{n}={hp[n]:g}" for n in varied))
    return names


def _scalars(row: dict[str, str], columns: list[str]) -> dict[str, float]:
    out = {}
    for c in columns:
        try:
            value = float(row.get(c, ""))
        except ValueError:
            continue
        if math.isfinite(value):
            out[c] = value
    return out


class TensorBoardLog:
    """DIR/tensorboard/<run name>/ event files; `purge_step` drops a killed run's events past the checkpoint."""

    def __init__(self, run_dir: Path, grid: RunGrid, tail: CsvTail, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        self.tail = tail
        self.columns = scalar_columns(tail.header)
        self.writers = [
            SummaryWriter(str(run_dir / "tensorboard" / name), purge_step=purge_step, flush_secs=30)
            for name in run_names(grid)
        ]
        if purge_step is None:
            for writer, run in zip(self.writers, grid.runs):
                hp = ", ".join(f"{k}={v:g}" for k, v in run.hparams.as_dict().items())
                writer.add_text("hparams", f"seed={run.seed}, {hp}", 0)

    def update(self) -> None:
        """Log the rows appended to metrics.csv since the last update."""
        for row in self.tail.new_rows():
            writer = self.writers[int(row["run"])]
            step = int(row["env_steps"])
            for name, value in _scalars(row, self.columns).items():
                writer.add_scalar(name, value, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class WandbLog:
    """One W&B run per grid member (project `project`, grouped by the run directory's name)."""

    def __init__(self, run_dir: Path, grid: RunGrid, tail: CsvTail, project: str, record: dict, resume: bool):
        try:
            import wandb
        except ImportError:
            raise ImportError("--wandb needs the wandb extra: uv sync --extra wandb") from None
        self.tail = tail
        self.columns = scalar_columns(tail.header)
        self.runs = []
        for name, run in zip(run_names(grid), grid.runs):
            config = {**record, "run": run.index, "seed": run.seed, "hparams": run.hparams.as_dict()}
            self.runs.append(
                wandb.init(
                    project=project,
                    group=run_dir.name,
                    name=name,
                    config=config,
                    dir=str(run_dir),
                    id=re.sub(r"[^A-Za-z0-9_-]", "_", f"{run_dir.name}-{name}")[:128],
                    resume="allow" if resume else None,
                    reinit="create_new",
                )
            )

    def update(self) -> None:
        """Log the rows appended to metrics.csv since the last update."""
        for row in self.tail.new_rows():
            self.runs[int(row["run"])].log(_scalars(row, self.columns), step=int(row["env_steps"]))

    def close(self) -> None:
        for run in self.runs:
            run.finish()
